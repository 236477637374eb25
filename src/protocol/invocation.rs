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
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::warn;

use crate::app::{AppState, Decision, plain, run_function_with};
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

/// A JSON string, borrowed when it has no escapes.
fn text(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<&str>(raw.get())
        .map(Cow::Borrowed)
        .or_else(|_| serde_json::from_str::<String>(raw.get()).map(Cow::Owned))
        .ok()
}

/// Turns an invocation envelope into the request the client sent to the host.
///
/// Parsing is lazy: only `Data.<trigger>` is read, each member on its own, borrowing from
/// the envelope; `Metadata` (which mirrors the client's JSON body) and other bindings are
/// skipped without building a tree, so a crafted body cannot inflate memory.
pub fn to_http_request(spec: &FunctionSpec, envelope: &[u8]) -> Result<http::Request<Bytes>, EnvelopeError> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "Data", alias = "data", borrow)]
        data: Option<HashMap<Cow<'a, str>, &'a RawValue>>,
    }
    #[derive(Deserialize)]
    struct HttpTrigger<'a> {
        #[serde(rename = "Method", alias = "method", borrow)]
        method: Option<&'a RawValue>,
        #[serde(rename = "Url", alias = "url", borrow)]
        url: Option<&'a RawValue>,
        #[serde(rename = "Headers", alias = "headers", borrow)]
        headers: Option<&'a RawValue>,
        #[serde(rename = "Body", alias = "body", borrow)]
        body: Option<&'a RawValue>,
    }
    // serde also reads a struct from a JSON array; the host always sends an object.
    if envelope.trim_ascii_start().first() != Some(&b'{') {
        return Err(EnvelopeError::NotJson);
    }
    let root: Envelope<'_> = serde_json::from_slice(envelope).map_err(|_| EnvelopeError::NotJson)?;
    let missing = || EnvelopeError::MissingTrigger(spec.trigger.clone());
    let data = root.data.ok_or_else(missing)?;
    let raw = data.get(spec.trigger.as_str()).filter(|r| r.get().starts_with('{')).ok_or_else(missing)?;
    let req: HttpTrigger<'_> = serde_json::from_str(raw.get()).map_err(|_| missing())?;

    let method = req
        .method
        .and_then(text)
        .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
        .ok_or(EnvelopeError::BadMethod)?;
    // The URL is informative only (the function is already chosen); keep path and query.
    let uri = req
        .url
        .and_then(text)
        .and_then(|u| u.parse::<Uri>().ok())
        .and_then(|u| u.path_and_query().map(|pq| pq.as_str().to_owned()))
        .and_then(|pq| pq.parse::<Uri>().ok())
        .unwrap_or_else(|| Uri::from_static("/"));

    let mut headers = HeaderMap::new();
    if let Some(raw) = req.headers {
        let raw: Vec<(Cow<'_, str>, &RawValue)> = serde_json::from_str::<HashMap<Cow<'_, str>, &RawValue>>(raw.get())
            .map_err(|_| EnvelopeError::BadHeaders)?
            .into_iter()
            .collect();
        for (name, values) in raw {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| EnvelopeError::BadHeaders)?;
            // The host sends every header as an array; each entry is one header line.
            let values: Vec<Cow<'_, str>> = if values.get().starts_with('[') {
                serde_json::from_str::<Vec<&RawValue>>(values.get())
                    .map_err(|_| EnvelopeError::BadHeaders)?
                    .into_iter()
                    .map(text)
                    .collect::<Option<_>>()
                    .ok_or(EnvelopeError::BadHeaders)?
            } else {
                vec![text(values).ok_or(EnvelopeError::BadHeaders)?]
            };
            for v in values {
                let value = HeaderValue::from_str(&v).map_err(|_| EnvelopeError::BadHeaders)?;
                if headers.len() >= MAX_HEADER_LINES {
                    return Err(EnvelopeError::BadHeaders);
                }
                // `append` would panic past the map's capacity; `try_append` reports it.
                headers.try_append(&name, value).map_err(|_| EnvelopeError::BadHeaders)?;
            }
        }
    }

    let body = match req.body {
        None => Bytes::new(),
        Some(raw) if raw.get() == "null" => Bytes::new(),
        Some(raw) => match text(raw) {
            Some(text) => {
                let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
                let binary = content_type.eq_ignore_ascii_case("application/octet-stream")
                    || content_type.to_ascii_lowercase().contains("multipart/");
                // The host base64-encodes exactly these content types.
                match binary.then(|| STANDARD.decode(text.as_bytes()).ok()).flatten() {
                    Some(bytes) => Bytes::from(bytes),
                    None => Bytes::from(text.into_owned()),
                }
            }
            None => Bytes::from(raw.get().to_owned()),
        },
    };

    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The HTTP output the host turns into the client's response.
#[derive(Serialize)]
struct HttpOutput<'a> {
    /// `statusCode`, not `status`, which the host ignores.
    #[serde(rename = "statusCode")]
    status_code: u16,
    /// String values only: the host stringifies anything else into an invalid header.
    headers: BTreeMap<&'a str, String>,
    /// A string, so the host writes it verbatim.
    body: Cow<'a, str>,
}

#[derive(Serialize)]
struct InvocationResult<'a> {
    #[serde(rename = "Outputs")]
    outputs: BTreeMap<&'a str, HttpOutput<'a>>,
    #[serde(rename = "Logs")]
    logs: &'a [String],
    #[serde(rename = "ReturnValue")]
    return_value: Option<HttpOutput<'a>>,
}

/// Turns the function's response into the invocation result (JSON text) the host expects.
pub fn to_invocation_result(
    spec: &FunctionSpec,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    logs: Vec<String>,
) -> String {
    let mut out_headers = BTreeMap::new();
    for name in headers.keys() {
        // Repeated headers are joined into one string value.
        let mut values = headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()));
        let mut joined = values.next().map(Cow::into_owned).unwrap_or_default();
        for v in values {
            joined.push_str(", ");
            joined.push_str(&v);
        }
        out_headers.insert(name.as_str(), joined);
    }
    let output = HttpOutput { status_code: status.as_u16(), headers: out_headers, body: String::from_utf8_lossy(body) };
    let result = if spec.output == "$return" {
        InvocationResult { outputs: BTreeMap::new(), logs: &logs, return_value: Some(output) }
    } else {
        InvocationResult { outputs: BTreeMap::from([(spec.output.as_str(), output)]), logs: &logs, return_value: None }
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

async fn function_answer(spec: &FunctionSpec, response: Response<Body>, mut logs: Vec<String>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    if let Some(Decision(line)) = parts.extensions.get::<Decision>() {
        logs.push(line.clone());
    }
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
    let request = match to_http_request(spec, &envelope) {
        Ok(request) => request,
        Err(error) => {
            warn!(function = %spec.name, error = %error, "malformed invocation payload");
            let answer = plain(StatusCode::BAD_REQUEST, "Malformed invocation request");
            return function_answer(spec, answer, vec![error.to_string()]).await;
        }
    };
    let (parts, body) = request.into_parts();
    let response = run_function_with(state, index, parts, Body::from(body), true).await;
    function_answer(spec, response, Vec::new()).await
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
    }
}
