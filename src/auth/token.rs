//! The pure, synchronous parts of token validation: the pre-parser (segments, base64url,
//! JOSE header rules) that runs before any key lookup, and the registered-claims checks
//! that run after the signature. Both are total functions of their input (no I/O, no
//! clock), which is what the fuzz targets exercise.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::keys::asymmetric_alg;
use crate::error::TokenRejection as R;

/// Longest base64url JOSE header read. Real headers (`alg`, `typ`, `kid`, `x5t`) are
/// under 200 bytes; larger ones are refused before decoding.
pub const MAX_HEADER_BYTES: usize = 1024;

/// A token split and decoded, signature not yet checked. Nothing in it is trusted.
#[derive(Debug)]
pub struct Unverified<'a> {
    /// Signature algorithm: allowed by configuration, never `none` or HMAC.
    pub alg: Algorithm,
    /// `kid`, when present (a string).
    pub kid: Option<String>,
    /// `typ`, when present.
    pub typ: Option<String>,
    /// The decoded claims object.
    pub payload: Map<String, Value>,
    /// `header.payload`: the bytes the signature covers.
    pub signed: &'a str,
    /// The base64url signature segment.
    pub signature: &'a str,
}

/// Splits and decodes a compact JWS, applying every header rule: exactly three segments
/// (five is JWE), bounded header size, strict unpadded base64url, JSON objects, `alg` in
/// `allowed`, no `crit`, no encryption or compression, no nested JWT. The `jku`, `x5u`,
/// `jwk` and `x5c` members are ignored: keys only ever come from configuration.
pub fn parse<'a>(token: &'a str, allowed: &[Algorithm]) -> Result<Unverified<'a>, R> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(match token.split('.').count() {
            5 => R::Encrypted,
            1 => R::Opaque,
            _ => R::Malformed,
        });
    };
    if header_b64.len() > MAX_HEADER_BYTES || signature.is_empty() {
        return Err(R::Malformed);
    }
    let header = decode_json(header_b64).ok_or(R::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(asymmetric_alg)
        .filter(|alg| allowed.contains(alg))
        .ok_or(R::AlgorithmNotAllowed)?;
    if header.contains_key("crit") {
        return Err(R::CriticalHeader);
    }
    if header.contains_key("enc") || header.contains_key("zip") {
        return Err(R::Encrypted);
    }
    if header.get("cty").and_then(Value::as_str).is_some_and(|cty| cty.eq_ignore_ascii_case("JWT")) {
        return Err(R::Nested);
    }
    let string_member = |name: &str| match header.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(R::Malformed),
    };
    let kid = string_member("kid")?;
    let typ = string_member("typ")?;
    let payload = decode_json(payload_b64).ok_or(R::Malformed)?;
    Ok(Unverified { alg, kid, typ, payload, signed: &token[..header_b64.len() + 1 + payload_b64.len()], signature })
}

/// Checks the registered claims of a signature-verified payload at `now` (Unix seconds):
/// `exp` required and numeric, `nbf` and `iat` not in the future beyond `skew`, `aud` a
/// string or array of strings containing one of `audiences`, and string-typed `sub`,
/// `azp`, `client_id`, `scope`, `jti`, `gty`. Returns `exp` and the audiences.
pub fn check_claims(
    payload: &Map<String, Value>,
    now: i64,
    skew: i64,
    audiences: &[String],
) -> Result<(i64, Vec<String>), R> {
    let expires_at = numeric_date(payload.get("exp"))?.ok_or(R::MissingExpiry)?;
    if now >= expires_at.saturating_add(skew) {
        return Err(R::Expired);
    }
    if numeric_date(payload.get("nbf"))?.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(R::NotYetValid);
    }
    if numeric_date(payload.get("iat"))?.is_some_and(|iat| iat > now.saturating_add(skew)) {
        return Err(R::IssuedInFuture);
    }
    let token_audiences = match payload.get("aud") {
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>().ok_or(R::BadClaimType)?
        }
        Some(_) => return Err(R::BadClaimType),
        None => return Err(R::WrongAudience),
    };
    if !token_audiences.iter().any(|aud| audiences.contains(aud)) {
        return Err(R::WrongAudience);
    }
    for name in ["iss", "sub", "azp", "client_id", "scope", "jti", "gty"] {
        if payload.get(name).is_some_and(|v| !v.is_string()) {
            return Err(R::BadClaimType);
        }
    }
    Ok((expires_at, token_audiences))
}

/// True for the RFC 9068 access-token `typ` (`at+jwt` or `application/at+jwt`, any case).
pub fn is_access_token_type(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// A base64url JWS segment holding a JSON object (a JOSE header or claims set).
pub(crate) fn decode_json(segment: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A NumericDate claim (RFC 7519 §2): a JSON number, fractions truncated. Any other JSON
/// type is an error, absence is `None`.
pub(crate) fn numeric_date(value: Option<&Value>) -> Result<Option<i64>, R> {
    match value {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.is_finite() => Ok(Some(f.clamp(i64::MIN as f64, i64::MAX as f64) as i64)),
            _ => Err(R::BadClaimType),
        },
        Some(_) => Err(R::BadClaimType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn token(header: Value) -> String {
        format!("{}.{}.c2ln", b64(&header), b64(&json!({"iss": "i"})))
    }

    const RS256: &[Algorithm] = &[Algorithm::RS256];

    #[test]
    fn numeric_dates_must_be_numbers() {
        assert_eq!(numeric_date(None), Ok(None));
        assert_eq!(numeric_date(Some(&json!(12))), Ok(Some(12)));
        assert_eq!(numeric_date(Some(&json!(12.9))), Ok(Some(12)));
        for wrong in [json!("12"), json!(true), json!(null), json!([1])] {
            assert_eq!(numeric_date(Some(&wrong)), Err(R::BadClaimType));
        }
    }

    #[test]
    fn segments_must_be_unpadded_base64url_json_objects() {
        assert!(decode_json("eyJhIjoxfQ").is_some());
        assert!(decode_json("eyJhIjoxfQ==").is_none());
        assert!(decode_json("WzFd").is_none()); // [1]
        assert!(decode_json("!!!").is_none());
    }

    #[test]
    fn ed25519_and_eddsa_labels_select_eddsa_only_where_it_is_allowed() {
        let eddsa = &[Algorithm::EdDSA];
        for label in ["Ed25519", "EdDSA"] {
            assert_eq!(parse(&token(json!({"alg": label})), eddsa).unwrap().alg, Algorithm::EdDSA, "{label}");
            assert_eq!(parse(&token(json!({"alg": label})), RS256).unwrap_err(), R::AlgorithmNotAllowed, "{label}");
        }
        for other in ["ed25519", "Ed448", "ED25519"] {
            assert_eq!(parse(&token(json!({"alg": other})), eddsa).unwrap_err(), R::AlgorithmNotAllowed, "{other}");
        }
    }

    #[test]
    fn header_rules() {
        assert!(parse(&token(json!({"alg": "RS256", "kid": "k"})), RS256).is_ok());
        assert_eq!(parse(&token(json!({"alg": "none"})), RS256).unwrap_err(), R::AlgorithmNotAllowed);
        assert_eq!(parse(&token(json!({"alg": "HS256"})), RS256).unwrap_err(), R::AlgorithmNotAllowed);
        assert_eq!(parse(&token(json!({"alg": "PS256"})), RS256).unwrap_err(), R::AlgorithmNotAllowed);
        assert_eq!(parse(&token(json!({"alg": "RS256", "crit": ["b64"]})), RS256).unwrap_err(), R::CriticalHeader);
        assert_eq!(parse(&token(json!({"alg": "RS256", "cty": "jwt"})), RS256).unwrap_err(), R::Nested);
        assert_eq!(parse(&token(json!({"alg": "RS256", "zip": "DEF"})), RS256).unwrap_err(), R::Encrypted);
        assert_eq!(parse(&token(json!({"alg": "RS256", "kid": 7})), RS256).unwrap_err(), R::Malformed);
        assert_eq!(parse("a.b.c.d.e", RS256).unwrap_err(), R::Encrypted);
        assert_eq!(parse("a.b", RS256).unwrap_err(), R::Malformed);
    }

    fn payload(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn claims_rules() {
        let aud = ["a".to_owned()];
        let ok = payload(json!({"exp": 1000, "aud": "a"}));
        assert_eq!(check_claims(&ok, 900, 0, &aud), Ok((1000, vec!["a".into()])));
        assert_eq!(check_claims(&ok, 1000, 0, &aud), Err(R::Expired));
        assert!(check_claims(&ok, 1029, 30, &aud).is_ok());
        assert_eq!(check_claims(&payload(json!({"aud": "a"})), 0, 0, &aud), Err(R::MissingExpiry));
        assert_eq!(check_claims(&payload(json!({"exp": 1000, "aud": "b"})), 0, 0, &aud), Err(R::WrongAudience));
        assert_eq!(
            check_claims(&payload(json!({"exp": 1000, "aud": "a", "nbf": 100})), 50, 30, &aud),
            Err(R::NotYetValid)
        );
        assert_eq!(
            check_claims(&payload(json!({"exp": 1000, "aud": "a", "iat": 100})), 50, 30, &aud),
            Err(R::IssuedInFuture)
        );
        assert_eq!(
            check_claims(&payload(json!({"exp": 1000, "aud": "a", "sub": 1})), 0, 0, &aud),
            Err(R::BadClaimType)
        );
        assert_eq!(
            check_claims(&payload(json!({"exp": i64::MAX, "aud": "a"})), i64::MAX - 1, 300, &aud),
            Ok((i64::MAX, vec!["a".into()]))
        );
    }
}
