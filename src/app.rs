//! The HTTP surface the Functions host talks to: the readiness probe, invocation-mode
//! envelopes and forwarded/proxied requests, all funnelled into [`run_function`], which
//! authenticates, applies the method rules and calls the business handler.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::routing::any;
use http::{HeaderValue, Method, Response, StatusCode, header};
use tracing::info;

use crate::auth::Authenticator;
use crate::auth::Claims;
use crate::error::{AuthError, Challenges};
use crate::functions::{self, FunctionRequest, Handler, Registry};
use crate::layout::AppLayout;
use crate::metadata::{self, ResourceMetadata};
use crate::protocol::invocation;

/// Everything a request needs, built once at start-up.
#[derive(Debug)]
pub struct AppState {
    /// Token verification.
    pub auth: Authenticator,
    /// Routes and modes from host.json / function.json.
    pub layout: AppLayout,
    /// What serves each function, index-aligned with `layout.functions`.
    pub endpoints: Vec<Endpoint>,
    /// Largest request body (or invocation envelope) read.
    pub max_body_bytes: usize,
    /// RFC 9728 metadata, when `AUTH_RESOURCE` is set.
    pub resource_metadata: Option<ResourceMetadata>,
    /// Every challenge header, prebuilt.
    pub challenges: Challenges,
}

/// What answers a function's requests.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint {
    /// A business handler, behind authentication and the function's policy.
    Business(Handler),
    /// The RFC 9728 metadata document (a folder routed to `.well-known/oauth-protected-resource`).
    ResourceMetadata,
}

/// A start-up inconsistency between the function folders and the binary or configuration.
#[derive(Debug, thiserror::Error)]
pub enum UnknownFunction {
    /// A function folder with no handler compiled into this binary.
    #[error("{name}/function.json: function \"{name}\" has no handler in this binary (known: {known})")]
    NoHandler {
        /// The function's folder name.
        name: String,
        /// Functions the binary implements.
        known: String,
    },
    /// A folder routes to the metadata document but `AUTH_RESOURCE` is not set.
    #[error("{name}/function.json: route {route} needs AUTH_RESOURCE to be set")]
    MetadataDisabled {
        /// The function's folder name.
        name: String,
        /// Its route.
        route: &'static str,
    },
    /// A policy names an issuer that is not configured.
    #[error("{name}/auth.json: issuers: {issuer} is not one of the configured issuers (AUTH_ISSUER / AUTH0_DOMAIN)")]
    UnknownIssuer {
        /// The function's folder name.
        name: String,
        /// The issuer named by its policy.
        issuer: String,
    },
}

impl AppState {
    /// Pairs every discovered function with its handler from [`functions::registry`].
    pub fn new(auth: Authenticator, layout: AppLayout, max_body_bytes: usize) -> Result<Self, UnknownFunction> {
        Self::with_registry(auth, layout, functions::registry(), max_body_bytes)
    }

    /// Like [`AppState::new`] with an explicit set of handlers.
    pub fn with_registry(
        auth: Authenticator,
        layout: AppLayout,
        registry: Registry,
        max_body_bytes: usize,
    ) -> Result<Self, UnknownFunction> {
        let mut endpoints = Vec::with_capacity(layout.functions.len());
        for function in &layout.functions {
            if function.route.eq_ignore_ascii_case(metadata::ROUTE) {
                if auth.resource().is_none() {
                    return Err(UnknownFunction::MetadataDisabled {
                        name: function.name.clone(),
                        route: metadata::ROUTE,
                    });
                }
                endpoints.push(Endpoint::ResourceMetadata);
                continue;
            }
            let Some((_, handler)) = registry.iter().find(|(name, _)| name.eq_ignore_ascii_case(&function.name)) else {
                return Err(UnknownFunction::NoHandler {
                    name: function.name.clone(),
                    known: registry.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
                });
            };
            if let Some(issuer) = function.policy.issuers().iter().find(|i| !auth.issuers().any(|c| c == i.as_str())) {
                return Err(UnknownFunction::UnknownIssuer { name: function.name.clone(), issuer: issuer.clone() });
            }
            endpoints.push(Endpoint::Business(*handler));
        }
        let resource_metadata =
            auth.resource().map(|resource| ResourceMetadata::new(resource, auth.issuers(), &layout));
        let mut challenge = auth.challenge_context();
        challenge.resource_metadata = resource_metadata.as_ref().map(|m| m.url.clone());
        let challenges = Challenges::new(challenge);
        Ok(Self { auth, layout, endpoints, max_body_bytes, resource_metadata, challenges })
    }
}

/// The router: `GET /` readiness, everything else routed by [`AppLayout`].
pub fn app(state: Arc<AppState>) -> Router {
    Router::new().route("/", any(ready)).fallback(route).with_state(state)
}

/// Readiness probe and health ping: answered at once, no auth, no I/O.
async fn ready() -> &'static str {
    "OK"
}

async fn route(State(state): State<Arc<AppState>>, request: Request) -> Response<Body> {
    let path = request.uri().path();
    if request.method() == Method::POST
        && let Some(index) = state.layout.invocation_target(path)
    {
        return invocation::handle(&state, index, request).await;
    }
    if let Some(metadata) = &state.resource_metadata
        && metadata.serves(path)
    {
        return metadata_document(metadata, request.method());
    }
    if let Some(index) = state.layout.route_target(path) {
        let (parts, body) = request.into_parts();
        return run_function(&state, index, parts, body).await;
    }
    plain(StatusCode::NOT_FOUND, "Not Found")
}

/// A plain-text response.
pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Runs function `index` for a request in standard `http` form, whichever protocol mode
/// brought it: method check, authentication, then the business handler. The body is only
/// read once the caller is authenticated.
pub async fn run_function(state: &AppState, index: usize, parts: http::request::Parts, body: Body) -> Response<Body> {
    run_function_with(state, index, parts, body, None).await
}

/// As [`run_function`]; with `logs`, the authentication decision is also pushed to it as
/// one line (invocation mode's `Logs`, which the host shows with the invocation).
pub async fn run_function_with(
    state: &AppState,
    index: usize,
    parts: http::request::Parts,
    body: Body,
    logs: Option<&mut Vec<String>>,
) -> Response<Body> {
    let spec = &state.layout.functions[index];
    if let Some(methods) = &spec.methods
        && !methods.contains(&parts.method)
    {
        // Includes CORS preflights (OPTIONS): the business handler never runs unauthenticated.
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        if let Ok(allow) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        return response;
    }

    let handler = match state.endpoints[index] {
        Endpoint::Business(handler) => handler,
        Endpoint::ResourceMetadata => match &state.resource_metadata {
            Some(metadata) => return metadata_document(metadata, &parts.method),
            None => return plain(StatusCode::NOT_FOUND, "Not Found"),
        },
    };
    let started = Instant::now();
    let claims = if spec.policy.is_anonymous() {
        None
    } else {
        let claims = match state.auth.authenticate(&parts.headers).await {
            Ok(claims) => claims,
            Err(error) => return deny(state, &spec.name, error, None, started, logs),
        };
        if let Err(error) = spec.policy.check(&claims) {
            return deny(state, &spec.name, error, Some(&claims), started, logs);
        }
        Some(claims)
    };
    let Ok(body) = axum::body::to_bytes(body, state.max_body_bytes).await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
    };
    let logged = claims.clone();
    let caller = Caller::of(logged.as_deref());
    let response = handler(FunctionRequest { parts, body, claims }).await;
    let (outcome, reason) =
        if spec.policy.is_anonymous() { ("anonymous", "no token required") } else { ("allowed", "valid token") };
    let status = response.status().as_u16();
    Decision { function: &spec.name, outcome, status, reason, caller, started }.record(logs);
    response
}

/// The RFC 9728 document: public, cacheable, GET/HEAD only.
fn metadata_document(metadata: &ResourceMetadata, method: &Method) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = Response::new(Body::from(metadata.document.clone()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

/// Who called, for the decision log ("-" where unknown).
struct Caller<'a> {
    client: &'a str,
    subject: &'a str,
    kid: &'a str,
    issuer: &'a str,
}

impl<'a> Caller<'a> {
    fn of(claims: Option<&'a Claims>) -> Self {
        let field = |f: fn(&'a Claims) -> Option<&'a str>| claims.and_then(f).unwrap_or("-");
        Self {
            client: field(Claims::client_id),
            subject: field(Claims::subject),
            kid: field(Claims::key_id),
            issuer: field(|c| Some(c.issuer())),
        }
    }
}

fn deny(
    state: &AppState,
    function: &str,
    error: AuthError,
    claims: Option<&Claims>,
    started: Instant,
    logs: Option<&mut Vec<String>>,
) -> Response<Body> {
    let (status, reason, caller) = (error.status().as_u16(), error.reason(), Caller::of(claims));
    Decision { function, outcome: "denied", status, reason, caller, started }.record(logs);
    error.into_response(&state.challenges)
}

/// One authentication decision, as logged.
struct Decision<'a> {
    function: &'a str,
    outcome: &'static str,
    status: u16,
    reason: &'static str,
    caller: Caller<'a>,
    started: Instant,
}

impl Decision<'_> {
    /// Writes the decision line; with `logs` (invocation mode), also a copy for the host's
    /// `Logs`.
    fn record(&self, logs: Option<&mut Vec<String>>) {
        let Self { function, outcome, status, reason, caller, started } = self;
        // `message` as a `&str` field (first, as the macros place it) skips `fmt` entirely.
        info!(
            message = "auth decision",
            function,
            outcome,
            status,
            auth.reason = reason,
            client_id = caller.client,
            sub = caller.subject,
            kid = caller.kid,
            iss = caller.issuer,
            duration_us = started.elapsed().as_micros() as u64,
        );
        if let Some(logs) = logs {
            logs.push(format!(
                "auth decision: function={function} outcome={outcome} status={status} reason={reason} client_id={} sub={}",
                caller.client, caller.subject
            ));
        }
    }
}
