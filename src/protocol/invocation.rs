//! Invocation mode (PROTOCOL.md §5): the host POSTs `{"Data": {...}, "Metadata": {...}}`
//! to `/<Function>` and expects `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`
//! back, always with HTTP 200 and `application/json`. This module converts the envelope
//! to a standard `http` request at the edge and the response back; nothing else sees it.
//!
//! A malformed envelope (or one over the size cap) is answered inside the envelope as a
//! 400 (413) for the caller, with the reason in `Logs`: a non-2xx answer would only make
//! the host turn it into an empty 500.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri, header};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::warn;

use crate::app::{AppState, plain, run_function_with};
use crate::layout::FunctionSpec;

/// Most header lines taken from an envelope. The host's own server (Kestrel) refuses
/// requests with more than 100 headers, so anything near this is not from a real client.
pub const MAX_HEADER_LINES: usize = 256;

/// Room for the envelope around the body (URL, headers, metadata).
pub const ENVELOPE_OVERHEAD_BYTES: usize = 64 * 1024;

/// Why an envelope could not be turned into a request (logged, and in `Logs`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not a JSON object.
    #[error("invocation payload is not a JSON object")]
    NotJson,
    /// `Data.<trigger>` is missing or not an object.
    #[error("invocation payload has no Data.{0} object")]
    MissingTrigger(String),
    /// `Method` is missing or not a method name.
    #[error("invocation payload has no valid Method")]
    BadMethod,
    /// `Headers` is not an object of strings or string arrays, or holds an invalid header.
    #[error("invocation payload has invalid Headers")]
    BadHeaders,
}

/// Turns an invocation envelope into the request the client sent to the host.
///
/// One pass over the envelope, borrowing from it: `Data.<trigger>` is read into typed
/// fields (strings borrowed unless they hold escapes); `Metadata` (which mirrors the
/// client's JSON body), other bindings and other trigger members are skipped without
/// building anything, so a crafted body cannot inflate memory. Members of the wrong JSON
/// type are consumed and reported as the matching [`EnvelopeError`].
pub fn to_http_request(spec: &FunctionSpec, envelope: &[u8]) -> Result<http::Request<Bytes>, EnvelopeError> {
    from_envelope(spec, &Bytes::copy_from_slice(envelope))
}

/// [`to_http_request`] for an envelope already in [`Bytes`] (as read from the host): header
/// values without escapes share its memory instead of being copied.
fn from_envelope(spec: &FunctionSpec, envelope: &Bytes) -> Result<http::Request<Bytes>, EnvelopeError> {
    // serde also reads a map from a JSON array; the host always sends an object.
    if envelope.trim_ascii_start().first() != Some(&b'{') {
        return Err(EnvelopeError::NotJson);
    }
    // JSON is UTF-8: checked once here, so strings borrowed below are not checked again.
    let text = std::str::from_utf8(envelope).map_err(|_| EnvelopeError::NotJson)?;
    let mut reader = serde_json::Deserializer::from_str(text);
    // `Data.<trigger>`, read as the trigger's members if it is an object.
    let trigger = [spec.trigger.as_str()];
    let data = Member { names: &trigger, seed: PhantomData::<Trigger<'_>> };
    let root = Member { names: &["Data", "data"], seed: data }
        .deserialize(&mut reader)
        .and_then(|root| reader.end().map(|()| root))
        .map_err(|_| EnvelopeError::NotJson)?;
    let req = root.flatten().and_then(|t| t.0).ok_or_else(|| EnvelopeError::MissingTrigger(spec.trigger.clone()))?;

    let method = match req.method {
        Some(Text::Str(method)) if method.bytes().any(|b| b.is_ascii_lowercase()) => {
            Method::from_bytes(method.to_ascii_uppercase().as_bytes()).ok()
        }
        Some(Text::Str(method)) => Method::from_bytes(method.as_bytes()).ok(),
        _ => None,
    }
    .ok_or(EnvelopeError::BadMethod)?;
    // The URL is informative only (the function is already chosen); keep path and query.
    let uri = match &req.url {
        Some(Text::Str(url)) => url.parse::<Uri>().ok().and_then(|u| u.into_parts().path_and_query),
        _ => None,
    }
    .map_or_else(|| Uri::from_static("/"), Uri::from);

    let mut headers = HeaderMap::new();
    match req.headers {
        None => {}
        Some(HeaderList::Invalid) => return Err(EnvelopeError::BadHeaders),
        Some(HeaderList::Lines(lines)) => {
            for (name, values) in lines {
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| EnvelopeError::BadHeaders)?;
                // The host sends every header as an array; each entry is one header line.
                for value in values {
                    let Text::Str(value) = value else { return Err(EnvelopeError::BadHeaders) };
                    let value = header_value(envelope, &value).map_err(|_| EnvelopeError::BadHeaders)?;
                    if headers.len() >= MAX_HEADER_LINES {
                        return Err(EnvelopeError::BadHeaders);
                    }
                    // `append` would panic past the map's capacity; `try_append` reports it.
                    headers.try_append(&name, value).map_err(|_| EnvelopeError::BadHeaders)?;
                }
            }
        }
    }

    let body = match req.body {
        None => Bytes::new(),
        Some(raw) if raw.get() == "null" => Bytes::new(),
        Some(raw) => match serde_json::from_str::<Text<'_>>(raw.get()) {
            Ok(Text::Str(text)) => {
                let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
                let binary = content_type.eq_ignore_ascii_case("application/octet-stream")
                    || content_type.to_ascii_lowercase().contains("multipart/");
                // The host base64-encodes exactly these content types.
                match (binary.then(|| STANDARD.decode(text.as_bytes()).ok()).flatten(), text) {
                    (Some(bytes), _) => Bytes::from(bytes),
                    (None, Cow::Borrowed(text)) => share(envelope, text),
                    (None, Cow::Owned(text)) => Bytes::from(text),
                }
            }
            _ => share(envelope, raw.get()),
        },
    };

    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// A header value for `text`, sharing the envelope's memory where it can ([`share`]).
fn header_value(envelope: &Bytes, text: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    HeaderValue::from_maybe_shared(share(envelope, text))
}

/// `text` as [`Bytes`]: a slice of `envelope` when `text` lies inside it (a string borrowed
/// from the envelope), else a copy.
fn share(envelope: &Bytes, text: &str) -> Bytes {
    let within = envelope.as_ptr_range();
    let (start, end) = (text.as_ptr(), text.as_ptr().wrapping_add(text.len()));
    if within.start <= start && end <= within.end {
        envelope.slice_ref(text.as_bytes())
    } else {
        Bytes::copy_from_slice(text.as_bytes())
    }
}

/// The members of the HTTP trigger this handler reads (`Query`, `Params`, `Identities`
/// are skipped: the URL carries the query, identities are not ours to trust).
#[derive(Deserialize)]
struct HttpTrigger<'a> {
    #[serde(rename = "Method", alias = "method", borrow)]
    method: Option<Text<'a>>,
    #[serde(rename = "Url", alias = "url", borrow)]
    url: Option<Text<'a>>,
    #[serde(rename = "Headers", alias = "headers", borrow)]
    headers: Option<HeaderList<'a>>,
    #[serde(rename = "Body", alias = "body", borrow)]
    body: Option<&'a RawValue>,
}

/// An object of which only the member named one of `names` is read, with `seed` (the last
/// one if repeated); every other member is skipped. `None` when there is no such member.
#[derive(Clone, Copy)]
struct Member<'s, S> {
    names: &'s [&'s str],
    seed: S,
}

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for Member<'_, S> {
    type Value = Option<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for Member<'_, S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with a member {:?}", self.names)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut value = None;
        while let Some(key) = map.next_key::<Text<'de>>()? {
            if matches!(&key, Text::Str(k) if self.names.contains(&k.as_ref())) {
                value = Some(map.next_value_seed(self.seed)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(value)
    }
}

/// How a member is read without failing on the wrong JSON type: strings, arrays and
/// objects as the type says; anything else (and whatever a type does not take) is
/// consumed and becomes [`Lenient::other`], which the caller reports as its own error.
trait Lenient<'de>: Sized {
    /// The value for a JSON type this member does not take.
    fn other() -> Self;

    /// A JSON string (borrowed from the envelope when it has no escapes).
    fn string(_: Cow<'de, str>) -> Self {
        Self::other()
    }

    /// A JSON array.
    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::other())
    }

    /// A JSON object.
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Self::other())
    }
}

/// The serde visitor behind every [`Lenient`] type.
struct LenientVisitor<T>(PhantomData<T>);

/// `Deserialize` for a [`Lenient`] type.
fn lenient<'de, D: Deserializer<'de>, T: Lenient<'de>>(deserializer: D) -> Result<T, D::Error> {
    deserializer.deserialize_any(LenientVisitor(PhantomData))
}

impl<'de, T: Lenient<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<T, E> {
        Ok(T::string(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<T, E> {
        Ok(T::string(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<T, E> {
        Ok(T::string(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::array(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::object(map)
    }

    fn visit_bool<E>(self, _: bool) -> Result<T, E> {
        Ok(T::other())
    }

    fn visit_i64<E>(self, _: i64) -> Result<T, E> {
        Ok(T::other())
    }

    fn visit_u64<E>(self, _: u64) -> Result<T, E> {
        Ok(T::other())
    }

    fn visit_f64<E>(self, _: f64) -> Result<T, E> {
        Ok(T::other())
    }

    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::other())
    }
}

/// `Data.<trigger>`: the trigger's members if it is an object.
struct Trigger<'a>(Option<HttpTrigger<'a>>);

impl<'de: 'a, 'a> Lenient<'de> for Trigger<'a> {
    fn other() -> Self {
        Self(None)
    }

    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        HttpTrigger::deserialize(MapAccessDeserializer::new(map)).map(|t| Self(Some(t)))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Trigger<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient(deserializer)
    }
}

/// A JSON string, or [`Text::Other`] for any other value.
enum Text<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Lenient<'de> for Text<'a> {
    fn other() -> Self {
        Self::Other
    }

    fn string(text: Cow<'de, str>) -> Self {
        Self::Str(text)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient(deserializer)
    }
}

/// `Headers`: an object of header names to a string or an array of strings (one per
/// header line), in envelope order; anything else is [`HeaderList::Invalid`].
enum HeaderList<'a> {
    Lines(Vec<(Cow<'a, str>, Values<'a>)>),
    Invalid,
}

impl<'de: 'a, 'a> Lenient<'de> for HeaderList<'a> {
    fn other() -> Self {
        Self::Invalid
    }

    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut lines = Vec::new();
        let mut count = 0usize;
        let mut valid = true;
        while let Some((name, values)) = map.next_entry::<Text<'a>, Values<'a>>()? {
            count = count.saturating_add(values.len());
            match name {
                // Past the line cap nothing more is kept: the rest is only read through.
                Text::Str(name) if valid && values.valid && count <= MAX_HEADER_LINES => lines.push((name, values)),
                _ => {
                    valid = false;
                    lines = Vec::new();
                }
            }
        }
        Ok(if valid { Self::Lines(lines) } else { Self::Invalid })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for HeaderList<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient(deserializer)
    }
}

/// One header's values: a string is one line, an array one line per entry (entries that
/// are not strings stay [`Text::Other`]); anything else is not `valid`. The first line is
/// held inline: the host sends one-entry arrays, which then need no allocation.
struct Values<'a> {
    first: Option<Text<'a>>,
    rest: Vec<Text<'a>>,
    valid: bool,
}

impl<'a> Values<'a> {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
}

impl<'a> IntoIterator for Values<'a> {
    type Item = Text<'a>;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Text<'a>>, std::vec::IntoIter<Text<'a>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl<'de: 'a, 'a> Lenient<'de> for Values<'a> {
    fn other() -> Self {
        Self { first: None, rest: Vec::new(), valid: false }
    }

    fn string(text: Cow<'de, str>) -> Self {
        Self { first: Some(Text::Str(text)), rest: Vec::new(), valid: true }
    }

    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut values = Self { first: seq.next_element::<Text<'a>>()?, rest: Vec::new(), valid: true };
        while let Some(value) = seq.next_element::<Text<'a>>()? {
            // One past the cap is enough for the caller to refuse the envelope.
            if values.rest.len() < MAX_HEADER_LINES {
                values.rest.push(value);
            }
        }
        Ok(values)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Values<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient(deserializer)
    }
}

/// The HTTP output the host turns into the client's response.
#[derive(Serialize)]
struct HttpOutput<'a> {
    /// `statusCode`, not `status`, which the host ignores.
    #[serde(rename = "statusCode")]
    status_code: u16,
    headers: StringHeaders<'a>,
    /// A string, so the host writes it verbatim.
    body: Cow<'a, str>,
}

/// Response headers as one JSON string per name (repeated headers joined with `, `): the
/// host stringifies any other value into an invalid header.
struct StringHeaders<'a>(&'a HeaderMap);

impl Serialize for StringHeaders<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.keys_len()))?;
        for name in self.0.keys() {
            let mut values = self.0.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()));
            let mut joined = values.next().unwrap_or_default();
            for value in values {
                let joined = joined.to_mut();
                joined.push_str(", ");
                joined.push_str(&value);
            }
            map.serialize_entry(name.as_str(), &joined)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct InvocationResult<'a> {
    #[serde(rename = "Outputs")]
    outputs: Outputs<'a>,
    #[serde(rename = "Logs")]
    logs: &'a [String],
    #[serde(rename = "ReturnValue")]
    return_value: Option<HttpOutput<'a>>,
}

/// `Outputs`: the named HTTP output binding, or nothing when the function returns
/// through `$return`.
struct Outputs<'a>(Option<(&'a str, HttpOutput<'a>)>);

impl Serialize for Outputs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(usize::from(self.0.is_some())))?;
        if let Some((name, output)) = &self.0 {
            map.serialize_entry(name, output)?;
        }
        map.end()
    }
}

/// Turns the function's response into the invocation result (JSON text) the host expects.
pub fn to_invocation_result(
    spec: &FunctionSpec,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    logs: Vec<String>,
) -> String {
    let output = HttpOutput {
        status_code: status.as_u16(),
        headers: StringHeaders(headers),
        body: String::from_utf8_lossy(body),
    };
    let result = if spec.output == "$return" {
        InvocationResult { outputs: Outputs(None), logs: &logs, return_value: Some(output) }
    } else {
        InvocationResult { outputs: Outputs(Some((spec.output.as_str(), output))), logs: &logs, return_value: None }
    };
    // Serializing these types cannot fail (string keys, no floats); fall back to a valid
    // empty answer rather than panic.
    serde_json::to_string(&result).unwrap_or_else(|_| r#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#.to_owned())
}

fn envelope_answer(result: String) -> Response<Body> {
    let mut response = Response::new(Body::from(result));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn function_answer(spec: &FunctionSpec, response: Response<Body>, logs: Vec<String>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    // Handler bodies are small text; a body that fails to collect becomes empty.
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    envelope_answer(to_invocation_result(spec, parts.status, &parts.headers, &body, logs))
}

/// Handles `POST /<Function>` from the host.
pub async fn handle(state: &AppState, index: usize, request: Request) -> Response<Body> {
    let spec = &state.layout.functions[index];
    let limit = state.max_body_bytes.saturating_add(ENVELOPE_OVERHEAD_BYTES);
    let Ok(envelope) = axum::body::to_bytes(request.into_body(), limit).await else {
        let line = format!("invocation payload for {} exceeds {limit} bytes", spec.name);
        warn!(function = %spec.name, limit, "invocation payload too large");
        return function_answer(spec, plain(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"), vec![line]).await;
    };
    let request = match from_envelope(spec, &envelope) {
        Ok(request) => request,
        Err(error) => {
            warn!(function = %spec.name, error = %error, "malformed invocation payload");
            let answer = plain(StatusCode::BAD_REQUEST, "Malformed invocation request");
            return function_answer(spec, answer, vec![error.to_string()]).await;
        }
    };
    let (parts, body) = request.into_parts();
    let mut logs = Vec::new();
    let response = run_function_with(state, index, parts, Body::from(body), Some(&mut logs)).await;
    function_answer(spec, response, logs).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn spec(output: &str) -> FunctionSpec {
        FunctionSpec {
            name: "api-a".into(),
            route: "api-a".into(),
            methods: None,
            trigger: "req".into(),
            output: output.into(),
            policy: Default::default(),
        }
    }

    #[test]
    fn headers_arrive_as_arrays_and_each_entry_is_a_header_line() {
        let envelope = json!({"Data": {"req": {
            "Url": "https://app.azurewebsites.net/api/api-a?code=k&x=1",
            "Method": "GET",
            "Headers": {"Authorization": ["Bearer a", "Bearer b"], "Host": ["app"]},
            "Query": {"code": "k"}
        }}, "Metadata": {}});
        let request = to_http_request(&spec("res"), envelope.to_string().as_bytes()).unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/api/api-a?code=k&x=1");
        assert_eq!(request.headers().get_all(header::AUTHORIZATION).iter().count(), 2);
    }

    #[test]
    fn binary_bodies_are_base64_and_text_bodies_are_verbatim() {
        let make = |ct: &str, body: &str| {
            let envelope =
                json!({"Data": {"req": {"Method": "POST", "Headers": {"Content-Type": [ct]}, "Body": body}}});
            to_http_request(&spec("res"), envelope.to_string().as_bytes()).unwrap().into_body()
        };
        assert_eq!(make("application/octet-stream", "aGk="), Bytes::from_static(b"hi"));
        assert_eq!(make("text/plain", "aGk="), Bytes::from_static(b"aGk="));
    }

    #[test]
    fn malformed_envelopes_are_named() {
        let parse = |v: &str| to_http_request(&spec("res"), v.as_bytes()).unwrap_err();
        assert_eq!(parse("not json"), EnvelopeError::NotJson);
        assert_eq!(parse(r#"[{"req": {"Method": "GET"}}]"#), EnvelopeError::NotJson);
        assert_eq!(parse(r#"{"Data": {}}"#), EnvelopeError::MissingTrigger("req".into()));
        assert_eq!(parse(r#"{"Data": {"req": {"Method": 7}}}"#), EnvelopeError::BadMethod);
        assert_eq!(parse(r#"{"Data": {"req": {"Method": "GET", "Headers": {"a": [1]}}}}"#), EnvelopeError::BadHeaders);
        assert_eq!(
            parse(r#"{"Data": {"req": {"Method": "GET", "Headers": {"a b": ["x"]}}}}"#),
            EnvelopeError::BadHeaders
        );
    }

    #[test]
    fn escaped_strings_single_values_and_lowercase_methods_are_read() {
        let envelope = r#"{"Metadata": {"x": [1, {"y": null}]}, "Data": {"other": 5, "req": {
            "Url": "https:\/\/app\/api\/api-a?q=\u0031", "Method": "post", "Query": {"code": "k"},
            "Headers": {"X-Quoted": "a\"b", "Accept": ["*/*"], "X-Two": ["1", "2"]}, "Body": "h\u00e9"}}}"#;
        let request = to_http_request(&spec("res"), envelope.as_bytes()).unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/api/api-a?q=1");
        assert_eq!(request.headers()["x-quoted"], "a\"b");
        assert_eq!(request.headers()["accept"], "*/*");
        assert_eq!(request.headers().get_all("x-two").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(request.body(), "h\u{e9}".as_bytes());
        // A JSON (non-string) body is passed on as its JSON text; no URL means "/".
        let json =
            to_http_request(&spec("res"), br#"{"Data": {"req": {"Method": "GET", "Body": {"a": [1]}}}}"#).unwrap();
        assert_eq!((json.uri().to_string().as_str(), json.body().as_ref()), ("/", br#"{"a": [1]}"#.as_slice()));
    }

    #[test]
    fn members_of_the_wrong_type_are_the_matching_error() {
        let parse = |v: &str| to_http_request(&spec("res"), v.as_bytes()).unwrap_err();
        assert_eq!(parse(r#"{"Data": 5}"#), EnvelopeError::NotJson);
        assert_eq!(parse(r#"{"Data": {"req": {"Method": "GET"}}} trailing"#), EnvelopeError::NotJson);
        assert_eq!(parse(r#"{"Data": {"req": "GET /"}}"#), EnvelopeError::MissingTrigger("req".into()));
        assert_eq!(parse(r#"{"Data": {"req": [{"Method": "GET"}]}}"#), EnvelopeError::MissingTrigger("req".into()));
        assert_eq!(parse(r#"{"Data": {"req": {"Method": ["GET"]}}}"#), EnvelopeError::BadMethod);
        assert_eq!(parse(r#"{"Data": {"req": {"Url": "/"}}}"#), EnvelopeError::BadMethod);
        assert_eq!(parse(r#"{"Data": {"req": {"Method": "GET", "Headers": ["a"]}}}"#), EnvelopeError::BadHeaders);
        assert_eq!(
            parse(r#"{"Data": {"req": {"Method": "GET", "Headers": {"a": {"b": "c"}}}}}"#),
            EnvelopeError::BadHeaders
        );
        assert_eq!(
            parse(r#"{"Data": {"req": {"Method": "GET", "Headers": {"a": "x\ny"}}}}"#),
            EnvelopeError::BadHeaders
        );
    }

    #[test]
    fn header_lines_are_capped_across_names_and_arrays() {
        let envelope = |headers: Value| json!({"Data": {"req": {"Method": "GET", "Headers": headers}}}).to_string();
        let names = |n: usize| Value::Object((0..n).map(|i| (format!("x-{i}"), json!(["v"]))).collect());
        let parse = |v: String| to_http_request(&spec("res"), v.as_bytes()).map(|r| r.headers().len());
        assert_eq!(parse(envelope(names(MAX_HEADER_LINES))), Ok(MAX_HEADER_LINES));
        assert_eq!(parse(envelope(names(MAX_HEADER_LINES + 1))), Err(EnvelopeError::BadHeaders));
        let lines = |n: usize| json!({"x-many": vec!["v"; n]});
        assert_eq!(parse(envelope(lines(MAX_HEADER_LINES))), Ok(MAX_HEADER_LINES));
        assert_eq!(parse(envelope(lines(100_000))), Err(EnvelopeError::BadHeaders));
    }

    #[test]
    fn header_values_share_the_envelope_when_they_lie_inside_it() {
        let envelope = Bytes::from_static(b"{\"a\": \"Bearer x\"}");
        let inside = std::str::from_utf8(&envelope[7..15]).unwrap();
        let shared = header_value(&envelope, inside).unwrap();
        assert_eq!((shared.to_str().unwrap(), shared.as_bytes().as_ptr()), ("Bearer x", inside.as_ptr()));
        let copied = String::from("Bearer y");
        assert_eq!(header_value(&envelope, &copied).unwrap(), "Bearer y");
        assert!(header_value(&envelope, "a\nb").is_err());
        assert!(header_value(&envelope, std::str::from_utf8(&envelope[..]).unwrap()).is_ok());
        // Bodies too: a string without escapes and raw JSON are slices of the envelope.
        let envelope = Bytes::from_static(br#"{"Data": {"req": {"Method": "POST", "Body": "plain text"}}}"#);
        let body = from_envelope(&spec("res"), &envelope).unwrap().into_body();
        let at = envelope.windows(10).position(|w| w == b"plain text").unwrap();
        assert_eq!((body.as_ref(), body.as_ptr()), (b"plain text".as_slice(), envelope[at..].as_ptr()));
    }

    #[test]
    fn repeated_response_headers_are_joined_into_one_string() {
        let mut headers = HeaderMap::new();
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        headers.append(header::VARY, HeaderValue::from_static("accept"));
        let result = to_invocation_result(&spec("res"), StatusCode::OK, &headers, b"", vec![]);
        let result: Value = serde_json::from_str(&result).unwrap();
        assert_eq!(result["Outputs"]["res"]["headers"], json!({"vary": "origin, accept"}));
    }

    #[test]
    fn result_puts_the_response_in_the_named_output_with_string_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
        let result = to_invocation_result(&spec("res"), StatusCode::UNAUTHORIZED, &headers, b"no", vec!["l".into()]);
        let result: Value = serde_json::from_str(&result).unwrap();
        assert_eq!(result["Outputs"]["res"]["statusCode"], 401);
        assert_eq!(result["Outputs"]["res"]["headers"]["www-authenticate"], "Bearer realm=\"api\"");
        assert_eq!(result["Outputs"]["res"]["body"], "no");
        assert_eq!(result["Logs"], json!(["l"]));
        assert_eq!(result["ReturnValue"], Value::Null);
        let ret = to_invocation_result(&spec("$return"), StatusCode::OK, &HeaderMap::new(), b"ok", vec![]);
        let ret: Value = serde_json::from_str(&ret).unwrap();
        assert_eq!(ret["ReturnValue"]["statusCode"], 200);
        assert_eq!(ret["Outputs"], json!({}));
    }
}
