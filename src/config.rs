//! Settings, read once at start-up from environment variables (App Settings in Azure,
//! `local.settings.json` `Values` under `func start`). Every error names the variable.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `FUNCTIONS_CUSTOMHANDLER_PORT` | `FUNCTIONS_HTTPWORKER_PORT`, then `8080` | loopback port to listen on (set by the host) |
//! | `FUNCTIONS_APP_ROOT_PATH` | current directory | app root holding `host.json` and `*/function.json` (set by the host) |
//! | `AUTH0_DOMAIN` | – | Auth0 tenant host; issuer `https://DOMAIN/`, keys `https://DOMAIN/.well-known/jwks.json` |
//! | `AUTH_ISSUER` | – | OIDC issuer URL(s), comma-separated, each optionally followed by `\|aud1\|aud2` (its own audiences); keys found through discovery (exclusive with `AUTH0_DOMAIN`). An issuer may hold `{tenantid}` once, as a path segment (multi-tenant Entra ID: `https://login.microsoftonline.com/{tenantid}/v2.0`): tokens then carry their tenant's issuer, must have it match their `tid`, and need `AUTH_TENANTS`; its keys come from the discovery document with `organizations` in place of `{tenantid}` |
//! | `AUTH_TENANTS` | required with a `{tenantid}` issuer | tenant ids (`tid`) a `{tenantid}` issuer accepts, comma-separated, or `any`; only with such an issuer |
//! | `AUTH_AUDIENCE` | required unless every issuer lists its own | accepted audiences, comma-separated, any-of |
//! | `AUTH_JWKS_URI` | from the issuer | key set URL override (single issuer only) |
//! | `AUTH_PUBLIC_KEY` | – | PEM certificate or public key used instead of a key set (single issuer only) |
//! | `AUTH_ALGORITHMS` | `RS256` | allowed signature algorithms (RS*, PS*, ES256, ES384, EdDSA; `Ed25519`, RFC 9864's name, is the same as `EdDSA`) |
//! | `AUTH_CLOCK_SKEW_SECONDS` | `30` | leeway for `exp`, `nbf`, `iat` (0–300), and `auth_time` under a function's `maxAge` |
//! | `AUTH_REALM` | `api` | realm in `WWW-Authenticate` challenges |
//! | `AUTH_MAX_TOKEN_BYTES` | `8192` | longest bearer token read; longer ones are rejected unparsed |
//! | `AUTH_JWKS_REFRESH_SECONDS` | `600` | background key set refresh period |
//! | `AUTH_JWKS_COOLDOWN_SECONDS` | `30` | least time between two fetches caused by an unknown `kid` |
//! | `AUTH_JWKS_MAX_STALE_SECONDS` | `86400` | how long keys keep serving after the last successful fetch |
//! | `AUTH_JWKS_SNAPSHOT_DIR` | `auto` | where the last good key set of each issuer is kept, loaded at start-up when the issuer cannot be reached yet: `auto` (`$HOME/data/azfn-auth` where the plan shares `$HOME` between instances, else `blob` when `AzureWebJobsStorage` (a connection string or an identity-based connection) and `AUTH_SNAPSHOT_SECRET` are set, else the OS temp dir), `blob` (the `azfn-auth-snapshots` container of `AzureWebJobsStorage`), a folder, or `off` |
//! | `AUTH_SNAPSHOT_SECRET` | – | HMAC key (32+ characters) sealing blob snapshots, the same on every instance; a blob that fails the check is refused |
//! | `AzureWebJobsStorage` | – | the app's storage account (set by the platform), for blob snapshots and table replay: a Shared Key connection string or `UseDevelopmentStorage=true`; when set it wins over the identity-based settings below, as in the host |
//! | `AzureWebJobsStorage__accountName` | – | identity-based connection: the account, reached at `https://NAME.blob.core.windows.net` and `https://NAME.table.core.windows.net` with the app's managed identity |
//! | `AzureWebJobsStorage__blobServiceUri`, `__tableServiceUri` | from `__accountName` | identity-based connection: the service URIs (https only), which win over the account name |
//! | `AzureWebJobsStorage__credential` | `managedidentity` | identity-based connection: only `managedidentity` (service principal settings `__clientSecret`/`__clientCertificate` are refused) |
//! | `AzureWebJobsStorage__clientId` | system-assigned | identity-based connection: the client id of a user-assigned managed identity |
//! | `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` | set by the platform | the managed identity token endpoint and its secret (App Service and Functions set both when the app has an identity); required by an identity-based connection; the header is never logged |
//! | `AUTH_HTTP_TIMEOUT_SECONDS` | `5` | total time for one key set or discovery request (connect: at most 2 s) |
//! | `AUTH_TOKEN_CACHE_SECONDS` | `300` | longest time a verified token is remembered (0 disables the cache) |
//! | `AUTH_TOKEN_CACHE_ENTRIES` | `1000` | most verified tokens remembered |
//! | `AUTH_REQUIRE_AT_JWT` | `false` | accept only RFC 9068 access tokens (`typ: at+jwt`) |
//! | `AUTH_RESOURCE` | – | this API's resource identifier (https URL); publishes RFC 9728 metadata when set |
//! | `AUTH_DPOP` | `allowed` | DPoP (RFC 9449): `allowed` (Bearer and DPoP; `cnf.jkt` tokens only with DPoP), `required` (Bearer refused), `off`; `auth.json` `"dpop"` overrides per function |
//! | `AUTH_PUBLIC_URL` | – | this app's public origin(s), comma-separated (`https://my-app.azurewebsites.net`): DPoP `htu` is one of them plus the request path, never the `Host` header; DPoP needs it |
//! | `AUTH_DPOP_ALGORITHMS` | `ES256,RS256,PS256,EdDSA` | accepted DPoP proof algorithms (asymmetric only); `EdDSA` and `Ed25519` (RFC 9864) name the same one, and proofs labelled either way are accepted |
//! | `AUTH_DPOP_MAX_AGE_SECONDS` | `300` | oldest DPoP proof accepted (`iat`); `AUTH_CLOCK_SKEW_SECONDS` ahead (1–3600) |
//! | `AUTH_DPOP_REPLAY_CACHE_ENTRIES` | `100000` | most DPoP proof ids (`jti`) remembered, per instance; when full of live ones, new proofs get 503 |
//! | `AUTH_DPOP_REPLAY_STORE` | `memory` | `table`: strict DPoP single use across instances: each proof is also recorded in Table storage of `AzureWebJobsStorage` (one insert per DPoP request; storage errors refuse with 503) |
//! | `AUTH_DPOP_NONCE_SECRET` | – | turns on server nonces: HMAC key (32+ characters) shared by all instances |
//! | `AUTH_CLIENT_CERT_HEADER` | – | header carrying the client certificate (base64 DER, App Service: `X-ARR-ClientCert`) for `cnf.x5t#S256` tokens (RFC 8705); unset: such tokens are refused |
//! | `HANDLER_MAX_BODY_BYTES` | `1048576` | largest request body a function reads unless its `auth.json` sets `maxBodyBytes`; bodies stream to handlers either way |

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use reqwest::Url;

use crate::hosting::HostingPlan;

/// A setting that is missing or malformed; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it (never its value when it may be secret).
    pub problem: String,
}

fn bad(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

/// Everything the handler needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port on 127.0.0.1 the host will call.
    pub port: u16,
    /// Folder with `host.json` and the function folders.
    pub app_root: PathBuf,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Token validation settings.
    pub auth: AuthConfig,
}

/// Where an issuer's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `<issuer>/.well-known/openid-configuration` names the key set.
    Discovery,
    /// A key set URL given directly (Auth0 shorthand or `AUTH_JWKS_URI`).
    JwksUri(Url),
    /// A PEM certificate or public key, fixed for the process lifetime.
    StaticPem(String),
}

/// One trusted token issuer.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// Exact `iss` value tokens must carry.
    pub issuer: String,
    /// Where its keys come from.
    pub keys: KeySource,
    /// Audiences accepted from this issuer; `None` means [`AuthConfig::audiences`].
    pub audiences: Option<Vec<String>>,
}

/// Timing and size bounds for fetching signing keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksSettings {
    /// Background refresh period. Longer means removed keys are honoured for longer.
    pub refresh: Duration,
    /// Least time between fetches caused by an unknown `kid`. Shorter lets a flood of
    /// random kids cost the identity provider more requests.
    pub cooldown: Duration,
    /// How long keys keep serving after the last successful fetch while the provider is down.
    /// Longer rides out longer outages but also keeps a revoked key alive for longer.
    pub max_stale: Duration,
    /// Total time for one fetch; bounds how long a request can wait on the provider.
    pub http_timeout: Duration,
    /// Time to establish the TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Largest key set or discovery document read; bigger answers are refused.
    pub max_response_bytes: usize,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(600),
            cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(86_400),
            http_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_response_bytes: 256 * 1024,
        }
    }
}

/// Where the last good key set of each issuer is kept on disk (`AUTH_JWKS_SNAPSHOT_DIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotDir {
    /// No snapshots: each new process waits for the issuer before it can verify a token.
    Off,
    /// This folder, as configured.
    Dir(PathBuf),
    /// The default: `app_service` (`$HOME/data/azfn-auth`, shared by the app's instances
    /// where `$HOME` is the content share) when the plan shares `$HOME` and it is writable,
    /// else a per-user folder under the OS temp dir (survives a worker restart on one instance).
    Default {
        /// `$HOME/data/azfn-auth` when the plan shares `$HOME` ([`HostingPlan::shared_home`]).
        app_service: Option<PathBuf>,
    },
    /// Blobs in the app's storage account, sealed with `AUTH_SNAPSHOT_SECRET`.
    Blob(Box<crate::auth::blob_snapshot::BlobSnapshotConfig>),
}

/// Tenants a `{tenantid}` issuer accepts (`AUTH_TENANTS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantAllowList {
    /// `any`: every tenant (the app's own checks, such as `clients`, must then narrow it).
    Any,
    /// Only these tenant ids, compared exactly.
    Only(Vec<String>),
}

/// What a token must satisfy.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Trusted issuers (at least one).
    pub issuers: Vec<IssuerConfig>,
    /// Accepted audiences, any-of, for issuers that do not list their own.
    pub audiences: Vec<String>,
    /// Allowed signature algorithms; never `none` or HMAC.
    pub algorithms: Vec<Algorithm>,
    /// Leeway applied to `exp`, `nbf` and `iat`.
    pub clock_skew: Duration,
    /// Realm named in challenges.
    pub realm: String,
    /// Longest token read before rejecting it unparsed.
    pub max_token_bytes: usize,
    /// Key fetching bounds.
    pub jwks: JwksSettings,
    /// Longest time a verified token is cached; zero disables the cache.
    pub token_cache_ttl: Duration,
    /// Most cached verified tokens.
    pub token_cache_entries: usize,
    /// Accept only RFC 9068 access tokens (`typ: at+jwt`), so ID tokens never pass.
    pub require_access_token_type: bool,
    /// Resource identifier for RFC 9728 metadata; `None` publishes none.
    pub resource: Option<Url>,
    /// Where key set snapshots are written and read.
    pub snapshots: SnapshotDir,
    /// DPoP (RFC 9449) settings.
    pub dpop: crate::auth::dpop::DpopSettings,
    /// Header carrying the client certificate for `cnf.x5t#S256` tokens; `None` refuses them.
    pub client_cert_header: Option<http::HeaderName>,
    /// Tenants accepted by `{tenantid}` issuers (`AUTH_TENANTS`); `None` when there is none.
    pub tenants: Option<TenantAllowList>,
    /// The plan this process runs on (for where scale-out state lives).
    pub hosting: HostingPlan,
    /// Where DPoP proof ids are recorded (`AUTH_DPOP_REPLAY_STORE`).
    pub replay_store: ReplayStore,
}

/// Where DPoP proof ids (`jti`, hashed) are recorded against replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayStore {
    /// This instance's memory only: a proof may be replayed once to each other instance.
    Memory,
    /// Also Table storage in this account, shared by every instance: strict single use.
    Table(Box<crate::storage::StorageAccount>),
}

impl AuthConfig {
    /// A configuration for one issuer with every other setting at its default.
    pub fn new(issuer: impl Into<String>, keys: KeySource, audiences: Vec<String>) -> Self {
        Self {
            issuers: vec![IssuerConfig { issuer: issuer.into(), keys, audiences: None }],
            audiences,
            algorithms: vec![Algorithm::RS256],
            clock_skew: Duration::from_secs(30),
            realm: "api".to_owned(),
            max_token_bytes: 8192,
            jwks: JwksSettings::default(),
            token_cache_ttl: Duration::from_secs(300),
            token_cache_entries: 1_000,
            require_access_token_type: false,
            resource: None,
            snapshots: SnapshotDir::Off,
            dpop: crate::auth::dpop::DpopSettings::default(),
            client_cert_header: None,
            tenants: None,
            hosting: HostingPlan::Local,
            replay_store: ReplayStore::Memory,
        }
    }
}

/// Default port when run outside the Functions host.
pub const DEFAULT_PORT: u16 = 8080;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable's value, or `None` when unset).
    /// Empty values count as unset, as App Settings cannot always be deleted.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let port = match (get("FUNCTIONS_CUSTOMHANDLER_PORT"), get("FUNCTIONS_HTTPWORKER_PORT")) {
            (Some(v), _) => parse_port("FUNCTIONS_CUSTOMHANDLER_PORT", &v)?,
            (None, Some(v)) => parse_port("FUNCTIONS_HTTPWORKER_PORT", &v)?,
            (None, None) => DEFAULT_PORT,
        };
        let app_root = match get("FUNCTIONS_APP_ROOT_PATH") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_dir().map_err(|e| {
                bad("FUNCTIONS_APP_ROOT_PATH", format!("not set and the current directory is unreadable: {e}"))
            })?,
        };
        let max_body_bytes = number(&get, "HANDLER_MAX_BODY_BYTES", 1024 * 1024, 1024, 100 * 1024 * 1024)?;

        let issuers = issuers(&get)?;
        let tenants = tenants(&get, &issuers)?;
        let audiences = list(get("AUTH_AUDIENCE"));
        if audiences.is_empty() && issuers.iter().any(|i| i.audiences.is_none()) {
            return Err(bad("AUTH_AUDIENCE", "required: the API identifier(s) tokens must be issued for"));
        }
        let algorithms = algorithms("AUTH_ALGORITHMS", get("AUTH_ALGORITHMS"), &[Algorithm::RS256])?;
        let clock_skew = Duration::from_secs(number(&get, "AUTH_CLOCK_SKEW_SECONDS", 30, 0, 300)? as u64);
        let realm = get("AUTH_REALM").unwrap_or_else(|| "api".to_owned());
        if realm.contains(['"', '\\']) || !realm.is_ascii() || realm.chars().any(|c| c.is_ascii_control()) {
            return Err(bad("AUTH_REALM", "must be printable ASCII without quotes or backslashes"));
        }
        let max_token_bytes = number(&get, "AUTH_MAX_TOKEN_BYTES", 8192, 512, 65_536)?;

        let defaults = JwksSettings::default();
        let seconds = |name: &'static str, default: Duration, min: usize, max: usize| {
            number(&get, name, default.as_secs() as usize, min, max).map(|s| Duration::from_secs(s as u64))
        };
        let jwks = JwksSettings {
            refresh: seconds("AUTH_JWKS_REFRESH_SECONDS", defaults.refresh, 10, 86_400)?,
            cooldown: seconds("AUTH_JWKS_COOLDOWN_SECONDS", defaults.cooldown, 0, 3_600)?,
            max_stale: seconds("AUTH_JWKS_MAX_STALE_SECONDS", defaults.max_stale, 10, 7 * 86_400)?,
            http_timeout: seconds("AUTH_HTTP_TIMEOUT_SECONDS", defaults.http_timeout, 1, 30)?,
            ..defaults
        };
        if jwks.max_stale < jwks.refresh {
            return Err(bad(
                "AUTH_JWKS_MAX_STALE_SECONDS",
                "must be at least AUTH_JWKS_REFRESH_SECONDS, or keys would expire between refreshes",
            ));
        }
        let token_cache_ttl = seconds("AUTH_TOKEN_CACHE_SECONDS", Duration::from_secs(300), 0, 86_400)?;
        let token_cache_entries = number(&get, "AUTH_TOKEN_CACHE_ENTRIES", 1_000, 1, 1_000_000)?;
        let require_access_token_type = boolean(&get, "AUTH_REQUIRE_AT_JWT")?;
        let resource = get("AUTH_RESOURCE").map(|r| check_url("AUTH_RESOURCE", &r)).transpose()?;
        let hosting = HostingPlan::detect(get);
        let snapshots = snapshot_dir(&get, hosting)?;
        let replay_store = replay_store(&get)?;
        let dpop = dpop_settings(&get)?;
        let client_cert_header = client_cert_header(&get)?;

        Ok(Self {
            port,
            app_root,
            max_body_bytes,
            auth: AuthConfig {
                issuers,
                audiences,
                algorithms,
                clock_skew,
                realm,
                max_token_bytes,
                jwks,
                token_cache_ttl,
                token_cache_entries,
                require_access_token_type,
                resource,
                snapshots,
                dpop,
                client_cert_header,
                tenants,
                hosting,
                replay_store,
            },
        })
    }
}

/// `AUTH_TENANTS`: required exactly when an issuer is a `{tenantid}` template, so a
/// multi-tenant issuer is never open to every tenant by omission.
fn tenants(
    get: &impl Fn(&str) -> Option<String>,
    issuers: &[IssuerConfig],
) -> Result<Option<TenantAllowList>, ConfigError> {
    use crate::auth::tenant;
    let templated = issuers.iter().any(|i| i.issuer.contains(tenant::PLACEHOLDER));
    let names = list(get("AUTH_TENANTS"));
    match (templated, names.is_empty()) {
        (false, true) => return Ok(None),
        (false, false) => {
            return Err(bad("AUTH_TENANTS", "set only with an AUTH_ISSUER holding {tenantid} (a multi-tenant issuer)"));
        }
        (true, true) => {
            return Err(bad(
                "AUTH_TENANTS",
                "required: AUTH_ISSUER holds {tenantid}, so list the tenant ids (tid) to accept, or the word any",
            ));
        }
        (true, false) => {}
    }
    if names.iter().any(|n| n.eq_ignore_ascii_case("any")) {
        return match names.len() {
            1 => Ok(Some(TenantAllowList::Any)),
            _ => Err(bad("AUTH_TENANTS", "any cannot be combined with tenant ids")),
        };
    }
    if names.iter().any(|n| !tenant::is_tenant_id(n)) {
        return Err(bad("AUTH_TENANTS", "tenant ids are letters, digits and '-' (the GUIDs tokens carry in tid)"));
    }
    Ok(Some(TenantAllowList::Only(names)))
}

/// `AUTH_JWKS_SNAPSHOT_DIR`: `auto` (or unset) follows the plan: a shared `$HOME` first,
/// then the storage account when it and the sealing secret are configured, else temp.
fn snapshot_dir(get: &impl Fn(&str) -> Option<String>, hosting: HostingPlan) -> Result<SnapshotDir, ConfigError> {
    match get("AUTH_JWKS_SNAPSHOT_DIR") {
        Some(v) if v.eq_ignore_ascii_case("off") => Ok(SnapshotDir::Off),
        Some(v) if v.eq_ignore_ascii_case("blob") => blob_snapshots(get).map(|blob| SnapshotDir::Blob(Box::new(blob))),
        Some(v) if !v.eq_ignore_ascii_case("auto") => Ok(SnapshotDir::Dir(PathBuf::from(v))),
        _ => {
            let home = get("HOME").filter(|_| hosting.shared_home());
            if home.is_none() && crate::storage::settings::configured(get) && get("AUTH_SNAPSHOT_SECRET").is_some() {
                return blob_snapshots(get).map(|blob| SnapshotDir::Blob(Box::new(blob)));
            }
            Ok(SnapshotDir::Default {
                app_service: home.map(|home| PathBuf::from(home).join("data").join("azfn-auth")),
            })
        }
    }
}

/// `AUTH_DPOP_REPLAY_STORE`: `memory` (default) or `table` (needs `AzureWebJobsStorage`:
/// a connection string or an identity-based connection with its table service). A table
/// store without usable credentials does not start: strict single use is never silently off.
fn replay_store(get: &impl Fn(&str) -> Option<String>) -> Result<ReplayStore, ConfigError> {
    const NAME: &str = "AUTH_DPOP_REPLAY_STORE";
    match get(NAME) {
        None => Ok(ReplayStore::Memory),
        Some(v) if v.eq_ignore_ascii_case("memory") => Ok(ReplayStore::Memory),
        Some(v) if v.eq_ignore_ascii_case("table") => {
            storage_account(get, crate::storage::settings::Service::Table, "AUTH_DPOP_REPLAY_STORE=table")
                .map(|account| ReplayStore::Table(Box::new(account)))
        }
        Some(_) => Err(bad(NAME, "must be memory or table")),
    }
}

/// The `AzureWebJobsStorage` account for `service`, read as the host reads it
/// ([`crate::storage::settings`]).
fn storage_account(
    get: &impl Fn(&str) -> Option<String>,
    service: crate::storage::settings::Service,
    feature: &str,
) -> Result<crate::storage::StorageAccount, ConfigError> {
    crate::storage::settings::account(get, service, feature).map_err(|e| bad(e.variable, e.problem))
}

/// `AzureWebJobsStorage` (a connection string or an identity-based connection with its blob
/// service) and `AUTH_SNAPSHOT_SECRET` for blob snapshots; both required.
fn blob_snapshots(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<crate::auth::blob_snapshot::BlobSnapshotConfig, ConfigError> {
    use crate::auth::blob_snapshot::{BlobSnapshotConfig, MIN_SECRET_BYTES, SnapshotSecret};
    let account = storage_account(get, crate::storage::settings::Service::Blob, "blob snapshots")?;
    let secret = match get("AUTH_SNAPSHOT_SECRET") {
        Some(secret) if secret.len() >= MIN_SECRET_BYTES => SnapshotSecret(secret.into_bytes()),
        Some(_) => return Err(bad("AUTH_SNAPSHOT_SECRET", "must be at least 32 characters (a random secret)")),
        None => return Err(bad("AUTH_SNAPSHOT_SECRET", "required for blob snapshots: the key that seals them")),
    };
    Ok(BlobSnapshotConfig { account, secret })
}

/// `AUTH_DPOP`, `AUTH_PUBLIC_URL` and `AUTH_DPOP_*`.
fn dpop_settings(get: &impl Fn(&str) -> Option<String>) -> Result<crate::auth::dpop::DpopSettings, ConfigError> {
    use crate::auth::dpop::{self, DpopMode, DpopSettings, NonceSecret};
    let defaults = DpopSettings::default();
    let mode = match get("AUTH_DPOP") {
        None => defaults.mode,
        Some(v) => DpopMode::parse(&v).ok_or_else(|| bad("AUTH_DPOP", "must be allowed, required or off"))?,
    };
    let mut public_origins = Vec::new();
    for origin in list(get("AUTH_PUBLIC_URL")) {
        check_url("AUTH_PUBLIC_URL", &origin)?;
        let Some(origin) = dpop::normalize_origin(&origin) else {
            return Err(bad(
                "AUTH_PUBLIC_URL",
                "each entry must be an origin (scheme://host[:port]) without path or query",
            ));
        };
        if !public_origins.contains(&origin) {
            public_origins.push(origin);
        }
    }
    if mode == DpopMode::Required && public_origins.is_empty() {
        return Err(bad("AUTH_PUBLIC_URL", "required when AUTH_DPOP is required: DPoP proofs name this URL"));
    }
    let algorithms = algorithms("AUTH_DPOP_ALGORITHMS", get("AUTH_DPOP_ALGORITHMS"), &defaults.algorithms)?;
    let max_age = number(get, "AUTH_DPOP_MAX_AGE_SECONDS", defaults.max_age.as_secs() as usize, 1, 3_600)?;
    let replay_entries = number(get, "AUTH_DPOP_REPLAY_CACHE_ENTRIES", defaults.replay_entries, 1_000, 10_000_000)?;
    let nonce_secret = match get("AUTH_DPOP_NONCE_SECRET") {
        None => None,
        Some(secret) if secret.len() < dpop::MIN_NONCE_SECRET_BYTES => {
            return Err(bad("AUTH_DPOP_NONCE_SECRET", "must be at least 32 characters (a random secret)"));
        }
        Some(secret) => Some(NonceSecret(secret.into_bytes())),
    };
    Ok(DpopSettings {
        mode,
        public_origins,
        algorithms,
        max_age: Duration::from_secs(max_age as u64),
        replay_entries,
        nonce_secret,
    })
}

/// `AUTH_CLIENT_CERT_HEADER`: a header name.
fn client_cert_header(get: &impl Fn(&str) -> Option<String>) -> Result<Option<http::HeaderName>, ConfigError> {
    get("AUTH_CLIENT_CERT_HEADER")
        .map(|name| {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad("AUTH_CLIENT_CERT_HEADER", "must be an HTTP header name such as X-ARR-ClientCert"))
        })
        .transpose()
}

fn parse_port(variable: &'static str, value: &str) -> Result<u16, ConfigError> {
    match value.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(bad(variable, "must be a TCP port number between 1 and 65535")),
    }
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    let Some(raw) = get(variable) else { return Ok(default) };
    match raw.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(variable, format!("must be a whole number from {min} to {max}"))),
    }
}

fn boolean(get: &impl Fn(&str) -> Option<String>, variable: &'static str) -> Result<bool, ConfigError> {
    match get(variable).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" || v == "1" => Ok(true),
        Some(v) if v == "false" || v == "0" => Ok(false),
        Some(_) => Err(bad(variable, "must be true or false")),
    }
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn issuers(get: &impl Fn(&str) -> Option<String>) -> Result<Vec<IssuerConfig>, ConfigError> {
    let jwks_uri = get("AUTH_JWKS_URI");
    let public_key = get("AUTH_PUBLIC_KEY");
    if jwks_uri.is_some() && public_key.is_some() {
        return Err(bad("AUTH_PUBLIC_KEY", "set either AUTH_PUBLIC_KEY or AUTH_JWKS_URI, not both"));
    }

    let mut issuers = match (get("AUTH0_DOMAIN"), get("AUTH_ISSUER")) {
        (Some(_), Some(_)) => {
            return Err(bad("AUTH_ISSUER", "set either AUTH0_DOMAIN or AUTH_ISSUER, not both"));
        }
        (None, None) => {
            return Err(bad("AUTH0_DOMAIN", "set AUTH0_DOMAIN (Auth0) or AUTH_ISSUER (any OpenID Connect issuer)"));
        }
        (Some(domain), None) => {
            let domain = domain.trim_end_matches('/');
            let valid =
                !domain.is_empty() && domain.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
            let base = Url::parse(&format!("https://{domain}/"))
                .ok()
                .filter(|u| valid && u.host_str().is_some() && u.path() == "/");
            let Some(base) = base else {
                return Err(bad(
                    "AUTH0_DOMAIN",
                    "must be a host name such as my-tenant.eu.auth0.com (no scheme or path)",
                ));
            };
            let jwks = base.join(".well-known/jwks.json").map_err(|e| bad("AUTH0_DOMAIN", e.to_string()))?;
            vec![IssuerConfig { issuer: base.to_string(), keys: KeySource::JwksUri(jwks), audiences: None }]
        }
        (None, Some(raw)) => {
            let names = list(Some(raw));
            let mut out = Vec::with_capacity(names.len());
            for entry in names {
                let mut fields = entry.split('|').map(str::trim);
                let issuer = fields.next().unwrap_or_default().to_owned();
                let own: Vec<String> = fields.map(str::to_owned).collect();
                if own.iter().any(String::is_empty) {
                    return Err(bad("AUTH_ISSUER", "an audience after '|' is empty"));
                }
                let template =
                    crate::auth::tenant::IssuerTemplate::parse(&issuer).map_err(|e| bad("AUTH_ISSUER", e))?;
                match template {
                    // The URL checks apply to what is fetched: the discovery tenant put in.
                    Some(t) => check_url("AUTH_ISSUER", &t.with_tenant(crate::auth::tenant::DISCOVERY_TENANT))?,
                    None => check_url("AUTH_ISSUER", &issuer)?,
                };
                if out.iter().any(|i: &IssuerConfig| i.issuer == issuer) {
                    return Err(bad("AUTH_ISSUER", "lists the same issuer twice"));
                }
                let audiences = (!own.is_empty()).then_some(own);
                out.push(IssuerConfig { issuer, keys: KeySource::Discovery, audiences });
            }
            out
        }
    };

    if jwks_uri.is_some() || public_key.is_some() {
        let variable = if jwks_uri.is_some() { "AUTH_JWKS_URI" } else { "AUTH_PUBLIC_KEY" };
        let [only] = issuers.as_mut_slice() else {
            return Err(bad(variable, "can only be used with a single issuer"));
        };
        if let Some(uri) = jwks_uri {
            only.keys = KeySource::JwksUri(check_url("AUTH_JWKS_URI", &uri)?);
        } else if let Some(pem) = public_key {
            let pem = pem_line_ends(&pem);
            crate::auth::keys::parse_pem(&pem, &crate::auth::keys::KeyPolicy::default())
                .map_err(|e| bad("AUTH_PUBLIC_KEY", e.to_string()))?;
            only.keys = KeySource::StaticPem(pem);
        }
    }
    Ok(issuers)
}

/// A PEM setting with `\n` line ends. App Settings cannot hold newlines easily, so a key often
/// arrives on one line with `\n` or (copied from Windows) `\r\n` escapes; a key file saved on
/// Windows or read with PowerShell's `Get-Content -Raw` has CRLF line ends.
fn pem_line_ends(value: &str) -> String {
    value.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\r\n", "\n")
}

/// Issuer and key URLs must be https, except on loopback hosts (tests, local issuers).
pub(crate) fn check_url(variable: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|_| bad(variable, "must be an absolute URL"))?;
    if !is_acceptable_url(&url) {
        return Err(bad(variable, "must be an https URL (http is allowed only for localhost/127.0.0.1)"));
    }
    Ok(url)
}

/// True for https URLs, and http URLs whose host is a loopback address.
pub(crate) fn is_acceptable_url(url: &Url) -> bool {
    if !url.username().is_empty() || url.password().is_some() || url.host().is_none() {
        return false;
    }
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// A comma-separated algorithm list (`variable`): public-key algorithms only, duplicates
/// dropped; `default` when empty.
fn algorithms(
    variable: &'static str,
    value: Option<String>,
    default: &[Algorithm],
) -> Result<Vec<Algorithm>, ConfigError> {
    let names = list(value);
    if names.is_empty() {
        return Ok(default.to_vec());
    }
    let mut out = Vec::new();
    for name in names {
        let alg = match crate::auth::keys::asymmetric_alg(&name) {
            Some(alg) => alg,
            None if name.eq_ignore_ascii_case("none") || name.to_ascii_uppercase().starts_with("HS") => {
                return Err(bad(variable, format!("{name} is never allowed with public keys")));
            }
            None => {
                return Err(bad(
                    variable,
                    format!(
                        "unknown algorithm {name:?}; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA or Ed25519"
                    ),
                ));
            }
        };
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    fn err(vars: &[(&str, &str)]) -> ConfigError {
        config(vars).expect_err("config should be rejected")
    }

    const BASE: [(&str, &str); 2] = [("AUTH0_DOMAIN", "tenant.eu.auth0.com"), ("AUTH_AUDIENCE", "https://api")];

    #[test]
    fn auth0_domain_gives_issuer_with_trailing_slash_and_jwks_url() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.auth.issuers.len(), 1);
        assert_eq!(c.auth.issuers[0].issuer, "https://tenant.eu.auth0.com/");
        assert_eq!(
            c.auth.issuers[0].keys,
            KeySource::JwksUri(Url::parse("https://tenant.eu.auth0.com/.well-known/jwks.json").unwrap())
        );
        assert_eq!(c.port, DEFAULT_PORT);
        assert_eq!(c.auth.algorithms, vec![Algorithm::RS256]);
        assert_eq!(c.auth.clock_skew, Duration::from_secs(30));
    }

    #[test]
    fn port_comes_from_custom_handler_then_legacy_variable() {
        let mut vars = BASE.to_vec();
        vars.push(("FUNCTIONS_HTTPWORKER_PORT", "4000"));
        assert_eq!(config(&vars).unwrap().port, 4000);
        vars.push(("FUNCTIONS_CUSTOMHANDLER_PORT", "5000"));
        assert_eq!(config(&vars).unwrap().port, 5000);
    }

    #[test]
    fn bad_port_names_the_variable() {
        let mut vars = BASE.to_vec();
        vars.push(("FUNCTIONS_CUSTOMHANDLER_PORT", "http"));
        assert_eq!(err(&vars).variable, "FUNCTIONS_CUSTOMHANDLER_PORT");
    }

    #[test]
    fn audience_is_required_and_split_on_commas() {
        assert_eq!(err(&[("AUTH0_DOMAIN", "t.auth0.com")]).variable, "AUTH_AUDIENCE");
        let c = config(&[("AUTH0_DOMAIN", "t.auth0.com"), ("AUTH_AUDIENCE", " a , b ,")]).unwrap();
        assert_eq!(c.auth.audiences, vec!["a", "b"]);
    }

    #[test]
    fn an_issuer_is_required_and_only_one_kind() {
        assert_eq!(err(&[("AUTH_AUDIENCE", "a")]).variable, "AUTH0_DOMAIN");
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_ISSUER", "https://login.example.com/"));
        assert_eq!(err(&vars).variable, "AUTH_ISSUER");
    }

    #[test]
    fn auth0_domain_must_be_a_bare_host() {
        for domain in ["https://t.auth0.com", "t.auth0.com/path", "t auth0", "user@t.auth0.com"] {
            assert_eq!(err(&[("AUTH0_DOMAIN", domain), ("AUTH_AUDIENCE", "a")]).variable, "AUTH0_DOMAIN", "{domain}");
        }
    }

    #[test]
    fn issuer_must_be_https_unless_loopback() {
        let rejected = ["http://login.example.com/", "ftp://x/", "not a url", "https://user:pw@x/"];
        for issuer in rejected {
            assert_eq!(err(&[("AUTH_ISSUER", issuer), ("AUTH_AUDIENCE", "a")]).variable, "AUTH_ISSUER", "{issuer}");
        }
        for issuer in [
            "https://login.example.com/tenant/v2.0",
            "http://127.0.0.1:9000/",
            "http://localhost:1/",
            "http://[::1]:2/",
        ] {
            let c = config(&[("AUTH_ISSUER", issuer), ("AUTH_AUDIENCE", "a")]).unwrap();
            assert_eq!(c.auth.issuers[0].issuer, issuer);
            assert_eq!(c.auth.issuers[0].keys, KeySource::Discovery);
        }
    }

    #[test]
    fn several_issuers_may_be_listed() {
        let c = config(&[("AUTH_ISSUER", "https://a.example/, https://b.example/"), ("AUTH_AUDIENCE", "x")]).unwrap();
        let names: Vec<_> = c.auth.issuers.iter().map(|i| i.issuer.as_str()).collect();
        assert_eq!(names, ["https://a.example/", "https://b.example/"]);
        let mut vars = vec![("AUTH_ISSUER", "https://a.example/, https://b.example/"), ("AUTH_AUDIENCE", "x")];
        vars.push(("AUTH_JWKS_URI", "https://a.example/keys"));
        assert_eq!(err(&vars).variable, "AUTH_JWKS_URI");
    }

    #[test]
    fn issuers_may_carry_their_own_audiences() {
        let c = config(&[("AUTH_ISSUER", "https://a.example/|api://a1|api://a2, https://b.example/")]);
        assert_eq!(c.unwrap_err().variable, "AUTH_AUDIENCE", "b has no audience of its own");
        let c = config(&[("AUTH_ISSUER", "https://a.example/|api://a1|api://a2, https://b.example/|api://b")]).unwrap();
        assert_eq!(c.auth.issuers[0].audiences, Some(vec!["api://a1".to_owned(), "api://a2".to_owned()]));
        assert_eq!(c.auth.issuers[1].audiences, Some(vec!["api://b".to_owned()]));
        assert!(c.auth.audiences.is_empty());
        let c = config(&[("AUTH_ISSUER", "https://a.example/|x, https://b.example/"), ("AUTH_AUDIENCE", "shared")])
            .unwrap();
        assert_eq!(c.auth.issuers[1].audiences, None);
        assert_eq!(err(&[("AUTH_ISSUER", "https://a.example/|"), ("AUTH_AUDIENCE", "x")]).variable, "AUTH_ISSUER");
    }

    #[test]
    fn jwks_uri_override_must_be_https() {
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_JWKS_URI", "http://keys.example.com/jwks.json"));
        assert_eq!(err(&vars).variable, "AUTH_JWKS_URI");
    }

    #[test]
    fn algorithms_never_include_none_or_hmac() {
        for algs in ["none", "HS256", "RS256,hs512", "RS999"] {
            let mut vars = BASE.to_vec();
            vars.push(("AUTH_ALGORITHMS", algs));
            assert_eq!(err(&vars).variable, "AUTH_ALGORITHMS", "{algs}");
        }
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_ALGORITHMS", "RS256, PS256,ES256"));
        assert_eq!(config(&vars).unwrap().auth.algorithms, vec![Algorithm::RS256, Algorithm::PS256, Algorithm::ES256]);
    }

    #[test]
    fn ed25519_is_the_rfc_9864_name_of_eddsa_in_both_algorithm_lists() {
        for variable in ["AUTH_ALGORITHMS", "AUTH_DPOP_ALGORITHMS"] {
            let mut vars = BASE.to_vec();
            vars.push((variable, "Ed25519,ES256,EdDSA"));
            let c = config(&vars).unwrap();
            let list = if variable == "AUTH_ALGORITHMS" { c.auth.algorithms } else { c.auth.dpop.algorithms };
            assert_eq!(list, vec![Algorithm::EdDSA, Algorithm::ES256], "{variable}");
        }
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_DPOP_ALGORITHMS", "Ed448"));
        let e = err(&vars);
        assert_eq!(e.variable, "AUTH_DPOP_ALGORITHMS");
        assert!(e.problem.contains("EdDSA or Ed25519"), "{}", e.problem);
    }

    const ENTRA_V2: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    #[test]
    fn a_tenantid_issuer_needs_auth_tenants_and_the_error_names_both() {
        let e = err(&[("AUTH_ISSUER", ENTRA_V2), ("AUTH_AUDIENCE", "api://orders")]);
        assert_eq!(e.variable, "AUTH_TENANTS");
        assert!(e.problem.contains("AUTH_ISSUER"), "{}", e.problem);
        let tenants = format!("{TID}, 9188040d-6c67-4c5b-b112-36a304b66dad");
        let c = config(&[("AUTH_ISSUER", ENTRA_V2), ("AUTH_AUDIENCE", "api://orders"), ("AUTH_TENANTS", &tenants)]);
        let c = c.unwrap();
        assert_eq!(c.auth.issuers[0].issuer, ENTRA_V2);
        assert_eq!(
            c.auth.tenants,
            Some(TenantAllowList::Only(vec![TID.to_owned(), "9188040d-6c67-4c5b-b112-36a304b66dad".to_owned()]))
        );
        let any = config(&[("AUTH_ISSUER", ENTRA_V2), ("AUTH_AUDIENCE", "a"), ("AUTH_TENANTS", "ANY")]).unwrap();
        assert_eq!(any.auth.tenants, Some(TenantAllowList::Any));
    }

    #[test]
    fn auth_tenants_is_checked_and_only_set_with_a_template() {
        for tenants in ["any, 72f988bf", "contoso.onmicrosoft.com", "a/b"] {
            let e = err(&[("AUTH_ISSUER", ENTRA_V2), ("AUTH_AUDIENCE", "a"), ("AUTH_TENANTS", tenants)]);
            assert_eq!(e.variable, "AUTH_TENANTS", "{tenants}");
        }
        let e = err(&[("AUTH_ISSUER", "https://login.example.com/"), ("AUTH_AUDIENCE", "a"), ("AUTH_TENANTS", TID)]);
        assert_eq!(e.variable, "AUTH_TENANTS");
        assert_eq!(config(&BASE).unwrap().auth.tenants, None);
    }

    #[test]
    fn issuer_templates_are_checked_naming_auth_issuer() {
        for issuer in [
            "https://login.microsoftonline.com/{tenantid}/{tenantid}/v2.0",
            "https://login.microsoftonline.com/{tenant}/v2.0",
            "https://{tenantid}.example.com/",
            "http://login.example.com/{tenantid}/",
        ] {
            let e = err(&[("AUTH_ISSUER", issuer), ("AUTH_AUDIENCE", "a"), ("AUTH_TENANTS", "any")]);
            assert_eq!(e.variable, "AUTH_ISSUER", "{issuer}");
        }
        let v1 = config(&[
            ("AUTH_ISSUER", "https://sts.windows.net/{tenantid}/"),
            ("AUTH_AUDIENCE", "a"),
            ("AUTH_TENANTS", TID),
        ]);
        assert_eq!(v1.unwrap().auth.issuers[0].issuer, "https://sts.windows.net/{tenantid}/");
    }

    #[test]
    fn clock_skew_is_bounded() {
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_CLOCK_SKEW_SECONDS", "301"));
        assert_eq!(err(&vars).variable, "AUTH_CLOCK_SKEW_SECONDS");
        vars.pop();
        vars.push(("AUTH_CLOCK_SKEW_SECONDS", "-1"));
        assert_eq!(err(&vars).variable, "AUTH_CLOCK_SKEW_SECONDS");
    }

    #[test]
    fn public_key_must_parse_and_excludes_jwks_uri() {
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"));
        assert_eq!(err(&vars).variable, "AUTH_PUBLIC_KEY");
        vars.push(("AUTH_JWKS_URI", "https://x/keys"));
        assert_eq!(err(&vars).variable, "AUTH_PUBLIC_KEY");
    }

    /// The committed test key with LF line ends, as `from_lookup` stores it.
    const PUBLIC_PEM: &str = include_str!("../tests/fixtures/rsa-a-pub.pem");

    fn stored_pem(value: &str) -> KeySource {
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_PUBLIC_KEY", value));
        config(&vars).unwrap().auth.issuers[0].keys.clone()
    }

    #[test]
    fn public_key_with_crlf_line_ends_is_stored_with_lf() {
        // A key file saved on Windows, or read with PowerShell's Get-Content -Raw.
        let crlf = PUBLIC_PEM.replace('\n', "\r\n");
        assert_eq!(stored_pem(&crlf), KeySource::StaticPem(PUBLIC_PEM.trim().to_owned()));
    }

    #[test]
    fn public_key_on_one_line_with_escaped_lf_is_accepted() {
        let escaped = PUBLIC_PEM.trim().replace('\n', "\\n");
        assert_eq!(stored_pem(&escaped), KeySource::StaticPem(PUBLIC_PEM.trim().to_owned()));
    }

    #[test]
    fn public_key_on_one_line_with_escaped_crlf_is_accepted() {
        let escaped = PUBLIC_PEM.trim().replace('\n', "\\r\\n");
        assert_eq!(stored_pem(&escaped), KeySource::StaticPem(PUBLIC_PEM.trim().to_owned()));
    }

    #[test]
    fn stale_window_shorter_than_refresh_is_rejected() {
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_JWKS_REFRESH_SECONDS", "600"));
        vars.push(("AUTH_JWKS_MAX_STALE_SECONDS", "60"));
        assert_eq!(err(&vars).variable, "AUTH_JWKS_MAX_STALE_SECONDS");
    }

    #[test]
    fn require_at_jwt_is_a_boolean() {
        let mut vars = BASE.to_vec();
        assert!(!config(&vars).unwrap().auth.require_access_token_type);
        vars.push(("AUTH_REQUIRE_AT_JWT", "TRUE"));
        assert!(config(&vars).unwrap().auth.require_access_token_type);
        vars.pop();
        vars.push(("AUTH_REQUIRE_AT_JWT", "yes please"));
        assert_eq!(err(&vars).variable, "AUTH_REQUIRE_AT_JWT");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_ALGORITHMS", ""));
        vars.push(("FUNCTIONS_CUSTOMHANDLER_PORT", " "));
        let c = config(&vars).unwrap();
        assert_eq!(c.port, DEFAULT_PORT);
        assert_eq!(c.auth.algorithms, vec![Algorithm::RS256]);
    }

    #[test]
    fn snapshot_dir_defaults_to_app_storage_on_app_service_and_can_be_off() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = BASE.to_vec();
            vars.extend_from_slice(extra);
            config(&vars).unwrap().auth.snapshots
        };
        assert_eq!(with(&[]), SnapshotDir::Default { app_service: None });
        assert_eq!(with(&[("HOME", "/home")]), SnapshotDir::Default { app_service: None });
        assert_eq!(
            with(&[("WEBSITE_INSTANCE_ID", "abc"), ("HOME", "/home")]),
            SnapshotDir::Default { app_service: Some(PathBuf::from("/home/data/azfn-auth")) }
        );
        assert_eq!(with(&[("AUTH_JWKS_SNAPSHOT_DIR", "OFF")]), SnapshotDir::Off);
        assert_eq!(with(&[("AUTH_JWKS_SNAPSHOT_DIR", "/srv/keys")]), SnapshotDir::Dir(PathBuf::from("/srv/keys")));
    }

    #[test]
    fn auto_snapshots_go_to_a_shared_home_else_the_storage_account_else_temp() {
        const SECRET: &str = "0123456789abcdef0123456789abcdef";
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = BASE.to_vec();
            vars.extend_from_slice(extra);
            config(&vars).map(|c| c.auth.snapshots)
        };
        let storage = [("AzureWebJobsStorage", "UseDevelopmentStorage=true"), ("AUTH_SNAPSHOT_SECRET", SECRET)];
        let flex = [("WEBSITE_SKU", "FlexConsumption"), ("HOME", "/home")];
        // Flex: no shared $HOME, so the storage account when it and the secret are set.
        assert!(matches!(with(&[flex[0], flex[1], storage[0], storage[1]]), Ok(SnapshotDir::Blob(_))));
        assert_eq!(with(&[flex[0], flex[1], storage[0]]).unwrap(), SnapshotDir::Default { app_service: None });
        assert_eq!(with(&flex).unwrap(), SnapshotDir::Default { app_service: None });
        // A shared $HOME (Linux Consumption with its content share) keeps the file.
        let share = [
            ("CONTAINER_NAME", "c"),
            ("HOME", "/home"),
            ("WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "x"),
            ("WEBSITE_CONTENTSHARE", "s"),
        ];
        let mut shared = share.to_vec();
        shared.extend_from_slice(&storage);
        assert_eq!(
            with(&shared).unwrap(),
            SnapshotDir::Default { app_service: Some(PathBuf::from("/home/data/azfn-auth")) }
        );
        assert!(matches!(
            with(&[("AUTH_JWKS_SNAPSHOT_DIR", "auto"), storage[0], storage[1]]),
            Ok(SnapshotDir::Blob(_))
        ));
    }

    #[test]
    fn dpop_replay_store_is_memory_unless_table_with_a_storage_account() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = BASE.to_vec();
            vars.extend_from_slice(extra);
            config(&vars).map(|c| c.auth.replay_store)
        };
        assert_eq!(with(&[]).unwrap(), ReplayStore::Memory);
        assert_eq!(with(&[("AUTH_DPOP_REPLAY_STORE", "Memory")]).unwrap(), ReplayStore::Memory);
        let table = ("AUTH_DPOP_REPLAY_STORE", "table");
        assert_eq!(with(&[table]).unwrap_err().variable, "AzureWebJobsStorage");
        assert!(matches!(
            with(&[table, ("AzureWebJobsStorage", "UseDevelopmentStorage=true")]),
            Ok(ReplayStore::Table(_))
        ));
        assert_eq!(with(&[("AUTH_DPOP_REPLAY_STORE", "redis")]).unwrap_err().variable, "AUTH_DPOP_REPLAY_STORE");
    }

    const PLATFORM_IDENTITY: [(&str, &str); 2] =
        [("IDENTITY_ENDPOINT", "http://localhost:8081/msi/token"), ("IDENTITY_HEADER", "platform-secret")];

    #[test]
    fn auto_snapshots_pick_blob_for_an_identity_based_connection_as_for_a_connection_string() {
        const SECRET: &str = "0123456789abcdef0123456789abcdef";
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = BASE.to_vec();
            vars.extend_from_slice(&[("WEBSITE_SKU", "FlexConsumption"), ("AUTH_SNAPSHOT_SECRET", SECRET)]);
            vars.extend_from_slice(extra);
            config(&vars).map(|c| c.auth.snapshots)
        };
        let name = ("AzureWebJobsStorage__accountName", "myflexapp");
        let Ok(SnapshotDir::Blob(blob)) = with(&[name, PLATFORM_IDENTITY[0], PLATFORM_IDENTITY[1]]) else {
            panic!("blob snapshots")
        };
        assert!(matches!(blob.account.credential, crate::storage::Credential::ManagedIdentity(_)));
        assert_eq!(blob.account.blob_endpoint.unwrap().as_str(), "https://myflexapp.blob.core.windows.net/");
        let uri = ("AzureWebJobsStorage__blobServiceUri", "https://myflexapp.blob.core.windows.net");
        assert!(matches!(with(&[uri, PLATFORM_IDENTITY[0], PLATFORM_IDENTITY[1]]), Ok(SnapshotDir::Blob(_))));
        // Chosen, so a missing identity endpoint is a start-up error, not a silent temp folder.
        let error = with(&[name]).unwrap_err();
        assert_eq!(error.variable, "IDENTITY_ENDPOINT");
        assert!(error.problem.contains("managed identity"), "{error}");
        // The platform's identity alone names no account: nothing changes.
        assert_eq!(with(&PLATFORM_IDENTITY).unwrap(), SnapshotDir::Default { app_service: None });
    }

    #[test]
    fn a_table_replay_store_without_reachable_credentials_does_not_start() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = BASE.to_vec();
            vars.push(("AUTH_DPOP_REPLAY_STORE", "table"));
            vars.extend_from_slice(extra);
            config(&vars).map(|c| c.auth.replay_store)
        };
        let name = ("AzureWebJobsStorage__accountName", "myflexapp");
        let Ok(ReplayStore::Table(account)) = with(&[name, PLATFORM_IDENTITY[0], PLATFORM_IDENTITY[1]]) else {
            panic!("a table replay store")
        };
        assert_eq!(account.table_endpoint.unwrap().as_str(), "https://myflexapp.table.core.windows.net/");
        // (settings, variable named in the start-up error)
        let cases: [(&[(&'static str, &'static str)], &str); 5] = [
            (&[], "AzureWebJobsStorage"),
            (&[name], "IDENTITY_ENDPOINT"),
            (&[name, PLATFORM_IDENTITY[0]], "IDENTITY_HEADER"),
            (
                &[
                    ("AzureWebJobsStorage__blobServiceUri", "https://a.blob.core.windows.net"),
                    PLATFORM_IDENTITY[0],
                    PLATFORM_IDENTITY[1],
                ],
                "AzureWebJobsStorage__tableServiceUri",
            ),
            (
                &[
                    ("AzureWebJobsStorage__tableServiceUri", "http://a.table.core.windows.net"),
                    PLATFORM_IDENTITY[0],
                    PLATFORM_IDENTITY[1],
                ],
                "AzureWebJobsStorage__tableServiceUri",
            ),
        ];
        for (extra, variable) in cases {
            let error = with(extra).unwrap_err();
            assert_eq!(error.variable, variable, "{extra:?}: {error}");
            assert!(!error.problem.contains("platform-secret"));
        }
    }

    #[test]
    fn blob_snapshots_need_a_usable_connection_string_and_a_long_secret() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = BASE.to_vec();
            vars.push(("AUTH_JWKS_SNAPSHOT_DIR", "blob"));
            vars.extend_from_slice(extra);
            config(&vars).map(|c| c.auth.snapshots)
        };
        let secret = ("AUTH_SNAPSHOT_SECRET", "0123456789abcdef0123456789abcdef");
        assert_eq!(with(&[secret]).unwrap_err().variable, "AzureWebJobsStorage");
        let sas = ("AzureWebJobsStorage", "AccountName=a;SharedAccessSignature=sv=1");
        assert_eq!(with(&[sas, secret]).unwrap_err().variable, "AzureWebJobsStorage");
        let dev = ("AzureWebJobsStorage", "UseDevelopmentStorage=true");
        assert_eq!(with(&[dev]).unwrap_err().variable, "AUTH_SNAPSHOT_SECRET");
        let short = with(&[dev, ("AUTH_SNAPSHOT_SECRET", "short")]).unwrap_err();
        assert_eq!(short.variable, "AUTH_SNAPSHOT_SECRET");
        assert!(!short.problem.contains("short"), "never echoes the secret");
        assert!(matches!(with(&[dev, secret]), Ok(SnapshotDir::Blob(_))));
    }

    #[test]
    fn dpop_defaults_to_allowed_with_the_common_algorithms_and_no_origin() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.auth.dpop.mode, crate::auth::dpop::DpopMode::Allowed);
        assert!(c.auth.dpop.public_origins.is_empty());
        assert_eq!(
            c.auth.dpop.algorithms,
            vec![Algorithm::ES256, Algorithm::RS256, Algorithm::PS256, Algorithm::EdDSA]
        );
        assert_eq!(c.auth.dpop.max_age, Duration::from_secs(300));
        assert!(c.auth.dpop.nonce_secret.is_none());
        assert!(c.auth.client_cert_header.is_none());
    }

    #[test]
    fn dpop_required_without_public_url_names_auth_public_url() {
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_DPOP", "required"));
        assert_eq!(err(&vars).variable, "AUTH_PUBLIC_URL");
        vars.push(("AUTH_PUBLIC_URL", "https://My-App.azurewebsites.net, http://localhost:7071"));
        let c = config(&vars).unwrap();
        assert_eq!(c.auth.dpop.public_origins, ["https://my-app.azurewebsites.net", "http://localhost:7071"]);
    }

    #[test]
    fn dpop_settings_are_checked_and_errors_name_the_variable() {
        for (name, value) in [
            ("AUTH_DPOP", "on"),
            ("AUTH_PUBLIC_URL", "https://app.example/base"),
            ("AUTH_PUBLIC_URL", "http://app.example"),
            ("AUTH_PUBLIC_URL", "https://app.example/?q=1"),
            ("AUTH_DPOP_ALGORITHMS", "HS256"),
            ("AUTH_DPOP_ALGORITHMS", "none"),
            ("AUTH_DPOP_MAX_AGE_SECONDS", "0"),
            ("AUTH_DPOP_REPLAY_CACHE_ENTRIES", "10"),
            ("AUTH_DPOP_NONCE_SECRET", "short"),
            ("AUTH_CLIENT_CERT_HEADER", "bad header"),
        ] {
            let mut vars = BASE.to_vec();
            vars.push((name, value));
            let error = err(&vars);
            assert_eq!(error.variable, name, "{value}");
            assert!(!error.to_string().contains("short"), "secrets are never echoed");
        }
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_DPOP_ALGORITHMS", "ES256, RS256"));
        vars.push(("AUTH_DPOP_NONCE_SECRET", "0123456789abcdef0123456789abcdef"));
        vars.push(("AUTH_CLIENT_CERT_HEADER", "X-ARR-ClientCert"));
        let c = config(&vars).unwrap();
        assert_eq!(c.auth.dpop.algorithms, vec![Algorithm::ES256, Algorithm::RS256]);
        assert!(c.auth.dpop.nonce_secret.is_some());
        assert!(!format!("{c:?}").contains("0123456789abcdef"), "Debug never prints the nonce secret");
        assert_eq!(c.auth.client_cert_header.unwrap(), "x-arr-clientcert");
    }
}
