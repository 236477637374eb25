//! Multi-tenant Entra ID through the app: a `{tenantid}` issuer with `AUTH_TENANTS`, against a
//! local stand-in for Entra's `organizations` endpoints (the discovery document names the
//! template `…/{tenantid}/v2.0` as its issuer, one key set serves every tenant). Tokens are
//! shaped as Entra's access token reference documents them, v2.0 (`iss` `…/<tid>/v2.0`, `ver`
//! `2.0`, `azp`, `scp`) and v1.0 (`iss` `https://sts.windows.net/<tid>/` form, `appid`, `ver`
//! `1.0`). Key fetches are counted to prove that a foreign tenant, or an `iss` that is not its
//! own `tid`'s, is refused before any key lookup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use azfn_auth::app::{AppState, app};
use azfn_auth::auth::policy::Policy;
use azfn_auth::auth::{Authenticator, Claims};
use azfn_auth::config::{AuthConfig, IssuerConfig, KeySource, TenantAllowList};
use azfn_auth::layout::{AppLayout, FunctionSpec, HostMode};
use common::*;
use http::{Request, StatusCode};
use serde_json::{Value, json};

/// Microsoft's own tenant and the one Microsoft accounts sign in through: two real-looking ids.
const TENANT_A: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const TENANT_B: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
const FOREIGN: &str = "3c0a6a1f-5b0e-4c4f-9e1d-7a2b8c9d0e1f";
/// The API's application (client) id: Entra v2.0 tokens carry it as `aud`.
const APP_ID: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";

struct Counters {
    keys: Vec<Value>,
    base: String,
    discovery: AtomicUsize,
    jwks: AtomicUsize,
}

/// A stand-in for `login.microsoftonline.com`: `/organizations/v2.0/.well-known/openid-configuration`
/// names `<base>/{tenantid}/v2.0` as issuer and `<base>/common/discovery/v2.0/keys` as key set.
struct Entra {
    base: String,
    state: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Entra {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn discovery(State(s): State<Arc<Counters>>) -> axum::Json<Value> {
    s.discovery.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({
        "issuer": format!("{}/{{tenantid}}/v2.0", s.base),
        "jwks_uri": format!("{}/common/discovery/v2.0/keys", s.base),
        "id_token_signing_alg_values_supported": ["RS256"],
        "tenant_region_scope": null,
    }))
}

async fn keys(State(s): State<Arc<Counters>>) -> axum::Json<Value> {
    s.jwks.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({"keys": s.keys}))
}

impl Entra {
    async fn start(key: &TestKey) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Counters {
            keys: vec![key.jwk.clone()],
            base: base.clone(),
            discovery: AtomicUsize::new(0),
            jwks: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/organizations/v2.0/.well-known/openid-configuration", get(discovery))
            .route("/common/discovery/v2.0/keys", get(keys))
            .with_state(state.clone());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { base, state, task }
    }

    fn template(&self) -> String {
        format!("{}/{{tenantid}}/v2.0", self.base)
    }

    fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.base)
    }

    fn fetches(&self) -> (usize, usize) {
        (self.state.discovery.load(Ordering::SeqCst), self.state.jwks.load(Ordering::SeqCst))
    }
}

/// An Entra ID v2.0 access token for this API, as the access token claims reference shows one.
fn v2_claims(iss: &str, tid: &str) -> Value {
    let now = now();
    json!({
        "aud": APP_ID,
        "iss": iss,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "aio": "AXQAi/8UAAAAqxsuB+R4D2rFQqOETO4YdXbLD9kZ8xfXadeAM0Q2NkNT5izfg3uwbWSXhuSSj6UT5hy2D6WqAp=",
        "azp": "f0a9b07e-2c4b-4a58-8f1d-2b6c3d4e5f60",
        "azpacr": "0",
        "name": "Abe Lincoln",
        "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
        "preferred_username": "abeli@contoso.com",
        "rh": "I",
        "scp": "access_as_user",
        "sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
        "tid": tid,
        "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "2.0"
    })
}

/// The handler: which tenant and issuer the typed claims report.
async fn whoami(claims: Option<Claims>) -> String {
    let c = claims.unwrap();
    format!("tid={} iss={} trusted={}", c.tenant_id().unwrap_or("-"), c.issuer(), c.trusted_issuer())
}

fn config(issuer: &str, keys: KeySource, tenants: TenantAllowList) -> AuthConfig {
    let mut config = AuthConfig::new(issuer, keys, vec![APP_ID.to_owned()]);
    config.tenants = Some(tenants);
    config
}

fn build(config: &AuthConfig, mode: HostMode, policy: Value) -> Router {
    let mut function = FunctionSpec::http("orders", "orders", None).unwrap();
    function.policy = Policy::parse(policy.to_string().as_bytes()).unwrap();
    let layout = AppLayout { route_prefix: "api".into(), mode, functions: vec![function] };
    let functions = azfn_auth::functions::builtin().function("orders", whoami);
    let auth = Authenticator::new(config).unwrap();
    app(Arc::new(AppState::with_functions(auth, layout, functions, 1 << 20).unwrap()))
}

fn allow(tenants: &[&str]) -> TenantAllowList {
    TenantAllowList::Only(tenants.iter().map(|t| (*t).to_owned()).collect())
}

async fn call(router: &Router, token: &str) -> Answer {
    let request = Request::get("/api/orders").header("authorization", format!("Bearer {token}"));
    send(router, request.body(Body::empty()).unwrap()).await
}

/// The decision line's reason, from an invocation envelope's `Logs`.
async fn invocation_reason(router: &Router, token: &str) -> (u16, String) {
    let envelope = json!({
        "Data": {"req": {
            "Url": "https://my-app.azurewebsites.net/api/orders",
            "Method": "GET",
            "Query": {},
            "Headers": {"Authorization": [format!("Bearer {token}")]},
            "Params": {},
        }},
        "Metadata": {}
    });
    let request = Request::post("/orders").header("content-type", "application/json");
    let answer = send(router, request.body(Body::from(envelope.to_string())).unwrap()).await;
    let result: Value = serde_json::from_str(&answer.body).unwrap();
    let line = result["Logs"][0].as_str().unwrap_or_default();
    let reason = line.split(" reason=").nth(1).and_then(|r| r.split(" client_id=").next()).unwrap_or_default();
    (result["Outputs"]["res"]["statusCode"].as_u64().unwrap() as u16, reason.trim_matches('"').to_owned())
}

#[tokio::test]
async fn tokens_of_every_allowed_tenant_pass_with_one_key_set_fetched_once() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let entra = Entra::start(&key).await;
    let router = build(
        &config(&entra.template(), KeySource::Discovery, allow(&[TENANT_A, TENANT_B])),
        HostMode::Forwarding,
        json!({}),
    );
    for tenant in [TENANT_A, TENANT_B, TENANT_A] {
        let answer = call(&router, &token(&key, &v2_claims(&entra.issuer(tenant), tenant))).await;
        assert_eq!(answer.status, StatusCode::OK, "{tenant}: {}", answer.body);
        let expected = format!("tid={tenant} iss={} trusted={}", entra.issuer(tenant), entra.template());
        assert_eq!(answer.body, expected);
    }
    assert_eq!(entra.fetches(), (1, 1), "one discovery and one key set for all tenants");
}

#[tokio::test]
async fn a_tenant_not_allowed_is_refused_before_any_key_lookup() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let entra = Entra::start(&key).await;
    let config = config(&entra.template(), KeySource::Discovery, allow(&[TENANT_A]));
    let router = build(&config, HostMode::Forwarding, json!({}));
    let foreign = token(&key, &v2_claims(&entra.issuer(FOREIGN), FOREIGN));
    assert_invalid_token(&call(&router, &foreign).await);
    assert_eq!(entra.fetches(), (0, 0), "no key lookup for a tenant not allowed");
    let (status, reason) = invocation_reason(&build(&config, HostMode::Invocation, json!({})), &foreign).await;
    assert_eq!((status, reason.as_str()), (401, "tenant not allowed"));
    assert_eq!(entra.fetches(), (0, 0));
}

#[tokio::test]
async fn an_iss_that_is_not_its_own_tid_is_refused_before_any_key_lookup() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let entra = Entra::start(&key).await;
    let config = config(&entra.template(), KeySource::Discovery, TenantAllowList::Any);
    let router = build(&config, HostMode::Invocation, json!({}));
    // An allowed tenant's issuer with another tenant's tid, either way round, or no tid.
    let mut no_tid = v2_claims(&entra.issuer(TENANT_A), TENANT_A);
    no_tid.as_object_mut().unwrap().remove("tid");
    for claims in [
        v2_claims(&entra.issuer(TENANT_A), TENANT_B),
        v2_claims(&entra.issuer(TENANT_B), TENANT_A),
        no_tid,
        v2_claims(&entra.issuer(&TENANT_A.to_uppercase()), TENANT_A),
    ] {
        let (status, reason) = invocation_reason(&router, &token(&key, &claims)).await;
        assert_eq!((status, reason.as_str()), (401, "iss does not match the token's tid"), "{}", claims["iss"]);
    }
    assert_eq!(entra.fetches(), (0, 0));
}

#[tokio::test]
async fn the_literal_template_or_another_shape_is_an_untrusted_issuer() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let entra = Entra::start(&key).await;
    let router =
        build(&config(&entra.template(), KeySource::Discovery, TenantAllowList::Any), HostMode::Invocation, json!({}));
    for iss in [entra.template(), format!("{}/{TENANT_A}/v2.0/", entra.base), format!("{}/{TENANT_A}/", entra.base)] {
        let (status, reason) = invocation_reason(&router, &token(&key, &v2_claims(&iss, TENANT_A))).await;
        assert_eq!((status, reason.as_str()), (401, "untrusted issuer"), "{iss}");
    }
    assert_eq!(entra.fetches(), (0, 0));
}

#[tokio::test]
async fn a_wrong_signature_from_an_allowed_tenant_is_still_refused() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let entra = Entra::start(&key).await;
    let router =
        build(&config(&entra.template(), KeySource::Discovery, TenantAllowList::Any), HostMode::Invocation, json!({}));
    let impostor = rsa_key("rsa-b.pem", "key-a");
    let (status, reason) =
        invocation_reason(&router, &token(&impostor, &v2_claims(&entra.issuer(TENANT_A), TENANT_A))).await;
    assert_eq!((status, reason.as_str()), (401, "bad signature"));
}

#[tokio::test]
async fn auth_json_issuers_accept_the_template() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let entra = Entra::start(&key).await;
    let config = config(&entra.template(), KeySource::Discovery, TenantAllowList::Any);
    let router = build(
        &config,
        HostMode::Forwarding,
        json!({"issuers": [entra.template()], "scopes": {"all": ["access_as_user"]}}),
    );
    let answer = call(&router, &token(&key, &v2_claims(&entra.issuer(TENANT_B), TENANT_B))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

/// An Entra ID v1.0 access token (`iss` `https://sts.windows.net/<tid>/` in production).
fn v1_claims(iss: &str, tid: &str) -> Value {
    let now = now();
    json!({
        "aud": "api://orders",
        "iss": iss,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "acr": "1",
        "aio": "E2ZgYJjzc1XW/4n3p3j7ZbZ7tqn5AQ==",
        "amr": ["pwd"],
        "appid": "f0a9b07e-2c4b-4a58-8f1d-2b6c3d4e5f60",
        "appidacr": "0",
        "family_name": "Lincoln",
        "given_name": "Abe",
        "ipaddr": "131.107.222.22",
        "name": "Abe Lincoln",
        "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
        "scp": "user_impersonation",
        "sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA",
        "tid": tid,
        "unique_name": "abeli@contoso.com",
        "upn": "abeli@contoso.com",
        "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "1.0"
    })
}

#[tokio::test]
async fn v1_tokens_match_a_v1_template_with_the_key_set_given_directly() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let entra = Entra::start(&key).await;
    // v1.0 issuers are `https://sts.windows.net/{tenantid}/`; here the stand-in's host.
    let template = format!("{}/{{tenantid}}/", entra.base);
    let jwks = reqwest::Url::parse(&format!("{}/common/discovery/v2.0/keys", entra.base)).unwrap();
    let mut config = config(&template, KeySource::JwksUri(jwks), allow(&[TENANT_A]));
    config.audiences = vec!["api://orders".to_owned()];
    let router = build(&config, HostMode::Proxy, json!({"clients": ["f0a9b07e-2c4b-4a58-8f1d-2b6c3d4e5f60"]}));
    let iss = format!("{}/{TENANT_A}/", entra.base);
    let answer = call(&router, &token(&key, &v1_claims(&iss, TENANT_A))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, format!("tid={TENANT_A} iss={iss} trusted={template}"));
    let foreign = format!("{}/{TENANT_B}/", entra.base);
    assert_invalid_token(&call(&router, &token(&key, &v1_claims(&foreign, TENANT_B))).await);
    assert_eq!(entra.fetches(), (0, 1));
}

#[tokio::test]
async fn a_template_without_tenants_fails_closed_at_start_up() {
    let mut config = AuthConfig::new("https://login.microsoftonline.com/{tenantid}/v2.0", KeySource::Discovery, vec![]);
    assert!(Authenticator::new(&config).unwrap_err().contains("AUTH_TENANTS"));
    config.tenants = Some(TenantAllowList::Any);
    assert!(Authenticator::new(&config).is_ok());
    config.issuers.push(IssuerConfig {
        issuer: "https://login.microsoftonline.com/{tenantid}/{tenantid}/".into(),
        keys: KeySource::Discovery,
        audiences: None,
    });
    assert!(Authenticator::new(&config).is_err());
}

/// RFC 9728 metadata names issuers a client can discover: each allowed tenant's own, or
/// Entra's `organizations` issuer for any tenant; never the `{tenantid}` template itself.
#[tokio::test]
async fn resource_metadata_lists_the_tenants_issuers_not_the_template() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let entra = Entra::start(&key).await;
    for (tenants, expected) in [
        (allow(&[TENANT_A, TENANT_B]), json!([entra.issuer(TENANT_A), entra.issuer(TENANT_B)])),
        (TenantAllowList::Any, json!([entra.issuer("organizations")])),
    ] {
        let mut config = config(&entra.template(), KeySource::Discovery, tenants);
        config.resource = Some("https://my-api.example.net/api".parse().unwrap());
        let router = build(&config, HostMode::Forwarding, json!({}));
        let request = Request::get("/.well-known/oauth-protected-resource/api").body(Body::empty()).unwrap();
        let answer = send(&router, request).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let document: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(document["authorization_servers"], expected, "{document}");
    }
}
