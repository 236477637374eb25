//! Which function serves a forwarded request, over real TCP: the host's choice (functions
//! by name, first route matching path and method), so a request the host let through under
//! one function's `authLevel` is never served by another.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use azfn_auth::app::{AppState, app};
use azfn_auth::auth::Authenticator;
use azfn_auth::extract::Path;
use azfn_auth::functions::Functions;
use azfn_auth::layout::AppLayout;
use common::*;
use serde_json::json;

fn write(root: &std::path::Path, name: &str, function: serde_json::Value, policy: Option<serde_json::Value>) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("function.json"), function.to_string()).unwrap();
    if let Some(policy) = policy {
        std::fs::write(dir.join("auth.json"), policy.to_string()).unwrap();
    }
}

fn http(route: &str, auth_level: &str) -> serde_json::Value {
    json!({"bindings": [
        {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": auth_level, "methods": ["get"], "route": route},
        {"type": "http", "direction": "out", "name": "res"}
    ]})
}

#[tokio::test]
async fn the_function_the_host_picks_serves_the_request() {
    let root = std::env::temp_dir().join(format!("azfn-routing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("host.json"), r#"{"customHandler": {"enableForwardingHttpRequest": true}}"#).unwrap();
    // Written in reverse order: discovery order must not matter, only names.
    write(&root, "b-private", http("items/secret", "function"), None);
    write(&root, "a-public", http("items/{id}", "anonymous"), Some(json!({"anonymous": true})));
    let idp = Idp::start(&[]).await;
    let functions = Functions::new()
        .function("a-public", |Path(id): Path<String>| async move { format!("a-public {id}") })
        .function("b-private", || async { "b-private" });
    let layout = AppLayout::load(&root).unwrap();
    let auth = Authenticator::new(&auth_config(&idp.issuer)).unwrap();
    let state = Arc::new(AppState::with_functions(auth, layout, functions, 1 << 20).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });

    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: localhost:7071\r\nConnection: close\r\n\r\n").into_bytes();
    // The host maps a-public first; its template matches, so it serves "secret" too.
    let (status, _, body) = raw(addr, get("/api/items/secret")).await;
    assert_eq!((status, String::from_utf8(body).unwrap().as_str()), (200, "a-public secret"));
    let (status, _, body) = raw(addr, get("/API/Items/7")).await;
    assert_eq!((status, String::from_utf8(body).unwrap().as_str()), (200, "a-public 7"));
    assert_eq!(idp.jwks_hits() + idp.discovery_hits(), 0, "anonymous: no token asked for");
    let (status, _, _) = raw(addr, get("/api/items")).await;
    assert_eq!(status, 404);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn folders_without_a_handler_and_reserved_routes_stop_start_up() {
    let root = std::env::temp_dir().join(format!("azfn-routing-startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    write(&root, "orders", http("orders/{id:int}", "function"), None);
    let layout = AppLayout::load(&root).unwrap();
    let auth = Authenticator::new(&auth_config("https://issuer.example/")).unwrap();
    let err = AppState::with_functions(auth, layout, Functions::new(), 1 << 20).unwrap_err();
    assert!(err.to_string().contains("\"orders\" has no handler"), "{err}");
    write(&root, "keys", http("admin/keys", "function"), None);
    let err = AppLayout::load(&root).unwrap_err();
    assert!(err.to_string().contains("reserved by the Functions host"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
