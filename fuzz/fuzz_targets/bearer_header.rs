//! `Authorization` header parsing (`auth::bearer::bearer_token`): arbitrary header values,
//! one or several, any bytes a `HeaderValue` may hold (obs-text included).
//!
//! Input: two bytes of `max_len`, then header values separated by `\n`.
//! Checked: never panics; an accepted token is non-empty, within `max_len`, pure RFC 6750
//! `b64token`, and the tail of the single `Authorization` value that begins with `Bearer `.

#![no_main]

use azfn_auth::auth::bearer::bearer_token;
use azfn_auth::error::{AuthError, RequestProblem};
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fn is_b64token(token: &[u8]) -> bool {
    let body = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
    body > 0
        && token[..body]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let max_len = usize::from(u16::from_le_bytes(*len)) % 9000 + 1;
    let mut headers = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n').take(4) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::AUTHORIZATION, value);
        }
    }
    let count = headers.get_all(header::AUTHORIZATION).iter().count();
    let result = bearer_token(&headers, max_len);
    match count {
        0 => assert_eq!(result, Err(AuthError::MissingToken)),
        1 => {}
        _ => assert_eq!(result, Err(AuthError::InvalidRequest(RequestProblem::SeveralHeaders))),
    }
    if let Ok(token) = result {
        assert!(!token.is_empty() && token.len() <= max_len, "accepted token of length {}", token.len());
        assert!(is_b64token(token.as_bytes()), "accepted token outside b64token: {token:?}");
        let value = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes().trim_ascii()).unwrap_or_default();
        assert!(value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer "), "scheme: {value:?}");
        assert!(value.ends_with(token.as_bytes()), "token is not the tail of the header value");
        assert_eq!(value[6..value.len() - token.len()].trim_ascii(), b"", "something between scheme and token");
    }
});
