//! Fault and abuse tests the other suites do not cover: floods against the key server,
//! recovery through the background refresher, odd key sets, insecure discovery answers,
//! oversized and hostile invocation envelopes, non-UTF-8 header bytes, and the memory bound
//! of the verified-token cache. Real loopback servers (and the built binary where memory is
//! measured), no sleeps: waits are bounded polls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use azfn_auth::app::app;
use azfn_auth::layout::HostMode;
use azfn_auth::protocol::invocation::{EnvelopeError, to_http_request};
use common::*;
use http::{HeaderValue, Request, StatusCode};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

const DAY: Duration = Duration::from_secs(86_400);

/// Retries `check` every 20 ms until it returns true or `limit` passes (then fails `what`).
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A token whose header and signature are junk but whose `kid` and `iss` are as given:
/// enough to reach the key lookup, never enough to verify.
fn unsigned_token(kid: &str, issuer: &str) -> String {
    format!("{}.{}.c2lnbmF0dXJl", b64(&json!({"alg": "RS256", "kid": kid})), b64(&claims(issuer)))
}

/// `token` without a `kid` in the header.
fn token_without_kid(key: &TestKey, claims: &Value) -> String {
    sign_raw(&json!({"alg": "RS256", "typ": "JWT"}), claims, &key.encoding, Algorithm::RS256)
}

/// `token` signed by `key` but naming `kid`.
fn token_naming(key: &TestKey, kid: &str, claims: &Value) -> String {
    sign_raw(&json!({"alg": "RS256", "kid": kid}), claims, &key.encoding, Algorithm::RS256)
}

// ---- floods against the key server ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kid_flood_of_ten_thousand_requests_costs_the_key_server_one_fetch() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    let mut tasks = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let (router, t) = (router.clone(), unsigned_token(&format!("random-{i}"), &idp.issuer));
        tasks.push(tokio::spawn(async move { with_token(&router, &t).await }));
    }
    for task in tasks {
        assert_invalid_token(&task.await.unwrap());
    }
    assert_eq!(idp.jwks_hits(), 1, "random kids within one cooldown must share one fetch");
    assert_eq!(idp.discovery_hits(), 1);
    assert_ok(&with_token(&router, &token(&key, &claims(&idp.issuer))).await);
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test]
async fn tokens_naming_an_unknown_issuer_never_reach_the_key_server() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    for i in 0..1_000 {
        let issuer = format!("https://attacker-{i}.example/");
        assert_invalid_token(&with_token(&router, &unsigned_token("key-a", &issuer)).await);
    }
    assert_eq!(idp.jwks_hits() + idp.discovery_hits() + idp.other_hits(), 0);
}

// ---- recovery through the background refresher ----

#[tokio::test]
async fn key_set_down_at_start_recovers_through_the_background_refresher() {
    let a = rsa_key("rsa-a.pem", "key-a");
    let b = rsa_key("rsa-b.pem", "key-b");
    let idp = Idp::start(&[&a]).await;
    idp.set_mode(IdpMode::Status(503));
    let mut config = auth_config(&idp.issuer);
    // A day of cooldown: after the first attempt, requests can never fetch keys themselves,
    // so every change below can only come from the background refresher.
    config.jwks.refresh = Duration::from_millis(50);
    config.jwks.cooldown = DAY;
    config.jwks.max_stale = DAY;
    let state = state(config, layout(HostMode::Forwarding, "api"));
    let router = app(state.clone());
    state.auth.spawn_refreshers();

    let limit = Duration::from_secs(10);
    eventually(limit, "two failed background fetches", || async { idp.jwks_hits() >= 2 }).await;
    let answer = with_token(&router, &token(&a, &claims(&idp.issuer))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.body);
    assert!(answer.header("retry-after").is_some());

    idp.set_mode(IdpMode::Up);
    let t = token(&a, &claims(&idp.issuer));
    eventually(limit, "200 once the key server is back", || async {
        with_token(&router, &t).await.status == StatusCode::OK
    })
    .await;

    // Rotation to a new key, also picked up in the background; the old key's token
    // (verified and cached above) stops working at the same refresh.
    idp.set_keys(&[&b]);
    let new = token(&b, &claims(&idp.issuer));
    eventually(limit, "the rotated key to be accepted", || async {
        with_token(&router, &new).await.status == StatusCode::OK
    })
    .await;
    assert_invalid_token(&with_token(&router, &t).await);
}

// ---- odd key sets ----

#[tokio::test]
async fn a_key_without_kid_next_to_keyed_keys_is_never_guessed() {
    let a = rsa_key("rsa-a.pem", "key-a");
    let b = rsa_key("rsa-b.pem", "key-b");
    let idp = Idp::start(&[]).await;
    let mut b_no_kid = b.jwk.clone();
    b_no_kid.as_object_mut().unwrap().remove("kid");
    idp.set_raw_keys(vec![a.jwk.clone(), b_no_kid]);
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    let c = claims(&idp.issuer);

    assert_ok(&with_token(&router, &token(&a, &c)).await);
    // Two keys: a token without kid matches neither, whichever key signed it.
    assert_invalid_token(&with_token(&router, &token_without_kid(&b, &c)).await);
    assert_invalid_token(&with_token(&router, &token_without_kid(&a, &c)).await);
    // A kid that names no key does not fall back to the anonymous key.
    assert_invalid_token(&with_token(&router, &token_naming(&b, "key-b", &c)).await);
    assert_invalid_token(&with_token(&router, &token_naming(&b, "key-a", &c)).await);
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test]
async fn with_duplicate_kids_only_the_first_key_verifies() {
    let a = rsa_key("rsa-a.pem", "dup");
    let b = rsa_key("rsa-b.pem", "dup");
    for (first, second) in [(&a, &b), (&b, &a)] {
        let idp = Idp::start(&[first, second]).await;
        let (router, _) = forwarding_app(auth_config(&idp.issuer));
        let c = claims(&idp.issuer);
        assert_ok(&with_token(&router, &token(first, &c)).await);
        assert_invalid_token(&with_token(&router, &token(second, &c)).await);
        // A bad signature under a known kid is no reason to refetch.
        assert_eq!(idp.jwks_hits(), 1);
    }
}

#[tokio::test]
async fn jwks_keys_for_encryption_are_ignored() {
    let a = rsa_key("rsa-a.pem", "key-a");
    let b = rsa_key("rsa-b.pem", "key-b");
    let mut a_enc = a.jwk.clone();
    a_enc["use"] = json!("enc");

    let idp = Idp::start(&[]).await;
    idp.set_raw_keys(vec![a_enc.clone(), b.jwk.clone()]);
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    assert_invalid_token(&with_token(&router, &token(&a, &claims(&idp.issuer))).await);
    assert_ok(&with_token(&router, &token(&b, &claims(&idp.issuer))).await);

    // The same kid on an encryption key and a signing key: only the signing key counts.
    let mut b_same_kid = b.jwk.clone();
    b_same_kid["kid"] = json!("key-a");
    let idp = Idp::start(&[]).await;
    idp.set_raw_keys(vec![a_enc.clone(), b_same_kid]);
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    assert_invalid_token(&with_token(&router, &token(&a, &claims(&idp.issuer))).await);
    assert_ok(&with_token(&router, &token_naming(&b, "key-a", &claims(&idp.issuer))).await);

    // Only encryption keys: no usable key at all, so no token can be checked.
    let idp = Idp::start(&[]).await;
    idp.set_raw_keys(vec![a_enc]);
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    let answer = with_token(&router, &token(&a, &claims(&idp.issuer))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
}

// ---- discovery naming an insecure key set ----

/// A discovery server whose document names `jwks_uri` (with `{keys}` replaced by its own key
/// set URL), counting key set requests.
struct Discovery {
    issuer: String,
    jwks_hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Discovery {
    async fn start(jwks_uri: &str, keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}/");
        let document = json!({"issuer": issuer, "jwks_uri": jwks_uri.replace("{addr}", &addr.to_string())});
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let hits = jwks_hits.clone();
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(move || async move { axum::Json(document) }))
            .route(
                "/jwks",
                get(move || async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"keys": keys}))
                }),
            );
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { issuer, jwks_hits, task }
    }
}

#[tokio::test]
async fn discovered_jwks_uri_must_be_https_or_loopback_http() {
    let key = rsa_key("rsa-a.pem", "key-a");
    // Control: loopback http is accepted (tests and local issuers).
    let good = Discovery::start("http://{addr}/jwks", vec![key.jwk.clone()]).await;
    let (router, _) = forwarding_app(auth_config(&good.issuer));
    assert_ok(&with_token(&router, &token(&key, &claims(&good.issuer))).await);
    assert_eq!(good.jwks_hits.load(Ordering::SeqCst), 1);

    // Refused before any connection is made: plain http on a non-loopback host (a reserved
    // name, so nothing could answer even if it were tried), credentials in the URL, other
    // schemes, and a name that merely starts with "localhost".
    for jwks_uri in [
        "http://keys.invalid/jwks",
        "http://user:secret@{addr}/jwks",
        "http://localhost.invalid/jwks",
        "ftp://{addr}/jwks",
        "file:///etc/passwd",
        "jwks",
    ] {
        let idp = Discovery::start(jwks_uri, vec![key.jwk.clone()]).await;
        let (router, _) = forwarding_app(auth_config(&idp.issuer));
        let answer = with_token(&router, &token(&key, &claims(&idp.issuer))).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{jwks_uri}: {}", answer.body);
        assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 0, "{jwks_uri}");
    }
}

// ---- non-UTF-8 and obs-text header bytes ----

async fn get_with_raw_headers(router: &Router, headers: &[(&str, &[u8])]) -> Answer {
    let mut request = Request::get("/api/api-a");
    for (name, value) in headers {
        request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    send(router, request.body(Body::empty()).unwrap()).await
}

fn assert_invalid_request(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    let challenge = answer.challenge().expect("challenge");
    assert!(challenge.starts_with(r#"Bearer realm="api", error="invalid_request""#), "{challenge}");
}

#[tokio::test]
async fn obs_text_in_the_authorization_header_is_invalid_request() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    let t = token(&key, &claims(&idp.issuer));

    assert_invalid_request(&get_with_raw_headers(&router, &[("authorization", b"Bearer \xff\xfe\xfd")]).await);
    let trailing = [format!("Bearer {t}").as_bytes(), b"\xe9"].concat();
    assert_invalid_request(&get_with_raw_headers(&router, &[("authorization", &trailing)]).await);
    let inside = format!("Bearer {t}").replacen('.', "\u{e9}", 1);
    assert_invalid_request(&get_with_raw_headers(&router, &[("authorization", inside.as_bytes())]).await);
    // Another scheme spelled with obs-text is simply no bearer token.
    let answer = get_with_raw_headers(&router, &[("authorization", b"B\xe9arer abc")]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), Some(r#"Bearer realm="api""#));
    // obs-text in other headers does not disturb a valid token.
    let auth = format!("Bearer {t}");
    let answer = get_with_raw_headers(
        &router,
        &[("authorization", auth.as_bytes()), ("x-client-name", b"caf\xe9 \x80\xff"), ("user-agent", b"\xc3\x28")],
    )
    .await;
    assert_ok(&answer);
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_text_header_bytes_over_tcp_are_answered_and_the_server_keeps_serving() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let addr = serve(&idp.issuer, HostMode::Forwarding, "api").await;
    let t = token(&key, &claims(&idp.issuer));
    let exchange = move |auth: Vec<u8>, extra: &'static [u8]| {
        let mut request = b"GET /api/api-a HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ".to_vec();
        request.extend_from_slice(&auth);
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(extra);
        request.extend_from_slice(b"Connection: close\r\n\r\n");
        tokio::task::spawn_blocking(move || raw_exchange(addr, &request))
    };
    let (status, head, _) = exchange(b"Bearer \xff\xfe".to_vec(), b"").await.unwrap();
    assert_eq!(status, 400, "{head}");
    assert!(head.contains(r#"error="invalid_request""#), "{head}");
    let (status, _, body) = exchange(format!("Bearer {t}").into_bytes(), b"X-Name: \xe9t\xe9\r\n").await.unwrap();
    assert_eq!((status, body.as_slice()), (200, b"Authentication successful".as_slice()));
}

fn invocation_post(envelope: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /api-a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        envelope.len()
    )
    .into_bytes();
    request.extend_from_slice(envelope);
    request
}

fn envelope_with_authorization(authorization: Value) -> Value {
    let mut envelope: Value = serde_json::from_str(&fixture("invocation/http-get.json")).unwrap();
    envelope["Data"]["req"]["Headers"]["Authorization"] = authorization;
    envelope
}

/// Posts an envelope and returns the function's answer from `Outputs.res`.
async fn invoke_raw(addr: SocketAddr, envelope: Vec<u8>) -> Value {
    let (status, head, body) =
        tokio::task::spawn_blocking(move || raw_exchange(addr, &invocation_post(&envelope))).await.unwrap();
    assert_eq!(status, 200, "the host needs a 2xx JSON answer: {head}");
    let result: Value = serde_json::from_slice(&body).unwrap();
    result["Outputs"]["res"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_header_values_inside_an_envelope_are_answered_400_in_the_envelope() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let addr = serve(&idp.issuer, HostMode::Invocation, "api").await;

    let invalid_request = |res: &Value| {
        assert_eq!(res["statusCode"], 400, "{res}");
        let challenge = res["headers"]["www-authenticate"].as_str().unwrap_or_default();
        assert!(challenge.contains(r#"error="invalid_request""#), "{res}");
    };
    // Non-ASCII (UTF-8, so obs-text on the wire) in the token: a malformed Authorization header.
    invalid_request(&invoke_raw(addr, envelope_with_authorization(json!(["Bearer é.ü.ß"])).to_string().into()).await);
    // Control characters and line breaks cannot become header values: a malformed envelope,
    // never a smuggled second header.
    for hostile in [json!(["Bearer a\r\nX-Injected: 1"]), json!(["Bearer a\u{0}b"]), json!(["Bearer a\nb"])] {
        let res = invoke_raw(addr, envelope_with_authorization(hostile.clone()).to_string().into()).await;
        assert_eq!(res["statusCode"], 400, "{hostile}: {res}");
        assert_eq!(res["body"], "Malformed invocation request");
    }
    // Invalid UTF-8 inside a JSON string, and an escaped lone surrogate: not JSON.
    let text = envelope_with_authorization(json!(["Bearer PLACEHOLDER"])).to_string();
    let invalid_utf8 = text.replace("PLACEHOLDER", "\u{1}").into_bytes();
    let invalid_utf8: Vec<u8> = invalid_utf8.into_iter().map(|b| if b == 1 { 0xff } else { b }).collect();
    let res = invoke_raw(addr, invalid_utf8).await;
    assert_eq!(res["body"], "Malformed invocation request", "{res}");
    let surrogate = text.replace("PLACEHOLDER", "\\ud800").into_bytes();
    assert_eq!(invoke_raw(addr, surrogate).await["body"], "Malformed invocation request");
    // The server is still there and still right.
    let t = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    assert_eq!(invoke_raw(addr, envelope_with_authorization(json!([t])).to_string().into()).await["statusCode"], 200);
}

// ---- envelopes with very many headers ----

/// An envelope whose request carries `names` distinct header names.
fn envelope_with_many_headers(names: usize) -> Vec<u8> {
    let mut headers = serde_json::Map::new();
    for i in 0..names {
        headers.insert(format!("x-{i}"), json!([""]));
    }
    json!({"Data": {"req": {"Method": "GET", "Url": "http://h/api/api-a", "Headers": headers}}, "Metadata": {}})
        .to_string()
        .into_bytes()
}

/// `http::HeaderMap::append` panics ("size overflows MAX_SIZE") once a map would need more
/// than 32,768 slots, i.e. from the 24,577th distinct header name on. The invocation parser
/// appends every name the envelope lists, so ~24.6k tiny headers (about 360 KB, well under
/// the 1 MiB envelope cap) panicked the request task: the connection was dropped without an
/// answer, which the host turns into an empty 500. Such an envelope must be a malformed one
/// (400 in the envelope) like any other.
#[test]
fn envelope_with_more_headers_than_a_header_map_holds_is_malformed_not_a_panic() {
    let envelope = envelope_with_many_headers(40_000);
    assert!(envelope.len() < 1024 * 1024, "{} bytes", envelope.len());
    let parsed = std::panic::catch_unwind(|| to_http_request("req", &envelope).map(|_| ()));
    assert_eq!(parsed.ok(), Some(Err(EnvelopeError::BadHeaders)), "must be refused as BadHeaders, not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_with_more_headers_than_a_header_map_holds_gets_an_answer() {
    let idp = Idp::start(&[]).await;
    let addr = serve(&idp.issuer, HostMode::Invocation, "api").await;
    let envelope = envelope_with_many_headers(40_000);
    let (status, head, body) =
        tokio::task::spawn_blocking(move || raw_exchange(addr, &invocation_post(&envelope))).await.unwrap();
    assert_eq!(status, 200, "no answer (connection dropped): {head}");
    let result: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(result["Outputs"]["res"]["statusCode"], 400);
}

// ---- the built binary: bounded memory ----

/// Kills the child when dropped, even if the test panics.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A throw-away app root with `api-a` in the given mode; removed when dropped.
struct AppRoot(PathBuf);

impl AppRoot {
    fn new(tag: &str, forwarding: bool) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("azfn-hardening-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(root.join("api-a")).unwrap();
        let host = json!({"version": "2.0", "customHandler": {
            "description": {"defaultExecutablePath": "handler"},
            "enableForwardingHttpRequest": forwarding
        }});
        std::fs::write(root.join("host.json"), host.to_string()).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(repo.join("api-a/function.json"), root.join("api-a/function.json")).unwrap();
        Self(root)
    }
}

impl Drop for AppRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the built handler and waits (bounded) until its readiness probe answers.
fn start_handler(root: &AppRoot, env: &[(&str, &str)]) -> (Running, SocketAddr) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_handler"))
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_APP_ROOT_PATH", &root.0)
        .env("RUST_LOG", "warn")
        .env("AUTH_JWKS_SNAPSHOT_DIR", "off")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    loop {
        let (status, _, _) = match TcpStream::connect(addr) {
            Ok(_) => raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
            Err(_) => (0, String::new(), Vec::new()),
        };
        if status == 200 {
            return (running, addr);
        }
        assert!(started.elapsed() < Duration::from_secs(20), "handler did not become ready");
        std::thread::sleep(Duration::from_millis(25));
    }
}

const MIB: usize = 1024 * 1024;

/// Streams `head` then `total` bytes of chunked body (64 KiB chunks) while reading the answer
/// on another thread. Returns the answer and how many body bytes the server let in before
/// the writes failed. Every wait is bounded by socket timeouts.
fn stream_oversized(addr: SocketAddr, head: &str, total: usize) -> ((u16, String, Vec<u8>), usize) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = stream.try_clone().unwrap();
    let read = std::thread::spawn(move || {
        let mut response = Vec::new();
        let _ = reader.read_to_end(&mut response);
        response
    });
    let mut writer = stream;
    writer.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if writer.write_all(&framed).is_err() {
            break;
        }
        sent += chunk.len();
    }
    if sent >= total {
        let _ = writer.write_all(b"0\r\n\r\n");
    }
    let response = read.join().unwrap();
    (split_response(&response), sent)
}

#[test]
fn fifty_megabyte_chunked_envelope_is_413_in_the_envelope_without_being_buffered() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = rt.block_on(Idp::start(&[&key]));
    let root = AppRoot::new("envelope", false);
    let env =
        [("AUTH_ISSUER", idp.issuer.as_str()), ("AUTH_AUDIENCE", AUDIENCE), ("HANDLER_MAX_BODY_BYTES", "1048576")];
    let (handler, addr) = start_handler(&root, &env);
    let pid = handler.0.id();
    let (_, peak_before) = memory_kib(pid);

    // An envelope that starts well-formed and then never ends: 50 MiB of body, chunked.
    let head = "POST /api-a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json; charset=utf-8\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    let ((status, head_text, body), sent) = stream_oversized(addr, head, 50 * MIB);
    assert_eq!(status, 200, "the host needs a 2xx JSON answer: {head_text}");
    assert!(head_text.to_ascii_lowercase().contains("content-type: application/json"), "{head_text}");
    let result: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(result["Outputs"]["res"]["statusCode"], 413, "{result}");
    assert!(result["Logs"][0].as_str().unwrap().contains("exceeds"), "{result}");
    assert!(sent < 50 * MIB, "the handler read the whole 50 MiB instead of stopping at its cap");

    let (_, peak_after) = memory_kib(pid);
    let grown = peak_after.saturating_sub(peak_before);
    eprintln!("50 MiB envelope: {sent} body bytes accepted before the handler closed; peak RSS +{grown} KiB");
    assert!(grown < 16 * 1024, "peak RSS grew by {grown} KiB for one oversized envelope");

    // The connection was closed, not left half-read; the handler serves the next caller.
    let t = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let envelope = envelope_with_authorization(json!([t])).to_string();
    let (status, _, body) = raw_exchange(addr, &invocation_post(envelope.as_bytes()));
    assert_eq!(status, 200);
    let result: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(result["Outputs"]["res"]["statusCode"], 200, "{result}");
}

#[test]
fn fifty_megabyte_forwarded_body_is_never_buffered() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = rt.block_on(Idp::start(&[&key]));
    let root = AppRoot::new("forwarded", true);
    let env =
        [("AUTH_ISSUER", idp.issuer.as_str()), ("AUTH_AUDIENCE", AUDIENCE), ("HANDLER_MAX_BODY_BYTES", "1048576")];
    let (handler, addr) = start_handler(&root, &env);
    let pid = handler.0.id();
    let (_, peak_before) = memory_kib(pid);
    let t = token(&key, &claims(&idp.issuer));

    // No token: refused before a byte of the body is read.
    let head = "POST /api/api-a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let ((status, head_text, _), sent) = stream_oversized(addr, head, 50 * MIB);
    assert_eq!(status, 401, "{head_text}");
    assert!(sent < 50 * MIB);
    // A valid token: the body streams to the handler, and api-a never reads it: it answers
    // at once and the rest of the upload is never taken in (tests/streaming.rs has the
    // handlers that read past their limit and get 413).
    let head = format!(
        "POST /api/api-a HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {t}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let ((status, head_text, _), sent) = stream_oversized(addr, &head, 50 * MIB);
    assert_eq!(status, 200, "{head_text}");
    assert!(sent < 50 * MIB);

    let (_, peak_after) = memory_kib(pid);
    let grown = peak_after.saturating_sub(peak_before);
    assert!(grown < 16 * 1024, "peak RSS grew by {grown} KiB for two oversized bodies");
    let request =
        format!("GET /api/api-a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_exchange(addr, request.as_bytes()).0, 200);
}

/// Minimal HTTP/1.1 keep-alive client: one request at a time, `Content-Length` answers.
struct KeepAlive {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl KeepAlive {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.set_nodelay(true).unwrap();
        Self { stream, buffer: Vec::new() }
    }

    /// Status and head + body of one `GET`.
    fn get(&mut self, path: &str, authorization: &str) -> (u16, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n\r\n");
        self.stream.write_all(request.as_bytes()).unwrap();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .expect("content-length");
                if self.buffer.len() >= end + 4 + length {
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    let text = String::from_utf8_lossy(&self.buffer[..end + 4 + length]).into_owned();
                    self.buffer.drain(..end + 4 + length);
                    return (status, text);
                }
            }
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed mid-answer");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

/// RSS growth (KiB) of a handler with `cache_entries` after `tokens` distinct valid tokens,
/// each carrying a 4 KiB claim, measured after a warm-up of 500 such tokens.
fn rss_growth_after_distinct_tokens(cache_entries: &str, tokens: usize) -> u64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = ec_key("ec-1");
    let idp = rt.block_on(Idp::start(&[&key]));
    let root = AppRoot::new("cache", true);
    let env = [
        ("AUTH_ISSUER", idp.issuer.as_str()),
        ("AUTH_AUDIENCE", AUDIENCE),
        ("AUTH_ALGORITHMS", "ES256"),
        ("AUTH_TOKEN_CACHE_ENTRIES", cache_entries),
        ("AUTH_TOKEN_CACHE_SECONDS", "3600"),
    ];
    let (handler, addr) = start_handler(&root, &env);
    let pid = handler.0.id();
    let pad = "p".repeat(4096);
    let mut client = KeepAlive::connect(addr);
    let mut send = |n: usize, from: usize| {
        for i in from..from + n {
            let mut c = claims(&idp.issuer);
            c["jti"] = json!(format!("token-{i}"));
            c["pad"] = json!(pad);
            let (status, answer) = client.get("/api/api-a", &format!("Bearer {}", token(&key, &c)));
            assert_eq!(status, 200, "{answer}");
        }
    };
    send(500, 0);
    let (warm, _) = memory_kib(pid);
    send(tokens, 500);
    let (after, _) = memory_kib(pid);
    after.saturating_sub(warm)
}

#[test]
fn thousands_of_distinct_valid_tokens_do_not_grow_the_cache_beyond_its_capacity() {
    // 4,000 tokens of ~6 KiB: remembering all of them costs well over 16 MiB (the control
    // below shows the measurement sees it); a 64-entry cache must stay flat.
    let bounded = rss_growth_after_distinct_tokens("64", 4_000);
    let unbounded = rss_growth_after_distinct_tokens("1000000", 4_000);
    eprintln!("RSS growth over 4,000 distinct tokens: 64-entry cache {bounded} KiB, unbounded {unbounded} KiB");
    assert!(unbounded > 16 * 1024, "control: an unbounded cache grew only {unbounded} KiB; the test cannot see growth");
    assert!(
        bounded < 6 * 1024,
        "a 64-entry cache grew RSS by {bounded} KiB over 4,000 tokens (unbounded: {unbounded} KiB)"
    );
}
