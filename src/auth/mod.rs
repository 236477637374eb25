//! Bearer-token authentication: what is accepted and nothing else.
//!
//! `bearer` reads the header, `keys`/`keystore` own signing keys, `claims` is what handlers
//! see, `cache` remembers verified tokens, and [`Authenticator::verify`] is the one place
//! where a token is judged. `policy` (with `step_up` for RFC 9470) then applies each
//! function's `auth.json` to the verified claims.
//! `rules` holds the `"claims"` rules on any claim.
//! `dpop` checks DPoP proofs and `binding` ties a token's `cnf` to
//! what the request proves ([`Authenticator::authenticate_request`]).

pub mod bearer;
pub mod binding;
pub mod cache;
pub mod claims;
pub mod dpop;
pub mod keys;
pub mod keystore;
pub mod policy;
pub mod rules;
pub mod snapshot;
pub mod step_up;
pub mod token;
pub mod verify;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;
use serde_json::Value;

pub use claims::{Claims, Organization};
pub use keystore::KeyStore;

use crate::config::AuthConfig;
use crate::error::{AuthError, ChallengeContext, TokenRejection};
use cache::TokenCache;
use keystore::KeyError;

/// Verifies bearer tokens against the configured issuers, audiences and algorithms.
#[derive(Debug)]
pub struct Authenticator {
    issuers: Vec<Arc<KeyStore>>,
    /// Accepted audiences, per issuer (index-aligned with `issuers`).
    audiences: Vec<Vec<String>>,
    algorithms: Vec<Algorithm>,
    skew: i64,
    max_token_bytes: usize,
    realm: String,
    retry_after: Duration,
    require_access_token_type: bool,
    resource: Option<reqwest::Url>,
    cache: TokenCache,
    dpop: dpop::DpopVerifier,
    client_cert_header: Option<http::HeaderName>,
}

impl Authenticator {
    /// Builds the key stores (one HTTP client shared by all) and loads usable key set
    /// snapshots from disk; nothing is fetched yet.
    pub fn new(config: &AuthConfig) -> Result<Self, String> {
        let client = keystore::http_client(&config.jwks);
        let snapshots = snapshot::resolve(&config.snapshots);
        let issuers = config
            .issuers
            .iter()
            .map(|issuer| {
                let store = KeyStore::new(issuer, config.jwks, client.clone())?;
                Ok(Arc::new(match &snapshots {
                    Some(dir) => store.with_snapshots(dir.clone()),
                    None => store,
                }))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            issuers,
            audiences: config
                .issuers
                .iter()
                .map(|issuer| issuer.audiences.clone().unwrap_or_else(|| config.audiences.clone()))
                .collect(),
            algorithms: config.algorithms.clone(),
            skew: config.clock_skew.as_secs() as i64,
            max_token_bytes: config.max_token_bytes,
            realm: config.realm.clone(),
            retry_after: config.jwks.cooldown.max(Duration::from_secs(1)),
            require_access_token_type: config.require_access_token_type,
            resource: config.resource.clone(),
            cache: TokenCache::new(config.token_cache_ttl, config.token_cache_entries),
            dpop: dpop::DpopVerifier::new(&config.dpop, config.clock_skew),
            client_cert_header: config.client_cert_header.clone(),
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

    /// The configured issuers, in configuration order.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.iter().map(|s| s.issuer())
    }

    /// Where `issuer`'s keys came from and whether its last refresh worked (the decision
    /// line's `keys` field).
    pub fn key_freshness(&self, issuer: &str) -> keystore::Freshness {
        self.issuers.iter().find(|s| s.issuer() == issuer).map_or(keystore::Freshness::None, |s| s.freshness())
    }

    /// Number of verified tokens currently cached.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Leeway in seconds for time claims (`AUTH_CLOCK_SKEW_SECONDS`), also applied to the
    /// per-function `maxAge` check.
    pub fn clock_skew(&self) -> i64 {
        self.skew
    }

    /// The resource identifier for RFC 9728 metadata, when configured.
    pub fn resource(&self) -> Option<&reqwest::Url> {
        self.resource.as_ref()
    }

    /// Challenge parameters from configuration (no resource metadata; the app adds it).
    pub fn challenge_context(&self) -> ChallengeContext {
        ChallengeContext {
            realm: self.realm.clone(),
            retry_after_secs: self.retry_after.as_secs(),
            resource_metadata: None,
        }
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

        let parsed = token::parse(token, &self.algorithms).map_err(invalid)?;
        if self.require_access_token_type && !parsed.typ.as_deref().is_some_and(token::is_access_token_type) {
            return Err(invalid(R::WrongType));
        }
        let issuer = match parsed.payload.get("iss") {
            Some(Value::String(iss)) => iss,
            Some(_) => return Err(invalid(R::BadClaimType)),
            None => return Err(invalid(R::WrongIssuer)),
        };
        // The issuer is chosen before verification, so a token naming issuer B is only ever
        // checked with B's keys, and an unknown issuer costs no network request.
        let Some(store_index) = self.issuers.iter().position(|s| s.issuer() == issuer) else {
            return Err(invalid(R::WrongIssuer));
        };
        let key = self.issuers[store_index].key_for(parsed.kid.as_deref()).await.map_err(|e| match e {
            KeyError::UnknownKey => invalid(R::UnknownKey),
            KeyError::Unavailable => AuthError::KeysUnavailable,
        })?;
        if !key.permits(parsed.alg) {
            return Err(invalid(R::KeyMismatch));
        }
        if !key.prepared.verify(parsed.alg, parsed.signed.as_bytes(), parsed.signature) {
            return Err(invalid(R::BadSignature));
        }
        let (expires_at, audiences) =
            token::check_claims(&parsed.payload, now, self.skew, &self.audiences[store_index]).map_err(invalid)?;
        let issuer = self.issuers[store_index].issuer().to_owned();
        let key_id = key.kid.clone();
        let claims = Arc::new(Claims::from_verified(issuer, audiences, expires_at, key_id, parsed.payload));
        self.cache.insert(token, claims.clone(), store_index, key, expires_at, now);
        Ok(claims)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
