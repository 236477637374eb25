//! Signing keys: parsing a JWK Set or a PEM key into verification keys, refusing the
//! kinds that must never verify a token (HMAC secrets, weak RSA, unknown curves).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use serde::Deserialize;

/// Smallest RSA modulus accepted. 1024-bit RSA is factorable by well-funded attackers;
/// lowering this lets such keys sign tokens we accept.
pub const MIN_RSA_BITS: usize = 2048;

/// Limits applied to every key, whatever its source.
#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    /// Smallest RSA modulus in bits.
    pub min_rsa_bits: usize,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self { min_rsa_bits: MIN_RSA_BITS }
    }
}

/// Why a key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    /// `kty` other than RSA, EC or OKP (including `oct`, i.e. HMAC secrets).
    #[error("unsupported key type")]
    UnsupportedType,
    /// `use` present and not `sig`.
    #[error("key is not for signatures")]
    NotForSignatures,
    /// RSA modulus below [`MIN_RSA_BITS`].
    #[error("RSA key shorter than {MIN_RSA_BITS} bits")]
    WeakRsa,
    /// Curve other than P-256, P-384 or Ed25519.
    #[error("unsupported curve")]
    UnsupportedCurve,
    /// `alg` that is not an asymmetric signature algorithm.
    #[error("unsupported key algorithm")]
    UnsupportedAlgorithm,
    /// Missing or badly encoded members.
    #[error("malformed key")]
    Malformed,
    /// Not a PEM public key or certificate this handler understands.
    #[error("not a PEM certificate or public key (RSA, EC P-256/P-384 or Ed25519)")]
    BadPem,
}

/// A public key ready to verify signatures.
#[derive(Debug)]
pub struct VerifyingKey {
    /// Key id from the key set (`None` for a PEM key or a JWK without `kid`).
    pub kid: Option<String>,
    /// Key family; a token's `alg` must belong to it.
    pub family: AlgorithmFamily,
    /// The one algorithm this key may be used with, when the key pins it (`alg`, EC curve).
    pub alg: Option<Algorithm>,
    /// The key material.
    pub key: DecodingKey,
    /// The same key, parsed once for verification.
    pub prepared: super::verify::PreparedKey,
}

impl VerifyingKey {
    /// A key with its verifier prepared (parsed lazily on first use).
    pub fn new(kid: Option<String>, family: AlgorithmFamily, alg: Option<Algorithm>, key: DecodingKey) -> Self {
        Self { kid, family, alg, prepared: super::verify::PreparedKey::new(&key), key }
    }

    /// True when `alg` may be verified with this key.
    pub fn permits(&self, alg: Algorithm) -> bool {
        self.family.algorithms().contains(&alg) && self.alg.is_none_or(|pinned| pinned == alg)
    }
}

/// An immutable set of keys from one fetch.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    /// Builds a set; the first key wins when two share a `kid`.
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        let mut out: Vec<Arc<VerifyingKey>> = Vec::with_capacity(keys.len());
        for key in keys {
            if key.kid.is_some() && out.iter().any(|k| k.kid == key.kid) {
                continue;
            }
            out.push(Arc::new(key));
        }
        Self { keys: out }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token's `kid`. A token without `kid` (or a key without one) is matched
    /// only when the set holds exactly one key, so the choice is never a guess.
    pub fn find(&self, kid: Option<&str>) -> Option<&Arc<VerifyingKey>> {
        if let Some(kid) = kid
            && let Some(key) = self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
        {
            return Some(key);
        }
        match self.keys.as_slice() {
            [only] if kid.is_none() || only.kid.is_none() => Some(only),
            _ => None,
        }
    }

    /// True when a key with this id is in the set.
    pub fn contains(&self, key: &Arc<VerifyingKey>) -> bool {
        self.keys.iter().any(|k| Arc::ptr_eq(k, key))
    }

    /// Key ids, for logs.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_deref().unwrap_or("-")).collect()
    }
}

#[derive(Deserialize)]
struct JwkSetDoc {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct JwkDoc {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// A key left out of a key set: its `kid` when readable, and why.
pub type RejectedKey = (Option<String>, KeyRejection);

/// Parses a JWK Set document. Keys that cannot be used are returned separately (with their
/// `kid` when readable) so the caller can log them; they never verify anything.
pub fn parse_jwks(body: &[u8], policy: &KeyPolicy) -> Result<(KeySet, Vec<RejectedKey>), KeyRejection> {
    // serde also reads a struct from a JSON array; a key set is always an object.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(KeyRejection::Malformed);
    }
    let doc: JwkSetDoc = serde_json::from_slice(body).map_err(|_| KeyRejection::Malformed)?;
    let mut keys = Vec::new();
    let mut rejected = Vec::new();
    for value in doc.keys {
        let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        match parse_jwk(value, policy) {
            Ok(key) => keys.push(key),
            Err(why) => rejected.push((kid, why)),
        }
    }
    Ok((KeySet::new(keys), rejected))
}

fn b64(value: Option<&String>) -> Result<Vec<u8>, KeyRejection> {
    let value = value.ok_or(KeyRejection::Malformed)?;
    URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).map_err(|_| KeyRejection::Malformed)
}

fn parse_jwk(value: serde_json::Value, policy: &KeyPolicy) -> Result<VerifyingKey, KeyRejection> {
    let jwk: JwkDoc = serde_json::from_value(value).map_err(|_| KeyRejection::Malformed)?;
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(KeyRejection::NotForSignatures);
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(asymmetric_alg(name).ok_or(KeyRejection::UnsupportedAlgorithm)?),
    };
    let (family, pinned, key) = match jwk.kty.as_str() {
        "RSA" => {
            let n = b64(jwk.n.as_ref())?;
            let e = b64(jwk.e.as_ref())?;
            if e.is_empty() {
                return Err(KeyRejection::Malformed);
            }
            if significant_bits(&n) < policy.min_rsa_bits {
                return Err(KeyRejection::WeakRsa);
            }
            (AlgorithmFamily::Rsa, None, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            let (curve_alg, len) = match jwk.crv.as_deref() {
                Some("P-256") => (Algorithm::ES256, 32),
                Some("P-384") => (Algorithm::ES384, 48),
                _ => return Err(KeyRejection::UnsupportedCurve),
            };
            let point = ec_point(&b64(jwk.x.as_ref())?, &b64(jwk.y.as_ref())?, len).ok_or(KeyRejection::Malformed)?;
            (AlgorithmFamily::Ec, Some(curve_alg), DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            if jwk.crv.as_deref() != Some("Ed25519") {
                return Err(KeyRejection::UnsupportedCurve);
            }
            let x = b64(jwk.x.as_ref())?;
            if x.len() != 32 {
                return Err(KeyRejection::Malformed);
            }
            (AlgorithmFamily::Ed, Some(Algorithm::EdDSA), DecodingKey::from_ed_der(&x))
        }
        _ => return Err(KeyRejection::UnsupportedType),
    };
    if let Some(alg) = alg
        && (!family.algorithms().contains(&alg) || pinned.is_some_and(|p| p != alg))
    {
        return Err(KeyRejection::UnsupportedAlgorithm);
    }
    Ok(VerifyingKey::new(jwk.kid, family, alg.or(pinned), key))
}

/// Parses a PEM certificate (as Auth0's `/pem` serves) or public key (SPKI or PKCS#1).
pub fn parse_pem(pem: &str, policy: &KeyPolicy) -> Result<VerifyingKey, KeyRejection> {
    let bytes = pem.trim().as_bytes();
    if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
        let DecodingKeyKind::SecretOrDer(der) = key.kind() else { return Err(KeyRejection::BadPem) };
        let bits = rsa_modulus(der).map(significant_bits).ok_or(KeyRejection::BadPem)?;
        if bits < policy.min_rsa_bits {
            return Err(KeyRejection::WeakRsa);
        }
        return Ok(VerifyingKey::new(None, AlgorithmFamily::Rsa, None, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
        let DecodingKeyKind::SecretOrDer(point) = key.kind() else { return Err(KeyRejection::BadPem) };
        let alg = match point.len() {
            65 => Algorithm::ES256,
            97 => Algorithm::ES384,
            _ => return Err(KeyRejection::UnsupportedCurve),
        };
        return Ok(VerifyingKey::new(None, AlgorithmFamily::Ec, Some(alg), key));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
        return Ok(VerifyingKey::new(None, AlgorithmFamily::Ed, Some(Algorithm::EdDSA), key));
    }
    Err(KeyRejection::BadPem)
}

/// Every asymmetric signature algorithm this handler can verify.
pub const ASYMMETRIC_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The JOSE names of `alg`, for challenges and messages: `EdDSA Ed25519` for EdDSA (both
/// names are accepted, see [`asymmetric_alg`]), else the one registered name.
pub fn alg_names(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA Ed25519",
        // Never configured: `asymmetric_alg` yields none of the others.
        _ => "",
    }
}

/// The uncompressed SEC1 point `04 || x || y` of an EC JWK whose coordinates are `len`
/// bytes each (32 for P-256, 48 for P-384); `None` for coordinates of another length.
pub(crate) fn ec_point(x: &[u8], y: &[u8], len: usize) -> Option<Vec<u8>> {
    if x.len() != len || y.len() != len {
        return None;
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    Some(point)
}

/// Maps a JOSE `alg` name to an asymmetric signature algorithm; `None` for HMAC, `none`
/// and anything unknown.
///
/// `Ed25519` is RFC 9864's fully-specified name for EdDSA on the Ed25519 curve (current
/// DPoP clients sign with it); it maps to [`Algorithm::EdDSA`], which here only ever means
/// Ed25519: OKP keys of any other curve (Ed448) are refused when keys are parsed, so the
/// two names verify exactly the same keys and signatures.
pub fn asymmetric_alg(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" | "Ed25519" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn significant_bits(big_endian: &[u8]) -> usize {
    let trimmed: &[u8] = match big_endian.iter().position(|b| *b != 0) {
        Some(i) => &big_endian[i..],
        None => return 0,
    };
    trimmed.len() * 8 - trimmed[0].leading_zeros() as usize
}

/// The modulus of a PKCS#1 `RSAPublicKey` (`SEQUENCE { INTEGER n, INTEGER e }`), DER.
fn rsa_modulus(der: &[u8]) -> Option<&[u8]> {
    fn header(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = input.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let count = (first & 0x7f) as usize;
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let len = rest[..count].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, &rest[count..])
        };
        (rest.len() >= len).then(|| rest.split_at(len))
    }
    let (seq, _) = header(der, 0x30)?;
    let (n, _) = header(seq, 0x02)?;
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rsa_jwk(bits: usize) -> serde_json::Value {
        let mut n = vec![0xffu8; bits / 8];
        n[0] = 0xc1;
        json!({"kty": "RSA", "kid": "k", "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"})
    }

    #[test]
    fn an_ed25519_jwk_labelled_ed25519_or_eddsa_permits_eddsa_and_an_ed448_one_is_refused() {
        let policy = KeyPolicy::default();
        let x = URL_SAFE_NO_PAD.encode([7u8; 32]);
        for alg in ["Ed25519", "EdDSA"] {
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "e", "alg": alg, "x": x});
            let key = parse_jwk(jwk, &policy).unwrap();
            assert!(key.permits(Algorithm::EdDSA), "{alg}");
            assert!(!key.permits(Algorithm::ES256), "{alg}");
        }
        let ed448 =
            json!({"kty": "OKP", "crv": "Ed448", "kid": "e", "alg": "EdDSA", "x": URL_SAFE_NO_PAD.encode([7u8; 57])});
        assert_eq!(parse_jwk(ed448, &policy).unwrap_err(), KeyRejection::UnsupportedCurve);
        let ec = json!({"kty": "EC", "crv": "P-256", "alg": "Ed25519", "x": x, "y": x});
        assert_eq!(parse_jwk(ec, &policy).unwrap_err(), KeyRejection::UnsupportedAlgorithm);
        assert_eq!(alg_names(Algorithm::EdDSA), "EdDSA Ed25519");
        assert_eq!(alg_names(Algorithm::PS256), "PS256");
    }

    #[test]
    fn rsa_keys_under_2048_bits_are_refused() {
        let policy = KeyPolicy::default();
        assert_eq!(parse_jwk(rsa_jwk(1024), &policy).unwrap_err(), KeyRejection::WeakRsa);
        assert_eq!(parse_jwk(rsa_jwk(2040), &policy).unwrap_err(), KeyRejection::WeakRsa);
        assert!(parse_jwk(rsa_jwk(2048), &policy).is_ok());
    }

    #[test]
    fn hmac_and_unknown_keys_are_refused() {
        let policy = KeyPolicy::default();
        let oct = json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"});
        assert_eq!(parse_jwk(oct, &policy).unwrap_err(), KeyRejection::UnsupportedType);
        let mut enc = rsa_jwk(2048);
        enc["use"] = json!("enc");
        assert_eq!(parse_jwk(enc, &policy).unwrap_err(), KeyRejection::NotForSignatures);
        let mut hs = rsa_jwk(2048);
        hs["alg"] = json!("HS256");
        assert_eq!(parse_jwk(hs, &policy).unwrap_err(), KeyRejection::UnsupportedAlgorithm);
        let mut es = rsa_jwk(2048);
        es["alg"] = json!("ES256");
        assert_eq!(parse_jwk(es, &policy).unwrap_err(), KeyRejection::UnsupportedAlgorithm);
    }

    #[test]
    fn a_key_pinned_to_an_algorithm_permits_only_that_one() {
        let mut jwk = rsa_jwk(2048);
        jwk["alg"] = json!("RS256");
        let key = parse_jwk(jwk, &KeyPolicy::default()).unwrap();
        assert!(key.permits(Algorithm::RS256));
        assert!(!key.permits(Algorithm::PS256));
        assert!(!key.permits(Algorithm::HS256));
        let free = parse_jwk(rsa_jwk(2048), &KeyPolicy::default()).unwrap();
        assert!(free.permits(Algorithm::PS512));
        assert!(!free.permits(Algorithm::ES256));
    }

    #[test]
    fn find_matches_kid_and_only_guesses_with_a_single_key() {
        let key = |kid: Option<&str>| {
            VerifyingKey::new(
                kid.map(str::to_owned),
                AlgorithmFamily::Rsa,
                None,
                DecodingKey::from_rsa_raw_components(&[1], &[1]),
            )
        };
        let two = KeySet::new(vec![key(Some("a")), key(Some("b"))]);
        assert_eq!(two.find(Some("b")).unwrap().kid.as_deref(), Some("b"));
        assert!(two.find(Some("c")).is_none());
        assert!(two.find(None).is_none());
        let one = KeySet::new(vec![key(Some("a"))]);
        assert!(one.find(None).is_some());
        assert!(one.find(Some("z")).is_none());
        let anonymous = KeySet::new(vec![key(None)]);
        assert!(anonymous.find(Some("z")).is_some());
    }

    #[test]
    fn jwks_parsing_keeps_good_keys_and_reports_bad_ones() {
        let doc = json!({"keys": [rsa_jwk(2048), {"kty": "oct", "kid": "h", "k": "AA"}, rsa_jwk(1024), 7]});
        let (set, rejected) = parse_jwks(doc.to_string().as_bytes(), &KeyPolicy::default()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(rejected.len(), 3);
        assert!(parse_jwks(b"<html>", &KeyPolicy::default()).is_err());
        assert!(parse_jwks(format!("[{}]", json!([rsa_jwk(2048)])).as_bytes(), &KeyPolicy::default()).is_err());
        assert!(parse_jwks(b"{\"keys\": [", &KeyPolicy::default()).is_err());
    }

    #[test]
    fn der_modulus_length_is_read_from_pkcs1() {
        // SEQUENCE { INTEGER 0x00ff.. (3 bytes), INTEGER 3 }
        let der = [0x30, 0x08, 0x02, 0x03, 0x00, 0xff, 0x01, 0x02, 0x01, 0x03];
        assert_eq!(rsa_modulus(&der).map(significant_bits), Some(16));
        assert_eq!(rsa_modulus(&[0x30, 0x05, 0x02]), None);
    }
}
