//! Business handlers, one file per Azure function (folder `api-a` ↔ module `api_a`).
//! They receive standard `http` types and verified claims; they never see the host's
//! envelope or the raw token.

pub mod api_a;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use http::Response;

use crate::auth::Claims;

/// What a business handler receives once the caller is authenticated.
#[derive(Debug)]
pub struct FunctionRequest {
    /// Method, URI and headers of the original request.
    pub parts: http::request::Parts,
    /// The request body.
    pub body: Bytes,
    /// Verified token claims; `None` only for functions whose policy is anonymous.
    pub claims: Option<Arc<Claims>>,
}

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// A business handler.
pub type Handler = fn(FunctionRequest) -> HandlerFuture;

/// Business handlers by function (folder) name.
pub type Registry = Vec<(&'static str, Handler)>;

/// Every function this binary implements, by folder name. A `function.json` without an
/// entry here is a start-up error. To add a function: a folder with `function.json` (and
/// optionally `auth.json`), a module here, and a line below.
pub fn registry() -> Registry {
    vec![("api-a", api_a::handle)]
}
