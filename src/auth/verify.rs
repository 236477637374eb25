//! Signature checks with the public key parsed once, not on every token.
//!
//! `jsonwebtoken::crypto::verify` builds a fresh verifier per call: it clones the
//! `DecodingKey`, and the aws-lc backend rebuilds the RSA key from `n`/`e` (or re-parses
//! the DER) every time, which also recomputes the modulus' Montgomery constants. A
//! [`PreparedKey`] parses the key once per algorithm (lazily, on first use) into an
//! `aws_lc_rs::signature::ParsedPublicKey` and reuses it for every token. Same algorithms
//! and key-size bounds as jsonwebtoken's aws-lc backend (RSA 2048–8192 bits, fixed-length
//! ECDSA signatures), same strict unpadded base64url for the signature.
//!

use std::fmt;
use std::sync::OnceLock;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

// The algorithms a `PreparedKey` can verify, in the order of its parsed-key slots.
use super::keys::ASYMMETRIC_ALGORITHMS as ALGORITHMS;

/// Largest signature decoded: an 8192-bit RSA signature (1024 bytes), with room for the
/// base64 decoder's conservative length estimate.
const MAX_SIGNATURE_BYTES: usize = 1032;

/// A public key with its parsed form cached per algorithm.
pub struct PreparedKey {
    key: DecodingKey,
    parsed: [OnceLock<Option<ParsedPublicKey>>; ALGORITHMS.len()],
}

impl fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ready: Vec<_> = ALGORITHMS
            .iter()
            .zip(&self.parsed)
            .filter(|(_, slot)| matches!(slot.get(), Some(Some(_))))
            .map(|(alg, _)| alg)
            .collect();
        f.debug_struct("PreparedKey").field("parsed", &ready).finish_non_exhaustive()
    }
}

impl PreparedKey {
    /// Wraps `key`; nothing is parsed until the first [`PreparedKey::verify`] per algorithm.
    pub fn new(key: &DecodingKey) -> Self {
        Self { key: key.clone(), parsed: Default::default() }
    }

    /// True when `signature_b64` (unpadded base64url) is a valid `alg` signature of
    /// `message` under this key. Any failure (unknown algorithm, a key of another family,
    /// bad base64, wrong length, bad signature) is `false`. The caller still checks that
    /// the key permits `alg`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature_b64: &str) -> bool {
        let Some(slot) = ALGORITHMS.iter().position(|a| *a == alg) else { return false };
        let Some(parsed) = self.parsed[slot].get_or_init(|| parse(&self.key, alg)) else { return false };
        let mut signature = [0u8; MAX_SIGNATURE_BYTES];
        let Ok(len) = URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut signature) else { return false };
        parsed.verify_sig(message, &signature[..len]).is_ok()
    }
}

/// aws-lc's RSA verification parameters for `alg` (2048–8192-bit keys), if it is RS*/PS*.
pub(crate) fn rsa_params(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// aws-lc's verification algorithm for `alg` when its key is a point (ES256, ES384, EdDSA).
pub(crate) fn point_algorithm(alg: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => return None,
    })
}

fn parse(key: &DecodingKey, alg: Algorithm) -> Option<ParsedPublicKey> {
    if let Some(params) = rsa_params(alg) {
        return match key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.to_parsed_public_key(params).ok()
            }
            DecodingKeyKind::SecretOrDer(der) => ParsedPublicKey::new(params, der).ok(),
        };
    }
    let algorithm = point_algorithm(alg)?;
    match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => ParsedPublicKey::new(algorithm, bytes).ok(),
        DecodingKeyKind::RsaModulusExponent { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn signed(alg: Algorithm, key: &EncodingKey) -> (String, String) {
        let message = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0".to_owned();
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
        (message, signature)
    }

    /// Agrees with `jsonwebtoken::crypto::verify` on good and bad signatures.
    fn agrees(decoding: &DecodingKey, alg: Algorithm, message: &str, signature: &str) {
        let prepared = PreparedKey::new(decoding);
        let expected = jsonwebtoken::crypto::verify(signature, message.as_bytes(), decoding, alg).unwrap_or(false);
        assert!(expected, "{alg:?}: fixture signature must verify");
        for _ in 0..2 {
            assert!(prepared.verify(alg, message.as_bytes(), signature), "{alg:?}");
        }
        assert!(!prepared.verify(alg, format!("{message}x").as_bytes(), signature), "{alg:?} other message");
        let mut bad = signature.as_bytes().to_vec();
        bad[10] = if bad[10] == b'A' { b'B' } else { b'A' };
        assert!(!prepared.verify(alg, message.as_bytes(), std::str::from_utf8(&bad).unwrap()), "{alg:?} bad sig");
        assert!(!prepared.verify(alg, message.as_bytes(), &format!("{signature}=")), "{alg:?} padded");
        assert!(!prepared.verify(alg, message.as_bytes(), "!!"), "{alg:?} not base64");
        assert!(!prepared.verify(alg, message.as_bytes(), ""), "{alg:?} empty");
    }

    #[test]
    fn rsa_from_components_and_pem_match_jsonwebtoken() {
        let encoding = EncodingKey::from_rsa_pem(&fixture("rsa-a.pem")).unwrap();
        let pem = DecodingKey::from_rsa_pem(&fixture("rsa-a-pub.pem")).unwrap();
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap();
        let components = DecodingKey::from_jwk(&jwk).unwrap();
        for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS512] {
            let (message, signature) = signed(alg, &encoding);
            agrees(&pem, alg, &message, &signature);
            agrees(&components, alg, &message, &signature);
        }
    }

    #[test]
    fn ec_matches_jsonwebtoken() {
        let encoding = EncodingKey::from_ec_pem(&fixture("ec-p256.pem")).unwrap();
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let (message, signature) = signed(Algorithm::ES256, &encoding);
        agrees(&decoding, Algorithm::ES256, &message, &signature);
    }

    #[test]
    fn a_key_never_verifies_another_family_or_hmac() {
        let encoding = EncodingKey::from_rsa_pem(&fixture("rsa-a.pem")).unwrap();
        let (message, signature) = signed(Algorithm::RS256, &encoding);
        let prepared = PreparedKey::new(&DecodingKey::from_rsa_pem(&fixture("rsa-a-pub.pem")).unwrap());
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::HS256, Algorithm::PS256] {
            assert!(!prepared.verify(alg, message.as_bytes(), &signature), "{alg:?}");
        }
        assert!(prepared.verify(Algorithm::RS256, message.as_bytes(), &signature));
        let weak = DecodingKey::from_rsa_pem(&fixture("rsa-weak-1024.pem"));
        if let Ok(weak) = weak {
            assert!(!PreparedKey::new(&weak).verify(Algorithm::RS256, message.as_bytes(), &signature));
        }
        assert!(format!("{prepared:?}").contains("RS256"));
    }
}
