//! Signing-key parsing (`auth::keys::parse_jwks` and `parse_pem`): the key set document a
//! provider serves, and PEM keys from configuration, including the hand-written DER reader
//! that measures RSA moduli.
//!
//! Input: a mode byte, then a JWK Set document (even) or PEM text (odd).
//! Checked: never panics; no more keys come out than the document lists; a kept key
//! never permits an HMAC algorithm; a kid lookup returns a key with that kid or the set's
//! only key.

#![no_main]

use azfn_auth::auth::keys::{KeyPolicy, parse_jwks, parse_pem};
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let policy = KeyPolicy::default();
    if mode & 1 == 1 {
        let Ok(pem) = std::str::from_utf8(rest) else { return };
        if let Ok(key) = parse_pem(pem, &policy) {
            assert!(!key.permits(Algorithm::HS256), "a PEM key permits HS256");
        }
        return;
    }
    let Ok((set, rejected)) = parse_jwks(rest, &policy) else { return };
    // serde's derived `Deserialize` also reads a struct from a JSON array of its fields, so
    // `[[jwk, ...]]` is taken as `{"keys": [jwk, ...]}` (harmless: every key is still checked).
    let listed = match serde_json::from_slice::<Value>(rest) {
        Ok(Value::Object(doc)) => doc.get("keys").and_then(Value::as_array).map_or(0, Vec::len),
        Ok(Value::Array(fields)) => fields.first().and_then(Value::as_array).map_or(0, Vec::len),
        _ => 0,
    };
    // Fewer when kids repeat: the first key with a kid wins.
    assert!(set.len() + rejected.len() <= listed, "more keys than the document lists");
    for kid in set.kids() {
        let lookup = if kid == "-" { None } else { Some(kid) };
        if let Some(key) = set.find(lookup) {
            assert!(!key.permits(Algorithm::HS256) && !key.permits(Algorithm::HS512), "a JWK permits HMAC");
            assert!(lookup.is_none() || key.kid.as_deref() == lookup || set.len() == 1, "kid lookup guessed");
        }
    }
});
