//! Shared test helpers: keys from `tests/fixtures`, tokens signed at test time relative to
//! now, a real identity provider (discovery + JWKS) on 127.0.0.1:0 with hit counters and
//! switchable failures, and the app under test.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use azfn_auth::app::{AppState, app};
use azfn_auth::auth::Authenticator;
use azfn_auth::config::{AuthConfig, KeySource};
use azfn_auth::layout::{AppLayout, FunctionSpec, HostMode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, Method, Request, StatusCode};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const AUDIENCE: &str = "https://api-a.example.com";

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A signing key with its public JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

pub fn rsa_key(file: &str, kid: &str) -> TestKey {
    let encoding = EncodingKey::from_rsa_pem(fixture(file).as_bytes()).unwrap();
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    jwk.as_object_mut().unwrap().remove("alg");
    TestKey { kid: kid.into(), alg: Algorithm::RS256, encoding, jwk }
}

pub fn ec_key(kid: &str) -> TestKey {
    let encoding = EncodingKey::from_ec_pem(fixture("ec-p256.pem").as_bytes()).unwrap();
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    TestKey { kid: kid.into(), alg: Algorithm::ES256, encoding, jwk }
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Signs `header.claims` exactly as given (no defaults added), with `alg` and `key`.
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// An RS256 token with `kid`, signed by `key`.
pub fn token(key: &TestKey, claims: &Value) -> String {
    let alg = format!("{:?}", key.alg);
    sign_raw(&json!({"alg": alg, "typ": "JWT", "kid": key.kid}), claims, &key.encoding, key.alg)
}

/// Auth0-shaped access token claims, valid for ten minutes from now.
pub fn claims(issuer: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "sub": "test-client@clients",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "azp": "test-client",
        "scope": "read:a",
        "gty": "client-credentials"
    })
}

/// How the fake identity provider answers key set requests.
#[derive(Clone, Debug, PartialEq)]
pub enum IdpMode {
    Up,
    Status(u16),
    Html,
    Truncated,
    Huge,
    Redirect(String),
    /// Discovery names another issuer.
    WrongIssuer,
}

struct IdpState {
    issuer: String,
    keys: Mutex<Vec<Value>>,
    mode: Mutex<IdpMode>,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    other_hits: AtomicUsize,
}

/// A real OIDC discovery + JWKS server on 127.0.0.1:0.
pub struct Idp {
    pub issuer: String,
    state: Arc<IdpState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn discovery(State(s): State<Arc<IdpState>>) -> Response {
    s.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let mode = s.mode.lock().unwrap().clone();
    let issuer = if mode == IdpMode::WrongIssuer { "https://evil.example/".to_owned() } else { s.issuer.clone() };
    axum::Json(json!({"issuer": issuer, "jwks_uri": format!("{}jwks", s.issuer)})).into_response()
}

async fn jwks(State(s): State<Arc<IdpState>>) -> Response {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mode = s.mode.lock().unwrap().clone();
    match mode {
        IdpMode::Up | IdpMode::WrongIssuer => {
            axum::Json(json!({"keys": s.keys.lock().unwrap().clone()})).into_response()
        }
        IdpMode::Status(code) => (StatusCode::from_u16(code).unwrap(), "down").into_response(),
        IdpMode::Html => ([("content-type", "text/html")], "<html><body>Login</body></html>").into_response(),
        IdpMode::Truncated => {
            let full = json!({"keys": s.keys.lock().unwrap().clone()}).to_string();
            ([("content-type", "application/json")], full[..full.len() / 2].to_owned()).into_response()
        }
        IdpMode::Huge => ([("content-type", "application/json")], " ".repeat(10 * 1024 * 1024)).into_response(),
        IdpMode::Redirect(to) => (StatusCode::FOUND, [("location", to)]).into_response(),
    }
}

async fn other(State(s): State<Arc<IdpState>>) -> StatusCode {
    s.other_hits.fetch_add(1, Ordering::SeqCst);
    StatusCode::NOT_FOUND
}

impl Idp {
    pub async fn start(keys: &[&TestKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}/", listener.local_addr().unwrap());
        let state = Arc::new(IdpState {
            issuer: issuer.clone(),
            keys: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            mode: Mutex::new(IdpMode::Up),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
            other_hits: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .fallback(other)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { issuer, state, task }
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn set_raw_keys(&self, keys: Vec<Value>) {
        *self.state.keys.lock().unwrap() = keys;
    }

    pub fn set_mode(&self, mode: IdpMode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    pub fn other_hits(&self) -> usize {
        self.state.other_hits.load(Ordering::SeqCst)
    }
}

/// An http:// URL on a loopback port nothing listens on.
pub async fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/")
}

pub fn auth_config(issuer: &str) -> AuthConfig {
    let mut config = AuthConfig::new(issuer, KeySource::Discovery, vec![AUDIENCE.to_owned()]);
    config.jwks.http_timeout = Duration::from_secs(5);
    config
}

pub fn api_a(methods: Option<Vec<Method>>) -> FunctionSpec {
    FunctionSpec::http("api-a", "api-a", methods).unwrap()
}

pub fn layout(mode: HostMode, prefix: &str) -> AppLayout {
    AppLayout { route_prefix: prefix.into(), mode, functions: vec![api_a(Some(vec![Method::GET, Method::POST]))] }
}

pub fn state(config: AuthConfig, layout: AppLayout) -> Arc<AppState> {
    Arc::new(AppState::new(Authenticator::new(&config).unwrap(), layout, 1024 * 1024).unwrap())
}

/// The app in forwarding mode with default route prefix.
pub fn forwarding_app(config: AuthConfig) -> (Router, Arc<AppState>) {
    let state = state(config, layout(HostMode::Forwarding, "api"));
    (app(state.clone()), state)
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn challenge(&self) -> Option<&str> {
        self.header("www-authenticate")
    }
}

pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Answer { status, headers, body: String::from_utf8(body.to_vec()).unwrap() }
}

/// `GET /api/api-a` with the given Authorization header values.
pub async fn get_api_a(router: &Router, authorization: &[&str]) -> Answer {
    let mut request = Request::get("/api/api-a");
    for value in authorization {
        request = request.header("authorization", *value);
    }
    send(router, request.body(Body::empty()).unwrap()).await
}

pub async fn with_token(router: &Router, token: &str) -> Answer {
    get_api_a(router, &[&format!("Bearer {token}")]).await
}

pub fn assert_invalid_token(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "body: {}", answer.body);
    let challenge = answer.challenge().expect("challenge");
    assert!(challenge.starts_with(r#"Bearer realm="api", error="invalid_token""#), "{challenge}");
}

pub fn assert_ok(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "body: {} challenge: {:?}", answer.body, answer.challenge());
    assert_eq!(answer.body, "Authentication successful");
}

/// Serves the app for `mode`/`prefix` on 127.0.0.1:0 (a real TCP listener).
pub async fn serve(issuer: &str, mode: HostMode, prefix: &str) -> std::net::SocketAddr {
    let state = state(auth_config(issuer), layout(mode, prefix));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    addr
}

/// Sends raw bytes, reads to EOF (bounded), returns (status, head, body); status 0 when the
/// server closed the connection without an answer.
pub fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    split_response(&response)
}

/// [`raw_exchange`] from async code, off the runtime's threads so an in-process server
/// keeps running.
pub async fn raw(addr: std::net::SocketAddr, request: Vec<u8>) -> (u16, String, Vec<u8>) {
    tokio::task::spawn_blocking(move || raw_exchange(addr, &request)).await.unwrap()
}

pub fn split_response(response: &[u8]) -> (u16, String, Vec<u8>) {
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, String::from_utf8_lossy(response).into_owned(), Vec::new());
    };
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = response[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

pub fn dechunk(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = input.windows(2).position(|w| w == b"\r\n") {
        let Ok(size) = usize::from_str_radix(String::from_utf8_lossy(&input[..line_end]).trim(), 16) else { break };
        input = &input[line_end + 2..];
        if size == 0 || input.len() < size {
            break;
        }
        out.extend_from_slice(&input[..size]);
        input = &input[(size + 2).min(input.len())..];
    }
    out
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Copies an app root's JSON files (host.json, each folder's function.json and auth.json)
/// from `from` into `to`, for a test that edits its own copy.
pub fn copy_app_root(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_app_root(&entry.path(), &target);
        } else if entry.path().extension().is_some_and(|e| e == "json") {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
