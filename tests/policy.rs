//! Per-function policies (`auth.json`), function discovery from the app root, several
//! issuers, and typed claims reaching the business handler.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use azfn_auth::app::{AppState, UnknownFunction, app};
use azfn_auth::auth::{Authenticator, Claims};
use azfn_auth::config::{AuthConfig, IssuerConfig, KeySource};
use azfn_auth::functions::Functions;
use azfn_auth::layout::{AppLayout, HostMode};
use common::*;
use http::{Request, StatusCode};
use serde_json::{Value, json};

/// A scratch app root removed on drop.
struct AppRoot(PathBuf);

impl AppRoot {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("azfn-auth-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("host.json"), include_str!("../host.json")).unwrap();
        Self(dir)
    }

    fn function(&self, name: &str, policy: Option<Value>) -> &Self {
        let folder = self.0.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("function.json"), include_str!("../api-a/function.json")).unwrap();
        if let Some(policy) = policy {
            std::fs::write(folder.join("auth.json"), policy.to_string()).unwrap();
        }
        self
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for AppRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A second business handler: reports what the typed claims say.
async fn whoami(claims: Option<Claims>) -> String {
    match &claims {
        Some(c) => format!(
            "sub={} client={} scopes={} permissions={} m2m={}",
            c.subject().unwrap_or("-"),
            c.client_id().unwrap_or("-"),
            c.scopes().join(","),
            c.permissions().join(","),
            c.is_client_credentials()
        ),
        None => "anonymous".to_owned(),
    }
}

fn registry() -> Functions {
    azfn_auth::functions::builtin().function("api-b", whoami).function("public", whoami)
}

fn build(root: &Path, config: AuthConfig) -> Result<Arc<AppState>, UnknownFunction> {
    let layout = AppLayout::load(root).unwrap();
    AppState::with_functions(Authenticator::new(&config).unwrap(), layout, registry(), 1 << 20).map(Arc::new)
}

async fn call(router: &axum::Router, path: &str, token: Option<&str>) -> Answer {
    let mut request = Request::get(path);
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    send(router, request.body(Body::empty()).unwrap()).await
}

fn assert_forbidden(answer: &Answer, scope: Option<&str>) {
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "body: {}", answer.body);
    let challenge = answer.challenge().unwrap();
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    if let Some(scope) = scope {
        assert!(challenge.ends_with(&format!(r#"scope="{scope}""#)), "{challenge}");
    }
}

#[tokio::test]
async fn functions_are_discovered_from_folders_each_with_its_own_policy() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = AppRoot::new("discovery");
    root.function("api-a", None)
        .function("api-b", Some(json!({"scopes": {"all": ["read:b"]}})))
        .function("public", Some(json!({"anonymous": true})));
    let state = build(root.path(), auth_config(&idp.issuer)).unwrap();
    let names: Vec<_> = state.layout.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["api-a", "api-b", "public"]);
    let router = app(state);

    let read_a = token(&key, &claims(&idp.issuer)); // scope "read:a"
    assert_ok(&call(&router, "/api/api-a", Some(&read_a)).await);
    assert_forbidden(&call(&router, "/api/api-b", Some(&read_a)).await, Some("read:b"));
    let mut c = claims(&idp.issuer);
    c["scope"] = json!("read:a read:b");
    let answer = call(&router, "/api/api-b", Some(&token(&key, &c))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "sub=test-client@clients client=test-client scopes=read:a,read:b permissions= m2m=true");

    // Anonymous: no token needed, and the handler gets no claims.
    let answer = call(&router, "/api/public", None).await;
    assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "anonymous"));
    // Authentication still applies to the others.
    assert_eq!(call(&router, "/api/api-b", None).await.status, StatusCode::UNAUTHORIZED);
}

async fn one_policy(policy: Value, edit: impl FnOnce(&mut Value)) -> Answer {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = AppRoot::new("policy");
    root.function("api-b", Some(policy));
    let router = app(build(root.path(), auth_config(&idp.issuer)).unwrap());
    let mut c = claims(&idp.issuer);
    edit(&mut c);
    call(&router, "/api/api-b", Some(&token(&key, &c))).await
}

#[tokio::test]
async fn scopes_any_of() {
    let policy = json!({"scopes": {"any": ["admin", "read:a"]}});
    assert_eq!(one_policy(policy.clone(), |_| {}).await.status, StatusCode::OK);
    assert_forbidden(&one_policy(policy, |c| c["scope"] = json!("write:a")).await, Some("admin read:a"));
}

#[tokio::test]
async fn auth0_rbac_permissions() {
    let policy = json!({"permissions": {"all": ["delete:orders"]}});
    assert_forbidden(&one_policy(policy.clone(), |_| {}).await, Some("delete:orders"));
    let answer = one_policy(policy, |c| c["permissions"] = json!(["delete:orders", "read:orders"])).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.contains("permissions=delete:orders,read:orders"));
}

#[tokio::test]
async fn allowed_clients() {
    let policy = json!({"clients": ["billing-service"]});
    assert_forbidden(&one_policy(policy.clone(), |_| {}).await, None);
    assert_eq!(one_policy(policy, |c| c["azp"] = json!("billing-service")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn machine_to_machine_tokens_can_be_refused() {
    let policy = json!({"allowClientCredentials": false});
    assert_forbidden(&one_policy(policy.clone(), |_| {}).await, None);
    let user = one_policy(policy, |c| {
        c.as_object_mut().unwrap().remove("gty");
        c["sub"] = json!("auth0|user-1");
    })
    .await;
    assert_eq!(user.status, StatusCode::OK);
}

#[tokio::test]
async fn policy_errors_stop_start_up_naming_file_and_field() {
    let root = AppRoot::new("bad-policy");
    root.function("api-a", Some(json!({"scopes": {"all": ["a"]}, "scope": "typo"})));
    let err = AppLayout::load(root.path()).unwrap_err().to_string();
    assert!(err.contains("api-a/auth.json") && err.contains("scope"), "{err}");

    std::fs::write(root.path().join("api-a/auth.json"), "{not json").unwrap();
    let err = AppLayout::load(root.path()).unwrap_err().to_string();
    assert!(err.contains("api-a/auth.json"), "{err}");
}

#[tokio::test]
async fn a_policy_naming_an_unconfigured_issuer_stops_start_up() {
    let root = AppRoot::new("bad-issuer");
    root.function("api-a", Some(json!({"issuers": ["https://not-configured.example/"]})));
    let err = build(root.path(), auth_config("https://configured.example/")).unwrap_err().to_string();
    assert!(err.contains("api-a/auth.json") && err.contains("issuers"), "{err}");
}

#[tokio::test]
async fn a_function_folder_without_a_handler_stops_start_up() {
    let root = AppRoot::new("no-handler");
    root.function("api-z", None);
    let err = build(root.path(), auth_config("https://configured.example/")).unwrap_err().to_string();
    assert!(err.contains("api-z/function.json"), "{err}");
}

fn two_issuers(a: &Idp, b: &Idp) -> AuthConfig {
    let mut config = auth_config(&a.issuer);
    config.issuers.push(IssuerConfig { issuer: b.issuer.clone(), keys: KeySource::Discovery, audiences: None });
    config
}

#[tokio::test]
async fn each_issuer_is_verified_only_with_its_own_keys() {
    let key_a = rsa_key("rsa-a.pem", "shared-kid");
    let key_b = rsa_key("rsa-b.pem", "shared-kid");
    let idp_a = Idp::start(&[&key_a]).await;
    let idp_b = Idp::start(&[&key_b]).await;
    let (router, _) = forwarding_app(two_issuers(&idp_a, &idp_b));
    assert_ok(&with_token(&router, &token(&key_a, &claims(&idp_a.issuer))).await);
    assert_ok(&with_token(&router, &token(&key_b, &claims(&idp_b.issuer))).await);
    // Same kid, but signed by A's key while claiming issuer B: B's keys are the only ones tried.
    assert_invalid_token(&with_token(&router, &token(&key_a, &claims(&idp_b.issuer))).await);
    assert_invalid_token(&with_token(&router, &token(&key_b, &claims(&idp_a.issuer))).await);
}

#[tokio::test]
async fn each_issuer_can_have_its_own_audiences() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp_a = Idp::start(&[&key]).await;
    let idp_b = Idp::start(&[&key]).await;
    let mut config = two_issuers(&idp_a, &idp_b);
    config.issuers[1].audiences = Some(vec!["api://staging".into()]);
    let (router, _) = forwarding_app(config);
    let with_aud = |issuer: &str, aud: &str| {
        let mut c = claims(issuer);
        c["aud"] = json!(aud);
        token(&key, &c)
    };
    assert_ok(&with_token(&router, &with_aud(&idp_a.issuer, AUDIENCE)).await);
    assert_ok(&with_token(&router, &with_aud(&idp_b.issuer, "api://staging")).await);
    // Each issuer's audiences are its own: no crossing over.
    assert_invalid_token(&with_token(&router, &with_aud(&idp_b.issuer, AUDIENCE)).await);
    assert_invalid_token(&with_token(&router, &with_aud(&idp_a.issuer, "api://staging")).await);
}

#[tokio::test]
async fn an_unknown_issuer_costs_no_network_request() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp_a = Idp::start(&[&key]).await;
    let idp_b = Idp::start(&[&key]).await;
    let (router, _) = forwarding_app(two_issuers(&idp_a, &idp_b));
    for i in 0..20 {
        let t = token(&key, &claims(&format!("https://unknown-{i}.example/")));
        assert_invalid_token(&with_token(&router, &t).await);
    }
    assert_eq!(idp_a.jwks_hits() + idp_a.discovery_hits() + idp_b.jwks_hits() + idp_b.discovery_hits(), 0);
}

#[tokio::test]
async fn a_function_can_accept_only_some_issuers() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp_a = Idp::start(&[&key]).await;
    let idp_b = Idp::start(&[&key]).await;
    let root = AppRoot::new("issuer-policy");
    root.function("api-b", Some(json!({"issuers": [idp_b.issuer]})));
    let router = app(build(root.path(), two_issuers(&idp_a, &idp_b)).unwrap());
    assert_eq!(call(&router, "/api/api-b", Some(&token(&key, &claims(&idp_b.issuer)))).await.status, StatusCode::OK);
    assert_invalid_token(&call(&router, "/api/api-b", Some(&token(&key, &claims(&idp_a.issuer)))).await);
}

#[tokio::test]
async fn rfc9068_typ_is_required_when_configured() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let mut config = auth_config(&idp.issuer);
    config.require_access_token_type = true;
    let (router, _) = forwarding_app(config);
    let sign = |typ: &str| {
        sign_raw(&json!({"alg": "RS256", "kid": "key-a", "typ": typ}), &claims(&idp.issuer), &key.encoding, key.alg)
    };
    assert_ok(&with_token(&router, &sign("at+jwt")).await);
    assert_ok(&with_token(&router, &sign("application/at+JWT")).await);
    // An ID token (typ JWT) is never accepted as an access token.
    assert_invalid_token(&with_token(&router, &sign("JWT")).await);
    let untyped = sign_raw(&json!({"alg": "RS256", "kid": "key-a"}), &claims(&idp.issuer), &key.encoding, key.alg);
    assert_invalid_token(&with_token(&router, &untyped).await);
}

#[tokio::test]
async fn insufficient_scope_is_403_in_invocation_mode_too() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = AppRoot::new("invocation-403");
    root.function("api-b", Some(json!({"scopes": {"all": ["write:b"]}})));
    let mut layout = AppLayout::load(root.path()).unwrap();
    layout.mode = HostMode::Invocation;
    let state =
        AppState::with_functions(Authenticator::new(&auth_config(&idp.issuer)).unwrap(), layout, registry(), 1 << 20);
    let router = app(Arc::new(state.unwrap()));
    let envelope = json!({"Data": {"req": {
        "Url": "https://app/api/api-b", "Method": "GET",
        "Headers": {"Authorization": [format!("Bearer {}", token(&key, &claims(&idp.issuer)))]}
    }}, "Metadata": {}});
    let request = Request::post("/api-b").body(Body::from(envelope.to_string())).unwrap();
    let answer = send(&router, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    let result: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(result["Outputs"]["res"]["statusCode"], 403);
    assert!(result["Outputs"]["res"]["headers"]["www-authenticate"].as_str().unwrap().contains(r#"scope="write:b""#));
}

// ---- RFC 9728 protected resource metadata (optional) ----

fn with_resource(issuer: &str) -> AuthConfig {
    let mut config = auth_config(issuer);
    config.resource = Some("https://my-api.example.net/api".parse().unwrap());
    config
}

#[tokio::test]
async fn resource_metadata_is_published_and_advertised_when_configured() {
    let idp = Idp::start(&[]).await;
    let (router, _) = forwarding_app(with_resource(&idp.issuer));
    let answer = call(&router, "/.well-known/oauth-protected-resource/api", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let doc: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(doc["resource"], "https://my-api.example.net/api");
    assert_eq!(doc["authorization_servers"], json!([idp.issuer]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    let challenge = call(&router, "/api/api-a", None).await;
    assert_eq!(
        challenge.challenge(),
        Some(
            r#"Bearer realm="api", resource_metadata="https://my-api.example.net/.well-known/oauth-protected-resource/api""#
        )
    );
}

#[tokio::test]
async fn resource_metadata_is_reachable_through_a_function_route() {
    let idp = Idp::start(&[]).await;
    let root = AppRoot::new("metadata");
    root.function("api-b", Some(json!({"scopes": {"all": ["read:b"]}}))).function("oauth-metadata", None);
    let folder = root.path().join("oauth-metadata");
    let mut function: Value = serde_json::from_str(include_str!("../api-a/function.json")).unwrap();
    function["bindings"][0]["route"] = json!(".well-known/oauth-protected-resource");
    function["bindings"][0]["authLevel"] = json!("anonymous");
    std::fs::write(folder.join("function.json"), function.to_string()).unwrap();

    let err = build(root.path(), auth_config(&idp.issuer)).unwrap_err().to_string();
    assert!(err.contains("AUTH_RESOURCE"), "{err}");

    let router = app(build(root.path(), with_resource(&idp.issuer)).unwrap());
    let answer = call(&router, "/api/.well-known/oauth-protected-resource", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(doc["scopes_supported"], json!(["read:b"]));
    let challenge = call(&router, "/api/api-b", None).await;
    assert!(
        challenge
            .challenge()
            .unwrap()
            .contains(r#"resource_metadata="https://my-api.example.net/api/.well-known/oauth-protected-resource""#),
        "{:?}",
        challenge.challenge()
    );
}

// ---- RFC 9470 step-up: acrValues and maxAge ----

/// Auth0's `acr` for a login with multi-factor authentication.
const MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
const STEP_UP_TEXT: &str = "A stronger or more recent authentication is required";

fn assert_step_up(answer: &Answer, attributes: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "body: {}", answer.body);
    let expected = format!(
        r#"Bearer realm="api", error="insufficient_user_authentication", error_description="{STEP_UP_TEXT}"{attributes}"#
    );
    assert_eq!(answer.challenge(), Some(expected.as_str()));
    assert_eq!(answer.body, STEP_UP_TEXT);
}

fn assert_invalid_token_answer(answer: &Answer) {
    assert_invalid_token(answer);
    assert_eq!(answer.body, "The access token is invalid");
}

fn mfa_policy() -> Value {
    json!({"acrValues": [MFA, "phr"]})
}

const MFA_ATTRIBUTES: &str = r#", acr_values="http://schemas.openid.net/pape/policies/2007/06/multi-factor phr""#;

#[tokio::test]
async fn acr_in_acr_values_is_accepted() {
    assert_eq!(one_policy(mfa_policy(), |c| c["acr"] = json!(MFA)).await.status, StatusCode::OK);
    assert_eq!(one_policy(mfa_policy(), |c| c["acr"] = json!("phr")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn acr_not_in_acr_values_is_401_insufficient_user_authentication() {
    let answer = one_policy(mfa_policy(), |c| c["acr"] = json!("urn:password-only")).await;
    assert_step_up(&answer, MFA_ATTRIBUTES);
    assert!(!answer.challenge().unwrap().contains("password-only"), "the token's acr is echoed");
}

#[tokio::test]
async fn missing_acr_is_401_insufficient_user_authentication() {
    assert_step_up(&one_policy(mfa_policy(), |_| {}).await, MFA_ATTRIBUTES);
}

#[tokio::test]
async fn acr_of_the_wrong_type_is_401_invalid_token() {
    assert_invalid_token_answer(&one_policy(mfa_policy(), |c| c["acr"] = json!([MFA])).await);
    assert_invalid_token_answer(&one_policy(json!({"acrValues": ["2"]}), |c| c["acr"] = json!(2)).await);
}

#[tokio::test]
async fn recent_login_within_max_age_is_accepted() {
    let answer = one_policy(json!({"maxAge": 300}), |c| c["auth_time"] = json!(now() - 200)).await;
    assert_eq!(answer.status, StatusCode::OK, "body: {}", answer.body);
}

#[tokio::test]
async fn login_older_than_max_age_is_401_with_max_age() {
    // Older than maxAge plus the default 30 s skew.
    let answer = one_policy(json!({"maxAge": 300}), |c| c["auth_time"] = json!(now() - 400)).await;
    assert_step_up(&answer, r#", max_age="300""#);
}

#[tokio::test]
async fn missing_auth_time_is_401_with_max_age() {
    assert_step_up(&one_policy(json!({"maxAge": 300}), |_| {}).await, r#", max_age="300""#);
}

#[tokio::test]
async fn auth_time_in_the_future_is_401_invalid_token() {
    let answer = one_policy(json!({"maxAge": 300}), |c| c["auth_time"] = json!(now() + 3600)).await;
    assert_invalid_token_answer(&answer);
}

#[tokio::test]
async fn auth_time_of_the_wrong_type_is_401_invalid_token() {
    let answer = one_policy(json!({"maxAge": 300}), |c| c["auth_time"] = json!(now().to_string())).await;
    assert_invalid_token_answer(&answer);
}

#[tokio::test]
async fn acr_values_and_max_age_together_challenge_with_both() {
    let policy = json!({"acrValues": [MFA, "phr"], "maxAge": 60});
    let both = format!(r#"{MFA_ATTRIBUTES}, max_age="60""#);
    // Strong but old, and recent but weak: either way the demand names both requirements.
    assert_step_up(&one_policy(policy.clone(), |c| c["acr"] = json!(MFA)).await, &both);
    assert_step_up(&one_policy(policy.clone(), |c| c["auth_time"] = json!(now())).await, &both);
    let answer = one_policy(policy, |c| {
        c["acr"] = json!(MFA);
        c["auth_time"] = json!(now() - 5);
    })
    .await;
    assert_eq!(answer.status, StatusCode::OK, "body: {}", answer.body);
}

#[tokio::test]
async fn step_up_is_asked_before_missing_scopes_are_named() {
    let policy = json!({"acrValues": [MFA], "scopes": {"all": ["write:b"]}});
    let weak = one_policy(policy.clone(), |_| {}).await;
    assert_step_up(&weak, &format!(r#", acr_values="{MFA}""#));
    assert_forbidden(&one_policy(policy, |c| c["acr"] = json!(MFA)).await, Some("write:b"));
}

#[tokio::test]
async fn functions_without_step_up_ignore_acr_and_auth_time() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = AppRoot::new("step-up-others");
    root.function("api-a", None)
        .function("api-b", Some(json!({"acrValues": [MFA], "maxAge": 60})))
        .function("public", Some(json!({"anonymous": true})));
    let router = app(build(root.path(), auth_config(&idp.issuer)).unwrap());
    let answer = call(&router, "/api/public", None).await;
    assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "anonymous"));
    let mut odd = claims(&idp.issuer);
    odd["acr"] = json!(1);
    odd["auth_time"] = json!("yesterday");
    assert_ok(&call(&router, "/api/api-a", Some(&token(&key, &odd))).await);
    assert_invalid_token_answer(&call(&router, "/api/api-b", Some(&token(&key, &odd))).await);
    // No token at all on a step-up function is the ordinary bare challenge.
    let answer = call(&router, "/api/api-b", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), Some(r#"Bearer realm="api""#));
}

#[tokio::test]
async fn handlers_read_acr_and_auth_time_from_claims() {
    async fn login(claims: Claims) -> String {
        format!("acr={} auth_time={}", claims.acr().unwrap_or("-"), claims.auth_time().unwrap_or(-1))
    }
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = AppRoot::new("step-up-claims");
    root.function("api-b", Some(json!({"acrValues": [MFA], "maxAge": 60})));
    let functions = azfn_auth::functions::builtin().function("api-b", login);
    let layout = AppLayout::load(root.path()).unwrap();
    let state =
        AppState::with_functions(Authenticator::new(&auth_config(&idp.issuer)).unwrap(), layout, functions, 1 << 20);
    let router = app(Arc::new(state.unwrap()));
    let auth_time = now() - 10;
    let mut c = claims(&idp.issuer);
    c["acr"] = json!(MFA);
    c["auth_time"] = json!(auth_time);
    let answer = call(&router, "/api/api-b", Some(&token(&key, &c))).await;
    assert_eq!(answer.status, StatusCode::OK, "body: {}", answer.body);
    assert_eq!(answer.body, format!("acr={MFA} auth_time={auth_time}"));
}

#[tokio::test]
async fn step_up_decision_is_logged_with_its_reason() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = AppRoot::new("step-up-log");
    root.function("api-b", Some(json!({"maxAge": 300})));
    let mut layout = AppLayout::load(root.path()).unwrap();
    layout.mode = HostMode::Invocation;
    let state =
        AppState::with_functions(Authenticator::new(&auth_config(&idp.issuer)).unwrap(), layout, registry(), 1 << 20);
    let router = app(Arc::new(state.unwrap()));
    let mut c = claims(&idp.issuer);
    c["auth_time"] = json!(now() - 3600);
    let envelope = json!({"Data": {"req": {
        "Url": "https://app/api/api-b", "Method": "GET",
        "Headers": {"Authorization": [format!("Bearer {}", token(&key, &c))]}
    }}, "Metadata": {}});
    let request = Request::post("/api-b").body(Body::from(envelope.to_string())).unwrap();
    let result: Value = serde_json::from_str(&send(&router, request).await.body).unwrap();
    let res = &result["Outputs"]["res"];
    assert_eq!(res["statusCode"], 401);
    assert_eq!(res["body"], STEP_UP_TEXT);
    assert!(res["headers"]["www-authenticate"].as_str().unwrap().ends_with(r#", max_age="300""#));
    assert_eq!(
        result["Logs"],
        json!([
            "auth decision: function=api-b outcome=denied status=401 reason=authentication too old client_id=test-client sub=test-client@clients"
        ])
    );
}

#[tokio::test]
async fn step_up_demand_is_the_same_in_proxy_mode() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = AppRoot::new("step-up-proxy");
    root.function("api-b", Some(mfa_policy()));
    let mut layout = AppLayout::load(root.path()).unwrap();
    layout.mode = HostMode::Proxy;
    let state =
        AppState::with_functions(Authenticator::new(&auth_config(&idp.issuer)).unwrap(), layout, registry(), 1 << 20);
    let router = app(Arc::new(state.unwrap()));
    let mut c = claims(&idp.issuer);
    c["acr"] = json!("pwd");
    assert_step_up(&call(&router, "/api/api-b", Some(&token(&key, &c))).await, MFA_ATTRIBUTES);
    c["acr"] = json!(MFA);
    assert_eq!(call(&router, "/api/api-b", Some(&token(&key, &c))).await.status, StatusCode::OK);
}

#[tokio::test]
async fn step_up_values_are_validated_at_start_up_naming_file_and_field() {
    let root = AppRoot::new("bad-step-up");
    for (policy, field) in [
        (json!({"acrValues": ["multi factor"]}), "acrValues"),
        (json!({"acrValues": []}), "acrValues"),
        (json!({"maxAge": -5}), "maxAge"),
        (json!({"maxAge": 31_536_001}), "maxAge"),
        (json!({"maxAge": "300"}), "invalid type"),
    ] {
        root.function("api-a", Some(policy.clone()));
        let err = AppLayout::load(root.path()).unwrap_err().to_string();
        assert!(err.contains("api-a/auth.json") && err.contains(field), "{policy}: {err}");
    }
}

#[tokio::test]
async fn max_age_applies_to_a_token_already_in_the_cache() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = AppRoot::new("step-up-cache");
    root.function("api-a", None).function("api-b", Some(json!({"maxAge": 300})));
    let state = build(root.path(), auth_config(&idp.issuer)).unwrap();
    let router = app(state.clone());
    let mut c = claims(&idp.issuer);
    c["auth_time"] = json!(now() - 3600);
    let old_login = token(&key, &c);
    assert_ok(&call(&router, "/api/api-a", Some(&old_login)).await);
    assert_eq!(state.auth.cached_tokens(), 1);
    assert_step_up(&call(&router, "/api/api-b", Some(&old_login)).await, r#", max_age="300""#);
}
