//! End to end: the real `handler` binary against a real local OpenID Connect provider process
//! (`scripts/oidc-provider`, oauth2-mock-server playing Auth0), tokens fetched over HTTP from
//! its `POST /oauth/token` exactly as a client gets them from Auth0.
//!
//! Needs `node` (>= 20.19) and, on first run, `npm` (runs `npm ci` for scripts/oidc-provider).
//! Everything listens on 127.0.0.1 with ephemeral ports; every process started here is
//! killed and reaped when its guard drops, also when a check panics.

// Helpers outside #[test] fns: failing loudly is what a test wants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

#[path = "common/provider.rs"]
mod provider;

use provider::{Proc, Provider, ProviderOptions, free_port, repo_root};

const AUDIENCE: &str = "https://api-a.local/";
const OTHER_AUDIENCE: &str = "https://other-api.local/";
const CLIENT_ID: &str = "e2e-client";
const CLIENT_SECRET: &str = "e2e-secret";
const FUNCTION_PATH: &str = "/api/api-a";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh directory for one test's process logs (removed when the test passes).
fn log_dir(name: &str) -> PathBuf {
    provider::log_dir("e2e", name)
}

/// The local OIDC provider (installed here with `npm ci` on first use), for both audiences.
fn start_provider(logs: &Path) -> Provider {
    provider::ensure_provider_installed();
    Provider::start(
        logs,
        ProviderOptions {
            client_id: CLIENT_ID,
            client_secret: CLIENT_SECRET,
            audiences: &[AUDIENCE, OTHER_AUDIENCE],
            allow_test_ttl: false,
            startup_timeout: STARTUP_TIMEOUT,
            http: client(),
        },
    )
}

/// The handler binary, started the way the Functions host starts it.
struct Handler {
    proc: Proc,
    base: String,
}

impl Handler {
    async fn start(issuer: &str, logs: &Path) -> Handler {
        Self::start_with(issuer, logs, |_| Vec::new()).await
    }

    /// Like [`Handler::start`], with more settings (given the port it will listen on).
    async fn start_with(issuer: &str, logs: &Path, extra: impl FnOnce(u16) -> Vec<(&'static str, String)>) -> Handler {
        let port = free_port();
        let log = logs.join("handler.log");
        let out = std::fs::File::create(&log).expect("create handler log");
        let err = out.try_clone().expect("clone log handle");
        let mut command = Command::new(env!("CARGO_BIN_EXE_handler"));
        // A clean environment: nothing from the developer's shell (AUTH0_DOMAIN, proxies...).
        command.env_clear();
        if let Ok(filter) = std::env::var("RUST_LOG") {
            command.env("RUST_LOG", filter);
        }
        command
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
            .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", "00000000-0000-4000-8000-0000000000e2")
            .env("FUNCTIONS_APP_ROOT_PATH", repo_root())
            .env("AUTH_ISSUER", issuer)
            // Hermetic: no key set snapshot from an earlier run (tests/binary.rs tests them).
            .env("AUTH_JWKS_SNAPSHOT_DIR", "off")
            .env("AUTH_AUDIENCE", AUDIENCE)
            .envs(extra(port))
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command.spawn().expect("spawn handler");
        let mut proc = Proc::new("handler", child, log);
        let base = format!("http://127.0.0.1:{port}");
        provider::wait_ready(&mut proc, &base, &client(), STARTUP_TIMEOUT, Duration::from_millis(50)).await;
        Handler { proc, base }
    }

    fn function_url(&self) -> String {
        format!("{}{FUNCTION_PATH}", self.base)
    }
}

fn client() -> reqwest::Client {
    provider::http_client(Duration::from_secs(10))
}

/// Client credentials, as against Auth0's `POST /oauth/token` (JSON body).
async fn fetch_token(provider: &Provider, audience: &str) -> String {
    let parsed = provider.token_response(audience, None, None).await;
    assert_eq!(parsed["token_type"], "Bearer", "{parsed}");
    parsed["access_token"].as_str().expect("access_token").to_owned()
}

fn b64url_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

fn b64url_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Same header and signature, payload changed.
fn tamper(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact token");
    let mut payload: Value = serde_json::from_slice(&b64url_decode(parts[1])).expect("payload JSON");
    payload["sub"] = json!("attacker@clients");
    format!("{}.{}.{}", parts[0], b64url_encode(payload.to_string().as_bytes()), parts[2])
}

struct Answer {
    status: u16,
    www_authenticate: String,
    retry_after: Option<String>,
    body: String,
}

async fn call(handler: &Handler, method: reqwest::Method, authorization: Option<&str>) -> Answer {
    let mut request = client().request(method, handler.function_url());
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.expect("request to the handler");
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned());
    let www_authenticate = header("www-authenticate").unwrap_or_default();
    let retry_after = header("retry-after");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Answer { status, www_authenticate, retry_after, body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_tokens_from_a_local_oidc_provider() {
    let logs = log_dir("provider");
    let provider = start_provider(&logs);
    assert!(provider.issuer.starts_with("http://127.0.0.1:") && provider.issuer.ends_with('/'));
    let handler = Handler::start(&provider.issuer, &logs).await;
    let token = fetch_token(&provider, AUDIENCE).await;

    // Auth0's claim shape, as the provider issues it.
    let claims: Value =
        serde_json::from_slice(&b64url_decode(token.split('.').nth(1).expect("payload"))).expect("claims");
    let header: Value =
        serde_json::from_slice(&b64url_decode(token.split('.').next().expect("header"))).expect("header");
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string(), "{header}");
    assert_eq!(claims["iss"], json!(provider.issuer));
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["sub"], format!("{CLIENT_ID}@clients"));
    assert_eq!(claims["azp"], CLIENT_ID);
    assert_eq!(claims["gty"], "client-credentials");
    assert!(claims["exp"].is_u64() && claims["iat"].is_u64(), "{claims}");

    // A valid token: 200, GET and POST.
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let a = call(&handler, method.clone(), Some(&format!("Bearer {token}"))).await;
        assert_eq!((a.status, a.body.as_str()), (200, "Authentication successful"), "{method} with a valid token");
    }

    // No token: 401, a Bearer challenge with a realm and no error code.
    let a = call(&handler, reqwest::Method::GET, None).await;
    assert_eq!(a.status, 401, "no token: {}", a.body);
    assert!(a.body.contains("No authorization token was found"), "no token: body {:?}", a.body);
    assert!(a.www_authenticate.starts_with("Bearer realm="), "no token: {:?}", a.www_authenticate);
    assert!(!a.www_authenticate.contains("error="), "no token: {:?}", a.www_authenticate);

    // Tampered payload, original signature: 401 invalid_token.
    let a = call(&handler, reqwest::Method::GET, Some(&format!("Bearer {}", tamper(&token)))).await;
    assert_eq!(a.status, 401, "tampered token: {}", a.body);
    assert!(a.www_authenticate.contains(r#"error="invalid_token""#), "tampered: {:?}", a.www_authenticate);

    // A genuine token from the same provider, issued for another API: 401 invalid_token.
    let other = fetch_token(&provider, OTHER_AUDIENCE).await;
    let a = call(&handler, reqwest::Method::GET, Some(&format!("Bearer {other}"))).await;
    assert_eq!(a.status, 401, "token for another audience: {}", a.body);
    assert!(a.www_authenticate.contains(r#"error="invalid_token""#), "other aud: {:?}", a.www_authenticate);

    // Malformed Authorization headers: 400 invalid_request.
    for value in ["Bearer", "Bearer ", "Bearer a b"] {
        let a = call(&handler, reqwest::Method::GET, Some(value)).await;
        assert_eq!(a.status, 400, "Authorization: {value:?}: {}", a.body);
        assert!(a.www_authenticate.contains(r#"error="invalid_request""#), "{value:?}: {:?}", a.www_authenticate);
    }

    // Still alive, and the valid token still works after all of that.
    let a = call(&handler, reqwest::Method::GET, Some(&format!("Bearer {token}"))).await;
    assert_eq!(a.status, 200, "valid token again");
    drop(handler);
    drop(provider);
    let _ = std::fs::remove_dir_all(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_gone_before_any_keys_gives_503() {
    let logs = log_dir("gone");
    // A real token from a provider that is then stopped: its port is closed from here on.
    let provider = start_provider(&logs);
    let issuer = provider.issuer.clone();
    let token = fetch_token(&provider, AUDIENCE).await;
    drop(provider);

    let mut handler = Handler::start(&issuer, &logs).await;
    let a = call(&handler, reqwest::Method::GET, Some(&format!("Bearer {token}"))).await;
    assert_eq!(a.status, 503, "no signing keys obtainable: {}", a.body);
    let retry_after = a.retry_after.unwrap_or_default();
    assert!(
        !retry_after.is_empty() && retry_after.bytes().all(|b| b.is_ascii_digit()),
        "503 needs Retry-After in seconds, got {retry_after:?}"
    );
    assert!(handler.proc.exited().is_none(), "the handler must stay up without keys");
    drop(handler);
    let _ = std::fs::remove_dir_all(&logs);
}

/// An ES256 DPoP client: its public JWK, the RFC 7638 thumbprint (computed here) and proofs.
struct DpopKey {
    key: jsonwebtoken::EncodingKey,
    jwk: Value,
}

impl DpopKey {
    fn load() -> Self {
        let pem = std::fs::read(repo_root().join("tests/fixtures/ec-p256.pem")).expect("fixture");
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).expect("EC key");
        let full = serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256).expect("jwk"),
        )
        .expect("jwk JSON");
        let jwk = json!({"kty": full["kty"], "crv": full["crv"], "x": full["x"], "y": full["y"]});
        Self { key, jwk }
    }

    fn thumbprint(&self) -> String {
        use aws_lc_rs::digest::{SHA256, digest};
        b64url_encode(digest(&SHA256, self.jwk.to_string().as_bytes()).as_ref())
    }

    fn proof(&self, method: &str, url: &str, token: Option<&str>, nonce: Option<&str>) -> String {
        use aws_lc_rs::digest::{SHA256, digest};
        static N: AtomicUsize = AtomicUsize::new(0);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let mut claims = json!({
            "jti": format!("e2e-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)),
            "htm": method, "htu": url, "iat": now,
        });
        if let Some(token) = token {
            claims["ath"] = json!(b64url_encode(digest(&SHA256, token.as_bytes()).as_ref()));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let message = format!(
            "{}.{}",
            b64url_encode(header.to_string().as_bytes()),
            b64url_encode(claims.to_string().as_bytes())
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.key, jsonwebtoken::Algorithm::ES256).expect("sign");
        format!("{message}.{signature}")
    }
}

struct DpopAnswer {
    status: u16,
    www_authenticate: String,
    nonce: Option<String>,
    body: String,
}

async fn call_dpop(handler: &Handler, authorization: Option<&str>, proof: Option<&str>) -> DpopAnswer {
    let mut request = client().get(handler.function_url());
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let response = request.send().await.expect("request to the handler");
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned());
    let (www_authenticate, nonce) = (header("www-authenticate").unwrap_or_default(), header("dpop-nonce"));
    let status = response.status().as_u16();
    DpopAnswer { status, www_authenticate, nonce, body: response.text().await.unwrap_or_default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_tokens_from_a_local_oidc_provider() {
    let logs = log_dir("dpop");
    let provider = start_provider(&logs);
    let handler = Handler::start_with(&provider.issuer, &logs, |port| {
        vec![
            ("AUTH_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            ("AUTH_DPOP_NONCE_SECRET", "e2e-nonce-secret-0123456789abcdefghij".to_owned()),
        ]
    })
    .await;
    let key = DpopKey::load();

    // The token request carries a proof; the provider binds the token to that key, as Auth0 does.
    let proof = key.proof("POST", &provider.token_endpoint, None, None);
    let parsed = provider.token_response(AUDIENCE, None, Some(&proof)).await;
    assert_eq!(parsed["token_type"], "DPoP", "{parsed}");
    let token = parsed["access_token"].as_str().expect("access_token").to_owned();
    let claims: Value =
        serde_json::from_slice(&b64url_decode(token.split('.').nth(1).expect("payload"))).expect("claims");
    // Three implementations agree on the thumbprint: the provider's (node:crypto), this test's,
    // and (below) the handler's, which accepts the binding.
    assert_eq!(claims["cnf"]["jkt"], json!(key.thumbprint()), "{claims}");

    // No credentials: both challenges (DPoP is allowed by default once AUTH_PUBLIC_URL is set).
    let a = call_dpop(&handler, None, None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.www_authenticate, r#"Bearer realm="api", DPoP algs="ES256 RS256 PS256 EdDSA Ed25519""#);
    assert!(a.nonce.is_some(), "a DPoP challenge carries a nonce when nonces are on");

    // The bound token as a plain bearer token: refused (no downgrade).
    let a = call_dpop(&handler, Some(&format!("Bearer {token}")), None).await;
    assert_eq!((a.status, a.body.as_str()), (401, "The access token is invalid"));
    assert!(a.www_authenticate.starts_with(r#"Bearer realm="api", error="invalid_token""#), "{}", a.www_authenticate);

    // DPoP without a nonce: use_dpop_nonce with one; with it: 200 and the next nonce.
    let url = handler.function_url();
    let authorization = format!("DPoP {token}");
    let a = call_dpop(&handler, Some(&authorization), Some(&key.proof("GET", &url, Some(&token), None))).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.www_authenticate.contains(r#"error="use_dpop_nonce""#), "{}", a.www_authenticate);
    let nonce = a.nonce.expect("DPoP-Nonce");
    let proof = key.proof("GET", &url, Some(&token), Some(&nonce));
    let a = call_dpop(&handler, Some(&authorization), Some(&proof)).await;
    assert_eq!((a.status, a.body.as_str()), (200, "Authentication successful"), "{}", a.www_authenticate);
    assert!(a.nonce.is_some(), "the next nonce");

    // The same proof again: replay.
    let a = call_dpop(&handler, Some(&authorization), Some(&proof)).await;
    assert_eq!(a.status, 401);
    assert!(a.www_authenticate.contains(r#"error="invalid_dpop_proof""#), "{}", a.www_authenticate);
    drop(handler);
    drop(provider);
    let _ = std::fs::remove_dir_all(&logs);
}
