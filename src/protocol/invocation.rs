//! Invocation mode (PROTOCOL.md §5): the host POSTs `{"Data": {...}, "Metadata": {...}}`
//! to `/<Function>` and expects `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`
//! back. This module is the edge: envelope in → an `http` request (HTTP triggers) or the
//! trigger payload (other triggers), plus route values and input binding values; response
//! and output values → envelope out. It knows nothing of the app that runs in between.

pub use axum::body::Bytes;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::scan::{self, Kind, NotJson, Scan};

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
/// One pass over the envelope (the module `scan`), borrowing from it: `Data.<trigger>` is read
/// member by member (strings borrowed unless they hold escapes), header lines go straight
/// into the request's header map; `Metadata` (which mirrors the client's JSON body),
/// undeclared bindings and other trigger members are skipped without building anything, so
/// a crafted body cannot inflate memory. The whole envelope must be JSON; members of the
/// wrong JSON type are consumed and reported as the matching [`EnvelopeError`].
pub fn http_invocation(shape: Shape<'_>, envelope: &Bytes) -> Result<HttpInvocation, EnvelopeError> {
    let text = envelope_text(envelope)?;
    let root = read_envelope(text, shape, Mode::Http(envelope)).map_err(|NotJson| EnvelopeError::NotJson)?;
    let inputs = root.inputs(envelope);
    let Some(Trigger::Http(req)) = root.trigger else {
        return Err(EnvelopeError::MissingTrigger(shape.trigger.to_owned()));
    };

    let method = match req.method {
        Some(Some(method)) if method.bytes().any(|b| b.is_ascii_lowercase()) => {
            Method::from_bytes(method.to_ascii_uppercase().as_bytes()).ok()
        }
        Some(Some(method)) => Method::from_bytes(method.as_bytes()).ok(),
        _ => None,
    }
    .ok_or(EnvelopeError::BadMethod)?;
    // The URL is informative only (the function is already chosen); keep path and query.
    let uri = match &req.url {
        Some(Some(url)) => path_and_query(envelope, url),
        _ => None,
    }
    .map_or_else(|| Uri::from_static("/"), Uri::from);

    let headers = match req.headers {
        Headers::Absent => HeaderMap::new(),
        Headers::Read(headers) => headers,
        Headers::Invalid => return Err(EnvelopeError::BadHeaders),
    };

    let body = match req.body {
        None | Some("null") => Bytes::new(),
        Some(raw) if raw.starts_with('"') => {
            let text = scan::Reader::new(raw).string().map_err(|NotJson| EnvelopeError::NotJson)?;
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
        Some(raw) => share(envelope, raw),
    };
    let params = match req.params {
        None | Some("{}") => Vec::new(),
        Some(raw) => route_params(raw)?,
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
    let root = read_envelope(text, shape, Mode::Raw).map_err(|NotJson| EnvelopeError::NotJson)?;
    let inputs = root.inputs(envelope);
    let payload = match root.trigger {
        Some(Trigger::Raw(raw)) => share(envelope, raw),
        _ if root.data_seen => Bytes::from_static(b"null"),
        _ => return Err(EnvelopeError::MissingTrigger(shape.trigger.to_owned())),
    };
    let metadata = match root.metadata {
        Some(raw) if raw.starts_with('{') => share(envelope, raw),
        _ => Bytes::from_static(b"{}"),
    };
    Ok(TriggerInvocation { payload, metadata, inputs })
}

/// The envelope as text: a JSON object, UTF-8 checked once here so strings borrowed later
/// are not checked again.
fn envelope_text(envelope: &Bytes) -> Result<&str, EnvelopeError> {
    if envelope.trim_ascii_start().first() != Some(&b'{') {
        return Err(EnvelopeError::NotJson);
    }
    std::str::from_utf8(envelope).map_err(|_| EnvelopeError::NotJson)
}

/// The path and query of the request URL the host saw (`https://host/api/x?y=1` gives
/// `/api/x?y=1`), sharing the envelope's memory; `None` if it is not an absolute URL or
/// a path, or the path is not one `http` takes.
fn path_and_query(envelope: &Bytes, url: &str) -> Option<PathAndQuery> {
    let bytes = url.as_bytes();
    let start = if bytes.first() == Some(&b'/') {
        0
    } else {
        // scheme "://" authority, then the path; a byte search (str patterns cost more
        // than the whole URL here).
        let colon = bytes.iter().position(|&b| b == b':')?;
        let scheme = &bytes[..colon];
        if scheme.is_empty() || !scheme.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) {
            return None;
        }
        let host = colon + 3;
        if bytes.get(colon..host) != Some(b"://".as_slice()) {
            return None;
        }
        let length = bytes[host..].iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(bytes.len() - host);
        // An authority at all, without spaces or controls; the host's own URL always passes.
        if length == 0 || bytes[host..host + length].iter().any(|&b| b <= b' ') {
            return None;
        }
        host + length
    };
    match bytes.get(start) {
        None | Some(b'#') => None,
        Some(_) => PathAndQuery::from_maybe_shared(share(envelope, &url[start..])).ok(),
    }
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

/// A header name from the envelope. The host writes the names it forwards as the client
/// sent them, usually in these spellings: those are matched exactly (a length switch and a
/// compare) instead of being lowercased and looked up, which costs several times more;
/// any other spelling goes through [`HeaderName::from_bytes`], which gives the same name.
fn header_name(name: &str) -> Option<HeaderName> {
    Some(match name {
        "Accept" => header::ACCEPT,
        "Accept-Encoding" => header::ACCEPT_ENCODING,
        "Accept-Language" => header::ACCEPT_LANGUAGE,
        "Authorization" => header::AUTHORIZATION,
        "Cache-Control" => header::CACHE_CONTROL,
        "Connection" => header::CONNECTION,
        "Content-Length" => header::CONTENT_LENGTH,
        "Content-Type" => header::CONTENT_TYPE,
        "Cookie" => header::COOKIE,
        "DPoP" => const { HeaderName::from_static("dpop") },
        "Host" => header::HOST,
        "Origin" => header::ORIGIN,
        "Referer" => header::REFERER,
        "User-Agent" => header::USER_AGENT,
        "traceparent" => const { HeaderName::from_static("traceparent") },
        "tracestate" => const { HeaderName::from_static("tracestate") },
        "X-Forwarded-For" => const { HeaderName::from_static("x-forwarded-for") },
        "X-Forwarded-Host" => const { HeaderName::from_static("x-forwarded-host") },
        "X-Forwarded-Proto" => const { HeaderName::from_static("x-forwarded-proto") },
        "x-functions-key" => const { HeaderName::from_static("x-functions-key") },
        other => return HeaderName::from_bytes(other.as_bytes()).ok(),
    })
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

/// How `Data.<trigger>` is read: member by member for an HTTP trigger (header values then
/// share the envelope's memory), as raw JSON text (with `Metadata`) for other triggers.
#[derive(Clone, Copy)]
enum Mode<'e> {
    Http(&'e Bytes),
    Raw,
}

/// What [`read_envelope`] read. A repeated member counts once (the last one).
struct Envelope<'a> {
    trigger: Option<Trigger<'a>>,
    inputs: Vec<(Cow<'a, str>, &'a str)>,
    metadata: Option<&'a str>,
    data_seen: bool,
}

impl Envelope<'_> {
    fn inputs(&self, envelope: &Bytes) -> InputValues {
        InputValues(self.inputs.iter().map(|(name, raw)| (name.to_string(), share(envelope, raw))).collect())
    }
}

/// `Data.<trigger>`.
enum Trigger<'a> {
    /// An HTTP trigger's members.
    Http(HttpTrigger<'a>),
    /// Not an object (an HTTP trigger then has no request).
    NotObject,
    /// Any other trigger's value, as JSON text.
    Raw(&'a str),
}

/// The members of the HTTP trigger this handler reads (`Query`, `Params`, `Identities`
/// are skipped: the URL carries the query, identities are not ours to trust). `Method`
/// and `Url` are `Some(None)` when they are not strings. Each may appear once, in either
/// spelling (`Method` or `method`); a repeat makes the envelope invalid.
#[derive(Default)]
struct HttpTrigger<'a> {
    method: Option<Option<Cow<'a, str>>>,
    url: Option<Option<Cow<'a, str>>>,
    headers: Headers,
    body: Option<&'a str>,
    params: Option<&'a str>,
}

/// `Headers`, read into the request's header map as it is scanned.
#[derive(Default)]
enum Headers {
    #[default]
    Absent,
    Read(HeaderMap),
    /// Not an object of strings or string arrays, a name or value that is not a header,
    /// or more than [`MAX_HEADER_LINES`] lines: the rest was only read through.
    Invalid,
}

/// Reads the envelope's members this edge uses: `Data.<trigger>`, the declared input
/// bindings (raw), and `Metadata` (raw, for non-HTTP triggers); everything else is skipped.
fn read_envelope<'a>(text: &'a str, shape: Shape<'_>, mode: Mode<'_>) -> Scan<Envelope<'a>> {
    let mut envelope = Envelope { trigger: None, inputs: Vec::new(), metadata: None, data_seen: false };
    let mut reader = scan::Reader::new(text);
    reader.object(|r, key| match key.as_ref() {
        "Data" | "data" => {
            envelope.data_seen = true;
            envelope.trigger = None;
            envelope.inputs.clear();
            r.object(|r, key| {
                if key == shape.trigger {
                    envelope.trigger = Some(match mode {
                        Mode::Http(bytes) if r.peek()? == Kind::Object => Trigger::Http(read_http_trigger(r, bytes)?),
                        Mode::Http(_) => r.skip().map(|()| Trigger::NotObject)?,
                        Mode::Raw => Trigger::Raw(r.raw()?),
                    });
                } else if shape.inputs.contains(&key.as_ref()) {
                    let raw = r.raw()?;
                    envelope.inputs.retain(|(name, _)| *name != key);
                    envelope.inputs.push((key, raw));
                } else {
                    r.skip()?;
                }
                Ok(())
            })
        }
        "Metadata" | "metadata" if matches!(mode, Mode::Raw) => {
            envelope.metadata = Some(r.raw()?);
            Ok(())
        }
        _ => r.skip(),
    })?;
    reader.end()?;
    Ok(envelope)
}

/// `Data.<trigger>` of an HTTP trigger (the reader is at its `{`).
fn read_http_trigger<'a>(reader: &mut scan::Reader<'a>, envelope: &Bytes) -> Scan<HttpTrigger<'a>> {
    /// A member read once; a second time (in either spelling) is invalid.
    fn once<T>(slot: &mut Option<T>, value: T) -> Scan<()> {
        if slot.replace(value).is_some() { Err(NotJson) } else { Ok(()) }
    }
    let mut trigger = HttpTrigger::default();
    let mut headers_seen = false;
    reader.object(|r, key| match key.as_ref() {
        "Method" | "method" => {
            let method = r.maybe_string()?;
            once(&mut trigger.method, method)
        }
        "Url" | "url" => {
            let url = r.maybe_string()?;
            once(&mut trigger.url, url)
        }
        "Headers" | "headers" => {
            if std::mem::replace(&mut headers_seen, true) {
                return Err(NotJson);
            }
            trigger.headers = read_headers(r, envelope)?;
            Ok(())
        }
        "Body" | "body" => {
            let raw = r.raw()?;
            once(&mut trigger.body, raw)
        }
        "Params" | "params" => {
            let raw = r.raw()?;
            once(&mut trigger.params, raw)
        }
        _ => r.skip(),
    })?;
    Ok(trigger)
}

/// `Headers`: an object of header names to a string or an array of strings (one header
/// line per entry), each line appended to the map in envelope order.
fn read_headers(reader: &mut scan::Reader<'_>, envelope: &Bytes) -> Scan<Headers> {
    if reader.peek()? != Kind::Object {
        reader.skip()?;
        return Ok(Headers::Invalid);
    }
    let mut map = HeaderMap::with_capacity(16);
    let mut valid = true;
    reader.object(|r, name| {
        let name = if valid { header_name(&name) } else { None };
        let mut line = |r: &mut scan::Reader<'_>| {
            let value = r.maybe_string()?;
            let Some(name) = &name else { return Ok(()) };
            let value = value.and_then(|value| header_value(envelope, &value).ok());
            // `append` would panic past the map's capacity; `try_append` reports it.
            let appended = match value {
                Some(value) if map.len() < MAX_HEADER_LINES => map.try_append(name, value).is_ok(),
                _ => false,
            };
            valid &= appended;
            Ok(())
        };
        match r.peek()? {
            Kind::String => line(r)?,
            Kind::Array => r.array(&mut line)?,
            _ => {
                r.skip()?;
                valid = false;
            }
        }
        if name.is_none() {
            valid = false;
        }
        Ok(())
    })?;
    Ok(if valid { Headers::Read(map) } else { Headers::Invalid })
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

/// The invocation result (JSON text) the host expects: `http` goes to its binding (or
/// `ReturnValue` for `$return`), each of `outputs` to its binding, except one named
/// `$return`, which becomes `ReturnValue`. `Logs` holds `logs`, one entry per line.
///
/// Written by hand rather than through serde's serializer: every string here (log lines,
/// header values, the body) is checked for characters JSON must escape in one vectorised
/// pass and copied whole when it has none, the usual case; serde_json escapes the rest.
pub fn invocation_result(http: Option<HttpAnswer<'_>>, outputs: &[OutputValue<'_>], logs: &[String]) -> String {
    let (http_return, http_output) = match http {
        Some(answer) if answer.binding == "$return" => (Some(answer), None),
        other => (None, other),
    };
    let size =
        64 + http.map_or(0, |a| a.body.len() + 32 * a.headers.len()) + logs.iter().map(|l| l.len() + 3).sum::<usize>();
    let mut out = String::with_capacity(size);
    out.push_str("{\"Outputs\":{");
    let mut first = true;
    for value in outputs.iter().filter(|v| v.name != "$return") {
        member(&mut out, &mut first, value.name);
        encoded(&mut out, value);
    }
    if let Some(answer) = &http_output {
        member(&mut out, &mut first, answer.binding);
        http_answer(&mut out, answer);
    }
    out.push_str("},\"Logs\":[");
    for (i, line) in logs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, line);
    }
    out.push_str("],\"ReturnValue\":");
    match (&http_return, outputs.iter().rev().find(|o| o.name == "$return")) {
        (Some(answer), _) => http_answer(&mut out, answer),
        (None, Some(value)) => encoded(&mut out, value),
        (None, None) => out.push_str("null"),
    }
    out.push('}');
    out
}

/// `"name":` after a `,` unless it is the object's first member.
fn member(out: &mut String, first: &mut bool, name: &str) {
    if !std::mem::take(first) {
        out.push(',');
    }
    json_string(out, name);
    out.push(':');
}

/// The HTTP output the host turns into the client's response: `statusCode` (the host
/// ignores `status`), headers as one string per name (repeated headers joined with `, `:
/// the host stringifies any other value into an invalid header), and the body as a string,
/// which the host writes verbatim (it cannot return binary bodies here).
fn http_answer(out: &mut String, answer: &HttpAnswer<'_>) {
    out.push_str("{\"statusCode\":");
    out.push_str(answer.status.as_str());
    out.push_str(",\"headers\":{");
    // `iter` yields a name's values one after another: join each run.
    let mut current: Option<(&HeaderName, Cow<'_, str>)> = None;
    let mut first = true;
    for (name, value) in answer.headers {
        match &mut current {
            Some((at, joined)) if *at == name => {
                let joined = joined.to_mut();
                joined.push_str(", ");
                joined.push_str(&text_of(value.as_bytes()));
            }
            _ => {
                if let Some((name, joined)) = current.replace((name, text_of(value.as_bytes()))) {
                    member(out, &mut first, name.as_str());
                    json_string(out, &joined);
                }
            }
        }
    }
    if let Some((name, joined)) = current {
        member(out, &mut first, name.as_str());
        json_string(out, &joined);
    }
    out.push_str("},\"body\":");
    json_string(out, &text_of(answer.body));
    out.push('}');
}

/// An output value ([`Encoded`]) as JSON; `null` if it cannot be written (it always can:
/// values have string keys).
fn encoded(out: &mut String, value: &OutputValue<'_>) {
    match serde_json::to_string(&Encoded(value)) {
        Ok(json) => out.push_str(&json),
        Err(_) => out.push_str("null"),
    }
}

/// Bytes as text, invalid UTF-8 replaced (U+FFFD); valid text, the usual case, is borrowed
/// after one fast check.
fn text_of(bytes: &[u8]) -> Cow<'_, str> {
    std::str::from_utf8(bytes).map_or_else(|_| String::from_utf8_lossy(bytes), Cow::Borrowed)
}

/// `text` as a JSON string: copied whole when nothing in it needs escaping (the check is
/// the envelope reader's search), else written by serde_json.
fn json_string(out: &mut String, text: &str) {
    if scan::special(text.as_bytes(), 0).is_some() {
        // A `str` always serializes.
        out.push_str(&serde_json::to_string(text).unwrap_or_default());
    } else {
        out.push('"');
        out.push_str(text);
        out.push('"');
    }
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
    fn result_strings_are_escaped_exactly_as_serde_json_escapes_them() {
        for text in ["plain", "", "quote \" and \\ back", "tab\tnl\n\u{1}\u{1f}", "é ünï 😀", "\u{7f}</script>"] {
            let mut out = String::new();
            json_string(&mut out, text);
            assert_eq!(out, serde_json::to_string(text).unwrap(), "{text:?}");
        }
        // Every control character, and escapes far into a long string (the block search).
        let long: String =
            (0u8..0x20).map(|c| format!("{}{}\"\\", "x".repeat(usize::from(c) * 3), char::from(c))).collect();
        for text in (0u8..0x20).map(|c| char::from(c).to_string()).chain([long]) {
            let mut out = String::new();
            json_string(&mut out, &text);
            assert_eq!(out, serde_json::to_string(&text).unwrap(), "{text:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-odd", HeaderValue::from_bytes(b"a\"b\xff").unwrap());
        let body = "line\n\"quoted\"";
        let result = to_invocation_result("res", StatusCode::OK, &headers, body.as_bytes(), vec!["a \"log\"".into()]);
        let back: Value = serde_json::from_str(&result).unwrap();
        assert_eq!(back["Outputs"]["res"]["headers"]["x-odd"], "a\"b\u{fffd}");
        assert_eq!(back["Outputs"]["res"]["body"], body);
        assert_eq!(back["Logs"][0], "a \"log\"");
    }

    #[test]
    fn the_path_and_query_are_those_http_parses_from_the_url() {
        let urls = [
            "https://app.azurewebsites.net/api/api-a?code=k&x=1",
            "http://localhost:7071/api/orders/42",
            "http://127.0.0.1:7071/api/a%20b?q=%E2%82%AC",
            "https://[::1]:7071/api/x",
            "https://host",
            "https://host?x=1",
            "/api/a?x=y",
            "https://host/a#fragment",
            "not a url",
            "",
            "https://",
        ];
        for url in urls {
            // As the request gets it: no path and query is `/`.
            let or_root = |p: Option<PathAndQuery>| p.map_or_else(|| "/".to_owned(), |p| p.to_string());
            let http = or_root(url.parse::<Uri>().ok().and_then(|u| u.into_parts().path_and_query));
            assert_eq!(or_root(path_and_query(&Bytes::new(), url)), http, "{url:?}");
        }
        assert!(path_and_query(&Bytes::new(), "https://a b/x").is_none());
    }

    #[test]
    fn header_names_spelled_as_the_host_sends_them_are_the_names_http_parses() {
        for name in [
            "Accept",
            "Accept-Encoding",
            "Accept-Language",
            "Authorization",
            "Cache-Control",
            "Connection",
            "Content-Length",
            "Content-Type",
            "Cookie",
            "DPoP",
            "Host",
            "Origin",
            "Referer",
            "User-Agent",
            "traceparent",
            "tracestate",
            "X-Forwarded-For",
            "X-Forwarded-Host",
            "X-Forwarded-Proto",
            "x-functions-key",
            "X-Custom",
            "accept",
            "ACCEPT",
            "bad name",
            "",
        ] {
            assert_eq!(header_name(name), HeaderName::from_bytes(name.as_bytes()).ok(), "{name:?}");
        }
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
