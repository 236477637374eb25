//! `api-a`: answers callers whose token verified.

use axum::body::Body;
use http::{HeaderValue, Response, header};

use super::{FunctionRequest, HandlerFuture};

/// The answer the Node tutorial gave for an authenticated call.
pub const SUCCESS_BODY: &str = "Authentication successful";

/// Handles an authenticated call.
pub fn handle(request: FunctionRequest) -> HandlerFuture {
    // The claims are available for finer checks (`request.claims.subject()`, scopes, ...).
    let _ = request.claims;
    Box::pin(async move {
        let mut response = Response::new(Body::from(SUCCESS_BODY));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        response
    })
}
