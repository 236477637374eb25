//! Streaming through a function, over real TCP as the host's proxy (and forwarding) mode
//! calls the handler: the request body reaches the handler as it is sent and the answer
//! reaches the caller as it is written, each step waiting on the other (no sleeps); limits
//! (`maxBodyBytes` in `auth.json`) are enforced while streaming; refused requests are
//! answered without reading the body; tower services serve functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use azfn_auth::app::{AppState, app};
use azfn_auth::auth::{Authenticator, Claims};
use azfn_auth::functions::Functions;
use azfn_auth::layout::AppLayout;
use azfn_auth::route::RouteValues;
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// `HANDLER_MAX_BODY_BYTES` for these tests: small, so per-function limits above it show.
const DEFAULT_LIMIT: usize = 1024;
/// `maxBodyBytes` of the functions that read bodies.
const FUNCTION_LIMIT: usize = 64 * 1024;
/// Every read waits at most this long: a bound on a broken test, never a pause.
const BOUND: Duration = Duration::from_secs(10);

struct Root(PathBuf);

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn function(root: &Path, name: &str, route: &str, methods: &[&str], policy: Option<Value>) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let doc = json!({"bindings": [
        {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": methods, "route": route},
        {"type": "http", "direction": "out", "name": "res"}
    ]});
    std::fs::write(dir.join("function.json"), doc.to_string()).unwrap();
    if let Some(policy) = policy {
        std::fs::write(dir.join("auth.json"), policy.to_string()).unwrap();
    }
}

/// An app root with the test functions, the host in `section` mode (`customHandler` keys).
fn root(tag: &str, section: Value) -> Root {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("azfn-streaming-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let host = json!({"version": "2.0", "customHandler": section});
    std::fs::write(dir.join("host.json"), host.to_string()).unwrap();
    let limit = Some(json!({"maxBodyBytes": FUNCTION_LIMIT}));
    function(&dir, "echo", "echo", &["post"], limit.clone());
    function(&dir, "count", "count", &["post"], limit.clone());
    function(&dir, "buffer", "buffer", &["post"], limit);
    function(&dir, "small", "small", &["post"], None);
    function(&dir, "events", "events", &["get"], Some(json!({"scopes": {"all": ["read:a"]}})));
    function(&dir, "service", "service/{name}", &["get"], None);
    function(&dir, "tree", "tree/{*rest}", &["get", "post"], None);
    Root(dir)
}

fn proxy() -> Value {
    json!({"description": {"defaultExecutablePath": "handler"}, "enableProxyingHttpRequest": true})
}

/// The SSE source the `events` function reads: the test writes, the caller receives.
type Events = Arc<Mutex<Option<mpsc::UnboundedReceiver<String>>>>;

/// Answers each body frame with a line `<length>\n`, as it arrives.
async fn echo(request: Request) -> Response {
    let lines = request.into_body().into_data_stream().map(|frame| match frame {
        Ok(bytes) => Ok::<_, Infallible>(Bytes::from(format!("{}\n", bytes.len()))),
        Err(_) => Ok(Bytes::from_static(b"error\n")),
    });
    ([("content-type", "text/plain")], Body::from_stream(lines)).into_response()
}

/// Counts the body as it streams, answering 500 on a read error (what a careless handler
/// does): the library must still answer 413 when the error was the limit.
async fn count(request: Request) -> Response {
    let mut stream = request.into_body().into_data_stream();
    let mut total = 0;
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(bytes) => total += bytes.len(),
            Err(_) => return (http::StatusCode::INTERNAL_SERVER_ERROR, "read failed").into_response(),
        }
    }
    total.to_string().into_response()
}

/// The usual axum way: the whole body as `Bytes`.
async fn buffer(body: Bytes) -> String {
    body.len().to_string()
}

/// Server-Sent Events from the test's channel, one event per message, as it comes.
async fn events(State(source): State<Events>) -> Response {
    let receiver = source.lock().unwrap().take().expect("one events call per test");
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let message = receiver.recv().await?;
        Some((Ok::<_, Infallible>(Bytes::from(format!("data: {message}\n\n"))), receiver))
    });
    ([("content-type", "text/event-stream"), ("cache-control", "no-cache")], Body::from_stream(events)).into_response()
}

fn functions(source: Events) -> Functions {
    // A bare tower service: it finds the claims and route values in the extensions.
    let service = tower::service_fn(|request: Request| async move {
        let subject = request.extensions().get::<Arc<Claims>>().and_then(|c| c.subject().map(str::to_owned));
        let name = request.extensions().get::<RouteValues>().and_then(|v| v.get("name").map(str::to_owned));
        Ok::<_, Infallible>(format!(
            "service: sub={} name={} path={}",
            subject.unwrap(),
            name.unwrap(),
            request.uri().path()
        ))
    });
    // A whole axum Router as one function, routed on the public path.
    let tree = axum::Router::new()
        .route("/api/tree/leaf", axum::routing::get(|| async { "leaf" }))
        .route("/api/tree/upload", axum::routing::post(|body: Bytes| async move { format!("{} bytes", body.len()) }));
    Functions::new()
        .function("echo", echo)
        .function("count", count)
        .function("buffer", buffer)
        .function("small", buffer)
        .function("events", events)
        .with_state(source)
        .service("service", service)
        .service("tree", tree)
}

struct Served {
    addr: SocketAddr,
    token: String,
    events: mpsc::UnboundedSender<String>,
    _idp: Idp,
    _root: Root,
}

async fn serve(section: Value) -> Served {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = root("app", section);
    let layout = AppLayout::load(&root.0).unwrap();
    let (sender, receiver) = mpsc::unbounded_channel();
    let source: Events = Arc::new(Mutex::new(Some(receiver)));
    let auth = Authenticator::new(&auth_config(&idp.issuer)).unwrap();
    let state = Arc::new(AppState::with_functions(auth, layout, functions(source), DEFAULT_LIMIT).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    let token = token(&key, &claims(&idp.issuer));
    Served { addr, token, events: sender, _idp: idp, _root: root }
}

/// One HTTP/1.1 connection driven byte by byte.
struct Conn {
    stream: TcpStream,
    seen: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self { stream, seen: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// One chunk of a chunked request body.
    async fn chunk(&mut self, data: &[u8]) {
        let framed = [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat();
        self.send(&framed).await;
    }

    /// Reads until everything received so far contains `needle`.
    async fn until(&mut self, needle: &str) -> String {
        let found = |seen: &[u8]| seen.windows(needle.len()).any(|w| w == needle.as_bytes());
        let mut buffer = [0u8; 16 * 1024];
        while !found(&self.seen) {
            let n = tokio::time::timeout(BOUND, self.stream.read(&mut buffer))
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&self.seen)))
                .unwrap();
            assert!(n > 0, "closed before {needle:?}: {:?}", String::from_utf8_lossy(&self.seen));
            self.seen.extend_from_slice(&buffer[..n]);
        }
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Reads until the server closes the connection.
    async fn closed(&mut self) -> String {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match tokio::time::timeout(BOUND, self.stream.read(&mut buffer)).await.expect("the server kept it open") {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&self.seen).into_owned(),
                Ok(n) => self.seen.extend_from_slice(&buffer[..n]),
            }
        }
    }
}

fn post_head(path: &str, token: Option<&str>, framing: &str) -> Vec<u8> {
    let authorization = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    format!("POST {path} HTTP/1.1\r\nHost: my-app.azurewebsites.net\r\n{authorization}{framing}\r\n").into_bytes()
}

const CHUNKED: &str = "Transfer-Encoding: chunked\r\n";

#[tokio::test]
async fn the_request_body_reaches_the_handler_as_sent_and_its_answer_comes_back_as_written() {
    let app = serve(proxy()).await;
    let mut conn = Conn::open(app.addr).await;
    conn.send(&post_head("/api/echo", Some(&app.token), CHUNKED)).await;
    // Each frame is answered before the next is sent: neither side buffers.
    conn.chunk(&[b'a'; 3]).await;
    let head = conn.until("\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    conn.until("\r\n3\n\r\n").await;
    conn.chunk(&[b'b'; 5000]).await;
    conn.until("5000\n").await;
    conn.chunk(&[b'c'; 7]).await;
    conn.until("\r\n7\n\r\n").await;
    conn.send(b"0\r\n\r\n").await;
    let all = conn.until("\r\n0\r\n\r\n").await;
    assert!(!all.contains("error"), "{all}");
}

#[tokio::test]
async fn server_sent_events_reach_the_caller_one_by_one() {
    let app = serve(proxy()).await;
    let mut conn = Conn::open(app.addr).await;
    let request = format!("GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", app.token);
    conn.send(request.as_bytes()).await;
    // The head goes out before any event exists.
    let head = conn.until("\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
    for event in ["first", "second", "third"] {
        app.events.send(event.to_owned()).unwrap();
        conn.until(&format!("data: {event}\n\n")).await;
    }
    drop(app.events);
    conn.until("\r\n0\r\n\r\n").await;
}

#[tokio::test]
async fn a_function_limit_above_the_default_lets_larger_bodies_through() {
    let app = serve(proxy()).await;
    let body = vec![b'x'; 10 * 1024];
    for path in ["/api/count", "/api/buffer"] {
        let mut conn = Conn::open(app.addr).await;
        conn.send(&post_head(path, Some(&app.token), &format!("Content-Length: {}\r\n", body.len()))).await;
        conn.send(&body).await;
        let answer = conn.until("10240").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
    }
    // Without maxBodyBytes, HANDLER_MAX_BODY_BYTES (1 KiB here) applies.
    let mut conn = Conn::open(app.addr).await;
    conn.send(&post_head("/api/small", Some(&app.token), &format!("Content-Length: {}\r\n", body.len()))).await;
    let answer = conn.closed().await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_before_a_byte_is_sent() {
    let app = serve(proxy()).await;
    let mut conn = Conn::open(app.addr).await;
    let length = format!("Content-Length: {}\r\n", FUNCTION_LIMIT + 1);
    conn.send(&post_head("/api/count", Some(&app.token), &length)).await;
    // No body byte is sent: the answer cannot have waited for one.
    let answer = conn.closed().await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_413_whatever_the_handler_answered() {
    let app = serve(proxy()).await;
    // `count` answers 500 on the read error, `buffer` is axum's own Bytes extractor.
    for path in ["/api/count", "/api/buffer"] {
        let mut conn = Conn::open(app.addr).await;
        conn.send(&post_head(path, Some(&app.token), CHUNKED)).await;
        let chunk = vec![b'x'; 16 * 1024];
        let mut answer = String::new();
        // Chunks go until the handler's answer arrives; it comes right after the limit.
        for sent in 1..=8 {
            if conn
                .stream
                .write_all(&[format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat())
                .await
                .is_err()
            {
                break;
            }
            if sent * chunk.len() > FUNCTION_LIMIT {
                answer = conn.closed().await;
                break;
            }
        }
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{path}: {answer}");
    }
}

#[tokio::test]
async fn a_refused_caller_is_answered_without_the_body_being_read() {
    let app = serve(proxy()).await;
    // A 1 GB upload declared, nothing sent: 401 at once, then the connection ends (hyper
    // closes it rather than read a body nobody wants).
    let mut conn = Conn::open(app.addr).await;
    conn.send(&post_head("/api/count", None, "Content-Length: 1000000000\r\n")).await;
    let answer = conn.closed().await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("WWW-Authenticate: Bearer") || answer.contains("www-authenticate: Bearer"), "{answer}");

    // A small refused body that already arrived is drained: the connection stays usable,
    // as the host's pooled connections expect.
    let mut conn = Conn::open(app.addr).await;
    let mut request = post_head("/api/count", None, "Content-Length: 5\r\n");
    request.extend_from_slice(b"hello");
    conn.send(&request).await;
    conn.until("No authorization token was found").await;
    conn.send(b"GET /api/nowhere HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let both = conn.until("HTTP/1.1 404").await;
    assert!(both.starts_with("HTTP/1.1 401"), "{both}");
}

#[tokio::test]
async fn forwarding_mode_streams_the_body_to_the_handler_too() {
    let app = serve(json!({"enableForwardingHttpRequest": true})).await;
    let mut conn = Conn::open(app.addr).await;
    // The host forwards bodies with a Content-Length only (PROTOCOL.md §3).
    conn.send(&post_head("/api/echo", Some(&app.token), "Content-Length: 6\r\n")).await;
    conn.send(b"abc").await;
    conn.until("\r\n3\n\r\n").await;
    conn.send(b"def").await;
    conn.until("\r\n0\r\n\r\n").await;
}

#[tokio::test]
async fn a_tower_service_serves_a_function_behind_the_token_check() {
    let app = serve(proxy()).await;
    let get = |path: &str, token: Option<&str>| {
        let authorization = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{authorization}Connection: close\r\n\r\n").into_bytes()
    };
    let (status, _, body) = raw(app.addr, get("/api/service/widgets", Some(&app.token))).await;
    let body = String::from_utf8(body).unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "service: sub=test-client@clients name=widgets path=/api/service/widgets")
    );
    let (status, head, _) = raw(app.addr, get("/api/service/widgets", None)).await;
    assert_eq!(status, 401, "{head}");

    // An axum Router: its own routes, 404 for what it does not route, bodies streamed to it.
    let (status, _, body) = raw(app.addr, get("/api/tree/leaf", Some(&app.token))).await;
    assert_eq!((status, body.as_slice()), (200, b"leaf".as_slice()));
    let (status, _, _) = raw(app.addr, get("/api/tree/other", Some(&app.token))).await;
    assert_eq!(status, 404);
    let (status, _, _) = raw(app.addr, get("/api/tree/leaf", None)).await;
    assert_eq!(status, 401);
    let mut upload = post_head("/api/tree/upload", Some(&app.token), "Content-Length: 4\r\nConnection: close\r\n");
    upload.extend_from_slice(b"abcd");
    let (status, _, body) = raw(app.addr, upload).await;
    assert_eq!((status, body.as_slice()), (200, b"4 bytes".as_slice()));
}

#[tokio::test]
async fn an_envelope_is_held_under_the_function_limit() {
    let app = serve(json!({})).await;
    let envelope = |size: usize| {
        json!({
            "Data": {"req": {
                "Url": "https://my-app.azurewebsites.net/api/buffer",
                "Method": "POST",
                "Query": {},
                "Headers": {"Authorization": [format!("Bearer {}", app.token)], "Content-Type": ["text/plain"]},
                "Params": {},
                "Body": "x".repeat(size),
            }},
            "Metadata": {}
        })
        .to_string()
    };
    for (size, expected) in [(FUNCTION_LIMIT, 200), (FUNCTION_LIMIT + 1, 413)] {
        let body = envelope(size);
        let request = [
            format!("POST /buffer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes(),
            body.into_bytes(),
        ]
        .concat();
        let (status, _, answer) = raw(app.addr, request).await;
        assert_eq!(status, 200);
        let result: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(result["Outputs"]["res"]["statusCode"], expected, "{size}: {result}");
    }
}
