//! Invocation mode (PROTOCOL.md §5): the host POSTs `{"Data": {...}, "Metadata": {...}}`
//! to `/<Function>` and expects `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`
//! back. This module is the edge: envelope in → an `http` request (HTTP triggers) or the
//! trigger payload (other triggers), plus route values and input binding values; response
//! and output values → envelope out. It knows nothing of the app that runs in between.

pub use axum::body::Bytes;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

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
    /// `Data.<trigger>.Params` is not an object of strings (or nulls).
    #[error("invocation payload has invalid Params")]
    BadParams,
}

/// What the edge must know of a function to read its envelope: the trigger binding's name
/// and the names of its input bindings (other `Data` members are skipped unread).
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// The trigger binding (`req`, `timer`, ...).
    pub trigger: &'a str,
    /// Declared input bindings (`direction: in`/`inout`, not the trigger).
    pub inputs: &'a [&'a str],
}

/// An HTTP trigger's envelope, converted.
#[derive(Debug)]
pub struct HttpInvocation {
    /// The request the client sent to the host.
    pub request: http::Request<Bytes>,
    /// Route values the host matched (`Data.<trigger>.Params`), by name; `None`
    /// for an unmatched optional parameter. Never read from `Metadata`, which the caller
    /// fills through the query string and JSON body.
    pub params: Vec<(String, Option<String>)>,
    /// Input binding values.
    pub inputs: InputValues,
}

/// A non-HTTP trigger's envelope (timer, queue, blob, ...).
#[derive(Debug)]
pub struct TriggerInvocation {
    /// `Data.<trigger>` as JSON text (`null` when the host sent none).
    pub payload: Bytes,
    /// `Metadata` as JSON text (`{}` when absent).
    pub metadata: Bytes,
    /// Input binding values.
    pub inputs: InputValues,
}

/// Input binding values by binding name, each the JSON text the host sent.
#[derive(Debug, Clone, Default)]
pub struct InputValues(Vec<(String, Bytes)>);

impl InputValues {
    /// The JSON text of binding `name` (case-sensitive, as function.json spells it).
    pub fn raw(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_ref())
    }

    /// Names of the bindings the host sent.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }
}

/// Reads a `Data`/`Metadata` value as `T`. The host sends strings, numbers and booleans as
/// JSON strings holding JSON (`"\"hello\""`, `"4"`, PROTOCOL.md §5.1): a string is first
/// read as the JSON it holds, then, if that fails, as itself (plain text, base64 bytes).
pub fn decode_value<T: DeserializeOwned>(raw: &[u8]) -> Result<T, serde_json::Error> {
    decode_parsed(serde_json::from_slice(raw)?)
}

/// [`decode_value`] for a value already parsed.
pub fn decode_parsed<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    match value {
        Value::String(text) => match serde_json::from_str::<T>(&text) {
            Ok(value) => Ok(value),
            Err(_) => T::deserialize(Value::String(text)),
        },
        other => T::deserialize(other),
    }
}

/// Turns an HTTP trigger's envelope into the request the client sent to the host; the
/// function's trigger binding is named `trigger` and it has no input bindings.
pub fn to_http_request(trigger: &str, envelope: &[u8]) -> Result<http::Request<Bytes>, EnvelopeError> {
    http_invocation(Shape { trigger, inputs: &[] }, &Bytes::copy_from_slice(envelope)).map(|i| i.request)
}

/// Converts an HTTP trigger's envelope, already in [`Bytes`] (as read from the host):
/// header values and bodies without escapes share its memory instead of being copied.
///
/// One pass over the envelope, borrowing from it: `Data.<trigger>` is read into typed
/// fields (strings borrowed unless they hold escapes); `Metadata` (which mirrors the
/// client's JSON body), undeclared bindings and other trigger members are skipped without
/// building anything, so a crafted body cannot inflate memory. Members of the wrong JSON
/// type are consumed and reported as the matching [`EnvelopeError`].
pub fn http_invocation(shape: Shape<'_>, envelope: &Bytes) -> Result<HttpInvocation, EnvelopeError> {
    let text = envelope_text(envelope)?;
    let mut reader = serde_json::Deserializer::from_str(text);
    let root = Root { shape, http: true, metadata: false }
        .deserialize(&mut reader)
        .and_then(|root| reader.end().map(|()| root))
        .map_err(|_| EnvelopeError::NotJson)?;
    let inputs = root.inputs(envelope);
    let Some(Payload::Http(Trigger(Some(req)))) = root.trigger else {
        return Err(EnvelopeError::MissingTrigger(shape.trigger.to_owned()));
    };

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
    let params = match req.params {
        None => Vec::new(),
        Some(raw) => route_params(raw.get())?,
    };

    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(HttpInvocation { request, params, inputs })
}

/// Converts a non-HTTP trigger's envelope.
pub fn trigger_invocation(shape: Shape<'_>, envelope: &Bytes) -> Result<TriggerInvocation, EnvelopeError> {
    let text = envelope_text(envelope)?;
    let mut reader = serde_json::Deserializer::from_str(text);
    let root = Root { shape, http: false, metadata: true }
        .deserialize(&mut reader)
        .and_then(|root| reader.end().map(|()| root))
        .map_err(|_| EnvelopeError::NotJson)?;
    let inputs = root.inputs(envelope);
    let payload = match root.trigger {
        Some(Payload::Raw(raw)) => share(envelope, raw.get()),
        _ if root.data_seen => Bytes::from_static(b"null"),
        _ => return Err(EnvelopeError::MissingTrigger(shape.trigger.to_owned())),
    };
    let metadata = match root.metadata {
        Some(raw) if raw.get().starts_with('{') => share(envelope, raw.get()),
        _ => Bytes::from_static(b"{}"),
    };
    Ok(TriggerInvocation { payload, metadata, inputs })
}

/// The envelope as text: a JSON object (serde would also read a map from an array), UTF-8
/// checked once here so strings borrowed later are not checked again.
fn envelope_text(envelope: &Bytes) -> Result<&str, EnvelopeError> {
    if envelope.trim_ascii_start().first() != Some(&b'{') {
        return Err(EnvelopeError::NotJson);
    }
    std::str::from_utf8(envelope).map_err(|_| EnvelopeError::NotJson)
}

/// `Params`: an object of parameter names to strings, or `null` for an unmatched optional
/// parameter. Numbers and booleans are taken as their JSON text.
fn route_params(raw: &str) -> Result<Vec<(String, Option<String>)>, EnvelopeError> {
    let object: serde_json::Map<String, Value> = serde_json::from_str(raw).map_err(|_| EnvelopeError::BadParams)?;
    object
        .into_iter()
        .map(|(name, value)| match value {
            Value::Null => Ok((name, None)),
            Value::String(text) => Ok((name, Some(text))),
            Value::Number(n) => Ok((name, Some(n.to_string()))),
            Value::Bool(b) => Ok((name, Some(b.to_string()))),
            _ => Err(EnvelopeError::BadParams),
        })
        .collect()
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
    #[serde(rename = "Params", alias = "params", borrow)]
    params: Option<&'a RawValue>,
}

/// The envelope's members this edge reads: `Data.<trigger>` (typed for HTTP triggers, raw
/// otherwise), the declared input bindings (raw), and `Metadata` (raw, when asked for).
/// Everything else is skipped unread; a repeated member counts once (the last one).
struct Root<'s> {
    shape: Shape<'s>,
    http: bool,
    metadata: bool,
}

/// What [`Root`] read.
struct Envelope<'de> {
    trigger: Option<Payload<'de>>,
    inputs: Vec<(Cow<'de, str>, &'de RawValue)>,
    metadata: Option<&'de RawValue>,
    data_seen: bool,
}

impl Envelope<'_> {
    fn inputs(&self, envelope: &Bytes) -> InputValues {
        InputValues(self.inputs.iter().map(|(name, raw)| (name.to_string(), share(envelope, raw.get()))).collect())
    }
}

/// `Data.<trigger>`.
enum Payload<'de> {
    Http(Trigger<'de>),
    Raw(&'de RawValue),
}

impl<'de, 's> DeserializeSeed<'de> for Root<'s> {
    type Value = Envelope<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 's> Visitor<'de> for Root<'s> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an invocation envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope { trigger: None, inputs: Vec::new(), metadata: None, data_seen: false };
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &key {
                Text::Str(k) if k == "Data" || k == "data" => {
                    envelope.data_seen = true;
                    let data = map.next_value_seed(Data { shape: self.shape, http: self.http })?;
                    envelope.trigger = data.0;
                    envelope.inputs = data.1;
                }
                Text::Str(k) if self.metadata && (k == "Metadata" || k == "metadata") => {
                    envelope.metadata = Some(map.next_value()?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

/// `Data`: the trigger and the declared inputs.
#[derive(Clone, Copy)]
struct Data<'s> {
    shape: Shape<'s>,
    http: bool,
}

type DataMembers<'de> = (Option<Payload<'de>>, Vec<(Cow<'de, str>, &'de RawValue)>);

impl<'de, 's> DeserializeSeed<'de> for Data<'s> {
    type Value = DataMembers<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 's> Visitor<'de> for Data<'s> {
    type Value = DataMembers<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with a member {:?}", self.shape.trigger)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut trigger, mut inputs) = (None, Vec::new());
        while let Some(key) = map.next_key::<Text<'de>>()? {
            let Text::Str(key) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if key == self.shape.trigger {
                trigger = Some(if self.http {
                    Payload::Http(map.next_value::<Trigger<'de>>()?)
                } else {
                    Payload::Raw(map.next_value::<&'de RawValue>()?)
                });
            } else if self.shape.inputs.contains(&key.as_ref()) {
                let raw = map.next_value::<&'de RawValue>()?;
                inputs.retain(|(name, _): &(Cow<'de, str>, &'de RawValue)| *name != key);
                inputs.push((key, raw));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((trigger, inputs))
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

/// The HTTP response for the caller, in the function's `http` output binding.
#[derive(Debug, Clone, Copy)]
pub struct HttpAnswer<'a> {
    /// The `http` output binding's name (`res`, or `$return` for `ReturnValue`).
    pub binding: &'a str,
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: &'a HeaderMap,
    /// Response body (sent as text: the host cannot return binary bodies here).
    pub body: &'a [u8],
}

/// A value for an output binding (or `$return`).
#[derive(Debug, Clone, Copy)]
pub struct OutputValue<'a> {
    /// The binding's name, exactly as in function.json.
    pub name: &'a str,
    /// The value.
    pub value: &'a Value,
    /// Send `value` exactly as it is: for `dataType: binary` bindings, which the host passes
    /// through, and for strings that already hold base64 bytes.
    pub verbatim: bool,
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

impl<'a> HttpOutput<'a> {
    fn new(answer: &HttpAnswer<'a>) -> Self {
        Self {
            status_code: answer.status.as_u16(),
            headers: StringHeaders(answer.headers),
            body: String::from_utf8_lossy(answer.body),
        }
    }
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

/// An output value as the host must receive it. The host decodes any string that happens
/// to be valid base64 into bytes (`"test"`, `"abcd"`, PROTOCOL.md §5.2), so a string goes
/// out base64-encoded: the binding then always receives its UTF-8 bytes. Objects, arrays,
/// numbers and booleans go as JSON; [`OutputValue::verbatim`] values go unchanged.
struct Encoded<'a>(&'a OutputValue<'a>);

impl Serialize for Encoded<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.value {
            Value::String(text) if !self.0.verbatim => serializer.serialize_str(&STANDARD.encode(text)),
            value => value.serialize(serializer),
        }
    }
}

#[derive(Serialize)]
struct InvocationResult<'a> {
    #[serde(rename = "Outputs")]
    outputs: Outputs<'a>,
    #[serde(rename = "Logs")]
    logs: &'a [String],
    #[serde(rename = "ReturnValue")]
    return_value: Option<ReturnValue<'a>>,
}

enum ReturnValue<'a> {
    Http(HttpOutput<'a>),
    Value(Encoded<'a>),
}

impl Serialize for ReturnValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Http(output) => output.serialize(serializer),
            Self::Value(value) => value.serialize(serializer),
        }
    }
}

/// `Outputs`: the named HTTP output binding and every other output value.
struct Outputs<'a> {
    http: Option<(&'a str, HttpOutput<'a>)>,
    values: &'a [OutputValue<'a>],
}

impl Serialize for Outputs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for value in self.values.iter().filter(|v| v.name != "$return") {
            map.serialize_entry(value.name, &Encoded(value))?;
        }
        if let Some((name, output)) = &self.http {
            map.serialize_entry(name, output)?;
        }
        map.end()
    }
}

/// The invocation result (JSON text) the host expects: `http` goes to its binding (or
/// `ReturnValue` for `$return`), each of `outputs` to its binding, except one named
/// `$return`, which becomes `ReturnValue`.
pub fn invocation_result(http: Option<HttpAnswer<'_>>, outputs: &[OutputValue<'_>], logs: &[String]) -> String {
    let mut return_value = outputs.iter().rev().find(|o| o.name == "$return").map(|o| ReturnValue::Value(Encoded(o)));
    let mut http_output = None;
    if let Some(answer) = &http {
        if answer.binding == "$return" {
            return_value = Some(ReturnValue::Http(HttpOutput::new(answer)));
        } else {
            http_output = Some((answer.binding, HttpOutput::new(answer)));
        }
    }
    let result = InvocationResult { outputs: Outputs { http: http_output, values: outputs }, logs, return_value };
    // Serializing these types cannot fail (string keys, JSON values); fall back to a valid
    // empty answer rather than panic.
    serde_json::to_string(&result).unwrap_or_else(|_| r#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#.to_owned())
}

/// [`invocation_result`] for an HTTP function with no other outputs.
pub fn to_invocation_result(
    binding: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    logs: Vec<String>,
) -> String {
    invocation_result(Some(HttpAnswer { binding, status, headers, body }), &[], &logs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const REQ: Shape<'static> = Shape { trigger: "req", inputs: &[] };

    #[test]
    fn headers_arrive_as_arrays_and_each_entry_is_a_header_line() {
        let envelope = json!({"Data": {"req": {
            "Url": "https://app.azurewebsites.net/api/api-a?code=k&x=1",
            "Method": "GET",
            "Headers": {"Authorization": ["Bearer a", "Bearer b"], "Host": ["app"]},
            "Query": {"code": "k"}
        }}, "Metadata": {}});
        let request = to_http_request("req", envelope.to_string().as_bytes()).unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/api/api-a?code=k&x=1");
        assert_eq!(request.headers().get_all(header::AUTHORIZATION).iter().count(), 2);
    }

    #[test]
    fn binary_bodies_are_base64_and_text_bodies_are_verbatim() {
        let make = |ct: &str, body: &str| {
            let envelope =
                json!({"Data": {"req": {"Method": "POST", "Headers": {"Content-Type": [ct]}, "Body": body}}});
            to_http_request("req", envelope.to_string().as_bytes()).unwrap().into_body()
        };
        assert_eq!(make("application/octet-stream", "aGk="), Bytes::from_static(b"hi"));
        assert_eq!(make("text/plain", "aGk="), Bytes::from_static(b"aGk="));
    }

    #[test]
    fn malformed_envelopes_are_named() {
        let parse = |v: &str| to_http_request("req", v.as_bytes()).unwrap_err();
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
        let request = to_http_request("req", envelope.as_bytes()).unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/api/api-a?q=1");
        assert_eq!(request.headers()["x-quoted"], "a\"b");
        assert_eq!(request.headers()["accept"], "*/*");
        assert_eq!(request.headers().get_all("x-two").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(request.body(), "h\u{e9}".as_bytes());
        // A JSON (non-string) body is passed on as its JSON text; no URL means "/".
        let json = to_http_request("req", br#"{"Data": {"req": {"Method": "GET", "Body": {"a": [1]}}}}"#).unwrap();
        assert_eq!((json.uri().to_string().as_str(), json.body().as_ref()), ("/", br#"{"a": [1]}"#.as_slice()));
    }

    #[test]
    fn members_of_the_wrong_type_are_the_matching_error() {
        let parse = |v: &str| to_http_request("req", v.as_bytes()).unwrap_err();
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
        let parse = |v: String| to_http_request("req", v.as_bytes()).map(|r| r.headers().len());
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
        let body = http_invocation(REQ, &envelope).unwrap().request.into_body();
        let at = envelope.windows(10).position(|w| w == b"plain text").unwrap();
        assert_eq!((body.as_ref(), body.as_ptr()), (b"plain text".as_slice(), envelope[at..].as_ptr()));
    }

    #[test]
    fn repeated_response_headers_are_joined_into_one_string() {
        let mut headers = HeaderMap::new();
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        headers.append(header::VARY, HeaderValue::from_static("accept"));
        let result = to_invocation_result("res", StatusCode::OK, &headers, b"", vec![]);
        let result: Value = serde_json::from_str(&result).unwrap();
        assert_eq!(result["Outputs"]["res"]["headers"], json!({"vary": "origin, accept"}));
    }

    #[test]
    fn result_puts_the_response_in_the_named_output_with_string_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
        let result = to_invocation_result("res", StatusCode::UNAUTHORIZED, &headers, b"no", vec!["l".into()]);
        let result: Value = serde_json::from_str(&result).unwrap();
        assert_eq!(result["Outputs"]["res"]["statusCode"], 401);
        assert_eq!(result["Outputs"]["res"]["headers"]["www-authenticate"], "Bearer realm=\"api\"");
        assert_eq!(result["Outputs"]["res"]["body"], "no");
        assert_eq!(result["Logs"], json!(["l"]));
        assert_eq!(result["ReturnValue"], Value::Null);
        let ret = to_invocation_result("$return", StatusCode::OK, &HeaderMap::new(), b"ok", vec![]);
        let ret: Value = serde_json::from_str(&ret).unwrap();
        assert_eq!(ret["ReturnValue"]["statusCode"], 200);
        assert_eq!(ret["Outputs"], json!({}));
    }

    #[test]
    fn params_and_declared_inputs_are_read_and_metadata_is_not() {
        let envelope = Bytes::from(
            json!({"Data": {
                "req": {"Method": "GET", "Url": "http://h/api/orders/7", "Params": {"id": "7", "rest": null, "n": 3}},
                "order": {"id": 7},
                "other": "ignored"
            }, "Metadata": {"id": "\"999\""}})
            .to_string(),
        );
        let shape = Shape { trigger: "req", inputs: &["order"] };
        let invocation = http_invocation(shape, &envelope).unwrap();
        assert_eq!(
            invocation.params,
            [
                ("id".to_owned(), Some("7".to_owned())),
                ("n".to_owned(), Some("3".to_owned())),
                ("rest".to_owned(), None)
            ]
        );
        assert_eq!(invocation.inputs.raw("order"), Some(br#"{"id":7}"#.as_slice()));
        assert_eq!(invocation.inputs.names().collect::<Vec<_>>(), ["order"]);
        let bad = Bytes::from_static(br#"{"Data": {"req": {"Method": "GET", "Params": {"id": {"x": 1}}}}}"#);
        assert_eq!(http_invocation(REQ, &bad).unwrap_err(), EnvelopeError::BadParams);
    }

    #[test]
    fn trigger_payload_and_metadata_are_passed_raw() {
        let envelope = Bytes::from_static(
            br#"{"Data": {"timer": {"Schedule": {}, "IsPastDue": false}}, "Metadata": {"sys": {"MethodName": "cleanup"}}}"#,
        );
        let shape = Shape { trigger: "timer", inputs: &[] };
        let invocation = trigger_invocation(shape, &envelope).unwrap();
        assert_eq!(invocation.payload.as_ref(), br#"{"Schedule": {}, "IsPastDue": false}"#);
        assert_eq!(invocation.metadata.as_ref(), br#"{"sys": {"MethodName": "cleanup"}}"#);
        let none = trigger_invocation(shape, &Bytes::from_static(br#"{"Data": {}}"#)).unwrap();
        assert_eq!((none.payload.as_ref(), none.metadata.as_ref()), (b"null".as_slice(), b"{}".as_slice()));
        assert_eq!(
            trigger_invocation(shape, &Bytes::from_static(b"{}")).unwrap_err(),
            EnvelopeError::MissingTrigger("timer".into())
        );
    }

    #[test]
    fn values_are_decoded_from_the_hosts_double_encoding() {
        assert_eq!(decode_value::<String>(br#""\"hello\"""#).unwrap(), "hello");
        assert_eq!(decode_value::<u32>(br#""4""#).unwrap(), 4);
        assert!(decode_value::<bool>(br#""true""#).unwrap());
        assert_eq!(decode_value::<String>(br#""aGk=""#).unwrap(), "aGk=");
        assert_eq!(decode_value::<Value>(br#"{"a": 1}"#).unwrap(), json!({"a": 1}));
        assert_eq!(decode_value::<Value>(br#""{\"a\": 1}""#).unwrap(), json!({"a": 1}));
        assert!(decode_value::<u32>(br#""x""#).is_err());
    }

    #[test]
    fn outputs_strings_are_base64_so_the_host_never_guesses() {
        let order = json!({"id": 1});
        let text = json!("test");
        let outputs = [
            OutputValue { name: "outQueue", value: &order, verbatim: false },
            OutputValue { name: "log", value: &text, verbatim: false },
            OutputValue { name: "raw", value: &text, verbatim: true },
        ];
        let headers = HeaderMap::new();
        let http = HttpAnswer { binding: "res", status: StatusCode::CREATED, headers: &headers, body: b"{}" };
        let result: Value = serde_json::from_str(&invocation_result(Some(http), &outputs, &[])).unwrap();
        assert_eq!(result["Outputs"]["outQueue"], order);
        assert_eq!(result["Outputs"]["log"], "dGVzdA==");
        assert_eq!(result["Outputs"]["raw"], "test");
        assert_eq!(result["Outputs"]["res"]["statusCode"], 201);
        assert_eq!(result["ReturnValue"], Value::Null);
        let returned = [OutputValue { name: "$return", value: &order, verbatim: false }];
        let result: Value = serde_json::from_str(&invocation_result(None, &returned, &["l".into()])).unwrap();
        assert_eq!((result["Outputs"].clone(), result["ReturnValue"].clone()), (json!({}), order));
    }
}
