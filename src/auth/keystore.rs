//! One issuer's signing keys: fetched in the background, cached, refetched (single-flight,
//! rate-limited) when a token names an unknown `kid`, served stale for a bounded time while
//! the provider is down, then failing closed. With a snapshot folder, the last good key set
//! is kept on disk and a new process starts from it (`super::snapshot`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use serde::Deserialize;
use tracing::{debug, info, warn};

use super::blob_snapshot::{BlobSnapshots, Stored};
use super::keys::{KeyPolicy, KeySet, VerifyingKey, parse_jwks, parse_pem};
use super::snapshot::{self, Ignored, Snapshot};
use crate::config::{IssuerConfig, JwksSettings, KeySource, is_acceptable_url};

/// Why no key could be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Keys are loaded but none matches the token's `kid`.
    #[error("no key matches the token's key id")]
    UnknownKey,
    /// No usable keys at all: never fetched, or stale beyond the allowed window.
    #[error("signing keys are unavailable")]
    Unavailable,
}

/// Why a fetch failed (logged, never shown to clients).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection, TLS or timeout failure.
    #[error("request failed: {0}")]
    Transport(String),
    /// A non-200 answer (redirects are not followed).
    #[error("HTTP status {0}")]
    Status(u16),
    /// The answer exceeded the size cap.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// Not a JSON document of the expected shape.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The discovery document names another issuer.
    #[error("discovery document issuer does not match the configured issuer")]
    IssuerMismatch,
    /// The discovered key set URL is not https (or loopback http).
    #[error("discovered jwks_uri is not an https URL")]
    InsecureJwksUri,
    /// The key set holds no key this handler may use.
    #[error("key set contains no usable signing key")]
    NoUsableKeys,
}

/// Where the keys in use came from, and whether the last refresh worked: the `keys` field
/// of the decision line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Freshness {
    /// No keys yet (or a fixed PEM key, which needs no refresh).
    None = 0,
    /// The last fetch succeeded.
    Fresh = 1,
    /// The last fetch failed; keys from an earlier fetch serve within the stale window.
    Stale = 2,
    /// Keys from the on-disk snapshot; no fetch has succeeded in this process yet.
    Snapshot = 3,
}

impl Freshness {
    /// The decision line's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "-",
            Self::Fresh => "fresh",
            Self::Stale => "stale",
            Self::Snapshot => "snapshot",
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Fresh,
            2 => Self::Stale,
            3 => Self::Snapshot,
            _ => Self::None,
        }
    }
}

#[derive(Debug)]
struct State {
    keys: Arc<KeySet>,
    /// Until when the current keys may verify tokens (last success + the stale window);
    /// `None` before any keys were had.
    valid_until: Option<Instant>,
    last_attempt: Option<Instant>,
    /// Bumped on every fetch attempt; lets waiters see that a fetch happened while they waited.
    generation: u64,
    consecutive_failures: u32,
}

#[derive(Debug)]
enum Source {
    Static,
    Remote { discover: bool, jwks_uri: RwLock<Option<Url>> },
}

/// Cached signing keys of one issuer.
#[derive(Debug)]
pub struct KeyStore {
    issuer: String,
    source: Source,
    settings: JwksSettings,
    policy: KeyPolicy,
    client: reqwest::Client,
    state: RwLock<State>,
    /// Single-flight guard: held for the duration of one fetch so concurrent misses wait for
    /// its result instead of starting their own. The wait is bounded by `http_timeout`.
    fetch_lock: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
    /// A [`Freshness`], written under the state's write lock where the state changes, so the
    /// decision line of every request reads it without taking the lock.
    freshness: AtomicU8,
    snapshots: Option<Arc<SnapshotWriter>>,
    blob: Option<Arc<BlobWriter>>,
}

/// Writes key set snapshots to the storage account off the request path, one write at a
/// time per store and only the newest pending one; skipped while storage already holds
/// the same key set, young enough (so a refresh that changed nothing costs no call).
#[derive(Debug)]
struct BlobWriter {
    store: Arc<BlobSnapshots>,
    /// The newest snapshot not written yet, with its fetch generation.
    pending: Mutex<Option<(Snapshot, u64)>>,
    /// Set while a write task runs (it drains `pending`).
    running: AtomicBool,
    /// What storage is known to hold (read at start-up or written since): key set, URL, fetch time.
    known: Mutex<Option<(String, String, u64)>>,
    /// Set after the first failed write, so an unreachable account warns once, not every refresh.
    failed: AtomicBool,
    /// A key set unchanged since the stored one is written again after this much time, so
    /// the stored one never ages past the stale window while the keys stay the same.
    rewrite_after: Duration,
}

/// Writes key set snapshots off the request path, newest last: a write that lost a race
/// with a newer fetch's write is skipped rather than overwriting it.
#[derive(Debug)]
struct SnapshotWriter {
    dir: PathBuf,
    /// Generation of the fetch last written.
    written: Mutex<u64>,
    /// Set after the first failed write, so a read-only folder warns once, not every refresh.
    failed: AtomicBool,
    /// Set once the folder was swept of temp files left by killed writers.
    swept: AtomicBool,
}

/// Temp files older than this are left over from a killed writer (a write takes milliseconds).
const STALE_TEMP_FILE: Duration = Duration::from_secs(600);

/// True while keys valid until `valid_until` may still verify tokens.
pub fn keys_usable(valid_until: Option<Instant>, now: Instant) -> bool {
    valid_until.is_some_and(|t| now <= t)
}

/// Until when keys fetched `age` ago may serve: the stale window counts from the fetch,
/// wherever the keys were kept since (memory or a snapshot file).
pub fn valid_until(now: Instant, age: Duration, max_stale: Duration) -> Instant {
    now + max_stale.saturating_sub(age)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// True when the cooldown since the last attempt has passed (or there was none).
pub fn may_refetch(last_attempt: Option<Instant>, now: Instant, cooldown: Duration) -> bool {
    last_attempt.is_none_or(|t| now.saturating_duration_since(t) >= cooldown)
}

/// Delay before the next background fetch: the refresh period after a success; after
/// failures, a back-off from one second doubling up to the refresh period.
pub fn next_refresh_delay(consecutive_failures: u32, settings: &JwksSettings) -> Duration {
    if consecutive_failures == 0 {
        return settings.refresh;
    }
    let backoff = Duration::from_secs(1u64 << consecutive_failures.min(16).saturating_sub(1));
    backoff.max(settings.cooldown.min(settings.refresh)).min(settings.refresh)
}

/// Builds the one HTTP client used for every key fetch: bounded connect and total time,
/// no redirects (a redirect to another host would widen where keys come from), no proxies
/// from the environment for loopback.
pub fn http_client(settings: &JwksSettings) -> reqwest::Client {
    // Several crates may ask for a default rustls provider; only the first install wins.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.http_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("azfn-auth/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

impl KeyStore {
    /// A store for `issuer`; remote keys are not fetched until [`KeyStore::refresh`] or a lookup.
    pub fn new(issuer: &IssuerConfig, settings: JwksSettings, client: reqwest::Client) -> Result<Self, String> {
        let policy = KeyPolicy::default();
        let (source, keys, valid_until) = match &issuer.keys {
            KeySource::StaticPem(pem) => {
                let key = parse_pem(pem, &policy).map_err(|e| e.to_string())?;
                (Source::Static, KeySet::new(vec![key]), Some(Instant::now()))
            }
            KeySource::JwksUri(uri) => {
                (Source::Remote { discover: false, jwks_uri: RwLock::new(Some(uri.clone())) }, KeySet::default(), None)
            }
            KeySource::Discovery => {
                (Source::Remote { discover: true, jwks_uri: RwLock::new(None) }, KeySet::default(), None)
            }
        };
        Ok(Self {
            issuer: issuer.issuer.clone(),
            source,
            settings,
            policy,
            client,
            state: RwLock::new(State {
                keys: Arc::new(keys),
                valid_until,
                last_attempt: None,
                generation: 0,
                consecutive_failures: 0,
            }),
            fetch_lock: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
            freshness: AtomicU8::new(Freshness::None as u8),
            snapshots: None,
            blob: None,
        })
    }

    /// Keeps the last good key set in the storage account through `store`; the snapshot
    /// there is read by [`KeyStore::load_blob_snapshot`] (at start-up, before serving).
    pub fn with_blob_snapshots(mut self, store: Arc<BlobSnapshots>) -> Self {
        if matches!(self.source, Source::Static) {
            return self;
        }
        self.blob = Some(Arc::new(BlobWriter {
            store,
            pending: Mutex::new(None),
            running: AtomicBool::new(false),
            known: Mutex::new(None),
            failed: AtomicBool::new(false),
            rewrite_after: self.settings.max_stale / 2,
        }));
        self
    }

    /// Loads this issuer's snapshot from the storage account, if usable (the same checks as
    /// a file, after its seal): at start-up, before the first fetch. A storage error only
    /// means starting without a snapshot (one warning); it never stops the service.
    pub async fn load_blob_snapshot(&self) {
        let Some(writer) = &self.blob else { return };
        let Source::Remote { discover, jwks_uri } = &self.source else { return };
        let configured = if *discover { None } else { jwks_uri.read().unwrap_or_else(|e| e.into_inner()).clone() };
        let place = writer.store.describe(&self.issuer);
        let loaded = writer
            .store
            .load(&self.issuer, configured.as_ref().map(Url::as_str), unix_now(), self.settings.max_stale)
            .await;
        let (snap, age) = match loaded {
            Ok(found) => found,
            Err(Ignored::Missing) => {
                debug!(issuer = %self.issuer, blob = %place, "no key set snapshot");
                return;
            }
            Err(why) => {
                warn!(issuer = %self.issuer, blob = %place, reason = %why, "key set snapshot ignored");
                return;
            }
        };
        let known = (snap.jwks.clone(), snap.jwks_uri.clone(), snap.fetched_at);
        let Some(uri) = self.apply_snapshot(snap, age, &|reason| {
            warn!(issuer = %self.issuer, blob = %place, reason = %reason, "key set snapshot ignored");
        }) else {
            return;
        };
        *writer.known.lock().unwrap_or_else(|e| e.into_inner()) = Some(known);
        if *discover
            && let Ok(uri) = Url::parse(&uri)
            && is_acceptable_url(&uri)
        {
            *jwks_uri.write().unwrap_or_else(|e| e.into_inner()) = Some(uri);
        }
    }

    /// Keeps the last good key set in `dir` (written after every successful fetch) and
    /// starts from the snapshot found there, if it is usable: same issuer, same configured
    /// key set URL, younger than the stale window, and keys that pass every rule keys from
    /// the network pass. Anything else is ignored with one warning line. A fixed PEM key
    /// needs no snapshot.
    pub fn with_snapshots(mut self, dir: PathBuf) -> Self {
        let Source::Remote { discover, jwks_uri } = &self.source else { return self };
        let configured = if *discover { None } else { jwks_uri.read().unwrap_or_else(|e| e.into_inner()).clone() };
        let loaded_from = self.load_snapshot(&dir, configured.as_ref().map(Url::as_str));
        // A discovered URL may change, so any recorded one is accepted, and used for fetches
        // as a discovered one would be: until a fetch from it fails, which sends the next
        // fetch back to discovery. Saves the discovery round trip on a cold start, and works
        // while only the discovery endpoint is down.
        if let Some(uri) = loaded_from
            && *discover
            && let Ok(uri) = Url::parse(&uri)
            && is_acceptable_url(&uri)
        {
            *jwks_uri.write().unwrap_or_else(|e| e.into_inner()) = Some(uri);
        }
        self.snapshots = Some(Arc::new(SnapshotWriter {
            dir,
            written: Mutex::new(0),
            failed: AtomicBool::new(false),
            swept: AtomicBool::new(false),
        }));
        self
    }

    /// Loads the snapshot in `dir`, if usable; returns the key set URL it was fetched from.
    fn load_snapshot(&self, dir: &std::path::Path, configured_uri: Option<&str>) -> Option<String> {
        let path = snapshot::path_for(dir, &self.issuer);
        let ignored = |reason: &dyn std::fmt::Display| {
            warn!(issuer = %self.issuer, path = %path.display(), reason = %reason, "key set snapshot ignored");
        };
        let (snap, age) = match snapshot::read(dir, &self.issuer, configured_uri, unix_now(), self.settings.max_stale) {
            Ok(found) => found,
            Err(Ignored::Missing) => {
                debug!(issuer = %self.issuer, path = %path.display(), "no key set snapshot");
                return None;
            }
            Err(why) => {
                ignored(&why);
                return None;
            }
        };
        self.apply_snapshot(snap, age, &ignored)
    }

    /// Serves the keys of `snap` (fetched `age` ago) if they pass every rule keys from the
    /// network pass; returns the key set URL it names.
    fn apply_snapshot(
        &self,
        snap: Snapshot,
        age: Duration,
        ignored: &dyn Fn(&dyn std::fmt::Display),
    ) -> Option<String> {
        let keys = match parse_jwks(snap.jwks.as_bytes(), &self.policy) {
            Ok((keys, _)) if !keys.is_empty() => keys,
            _ => {
                ignored(&"no usable signing key in it");
                return None;
            }
        };
        info!(
            issuer = %self.issuer,
            jwks.source = "snapshot",
            jwks.age_s = age.as_secs(),
            jwks.keys = keys.len(),
            jwks.kids = ?keys.kids(),
            "signing keys loaded from snapshot"
        );
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.keys = Arc::new(keys);
        state.valid_until = Some(valid_until(Instant::now(), age, self.settings.max_stale));
        self.freshness.store(Freshness::Snapshot as u8, Ordering::Relaxed);
        Some(snap.jwks_uri)
    }

    /// Where the keys in use came from and whether the last refresh worked.
    pub fn freshness(&self) -> Freshness {
        Freshness::from_u8(self.freshness.load(Ordering::Relaxed))
    }

    /// The issuer these keys belong to.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Number of network fetches attempted so far.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere while holding it; the state is
        // replaced atomically, so it is still consistent.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn usable(&self, state: &State, now: Instant) -> bool {
        matches!(self.source, Source::Static) || keys_usable(state.valid_until, now)
    }

    /// True when `key` is still in the current, usable key set (for the verified-token cache).
    pub fn still_trusts(&self, key: &Arc<VerifyingKey>) -> bool {
        let state = self.read();
        self.usable(&state, Instant::now()) && state.keys.contains(key)
    }

    /// The key for a token's `kid`, refetching the key set at most once per cooldown when
    /// it is unknown or when no usable keys are held.
    pub async fn key_for(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, KeyError> {
        let now = Instant::now();
        let (generation, may) = {
            let state = self.read();
            if self.usable(&state, now)
                && let Some(key) = state.keys.find(kid)
            {
                return Ok(key.clone());
            }
            (state.generation, may_refetch(state.last_attempt, now, self.settings.cooldown))
        };
        if may && matches!(self.source, Source::Remote { .. }) {
            self.refresh_after(generation).await;
        }
        let state = self.read();
        if !self.usable(&state, Instant::now()) {
            return Err(KeyError::Unavailable);
        }
        state.keys.find(kid).cloned().ok_or(KeyError::UnknownKey)
    }

    /// Fetches now unless another fetch completed since `generation` was read.
    async fn refresh_after(&self, generation: u64) {
        let _guard = self.fetch_lock.lock().await;
        if self.read().generation != generation {
            return;
        }
        self.fetch_and_store().await;
    }

    /// Fetches the key set now (single-flight with lookups). Returns whether it succeeded.
    pub async fn refresh(&self) -> bool {
        if matches!(self.source, Source::Static) {
            return true;
        }
        let _guard = self.fetch_lock.lock().await;
        self.fetch_and_store().await
    }

    async fn fetch_and_store(&self) -> bool {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.fetch().await;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.generation += 1;
        state.last_attempt = Some(Instant::now());
        match result {
            Ok(Fetched { keys, uri, body }) => {
                info!(
                    issuer = %self.issuer,
                    jwks.source = "network",
                    jwks.keys = keys.len(),
                    jwks.kids = ?keys.kids(),
                    duration_ms = started.elapsed().as_millis() as u64,
                    "signing keys loaded"
                );
                state.keys = Arc::new(keys);
                state.valid_until = Some(Instant::now() + self.settings.max_stale);
                state.consecutive_failures = 0;
                self.freshness.store(Freshness::Fresh as u8, Ordering::Relaxed);
                let snap = Snapshot::new(&self.issuer, uri.as_str(), unix_now(), body);
                if let Some(writer) = &self.blob {
                    writer.clone().spawn_write(snap.clone(), state.generation);
                }
                if let Some(writer) = &self.snapshots {
                    writer.clone().spawn_write(snap, state.generation);
                }
                true
            }
            Err(error) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                let serving_stale = keys_usable(state.valid_until, Instant::now());
                if serving_stale && self.freshness() == Freshness::Fresh {
                    self.freshness.store(Freshness::Stale as u8, Ordering::Relaxed);
                }
                warn!(
                    issuer = %self.issuer,
                    error = %error,
                    jwks.serving_stale = serving_stale,
                    jwks.failures = state.consecutive_failures,
                    "signing key fetch failed"
                );
                false
            }
        }
    }

    async fn fetch(&self) -> Result<Fetched, FetchError> {
        let Source::Remote { discover, jwks_uri } = &self.source else {
            return Err(FetchError::NoUsableKeys);
        };
        let known = jwks_uri.read().unwrap_or_else(|e| e.into_inner()).clone();
        let uri = match known {
            Some(uri) => uri,
            None if *discover => {
                let uri = self.discover().await?;
                *jwks_uri.write().unwrap_or_else(|e| e.into_inner()) = Some(uri.clone());
                uri
            }
            None => return Err(FetchError::NoUsableKeys),
        };
        let body = match self.get(uri.clone()).await {
            Ok(body) => body,
            Err(error) => {
                // The provider may have moved its key set: discover again next time.
                if *discover {
                    *jwks_uri.write().unwrap_or_else(|e| e.into_inner()) = None;
                }
                return Err(error);
            }
        };
        let (keys, rejected) = parse_jwks(&body, &self.policy).map_err(|_| FetchError::Malformed("key set"))?;
        for (kid, why) in rejected {
            warn!(issuer = %self.issuer, kid = kid.as_deref().unwrap_or("-"), reason = %why, "signing key ignored");
        }
        if keys.is_empty() {
            return Err(FetchError::NoUsableKeys);
        }
        // The body is UTF-8: it parsed as JSON.
        let body = String::from_utf8(body).map_err(|_| FetchError::Malformed("key set"))?;
        Ok(Fetched { keys, uri, body })
    }

    async fn discover(&self) -> Result<Url, FetchError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        // A `{tenantid}` issuer's metadata is served under the `organizations` tenant, and
        // names the template itself as its issuer (checked below, as for any issuer).
        let url = super::tenant::discovery_url(&self.issuer);
        let url = Url::parse(&url).map_err(|_| FetchError::Malformed("issuer URL"))?;
        let body = self.get(url).await?;
        let doc: Discovery = serde_json::from_slice(&body).map_err(|_| FetchError::Malformed("discovery document"))?;
        if doc.issuer != self.issuer {
            warn!(issuer = %self.issuer, discovered = %doc.issuer, "discovery document names another issuer; refusing its keys");
            return Err(FetchError::IssuerMismatch);
        }
        let jwks = Url::parse(&doc.jwks_uri).map_err(|_| FetchError::InsecureJwksUri)?;
        if !is_acceptable_url(&jwks) {
            return Err(FetchError::InsecureJwksUri);
        }
        debug!(issuer = %self.issuer, jwks_uri = %jwks, "discovered key set location");
        Ok(jwks)
    }

    async fn get(&self, url: Url) -> Result<Vec<u8>, FetchError> {
        let cap = self.settings.max_response_bytes;
        let mut response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| FetchError::Transport(e.without_url().to_string()))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response.content_length().is_some_and(|len| len > cap as u64) {
            return Err(FetchError::TooLarge(cap));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| FetchError::Transport(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > cap {
                return Err(FetchError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Runs forever: fetches now, then refreshes every `refresh` period, backing off on failure.
    pub async fn run_refresher(self: Arc<Self>) {
        if matches!(self.source, Source::Static) {
            return;
        }
        loop {
            self.refresh().await;
            let failures = self.read().consecutive_failures;
            tokio::time::sleep(next_refresh_delay(failures, &self.settings)).await;
        }
    }
}

/// A successful key set fetch: the keys, where they came from, the document as served.
struct Fetched {
    keys: KeySet,
    uri: Url,
    body: String,
}

impl SnapshotWriter {
    /// Writes `snapshot` of fetch `generation` on a blocking thread (file I/O never runs on
    /// the async workers that serve requests).
    fn spawn_write(self: Arc<Self>, snapshot: Snapshot, generation: u64) {
        tokio::task::spawn_blocking(move || {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            if !self.swept.swap(true, Ordering::Relaxed) {
                snapshot::sweep_temp_files(&self.dir, STALE_TEMP_FILE);
            }
            if *written > generation {
                return;
            }
            match snapshot::write(&self.dir, &snapshot) {
                Ok(path) => {
                    *written = generation;
                    debug!(issuer = %snapshot.issuer, path = %path.display(), "key set snapshot written");
                }
                Err(error) if !self.failed.swap(true, Ordering::Relaxed) => {
                    warn!(issuer = %snapshot.issuer, dir = %self.dir.display(), error = %error, "key set snapshot not written");
                }
                Err(_) => {}
            }
        });
    }
}

impl BlobWriter {
    /// Queues `snapshot` of fetch `generation` (replacing an older queued one) and starts the
    /// write task unless one runs. No lock is held across a storage call.
    fn spawn_write(self: Arc<Self>, snapshot: Snapshot, generation: u64) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.as_ref().is_none_or(|(_, queued)| *queued < generation) {
                *pending = Some((snapshot, generation));
            }
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(async move {
            loop {
                let next = self.pending.lock().unwrap_or_else(|e| e.into_inner()).take();
                match next {
                    Some((snapshot, _)) => self.write(snapshot).await,
                    None => {
                        self.running.store(false, Ordering::Release);
                        // A snapshot queued between the take and the store above: go on.
                        let more = self.pending.lock().unwrap_or_else(|e| e.into_inner()).is_some();
                        if !more || self.running.swap(true, Ordering::AcqRel) {
                            return;
                        }
                    }
                }
            }
        });
    }

    async fn write(&self, snapshot: Snapshot) {
        let unchanged = self.known.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|(jwks, uri, at)| {
            *jwks == snapshot.jwks
                && *uri == snapshot.jwks_uri
                && snapshot.fetched_at.saturating_sub(*at) < self.rewrite_after.as_secs()
        });
        if unchanged {
            return;
        }
        let place = self.store.describe(&snapshot.issuer);
        match self.store.store(&snapshot, self.rewrite_after).await {
            Ok(stored) => {
                self.failed.store(false, Ordering::Relaxed);
                debug!(issuer = %snapshot.issuer, blob = %place, result = ?stored, "key set snapshot stored");
                if matches!(stored, Stored::Written | Stored::Unchanged) {
                    *self.known.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((snapshot.jwks, snapshot.jwks_uri, snapshot.fetched_at));
                }
            }
            Err(error) if !self.failed.swap(true, Ordering::Relaxed) => {
                warn!(issuer = %snapshot.issuer, blob = %place, error = %error, "key set snapshot not written");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_serve_until_the_stale_window_ends() {
        let t0 = Instant::now();
        let window = Duration::from_secs(100);
        assert!(!keys_usable(None, t0));
        let until = valid_until(t0, Duration::ZERO, window);
        assert!(keys_usable(Some(until), t0 + Duration::from_secs(100)));
        assert!(!keys_usable(Some(until), t0 + Duration::from_secs(101)));
    }

    #[test]
    fn snapshot_keys_serve_only_what_is_left_of_the_stale_window() {
        let t0 = Instant::now();
        let window = Duration::from_secs(100);
        // Fetched 70 s before this process loaded it: 30 s of service left.
        let until = valid_until(t0, Duration::from_secs(70), window);
        assert!(keys_usable(Some(until), t0 + Duration::from_secs(30)));
        assert!(!keys_usable(Some(until), t0 + Duration::from_secs(31)));
        // Older than the window: not usable at all.
        assert!(!keys_usable(Some(valid_until(t0, Duration::from_secs(101), window)), t0 + Duration::from_secs(1)));
    }

    #[test]
    fn refetch_waits_for_the_cooldown() {
        let t0 = Instant::now();
        let cooldown = Duration::from_secs(30);
        assert!(may_refetch(None, t0, cooldown));
        assert!(!may_refetch(Some(t0), t0 + Duration::from_secs(29), cooldown));
        assert!(may_refetch(Some(t0), t0 + Duration::from_secs(30), cooldown));
        assert!(may_refetch(Some(t0), t0, Duration::ZERO));
    }

    #[test]
    fn background_refresh_backs_off_after_failures() {
        let settings =
            JwksSettings { refresh: Duration::from_secs(600), cooldown: Duration::from_secs(5), ..Default::default() };
        assert_eq!(next_refresh_delay(0, &settings), Duration::from_secs(600));
        assert_eq!(next_refresh_delay(1, &settings), Duration::from_secs(5));
        assert_eq!(next_refresh_delay(4, &settings), Duration::from_secs(8));
        assert_eq!(next_refresh_delay(30, &settings), Duration::from_secs(600));
    }
}
