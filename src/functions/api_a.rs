//! `api-a`: answers callers whose token verified.

use http::{HeaderValue, header};

/// The answer the Node tutorial gave for an authenticated call.
pub const SUCCESS_BODY: &str = "Authentication successful";

/// Handles an authenticated call (it runs only once the token and the policy passed).
/// Handlers that need the caller take [`Claims`](crate::auth::Claims) as an extractor.
pub async fn handle() -> ([(header::HeaderName, HeaderValue); 1], &'static str) {
    ([(header::CONTENT_TYPE, const { HeaderValue::from_static("text/plain; charset=utf-8") })], SUCCESS_BODY)
}
