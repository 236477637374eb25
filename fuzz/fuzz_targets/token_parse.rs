//! The token pre-parser (`auth::token::parse`): segments, strict base64url, header JSON and
//! the header rules, before any key is looked up.
//!
//! Input: a mode byte, then either a raw token (even mode) or, to get past base64 at once,
//! `header JSON \0 payload JSON \0 signature` that is base64url-encoded here (odd mode).
//! Bits 1-7 of the mode byte pick the allowed algorithms.
//! Checked: never panics; an accepted token has exactly three segments, `signed` and
//! `signature` rebuild it byte for byte, and `alg` is one of the allowed ones.

#![no_main]

use azfn_auth::auth::token::{is_access_token_type, parse};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;

const ALL: [Algorithm; 9] = azfn_auth::auth::keys::ASYMMETRIC_ALGORITHMS;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    // Bits 1..=7 choose a subset; all clear means RS256 only, the default configuration.
    let allowed: Vec<Algorithm> =
        ALL.iter().enumerate().filter(|(i, _)| mode & (2 << (i % 7)) != 0).map(|(_, a)| *a).collect();
    let allowed = if allowed.is_empty() { vec![Algorithm::RS256] } else { allowed };

    let token = if mode & 1 == 0 {
        match std::str::from_utf8(rest) {
            Ok(token) => token.to_owned(),
            Err(_) => return,
        }
    } else {
        let mut parts = rest.splitn(3, |b| *b == 0);
        let header = parts.next().unwrap_or_default();
        let payload = parts.next().unwrap_or_default();
        let signature = String::from_utf8_lossy(parts.next().unwrap_or(b"c2ln"));
        format!("{}.{}.{signature}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload))
    };

    if let Ok(unverified) = parse(&token, &allowed) {
        assert!(allowed.contains(&unverified.alg), "alg {:?} not allowed", unverified.alg);
        assert_eq!(token.matches('.').count(), 2, "accepted a token without exactly three segments");
        assert!(!unverified.signature.is_empty());
        assert_eq!(format!("{}.{}", unverified.signed, unverified.signature), token);
        if let Some(typ) = unverified.typ.as_deref() {
            let _ = is_access_token_type(typ);
        }
    }
});
