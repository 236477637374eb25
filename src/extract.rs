//! What business handlers take and give besides axum's own extractors: the verified
//! [`Claims`] (and typed custom claims), route values ([`Path`]), input bindings
//! ([`Bindings`]), a non-HTTP trigger's payload ([`Trigger`]) and [`Metadata`], a
//! [`Logger`] whose lines reach the host's invocation log, and [`Outputs`] to set output
//! bindings with the response. [`Problem`] is an RFC 9457 error answer; [`Refuse`] refuses
//! a caller from inside a handler with the policy's own RFC 6750 answer.
//!
//! The app puts what these read into the request's extensions before the handler runs;
//! handlers never see the host's envelope.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError};

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::de::value::{Error as ValueError, MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::input::{Form, Json, Query};

use crate::auth::Claims;
use crate::error::{AuthError, Challenges, Offer, Refusal};
use crate::protocol::invocation::{InputValues, decode_parsed, decode_value};
use crate::route::RouteValues;

/// Per-invocation context the app puts into request extensions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Invocation {
    /// The function's name (for log lines).
    pub(crate) function: Arc<str>,
    /// Input binding values (invocation mode only).
    pub(crate) inputs: InputValues,
    /// A non-HTTP trigger's payload (JSON text).
    pub(crate) payload: Option<axum::body::Bytes>,
    /// `Metadata` of a non-HTTP trigger (JSON text).
    pub(crate) metadata: Option<axum::body::Bytes>,
    /// Lines for the invocation's `Logs`; `None` outside invocation mode.
    pub(crate) logs: Option<LogSink>,
}

/// Where [`Logger`] lines go in invocation mode.
pub(crate) type LogSink = crate::logs::LogSink;

fn invocation(parts: &Parts) -> Cow<'_, Invocation> {
    parts.extensions.get::<Invocation>().map_or_else(|| Cow::Owned(Invocation::default()), Cow::Borrowed)
}

/// No verified claims on this request: the function's `auth.json` is anonymous.
#[derive(Debug, Clone, Copy)]
pub struct NoClaims;

impl IntoResponse for NoClaims {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::UNAUTHORIZED, "This function requires an access token").into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, const { HeaderValue::from_static("Bearer") });
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = NoClaims;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Arc<Claims>>().map(|claims| Claims::clone(claims)).ok_or(NoClaims)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Arc<Claims>>().map(|claims| Claims::clone(claims)))
    }
}

/// Refuses the caller from inside a handler with exactly the answer the function's
/// policy gives: 403 `insufficient_scope` naming the scopes needed, in the caller's scheme
/// (Bearer or DPoP), with the configured `realm` and `resource_metadata`. For rules
/// `auth.json` cannot state, such as one scope per MCP tool behind one function: clients
/// read the `scope` attribute to ask the user for more (RFC 6750 §3.1, MCP's step-up
/// authorization flow). Only functions that take tokens have one (else [`NoClaims`]).
#[derive(Debug, Clone)]
pub struct Refuse {
    challenges: Arc<Challenges>,
    offer: Offer,
}

impl Refuse {
    pub(crate) fn new(challenges: Arc<Challenges>, offer: Offer) -> Self {
        Self { challenges, offer }
    }

    /// 403 `insufficient_scope` with `scope="<scopes, space-separated>"`. A scope that
    /// cannot be quoted in a header (space, quote, backslash, control) is left out.
    pub fn insufficient_scope(&self, scopes: &[&str]) -> Response {
        let quotable = |s: &&&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        let scope = scopes.iter().filter(quotable).copied().collect::<Vec<_>>().join(" ");
        let refusal = Refusal { error: AuthError::InsufficientScope { scope }, offer: self.offer, nonce: None };
        refusal.into_response(&self.challenges)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Refuse {
    type Rejection = NoClaims;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or(NoClaims)
    }
}

/// The verified token's claims read into the app's own type (e.g. Auth0 namespaced
/// claims: `#[serde(rename = "https://example.com/roles")]`).
#[derive(Debug, Clone)]
pub struct CustomClaims<T>(pub T);

/// The token verified but its claims do not have the shape the handler asks for.
#[derive(Debug)]
pub enum ClaimsRejection {
    /// No token on this request (anonymous function).
    Missing,
    /// The claims did not deserialize into the handler's type.
    Shape,
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Missing => NoClaims.into_response(),
            Self::Shape => {
                let mut response =
                    (StatusCode::UNAUTHORIZED, "The access token lacks claims this function needs").into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Bearer error="invalid_token", error_description="The access token lacks claims this function needs""#,
                    ),
                );
                response
            }
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for CustomClaims<T> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let claims = parts.extensions.get::<Arc<Claims>>().ok_or(ClaimsRejection::Missing)?;
        let raw = claims.raw().iter().map(|(k, v)| (k.as_str(), v));
        T::deserialize(MapDeserializer::<_, serde_json::Error>::new(raw))
            .map(CustomClaims)
            .map_err(|_| ClaimsRejection::Shape)
    }
}

/// Route values from the function's route template (`orders/{id:int}`), typed: a struct
/// or map by parameter name, a tuple in template order, or a single value. In invocation
/// mode they come from the host's `Params`, never from `Metadata`.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let empty = RouteValues::default();
        let values = parts.extensions.get::<RouteValues>().unwrap_or(&empty);
        T::deserialize(RouteDeserializer(values))
            .map(Path)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST).detail(format!("Invalid route value: {e}")))
    }
}

/// The whole route as serde input.
struct RouteDeserializer<'a>(&'a RouteValues);

impl<'a> RouteDeserializer<'a> {
    fn single(&self) -> Result<ValueDeserializer<'a>, ValueError> {
        let mut values = self.0.iter();
        match (values.next(), values.next()) {
            (Some((_, value)), None) => Ok(ValueDeserializer(value)),
            _ => Err(de::Error::custom(format_args!("expected one route value, the route has {}", self.0.len()))),
        }
    }
}

macro_rules! single_value {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.single()?.$method(visitor)
        })*
    };
}

impl<'de, 'a> Deserializer<'de> for RouteDeserializer<'a> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(MapDeserializer::new(self.0.iter().map(|(name, value)| (name, ValueDeserializer(value)))))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(SeqDeserializer::new(self.0.iter().map(|(_, value)| ValueDeserializer(value))))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.single()?.deserialize_enum(name, variants, visitor)
    }

    single_value!(
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128 deserialize_f32
        deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_option
        deserialize_bytes deserialize_byte_buf deserialize_identifier
    );

    serde::forward_to_deserialize_any! { unit unit_struct ignored_any }
}

/// One route value (`None` for an unmatched optional parameter); numbers and booleans are
/// parsed from its text as the route constraints read them (surrounding spaces allowed).
#[derive(Clone, Copy)]
struct ValueDeserializer<'a>(Option<&'a str>);

impl<'a> ValueDeserializer<'a> {
    fn text(self) -> Result<&'a str, ValueError> {
        self.0.ok_or_else(|| de::Error::custom("a route value is missing"))
    }

    fn parse<T: std::str::FromStr>(self, what: &str) -> Result<T, ValueError> {
        let text = self.text()?;
        text.trim().parse().map_err(|_| de::Error::custom(format_args!("not {what}")))
    }
}

impl<'de> IntoDeserializer<'de, ValueError> for ValueDeserializer<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parsed {
    ($($method:ident $visit:ident $what:literal)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            visitor.$visit(self.parse($what)?)
        })*
    };
}

impl<'de> Deserializer<'de> for ValueDeserializer<'_> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Some(text) => visitor.visit_str(text),
            None => visitor.visit_none(),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Some(_) => visitor.visit_some(self),
            None => visitor.visit_none(),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        // The `bool` constraint is .NET's `bool.TryParse`: case-insensitive.
        match self.text()?.trim() {
            t if t.eq_ignore_ascii_case("true") => visitor.visit_bool(true),
            t if t.eq_ignore_ascii_case("false") => visitor.visit_bool(false),
            _ => Err(de::Error::custom("not a boolean")),
        }
    }

    parsed!(
        deserialize_i8 visit_i8 "an integer" deserialize_i16 visit_i16 "an integer"
        deserialize_i32 visit_i32 "an integer" deserialize_i64 visit_i64 "an integer"
        deserialize_i128 visit_i128 "an integer" deserialize_u8 visit_u8 "an integer"
        deserialize_u16 visit_u16 "an integer" deserialize_u32 visit_u32 "an integer"
        deserialize_u64 visit_u64 "an integer" deserialize_u128 visit_u128 "an integer"
        deserialize_f32 visit_f32 "a number" deserialize_f64 visit_f64 "a number"
        deserialize_char visit_char "a character"
    );

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_str(self.text()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.text()?.into_deserializer().deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// The function's input binding values (`Data.<name>` in invocation mode), typed on
/// demand by binding name. Empty for requests the host forwards (such functions have no
/// input bindings).
#[derive(Debug, Clone)]
pub struct Bindings(InputValues);

/// An input binding the host did not send, or whose value is not of the asked type.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// No value for this binding name.
    #[error("input binding {0} has no value")]
    Missing(String),
    /// The value does not deserialize into the asked type.
    #[error("input binding {name} is not the expected type: {source}")]
    Type {
        /// The binding name.
        name: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The value is not base64 bytes.
    #[error("input binding {0} is not base64 bytes")]
    NotBytes(String),
}

impl Bindings {
    /// Binding `name`'s value as `T` (the host's JSON-in-a-string encoding is undone).
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T, BindingError> {
        let raw = self.0.raw(name).ok_or_else(|| BindingError::Missing(name.to_owned()))?;
        decode_value(raw).map_err(|source| BindingError::Type { name: name.to_owned(), source })
    }

    /// Binding `name`'s value as bytes (the host sends `byte[]` values as base64).
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>, BindingError> {
        let text: String = self.get(name)?;
        STANDARD.decode(text.as_bytes()).map_err(|_| BindingError::NotBytes(name.to_owned()))
    }

    /// Binding `name`'s value as the JSON text the host sent.
    pub fn raw(&self, name: &str) -> Option<&[u8]> {
        self.0.raw(name)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Bindings {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(invocation(parts).inputs.clone()))
    }
}

/// A non-HTTP trigger's payload (`Data.<trigger>`) as `T`: [`TimerInfo`] for timers, the
/// message type for queues and Service Bus, an event for Event Grid. A payload that does
/// not deserialize fails the invocation before the handler runs (the platform retries).
#[derive(Debug, Clone)]
pub struct Trigger<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Trigger<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let invocation = invocation(parts);
        let Some(payload) = &invocation.payload else {
            return Err(Problem::new(StatusCode::BAD_REQUEST).detail("This function is not called by a trigger"));
        };
        decode_value(payload).map(Trigger).map_err(|e| {
            Problem::new(StatusCode::BAD_REQUEST).detail(format!("Trigger payload is not the expected type: {e}"))
        })
    }
}

/// A timer trigger's payload.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TimerInfo {
    /// The schedule, as the host describes it.
    pub schedule: Option<Value>,
    /// Last and next occurrences.
    pub schedule_status: Option<ScheduleStatus>,
    /// The invocation is later than scheduled (e.g. after a restart).
    pub is_past_due: bool,
}

/// A timer's last and next occurrences (ISO 8601 text as the host sends it).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScheduleStatus {
    /// The previous occurrence.
    pub last: Option<String>,
    /// The next occurrence.
    pub next: Option<String>,
    /// When the status was last written.
    pub last_updated: Option<String>,
}

/// A non-HTTP trigger's `Metadata` (e.g. a queue message's `DequeueCount`, `Id`;
/// `sys.MethodName`). Empty for HTTP functions: there it mirrors the caller's query and
/// body, so it is not offered.
#[derive(Debug, Clone, Default)]
pub struct Metadata(serde_json::Map<String, Value>);

impl Metadata {
    /// Member `name` as `T`, with the host's JSON-in-a-string encoding undone.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        decode_parsed(self.0.get(name)?.clone()).ok()
    }

    /// All members, as sent.
    pub fn as_map(&self) -> &serde_json::Map<String, Value> {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Metadata {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let map = invocation(parts).metadata.as_ref().and_then(|raw| serde_json::from_slice(raw).ok());
        Ok(Self(map.unwrap_or_default()))
    }
}

/// Writes lines to the function's log at a level: in invocation mode the host's `Logs` for
/// this invocation (shown with it in Application Insights; the host logs every entry as
/// Information, so warnings and errors keep their level in the text, `[Warning] ...`),
/// and if the invocation then answers non-2xx (whose `Logs` the host never reads), stdout
/// and stderr as well; otherwise stdout (info) and stderr (warnings, errors). Lines on
/// stdout/stderr carry the function, `invocation_id`, `trace_id` and `parent_id`.
/// See [`crate::logs`].
#[derive(Debug, Clone)]
pub struct Logger {
    function: Arc<str>,
    sink: Option<LogSink>,
    correlation: crate::correlation::Correlation,
}

impl Logger {
    /// Logs one line at Information ([`Logger::info`]).
    pub fn log(&self, line: impl Into<String>) {
        self.write(crate::logs::LogLevel::Info, line.into());
    }

    /// Logs one line at Information.
    pub fn info(&self, line: impl Into<String>) {
        self.write(crate::logs::LogLevel::Info, line.into());
    }

    /// Logs one line at Warning.
    pub fn warn(&self, line: impl Into<String>) {
        self.write(crate::logs::LogLevel::Warn, line.into());
    }

    /// Logs one line at Error.
    pub fn error(&self, line: impl Into<String>) {
        self.write(crate::logs::LogLevel::Error, line.into());
    }

    fn write(&self, level: crate::logs::LogLevel, text: String) {
        match &self.sink {
            Some(sink) => {
                sink.lock().unwrap_or_else(PoisonError::into_inner).push(crate::logs::Entry { level, text });
            }
            None => crate::logs::to_stdio(&self.function, &self.correlation, level, &text),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Logger {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let correlation = parts.extensions.get::<crate::correlation::Correlation>().cloned().unwrap_or_default();
        let invocation = invocation(parts);
        Ok(Self { function: invocation.function.clone(), sink: invocation.logs.clone(), correlation })
    }
}

/// Output binding values set with a response: `(Outputs::new().set("outQueue", &order),
/// StatusCode::CREATED, Json(order))`. Only the host delivers them, in invocation mode (a
/// function with an output binding is always called that way); a name the function's
/// `function.json` does not declare fails the invocation.
#[derive(Debug, Clone, Default)]
pub struct Outputs(pub(crate) Vec<(String, OutputData)>);

/// One output value.
#[derive(Debug, Clone)]
pub(crate) enum OutputData {
    /// JSON (strings are sent so that the binding receives exactly their UTF-8 bytes).
    Json(Value),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// The value could not be serialized.
    Invalid(String),
}

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets binding `name` (exactly as in function.json) to `value` as JSON.
    pub fn set(mut self, name: &str, value: impl Serialize) -> Self {
        let data = serde_json::to_value(value).map_or_else(|e| OutputData::Invalid(e.to_string()), OutputData::Json);
        self.0.push((name.to_owned(), data));
        self
    }

    /// Sets binding `name` to raw bytes (a blob, a binary message).
    pub fn bytes(mut self, name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.0.push((name.to_owned(), OutputData::Bytes(bytes.into())));
        self
    }
}

impl IntoResponseParts for Outputs {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        match res.extensions_mut().get_mut::<Outputs>() {
            Some(existing) => existing.0.extend(self.0),
            None => {
                res.extensions_mut().insert(self);
            }
        }
        Ok(res)
    }
}

impl IntoResponse for Outputs {
    fn into_response(self) -> Response {
        (self, StatusCode::OK).into_response()
    }
}

/// An RFC 9457 problem answer (`application/problem+json`).
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    detail: Option<String>,
    invalid_params: Vec<(String, String)>,
}

impl Problem {
    /// A problem with `status` and its standard title.
    pub fn new(status: StatusCode) -> Self {
        Self { status, detail: None, invalid_params: Vec::new() }
    }

    /// A human-readable explanation of this occurrence.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Names a request field at fault (`invalid-params`, RFC 9457 §3 example) and says why.
    pub fn invalid_param(mut self, name: impl Into<String>, reason: impl Into<String>) -> Self {
        self.invalid_params.push((name.into(), reason.into()));
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The explanation, if any.
    pub fn detail_text(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The fields named at fault (`invalid-params`): name and reason.
    pub fn invalid_params(&self) -> &[(String, String)] {
        &self.invalid_params
    }
}

#[derive(Serialize)]
struct ProblemDocument<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(rename = "invalid-params", skip_serializing_if = "Vec::is_empty")]
    invalid_params: Vec<InvalidParam<'a>>,
}

#[derive(Serialize)]
struct InvalidParam<'a> {
    name: &'a str,
    reason: &'a str,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let document = ProblemDocument {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: self.detail.as_deref(),
            invalid_params: self.invalid_params.iter().map(|(name, reason)| InvalidParam { name, reason }).collect(),
        };
        let mut response = (self.status, axum::Json(document)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, const { HeaderValue::from_static("application/problem+json") });
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(template: &str, path: &str) -> RouteValues {
        crate::route::RouteTemplate::parse(template).unwrap().matches(path).unwrap()
    }

    fn path<T: DeserializeOwned>(values: &RouteValues) -> Result<T, ValueError> {
        T::deserialize(RouteDeserializer(values))
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Item {
        id: u32,
        name: Option<String>,
    }

    #[test]
    fn route_values_deserialize_as_structs_tuples_and_single_values() {
        let values = route("items/{id}/{name?}", "/items/7");
        assert_eq!(path::<Item>(&values).unwrap(), Item { id: 7, name: None });
        let values = route("items/{id}/{name?}", "/items/7/box");
        assert_eq!(path::<(u32, String)>(&values).unwrap(), (7, "box".to_owned()));
        assert_eq!(path::<u64>(&route("items/{id}", "/items/42")).unwrap(), 42);
        assert!(path::<bool>(&route("flags/{on}", "/flags/True")).unwrap());
    }

    #[test]
    fn mistyped_or_missing_route_values_are_errors() {
        assert!(path::<u32>(&route("items/{id}", "/items/abc")).is_err());
        assert!(path::<u8>(&route("items/{id}", "/items/300")).is_err());
        assert!(path::<Item>(&route("items/{name}", "/items/x")).is_err(), "id missing");
        assert!(path::<u32>(&route("items/{id}/{name}", "/items/1/x")).is_err(), "two values for one");
        assert!(path::<u32>(&route("items/{id?}", "/items")).is_err());
        assert_eq!(path::<Option<u32>>(&route("items/{id?}", "/items")).unwrap(), None);
    }
}
