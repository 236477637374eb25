//! Logs that join up (issue 19), in each of the host's three modes: the host's invocation
//! id and the caller's W3C trace context on the decision line, on warnings and on the app's
//! `Logger` lines; malformed or hostile values ignored; `Logger` levels kept in `Logs` and,
//! when an invocation answers non-2xx (the host then drops `Logs`), written to stdout and
//! stderr at their level; the reasons logged for an encrypted (JWE) and an opaque token.
//! Lines are captured from the crate's own line format ([`Logfmt`]) with its stdout and
//! stderr routes kept apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use azfn_auth::app::{AppState, app};
use azfn_auth::auth::Authenticator;
use azfn_auth::correlation::{InvocationId, TraceContext, is_valid_traceparent};
use azfn_auth::extract::{Logger, Outputs};
use azfn_auth::functions::Functions;
use azfn_auth::layout::AppLayout;
use azfn_auth::telemetry::Logfmt;
use common::*;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

const GUID: &str = "0d8e3f2a-5c1b-4e7f-9a6d-2b4c8e1f3a5d";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

/// What the crate's logger wrote, stdout and stderr apart.
#[derive(Clone, Default)]
struct Captured {
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Captured {
    /// Captures this thread's lines (the tests run on a current-thread runtime) until the
    /// guard drops. One global subscriber for the whole test binary, writing to the
    /// capturing thread's buffers: with a default subscriber per thread coming and going,
    /// tracing rebuilds callsite interest as they do, and a callsite another thread
    /// registered meanwhile could stay disabled (seen: the decision line missing one run in
    /// three).
    fn start() -> (Self, CaptureGuard) {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let write = |stream: fn(&Captured) -> &Arc<Mutex<Vec<u8>>>| {
                move |line: &[u8]| {
                    CURRENT.with(|current| {
                        if let Some(captured) = &*current.borrow() {
                            stream(captured).lock().unwrap().extend_from_slice(line);
                        }
                    })
                }
            };
            let layer = Logfmt::new(write(|c| &c.out)).with_stderr(write(|c| &c.err));
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
        });
        let captured = Self::default();
        CURRENT.with(|current| *current.borrow_mut() = Some(captured.clone()));
        (captured, CaptureGuard)
    }

    fn stdout(&self) -> String {
        String::from_utf8(self.out.lock().unwrap().clone()).unwrap()
    }

    fn stderr(&self) -> String {
        String::from_utf8(self.err.lock().unwrap().clone()).unwrap()
    }

    /// The one stdout line containing `needle`.
    fn line(&self, needle: &str) -> String {
        let stdout = self.stdout();
        let lines: Vec<&str> = stdout.lines().filter(|l| l.contains(needle)).collect();
        assert_eq!(lines.len(), 1, "one line with {needle:?} in:\n{stdout}");
        lines[0].to_owned()
    }
}

thread_local! {
    /// The capture of this thread's test, if one is running.
    static CURRENT: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

/// Ends this thread's capture.
struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CURRENT.with(|current| *current.borrow_mut() = None);
    }
}

struct Root(PathBuf);

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(dir: &Path, name: &str, bindings: Value) {
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(dir.join(name).join("function.json"), json!({ "bindings": bindings }).to_string()).unwrap();
}

fn http_function(dir: &Path, name: &str) {
    let bindings = json!([
        {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": ["get", "post"], "route": name},
        {"type": "http", "direction": "out", "name": "res"}
    ]);
    write(dir, name, bindings);
}

/// An app root in the host mode `mode` (`invocation`, `forwarding` or `proxy`): HTTP
/// functions `orders`, `charge` and `strict`, timer function `nightly`.
fn root(mode: &str) -> Root {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("azfn-logs-{mode}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut section = json!({"description": {"defaultExecutablePath": "handler"}});
    match mode {
        "forwarding" => section["enableForwardingHttpRequest"] = json!(true),
        "proxy" => section["enableProxyingHttpRequest"] = json!(true),
        _ => {}
    }
    std::fs::write(dir.join("host.json"), json!({"version": "2.0", "customHandler": section}).to_string()).unwrap();
    http_function(&dir, "orders");
    http_function(&dir, "charge");
    http_function(&dir, "strict");
    write(
        &dir,
        "nightly",
        json!([{"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 0 3 * * *"}]),
    );
    Root(dir)
}

/// Logs at each level and answers with what its extractors saw.
async fn orders(logger: Logger, id: Option<InvocationId>, trace: Option<TraceContext>) -> Json<Value> {
    logger.info("listing orders");
    logger.warn("stock low");
    logger.error("warehouse offline");
    Json(json!({
        "invocation_id": id.map(|id| id.to_string()),
        "trace_id": trace.as_ref().map(|t| t.trace_id().to_owned()),
        "parent_id": trace.as_ref().map(|t| t.parent_id().to_owned()),
        "child": trace.as_ref().map(|t| t.child_traceparent().to_str().unwrap().to_owned()),
        "outgoing_tracestate": trace.as_ref().map(|t| {
            t.outgoing_headers().get_all("tracestate").iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>()
        }),
    }))
}

/// Logs, then sets an output binding its function.json does not declare: the invocation
/// fails (500 to the host), so the host would drop its `Logs`.
async fn charge(logger: Logger) -> impl IntoResponse {
    logger.info("charging card");
    logger.error("card declined");
    (Outputs::new().set("receipts", json!({"id": 1})), "charged")
}

/// Takes the invocation id as a required extractor.
async fn strict(id: InvocationId) -> String {
    id.to_string()
}

/// A timer trigger that logs and fails.
async fn nightly(logger: Logger) -> StatusCode {
    logger.info("nightly export started");
    logger.warn("export is slow");
    logger.error("export target unreachable");
    StatusCode::SERVICE_UNAVAILABLE
}

fn functions() -> Functions {
    Functions::new()
        .function("orders", orders)
        .function("charge", charge)
        .function("strict", strict)
        .function("nightly", nightly)
}

fn router(root: &Root, issuer: &str) -> Router {
    let layout = AppLayout::load(&root.0).unwrap();
    let auth = Authenticator::new(&auth_config(issuer)).unwrap();
    app(Arc::new(AppState::with_functions(auth, layout, functions(), 1 << 20).unwrap()))
}

/// A forwarded or proxied request for `/api/<function>` with `headers`.
fn direct(function: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get(format!("/api/{function}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).unwrap()
}

/// An invocation POST to `/<function>`: `host` on the host's own request, `client` in the
/// envelope's request headers.
fn invocation(function: &str, host: &[(&str, &str)], client: &[(&str, &str)]) -> Request<Body> {
    let headers: serde_json::Map<String, Value> =
        client.iter().map(|(name, value)| ((*name).to_owned(), json!([value]))).collect();
    let envelope = json!({"Data": {"req": {
        "Url": format!("https://my-app.azurewebsites.net/api/{function}"),
        "Method": "GET",
        "Query": {},
        "Headers": headers,
        "Params": {}
    }}, "Metadata": {}});
    let mut request = Request::post(format!("/{function}")).header("content-type", "application/json");
    for (name, value) in host {
        request = request.header(*name, *value);
    }
    request.body(Body::from(envelope.to_string())).unwrap()
}

/// The invocation result of an answer that must be 2xx JSON.
fn result(answer: &Answer) -> Value {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

fn ids(invocation_id: &str, trace_id: &str, parent_id: &str) -> String {
    format!("invocation_id={invocation_id} trace_id={trace_id} parent_id={parent_id}")
}

/// The handler's answer in `orders` (forwarding/proxy body, or the invocation's `res`).
fn orders_body(answer: &Answer, invocation_mode: bool) -> Value {
    if invocation_mode {
        let body = result(answer)["Outputs"]["res"]["body"].as_str().unwrap().to_owned();
        serde_json::from_str(&body).unwrap()
    } else {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        serde_json::from_str(&answer.body).unwrap()
    }
}

fn assert_extractors_saw_the_ids(body: &Value) {
    assert_eq!(body["invocation_id"], GUID, "{body}");
    assert_eq!((body["trace_id"].as_str(), body["parent_id"].as_str()), (Some(TRACE_ID), Some(PARENT_ID)));
    let child = body["child"].as_str().unwrap();
    assert!(is_valid_traceparent(child.as_bytes()), "{child}");
    assert!(child.starts_with(&format!("00-{TRACE_ID}-")) && child.ends_with("-01"), "same trace, same flags: {child}");
    assert_ne!(&child[36..52], PARENT_ID, "a new span id");
    assert_eq!(body["outgoing_tracestate"], json!([TRACESTATE]), "tracestate passed on untouched");
}

#[tokio::test]
async fn invocation_mode_takes_the_id_from_the_host_and_the_trace_from_the_client_request() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = root("invocation");
    let router = router(&root, &idp.issuer);
    let bearer = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let (captured, _guard) = Captured::start();
    let host = [("X-Azure-Functions-InvocationId", GUID)];
    // A client-sent invocation id in the envelope is the client's, never taken.
    let client = [
        ("Authorization", bearer.as_str()),
        ("traceparent", TRACEPARENT),
        ("tracestate", TRACESTATE),
        ("X-Azure-Functions-InvocationId", "forged"),
    ];
    let answer = send(&router, invocation("orders", &host, &client)).await;

    let result = result(&answer);
    assert_extractors_saw_the_ids(&orders_body(&answer, true));
    let decision = captured.line("auth decision");
    assert!(decision.contains("outcome=allowed status=200"), "{decision}");
    assert!(decision.ends_with(&ids(GUID, TRACE_ID, PARENT_ID)), "{decision}");
    // A 2xx invocation: the app's lines go to the host in Logs, levels in the text.
    let logs = &result["Logs"];
    assert_eq!(logs.as_array().unwrap().len(), 4, "{logs}");
    assert!(logs[0].as_str().unwrap().starts_with("auth decision: function=orders outcome=allowed status=200"));
    assert_eq!(
        logs.as_array().unwrap()[1..],
        [json!("listing orders"), json!("[Warning] stock low"), json!("[Error] warehouse offline")]
    );
    assert!(!captured.stdout().contains("listing orders"), "Logs are enough: {}", captured.stdout());
    assert_eq!(captured.stderr(), "");
    assert!(!captured.stdout().contains(&bearer[7..]), "no token in any line");
}

#[tokio::test]
async fn invocation_mode_falls_back_to_the_hosts_traceparent() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = root("invocation");
    let router = router(&root, &idp.issuer);
    let bearer = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let (captured, _guard) = Captured::start();
    let host = [("X-Azure-Functions-InvocationId", GUID), ("traceparent", TRACEPARENT)];
    let answer = send(&router, invocation("orders", &host, &[("Authorization", &bearer)])).await;
    let body = orders_body(&answer, true);
    assert_eq!(body["trace_id"], TRACE_ID);
    assert!(captured.line("auth decision").ends_with(&ids(GUID, TRACE_ID, PARENT_ID)));
}

#[tokio::test]
async fn forwarding_mode_takes_the_hosts_appended_id_and_writes_app_lines_at_their_level() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = root("forwarding");
    let router = router(&root, &idp.issuer);
    let bearer = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let (captured, _guard) = Captured::start();
    // The host appends its id after one the client sent: .NET joins them into one line.
    let forwarded = format!("forged-by-client, {GUID}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-azure-functions-invocationid", forwarded.as_str()),
        ("traceparent", TRACEPARENT),
        ("tracestate", TRACESTATE),
    ];
    let answer = send(&router, direct("orders", &headers)).await;
    assert_extractors_saw_the_ids(&orders_body(&answer, false));
    let decision = captured.line("auth decision");
    assert!(decision.ends_with(&ids(GUID, TRACE_ID, PARENT_ID)), "{decision}");
    assert!(!decision.contains("forged"), "{decision}");
    let with_ids = format!("function=orders {}", ids(GUID, TRACE_ID, PARENT_ID));
    assert!(captured.line("listing orders").contains(&format!("  INFO listing orders {with_ids}")));
    let stderr = captured.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].ends_with(&format!("  WARN stock low {with_ids}")), "{stderr}");
    assert!(lines[1].ends_with(&format!(" ERROR warehouse offline {with_ids}")), "{stderr}");
    assert!(!captured.stdout().contains("stock low"), "warnings on stderr only");
}

#[tokio::test]
async fn proxy_mode_reads_either_invocation_id_header() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = root("proxy");
    let router = router(&root, &idp.issuer);
    let bearer = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let (captured, _guard) = Captured::start();
    // The proxy overwrites X-Azure-Functions-InvocationId and adds x-ms-invocation-id only
    // when absent (so a client can set that one): the first wins.
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-ms-invocation-id", "client-chosen"),
        ("x-azure-functions-invocationid", GUID),
        ("traceparent", TRACEPARENT),
        ("tracestate", TRACESTATE),
    ];
    let answer = send(&router, direct("orders", &headers)).await;
    assert_extractors_saw_the_ids(&orders_body(&answer, false));
    assert!(captured.line("auth decision").ends_with(&ids(GUID, TRACE_ID, PARENT_ID)));
    // Only x-ms-invocation-id (no other header): still an id.
    let headers = [("authorization", bearer.as_str()), ("x-ms-invocation-id", GUID)];
    let answer = send(&router, direct("strict", &headers)).await;
    assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, GUID));
    assert!(captured.stdout().lines().any(|l| l.contains("function=strict") && l.ends_with(&ids(GUID, "-", "-"))));
}

#[tokio::test]
async fn malformed_or_hostile_values_are_ignored_in_every_mode() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let bearer = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let bad_traceparents = [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 fake=1",
    ];
    let hostile_id = "x\" fake=1";
    for mode in ["invocation", "forwarding", "proxy"] {
        let root = root(mode);
        let router = router(&root, &idp.issuer);
        for traceparent in bad_traceparents {
            let (captured, _guard) = Captured::start();
            let answer = if mode == "invocation" {
                let host = [("X-Azure-Functions-InvocationId", hostile_id)];
                let client = [("Authorization", bearer.as_str()), ("traceparent", traceparent)];
                send(&router, invocation("orders", &host, &client)).await
            } else {
                let headers = [
                    ("authorization", bearer.as_str()),
                    ("x-azure-functions-invocationid", hostile_id),
                    ("traceparent", traceparent),
                ];
                send(&router, direct("orders", &headers)).await
            };
            let body = orders_body(&answer, mode == "invocation");
            assert_eq!(
                (&body["invocation_id"], &body["trace_id"]),
                (&Value::Null, &Value::Null),
                "{mode} {traceparent}"
            );
            let decision = captured.line("auth decision");
            assert!(decision.ends_with(&ids("-", "-", "-")), "{mode} {traceparent}: {decision}");
            assert!(!captured.stdout().contains("fake=1") && !captured.stderr().contains("fake=1"), "{mode}");
        }
    }
}

#[tokio::test]
async fn a_failing_trigger_writes_its_lines_to_stdout_and_stderr_at_their_level() {
    let idp = Idp::start(&[]).await;
    let root = root("invocation");
    let router = router(&root, &idp.issuer);
    let (captured, _guard) = Captured::start();
    let envelope = json!({"Data": {"timer": {"Schedule": {}, "IsPastDue": false}}, "Metadata": {}});
    let request = Request::post("/nightly")
        .header("content-type", "application/json")
        .header("x-azure-functions-invocationid", GUID)
        .header("traceparent", TRACEPARENT)
        .body(Body::from(envelope.to_string()))
        .unwrap();
    let answer = send(&router, request).await;
    // Non-2xx: the host fails the invocation and never reads Logs.
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let with_ids = format!("function=nightly {}", ids(GUID, TRACE_ID, PARENT_ID));
    assert!(captured.line("nightly export started").contains(&format!("  INFO nightly export started {with_ids}")));
    let failed = captured.line("invocation failed");
    assert!(failed.contains("status=503") && failed.contains(&format!("invocation_id={GUID}")), "{failed}");
    let stderr = captured.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].ends_with(&format!("  WARN export is slow {with_ids}")), "{stderr}");
    assert!(lines[1].ends_with(&format!(" ERROR export target unreachable {with_ids}")), "{stderr}");
}

#[tokio::test]
async fn a_succeeding_trigger_keeps_levels_in_logs() {
    async fn tidy(logger: Logger) -> StatusCode {
        logger.warn("nothing to tidy");
        StatusCode::OK
    }
    let idp = Idp::start(&[]).await;
    let root = root("invocation");
    write(
        &root.0,
        "tidy",
        json!([{"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 0 3 * * *"}]),
    );
    let layout = AppLayout::load(&root.0).unwrap();
    let auth = Authenticator::new(&auth_config(&idp.issuer)).unwrap();
    let state = AppState::with_functions(auth, layout, functions().function("tidy", tidy), 1 << 20).unwrap();
    let router = app(Arc::new(state));
    let (captured, _guard) = Captured::start();
    let envelope = json!({"Data": {"timer": {}}, "Metadata": {}});
    let request = Request::post("/tidy")
        .header("x-azure-functions-invocationid", GUID)
        .body(Body::from(envelope.to_string()))
        .unwrap();
    let result = result(&send(&router, request).await);
    assert_eq!(result["Logs"], json!(["[Warning] nothing to tidy"]));
    assert_eq!(captured.stderr(), "");
    assert!(captured.line("function=tidy").ends_with(&ids(GUID, "-", "-")), "the invocation line has the id");
}

#[tokio::test]
async fn a_failing_http_invocation_writes_its_lines_to_stdout_and_stderr() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = root("invocation");
    let router = router(&root, &idp.issuer);
    let bearer = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let (captured, _guard) = Captured::start();
    let host = [("X-Azure-Functions-InvocationId", GUID)];
    let client = [("Authorization", bearer.as_str()), ("traceparent", TRACEPARENT)];
    let answer = send(&router, invocation("charge", &host, &client)).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "an undeclared output binding fails it");
    let with_ids = format!("function=charge {}", ids(GUID, TRACE_ID, PARENT_ID));
    assert!(captured.line("charging card").contains(&format!("  INFO charging card {with_ids}")));
    assert!(captured.stderr().ends_with(&format!(" ERROR card declined {with_ids}\n")), "{}", captured.stderr());
    assert!(captured.line("auth decision").ends_with(&ids(GUID, TRACE_ID, PARENT_ID)));
}

#[tokio::test]
async fn warnings_carry_the_ids() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let forwarding_root = root("forwarding");
    let router = router(&forwarding_root, &idp.issuer);
    let bearer = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let (captured, _guard) = Captured::start();
    let headers =
        [("authorization", bearer.as_str()), ("x-azure-functions-invocationid", GUID), ("traceparent", TRACEPARENT)];
    let answer = send(&router, direct("charge", &headers)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let warning = captured.line("output bindings dropped");
    assert!(warning.contains(&ids(GUID, TRACE_ID, PARENT_ID)), "{warning}");
    // In invocation mode, a malformed envelope's warning names the invocation.
    let invocation_root = root("invocation");
    let router = self::router(&invocation_root, &idp.issuer);
    let request = Request::post("/orders")
        .header("x-azure-functions-invocationid", GUID)
        .body(Body::from(r#"{"Data": {"req": {"Method": 7}}}"#))
        .unwrap();
    let answer = send(&router, request).await;
    assert_eq!(result(&answer)["Outputs"]["res"]["statusCode"], 400);
    assert!(captured.line("malformed invocation payload").contains(&format!("invocation_id={GUID}")));
}

#[tokio::test]
async fn a_required_invocation_id_is_a_clear_400_without_the_host() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let root = root("forwarding");
    let router = router(&root, &idp.issuer);
    let bearer = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let answer = send(&router, direct("strict", &[("authorization", bearer.as_str())])).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.header("content-type"), Some("application/problem+json"));
    assert!(answer.body.contains("did not come through the Functions host"), "{}", answer.body);
}

/// The Authorization header a client has when it asked Auth0 for a token without
/// `audience`: a five-part JWE, or an opaque string.
const JWE: &str =
    "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIiwiaXNzIjoiaHR0cHM6Ly90LmF1dGgwLmNvbS8ifQ..c2FsdA.Y2lwaGVy.dGFn";
const OPAQUE: &str = "Xq3nT0Tq8WmZbR2vN5kLpA9sY7dF4hJc";

#[tokio::test]
async fn encrypted_and_opaque_tokens_get_a_reason_naming_the_audience_in_every_mode() {
    let idp = Idp::start(&[]).await;
    let fix = format!("request the token with audience={AUDIENCE}");
    for mode in ["invocation", "forwarding", "proxy"] {
        let root = root(mode);
        let router = router(&root, &idp.issuer);
        for (token, what) in [(JWE, "encrypted token (five-part JWE"), (OPAQUE, "opaque token, not a JWT")] {
            let (captured, _guard) = Captured::start();
            let bearer = format!("Bearer {token}");
            let (challenge, body) = if mode == "invocation" {
                let host = [("X-Azure-Functions-InvocationId", GUID)];
                let client = [("Authorization", bearer.as_str()), ("traceparent", TRACEPARENT)];
                let result = result(&send(&router, invocation("orders", &host, &client)).await);
                let res = &result["Outputs"]["res"];
                assert_eq!(res["statusCode"], 401);
                let logged = result["Logs"][0].as_str().unwrap().to_owned();
                assert!(logged.contains(what) && logged.contains(&fix), "{logged}");
                (res["headers"]["www-authenticate"].as_str().unwrap().to_owned(), res["body"].to_string())
            } else {
                let headers = [
                    ("authorization", bearer.as_str()),
                    ("x-azure-functions-invocationid", GUID),
                    ("traceparent", TRACEPARENT),
                ];
                let answer = send(&router, direct("orders", &headers)).await;
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
                (answer.challenge().unwrap().to_owned(), answer.body.clone())
            };
            let decision = captured.line("auth decision");
            assert!(decision.contains(what) && decision.contains(&fix), "{mode}: {decision}");
            assert!(decision.contains("outcome=denied status=401"), "{decision}");
            assert!(decision.ends_with(&ids(GUID, TRACE_ID, PARENT_ID)), "{mode}: {decision}");
            assert!(!decision.contains(token), "the token is never logged: {decision}");
            // The client's answer stays the fixed RFC 6750 text.
            assert_eq!(
                challenge,
                r#"Bearer realm="api", error="invalid_token", error_description="The access token is invalid""#
            );
            assert!(!body.contains("audience"), "{body}");
        }
    }
    assert_eq!(idp.jwks_hits(), 0, "refused before any key lookup");
}
