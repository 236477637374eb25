//! Key set snapshots (`AUTH_JWKS_SNAPSHOT_DIR`) through the real app and a real loopback
//! issuer: a new instance starts from the last good key set while the issuer is down, and
//! never trusts a snapshot that is corrupt, for another issuer or URL, too old, or holding
//! keys the network rules refuse. The restart of the built binary and two processes writing
//! one folder are in tests/binary.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use azfn_auth::auth::snapshot::{self, Snapshot};
use azfn_auth::config::{AuthConfig, KeySource, SnapshotDir};
use common::*;
use http::StatusCode;
use serde_json::{Value, json};

/// A folder of its own under the temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Self(std::env::temp_dir().join(format!("azfn-auth-it-{name}-{}-{n}", std::process::id())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn with_snapshots(mut config: AuthConfig, dir: &Path) -> AuthConfig {
    config.snapshots = SnapshotDir::Dir(dir.to_owned());
    config
}

/// Writes a snapshot of `keys` for `issuer` as fetched `age` ago.
fn plant(dir: &Path, issuer: &str, jwks_uri: &str, age: Duration, keys: Vec<Value>) {
    let fetched_at = now() as u64 - age.as_secs();
    let document = json!({ "keys": keys }).to_string();
    snapshot::write(dir, &Snapshot::new(issuer, jwks_uri, fetched_at, document)).unwrap();
}

/// Waits (bounded) until a snapshot for `issuer` can be read back and `wanted` holds.
async fn wait_for_snapshot(dir: &Path, issuer: &str, wanted: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let started = Instant::now();
    loop {
        if let Ok((found, _)) = snapshot::read(dir, issuer, None, now() as u64, Duration::from_secs(3600))
            && wanted(&found)
        {
            return found;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no snapshot written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn jwks_uri(idp: &Idp) -> String {
    format!("{}jwks", idp.issuer)
}

#[tokio::test]
async fn a_successful_fetch_writes_the_snapshot_and_a_new_instance_starts_from_it() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let dir = TempDir::new("write");
    let t = token(&key, &claims(&idp.issuer));
    let (first, _) = forwarding_app(with_snapshots(auth_config(&idp.issuer), &dir.0));
    assert_ok(&with_token(&first, &t).await);
    let written = wait_for_snapshot(&dir.0, &idp.issuer, |_| true).await;
    assert_eq!(written.jwks_uri, jwks_uri(&idp));
    assert!(written.jwks.contains("key-a"));

    idp.set_mode(IdpMode::Status(500));
    let hits = idp.jwks_hits();
    let (second, state) = forwarding_app(with_snapshots(auth_config(&idp.issuer), &dir.0));
    assert_ok(&with_token(&second, &t).await);
    assert_eq!(idp.jwks_hits(), hits, "a known kid from the snapshot needs no fetch");
    assert_eq!(state.auth.key_freshness(&idp.issuer).as_str(), "snapshot");
}

#[tokio::test]
async fn a_discovered_issuer_refreshes_from_the_snapshot_url_without_discovery_until_it_fails() {
    let a = rsa_key("rsa-a.pem", "key-a");
    let b = rsa_key("rsa-b.pem", "key-b");
    let idp = Idp::start(&[&a, &b]).await;
    let dir = TempDir::new("discovered-url");
    plant(&dir.0, &idp.issuer, &jwks_uri(&idp), Duration::from_secs(60), vec![a.jwk.clone()]);
    let (router, state) = forwarding_app(with_snapshots(auth_config(&idp.issuer), &dir.0));
    let store = &state.auth.key_stores()[0];
    assert!(store.refresh().await);
    assert_eq!((idp.discovery_hits(), idp.jwks_hits()), (0, 1), "the snapshot's URL stands in for discovery");
    assert_ok(&with_token(&router, &token(&b, &claims(&idp.issuer))).await);

    // The key set URL fails: the next fetch goes back to discovery.
    idp.set_mode(IdpMode::Status(404));
    assert!(!store.refresh().await);
    idp.set_mode(IdpMode::Up);
    assert!(store.refresh().await);
    assert_eq!(idp.discovery_hits(), 1);
}

#[tokio::test]
async fn without_a_snapshot_a_new_instance_fails_closed_while_the_issuer_is_down() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    idp.set_mode(IdpMode::Status(500));
    let dir = TempDir::new("empty");
    let (router, _) = forwarding_app(with_snapshots(auth_config(&idp.issuer), &dir.0));
    let answer = with_token(&router, &token(&key, &claims(&idp.issuer))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
}

async fn issuer_down_answer(idp: &Idp, dir: &Path, key: &TestKey) -> StatusCode {
    idp.set_mode(IdpMode::Status(500));
    let (router, _) = forwarding_app(with_snapshots(auth_config(&idp.issuer), dir));
    with_token(&router, &token(key, &claims(&idp.issuer))).await.status
}

#[tokio::test]
async fn a_snapshot_older_than_the_stale_limit_is_not_trusted() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let dir = TempDir::new("old");
    // The default stale limit is one day.
    plant(&dir.0, &idp.issuer, &jwks_uri(&idp), Duration::from_secs(86_400 + 60), vec![key.jwk.clone()]);
    assert_eq!(issuer_down_answer(&idp, &dir.0, &key).await, StatusCode::SERVICE_UNAVAILABLE);
    // Just inside the limit, the same keys serve.
    plant(&dir.0, &idp.issuer, &jwks_uri(&idp), Duration::from_secs(86_400 - 60), vec![key.jwk.clone()]);
    assert_eq!(issuer_down_answer(&idp, &dir.0, &key).await, StatusCode::OK);
}

#[tokio::test]
async fn a_snapshot_written_for_another_issuer_is_ignored() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let dir = TempDir::new("other-issuer");
    // Another issuer's file copied over this issuer's name: the content names its issuer.
    plant(&dir.0, "https://evil.example/", "https://evil.example/jwks", Duration::ZERO, vec![key.jwk.clone()]);
    std::fs::rename(snapshot::path_for(&dir.0, "https://evil.example/"), snapshot::path_for(&dir.0, &idp.issuer))
        .unwrap();
    assert_eq!(issuer_down_answer(&idp, &dir.0, &key).await, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_corrupt_snapshot_is_ignored_and_replaced_by_the_next_fetch() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let dir = TempDir::new("corrupt");
    plant(&dir.0, &idp.issuer, &jwks_uri(&idp), Duration::ZERO, vec![key.jwk.clone()]);
    let path = snapshot::path_for(&dir.0, &idp.issuer);
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    assert_eq!(issuer_down_answer(&idp, &dir.0, &key).await, StatusCode::SERVICE_UNAVAILABLE);

    idp.set_mode(IdpMode::Up);
    let (router, _) = forwarding_app(with_snapshots(auth_config(&idp.issuer), &dir.0));
    assert_ok(&with_token(&router, &token(&key, &claims(&idp.issuer))).await);
    assert!(wait_for_snapshot(&dir.0, &idp.issuer, |_| true).await.jwks.contains("key-a"));
}

#[tokio::test]
async fn a_snapshot_from_another_key_set_url_is_ignored_when_the_url_is_configured() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let dir = TempDir::new("other-url");
    plant(&dir.0, &idp.issuer, &format!("{}old-keys", idp.issuer), Duration::ZERO, vec![key.jwk.clone()]);
    idp.set_mode(IdpMode::Status(500));
    let configured = KeySource::JwksUri(jwks_uri(&idp).parse().unwrap());
    let config = AuthConfig::new(idp.issuer.clone(), configured, vec![AUDIENCE.to_owned()]);
    let (router, _) = forwarding_app(with_snapshots(config, &dir.0));
    let answer = with_token(&router, &token(&key, &claims(&idp.issuer))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn snapshot_keys_obey_the_network_key_rules() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let dir = TempDir::new("weak");
    // A 1024-bit RSA key is refused from the network; it is refused from a file too.
    let weak: Value = serde_json::from_str(&fixture("rsa-weak-1024.jwk.json")).unwrap();
    plant(&dir.0, &idp.issuer, &jwks_uri(&idp), Duration::ZERO, vec![weak]);
    // No usable key in it: the snapshot is ignored as a whole (503, not a key lookup).
    let claiming_weak = rsa_key("rsa-a.pem", "weak");
    assert_eq!(issuer_down_answer(&idp, &dir.0, &claiming_weak).await, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_key_the_issuer_removed_is_refused_after_the_next_fetch() {
    let a = rsa_key("rsa-a.pem", "key-a");
    let b = rsa_key("rsa-b.pem", "key-b");
    let idp = Idp::start(&[&a]).await;
    let dir = TempDir::new("removed");
    // The snapshot still has key-b; the issuer has since dropped it.
    plant(&dir.0, &idp.issuer, &jwks_uri(&idp), Duration::from_secs(60), vec![a.jwk.clone(), b.jwk.clone()]);
    let (router, state) = forwarding_app(with_snapshots(auth_config(&idp.issuer), &dir.0));
    let with_b = token(&b, &claims(&idp.issuer));
    assert_ok(&with_token(&router, &with_b).await);
    assert_eq!(idp.jwks_hits(), 0);

    assert!(state.auth.key_stores()[0].refresh().await);
    assert_eq!(state.auth.key_freshness(&idp.issuer).as_str(), "fresh");
    // Even the cached verification of that token is dropped with its key.
    assert_invalid_token(&with_token(&router, &with_b).await);
    assert_ok(&with_token(&router, &token(&a, &claims(&idp.issuer))).await);
    // The snapshot follows: the next instance will not start with key-b either.
    let rewritten = wait_for_snapshot(&dir.0, &idp.issuer, |s| !s.jwks.contains("key-b")).await;
    assert!(rewritten.jwks.contains("key-a"));
}
