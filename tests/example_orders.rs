//! The worked example app (`examples/orders`) through all three host modes in process with
//! the testing kit (`azfn_auth::testing`), and in forwarding mode over real TCP with
//! hand-made host requests (its own app root copied with only host.json's mode changed):
//! the same calls get the same answers both ways. In forwarding and proxy
//! mode the host still calls `orders-create` (queue output) and `cleanup` (timer) with the
//! invocation envelope; everything else arrives as raw HTTP. In invocation mode everything
//! is an envelope.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code, unreachable_pub)]

mod common;
#[path = "../examples/orders/orders.rs"]
mod orders;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use azfn_auth::app::{AppState, app};
use azfn_auth::auth::Authenticator;
use azfn_auth::layout::{AppLayout, HostMode};
use azfn_auth::testing::{Delivery, TestApp, TestIssuer};
use common::*;
use serde_json::{Value, json};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/orders");

/// A copy of the example's app root with host.json set to `mode`.
struct Root(PathBuf);

impl Root {
    fn new(mode: HostMode) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("azfn-orders-{mode:?}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_app_root(Path::new(EXAMPLE), &dir);
        let mut host: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("host.json")).unwrap()).unwrap();
        let section = &mut host["customHandler"];
        section["enableForwardingHttpRequest"] = json!(mode == HostMode::Forwarding);
        if mode == HostMode::Proxy {
            section["enableProxyingHttpRequest"] = json!(true);
        }
        std::fs::write(dir.join("host.json"), host.to_string()).unwrap();
        Self(dir)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(idp: &Idp, mode: HostMode) -> (SocketAddr, Root) {
    let root = Root::new(mode);
    let layout = AppLayout::load(&root.0).unwrap();
    assert_eq!(layout.mode, mode);
    let auth = Authenticator::new(&auth_config(&idp.issuer)).unwrap();
    let state = Arc::new(AppState::with_functions(auth, layout, orders::functions(), 1 << 20).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    (addr, root)
}

/// What the caller got, plus what the host would take from an invocation result.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    location: Option<String>,
    body: String,
    outputs: Value,
    logs: Vec<String>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One client call, sent the way the host would send it in `mode`.
struct Call<'a> {
    function: &'a str,
    method: &'a str,
    path: &'a str,
    params: Value,
    token: Option<&'a str>,
    body: Option<&'a str>,
}

fn envelope_for(call: &Call<'_>, mode: HostMode) -> bool {
    mode == HostMode::Invocation || call.function == "orders-create"
}

/// Where the calls go: the app over TCP with hand-made host requests, or the testing kit.
enum Target {
    Tcp { addr: SocketAddr, mode: HostMode },
    Kit(TestApp),
}

async fn send(target: &Target, call: Call<'_>) -> Answer {
    match target {
        Target::Tcp { addr, mode } => send_tcp(*addr, *mode, call).await,
        Target::Kit(app) => send_kit(app, call).await,
    }
}

/// The kit routes the path itself (so `call.function` and `call.params` are only checked
/// against what it chose) and speaks the envelope where the host would.
async fn send_kit(app: &TestApp, call: Call<'_>) -> Answer {
    let mut request = app.request(call.method.parse().unwrap(), call.path);
    if let Some(token) = call.token {
        request = request.bearer(token);
    }
    if let Some(body) = call.body {
        request = request.header("Content-Type", "application/json").body(body.to_owned());
    }
    let answer = request.send().await;
    let expected = if envelope_for(&call, app.mode()) { Delivery::Invocation } else { Delivery::Forwarded };
    let delivered = if answer.delivery == Delivery::Proxied { Delivery::Forwarded } else { answer.delivery };
    // (A path the host does not route, such as a mistyped `{id:int}`, is its 404.)
    if delivered != Delivery::NotRouted {
        assert_eq!(delivered, expected, "{} {}", call.method, call.path);
    }
    Answer {
        status: answer.status.as_u16(),
        content_type: answer.header("content-type").unwrap_or_default().to_owned(),
        location: answer.header("location").map(str::to_owned),
        body: answer.text(),
        outputs: Value::Object(answer.outputs.clone()),
        logs: answer.logs.clone(),
    }
}

async fn send_tcp(addr: SocketAddr, mode: HostMode, call: Call<'_>) -> Answer {
    if envelope_for(&call, mode) {
        let mut headers = json!({"Host": ["my-app.azurewebsites.net"]});
        if let Some(token) = call.token {
            headers["Authorization"] = json!([format!("Bearer {token}")]);
        }
        let mut req = json!({
            "Url": format!("https://my-app.azurewebsites.net{}", call.path),
            "Method": call.method,
            "Query": {},
            "Headers": headers,
            "Params": call.params,
        });
        if let Some(body) = call.body {
            req["Headers"]["Content-Type"] = json!(["application/json"]);
            req["Body"] = json!(body);
        }
        // Metadata mirrors the caller's JSON body and query: a spoofed route value there
        // must never be read.
        let envelope = json!({"Data": {"req": req}, "Metadata": {"id": "\"2\"", "path": "\"spoofed\""}});
        let result = invoke(addr, call.function, &envelope).await;
        let res = &result["Outputs"]["res"];
        let header = |name: &str| res["headers"][name].as_str().map(str::to_owned);
        let mut outputs = result["Outputs"].clone();
        outputs.as_object_mut().unwrap().remove("res");
        return Answer {
            status: res["statusCode"].as_u64().unwrap() as u16,
            content_type: header("content-type").unwrap_or_default(),
            location: header("location"),
            body: res["body"].as_str().unwrap().to_owned(),
            outputs,
            logs: serde_json::from_value(result["Logs"].clone()).unwrap(),
        };
    }
    let mut request =
        format!("{} {} HTTP/1.1\r\nHost: my-app.azurewebsites.net\r\nConnection: close\r\n", call.method, call.path);
    if let Some(token) = call.token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = call.body.unwrap_or("");
    if call.body.is_some() {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let (status, head, body) = raw(addr, request.into_bytes()).await;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
        })
    };
    Answer {
        status,
        content_type: header("content-type").unwrap_or_default(),
        location: header("location"),
        body: String::from_utf8(body).unwrap(),
        outputs: json!({}),
        logs: Vec::new(),
    }
}

/// An envelope POST as the host sends it; the answer must be 200 JSON for the host to read it.
async fn invoke(addr: SocketAddr, function: &str, envelope: &Value) -> Value {
    let body = envelope.to_string();
    let request = format!(
        "POST /{function} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, head, body) = raw(addr, request.into_bytes()).await;
    assert_eq!(status, 200, "{head}\n{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn user_token(key: &TestKey, issuer: &str, permissions: &[&str]) -> String {
    let mut claims = claims(issuer);
    claims["sub"] = json!("auth0|user-1");
    claims["scope"] = json!("openid read:orders");
    claims["permissions"] = json!(permissions);
    claims.as_object_mut().unwrap().remove("gty");
    token(key, &claims)
}

fn call<'a>(function: &'a str, method: &'a str, path: &'a str, token: Option<&'a str>) -> Call<'a> {
    Call { function, method, path, params: json!({}), token, body: None }
}

/// Over TCP: the fake identity provider serves the key, the app fetches it.
async fn exercise_over_tcp(mode: HostMode) {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let (addr, _root) = start(&idp, mode).await;
    let writer = user_token(&key, &idp.issuer, &["create:orders"]);
    let reader = user_token(&key, &idp.issuer, &[]);
    exercise(&Target::Tcp { addr, mode }, &writer, &reader).await;
    // The timer as the host sends it: no token, its line in Logs.
    let timer = json!({"Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
        "Metadata": {"timer": {"IsPastDue": false}, "sys": {"MethodName": "cleanup", "UtcNow": "2026-12-02T20:00:00Z"}}});
    let result = invoke(addr, "cleanup", &timer).await;
    assert_eq!(result["Logs"], json!(["cleanup: 2 orders"]), "{mode:?}");
    assert_eq!((result["Outputs"].clone(), result["ReturnValue"].clone()), (json!({}), Value::Null));
    // Late: a warning, its level kept in the text (the host logs every entry as Information).
    let mut late = timer.clone();
    late["Data"]["timer"]["IsPastDue"] = json!(true);
    let result = invoke(addr, "cleanup", &late).await;
    assert_eq!(result["Logs"], json!(["[Warning] cleanup: running late", "cleanup: 2 orders"]), "{mode:?}");
}

/// In process with `azfn_auth::testing`: the same calls and answers.
async fn exercise_in_process(mode: HostMode) {
    let issuer = TestIssuer::new();
    let app = TestApp::builder(EXAMPLE).issuer(&issuer).mode(mode).build(orders::functions()).unwrap();
    let user = || issuer.token().subject("auth0|user-1").scope("openid").scope("read:orders");
    let (writer, reader) = (user().permission("create:orders").sign(), user().sign());
    exercise(&Target::Kit(app.clone()), &writer, &reader).await;
    let timer =
        app.trigger("cleanup").data(json!({"Schedule": {"AdjustForDST": true}, "IsPastDue": false})).send().await;
    assert_eq!((timer.status.as_u16(), timer.logs.as_slice()), (200, ["cleanup: 2 orders".to_owned()].as_slice()));
    assert_eq!((timer.outputs.len(), timer.return_value), (0, None));
    let wrong = app.trigger("cleanup").data(json!({"IsPastDue": "soon"})).send().await;
    assert_eq!(wrong.status.as_u16(), 400, "a payload of the wrong shape fails the invocation");
}

async fn exercise(target: &Target, writer: &str, reader: &str) {
    let mode = match target {
        Target::Tcp { mode, .. } => *mode,
        Target::Kit(app) => app.mode(),
    };
    let (w, r) = (Some(writer), Some(reader));

    // Empty at start; the token and scope are required.
    let empty = send(target, call("orders-list", "GET", "/api/orders", r)).await;
    assert_eq!((empty.status, empty.json()), (200, json!([])), "{mode:?}");
    assert!(empty.content_type.starts_with("application/json"));
    assert_eq!(send(target, call("orders-list", "GET", "/api/orders", None)).await.status, 401);

    // Create: permission, validation naming the field, then 201 + Location + queue output.
    let create = |token, body| Call { body: Some(body), ..call("orders-create", "POST", "/api/orders", token) };
    let denied = send(target, create(r, r#"{"item": "book", "quantity": 1}"#)).await;
    assert_eq!(denied.status, 403, "{mode:?}: {}", denied.body);
    assert_eq!(denied.outputs, json!({}), "nothing is queued for a refused caller");
    let long = format!(r#"{{"item": "{}", "quantity": 1}}"#, "x".repeat(101));
    // Json<NewOrder>'s rejections: not JSON is 400, JSON of the wrong shape 422 naming the field.
    for (body, status, field) in [
        (r#"{"item": "book""#, 400, None),
        (r#"{"item": "book"}"#, 422, Some(("quantity", "missing field `quantity`"))),
        (r#"{"item": "book", "quantity": 0}"#, 422, Some(("quantity", "must be an integer from 1 to 1000"))),
        (
            r#"{"item": "book", "quantity": 1.5}"#,
            422,
            Some(("quantity", "invalid type: floating point `1.5`, expected u64")),
        ),
        (r#"{"item": "", "quantity": 1}"#, 422, Some(("item", "must be a string of 1 to 100 characters"))),
        (long.as_str(), 422, Some(("item", "must be a string of 1 to 100 characters"))),
        (r#"{"item": 5, "quantity": 1}"#, 422, Some(("item", "invalid type: integer `5`, expected a string"))),
    ] {
        let bad = send(target, create(w, body)).await;
        assert_eq!(bad.status, status, "{mode:?} {body}: {}", bad.body);
        // (The host appends `; charset=utf-8` to an envelope answer's type; the kit too.)
        assert!(bad.content_type.starts_with("application/problem+json"), "{body}: {}", bad.content_type);
        let problem = bad.json();
        assert_eq!(problem["status"], status);
        if let Some((name, reason)) = field {
            assert_eq!(problem["invalid-params"], json!([{"name": name, "reason": reason}]), "{body}");
        }
        assert_eq!(bad.outputs, json!({}), "{body}");
    }
    let first = send(target, create(w, r#"{"item": "book", "quantity": 2}"#)).await;
    assert_eq!(first.status, 201, "{mode:?}: {}", first.body);
    assert_eq!(first.location.as_deref(), Some("/api/orders/1"));
    let order = json!({"id": 1, "item": "book", "quantity": 2, "owner": "auth0|user-1"});
    assert_eq!(first.json(), order);
    assert_eq!(first.outputs, json!({"outQueue": order}), "the queue receives the order as JSON");
    assert!(first.logs.iter().any(|l| l.contains("outcome=allowed")), "{:?}", first.logs);
    let second = send(target, create(w, r#"{"item": "pen", "quantity": 1000}"#)).await;
    assert_eq!((second.status, second.location.as_deref()), (201, Some("/api/orders/2")));

    // List newest first; get by id (route value), 404 problem, mistyped id never served.
    let list = send(target, call("orders-list", "GET", "/api/orders", r)).await;
    let ids: Vec<_> = list.json().as_array().unwrap().iter().map(|o| o["id"].clone()).collect();
    assert_eq!(ids, [json!(2), json!(1)], "{mode:?}");
    let get = |path, id: Value| Call { params: json!({ "id": id }), ..call("orders-get", "GET", path, r) };
    let one = send(target, get("/api/orders/1", json!("1"))).await;
    assert_eq!((one.status, one.json()), (200, order), "{mode:?}: Params, never Metadata (id 2)");
    let missing = send(target, get("/api/orders/99", json!("99"))).await;
    assert_eq!(missing.status, 404);
    assert!(missing.content_type.starts_with("application/problem+json"), "{}", missing.content_type);
    let mistyped = send(target, get("/api/orders/abc", json!("abc"))).await;
    assert_eq!(mistyped.status, 404, "{mode:?}: {}", mistyped.body);
    assert!(!mistyped.content_type.starts_with("application/problem+json"), "the handler never ran");

    // Anonymous catch-all.
    let files = |path, value: Value| Call { params: json!({ "path": value }), ..call("files", "GET", path, None) };
    let nested = send(target, files("/api/files/a/b%20c.txt", json!("a/b c.txt"))).await;
    assert_eq!((nested.status, nested.body.as_str()), (200, "a/b c.txt"), "{mode:?}");
    assert!(nested.content_type.starts_with("text/plain"));
    let root = send(target, files("/api/files", Value::Null)).await;
    assert_eq!((root.status, root.body.as_str()), (200, ""), "{mode:?}");
}

#[tokio::test]
async fn orders_app_over_tcp_in_forwarding_mode_mixes_envelopes_and_raw_requests() {
    exercise_over_tcp(HostMode::Forwarding).await;
}

#[tokio::test]
async fn orders_app_in_process_in_forwarding_mode() {
    exercise_in_process(HostMode::Forwarding).await;
}

#[tokio::test]
async fn orders_app_in_process_in_invocation_mode() {
    exercise_in_process(HostMode::Invocation).await;
}

#[tokio::test]
async fn orders_app_in_process_in_proxy_mode() {
    exercise_in_process(HostMode::Proxy).await;
}

#[tokio::test]
async fn a_timer_payload_of_the_wrong_shape_fails_the_invocation() {
    let idp = Idp::start(&[]).await;
    let (addr, _root) = start(&idp, HostMode::Forwarding).await;
    let body = json!({"Data": {"timer": {"IsPastDue": "soon"}}, "Metadata": {}}).to_string();
    let request = format!(
        "POST /cleanup HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, _, _) = raw(addr, request.into_bytes()).await;
    // Any non-2xx is a failed invocation for the host (queue triggers are retried).
    assert_eq!(status, 400);
    assert_eq!(idp.jwks_hits(), 0, "triggers never ask for a token");
}
