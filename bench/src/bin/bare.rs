//! Baseline 1: bare axum answering 200 "Authentication successful" to every request
//! (`GET /` answers "OK"), with no authentication and no logging; and, for the upload
//! case, `POST /orders/import` doing what examples/mcp's `orders-import` does (SHA-256 of
//! the body as it streams, JSON answer) with no authentication.

use axum::Router;
use axum::body::Body;
use axum::routing::{any, post};
use http_body_util::BodyExt;

async fn import(body: Body) -> String {
    let mut body = body;
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut bytes = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            digest.update(&data);
            bytes += data.len() as u64;
        }
    }
    let sha256: String = digest.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!(r#"{{"bytes":{bytes},"sha256":"{sha256}"}}"#)
}

fn main() {
    let router = Router::new()
        .route("/", any(|| async { "OK" }))
        .route("/orders/import", post(import))
        .fallback(any(|| async { "Authentication successful" }));
    azfn_auth_bench::run(azfn_auth_bench::serve(router));
}
