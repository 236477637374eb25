//! The three ways the Functions host calls the handler (PROTOCOL.md §2-5), over real TCP
//! on loopback: readiness probe, invocation envelopes (chunked, headers as arrays) and
//! forwarded / proxied raw requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use azfn_auth::app::app;
use azfn_auth::layout::HostMode;
use common::*;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

/// An invocation POST the way the host sends it: JSON envelope, chunked, no Content-Length.
fn invocation_request(function: &str, envelope: &Value) -> Vec<u8> {
    let body = envelope.to_string();
    let mut request = format!(
        "POST /{function} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json; charset=utf-8\r\n\
         User-Agent: Azure-Functions-Host/4.1037.0\r\nX-Azure-Functions-InvocationId: 5f0b\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    // Several chunks, as a streaming serializer produces.
    for chunk in body.as_bytes().chunks(100) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

/// The fixture envelope with the Authorization header array replaced.
fn envelope(authorization: &[String]) -> Value {
    let mut envelope: Value = serde_json::from_str(&fixture("invocation/http-get.json")).unwrap();
    envelope["Data"]["req"]["Headers"]["Authorization"] = json!(authorization);
    if authorization.is_empty() {
        envelope["Data"]["req"]["Headers"].as_object_mut().unwrap().remove("Authorization");
    }
    envelope
}

async fn invoke(addr: SocketAddr, envelope: &Value) -> Value {
    let (status, head, body) = raw(addr, invocation_request("api-a", envelope)).await;
    // The host only reads Outputs from a 2xx application/json answer.
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn readiness_probe_answers_at_once_without_auth() {
    let idp = Idp::start(&[]).await;
    let addr = serve(&idp.issuer, HostMode::Invocation, "api").await;
    let (status, _, _) = raw(addr, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!(idp.jwks_hits(), 0);
}

#[tokio::test]
async fn invocation_with_valid_token_returns_200_inside_outputs() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let addr = serve(&idp.issuer, HostMode::Invocation, "api").await;
    let t = token(&key, &claims(&idp.issuer));
    let result = invoke(addr, &envelope(&[format!("Bearer {t}")])).await;
    let res = &result["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200);
    assert_eq!(res["body"], "Authentication successful");
    assert!(res["headers"].as_object().unwrap().values().all(Value::is_string));
    assert_eq!(result["ReturnValue"], Value::Null);
    let logs = result["Logs"].as_array().unwrap();
    assert!(
        logs.iter()
            .any(|l| l.as_str().unwrap().starts_with("auth decision: function=api-a outcome=allowed status=200 ")),
        "{logs:?}"
    );
    assert!(!result.to_string().contains(&t), "the token leaked into the result");
}

#[tokio::test]
async fn invocation_without_token_returns_401_challenge_inside_outputs() {
    let idp = Idp::start(&[]).await;
    let addr = serve(&idp.issuer, HostMode::Invocation, "api").await;
    let result = invoke(addr, &envelope(&[])).await;
    let res = &result["Outputs"]["res"];
    assert_eq!(res["statusCode"], 401);
    assert_eq!(res["body"], "No authorization token was found");
    assert_eq!(res["headers"]["www-authenticate"], r#"Bearer realm="api""#);
    assert_eq!(
        result["Logs"],
        json!(["auth decision: function=api-a outcome=denied status=401 reason=no bearer token client_id=- sub=-"])
    );
}

#[tokio::test]
async fn invocation_with_two_authorization_entries_is_400() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let addr = serve(&idp.issuer, HostMode::Invocation, "api").await;
    let t = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let result = invoke(addr, &envelope(&[t.clone(), t])).await;
    assert_eq!(result["Outputs"]["res"]["statusCode"], 400);
    assert!(result["Outputs"]["res"]["headers"]["www-authenticate"].as_str().unwrap().contains("invalid_request"));
}

#[tokio::test]
async fn invocation_with_bad_token_is_401_invalid_token() {
    let idp = Idp::start(&[]).await;
    let addr = serve(&idp.issuer, HostMode::Invocation, "api").await;
    let result = invoke(addr, &envelope(&["Bearer a.b.c".into()])).await;
    assert_eq!(result["Outputs"]["res"]["statusCode"], 401);
    assert!(result["Outputs"]["res"]["headers"]["www-authenticate"].as_str().unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn invocation_with_keys_unavailable_is_503_inside_outputs() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    idp.set_mode(IdpMode::Status(500));
    let addr = serve(&idp.issuer, HostMode::Invocation, "api").await;
    let result = invoke(addr, &envelope(&[format!("Bearer {}", token(&key, &claims(&idp.issuer)))])).await;
    assert_eq!(result["Outputs"]["res"]["statusCode"], 503);
    assert!(result["Outputs"]["res"]["headers"]["retry-after"].is_string());
}

#[tokio::test]
async fn malformed_envelope_is_a_clear_400_for_the_caller() {
    let idp = Idp::start(&[]).await;
    let addr = serve(&idp.issuer, HostMode::Invocation, "api").await;
    for bad in [json!({"Data": {}}), json!({"Data": {"req": {"Method": 5}}}), json!([1, 2])] {
        let result = invoke(addr, &bad).await;
        assert_eq!(result["Outputs"]["res"]["statusCode"], 400, "{bad}");
        assert_eq!(result["Outputs"]["res"]["body"], "Malformed invocation request");
        assert!(!result["Logs"].as_array().unwrap().is_empty());
    }
    let (status, _, body) = raw(
        addr,
        b"POST /api-a HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!".to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let result: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(result["Outputs"]["res"]["statusCode"], 400);
}

#[tokio::test]
async fn oversized_envelope_is_413_inside_outputs() {
    let idp = Idp::start(&[]).await;
    let addr = serve(&idp.issuer, HostMode::Invocation, "api").await;
    let mut big = envelope(&[]);
    big["Data"]["req"]["Body"] = json!("x".repeat(2 * 1024 * 1024));
    let result = invoke(addr, &big).await;
    assert_eq!(result["Outputs"]["res"]["statusCode"], 413);
}

#[tokio::test]
async fn invocation_path_is_matched_case_insensitively() {
    let idp = Idp::start(&[]).await;
    let addr = serve(&idp.issuer, HostMode::Invocation, "api").await;
    let (status, _, body) = raw(addr, invocation_request("API-A", &envelope(&[]))).await;
    assert_eq!(status, 200);
    let result: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(result["Outputs"]["res"]["statusCode"], 401);
}

async fn forwarded(addr: SocketAddr, method: &str, path: &str, authorization: Option<&str>) -> (u16, String, String) {
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: app.azurewebsites.net\r\nx-functions-key: secret-key\r\n{auth}\
         X-Azure-Functions-InvocationId: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let (status, head, body) = raw(addr, request.into_bytes()).await;
    (status, head, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn forwarding_and_proxy_modes_answer_plain_http() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let t = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    for mode in [HostMode::Forwarding, HostMode::Proxy] {
        let addr = serve(&idp.issuer, mode, "api").await;
        let (status, _, body) = forwarded(addr, "GET", "/api/api-a?code=secret-key", Some(&t)).await;
        assert_eq!((status, body.as_str()), (200, "Authentication successful"), "{mode:?}");
        let (status, head, body) = forwarded(addr, "POST", "/api/api-a", None).await;
        assert_eq!((status, body.as_str()), (401, "No authorization token was found"), "{mode:?}");
        assert!(head.contains(r#"www-authenticate: Bearer realm="api""#), "{head}");
        let (status, head, _) = forwarded(addr, "GET", "/api/api-a", Some("Bearer x.y.z")).await;
        assert_eq!(status, 401);
        assert!(head.contains(r#"error="invalid_token""#), "{head}");
    }
}

#[tokio::test]
async fn forwarded_routes_are_case_insensitive() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let addr = serve(&idp.issuer, HostMode::Forwarding, "api").await;
    let t = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    for path in ["/api/API-A", "/API/Api-A", "/api/api-a/"] {
        assert_eq!(forwarded(addr, "GET", path, Some(&t)).await.0, 200, "{path}");
    }
    assert_eq!(forwarded(addr, "GET", "/api/api-b", Some(&t)).await.0, 404);
}

#[tokio::test]
async fn a_custom_route_prefix_is_honoured() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let t = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let addr = serve(&idp.issuer, HostMode::Forwarding, "v1").await;
    assert_eq!(forwarded(addr, "GET", "/v1/api-a", Some(&t)).await.0, 200);
    assert_eq!(forwarded(addr, "GET", "/api/api-a", Some(&t)).await.0, 404);
    let addr = serve(&idp.issuer, HostMode::Forwarding, "").await;
    assert_eq!(forwarded(addr, "GET", "/api-a", Some(&t)).await.0, 200);
    // With an empty prefix in forwarding mode, POST /api-a is a client request, not an envelope.
    let (status, _, body) = forwarded(addr, "POST", "/api-a", Some(&t)).await;
    assert_eq!((status, body.as_str()), (200, "Authentication successful"));
}

#[tokio::test]
async fn methods_not_in_function_json_are_405_and_never_reach_the_handler() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let addr = serve(&idp.issuer, HostMode::Forwarding, "api").await;
    let t = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    for method in ["PUT", "DELETE", "OPTIONS"] {
        let (status, head, body) = forwarded(addr, method, "/api/api-a", Some(&t)).await;
        assert_eq!(status, 405, "{method}");
        assert!(head.to_ascii_lowercase().contains("allow: get, post"), "{head}");
        assert_ne!(body, "Authentication successful");
    }
}

#[tokio::test]
async fn cors_preflight_without_token_never_runs_the_business_handler_when_options_is_listed() {
    let idp = Idp::start(&[]).await;
    let mut layout = layout(HostMode::Forwarding, "api");
    layout.functions[0].methods = None; // all methods, OPTIONS included
    let router = app(state(auth_config(&idp.issuer), layout));
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/api-a")
        .header("origin", "https://spa.example.com")
        .header("access-control-request-method", "GET")
        .body(Body::empty())
        .unwrap();
    let answer = send(&router, request).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_ne!(answer.body, "Authentication successful");
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let idp = Idp::start(&[]).await;
    let addr = serve(&idp.issuer, HostMode::Forwarding, "api").await;
    assert_eq!(forwarded(addr, "GET", "/nothing", None).await.0, 404);
}
