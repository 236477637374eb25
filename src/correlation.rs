//! What ties a request's log lines to the host's records in Application Insights: the
//! host's invocation id and the caller's W3C Trace Context (`traceparent`, `tracestate`).
//! Both are read from headers once per request, validated before anything logs them (a
//! header cannot inject text into a log line), and offered to handlers as the
//! [`InvocationId`] and [`TraceContext`] extractors.
//!
//! Where they come from (PROTOCOL.md §3-§5; the host's `DefaultHttpWorkerService.AddHeaders`
//! and `DefaultHttpProxyService`):
//! - the invocation id from `X-Azure-Functions-InvocationId`, which the host puts on every
//!   request it makes to the handler (invocation, forwarding and proxy mode), else
//!   `x-ms-invocation-id` (proxy mode only). In forwarding mode the host appends its value
//!   after any the client sent (.NET joins them into one line with `, `), so the last
//!   comma-separated element is the host's;
//! - the trace context from the client's request: in invocation mode the envelope's
//!   `Data.<trigger>.Headers` (falling back to the host's own request to the handler, which
//!   .NET's `HttpClient` gives a `traceparent` when the host has an activity), otherwise the
//!   forwarded or proxied request's headers.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::extract::Problem;

/// The header the host sets to the invocation id on every request it makes.
pub const INVOCATION_ID: HeaderName = HeaderName::from_static("x-azure-functions-invocationid");

/// The invocation id header the host's proxy adds (proxy mode only, kept if already present).
pub const PROXY_INVOCATION_ID: HeaderName = HeaderName::from_static("x-ms-invocation-id");

/// W3C Trace Context `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// W3C Trace Context `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Longest invocation id taken. The host's are GUIDs (36 characters); a longer value is not
/// the host's and would only make every line longer.
pub const MAX_INVOCATION_ID_BYTES: usize = 64;

/// Length of a version `00` `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
const TRACEPARENT_LEN: usize = 55;

/// The host's id of this invocation (a GUID; the host records it with the invocation's
/// request and log records). Only ASCII letters, digits and `-`, at most
/// [`MAX_INVOCATION_ID_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationId(HeaderValue);

impl InvocationId {
    /// The id from the host's headers: `X-Azure-Functions-InvocationId`, else
    /// `x-ms-invocation-id`; `None` when neither holds a valid id.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let last = |name: HeaderName| headers.get_all(name).iter().next_back().and_then(Self::from_line);
        last(INVOCATION_ID).or_else(|| last(PROXY_INVOCATION_ID))
    }

    /// A header line when it is a valid id, else its last comma-separated element when that
    /// is.
    fn from_line(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        // The host's own line is one GUID: one pass over it (`,` and spaces are no id bytes).
        if is_id(bytes) {
            return Some(Self(value.clone()));
        }
        let id = bytes[bytes.iter().rposition(|&b| b == b',')? + 1..].trim_ascii();
        if !is_id(id) {
            return None;
        }
        HeaderValue::from_bytes(id).ok().map(Self)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters, digits and '-' are ever stored.
        self.0.to_str().unwrap_or("-")
    }
}

impl std::fmt::Display for InvocationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A caller's W3C Trace Context: a valid version `00` `traceparent` (lowercase hex, trace
/// id and parent id not all zeros; anything else is ignored, never an error) and its
/// `tracestate` lines, kept untouched. [`TraceContext::child_traceparent`] continues the
/// trace on an outgoing call.
///
/// ```no_run
/// use azfn_auth::correlation::TraceContext;
///
/// async fn handler(trace: TraceContext) -> String {
///     let client = reqwest::Client::new();
///     let answer = client.get("https://inventory.example.com/stock").headers(trace.outgoing_headers()).send().await;
///     format!("{} {}", trace.trace_id(), answer.is_ok())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// A validated `traceparent` (55 ASCII bytes), or one made here for a new trace.
    traceparent: HeaderValue,
    tracestate: Vec<HeaderValue>,
    from_caller: bool,
}

impl TraceContext {
    /// The context the request carries: exactly one `traceparent` line that is valid
    /// version `00`, with every `tracestate` line; `None` otherwise.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut lines = headers.get_all(&TRACEPARENT).iter();
        let (Some(traceparent), None) = (lines.next(), lines.next()) else { return None };
        if !is_valid_traceparent(traceparent.as_bytes()) {
            return None;
        }
        let tracestate = headers.get_all(&TRACESTATE).iter().cloned().collect();
        Some(Self { traceparent: traceparent.clone(), tracestate, from_caller: true })
    }

    /// A new trace (random trace id and span id, not sampled), for a request that brought
    /// none: calls made with it start a trace of their own.
    pub fn new_root() -> Self {
        let mut trace = [0u8; 16];
        random_nonzero(&mut trace);
        let mut text = [0u8; TRACEPARENT_LEN];
        text[..3].copy_from_slice(b"00-");
        hex(&trace, &mut text[3..35]);
        text[35] = b'-';
        let mut span = [0u8; 8];
        random_nonzero(&mut span);
        hex(&span, &mut text[36..52]);
        text[52..].copy_from_slice(b"-00");
        let traceparent = HeaderValue::from_bytes(&text)
            .unwrap_or(const { HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-00") });
        Self { traceparent, tracestate: Vec::new(), from_caller: false }
    }

    /// The trace id: 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        self.text().get(3..35).unwrap_or("-")
    }

    /// The caller's span id (`parent-id`): 16 lowercase hex digits.
    pub fn parent_id(&self) -> &str {
        self.text().get(36..52).unwrap_or("-")
    }

    /// `trace-flags`, e.g. `01` when the caller sampled the trace.
    pub fn flags(&self) -> &str {
        self.text().get(53..55).unwrap_or("00")
    }

    /// True when the caller sent this context; false for [`TraceContext::new_root`].
    pub fn from_caller(&self) -> bool {
        self.from_caller
    }

    /// The `traceparent` as received.
    pub fn traceparent(&self) -> &HeaderValue {
        &self.traceparent
    }

    /// The `tracestate` lines as received (untouched, never parsed).
    pub fn tracestate(&self) -> &[HeaderValue] {
        &self.tracestate
    }

    /// A `traceparent` for an outgoing call made while serving this request: the same
    /// trace id and flags, a new random span id (W3C Trace Context §4.3, "mutating").
    pub fn child_traceparent(&self) -> HeaderValue {
        let mut text = [0u8; TRACEPARENT_LEN];
        text.copy_from_slice(self.traceparent.as_bytes().get(..TRACEPARENT_LEN).unwrap_or(&[b'0'; TRACEPARENT_LEN]));
        let mut span = [0u8; 8];
        random_nonzero(&mut span);
        hex(&span, &mut text[36..52]);
        HeaderValue::from_bytes(&text).unwrap_or_else(|_| self.traceparent.clone())
    }

    /// `traceparent` (a child, see [`TraceContext::child_traceparent`]) and the untouched
    /// `tracestate` lines, for an outgoing request (`reqwest::RequestBuilder::headers`).
    pub fn outgoing_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(1 + self.tracestate.len());
        headers.insert(TRACEPARENT, self.child_traceparent());
        for line in &self.tracestate {
            headers.append(TRACESTATE, line.clone());
        }
        headers
    }

    fn text(&self) -> &str {
        self.traceparent.to_str().unwrap_or("")
    }
}

/// Byte classes: [`LOWER_HEX`] and [`ID_CHAR`] bits, by byte value.
const CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_digit() || (c >= b'a' && c <= b'f') {
            class[b] |= LOWER_HEX;
        }
        if c.is_ascii_alphanumeric() || c == b'-' {
            class[b] |= ID_CHAR;
        }
        b += 1;
    }
    class
};

/// An invocation id: 1 to [`MAX_INVOCATION_ID_BYTES`] of ASCII letters, digits, `-`
/// (branch-free over the bytes).
fn is_id(bytes: &[u8]) -> bool {
    let fits = !bytes.is_empty() && bytes.len() <= MAX_INVOCATION_ID_BYTES;
    fits && bytes.iter().fold(ID_CHAR, |class, &b| class & CLASS[usize::from(b)]) != 0
}

/// `0-9`, `a-f`.
const LOWER_HEX: u8 = 1;

/// What an invocation id may hold: ASCII letters, digits, `-`.
const ID_CHAR: u8 = 2;

/// True for a version `00` `traceparent`: `00-<trace-id>-<parent-id>-<flags>`, lowercase
/// hex, trace id and parent id not all zeros, nothing after the flags. Branch-free over the
/// 55 bytes (a table lookup per byte), since it runs for every request that has one.
pub fn is_valid_traceparent(value: &[u8]) -> bool {
    let Ok(value) = <&[u8; TRACEPARENT_LEN]>::try_from(value) else { return false };
    let (mut hex, mut trace, mut parent) = (LOWER_HEX, 0u8, 0u8);
    for &b in &value[3..35] {
        hex &= CLASS[usize::from(b)];
        trace |= b ^ b'0';
    }
    for &b in &value[36..52] {
        hex &= CLASS[usize::from(b)];
        parent |= b ^ b'0';
    }
    hex &= CLASS[usize::from(value[53])] & CLASS[usize::from(value[54])];
    value[..3] == *b"00-" && value[35] == b'-' && value[52] == b'-' && hex != 0 && trace != 0 && parent != 0
}

/// Lowercase hex of `bytes` into `out` (twice as long).
fn hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Fills `out` with random bytes, never all zeros (an all-zero id is invalid).
fn random_nonzero(out: &mut [u8]) {
    static FALLBACK: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    if aws_lc_rs::rand::fill(out).is_err() {
        // The system generator failed (never seen): unique, not secret, which is all a
        // span id needs to be.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let mixed = FALLBACK.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) ^ (nanos as u64);
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = (mixed >> ((i % 8) * 8)) as u8;
        }
    }
    if out.iter().all(|&b| b == 0) {
        out[out.len() - 1] = 1;
    }
}

/// The ids of one request for its log lines, found once when it arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Correlation {
    /// The host's invocation id.
    pub invocation: Option<InvocationId>,
    /// The caller's trace context.
    pub trace: Option<TraceContext>,
}

impl Correlation {
    /// Both ids from one set of headers (forwarding and proxy mode, or a direct call): what
    /// [`InvocationId::from_headers`] and [`TraceContext::from_headers`] find, in one pass
    /// over the headers (a request has about ten; three map lookups cost twice as much).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let (mut host, mut proxy, mut traceparent, mut traceparents, mut tracestate) = (None, None, None, 0, false);
        for (name, value) in headers {
            if *name == INVOCATION_ID {
                host = Some(value);
            } else if *name == PROXY_INVOCATION_ID {
                proxy = Some(value);
            } else if *name == TRACEPARENT {
                traceparent = Some(value);
                traceparents += 1;
            } else if *name == TRACESTATE {
                tracestate = true;
            }
        }
        let invocation = host.and_then(InvocationId::from_line).or_else(|| proxy.and_then(InvocationId::from_line));
        let trace = traceparent.filter(|v| traceparents == 1 && is_valid_traceparent(v.as_bytes())).map(|v| {
            let tracestate =
                if tracestate { headers.get_all(&TRACESTATE).iter().cloned().collect() } else { Vec::new() };
            TraceContext { traceparent: v.clone(), tracestate, from_caller: true }
        });
        Self { invocation, trace }
    }

    /// Invocation mode: the invocation id from the host's own request, the trace context
    /// from the client's request in the envelope, else from the host's request.
    pub fn from_invocation(host: &HeaderMap, client: &HeaderMap) -> Self {
        let Self { invocation, trace } = Self::from_headers(host);
        Self { invocation, trace: TraceContext::from_headers(client).or(trace) }
    }

    /// The invocation id for a log field, `-` when there is none.
    pub fn invocation_id(&self) -> &str {
        self.invocation.as_ref().map_or("-", InvocationId::as_str)
    }

    /// The trace id for a log field, `-` when there is none.
    pub fn trace_id(&self) -> &str {
        self.trace.as_ref().map_or("-", TraceContext::trace_id)
    }

    /// The caller's span id for a log field, `-` when there is none.
    pub fn parent_id(&self) -> &str {
        self.trace.as_ref().map_or("-", TraceContext::parent_id)
    }
}

/// The request did not come through the Functions host, so it has no invocation id.
#[derive(Debug, Clone, Copy)]
pub struct NoInvocationId;

impl IntoResponse for NoInvocationId {
    fn into_response(self) -> Response {
        Problem::new(StatusCode::BAD_REQUEST)
            .detail("This request has no invocation id: it did not come through the Functions host")
            .into_response()
    }
}

fn correlation(parts: &Parts) -> Option<&Correlation> {
    parts.extensions.get::<Correlation>()
}

impl<S: Send + Sync> FromRequestParts<S> for InvocationId {
    type Rejection = NoInvocationId;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        correlation(parts).and_then(|c| c.invocation.clone()).ok_or(NoInvocationId)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for InvocationId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(correlation(parts).and_then(|c| c.invocation.clone()))
    }
}

/// The caller's context, or [`TraceContext::new_root`] when the request brought no valid one
/// (take `Option<TraceContext>` to tell the two apart).
impl<S: Send + Sync> FromRequestParts<S> for TraceContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(correlation(parts).and_then(|c| c.trace.clone()).unwrap_or_else(TraceContext::new_root))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for TraceContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(correlation(parts).and_then(|c| c.trace.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn a_valid_traceparent_gives_trace_and_parent_ids() {
        let trace = TraceContext::from_headers(&headers(&[("traceparent", VALID), ("tracestate", "a=1,b=2")])).unwrap();
        assert_eq!(
            (trace.trace_id(), trace.parent_id(), trace.flags()),
            ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")
        );
        assert_eq!(trace.tracestate(), [HeaderValue::from_static("a=1,b=2")]);
        assert!(trace.from_caller());
    }

    #[test]
    fn anything_but_a_valid_version_00_traceparent_is_ignored() {
        let invalid = [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736=00f067aa0ba902b7-01",
            "",
        ];
        for value in invalid {
            assert!(!is_valid_traceparent(value.as_bytes()), "{value}");
            assert_eq!(TraceContext::from_headers(&headers(&[("traceparent", value), ("tracestate", "a=1")])), None);
        }
        let twice = headers(&[("traceparent", VALID), ("traceparent", VALID)]);
        assert_eq!(TraceContext::from_headers(&twice), None, "two traceparent lines");
        assert!(is_valid_traceparent(VALID.as_bytes()));
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_span() {
        let trace = TraceContext::from_headers(&headers(&[("traceparent", VALID), ("tracestate", "k=v")])).unwrap();
        let child = trace.child_traceparent();
        let text = child.to_str().unwrap();
        assert!(is_valid_traceparent(child.as_bytes()), "{text}");
        assert_eq!((&text[..36], &text[52..]), (&VALID[..36], &VALID[52..]));
        assert_ne!(&text[36..52], trace.parent_id());
        assert_ne!(trace.child_traceparent(), child, "a new span id per call");
        let outgoing = trace.outgoing_headers();
        assert_eq!(outgoing.get_all(TRACESTATE).iter().collect::<Vec<_>>(), ["k=v"]);
        assert!(is_valid_traceparent(outgoing[TRACEPARENT].as_bytes()));
    }

    #[test]
    fn a_new_root_is_a_valid_unsampled_traceparent() {
        let root = TraceContext::new_root();
        assert!(is_valid_traceparent(root.traceparent().as_bytes()), "{:?}", root.traceparent());
        assert_eq!(root.flags(), "00");
        assert!(!root.from_caller());
        assert_ne!(TraceContext::new_root().trace_id(), root.trace_id());
    }

    #[test]
    fn one_pass_finds_what_the_lookups_find() {
        let cases = [
            headers(&[("x-azure-functions-invocationid", "a-1"), ("traceparent", VALID), ("tracestate", "a=1")]),
            headers(&[
                ("x-ms-invocation-id", "b-2"),
                ("tracestate", "a=1"),
                ("tracestate", "b=2"),
                ("traceparent", VALID),
            ]),
            headers(&[("x-azure-functions-invocationid", "bad id"), ("x-ms-invocation-id", "c-3")]),
            headers(&[("traceparent", VALID), ("traceparent", VALID), ("accept", "*/*")]),
            headers(&[("x-azure-functions-invocationid", "x"), ("x-azure-functions-invocationid", "y, z")]),
            HeaderMap::new(),
        ];
        for map in cases {
            let expected =
                Correlation { invocation: InvocationId::from_headers(&map), trace: TraceContext::from_headers(&map) };
            assert_eq!(Correlation::from_headers(&map), expected, "{map:?}");
        }
    }

    #[test]
    fn the_invocation_id_is_the_hosts_last_value_and_validated() {
        let guid = "0d8e3f2a-5c1b-4e7f-9a6d-2b4c8e1f3a5d";
        let id = |pairs: &[(&str, &str)]| InvocationId::from_headers(&headers(pairs)).map(|i| i.to_string());
        assert_eq!(id(&[("x-azure-functions-invocationid", guid)]).as_deref(), Some(guid));
        // Forwarding mode: the client's value first, the host's appended.
        assert_eq!(id(&[("X-Azure-Functions-InvocationId", &format!("forged, {guid}"))]).as_deref(), Some(guid));
        assert_eq!(id(&[("x-ms-invocation-id", guid)]).as_deref(), Some(guid));
        let both = [("x-ms-invocation-id", "forged"), ("x-azure-functions-invocationid", guid)];
        assert_eq!(id(&both).as_deref(), Some(guid));
        for bad in ["", "a b", "x\"y", "id=1", &"a".repeat(MAX_INVOCATION_ID_BYTES + 1), "caf\u{e9}"] {
            let value = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            let mut map = HeaderMap::new();
            map.insert(INVOCATION_ID, value);
            assert_eq!(InvocationId::from_headers(&map), None, "{bad:?}");
        }
    }
}
