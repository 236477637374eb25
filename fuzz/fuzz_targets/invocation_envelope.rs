//! The invocation envelope parser (`protocol::invocation::http_invocation`), then what the
//! request path does next with its result: the bearer parser on the rebuilt headers, and
//! the result envelope written back to the host.
//!
//! Input: the raw POST body the host would send.
//! Checked: never panics; input serde_json does not take as JSON is refused as not JSON
//! (the envelope reader is hand-written: this holds it to serde_json's grammar); a parsed
//! request's `Authorization` header goes through `bearer_token` without panicking; the
//! answer envelope is always valid JSON with the response under `Outputs.res`, its body
//! reading back as the request's.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use azfn_auth::auth::bearer::bearer_token;
use azfn_auth::layout::{AppLayout, FunctionSpec};
use azfn_auth::protocol::invocation::{Bytes, EnvelopeError, Shape, http_invocation, to_invocation_result};
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// `api-a` exactly as the shipped app root declares it (trigger `req`, output `res`).
fn spec() -> &'static FunctionSpec {
    static SPEC: OnceLock<FunctionSpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let layout = AppLayout::load(&root).unwrap_or_else(|e| panic!("app root: {e}"));
        layout.functions.into_iter().find(|f| f.name == "api-a").unwrap_or_else(|| panic!("no api-a"))
    })
}

fuzz_target!(|data: &[u8]| {
    let spec = spec();
    let shape = Shape { trigger: &spec.trigger, inputs: &["order"] };
    let parsed = http_invocation(shape, &Bytes::copy_from_slice(data));
    if serde_json::from_slice::<serde::de::IgnoredAny>(data).is_err() {
        assert!(matches!(parsed, Err(EnvelopeError::NotJson)), "not JSON, yet read as {parsed:?}");
    }
    let Ok(invocation) = parsed else { return };
    if let Some(route) = &spec.route {
        let _ = route.accept_values(invocation.params.iter().map(|(n, v)| (n.as_str(), v.as_deref())));
    }
    let request = invocation.request;
    let _ = bearer_token(request.headers(), 8192);
    let status = if request.body().is_empty() { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
    let result = to_invocation_result("res", status, request.headers(), request.body(), vec!["log".to_owned()]);
    let text = result.to_string();
    let back: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("answer is not JSON: {e}"));
    assert_eq!(back["Outputs"]["res"]["statusCode"], status.as_u16());
    // Strings are escaped by hand (`json_string`): the body must read back as it was sent.
    assert_eq!(back["Outputs"]["res"]["body"], String::from_utf8_lossy(request.body()).as_ref());
});
