//! Bearer-token authentication: what is accepted and nothing else.
//!
//! `bearer` reads the header, `keys`/`keystore` own signing keys, `claims` is what handlers
//! see, `cache` remembers verified tokens, and [`Authenticator::verify`] is the one place
//! where a token is judged.

pub mod bearer;
pub mod cache;
pub mod claims;
pub mod keys;
pub mod keystore;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

pub use claims::Claims;
pub use keystore::KeyStore;

use crate::config::AuthConfig;
use crate::error::{AuthError, TokenRejection};
use cache::TokenCache;
use keys::asymmetric_alg;
use keystore::KeyError;

/// Longest base64url JOSE header read. Real headers (`alg`, `typ`, `kid`, `x5t`) are
/// under 200 bytes; larger ones are refused before decoding.
pub const MAX_HEADER_BYTES: usize = 1024;

/// Verifies bearer tokens against the configured issuers, audiences and algorithms.
#[derive(Debug)]
pub struct Authenticator {
    issuers: Vec<Arc<KeyStore>>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    skew: i64,
    max_token_bytes: usize,
    realm: String,
    retry_after: Duration,
    cache: TokenCache,
}

impl Authenticator {
    /// Builds the key stores (one HTTP client shared by all); nothing is fetched yet.
    pub fn new(config: &AuthConfig) -> Result<Self, String> {
        let client = keystore::http_client(&config.jwks);
        let issuers = config
            .issuers
            .iter()
            .map(|issuer| KeyStore::new(issuer, config.jwks, client.clone()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            issuers,
            audiences: config.audiences.clone(),
            algorithms: config.algorithms.clone(),
            skew: config.clock_skew.as_secs() as i64,
            max_token_bytes: config.max_token_bytes,
            realm: config.realm.clone(),
            retry_after: config.jwks.cooldown.max(Duration::from_secs(1)),
            cache: TokenCache::new(config.token_cache_ttl, config.token_cache_entries),
        })
    }

    /// Starts one background refresher per issuer (first fetch at once). Needs a Tokio runtime.
    pub fn spawn_refreshers(&self) {
        for store in &self.issuers {
            tokio::spawn(store.clone().run_refresher());
        }
    }

    /// The key stores, one per issuer.
    pub fn key_stores(&self) -> &[Arc<KeyStore>] {
        &self.issuers
    }

    /// Realm for challenges.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Seconds a client should wait after a 503.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs()
    }

    /// Reads the bearer token from `headers` and verifies it.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Claims>, AuthError> {
        let token = bearer::bearer_token(headers, self.max_token_bytes)?;
        self.verify(token).await
    }

    /// Verifies a compact JWS access token. The algorithm comes from configuration and the
    /// key; the token header only selects among what is already allowed.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        use TokenRejection as R;
        let invalid = AuthError::InvalidToken;
        if token.len() > self.max_token_bytes {
            return Err(invalid(R::Oversized));
        }
        let now = unix_now();
        if let Some(claims) = self.cache.get(token, now, |store, key| self.issuers[store].still_trusts(key)) {
            return Ok(claims);
        }

        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid(if token.split('.').count() == 5 { R::Encrypted } else { R::Malformed }));
        };
        if header_b64.len() > MAX_HEADER_BYTES || signature_b64.is_empty() {
            return Err(invalid(R::Malformed));
        }
        let header = decode_json(header_b64).ok_or(invalid(R::Malformed))?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(asymmetric_alg)
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or(invalid(R::AlgorithmNotAllowed))?;
        if header.contains_key("crit") {
            return Err(invalid(R::CriticalHeader));
        }
        if header.contains_key("enc") || header.contains_key("zip") {
            return Err(invalid(R::Encrypted));
        }
        if header.get("cty").and_then(Value::as_str).is_some_and(|cty| cty.eq_ignore_ascii_case("JWT")) {
            return Err(invalid(R::Nested));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(invalid(R::Malformed)),
        };

        let payload = decode_json(payload_b64).ok_or(invalid(R::Malformed))?;
        let issuer = match payload.get("iss") {
            Some(Value::String(iss)) => iss,
            Some(_) => return Err(invalid(R::BadClaimType)),
            None => return Err(invalid(R::WrongIssuer)),
        };
        // The issuer is chosen before verification, so a token naming issuer B is only ever
        // checked with B's keys, and an unknown issuer costs no network request.
        let Some(store_index) = self.issuers.iter().position(|s| s.issuer() == issuer) else {
            return Err(invalid(R::WrongIssuer));
        };
        let key = self.issuers[store_index].key_for(kid).await.map_err(|e| match e {
            KeyError::UnknownKey => invalid(R::UnknownKey),
            KeyError::Unavailable => AuthError::KeysUnavailable,
        })?;
        if !key.permits(alg) {
            return Err(invalid(R::KeyMismatch));
        }
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        match jsonwebtoken::crypto::verify(signature_b64, signed.as_bytes(), &key.key, alg) {
            Ok(true) => {}
            _ => return Err(invalid(R::BadSignature)),
        }

        let expires_at = numeric_date(payload.get("exp"))?.ok_or(invalid(R::MissingExpiry))?;
        if now >= expires_at.saturating_add(self.skew) {
            return Err(invalid(R::Expired));
        }
        if numeric_date(payload.get("nbf"))?.is_some_and(|nbf| nbf > now.saturating_add(self.skew)) {
            return Err(invalid(R::NotYetValid));
        }
        if numeric_date(payload.get("iat"))?.is_some_and(|iat| iat > now.saturating_add(self.skew)) {
            return Err(invalid(R::IssuedInFuture));
        }
        let audiences = match payload.get("aud") {
            Some(Value::String(aud)) => vec![aud.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(invalid(R::BadClaimType))?,
            Some(_) => return Err(invalid(R::BadClaimType)),
            None => return Err(invalid(R::WrongAudience)),
        };
        if !audiences.iter().any(|aud| self.audiences.contains(aud)) {
            return Err(invalid(R::WrongAudience));
        }
        for name in ["sub", "azp", "client_id", "scope", "jti", "gty"] {
            if payload.get(name).is_some_and(|v| !v.is_string()) {
                return Err(invalid(R::BadClaimType));
            }
        }

        let issuer = issuer.clone();
        let key_id = key.kid.clone();
        let claims = Arc::new(Claims::from_verified(issuer, audiences, expires_at, key_id, payload));
        self.cache.insert(token, claims.clone(), store_index, key, expires_at, now);
        Ok(claims)
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn decode_json(segment: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A NumericDate claim (RFC 7519 §2): a JSON number, fractions truncated. Any other JSON
/// type is an error, absence is `None`.
fn numeric_date(value: Option<&Value>) -> Result<Option<i64>, AuthError> {
    match value {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.is_finite() => Ok(Some(f.clamp(i64::MIN as f64, i64::MAX as f64) as i64)),
            _ => Err(AuthError::InvalidToken(TokenRejection::BadClaimType)),
        },
        Some(_) => Err(AuthError::InvalidToken(TokenRejection::BadClaimType)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_dates_must_be_numbers() {
        assert_eq!(numeric_date(None), Ok(None));
        assert_eq!(numeric_date(Some(&json!(12))), Ok(Some(12)));
        assert_eq!(numeric_date(Some(&json!(12.9))), Ok(Some(12)));
        let wrong = Err(AuthError::InvalidToken(TokenRejection::BadClaimType));
        assert_eq!(numeric_date(Some(&json!("12"))), wrong);
        assert_eq!(numeric_date(Some(&json!(true))), wrong);
        assert_eq!(numeric_date(Some(&json!(null))), wrong);
    }

    #[test]
    fn segments_must_be_unpadded_base64url_json_objects() {
        assert!(decode_json("eyJhIjoxfQ").is_some());
        assert!(decode_json("eyJhIjoxfQ==").is_none());
        assert!(decode_json("WzFd").is_none()); // [1]
        assert!(decode_json("!!!").is_none());
    }
}
