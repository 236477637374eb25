//! Bearer-token authentication: what is accepted and nothing else.
//!
//! `bearer` reads the header, `keys`/`keystore` own signing keys, `claims` is what handlers
//! see, `cache` remembers verified tokens, and [`Authenticator::verify`] is the one place
//! where a token is judged. `policy` (with `step_up` for RFC 9470) then applies each
//! function's `auth.json` to the verified claims.
//! `rules` holds the `"claims"` rules on any claim; `tenant` the `{tenantid}` issuers of
//! multi-tenant Entra ID.
//! `dpop` checks DPoP proofs and `binding` ties a token's `cnf` to
//! what the request proves ([`Authenticator::authenticate_request`]).

pub mod bearer;
pub mod binding;
pub mod blob_snapshot;
pub mod cache;
pub mod claims;
pub mod dpop;
pub mod keys;
pub mod keystore;
pub mod policy;
pub mod replay_table;
pub mod rules;
pub mod snapshot;
pub mod step_up;
pub mod tenant;
pub mod token;
pub mod verify;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;
use serde_json::Value;

pub use claims::{Claims, Organization};
pub use keystore::KeyStore;

use crate::config::{self, AuthConfig, TenantAllowList};
use crate::error::{AuthError, ChallengeContext, TokenRejection};
use cache::TokenCache;
use keystore::KeyError;

/// Verifies bearer tokens against the configured issuers, audiences and algorithms.
#[derive(Debug)]
pub struct Authenticator {
    issuers: Vec<Arc<KeyStore>>,
    /// Accepted audiences, per issuer (index-aligned with `issuers`).
    audiences: Vec<Vec<String>>,
    /// `{tenantid}` issuers: the template, per issuer (index-aligned with `issuers`).
    templates: Vec<Option<tenant::IssuerTemplate>>,
    /// `AUTH_TENANTS`; `Only(empty)` (no tenant) when no issuer is a template.
    tenants: TenantAllowList,
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
    /// Decision-log reasons for an encrypted and an opaque token, naming the fix.
    diagnoses: [String; 2],
    /// Bound on one start-up read of a blob snapshot.
    http_timeout: Duration,
    /// Strict DPoP single use across instances (`AUTH_DPOP_REPLAY_STORE=table`).
    replay_table: Option<replay_table::ReplayTable>,
    /// The first configured issuer, for the OpenAPI document's token scheme.
    first_issuer: Option<config::IssuerConfig>,
}

/// The one start-up line saying where scale-out state lives on this plan:
/// `snapshots=home|blob|temp|dir|off` and `replay=memory|table` (the DPoP `jti` cache per
/// instance, or also Table storage shared by all).
fn log_scale_out_state(config: &AuthConfig, dir: Option<&std::path::Path>, blob: bool) {
    let snapshots = match (&config.snapshots, dir) {
        (_, None) if blob => "blob",
        (_, None) => "off",
        (config::SnapshotDir::Dir(_), Some(_)) => "dir",
        (config::SnapshotDir::Default { app_service: Some(home) }, Some(dir)) if home == dir => "home",
        (_, Some(_)) => "temp",
    };
    tracing::info!(
        plan = config.hosting.name(),
        shared_home = config.hosting.shared_home(),
        snapshots,
        replay = match config.replay_store {
            config::ReplayStore::Memory => "memory",
            config::ReplayStore::Table(_) => "table",
        },
        "scale-out state"
    );
}

impl Authenticator {
    /// Builds the key stores (one HTTP client shared by all) and loads usable key set
    /// snapshots from disk; nothing is fetched yet.
    pub fn new(config: &AuthConfig) -> Result<Self, String> {
        Self::build(config, None)
    }

    /// [`Authenticator::new`] with `storage` as the HTTP client for the storage account only
    /// (blob snapshots, the table replay store and the managed identity endpoint), such as
    /// one that trusts a test CA for an emulator. Key sets and discovery keep the built-in
    /// client and its roots: this never widens whom the issuer's keys are trusted from.
    pub fn with_storage_client(config: &AuthConfig, storage: reqwest::Client) -> Result<Self, String> {
        Self::build(config, Some(storage))
    }

    fn build(config: &AuthConfig, storage: Option<reqwest::Client>) -> Result<Self, String> {
        let client = keystore::http_client(&config.jwks);
        let storage = storage.unwrap_or_else(|| client.clone());
        let snapshots = snapshot::resolve(&config.snapshots);
        let blob = match &config.snapshots {
            config::SnapshotDir::Blob(blob) => Some(Arc::new(blob_snapshot::BlobSnapshots::new(
                crate::storage::BlobClient::new(blob.account.clone(), storage.clone()),
                blob.secret.clone(),
            ))),
            _ => None,
        };
        log_scale_out_state(config, snapshots.as_deref(), blob.is_some());
        let issuers = config
            .issuers
            .iter()
            .map(|issuer| {
                let store = KeyStore::new(issuer, config.jwks, client.clone())?;
                let store = match &snapshots {
                    Some(dir) => store.with_snapshots(dir.clone()),
                    None => store,
                };
                Ok(Arc::new(match &blob {
                    Some(blob) => store.with_blob_snapshots(blob.clone()),
                    None => store,
                }))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let templates =
            config.issuers.iter().map(|i| tenant::IssuerTemplate::parse(&i.issuer)).collect::<Result<Vec<_>, _>>()?;
        let tenants = match (&config.tenants, templates.iter().any(Option::is_some)) {
            (Some(tenants), _) => tenants.clone(),
            // Fail closed: a template without an allow-list admits no tenant at all.
            (None, true) => return Err("AUTH_ISSUER holds {tenantid}, so AUTH_TENANTS is required".into()),
            (None, false) => TenantAllowList::Only(Vec::new()),
        };
        Ok(Self {
            first_issuer: config.issuers.first().cloned(),
            templates,
            tenants,
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
            diagnoses: diagnoses(config),
            http_timeout: config.jwks.http_timeout,
            replay_table: match &config.replay_store {
                config::ReplayStore::Memory => None,
                config::ReplayStore::Table(account) => Some(replay_table::ReplayTable::new(
                    crate::storage::TableClient::new(crate::storage::StorageAccount::clone(account), storage),
                )),
            },
        })
    }

    /// The decision-log reason for a token that is no JWS at all, saying what it is and what
    /// to do (the log's, never the client's: their answer stays the fixed RFC 6750 text);
    /// `None` for other rejections.
    pub fn diagnosis(&self, rejection: TokenRejection) -> Option<&str> {
        match rejection {
            TokenRejection::Encrypted => Some(&self.diagnoses[0]),
            TokenRejection::Opaque => Some(&self.diagnoses[1]),
            _ => None,
        }
    }

    /// Reads key set snapshots kept in the storage account (`AUTH_JWKS_SNAPSHOT_DIR=blob`),
    /// one issuer after the other, each bounded by the HTTP timeout: at start-up, before the
    /// refreshers and before serving. Does nothing for file snapshots (read in [`Authenticator::new`]).
    pub async fn load_shared_snapshots(&self) {
        for store in &self.issuers {
            let _ = tokio::time::timeout(self.http_timeout, store.load_blob_snapshot()).await;
        }
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

    /// The first configured issuer (the one the OpenAPI document describes).
    pub fn first_issuer(&self) -> Option<&config::IssuerConfig> {
        self.first_issuer.as_ref()
    }

    /// The issuers a client can get tokens from, for RFC 9728's `authorization_servers`:
    /// each configured issuer, except that a `{tenantid}` template, which is no issuer a
    /// client can discover, stands for the issuer of each tenant `AUTH_TENANTS` lists, or
    /// for Entra's `organizations` issuer when it allows any tenant.
    pub fn authorization_servers(&self) -> Vec<String> {
        let mut servers: Vec<String> = Vec::new();
        for (store, template) in self.issuers.iter().zip(&self.templates) {
            let issuers = match (template, &self.tenants) {
                (None, _) => vec![store.issuer().to_owned()],
                (Some(template), TenantAllowList::Only(tenants)) => {
                    tenants.iter().map(|t| template.with_tenant(t)).collect()
                }
                (Some(template), TenantAllowList::Any) => vec![template.with_tenant(tenant::DISCOVERY_TENANT)],
            };
            for issuer in issuers {
                if !servers.contains(&issuer) {
                    servers.push(issuer);
                }
            }
        }
        servers
    }

    /// Where `issuer`'s keys came from and whether its last refresh worked (the decision
    /// line's `keys` field).
    pub fn key_freshness(&self, issuer: &str) -> keystore::Freshness {
        let template_of = |i: usize| self.templates[i].as_ref().is_some_and(|t| t.tenant_of(issuer).is_some());
        let index = self
            .issuers
            .iter()
            .position(|s| s.issuer() == issuer)
            .or_else(|| (0..self.issuers.len()).find(|i| template_of(*i)));
        index.map_or(keystore::Freshness::None, |i| self.issuers[i].freshness())
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
        // checked with B's keys, and an unknown issuer costs no network request. A
        // `{tenantid}` issuer is chosen only for an allowed tenant whose `tid` is the one in
        // `iss`, so a foreign or inconsistent tenant costs no key lookup either.
        // A template is never an exact issuer: a token whose `iss` is the literal template
        // must not skip the tenant checks.
        let exact = |i: &usize| self.templates[*i].is_none() && self.issuers[*i].issuer() == issuer;
        let store_index = match (0..self.issuers.len()).find(exact) {
            Some(index) => index,
            None => self.template_for(issuer, &parsed.payload).map_err(invalid)?,
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
        let configured = self.issuers[store_index].issuer();
        let template = (configured != issuer).then(|| configured.to_owned());
        let issuer = issuer.clone();
        let key_id = key.kid.clone();
        let claims = Claims::from_verified(issuer, audiences, expires_at, key_id, parsed.payload);
        let claims = Arc::new(match template {
            Some(template) => claims.with_issuer_template(template),
            None => claims,
        });
        self.cache.insert(token, claims.clone(), store_index, key, expires_at, now);
        Ok(claims)
    }
}

impl Authenticator {
    /// The `{tenantid}` issuer `iss` belongs to, judged on the unverified payload: its shape,
    /// its `tid`, and `AUTH_TENANTS`. No template fits: an untrusted issuer.
    fn template_for(&self, iss: &str, payload: &serde_json::Map<String, Value>) -> Result<usize, TokenRejection> {
        for (index, template) in self.templates.iter().enumerate() {
            if let Some(template) = template
                && template.admits(iss, payload, &self.tenants)?
            {
                return Ok(index);
            }
        }
        Err(TokenRejection::WrongIssuer)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The reasons [`Authenticator::diagnosis`] gives: an encrypted (five-part JWE) or opaque
/// token is what Auth0 issues when the client's token request names no `audience` (or one
/// that is not an API), so the fix is to ask for one of the configured audiences.
fn diagnoses(config: &AuthConfig) -> [String; 2] {
    let mut audiences: Vec<&str> = Vec::new();
    let configured = config.issuers.iter().flat_map(|i| i.audiences.as_deref().unwrap_or(&config.audiences));
    for audience in configured.chain(&config.audiences) {
        if !audiences.contains(&audience.as_str()) {
            audiences.push(audience);
        }
    }
    let fix = match audiences.as_slice() {
        [] => "request the token with the API's audience".to_owned(),
        [one] => format!("request the token with audience={one}"),
        many => format!("request the token with audience={}", many.join(" or audience=")),
    };
    let why = "what Auth0 issues when the token request names no API audience";
    [format!("encrypted token (five-part JWE, {why}): {fix}"), format!("opaque token, not a JWT ({why}): {fix}")]
}
