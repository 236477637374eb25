//! Testing an app's functions as the Functions host calls them, in plain `cargo test`: no
//! ports, no processes, no identity provider. Behind the `testing` feature, for an app's
//! `[dev-dependencies]`:
//!
//! ```toml
//! [dev-dependencies]
//! azfn-auth = { path = "..", features = ["testing"] }
//! ```
//!
//! - [`TestIssuer`] is an issuer with its own RSA key that signs access tokens
//!   (`issuer.token().scope("read:orders").permission("create:orders").sign()`); the app
//!   trusts it and nothing else.
//! - [`TestApp`] serves a [`Functions`] app with its app root (`host.json`, the function
//!   folders and their `auth.json`) in process, and [`TestApp::get`] / [`TestApp::post`] /
//!   [`TestApp::trigger`] send requests the way the host would in the app's mode: the raw
//!   request at its public path when the host forwards or proxies it, the invocation
//!   envelope (`POST /<function>` with `Data`, `Metadata`, input bindings) otherwise, and
//!   non-HTTP triggers through the envelope. A [`TestResponse`] is what the caller (or the
//!   host, for a trigger) gets: status, headers, body, output bindings and logs.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use azfn_auth::testing::{TestApp, TestIssuer};
//!
//! let issuer = TestIssuer::new();
//! // The app root with host.json and the function folders: here this crate's own, whose
//! // one function `api-a` takes any valid token.
//! let app = TestApp::builder(env!("CARGO_MANIFEST_DIR"))
//!     .issuer(&issuer)
//!     .build(azfn_auth::functions::builtin())
//!     .unwrap();
//! let token = issuer.token().scope("read:orders").sign();
//! let answer = app.get("/api/api-a").bearer(&token).send().await;
//! assert_eq!(answer.status, 200);
//! assert_eq!(answer.text(), "Authentication successful");
//! assert_eq!(app.get("/api/api-a").send().await.status, 401);
//! # }
//! ```
//!
//! What the host does before it calls a handler and the kit leaves out: the function key
//! check (`authLevel`), and the host's own limits and throttles. Output binding values are
//! as the handler sent them, before the host's conversions (PROTOCOL.md §5.2).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::Router;
use axum::body::{Body, Bytes};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::app::{AppState, UnknownFunction, app};
use crate::auth::Authenticator;
use crate::config::{AuthConfig, KeySource};
use crate::functions::Functions;
use crate::layout::{AppLayout, Direction, FunctionSpec, HostMode, LayoutError, RouteMatch};

/// The issuer a [`TestIssuer::new`] signs as.
pub const TEST_ISSUER: &str = "https://issuer.example.test/";
/// The audience a [`TestIssuer::new`]'s tokens are for, and the app accepts.
pub const TEST_AUDIENCE: &str = "https://api.example.test";

/// An issuer with its own RSA key (generated for each one, never written anywhere).
pub struct TestIssuer {
    issuer: String,
    audience: String,
    key: KeyPair,
    public_key_pem: String,
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuer").field("issuer", &self.issuer).field("audience", &self.audience).finish()
    }
}

impl Default for TestIssuer {
    fn default() -> Self {
        Self::new()
    }
}

impl TestIssuer {
    /// [`TEST_ISSUER`], tokens for [`TEST_AUDIENCE`].
    pub fn new() -> Self {
        Self::named(TEST_ISSUER, TEST_AUDIENCE)
    }

    /// An issuer `issuer` whose tokens are for `audience` (an Auth0 tenant's
    /// `https://<tenant>.auth0.com/` and an API identifier, say).
    pub fn named(issuer: &str, audience: &str) -> Self {
        #[allow(clippy::expect_used)] // only fails when the system has no random source
        let key = KeyPair::generate(KeySize::Rsa2048).expect("generate an RSA key");
        let public_key_pem = public_key_pem(&key);
        Self { issuer: issuer.to_owned(), audience: audience.to_owned(), key, public_key_pem }
    }

    /// The `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of its tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Its public key (SubjectPublicKeyInfo PEM), as `AUTH_PUBLIC_KEY` takes one.
    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }

    /// Token settings that trust this issuer only, for its audience, with every other
    /// setting at its default (change fields before [`TestAppBuilder::auth`]).
    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig::new(&self.issuer, KeySource::StaticPem(self.public_key_pem.clone()), vec![self.audience.clone()])
    }

    /// A token to build: `sub` `test|user`, this issuer and audience, valid for an hour.
    pub fn token(&self) -> TokenBuilder<'_> {
        let now = unix_now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!("test|user"));
        claims.insert("aud".into(), json!(self.audience));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 3600));
        TokenBuilder { issuer: self, claims, scopes: Vec::new(), permissions: Vec::new(), typ: "JWT" }
    }
}

fn public_key_pem(key: &KeyPair) -> String {
    #[allow(clippy::expect_used)] // serializing a key aws-lc just made
    let der = key.public_key().as_der().expect("encode the public key");
    let encoded = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An access token being built by [`TestIssuer::token`]; [`TokenBuilder::sign`] makes it.
#[derive(Debug, Clone)]
pub struct TokenBuilder<'a> {
    issuer: &'a TestIssuer,
    claims: Map<String, Value>,
    scopes: Vec<String>,
    permissions: Vec<String>,
    typ: &'static str,
}

impl TokenBuilder<'_> {
    /// `sub`.
    pub fn subject(mut self, subject: &str) -> Self {
        self.claims.insert("sub".into(), json!(subject));
        self
    }

    /// Adds a scope to `scope` (space-separated, RFC 8693 §4.2).
    pub fn scope(mut self, scope: &str) -> Self {
        self.scopes.push(scope.to_owned());
        self
    }

    /// Adds a permission to `permissions` (Auth0 RBAC).
    pub fn permission(mut self, permission: &str) -> Self {
        self.permissions.push(permission.to_owned());
        self
    }

    /// Sets any claim (`org_id`, `https://example.com/roles`, or `aud` to test a wrong one).
    pub fn claim(mut self, name: &str, value: impl Serialize) -> Self {
        self.claims.insert(name.to_owned(), serde_json::to_value(value).unwrap_or(Value::Null));
        self
    }

    /// Leaves out a claim the builder would set (`exp`, `sub`, ...).
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Valid for `lifetime` from now (the default is an hour).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.claims.insert("exp".into(), json!(unix_now() + lifetime.as_secs()));
        self
    }

    /// Expired `ago` (beyond the default 30 s of allowed clock skew to be refused).
    pub fn expired(mut self, ago: Duration) -> Self {
        let now = unix_now();
        self.claims.insert("iat".into(), json!(now.saturating_sub(ago.as_secs() + 3600)));
        self.claims.insert("exp".into(), json!(now.saturating_sub(ago.as_secs())));
        self
    }

    /// `typ: at+jwt` in the header (RFC 9068), for `AUTH_REQUIRE_AT_JWT`.
    pub fn at_jwt(mut self) -> Self {
        self.typ = "at+jwt";
        self
    }

    /// The compact RS256 JWT.
    pub fn sign(self) -> String {
        let mut claims = self.claims;
        if !self.scopes.is_empty() {
            claims.insert("scope".into(), json!(self.scopes.join(" ")));
        }
        if !self.permissions.is_empty() {
            claims.insert("permissions".into(), json!(self.permissions));
        }
        let header = json!({"alg": "RS256", "typ": self.typ, "kid": "test-key"});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string())
        );
        let mut signature = vec![0; self.issuer.key.public_modulus_len()];
        #[allow(clippy::expect_used)] // RSA signing only fails without a random source
        self.issuer
            .key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut signature)
            .expect("sign the token");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Why a [`TestApp`] could not start: what the `handler` process would refuse at start-up.
#[derive(Debug, thiserror::Error)]
pub enum TestAppError {
    /// `host.json` or a `function.json` / `auth.json`.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A function folder without a handler, a policy the configuration cannot serve, ...
    #[error(transparent)]
    Functions(#[from] UnknownFunction),
    /// The token settings (a key that does not parse, ...).
    #[error("token settings: {0}")]
    Keys(String),
    /// The app root has no functions.
    #[error("{0}: no function folders")]
    NoFunctions(String),
}

/// Builds a [`TestApp`]: [`TestApp::builder`].
#[derive(Debug)]
pub struct TestAppBuilder {
    root: PathBuf,
    mode: Option<HostMode>,
    auth: Option<AuthConfig>,
    max_body_bytes: usize,
}

impl TestAppBuilder {
    /// Trusts `issuer` (and only it): [`TestIssuer::auth_config`].
    pub fn issuer(mut self, issuer: &TestIssuer) -> Self {
        self.auth = Some(issuer.auth_config());
        self
    }

    /// Token settings of its own (DPoP, `AUTH_RESOURCE`, several issuers, ...).
    pub fn auth(mut self, config: AuthConfig) -> Self {
        self.auth = Some(config);
        self
    }

    /// Serves as if `host.json` asked for `mode` (the default is what it says).
    pub fn mode(mut self, mode: HostMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// `HANDLER_MAX_BODY_BYTES` (the default is the handler's, 1 MiB).
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The app with `functions`, checked as the `handler` process checks it at start-up.
    /// Without [`issuer`](Self::issuer) or [`auth`](Self::auth), a fresh [`TestIssuer`]
    /// that signs nothing the test can use is trusted: only anonymous functions answer.
    pub fn build(self, functions: Functions) -> Result<TestApp, TestAppError> {
        let mut layout = AppLayout::load(&self.root)?;
        if layout.functions.is_empty() {
            return Err(TestAppError::NoFunctions(self.root.display().to_string()));
        }
        if let Some(mode) = self.mode {
            layout.mode = mode;
        }
        let config = self.auth.unwrap_or_else(|| TestIssuer::new().auth_config());
        let auth = Authenticator::new(&config).map_err(TestAppError::Keys)?;
        let state = Arc::new(AppState::with_functions(auth, layout, functions, self.max_body_bytes)?);
        Ok(TestApp { router: app(state.clone()), state })
    }
}

/// An app served in process, called as the host calls it.
#[derive(Debug, Clone)]
pub struct TestApp {
    router: Router,
    state: Arc<AppState>,
}

impl TestApp {
    /// An app from the app root at `root` (the folder with `host.json`).
    pub fn builder(root: impl AsRef<Path>) -> TestAppBuilder {
        TestAppBuilder { root: root.as_ref().to_owned(), mode: None, auth: None, max_body_bytes: 1024 * 1024 }
    }

    /// The mode the host calls the app in.
    pub fn mode(&self) -> HostMode {
        self.state.layout.mode
    }

    /// A `GET` of `path` (the public path and query: `/api/orders?limit=5`).
    pub fn get(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::GET, path)
    }

    /// A `POST` of `path`.
    pub fn post(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::POST, path)
    }

    /// A `PUT` of `path`.
    pub fn put(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::PUT, path)
    }

    /// A `DELETE` of `path`.
    pub fn delete(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::DELETE, path)
    }

    /// A request with any method.
    pub fn request(&self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest {
            app: self,
            method,
            target: path.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
            inputs: Map::new(),
        }
    }

    /// An invocation of non-HTTP function `name` (timer, queue, ...), as the host sends it.
    pub fn trigger(&self, name: &str) -> TriggerRequest<'_> {
        TriggerRequest {
            app: self,
            function: name.to_owned(),
            data: Value::Null,
            inputs: Map::new(),
            metadata: Map::new(),
        }
    }

    async fn call(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        // The host reads the whole answer too (forwarding); a body that fails midway is
        // what the caller would see cut short.
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        (parts.status, parts.headers, bytes)
    }
}

/// How the request reached the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The raw request at its public path (`enableForwardingHttpRequest`).
    Forwarded,
    /// The raw request, streamed (`enableProxyingHttpRequest`).
    Proxied,
    /// The invocation envelope (`POST /<function>`).
    Invocation,
    /// Not sent: the host found no function for the path and method (404).
    NotRouted,
}

/// An HTTP request to send with [`TestRequest::send`].
#[derive(Debug)]
pub struct TestRequest<'a> {
    app: &'a TestApp,
    method: Method,
    target: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    inputs: Map<String, Value>,
}

impl TestRequest<'_> {
    /// Adds a header (repeated names add values).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(self, value: &impl Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.header("Content-Type", "application/json").body(body)
    }

    /// The body as is (set `Content-Type` with [`header`](Self::header)).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// An input binding's value (`Data.<name>` of the envelope; only functions with input
    /// bindings get one, and the host then always sends an envelope). Strings, numbers and
    /// booleans are sent as the host sends them: JSON text in a string.
    pub fn input(mut self, binding: &str, value: impl Serialize) -> Self {
        self.inputs.insert(binding.to_owned(), host_value(serde_json::to_value(value).unwrap_or(Value::Null)));
        self
    }

    /// A binary input binding's value (the host sends bytes as base64).
    pub fn input_bytes(mut self, binding: &str, bytes: &[u8]) -> Self {
        self.inputs.insert(binding.to_owned(), json!(STANDARD.encode(bytes)));
        self
    }

    /// Sends it as the host would (see [`Delivery`]) and returns what the caller gets.
    pub async fn send(self) -> TestResponse {
        let app = self.app;
        let state = &app.state;
        let (path, query) = match self.target.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (self.target.clone(), None),
        };
        let (index, values) = match state.layout.route_target(&self.method, &path) {
            RouteMatch::Found { index, values } => (index, values),
            // The host routes by method too: a method the function does not list is 404.
            RouteMatch::MethodNotAllowed { .. } | RouteMatch::NotFound => {
                return TestResponse::empty(StatusCode::NOT_FOUND, Delivery::NotRouted);
            }
        };
        let spec = &state.layout.functions[index];
        let invocation_id = random_uuid();
        // PROTOCOL.md §2: only "HTTP in-and-out" functions are forwarded or proxied.
        let in_and_out = spec.output.is_some() && spec.bindings.is_empty();
        match state.layout.mode {
            HostMode::Forwarding if in_and_out => {
                // The host rebuilds the query (repeated names comma-joined) and forwards a
                // body only when it has a length.
                let query = query.as_deref().map(rebuilt_query).filter(|q| !q.is_empty());
                let uri = match query {
                    Some(query) => format!("{path}?{query}"),
                    None => path,
                };
                let mut request = self.raw(&uri, &invocation_id);
                request.headers_mut().insert("user-agent", HeaderValue::from_static("Azure-Functions-Host/4"));
                let (status, headers, body) = app.call(request).await;
                TestResponse::http(status, headers, body, Delivery::Forwarded)
            }
            HostMode::Proxy if in_and_out => {
                let mut request = self.raw(&self.target, &invocation_id);
                if let Ok(id) = HeaderValue::from_str(&invocation_id) {
                    request.headers_mut().insert("x-ms-invocation-id", id);
                }
                let (status, headers, body) = app.call(request).await;
                TestResponse::http(status, headers, body, Delivery::Proxied)
            }
            _ => self.envelope(spec, &path, query.as_deref(), &values, &invocation_id).await,
        }
    }

    /// The raw request as the host sends it on: every header the caller sent, plus the host's.
    fn raw(&self, uri: &str, invocation_id: &str) -> Request<Body> {
        let mut request = Request::new(Body::from(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri.parse().unwrap_or_default();
        let headers = request.headers_mut();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
                headers.append(name, value);
            }
        }
        headers.entry(header::HOST).or_insert(HeaderValue::from_static("localhost:7071"));
        if !self.body.is_empty() {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        host_headers(headers, invocation_id);
        request
    }

    async fn envelope(
        &self,
        spec: &FunctionSpec,
        path: &str,
        query: Option<&str>,
        values: &crate::route::RouteValues,
        invocation_id: &str,
    ) -> TestResponse {
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in &self.headers {
            headers.entry(canonical(name)).or_default().push(value.clone());
        }
        headers.entry("Host".into()).or_insert_with(|| vec!["localhost:7071".into()]);
        let host = headers.get("Host").and_then(|h| h.first()).cloned().unwrap_or_default();
        let query_pairs = query.map(joined_query).unwrap_or_default();
        let params: Map<String, Value> =
            values.iter().map(|(name, value)| (name.to_owned(), value.map_or(Value::Null, |v| json!(v)))).collect();
        let mut request = json!({
            "Url": format!("http://{host}{path}{}", query.map(|q| format!("?{q}")).unwrap_or_default()),
            "Method": self.method.as_str(),
            "Query": query_pairs,
            "Headers": headers,
            "Params": params,
            "Identities": [],
        });
        let content_type = self.headers.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        let content_type = content_type.map(|(_, v)| v.as_str()).unwrap_or_default();
        if !self.body.is_empty() {
            request["Body"] = if content_type == "application/octet-stream" || content_type.contains("multipart/") {
                json!(STANDARD.encode(&self.body))
            } else {
                json!(String::from_utf8_lossy(&self.body))
            };
        }
        // Metadata as the host's HTTP trigger binding data: the JSON body's top-level
        // properties, the query (without `code`), the route values, then Query and Headers.
        let mut metadata = Map::new();
        if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&self.body) {
            metadata.extend(fields.into_iter().map(|(k, v)| (k, host_value(v))));
        }
        for (name, value) in query_pairs.iter() {
            if !name.eq_ignore_ascii_case("code") {
                metadata.insert(name.clone(), host_value(value.clone()));
            }
        }
        for (name, value) in params.iter() {
            metadata.insert(name.clone(), host_value(value.clone()));
        }
        metadata.insert("Query".into(), Value::Object(query_pairs.clone()));
        let joined: Map<String, Value> = headers.iter().map(|(k, v)| (k.clone(), json!(v.join(",")))).collect();
        metadata.insert("Headers".into(), Value::Object(joined));
        metadata.insert("sys".into(), sys(&spec.name));
        let mut data = self.inputs.clone();
        data.insert(spec.trigger.clone(), request);
        let answer = invoke(self.app, spec, Value::Object(data), metadata, invocation_id).await;
        answer.http(spec)
    }
}

/// A non-HTTP trigger's invocation to send with [`TriggerRequest::send`].
#[derive(Debug)]
pub struct TriggerRequest<'a> {
    app: &'a TestApp,
    function: String,
    data: Value,
    inputs: Map<String, Value>,
    metadata: Map<String, Value>,
}

impl TriggerRequest<'_> {
    /// The trigger's payload (`Data.<trigger>`): a timer's `TimerInfo`, a queue message, an
    /// event. Strings, numbers and booleans are sent as the host sends them: JSON text in a
    /// string.
    pub fn data(mut self, payload: impl Serialize) -> Self {
        self.data = host_value(serde_json::to_value(payload).unwrap_or(Value::Null));
        self
    }

    /// An input binding's value, as [`TestRequest::input`].
    pub fn input(mut self, binding: &str, value: impl Serialize) -> Self {
        self.inputs.insert(binding.to_owned(), host_value(serde_json::to_value(value).unwrap_or(Value::Null)));
        self
    }

    /// A `Metadata` entry (a queue message's `DequeueCount`, say), encoded as the host does.
    pub fn metadata(mut self, name: &str, value: impl Serialize) -> Self {
        self.metadata.insert(name.to_owned(), host_value(serde_json::to_value(value).unwrap_or(Value::Null)));
        self
    }

    /// Sends the envelope; the response's status is what the handler answered the host
    /// (2xx: the invocation succeeded; anything else fails it, and the platform retries).
    pub async fn send(self) -> TestResponse {
        let state = &self.app.state;
        let Some(index) = state.layout.functions.iter().position(|f| f.name.eq_ignore_ascii_case(&self.function))
        else {
            return TestResponse::empty(StatusCode::NOT_FOUND, Delivery::NotRouted);
        };
        let spec = &state.layout.functions[index];
        let mut data = self.inputs;
        data.insert(spec.trigger.clone(), self.data);
        let mut metadata = self.metadata;
        metadata.insert("sys".into(), sys(&spec.name));
        let answer = invoke(self.app, spec, Value::Object(data), metadata, &random_uuid()).await;
        answer.trigger(spec)
    }
}

/// What the handler answered an envelope.
struct EnvelopeAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn invoke(
    app: &TestApp,
    spec: &FunctionSpec,
    data: Value,
    metadata: Map<String, Value>,
    id: &str,
) -> EnvelopeAnswer {
    let envelope = json!({"Data": data, "Metadata": metadata});
    let mut request = Request::new(Body::from(envelope.to_string()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = format!("/{}", spec.name).parse().unwrap_or_default();
    let headers = request.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1"));
    headers.insert("user-agent", HeaderValue::from_static("Azure-Functions-Host/4"));
    host_headers(headers, id);
    let (status, headers, body) = app.call(request).await;
    EnvelopeAnswer { status, headers, body }
}

impl EnvelopeAnswer {
    /// The invocation result when the host would take it: a 2xx JSON object.
    fn result(&self) -> Option<Map<String, Value>> {
        let media = self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let media = media.split(';').next().unwrap_or_default().trim();
        let json = media.eq_ignore_ascii_case("application/json") || media.eq_ignore_ascii_case("text/json");
        if !self.status.is_success() || !json {
            return None;
        }
        match serde_json::from_slice(&self.body) {
            Ok(Value::Object(result)) => Some(result),
            _ => None,
        }
    }

    /// What the HTTP caller gets (PROTOCOL.md §5.3); a failed invocation is 500, empty.
    fn http(self, spec: &FunctionSpec) -> TestResponse {
        let Some(result) = self.result() else {
            return TestResponse::empty(StatusCode::INTERNAL_SERVER_ERROR, Delivery::Invocation);
        };
        let (outputs, logs, return_value) = parts(&result, spec);
        let output_name = spec.output.as_deref().unwrap_or("res");
        let res = if output_name == "$return" { return_value.clone() } else { outputs.get(output_name).cloned() };
        let mut response = http_output(res.unwrap_or(Value::Null));
        response.outputs = outputs.into_iter().filter(|(name, _)| name != output_name).collect();
        response.logs = logs;
        response.return_value = return_value;
        response
    }

    /// What the host gets from a trigger's invocation.
    fn trigger(self, spec: &FunctionSpec) -> TestResponse {
        let mut response = TestResponse::empty(self.status, Delivery::Invocation);
        if let Some(result) = self.result() {
            let (outputs, logs, return_value) = parts(&result, spec);
            response.outputs = outputs;
            response.logs = logs;
            response.return_value = return_value;
        }
        response.headers = self.headers;
        response.body = self.body;
        response
    }
}

/// Outputs (declared output bindings only, by exact name), Logs and ReturnValue, whatever
/// the case of the result's keys (as the host reads them).
fn parts(result: &Map<String, Value>, spec: &FunctionSpec) -> (Map<String, Value>, Vec<String>, Option<Value>) {
    let field = |name: &str| result.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    let declared = |name: &str| {
        spec.output.as_deref() == Some(name)
            || spec.bindings.iter().any(|b| b.direction != Direction::In && b.name == name)
    };
    let outputs = match field("Outputs") {
        Some(Value::Object(outputs)) => {
            outputs.iter().filter(|(k, _)| declared(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        _ => Map::new(),
    };
    let logs = match field("Logs") {
        Some(Value::Array(lines)) => {
            lines.iter().map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned)).collect()
        }
        _ => Vec::new(),
    };
    let return_value = field("ReturnValue").filter(|v| !v.is_null()).cloned();
    (outputs, logs, return_value)
}

/// The HTTP response the host makes of an `http` output's value.
fn http_output(res: Value) -> TestResponse {
    let res = match res {
        Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
        other => other,
    };
    let field = |name: &str| match &res {
        Value::Object(map) => map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()),
        _ => None,
    };
    let status = match field("statusCode") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let status =
        status.and_then(|s| u16::try_from(s).ok()).and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    if let Some(Value::Object(map)) = field("headers") {
        for (name, value) in map {
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(&text)) {
                headers.entry(name).or_insert(value);
            }
        }
    }
    let body = match field("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text,
        Some(Value::Bool(true)) => "True".into(),
        Some(Value::Bool(false)) => "False".into(),
        Some(Value::Number(n)) => n.to_string(),
        Some(structured) => serde_json::to_string_pretty(&structured).unwrap_or_default(),
    };
    let content_type = match headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        Some(given) if given.to_ascii_lowercase().contains("charset") => given.to_owned(),
        Some(given) => format!("{given}; charset=utf-8"),
        None => "text/plain; charset=utf-8".to_owned(),
    };
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    TestResponse {
        status,
        headers,
        body: Bytes::from(body),
        outputs: Map::new(),
        logs: Vec::new(),
        return_value: None,
        delivery: Delivery::Invocation,
    }
}

/// What the caller (or, for a trigger, the host) got.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status the caller gets (for a trigger: the handler's answer to the host).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Output bindings by name (invocation only), as the handler set them.
    pub outputs: Map<String, Value>,
    /// The invocation's `Logs` (invocation only): the decision line and `Logger` lines.
    pub logs: Vec<String>,
    /// The invocation's `ReturnValue`, when there is one.
    pub return_value: Option<Value>,
    /// How the host delivered the request.
    pub delivery: Delivery,
}

impl TestResponse {
    fn empty(status: StatusCode, delivery: Delivery) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            outputs: Map::new(),
            logs: Vec::new(),
            return_value: None,
            delivery,
        }
    }

    fn http(status: StatusCode, headers: HeaderMap, body: Bytes, delivery: Delivery) -> Self {
        Self { headers, body, ..Self::empty(status, delivery) }
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// An output binding's value.
    pub fn output(&self, name: &str) -> Option<&Value> {
        self.outputs.get(name)
    }
}

/// A value as the host puts it into `Data` or `Metadata`: strings, numbers and booleans
/// as their JSON text in a string (`JsonConvert.SerializeObject`), objects and arrays as
/// they are, nulls as null.
fn host_value(value: Value) -> Value {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Value::String(value.to_string()),
        other => other,
    }
}

/// The `sys` metadata entry.
fn sys(function: &str) -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    json!({"MethodName": function, "UtcNow": utc(now), "RandGuid": random_uuid()})
}

/// `2026-12-06T10:20:30.1234567Z`.
fn utc(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::telemetry::civil_date(days);
    let ticks = since_epoch.subsec_nanos() / 100;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ticks:07}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The headers the host adds to every request it makes to the handler.
fn host_headers(headers: &mut HeaderMap, invocation_id: &str) {
    headers.insert("x-azure-functions-hostversion", HeaderValue::from_static("4.1040.0"));
    if let Ok(id) = HeaderValue::from_str(invocation_id) {
        headers.insert("x-azure-functions-invocationid", id);
    }
}

/// A random version 4 UUID.
fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The query as the host's `Query` object: name → value, repeated names comma-joined.
fn joined_query(query: &str) -> Map<String, Value> {
    let mut joined: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match joined.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => joined.push((name.into_owned(), value.into_owned())),
        }
    }
    joined.into_iter().map(|(name, value)| (name, Value::String(value))).collect()
}

/// The query string as the host forwards it: [`joined_query`] re-encoded.
fn rebuilt_query(query: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in joined_query(query) {
        out.append_pair(&name, value.as_str().unwrap_or_default());
    }
    out.finish().replace('+', "%20")
}

/// A header name as Kestrel hands known ones on (`content-type` → `Content-Type`).
fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values_double_encode_primitives() {
        assert_eq!(host_value(json!("hello")), json!("\"hello\""));
        assert_eq!(host_value(json!(4)), json!("4"));
        assert_eq!(host_value(json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn utc_and_uuid_have_the_hosts_shapes() {
        assert_eq!(utc(Duration::new(1_765_016_430, 123_456_700)), "2025-12-06T10:20:30.1234567Z");
        assert_eq!(utc(Duration::ZERO), "1970-01-01T00:00:00.0000000Z");
        let id = random_uuid();
        assert_eq!((id.len(), &id[14..15]), (36, "4"));
    }

    #[test]
    fn queries_are_joined_and_rebuilt_as_the_host_does() {
        assert_eq!(joined_query("x=1&x=2&y=a%20b"), json!({"x": "1,2", "y": "a b"}).as_object().cloned().unwrap());
        assert_eq!(rebuilt_query("x=1&x=2&y=a b"), "x=1%2C2&y=a%20b");
    }

    #[test]
    fn http_outputs_become_responses_as_the_host_makes_them() {
        let text = http_output(json!({"statusCode": "201", "headers": {"Location": "/x"}, "body": "made"}));
        assert_eq!((text.status, text.text().as_str()), (StatusCode::CREATED, "made"));
        assert_eq!(text.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(text.header("location"), Some("/x"));
        let json =
            http_output(json!({"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": {"a": 1}}));
        assert_eq!(json.header("content-type"), Some("application/json; charset=utf-8"));
        assert_eq!(json.text(), "{\n  \"a\": 1\n}");
        assert_eq!(http_output(json!({"statusCode": "nope", "body": true})).status, StatusCode::OK);
        assert_eq!(http_output(json!({"body": true})).text(), "True");
        assert_eq!(canonical("x-functions-key"), "X-Functions-Key");
    }
}
