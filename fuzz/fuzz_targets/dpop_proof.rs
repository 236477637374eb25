//! The DPoP proof parser and checks (`auth::dpop`): `parse_proof` (segments, base64url,
//! header JSON, `typ`, `alg`, the `jwk` public key, the claims), the signature check with the
//! proof's own key, `htu` normalisation, server nonces, and `DpopVerifier::check` on the
//! whole `DPoP` header.
//!
//! Input: a mode byte, then either a raw proof (even mode) or, to get past base64 at once,
//! `header JSON \0 payload JSON \0 signature` that is base64url-encoded here (odd mode).
//! Bits 1-4 of the mode byte pick the accepted algorithms.
//! Checked: never panics; an accepted proof has an allowed `alg` that fits its key, a
//! 43-character thumbprint, a non-empty `jti` within the cap; `check` never accepts a proof
//! whose signature does not verify, and no fuzzed input passes it at all (the `ath` and `htu`
//! it would need are fixed here and the proof would need a valid signature).

#![no_main]

use std::time::Duration;

use azfn_auth::auth::dpop::{
    DpopSettings, DpopVerifier, MAX_JTI_BYTES, Nonces, RequestFacts, normalize_path, normalize_url, parse_proof,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;

const CHOICES: [Algorithm; 4] = [Algorithm::ES256, Algorithm::RS256, Algorithm::PS256, Algorithm::EdDSA];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let allowed: Vec<Algorithm> =
        CHOICES.iter().enumerate().filter(|(i, _)| mode & (2 << i) != 0).map(|(_, a)| *a).collect();
    let allowed = if allowed.is_empty() { CHOICES.to_vec() } else { allowed };

    let proof = if mode & 1 == 0 {
        match std::str::from_utf8(rest) {
            Ok(proof) => proof.to_owned(),
            Err(_) => return,
        }
    } else {
        let mut parts = rest.splitn(3, |b| *b == 0);
        let header = parts.next().unwrap_or_default();
        let payload = parts.next().unwrap_or_default();
        let signature = String::from_utf8_lossy(parts.next().unwrap_or(b"c2ln"));
        format!("{}.{}.{signature}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload))
    };

    let parsed = parse_proof(&proof, &allowed);
    let mut signature_valid = false;
    if let Ok(parsed) = &parsed {
        assert!(allowed.contains(&parsed.alg), "alg {:?} not allowed", parsed.alg);
        assert!(parsed.key.fits(parsed.alg), "alg {:?} does not fit the key", parsed.alg);
        assert_eq!(parsed.key.thumbprint().len(), 43);
        assert!(!parsed.jti.is_empty() && parsed.jti.len() <= MAX_JTI_BYTES);
        signature_valid = parsed.signature_valid();
        let _ = normalize_url(&parsed.htu);
        if let Some(nonce) = &parsed.nonce {
            assert!(!Nonces::new(&[7; 32]).accepts(nonce, parsed.iat), "a fuzzed nonce verified");
        }
    }
    let _ = normalize_path(&proof);

    let Ok(value) = HeaderValue::from_str(&proof) else { return };
    let mut headers = HeaderMap::new();
    headers.insert("dpop", value);
    let settings = DpopSettings {
        public_origins: vec!["https://app.example".to_owned()],
        algorithms: allowed,
        ..DpopSettings::default()
    };
    let verifier = DpopVerifier::new(&settings, Duration::from_secs(30));
    let facts = RequestFacts { method: "GET", path: "/api/api-a", access_token: "token", now: 1_700_000_000 };
    let checked = verifier.check(&headers, facts);
    assert!(checked.is_err() || signature_valid, "check accepted a proof whose signature does not verify");
});
