//! DPoP (RFC 9449) and certificate-bound tokens (RFC 8705) through the app: a DPoP client
//! that signs proofs at test time (ES256, RS256), one test per proof check, replay, server
//! nonces, both schemes, challenges, per-function modes and the client-certificate header.
//!
//! Most tests go through invocation mode without a socket, because the envelope's `Logs`
//! carry the decision reason: a refused proof is shown to fail for the rule under test and no
//! other, and the same request with that one thing put right passes. The main round trips go
//! over real loopback TCP in forwarding, proxy and invocation mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::digest::{SHA256, digest};
use axum::Router;
use axum::body::Body;
use azfn_auth::app::{AppState, UnknownFunction, app};
use azfn_auth::auth::Authenticator;
use azfn_auth::auth::dpop::{DpopMode, NonceSecret, Nonces};
use azfn_auth::auth::policy::Policy;
use azfn_auth::config::AuthConfig;
use azfn_auth::layout::HostMode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use http::{Request, StatusCode};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

const ORIGIN: &str = "https://my-app.azurewebsites.net";
const URL: &str = "https://my-app.azurewebsites.net/api/api-a";
const NONCE_SECRET: &str = "test-nonce-secret-0123456789abcdef";

const PROOF_BODY: &str = "The DPoP proof is invalid";
const INVALID_PROOF: &str = r#"DPoP algs="ES256 RS256 PS256 EdDSA Ed25519", error="invalid_dpop_proof", error_description="The DPoP proof is invalid""#;
const DPOP_INVALID_TOKEN: &str = r#"DPoP algs="ES256 RS256 PS256 EdDSA Ed25519", error="invalid_token", error_description="The access token is invalid""#;
const BEARER_INVALID_TOKEN: &str =
    r#"Bearer realm="api", error="invalid_token", error_description="The access token is invalid""#;

// ---------------------------------------------------------------------------------------
// The DPoP client: a key pair, its public JWK, and proofs signed now.

struct DpopClient {
    alg: Algorithm,
    key: EncodingKey,
    /// Public members only (`kty`, `crv`, `x`, `y` / `n`, `e`).
    jwk: Value,
}

static NEXT_JTI: AtomicUsize = AtomicUsize::new(0);

impl DpopClient {
    fn ec(file: &str) -> Self {
        let key = EncodingKey::from_ec_pem(fixture(file).as_bytes()).unwrap();
        Self::new(Algorithm::ES256, key)
    }

    fn es256() -> Self {
        Self::ec("ec-p256.pem")
    }

    fn rs256() -> Self {
        Self::new(Algorithm::RS256, EncodingKey::from_rsa_pem(fixture("rsa-b.pem").as_bytes()).unwrap())
    }

    fn new(alg: Algorithm, key: EncodingKey) -> Self {
        let full = serde_json::to_value(Jwk::from_encoding_key(&key, alg).unwrap()).unwrap();
        let mut jwk = json!({});
        for member in ["kty", "crv", "x", "y", "n", "e"] {
            if let Some(value) = full.get(member) {
                jwk[member] = value.clone();
            }
        }
        Self { alg, key, jwk }
    }

    /// RFC 7638 thumbprint, computed here independently of the library: the required
    /// members in lexicographic order (serde_json's map is sorted), no whitespace.
    fn jkt(&self) -> String {
        let required: &[&str] = match self.jwk["kty"].as_str() {
            Some("RSA") => &["e", "kty", "n"],
            Some("OKP") => &["crv", "kty", "x"],
            _ => &["crv", "kty", "x", "y"],
        };
        let mut canonical = serde_json::Map::new();
        for member in required {
            canonical.insert((*member).to_owned(), self.jwk[*member].clone());
        }
        URL_SAFE_NO_PAD.encode(digest(&SHA256, Value::Object(canonical).to_string().as_bytes()))
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": format!("{:?}", self.alg), "jwk": self.jwk})
    }

    /// Proof claims for `method url` carrying `token`, with a fresh `jti` and `iat` now.
    fn claims(&self, method: &str, url: &str, token: &str) -> Value {
        let n = NEXT_JTI.fetch_add(1, Ordering::Relaxed);
        json!({
            "jti": format!("jti-{}-{n}", std::process::id()),
            "htm": method,
            "htu": url,
            "iat": now(),
            "ath": URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes())),
        })
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        sign_raw(header, claims, &self.key, self.alg)
    }

    fn proof(&self, method: &str, url: &str, token: &str) -> String {
        self.sign(&self.header(), &self.claims(method, url, token))
    }
}

// ---------------------------------------------------------------------------------------
// The app under test.

struct World {
    idp: Idp,
    signing: TestKey,
    client: DpopClient,
    router: Router,
    state: Arc<AppState>,
}

impl World {
    async fn start(mode: HostMode, edit: impl FnOnce(&mut AuthConfig)) -> Self {
        Self::with_policy(mode, None, edit).await
    }

    async fn with_policy(mode: HostMode, policy: Option<Value>, edit: impl FnOnce(&mut AuthConfig)) -> Self {
        let signing = rsa_key("rsa-a.pem", "key-a");
        let idp = Idp::start(&[&signing]).await;
        let state = build(&idp.issuer, mode, "api", policy, edit).unwrap();
        Self { router: app(state.clone()), state, idp, signing, client: DpopClient::es256() }
    }

    /// An access token for the test API, with `cnf` when given.
    fn token(&self, cnf: Option<Value>) -> String {
        let mut claims = claims(&self.idp.issuer);
        if let Some(cnf) = cnf {
            claims["cnf"] = cnf;
        }
        token(&self.signing, &claims)
    }

    /// A token bound to `client`'s key (`cnf.jkt`).
    fn bound_token(&self, client: &DpopClient) -> String {
        self.token(Some(json!({"jkt": client.jkt()})))
    }
}

fn dpop_config(config: &mut AuthConfig) {
    config.dpop.public_origins = vec![ORIGIN.to_owned()];
}

fn build(
    issuer: &str,
    mode: HostMode,
    prefix: &str,
    policy: Option<Value>,
    edit: impl FnOnce(&mut AuthConfig),
) -> Result<Arc<AppState>, UnknownFunction> {
    let mut config = auth_config(issuer);
    edit(&mut config);
    let mut layout = layout(mode, prefix);
    if let Some(policy) = policy {
        layout.functions[0].policy = Policy::parse(policy.to_string().as_bytes()).unwrap();
    }
    AppState::new(Authenticator::new(&config).unwrap(), layout, 1 << 20).map(Arc::new)
}

/// What came back, wherever it came from.
#[derive(Debug)]
struct Outcome {
    status: u16,
    challenge: Option<String>,
    nonce: Option<String>,
    retry_after: Option<String>,
    body: String,
    /// The decision reason from the invocation `Logs` (empty outside invocation mode).
    reason: String,
}

/// `GET /api/api-a` as an invocation envelope (URL as the host writes it), through the
/// router without a socket.
async fn invoke(world: &World, headers: &[(&str, &str)]) -> Outcome {
    invoke_as(&world.router, "GET", &format!("{URL}?code=k"), headers).await
}

async fn invoke_as(router: &Router, method: &str, url: &str, headers: &[(&str, &str)]) -> Outcome {
    let mut header_map = serde_json::Map::new();
    header_map.insert("Host".into(), json!(["my-app.azurewebsites.net"]));
    for (name, value) in headers {
        let entry = header_map.entry(name.to_string()).or_insert_with(|| json!([]));
        entry.as_array_mut().unwrap().push(json!(value));
    }
    let envelope = json!({
        "Data": {"req": {"Url": url, "Method": method, "Query": {}, "Headers": header_map, "Params": {}}},
        "Metadata": {}
    });
    let request =
        Request::post("/api-a").header("content-type", "application/json").body(Body::from(envelope.to_string()));
    let answer = send(router, request.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let result: Value = serde_json::from_str(&answer.body).unwrap();
    let res = &result["Outputs"]["res"];
    let header = |name: &str| res["headers"][name].as_str().map(str::to_owned);
    let line = result["Logs"][0].as_str().unwrap_or_default();
    let reason = line.split(" reason=").nth(1).and_then(|r| r.split(" client_id=").next()).unwrap_or_default();
    Outcome {
        status: res["statusCode"].as_u64().unwrap() as u16,
        challenge: header("www-authenticate"),
        nonce: header("dpop-nonce"),
        retry_after: header("retry-after"),
        body: res["body"].as_str().unwrap_or_default().to_owned(),
        reason: reason.to_owned(),
    }
}

/// `GET /api/api-a` forwarded (plain HTTP), through the router without a socket.
async fn forward(world: &World, headers: &[(&str, &str)]) -> Outcome {
    let mut request = Request::get("/api/api-a");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = send(&world.router, request.body(Body::empty()).unwrap()).await;
    Outcome {
        status: answer.status.as_u16(),
        challenge: answer.challenge().map(str::to_owned),
        nonce: answer.header("dpop-nonce").map(str::to_owned),
        retry_after: answer.header("retry-after").map(str::to_owned),
        body: answer.body,
        reason: String::new(),
    }
}

fn dpop_auth(token: &str) -> String {
    format!("DPoP {token}")
}

fn assert_allowed(outcome: &Outcome) {
    assert_eq!(outcome.status, 200, "{outcome:?}");
    assert_eq!(outcome.body, "Authentication successful");
}

fn assert_proof_refused(outcome: &Outcome, reason: &str) {
    assert_eq!(outcome.status, 401, "{outcome:?}");
    assert_eq!(outcome.challenge.as_deref(), Some(INVALID_PROOF));
    assert_eq!(outcome.body, PROOF_BODY);
    assert_eq!(outcome.reason, reason);
}

/// Sends the proof `edit` spoils (401 invalid_dpop_proof for `reason`), then the same proof
/// unspoiled (200): the refusal is that rule's alone.
async fn refused_for(reason: &str, edit: impl FnOnce(&DpopClient, &mut Value, &mut Value)) {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&world.client);
    let auth = dpop_auth(&token);
    let (mut header, mut claims) = (world.client.header(), world.client.claims("GET", URL, &token));
    edit(&world.client, &mut header, &mut claims);
    let spoiled = world.client.sign(&header, &claims);
    assert_proof_refused(&invoke(&world, &[("Authorization", &auth), ("DPoP", &spoiled)]).await, reason);
    let good = world.client.proof("GET", URL, &token);
    assert_allowed(&invoke(&world, &[("Authorization", &auth), ("DPoP", &good)]).await);
}

// ---------------------------------------------------------------------------------------
// Both schemes.

#[tokio::test]
async fn dpop_with_es256_proof_and_bound_token_is_200() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&world.client);
    let proof = world.client.proof("GET", URL, &token);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await;
    assert_allowed(&outcome);
    assert_eq!(outcome.reason, "valid token");
    assert_eq!(outcome.nonce, None, "no nonces unless AUTH_DPOP_NONCE_SECRET is set");
}

#[tokio::test]
async fn dpop_with_rs256_proof_and_bound_token_is_200() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let client = DpopClient::rs256();
    let token = world.bound_token(&client);
    let proof = client.proof("GET", URL, &token);
    assert_allowed(&invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await);
}

#[tokio::test]
async fn dpop_with_ps256_and_eddsa_proofs_is_200() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let ps256 = DpopClient::new(Algorithm::PS256, EncodingKey::from_rsa_pem(fixture("rsa-b.pem").as_bytes()).unwrap());
    let eddsa = DpopClient::new(Algorithm::EdDSA, EncodingKey::from_ed_pem(fixture("ed25519.pem").as_bytes()).unwrap());
    for client in [ps256, eddsa] {
        let token = world.bound_token(&client);
        let proof = client.proof("GET", URL, &token);
        assert_allowed(&invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await);
    }
}

/// An Ed25519 proof labelled as current JavaScript clients label it (RFC 9864 `Ed25519`).
fn ed25519_client() -> DpopClient {
    DpopClient::new(Algorithm::EdDSA, EncodingKey::from_ed_pem(fixture("ed25519.pem").as_bytes()).unwrap())
}

fn ed25519_labelled_proof(client: &DpopClient, token: &str) -> String {
    let mut header = client.header();
    header["alg"] = json!("Ed25519");
    client.sign(&header, &client.claims("GET", URL, token))
}

#[tokio::test]
async fn a_proof_labelled_ed25519_is_200_with_the_default_algorithms() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let client = ed25519_client();
    let token = world.bound_token(&client);
    let proof = ed25519_labelled_proof(&client, &token);
    assert_allowed(&invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await);
}

#[tokio::test]
async fn ed25519_alone_in_the_dpop_algorithms_accepts_both_labels_and_nothing_else() {
    let world = World::start(HostMode::Invocation, |c| {
        dpop_config(c);
        c.dpop.algorithms = vec![Algorithm::EdDSA];
    })
    .await;
    let client = ed25519_client();
    let token = world.bound_token(&client);
    let labelled = ed25519_labelled_proof(&client, &token);
    assert_allowed(&invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &labelled)]).await);
    let eddsa = client.proof("GET", URL, &token);
    assert_allowed(&invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &eddsa)]).await);
    let es256 = world.bound_token(&world.client);
    let proof = world.client.proof("GET", URL, &es256);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&es256)), ("DPoP", &proof)]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.reason, "proof algorithm not allowed");
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(r#"DPoP algs="EdDSA Ed25519", error="invalid_dpop_proof", error_description="The DPoP proof is invalid""#)
    );
}

#[tokio::test]
async fn an_ed25519_label_on_an_ec_key_is_refused() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&world.client);
    let proof = ed25519_labelled_proof(&world.client, &token);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await;
    assert_eq!((outcome.status, outcome.challenge.as_deref()), (401, Some(INVALID_PROOF)));
}

#[tokio::test]
async fn every_configured_public_origin_is_accepted_in_htu() {
    let world = World::start(HostMode::Invocation, |c| {
        c.dpop.public_origins = vec![ORIGIN.to_owned(), "https://api.example.com".to_owned()];
    })
    .await;
    let token = world.bound_token(&world.client);
    for url in [URL, "https://api.example.com/api/api-a"] {
        let proof = world.client.proof("GET", url, &token);
        assert_allowed(&invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await);
    }
}

#[tokio::test]
async fn plain_bearer_token_still_works_where_dpop_is_allowed() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let outcome = invoke(&world, &[("Authorization", &format!("Bearer {}", world.token(None)))]).await;
    assert_allowed(&outcome);
}

#[tokio::test]
async fn dpop_bound_token_sent_as_bearer_is_401_invalid_token() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&world.client);
    // Even with a valid proof beside it: the Bearer scheme never proves the binding.
    let proof = world.client.proof("GET", URL, &token);
    let outcome = invoke(&world, &[("Authorization", &format!("Bearer {token}")), ("DPoP", &proof)]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.challenge.as_deref(), Some(BEARER_INVALID_TOKEN));
    assert_eq!(outcome.body, "The access token is invalid");
    assert_eq!(outcome.reason, "sender-constrained token without proof");
}

#[tokio::test]
async fn unbound_token_sent_with_dpop_is_401_invalid_token_with_dpop_challenge() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.token(None);
    let proof = world.client.proof("GET", URL, &token);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.challenge.as_deref(), Some(DPOP_INVALID_TOKEN));
    assert_eq!(outcome.body, "The access token is invalid");
    assert_eq!(outcome.reason, "DPoP scheme with a token not bound to a key");
}

#[tokio::test]
async fn token_bound_to_another_key_is_401_invalid_token() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&DpopClient::ec("ec-p256-b.pem"));
    let proof = world.client.proof("GET", URL, &token);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.challenge.as_deref(), Some(DPOP_INVALID_TOKEN));
    assert_eq!(outcome.reason, "token bound to another DPoP key");
}

#[tokio::test]
async fn bad_token_with_dpop_is_401_invalid_token_with_dpop_challenge() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let mut claims = claims(&world.idp.issuer);
    claims["aud"] = json!("https://another-api.example");
    claims["cnf"] = json!({"jkt": world.client.jkt()});
    let token = token(&world.signing, &claims);
    let proof = world.client.proof("GET", URL, &token);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await;
    assert_eq!(outcome.challenge.as_deref(), Some(DPOP_INVALID_TOKEN));
    assert_eq!(outcome.reason, "wrong audience");
}

#[tokio::test]
async fn unknown_cnf_member_is_refused_whatever_the_scheme() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let bearer = world.token(Some(json!({"kid": "some-key"})));
    let outcome = invoke(&world, &[("Authorization", &format!("Bearer {bearer}"))]).await;
    assert_eq!((outcome.status, outcome.reason.as_str()), (401, "sender-constrained token without proof"));
    let both = world.token(Some(json!({"jkt": world.client.jkt(), "x5t": "abc"})));
    let proof = world.client.proof("GET", URL, &both);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&both)), ("DPoP", &proof)]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.challenge.as_deref(), Some(DPOP_INVALID_TOKEN));
    assert_eq!(outcome.reason, "sender-constrained token without proof");
}

// ---------------------------------------------------------------------------------------
// One test per proof check.

#[tokio::test]
async fn missing_dpop_header_is_401_invalid_dpop_proof() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&world.client);
    assert_proof_refused(&invoke(&world, &[("Authorization", &dpop_auth(&token))]).await, "no DPoP proof");
}

#[tokio::test]
async fn two_dpop_headers_are_401_invalid_dpop_proof() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&world.client);
    let (a, b) = (world.client.proof("GET", URL, &token), world.client.proof("GET", URL, &token));
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &a), ("DPoP", &b)]).await;
    assert_proof_refused(&outcome, "several DPoP proofs");
}

#[tokio::test]
async fn oversized_proof_is_401_invalid_dpop_proof() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&world.client);
    let huge = "a".repeat(9000);
    assert_proof_refused(
        &invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &huge)]).await,
        "oversized proof",
    );
}

#[tokio::test]
async fn garbage_proof_is_401_invalid_dpop_proof() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&world.client);
    for garbage in ["not-a-jwt", "a.b.c", "e30.e30.e30", "\u{1F600}"] {
        let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", garbage)]).await;
        assert_eq!(outcome.status, 401, "{garbage}");
        assert_eq!(outcome.challenge.as_deref(), Some(INVALID_PROOF), "{garbage}");
        assert!(!outcome.body.contains(garbage));
    }
}

#[tokio::test]
async fn proof_typ_other_than_dpop_jwt_is_refused() {
    refused_for("proof typ is not dpop+jwt", |_, header, _| header["typ"] = json!("JWT")).await;
}

#[tokio::test]
async fn proof_alg_none_is_refused() {
    refused_for("proof algorithm not allowed", |_, header, _| header["alg"] = json!("none")).await;
}

#[tokio::test]
async fn proof_alg_hs256_is_refused() {
    refused_for("proof algorithm not allowed", |_, header, _| header["alg"] = json!("HS256")).await;
}

#[tokio::test]
async fn proof_alg_not_in_dpop_algorithms_is_refused() {
    let world = World::start(HostMode::Invocation, |c| {
        dpop_config(c);
        c.dpop.algorithms = vec![Algorithm::ES256];
    })
    .await;
    let client = DpopClient::rs256();
    let token = world.bound_token(&client);
    let outcome =
        invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &client.proof("GET", URL, &token))]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(r#"DPoP algs="ES256", error="invalid_dpop_proof", error_description="The DPoP proof is invalid""#)
    );
    assert_eq!(outcome.reason, "proof algorithm not allowed");
}

#[tokio::test]
async fn proof_jwk_with_private_members_is_refused() {
    refused_for("private key in proof", |_, header, _| header["jwk"]["d"] = json!("c2VjcmV0LWtleS1tYXRlcmlhbA")).await;
}

#[tokio::test]
async fn proof_without_jwk_is_refused() {
    refused_for("bad proof key", |_, header, _| {
        header.as_object_mut().unwrap().remove("jwk");
    })
    .await;
}

#[tokio::test]
async fn proof_jwk_of_another_key_type_than_alg_is_refused() {
    refused_for("bad proof key", |_, header, _| header["jwk"] = DpopClient::rs256().jwk).await;
}

#[tokio::test]
async fn proof_signed_by_another_key_than_its_jwk_is_refused() {
    // The header names the client's key; the signature is by another one.
    refused_for("bad proof signature", |_, header, _| header["jwk"] = DpopClient::ec("ec-p256-b.pem").jwk).await;
}

#[tokio::test]
async fn proof_htm_other_than_the_method_is_refused() {
    refused_for("proof htm mismatch", |_, _, claims| claims["htm"] = json!("POST")).await;
}

#[tokio::test]
async fn proof_htu_for_another_path_is_refused() {
    refused_for("proof htu mismatch", |_, _, claims| claims["htu"] = json!(format!("{ORIGIN}/api/other"))).await;
}

#[tokio::test]
async fn proof_htu_for_another_origin_is_refused_even_if_the_host_header_names_it() {
    let world = World::start(HostMode::Forwarding, dpop_config).await;
    let token = world.bound_token(&world.client);
    let evil = "https://evil.example/api/api-a";
    let proof = world.client.proof("GET", evil, &token);
    let outcome =
        forward(&world, &[("host", "evil.example"), ("authorization", &dpop_auth(&token)), ("dpop", &proof)]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.challenge.as_deref(), Some(INVALID_PROOF));
    assert_eq!(outcome.body, PROOF_BODY);
}

#[tokio::test]
async fn proof_htu_is_compared_after_normalisation_and_without_query() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&world.client);
    for htu in [
        "HTTPS://My-App.AzureWebsites.net:443/api/api-a",
        "https://my-app.azurewebsites.net/api/%61pi-a",
        "https://my-app.azurewebsites.net/api/api-a?code=k&x=1#frag",
    ] {
        let proof = world.client.proof("GET", htu, &token);
        let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await;
        assert_allowed(&outcome);
    }
}

#[tokio::test]
async fn proof_htu_with_http_scheme_is_refused() {
    refused_for("proof htu mismatch", |_, _, claims| {
        claims["htu"] = json!("http://my-app.azurewebsites.net/api/api-a")
    })
    .await;
}

#[tokio::test]
async fn proof_older_than_max_age_is_refused() {
    refused_for("proof too old", |_, _, claims| claims["iat"] = json!(now() - 301)).await;
}

#[tokio::test]
async fn proof_from_beyond_the_clock_skew_is_refused() {
    refused_for("proof issued in the future", |_, _, claims| claims["iat"] = json!(now() + 31)).await;
}

#[tokio::test]
async fn proof_ath_of_another_token_is_refused() {
    refused_for("proof ath mismatch", |_, _, claims| {
        claims["ath"] = json!(URL_SAFE_NO_PAD.encode(digest(&SHA256, b"another token")));
    })
    .await;
}

#[tokio::test]
async fn proof_without_ath_is_refused() {
    refused_for("proof ath mismatch", |_, _, claims| {
        claims.as_object_mut().unwrap().remove("ath");
    })
    .await;
}

#[tokio::test]
async fn proof_without_jti_is_refused() {
    refused_for("malformed proof", |_, _, claims| {
        claims.as_object_mut().unwrap().remove("jti");
    })
    .await;
}

#[tokio::test]
async fn replayed_proof_is_401_invalid_dpop_proof() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&world.client);
    let proof = world.client.proof("GET", URL, &token);
    let headers = [("Authorization", dpop_auth(&token)), ("DPoP", proof)];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_allowed(&invoke(&world, &headers).await);
    assert_proof_refused(&invoke(&world, &headers).await, "proof replayed");
    assert_eq!(world.state.auth.remembered_proofs(), 1);
}

#[tokio::test]
async fn full_replay_cache_is_503_with_retry_after_rather_than_forgetting_a_live_proof() {
    let world = World::start(HostMode::Forwarding, |c| {
        dpop_config(c);
        c.dpop.replay_entries = 1;
    })
    .await;
    let token = world.bound_token(&world.client);
    let auth = dpop_auth(&token);
    let first = world.client.proof("GET", URL, &token);
    assert_allowed(&forward(&world, &[("authorization", &auth), ("dpop", &first)]).await);
    let second = world.client.proof("GET", URL, &token);
    let outcome = forward(&world, &[("authorization", &auth), ("dpop", &second)]).await;
    assert_eq!(outcome.status, 503);
    assert_eq!(outcome.challenge, None);
    assert_eq!(outcome.retry_after.as_deref(), Some("1"));
    assert_eq!(outcome.body, "Too many requests are being checked; retry later");
    assert_eq!(world.state.auth.remembered_proofs(), 1);
    // The remembered proof is still refused as a replay, not forgotten.
    assert_eq!(forward(&world, &[("authorization", &auth), ("dpop", &first)]).await.status, 401);
}

#[tokio::test]
async fn verified_token_cache_never_skips_the_proof_checks() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let token = world.bound_token(&world.client);
    let auth = dpop_auth(&token);
    assert_allowed(
        &invoke(&world, &[("Authorization", &auth), ("DPoP", &world.client.proof("GET", URL, &token))]).await,
    );
    assert_eq!(world.state.auth.cached_tokens(), 1);
    // Same (now cached) token: a proof for another method, then none at all.
    let wrong = world.client.proof("POST", URL, &token);
    assert_proof_refused(&invoke(&world, &[("Authorization", &auth), ("DPoP", &wrong)]).await, "proof htm mismatch");
    assert_proof_refused(&invoke(&world, &[("Authorization", &auth)]).await, "no DPoP proof");
    // And a proof by another key never passes the binding.
    let other = DpopClient::ec("ec-p256-b.pem").proof("GET", URL, &token);
    let outcome = invoke(&world, &[("Authorization", &auth), ("DPoP", &other)]).await;
    assert_eq!((outcome.status, outcome.reason.as_str()), (401, "token bound to another DPoP key"));
}

// ---------------------------------------------------------------------------------------
// Server nonces.

fn with_nonces(config: &mut AuthConfig) {
    dpop_config(config);
    config.dpop.nonce_secret = Some(NonceSecret(NONCE_SECRET.as_bytes().to_vec()));
}

#[tokio::test]
async fn nonce_round_trip_use_dpop_nonce_then_200_with_the_next_nonce() {
    let world = World::start(HostMode::Invocation, with_nonces).await;
    let token = world.bound_token(&world.client);
    let auth = dpop_auth(&token);
    let first = invoke(&world, &[("Authorization", &auth), ("DPoP", &world.client.proof("GET", URL, &token))]).await;
    assert_eq!(first.status, 401);
    assert_eq!(
        first.challenge.as_deref(),
        Some(
            r#"DPoP algs="ES256 RS256 PS256 EdDSA Ed25519", error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
        )
    );
    assert_eq!(first.body, "Resource server requires nonce in DPoP proof");
    let nonce = first.nonce.expect("DPoP-Nonce on use_dpop_nonce");

    let mut claims = world.client.claims("GET", URL, &token);
    claims["nonce"] = json!(nonce);
    let second =
        invoke(&world, &[("Authorization", &auth), ("DPoP", &world.client.sign(&world.client.header(), &claims))])
            .await;
    assert_allowed(&second);
    assert!(second.nonce.is_some(), "successful DPoP answers carry the next nonce");
}

#[tokio::test]
async fn stale_nonce_is_401_use_dpop_nonce_with_a_fresh_one() {
    let world = World::start(HostMode::Invocation, with_nonces).await;
    let token = world.bound_token(&world.client);
    // Issued with the same secret ten minutes ago: another instance's, long expired.
    let stale = Nonces::new(NONCE_SECRET.as_bytes()).issue(now() - 600);
    let mut claims = world.client.claims("GET", URL, &token);
    claims["nonce"] = json!(stale);
    let proof = world.client.sign(&world.client.header(), &claims);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await;
    assert_eq!(outcome.status, 401);
    assert!(outcome.challenge.unwrap().contains(r#"error="use_dpop_nonce""#));
    assert_eq!(outcome.reason, "DPoP nonce missing or stale");
    assert_ne!(outcome.nonce.as_deref(), Some(stale.as_str()));
    assert!(outcome.nonce.is_some());
}

#[tokio::test]
async fn nonce_from_another_instance_with_the_same_secret_is_accepted() {
    let world = World::start(HostMode::Invocation, with_nonces).await;
    let token = world.bound_token(&world.client);
    let mut claims = world.client.claims("GET", URL, &token);
    claims["nonce"] = json!(Nonces::new(NONCE_SECRET.as_bytes()).issue(now()));
    let proof = world.client.sign(&world.client.header(), &claims);
    assert_allowed(&invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await);
}

#[tokio::test]
async fn nonce_made_with_another_secret_is_401_use_dpop_nonce() {
    let world = World::start(HostMode::Invocation, with_nonces).await;
    let token = world.bound_token(&world.client);
    let mut claims = world.client.claims("GET", URL, &token);
    claims["nonce"] = json!(Nonces::new(b"another-secret-another-secret-xx").issue(now()));
    let proof = world.client.sign(&world.client.header(), &claims);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await;
    assert_eq!((outcome.status, outcome.reason.as_str()), (401, "DPoP nonce missing or stale"));
}

// ---------------------------------------------------------------------------------------
// Challenges and modes.

#[tokio::test]
async fn no_credentials_with_dpop_allowed_gets_both_challenges() {
    let world = World::start(HostMode::Invocation, dpop_config).await;
    let outcome = invoke(&world, &[]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(r#"Bearer realm="api", DPoP algs="ES256 RS256 PS256 EdDSA Ed25519""#)
    );
    assert_eq!(outcome.body, "No authorization token was found");
}

#[tokio::test]
async fn no_credentials_with_dpop_off_gets_the_bearer_challenge_only() {
    let world = World::start(HostMode::Invocation, |c| {
        dpop_config(c);
        c.dpop.mode = DpopMode::Off;
    })
    .await;
    let outcome = invoke(&world, &[]).await;
    assert_eq!(outcome.challenge.as_deref(), Some(r#"Bearer realm="api""#));
}

#[tokio::test]
async fn no_credentials_without_public_url_gets_the_bearer_challenge_only() {
    let world = World::start(HostMode::Invocation, |_| {}).await;
    let outcome = invoke(&world, &[]).await;
    assert_eq!(outcome.challenge.as_deref(), Some(r#"Bearer realm="api""#));
}

#[tokio::test]
async fn dpop_scheme_without_public_url_gets_the_plain_challenge_and_a_clear_body() {
    // RFC 6750 §3.1: DPoP is an unsupported scheme here, so no error code in the challenge.
    let world = World::start(HostMode::Invocation, |_| {}).await;
    let token = world.bound_token(&world.client);
    let proof = world.client.proof("GET", URL, &token);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.challenge.as_deref(), Some(r#"Bearer realm="api""#));
    assert_eq!(outcome.body, "This function does not accept DPoP; use Authorization: Bearer");
    assert_eq!(outcome.reason, "DPoP scheme while DPoP is not enabled");
}

#[tokio::test]
async fn required_globally_refuses_bearer_with_a_dpop_challenge() {
    let world = World::start(HostMode::Invocation, |c| {
        dpop_config(c);
        c.dpop.mode = DpopMode::Required;
    })
    .await;
    let outcome = invoke(&world, &[("Authorization", &format!("Bearer {}", world.token(None)))]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(
            r#"DPoP algs="ES256 RS256 PS256 EdDSA Ed25519", error="invalid_token", error_description="This function requires a DPoP-bound access token""#
        )
    );
    assert_eq!(outcome.body, "This function requires a DPoP-bound access token");
    assert_eq!(invoke(&world, &[]).await.challenge.as_deref(), Some(r#"DPoP algs="ES256 RS256 PS256 EdDSA Ed25519""#));
}

#[tokio::test]
async fn required_function_challenges_with_dpop_only_and_accepts_dpop() {
    let world = World::with_policy(HostMode::Invocation, Some(json!({"dpop": "required"})), dpop_config).await;
    let outcome = invoke(&world, &[]).await;
    assert_eq!(
        (outcome.status, outcome.challenge.as_deref()),
        (401, Some(r#"DPoP algs="ES256 RS256 PS256 EdDSA Ed25519""#))
    );
    let bearer = invoke(&world, &[("Authorization", &format!("Bearer {}", world.token(None)))]).await;
    assert_eq!((bearer.status, bearer.reason.as_str()), (401, "bearer token where DPoP is required"));
    let token = world.bound_token(&world.client);
    let proof = world.client.proof("GET", URL, &token);
    assert_allowed(&invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await);
}

#[tokio::test]
async fn off_function_refuses_the_dpop_scheme_while_allowed_globally() {
    let world = World::with_policy(HostMode::Invocation, Some(json!({"dpop": "off"})), dpop_config).await;
    assert_eq!(invoke(&world, &[]).await.challenge.as_deref(), Some(r#"Bearer realm="api""#));
    let token = world.bound_token(&world.client);
    let proof = world.client.proof("GET", URL, &token);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await;
    assert_eq!((outcome.status, outcome.reason.as_str()), (401, "DPoP scheme while DPoP is not enabled"));
}

#[tokio::test]
async fn allowed_function_accepts_bearer_while_required_globally() {
    let world = World::with_policy(HostMode::Invocation, Some(json!({"dpop": "allowed"})), |c| {
        dpop_config(c);
        c.dpop.mode = DpopMode::Required;
    })
    .await;
    assert_allowed(&invoke(&world, &[("Authorization", &format!("Bearer {}", world.token(None)))]).await);
}

#[tokio::test]
async fn required_function_without_public_url_is_a_start_up_error() {
    let idp = Idp::start(&[]).await;
    let error = build(&idp.issuer, HostMode::Invocation, "api", Some(json!({"dpop": "required"})), |_| {}).unwrap_err();
    assert!(matches!(error, UnknownFunction::DpopWithoutPublicUrl { .. }));
    assert!(error.to_string().contains("AUTH_PUBLIC_URL"), "{error}");
}

#[tokio::test]
async fn insufficient_scope_over_dpop_is_403_with_a_dpop_challenge() {
    let world =
        World::with_policy(HostMode::Invocation, Some(json!({"scopes": {"all": ["write:a"]}})), dpop_config).await;
    let token = world.bound_token(&world.client);
    let proof = world.client.proof("GET", URL, &token);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&token)), ("DPoP", &proof)]).await;
    assert_eq!(outcome.status, 403);
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(
            r#"DPoP algs="ES256 RS256 PS256 EdDSA Ed25519", error="insufficient_scope", error_description="The access token does not grant access to this function", scope="write:a""#
        )
    );
}

#[tokio::test]
async fn custom_route_prefix_is_part_of_htu() {
    let signing = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&signing]).await;
    let router = app(build(&idp.issuer, HostMode::Invocation, "v1", None, dpop_config).unwrap());
    let client = DpopClient::es256();
    let mut claims = claims(&idp.issuer);
    claims["cnf"] = json!({"jkt": client.jkt()});
    let token = token(&signing, &claims);
    let url = format!("{ORIGIN}/v1/api-a");
    let good = client.proof("GET", &url, &token);
    let outcome = invoke_as(&router, "GET", &url, &[("Authorization", &dpop_auth(&token)), ("DPoP", &good)]).await;
    assert_allowed(&outcome);
    let old = client.proof("GET", URL, &token);
    let outcome = invoke_as(&router, "GET", &url, &[("Authorization", &dpop_auth(&token)), ("DPoP", &old)]).await;
    assert_eq!((outcome.status, outcome.reason.as_str()), (401, "proof htu mismatch"));
}

// ---------------------------------------------------------------------------------------
// Certificate-bound tokens (RFC 8705).

fn certificate_der() -> Vec<u8> {
    let pem = fixture("rsa-a-cert.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn x5t_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, der))
}

fn with_cert_header(config: &mut AuthConfig) {
    config.client_cert_header = Some(http::HeaderName::from_static("x-arr-clientcert"));
}

#[tokio::test]
async fn certificate_bound_token_with_the_bound_certificate_is_200() {
    let world = World::start(HostMode::Invocation, with_cert_header).await;
    let der = certificate_der();
    let token = world.token(Some(json!({"x5t#S256": x5t_s256(&der)})));
    let cert = STANDARD.encode(&der);
    let outcome = invoke(&world, &[("Authorization", &format!("Bearer {token}")), ("X-ARR-ClientCert", &cert)]).await;
    assert_allowed(&outcome);
}

#[tokio::test]
async fn certificate_bound_token_with_another_certificate_is_401_invalid_token() {
    let world = World::start(HostMode::Invocation, with_cert_header).await;
    let token = world.token(Some(json!({"x5t#S256": x5t_s256(&certificate_der())})));
    let other = STANDARD.encode(b"another certificate");
    let outcome = invoke(&world, &[("Authorization", &format!("Bearer {token}")), ("X-ARR-ClientCert", &other)]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.challenge.as_deref(), Some(BEARER_INVALID_TOKEN));
    assert_eq!(outcome.reason, "client certificate missing or not the bound one");
}

#[tokio::test]
async fn certificate_bound_token_without_the_certificate_header_is_401_invalid_token() {
    let world = World::start(HostMode::Invocation, with_cert_header).await;
    let token = world.token(Some(json!({"x5t#S256": x5t_s256(&certificate_der())})));
    let outcome = invoke(&world, &[("Authorization", &format!("Bearer {token}"))]).await;
    assert_eq!((outcome.status, outcome.reason.as_str()), (401, "client certificate missing or not the bound one"));
}

#[tokio::test]
async fn certificate_bound_token_is_refused_when_no_certificate_header_is_configured() {
    let world = World::start(HostMode::Invocation, |_| {}).await;
    let der = certificate_der();
    let token = world.token(Some(json!({"x5t#S256": x5t_s256(&der)})));
    let cert = STANDARD.encode(&der);
    let outcome = invoke(&world, &[("Authorization", &format!("Bearer {token}")), ("X-ARR-ClientCert", &cert)]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.challenge.as_deref(), Some(BEARER_INVALID_TOKEN));
    assert_eq!(outcome.reason, "sender-constrained token without proof");
}

#[tokio::test]
async fn token_bound_to_key_and_certificate_needs_both() {
    let world = World::start(HostMode::Invocation, |c| {
        dpop_config(c);
        with_cert_header(c);
    })
    .await;
    let der = certificate_der();
    let token = world.token(Some(json!({"jkt": world.client.jkt(), "x5t#S256": x5t_s256(&der)})));
    let auth = dpop_auth(&token);
    let cert = STANDARD.encode(&der);
    let proof = world.client.proof("GET", URL, &token);
    let outcome = invoke(&world, &[("Authorization", &auth), ("DPoP", &proof)]).await;
    assert_eq!((outcome.status, outcome.reason.as_str()), (401, "client certificate missing or not the bound one"));
    let proof = world.client.proof("GET", URL, &token);
    assert_allowed(&invoke(&world, &[("Authorization", &auth), ("DPoP", &proof), ("X-ARR-ClientCert", &cert)]).await);
}

// ---------------------------------------------------------------------------------------
// Round trips over real loopback TCP, in every host mode.

async fn serve_dpop(mode: HostMode) -> (Idp, TestKey, std::net::SocketAddr) {
    let signing = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&signing]).await;
    let state = build(&idp.issuer, mode, "api", None, with_nonces).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    (idp, signing, addr)
}

fn bound(idp: &Idp, signing: &TestKey, client: &DpopClient) -> String {
    let mut claims = claims(&idp.issuer);
    claims["cnf"] = json!({"jkt": client.jkt()});
    token(signing, &claims)
}

fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// A forwarded/proxied `method path` on the socket, the way the host sends it (its own
/// `Host`), with the DPoP headers.
async fn raw_forwarded(addr: std::net::SocketAddr, method: &str, token: &str, proof: &str) -> (u16, String, String) {
    let request = format!(
        "{method} /api/api-a?code=k HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: DPoP {token}\r\nDPoP: {proof}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    let (status, head, body) = raw(addr, request.into_bytes()).await;
    (status, head, String::from_utf8(body).unwrap())
}

async fn nonce_round_trip_over_loopback(mode: HostMode) {
    let (idp, signing, addr) = serve_dpop(mode).await;
    let client = DpopClient::es256();
    let token = bound(&idp, &signing, &client);
    let (status, head, body) = raw_forwarded(addr, "POST", &token, &client.proof("POST", URL, &token)).await;
    assert_eq!(status, 401, "{head}");
    assert!(header_of(&head, "www-authenticate").unwrap().contains(r#"error="use_dpop_nonce""#), "{head}");
    assert_eq!(body, "Resource server requires nonce in DPoP proof");
    let nonce = header_of(&head, "dpop-nonce").expect("nonce");

    let mut claims = client.claims("POST", URL, &token);
    claims["nonce"] = json!(nonce);
    let proof = client.sign(&client.header(), &claims);
    let (status, head, body) = raw_forwarded(addr, "POST", &token, &proof).await;
    assert_eq!((status, body.as_str()), (200, "Authentication successful"), "{head}");
    assert!(header_of(&head, "dpop-nonce").is_some(), "{head}");
    let (status, head, _) = raw_forwarded(addr, "POST", &token, &proof).await;
    assert_eq!(status, 401, "replayed over the socket");
    assert_eq!(header_of(&head, "www-authenticate").as_deref(), Some(INVALID_PROOF));
}

#[tokio::test]
async fn loopback_forwarding_dpop_nonce_round_trip_and_replay() {
    nonce_round_trip_over_loopback(HostMode::Forwarding).await;
}

#[tokio::test]
async fn loopback_proxy_dpop_nonce_round_trip_and_replay() {
    nonce_round_trip_over_loopback(HostMode::Proxy).await;
}

#[tokio::test]
async fn loopback_invocation_dpop_round_trip() {
    let (idp, signing, addr) = serve_dpop(HostMode::Invocation).await;
    let client = DpopClient::rs256();
    let token = bound(&idp, &signing, &client);
    let mut claims = client.claims("GET", URL, &token);
    claims["nonce"] = json!(Nonces::new(NONCE_SECRET.as_bytes()).issue(now()));
    let proof = client.sign(&client.header(), &claims);
    let envelope = json!({
        "Data": {"req": {
            "Url": format!("{URL}?code=k"), "Method": "GET", "Query": {"code": "k"}, "Params": {},
            "Headers": {"Authorization": [format!("DPoP {token}")], "DPoP": [proof], "Host": ["my-app.azurewebsites.net"]}
        }},
        "Metadata": {}
    })
    .to_string();
    let request = format!(
        "POST /api-a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{envelope}",
        envelope.len()
    );
    let (status, head, body) = raw(addr, request.into_bytes()).await;
    assert_eq!(status, 200, "{head}");
    let result: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(result["Outputs"]["res"]["statusCode"], 200, "{result}");
    assert_eq!(result["Outputs"]["res"]["body"], "Authentication successful");
    assert!(result["Outputs"]["res"]["headers"]["dpop-nonce"].is_string(), "{result}");
    assert!(!result.to_string().contains(&token), "the token leaked into the result");
}

// ---------------------------------------------------------------------------------------
// Step-up (RFC 9470) for a DPoP caller.

#[tokio::test]
async fn step_up_demand_to_a_dpop_caller_is_a_dpop_challenge_with_acr_values_and_max_age() {
    let policy = json!({"acrValues": ["mfa"], "maxAge": 300});
    let world = World::with_policy(HostMode::Invocation, Some(policy), dpop_config).await;
    let mut weak = claims(&world.idp.issuer);
    weak["cnf"] = json!({"jkt": world.client.jkt()});
    weak["acr"] = json!("pwd");
    weak["auth_time"] = json!(now() - 10);
    let weak_token = token(&world.signing, &weak);
    let proof = world.client.proof("GET", URL, &weak_token);
    let outcome = invoke(&world, &[("Authorization", &dpop_auth(&weak_token)), ("DPoP", &proof)]).await;
    assert_eq!(outcome.status, 401, "{outcome:?}");
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(concat!(
            r#"DPoP algs="ES256 RS256 PS256 EdDSA Ed25519", error="insufficient_user_authentication", "#,
            r#"error_description="A stronger or more recent authentication is required", "#,
            r#"acr_values="mfa", max_age="300""#
        ))
    );
    assert_eq!(outcome.reason, "acr not accepted");

    // The same caller after a stronger login: a fresh proof, and the function answers.
    weak["acr"] = json!("mfa");
    let strong = token(&world.signing, &weak);
    let proof = world.client.proof("GET", URL, &strong);
    assert_allowed(&invoke(&world, &[("Authorization", &dpop_auth(&strong)), ("DPoP", &proof)]).await);
}
