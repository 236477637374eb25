//! The HTTP surface the Functions host talks to: the readiness probe, invocation-mode
//! envelopes and forwarded/proxied requests. HTTP functions all go through
//! [`run_function`] (method rules, authentication, policy, then the business handler);
//! non-HTTP triggers through [`invoke_trigger`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::any;
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde_json::Value;
use tracing::{info, warn};

use crate::auth::Authenticator;
use crate::auth::Claims;
use crate::auth::bearer::Scheme;
use crate::body::{self, Admitted};
use crate::correlation::Correlation;
use crate::error::{Challenges, Offer, Refusal};
use crate::extract::{Invocation, OutputData, Outputs, Problem, Refuse};
use crate::functions::{self, BoxedHandler, Functions};
use crate::layout::{AppLayout, Direction, FunctionSpec, RouteMatch};
use crate::logs::{self as applog, Entry};
use crate::metadata::{self, ResourceMetadata};
use crate::protocol::invocation::{
    self as envelope, ENVELOPE_OVERHEAD_BYTES, HttpAnswer, InputValues, OutputValue, Shape,
};
use crate::route::RouteValues;

/// The largest body an invocation envelope may carry, whatever a function's
/// `maxBodyBytes`: the envelope is read whole (its body is a JSON string), and the host
/// itself refuses larger requests (`DefaultMaxRequestBodySize`, 100 MB, PROTOCOL.md §3).
/// Raising it would only let one invocation hold more memory.
pub const ENVELOPE_BODY_CAP: u64 = 100 * 1024 * 1024;

/// Everything a request needs, built once at start-up.
#[derive(Debug)]
pub struct AppState {
    /// Token verification.
    pub auth: Authenticator,
    /// Routes and modes from host.json / function.json.
    pub layout: AppLayout,
    /// What serves each function, index-aligned with `layout.functions`.
    pub endpoints: Vec<Endpoint>,
    /// Largest request body a function reads unless its `maxBodyBytes` says otherwise
    /// (`HANDLER_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// RFC 9728 metadata, when `AUTH_RESOURCE` is set.
    pub resource_metadata: Option<ResourceMetadata>,
    /// Every challenge header, prebuilt (shared with handlers through [`Refuse`]).
    pub challenges: Arc<Challenges>,
}

/// What answers a function's requests.
#[derive(Clone)]
pub enum Endpoint {
    /// A business handler (behind authentication and the policy for HTTP functions).
    Business {
        /// The function's name, shared with the handler's [`Logger`](crate::extract::Logger).
        name: Arc<str>,
        /// The handler.
        handler: BoxedHandler,
    },
    /// The RFC 9728 metadata document (a folder routed to `.well-known/oauth-protected-resource`).
    ResourceMetadata,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Business { name, .. } => f.debug_tuple("Business").field(name).finish(),
            Self::ResourceMetadata => f.write_str("ResourceMetadata"),
        }
    }
}

/// A start-up inconsistency between the function folders and the binary or configuration.
#[derive(Debug, thiserror::Error)]
pub enum UnknownFunction {
    /// A function folder with no handler registered.
    #[error("{name}/function.json: function \"{name}\" has no handler in this binary (known: {known})")]
    NoHandler {
        /// The function's folder name.
        name: String,
        /// Functions the binary implements.
        known: String,
    },
    /// Two handlers registered under one name.
    #[error("function \"{0}\" is registered twice")]
    Duplicate(String),
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
    /// `organizationFromRoute` names a parameter the function's route does not have.
    #[error("{name}/auth.json: organizationFromRoute: the route has no parameter {{{parameter}}}")]
    OrganizationRouteParameter {
        /// The function's folder name.
        name: String,
        /// The parameter named by its policy.
        parameter: String,
    },
    /// A policy requires DPoP but `AUTH_PUBLIC_URL` (which proofs are checked against) is not set.
    #[error("{name}/auth.json: \"dpop\": \"required\" needs AUTH_PUBLIC_URL to be set (the URL DPoP proofs name)")]
    DpopWithoutPublicUrl {
        /// The function's folder name.
        name: String,
    },
    /// An `auth.json` beside a non-HTTP trigger, which the host calls without a token.
    #[error(
        "{name}/auth.json: {trigger} functions are called by the host, not by clients with tokens; remove auth.json"
    )]
    PolicyOnTrigger {
        /// The function's folder name.
        name: String,
        /// Its trigger type.
        trigger: String,
    },
}

impl AppState {
    /// Pairs every discovered function with its handler from [`functions::builtin`].
    pub fn new(auth: Authenticator, layout: AppLayout, max_body_bytes: usize) -> Result<Self, UnknownFunction> {
        Self::with_functions(auth, layout, functions::builtin(), max_body_bytes)
    }

    /// Like [`AppState::new`] with the app's own functions.
    pub fn with_functions(
        auth: Authenticator,
        layout: AppLayout,
        functions: Functions,
        max_body_bytes: usize,
    ) -> Result<Self, UnknownFunction> {
        let handlers = functions.into_handlers();
        for (i, (name, _)) in handlers.iter().enumerate() {
            if handlers[..i].iter().any(|(other, _)| other.eq_ignore_ascii_case(name)) {
                return Err(UnknownFunction::Duplicate(name.clone()));
            }
        }
        let mut endpoints = Vec::with_capacity(layout.functions.len());
        for function in &layout.functions {
            if let Some(route) = &function.route
                && metadata::is_route(route.text(), auth.resource())
            {
                if auth.resource().is_none() {
                    return Err(UnknownFunction::MetadataDisabled {
                        name: function.name.clone(),
                        route: metadata::ROUTE,
                    });
                }
                endpoints.push(Endpoint::ResourceMetadata);
                continue;
            }
            let registered = handlers.iter().find(|(name, _)| name.eq_ignore_ascii_case(&function.name));
            if registered.is_none()
                && function.is_http()
                && function.route.as_ref().is_some_and(|route| crate::openapi::is_route(route.text()))
            {
                // The app's OpenAPI document, behind the folder's own key and policy like
                // any function (`auth.json` `{"anonymous": true}` makes it public).
                let handler = openapi_handler(&layout, &auth);
                endpoints.push(Endpoint::Business { name: Arc::from(function.name.as_str()), handler });
                continue;
            }
            let Some((_, handler)) = registered else {
                return Err(UnknownFunction::NoHandler {
                    name: function.name.clone(),
                    known: handlers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
                });
            };
            if !function.is_http() && function.policy != crate::auth::policy::Policy::default() {
                return Err(UnknownFunction::PolicyOnTrigger {
                    name: function.name.clone(),
                    trigger: function.trigger_type.clone(),
                });
            }
            if function.policy.dpop() == Some(crate::auth::dpop::DpopMode::Required) && !auth.dpop_enabled() {
                return Err(UnknownFunction::DpopWithoutPublicUrl { name: function.name.clone() });
            }
            if let Some(parameter) = function.policy.organization_route_parameter()
                && !function
                    .route
                    .as_ref()
                    .is_some_and(|r| r.parameter_names().any(|n| n.eq_ignore_ascii_case(parameter)))
            {
                let (name, parameter) = (function.name.clone(), parameter.to_owned());
                return Err(UnknownFunction::OrganizationRouteParameter { name, parameter });
            }
            if let Some(issuer) = function.policy.issuers().iter().find(|i| !auth.issuers().any(|c| c == i.as_str())) {
                return Err(UnknownFunction::UnknownIssuer { name: function.name.clone(), issuer: issuer.clone() });
            }
            endpoints.push(Endpoint::Business { name: Arc::from(function.name.as_str()), handler: handler.clone() });
        }
        for (name, _) in &handlers {
            if !layout.functions.iter().any(|f| f.name.eq_ignore_ascii_case(name)) {
                warn!(function = name.as_str(), "a handler is registered but no function folder uses it");
            }
        }
        let resource_metadata =
            auth.resource().map(|resource| ResourceMetadata::new(resource, &auth.authorization_servers(), &layout));
        let mut challenge = auth.challenge_context();
        challenge.resource_metadata = resource_metadata.as_ref().map(|m| m.url.clone());
        let mut challenges = Challenges::new(challenge);
        if auth.dpop_enabled() {
            challenges = challenges.with_dpop(auth.dpop_algs());
        }
        let challenges = Arc::new(challenges);
        Ok(Self { auth, layout, endpoints, max_body_bytes, resource_metadata, challenges })
    }
}

impl AppState {
    /// The largest request body function `index` reads: its `maxBodyBytes`, else
    /// `HANDLER_MAX_BODY_BYTES`.
    pub fn body_limit(&self, index: usize) -> u64 {
        self.layout.functions[index].max_body_bytes.unwrap_or(self.max_body_bytes as u64)
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
        return invoke(&state, index, request).await;
    }
    if let Some(metadata) = &state.resource_metadata
        && metadata.serves(path)
    {
        return metadata_document(metadata, request.method());
    }
    match state.layout.route_target(request.method(), path) {
        RouteMatch::Found { index, values } => {
            let (parts, body) = request.into_parts();
            let correlation = Correlation::from_headers(&parts.headers);
            let context = Context { values, correlation: Some(correlation.clone()), ..Context::default() };
            let response = run_function(&state, index, parts, body, context).await;
            forwarded(&state.layout.functions[index], response, &correlation)
        }
        RouteMatch::MethodNotAllowed { index } => method_not_allowed(&state.layout.functions[index]),
        RouteMatch::NotFound => plain(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// A plain-text response.
pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, const { HeaderValue::from_static("text/plain; charset=utf-8") });
    response
}

fn method_not_allowed(spec: &FunctionSpec) -> Response<Body> {
    // Includes CORS preflights (OPTIONS): the business handler never runs unauthenticated.
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    if let Some(methods) = &spec.methods {
        let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        if let Ok(allow) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    response
}

/// What a request brings besides its `http` form.
#[derive(Default)]
pub struct Context<'a> {
    /// Route values (matched here, or the host's `Params`).
    pub values: RouteValues,
    /// Input binding values (invocation mode).
    pub inputs: InputValues,
    /// Invocation mode's `Logs`: the decision line and the handler's [`Logger`] lines go
    /// there (the host shows them with the invocation).
    ///
    /// [`Logger`]: crate::extract::Logger
    pub logs: Option<&'a mut Vec<String>>,
    /// The invocation id and trace context for log lines; read from the request's headers
    /// when `None` (forwarding and proxy mode).
    pub correlation: Option<Correlation>,
    /// Where the handler's [`Logger`](crate::extract::Logger) lines go, when the caller
    /// takes them itself (invocation mode); else, with `logs`, they are appended there.
    pub(crate) sink: Option<crate::logs::LogSink>,
}

/// Runs HTTP function `index` for a request in standard `http` form, whichever protocol
/// mode brought it: method check, authentication, policy, then the business handler. The
/// body is never collected here: the handler gets it as it streams, once the caller passed
/// authentication and the policy, under the function's size limit. Output bindings the handler set
/// stay in the response's extensions (as [`Outputs`]).
pub async fn run_function(
    state: &AppState,
    index: usize,
    mut parts: http::request::Parts,
    body: Body,
    context: Context<'_>,
) -> Response<Body> {
    strip_principal_headers(&mut parts.headers);
    let spec = &state.layout.functions[index];
    let Context { values, inputs, mut logs, correlation, sink } = context;
    if let Some(methods) = &spec.methods
        && !methods.contains(&parts.method)
    {
        return method_not_allowed(spec);
    }

    let (name, handler) = match &state.endpoints[index] {
        Endpoint::Business { name, handler } => (name, handler),
        Endpoint::ResourceMetadata => match &state.resource_metadata {
            Some(metadata) => return metadata_document(metadata, &parts.method),
            None => return plain(StatusCode::NOT_FOUND, "Not Found"),
        },
    };
    let started = Instant::now();
    let correlation = correlation.unwrap_or_else(|| Correlation::from_headers(&parts.headers));
    let correlation = &correlation;
    let mut next_nonce = None;
    let mut refuse = None;
    let claims = if spec.policy.is_anonymous() {
        None
    } else {
        let mode = state.auth.dpop_mode(spec.policy.dpop());
        let authenticated = match state.auth.authenticate_request(&parts, mode).await {
            Ok(authenticated) => authenticated,
            Err(refusal) => return deny(state, &spec.name, refusal, None, (started, correlation), logs),
        };
        let claims = authenticated.claims;
        if let Err(error) = spec.policy.check(&claims, &values, crate::auth::unix_now(), state.auth.clock_skew()) {
            let refusal = state.auth.refusal(error, Some(authenticated.scheme), mode);
            return deny(state, &spec.name, refusal, Some(&claims), (started, correlation), logs);
        }
        next_nonce = authenticated.nonce;
        let offer = match authenticated.scheme {
            Scheme::Bearer => Offer::Bearer,
            Scheme::Dpop => Offer::Dpop,
        };
        refuse = Some(Refuse::new(state.challenges.clone(), offer));
        Some(claims)
    };
    // The body goes on as it streams: only its declared length is checked here, so a
    // refused request never had a byte of it read.
    let (body, exceeded) = match body::admit(body, state.body_limit(index)) {
        Admitted::Whole(body) => (body, None),
        Admitted::Watched(body, exceeded) => (body, Some(exceeded)),
        Admitted::TooLarge => {
            let caller = Caller::of(&state.auth, claims.as_deref());
            let (status, reason) = (StatusCode::PAYLOAD_TOO_LARGE.as_u16(), "request body too large");
            Decision { function: &spec.name, outcome: "denied", status, reason, caller, started, correlation }
                .record(logs);
            return too_large();
        }
    };
    let caller_claims = claims.clone();
    // A sink the caller gave is drained by the caller; one made here goes into `logs`.
    let (sink, own_sink) = match sink {
        Some(sink) => (Some(sink), false),
        None => (logs.is_some().then(|| Arc::new(Mutex::new(Vec::new()))), true),
    };
    let mut request = Request::from_parts(parts, body);
    let extensions = request.extensions_mut();
    if let Some(claims) = claims {
        extensions.insert(claims);
    }
    if let Some(refuse) = refuse {
        extensions.insert(refuse);
    }
    extensions.insert(values);
    extensions.insert(correlation.clone());
    extensions.insert(Invocation { function: name.clone(), inputs, payload: None, metadata: None, logs: sink.clone() });
    let mut response = handler(request).await;
    if exceeded.is_some_and(|exceeded| exceeded.get()) {
        // Whatever the handler made of the error its body read gave (a 400, a 500, a
        // partial answer), the caller sent too much.
        response = too_large();
    }
    if let Some(nonce) = next_nonce {
        response.headers_mut().insert(crate::error::DPOP_NONCE, nonce);
    }
    let (outcome, reason) =
        if spec.policy.is_anonymous() { ("anonymous", "no token required") } else { ("allowed", "valid token") };
    let status = response.status().as_u16();
    let caller = Caller::of(&state.auth, caller_claims.as_deref());
    Decision { function: &spec.name, outcome, status, reason, caller, started, correlation }
        .record(logs.as_deref_mut());
    if let (Some(logs), Some(sink), true) = (logs, sink, own_sink) {
        logs.extend(applog::drain(&sink).iter().map(Entry::for_host));
    }
    response
}

/// 413 for a body over the function's limit, as the [`Json`](crate::extract::Json)
/// extractor answers it.
fn too_large() -> Response<Body> {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE)
        .detail("The request body is larger than this function accepts")
        .into_response()
}

/// A response going back as plain HTTP (forwarding/proxy mode, or a direct call): output
/// bindings cannot be delivered that way (the host only takes them from an invocation
/// result, and calls functions that declare them in invocation mode).
fn forwarded(spec: &FunctionSpec, mut response: Response<Body>, correlation: &Correlation) -> Response<Body> {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body is never read: say the connection ends with this answer
        // (RFC 9110 §15.5.14), so the host does not send its next request on it.
        response.headers_mut().insert(header::CONNECTION, const { HeaderValue::from_static("close") });
    }
    if let Some(outputs) = response.extensions_mut().remove::<Outputs>() {
        let names: Vec<&str> = outputs.0.iter().map(|(name, _)| name.as_str()).collect();
        warn!(
            function = %spec.name,
            outputs = ?names,
            invocation_id = correlation.invocation_id(),
            trace_id = correlation.trace_id(),
            parent_id = correlation.parent_id(),
            "output bindings dropped: this request did not come as an invocation (only the host delivers outputs)"
        );
    }
    response
}

/// Handles `POST /<Function>` from the host.
async fn invoke(state: &AppState, index: usize, request: Request) -> Response<Body> {
    let spec = &state.layout.functions[index];
    let body_limit = usize::try_from(state.body_limit(index).min(ENVELOPE_BODY_CAP)).unwrap_or(usize::MAX);
    let limit = body_limit.saturating_add(ENVELOPE_OVERHEAD_BYTES);
    let (host, body) = request.into_parts();
    let Some(envelope) = body::collect(body, limit).await else {
        let correlation = Correlation::from_headers(&host.headers);
        let (invocation_id, trace_id, parent_id) =
            (correlation.invocation_id(), correlation.trace_id(), correlation.parent_id());
        warn!(function = %spec.name, limit, invocation_id, trace_id, parent_id, "invocation payload too large");
        let line = format!("invocation payload for {} exceeds {limit} bytes", spec.name);
        if !spec.is_http() {
            return failed(StatusCode::PAYLOAD_TOO_LARGE, line);
        }
        return http_result(spec, too_large(), vec![line], None).await;
    };
    if spec.is_http() {
        invoke_http(state, index, &host.headers, &envelope).await
    } else {
        let correlation = Correlation::from_headers(&host.headers);
        invoke_trigger_correlated(state, index, &envelope, correlation).await
    }
}

fn input_names(spec: &FunctionSpec) -> Vec<&str> {
    spec.bindings.iter().filter(|b| b.direction != Direction::Out).map(|b| b.name.as_str()).collect()
}

/// An HTTP function called with an envelope. A malformed envelope is answered inside the
/// envelope as a 400 for the caller, with the reason in `Logs`: a non-2xx answer would only
/// make the host turn it into an empty 500.
async fn invoke_http(state: &AppState, index: usize, host: &http::HeaderMap, envelope: &Bytes) -> Response<Body> {
    let spec = &state.layout.functions[index];
    let inputs = input_names(spec);
    let invocation = match envelope::http_invocation(Shape { trigger: &spec.trigger, inputs: &inputs }, envelope) {
        Ok(invocation) => invocation,
        Err(error) => {
            let correlation = Correlation::from_headers(host);
            let (invocation_id, trace_id, parent_id) =
                (correlation.invocation_id(), correlation.trace_id(), correlation.parent_id());
            warn!(function = %spec.name, error = %error, invocation_id, trace_id, parent_id, "malformed invocation payload");
            let answer = plain(StatusCode::BAD_REQUEST, "Malformed invocation request");
            return http_result(spec, answer, vec![error.to_string()], None).await;
        }
    };
    // The invocation id is the host's (its own request); the trace context the client's.
    let correlation = Correlation::from_invocation(host, invocation.request.headers());
    // Route values are the host's `Params`, re-checked against the template: a value the
    // template would not have matched never reaches the handler.
    let values = match &spec.route {
        Some(route) if route.has_parameters() => {
            let params = invocation.params.iter().map(|(name, value)| (name.as_str(), value.as_deref()));
            match route.accept_values(params) {
                Some(values) => values,
                None => {
                    let line = format!("route values for {} do not match its route template", spec.name);
                    return http_result(spec, plain(StatusCode::NOT_FOUND, "Not Found"), vec![line], None).await;
                }
            }
        }
        _ => RouteValues::default(),
    };
    let (parts, body) = invocation.request.into_parts();
    let mut logs = Vec::new();
    let sink: crate::logs::LogSink = Arc::new(Mutex::new(Vec::new()));
    let context = Context {
        values,
        inputs: invocation.inputs,
        logs: Some(&mut logs),
        correlation: Some(correlation.clone()),
        sink: Some(sink.clone()),
    };
    let response = run_function(state, index, parts, Body::from(body), context).await;
    let entries = applog::drain(&sink);
    logs.extend(entries.iter().map(Entry::for_host));
    http_result(spec, response, logs, Some((&correlation, &entries))).await
}

/// A non-HTTP trigger (timer, queue, blob, ...): no token is asked for (the host calls
/// these, not a client). A handler answer outside 2xx fails the invocation, as the host
/// reads a non-2xx answer, so the platform retries (queues) or records the failure.
pub async fn invoke_trigger(state: &AppState, index: usize, envelope: &Bytes) -> Response<Body> {
    invoke_trigger_correlated(state, index, envelope, Correlation::default()).await
}

/// [`invoke_trigger`] for an invocation with the ids of the host's request: on its log
/// lines, offered to the handler, and on the handler's [`Logger`](crate::extract::Logger)
/// lines when they go to stdout/stderr (the invocation failed, so the host drops `Logs`).
pub async fn invoke_trigger_correlated(
    state: &AppState,
    index: usize,
    envelope: &Bytes,
    correlation: Correlation,
) -> Response<Body> {
    let spec = &state.layout.functions[index];
    let (invocation_id, trace_id, parent_id) =
        (correlation.invocation_id(), correlation.trace_id(), correlation.parent_id());
    let Endpoint::Business { name, handler } = &state.endpoints[index] else {
        return failed(StatusCode::NOT_FOUND, format!("{} has no handler", spec.name));
    };
    let started = Instant::now();
    let inputs = input_names(spec);
    let invocation = match envelope::trigger_invocation(Shape { trigger: &spec.trigger, inputs: &inputs }, envelope) {
        Ok(invocation) => invocation,
        Err(error) => {
            warn!(function = %spec.name, error = %error, invocation_id, "malformed invocation payload");
            return failed(StatusCode::BAD_REQUEST, error.to_string());
        }
    };
    let sink: crate::logs::LogSink = Arc::new(Mutex::new(Vec::new()));
    let mut request = Request::new(Body::from(invocation.payload.clone()));
    *request.method_mut() = Method::POST;
    if let Ok(uri) = format!("/{}", spec.name).parse() {
        *request.uri_mut() = uri;
    }
    request.headers_mut().insert(header::CONTENT_TYPE, const { HeaderValue::from_static("application/json") });
    request.extensions_mut().insert(correlation.clone());
    request.extensions_mut().insert(Invocation {
        function: name.clone(),
        inputs: invocation.inputs,
        payload: Some(invocation.payload),
        metadata: Some(invocation.metadata),
        logs: Some(sink.clone()),
    });
    let mut response = handler(request).await;
    let status = response.status();
    let outputs = response.extensions_mut().remove::<Outputs>();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
    let duration_us = started.elapsed().as_micros() as u64;
    let entries = applog::drain(&sink);
    if !status.is_success() {
        let detail = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
        warn!(
            function = %spec.name,
            status = status.as_u16(),
            detail = detail.as_str(),
            duration_us,
            invocation_id,
            trace_id,
            parent_id,
            "invocation failed"
        );
        // The host drops `Logs` of a non-2xx answer: the lines go to stdout/stderr.
        applog::rescue(&spec.name, &correlation, &entries);
        return failed(status, format!("{} failed with status {}", spec.name, status.as_u16()));
    }
    let mut values = match output_values(spec, outputs) {
        Ok(values) => values,
        Err(problem) => {
            let text = problem.as_str();
            warn!(function = %spec.name, problem = text, invocation_id, trace_id, parent_id, "invocation failed");
            applog::rescue(&spec.name, &correlation, &entries);
            return failed(StatusCode::INTERNAL_SERVER_ERROR, problem);
        }
    };
    let logs: Vec<String> = entries.iter().map(Entry::for_host).collect();
    if let Some(binding) = spec.output_binding("$return") {
        values.push(("$return".to_owned(), return_value(content_type.as_ref(), &body), binding.binary));
    }
    info!(
        function = %spec.name,
        trigger = %spec.trigger_type,
        status = status.as_u16(),
        duration_us,
        invocation_id,
        trace_id,
        parent_id,
        "invocation"
    );
    let outputs: Vec<OutputValue<'_>> =
        values.iter().map(|(name, value, verbatim)| OutputValue { name, value, verbatim: *verbatim }).collect();
    json_answer(envelope::invocation_result(None, &outputs, &logs))
}

/// A trigger handler's body as `ReturnValue`: JSON when it says so, else text.
fn return_value(content_type: Option<&HeaderValue>, body: &[u8]) -> Value {
    let json = content_type.and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    match json.then(|| serde_json::from_slice(body).ok()).flatten() {
        Some(value) => value,
        None if body.is_empty() => Value::Null,
        None => Value::String(String::from_utf8_lossy(body).into_owned()),
    }
}

/// Output values checked against the function's declared output bindings: a name it does
/// not declare (case-sensitive, as the host looks them up) or a value that failed to
/// serialize is an error, never a silently lost message.
fn output_values(spec: &FunctionSpec, outputs: Option<Outputs>) -> Result<Vec<(String, Value, bool)>, String> {
    let Some(outputs) = outputs else { return Ok(Vec::new()) };
    outputs
        .0
        .into_iter()
        .map(|(name, data)| {
            let Some(binding) = spec.output_binding(&name) else {
                return Err(format!("{}: output binding {name:?} is not declared in function.json", spec.name));
            };
            match data {
                OutputData::Json(value) => Ok((name, value, binding.binary)),
                OutputData::Bytes(bytes) => {
                    use base64::Engine;
                    Ok((name, Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)), true))
                }
                OutputData::Invalid(error) => Err(format!("{}: output binding {name:?}: {error}", spec.name)),
            }
        })
        .collect()
}

/// An HTTP function's response (and output values) as the invocation result. `app` holds
/// the handler's log lines, written to stdout/stderr if the invocation fails (the host
/// would drop them with `Logs`).
async fn http_result(
    spec: &FunctionSpec,
    mut response: Response<Body>,
    logs: Vec<String>,
    app: Option<(&Correlation, &[Entry])>,
) -> Response<Body> {
    let outputs = response.extensions_mut().remove::<Outputs>();
    let values = match output_values(spec, outputs) {
        Ok(values) => values,
        Err(problem) => {
            let none = Correlation::default();
            let correlation = app.map_or(&none, |(correlation, _)| correlation);
            let (invocation_id, trace_id, parent_id) =
                (correlation.invocation_id(), correlation.trace_id(), correlation.parent_id());
            let text = problem.as_str();
            warn!(function = %spec.name, problem = text, invocation_id, trace_id, parent_id, "invocation failed");
            if let Some((correlation, entries)) = app {
                applog::rescue(&spec.name, correlation, entries);
            }
            return failed(StatusCode::INTERNAL_SERVER_ERROR, problem);
        }
    };
    let (parts, body) = response.into_parts();
    // Handler bodies are small text; a body that fails to collect becomes empty.
    let body = body::collect(body, usize::MAX).await.unwrap_or_default();
    let binding = spec.output.as_deref().unwrap_or("res");
    let http = HttpAnswer { binding, status: parts.status, headers: &parts.headers, body: &body };
    let outputs: Vec<OutputValue<'_>> =
        values.iter().map(|(name, value, verbatim)| OutputValue { name, value, verbatim: *verbatim }).collect();
    json_answer(envelope::invocation_result(Some(http), &outputs, &logs))
}

fn json_answer(result: String) -> Response<Body> {
    let mut response = Response::new(Body::from(result));
    response.headers_mut().insert(header::CONTENT_TYPE, const { HeaderValue::from_static("application/json") });
    response
}

/// A failed invocation as the host reads one: any non-2xx answer (PROTOCOL.md §5.2). The
/// host does not read the body; it is for people calling the port by hand.
fn failed(status: StatusCode, text: String) -> Response<Body> {
    let status = if status.is_success() { StatusCode::INTERNAL_SERVER_ERROR } else { status };
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, const { HeaderValue::from_static("text/plain; charset=utf-8") });
    response
}

/// Serves the OpenAPI document of `layout` (see [`crate::openapi`]), built once here; the
/// title is the Function App's name (`WEBSITE_SITE_NAME`, set by App Service) or `app`.
fn openapi_handler(layout: &AppLayout, auth: &Authenticator) -> BoxedHandler {
    let title = std::env::var("WEBSITE_SITE_NAME").unwrap_or_else(|_| "app".to_owned());
    let document = Bytes::from(crate::openapi::document_for(layout, auth.first_issuer(), &title).to_string());
    Arc::new(move |request: Request| {
        let answer = json_document(request.method(), document.clone(), None);
        Box::pin(async move { answer })
    })
}

/// The RFC 9728 document: public, cacheable, GET/HEAD only.
fn metadata_document(metadata: &ResourceMetadata, method: &Method) -> Response<Body> {
    let cache = const { HeaderValue::from_static("public, max-age=3600") };
    json_document(method, Bytes::from(metadata.document.clone()), Some(cache))
}

/// A JSON document built at start-up, for GET and HEAD (405 with `Allow` otherwise).
fn json_document(method: &Method, document: Bytes, cache_control: Option<HeaderValue>) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        response.headers_mut().insert(header::ALLOW, const { HeaderValue::from_static("GET, HEAD") });
        return response;
    }
    let mut response = Response::new(Body::from(document));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, const { HeaderValue::from_static("application/json") });
    if let Some(cache_control) = cache_control {
        headers.insert(header::CACHE_CONTROL, cache_control);
    }
    response
}

/// Who called, for the decision log ("-" where unknown).
struct Caller<'a> {
    client: &'a str,
    subject: &'a str,
    kid: &'a str,
    issuer: &'a str,
    /// `fresh`, `stale` or `snapshot`: where the issuer's keys came from (see
    /// [`crate::auth::keystore::Freshness`]), so stale service shows on every line.
    keys: &'static str,
}

impl<'a> Caller<'a> {
    fn of(auth: &Authenticator, claims: Option<&'a Claims>) -> Self {
        let field = |f: fn(&'a Claims) -> Option<&'a str>| claims.and_then(f).unwrap_or("-");
        Self {
            client: field(Claims::client_id),
            subject: field(Claims::subject),
            kid: field(Claims::key_id),
            issuer: field(|c| Some(c.issuer())),
            keys: claims.map_or("-", |c| auth.key_freshness(c.issuer()).as_str()),
        }
    }
}

fn deny(
    state: &AppState,
    function: &str,
    refusal: Refusal,
    claims: Option<&Claims>,
    (started, correlation): (Instant, &Correlation),
    logs: Option<&mut Vec<String>>,
) -> Response<Body> {
    let error = &refusal.error;
    // A token that is no JWS at all gets the reason and the fix (the client's answer stays
    // the fixed RFC 6750 text).
    let reason = match error {
        crate::error::AuthError::InvalidToken(rejection) => state.auth.diagnosis(*rejection),
        _ => None,
    }
    .unwrap_or_else(|| error.reason());
    let (status, caller) = (error.status().as_u16(), Caller::of(&state.auth, claims));
    Decision { function, outcome: "denied", status, reason, caller, started, correlation }.record(logs);
    refusal.into_response(&state.challenges)
}

/// One authentication decision, as logged.
struct Decision<'a> {
    function: &'a str,
    outcome: &'static str,
    status: u16,
    reason: &'a str,
    caller: Caller<'a>,
    started: Instant,
    correlation: &'a Correlation,
}

impl Decision<'_> {
    /// Writes the decision line; with `logs` (invocation mode), also a copy for the host's
    /// `Logs`.
    fn record(&self, logs: Option<&mut Vec<String>>) {
        let Self { function, outcome, status, reason, caller, started, correlation } = self;
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
            keys = caller.keys,
            duration_us = started.elapsed().as_micros() as u64,
            invocation_id = correlation.invocation_id(),
            trace_id = correlation.trace_id(),
            parent_id = correlation.parent_id(),
        );
        if let Some(logs) = logs {
            // Pieces pushed one by one: `format!` with six arguments costs several times this.
            let status = StatusCode::from_u16(*status).ok();
            let parts = [
                "auth decision: function=",
                function,
                " outcome=",
                outcome,
                " status=",
                status.as_ref().map_or("000", StatusCode::as_str),
                " reason=",
                reason,
                " client_id=",
                caller.client,
                " sub=",
                caller.subject,
            ];
            let mut line = String::with_capacity(parts.iter().map(|p| p.len()).sum());
            parts.iter().for_each(|part| line.push_str(part));
            logs.push(line);
        }
    }
}

/// Removes `X-MS-CLIENT-PRINCIPAL*` and `X-MS-TOKEN-*`: only App Service authentication sets
/// them, and without it any caller can, so business code written for Easy Auth would trust a
/// forged identity.
fn strip_principal_headers(headers: &mut http::HeaderMap) {
    let forged: Vec<_> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.starts_with("x-ms-client-principal") || name.starts_with("x-ms-token-")
        })
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_and_token_headers_are_stripped_and_others_kept() {
        let mut headers = http::HeaderMap::new();
        for name in [
            "x-ms-client-principal-id",
            "X-MS-CLIENT-PRINCIPAL",
            "x-ms-client-principal-name",
            "x-ms-token-aad-id-token",
        ] {
            headers.insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_static("admin"));
        }
        headers.insert("x-ms-request-id", HeaderValue::from_static("keep"));
        strip_principal_headers(&mut headers);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["x-ms-request-id"], "keep");
    }
}
