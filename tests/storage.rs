//! Key set snapshots in the app's storage account, against the real emulator (Azurite,
//! scripts/azurite): the built `handler` started as on Flex Consumption (no shared `$HOME`)
//! writes the sealed snapshot and a brand-new process serves from it while the issuer is
//! down; a planted or edited blob is refused; two writers racing leave the newest fetch;
//! storage down leaves normal service. Strict DPoP single use (`AUTH_DPOP_REPLAY_STORE=table`):
//! the same proof sent to two instances is admitted once; storage down refuses DPoP with 503
//! and leaves Bearer alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/azurite.rs"]
mod azurite;
mod common;
#[path = "common/dpop_client.rs"]
mod dpop_client;
#[path = "common/flex.rs"]
mod flex;
#[path = "common/provider.rs"]
mod provider;

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use azfn_auth::auth::blob_snapshot::{self, BlobSnapshots, CONTAINER, SnapshotSecret, Stored};
use azfn_auth::auth::snapshot::{self, Snapshot};
use azfn_auth::storage::{BlobClient, Condition, StorageAccount, Written};
use azurite::Azurite;
use common::*;
use dpop_client::{DpopClient, PUBLIC_ORIGIN, call_dpop};
use flex::{SECRET, read_until, wait_ready};
use provider::{Proc, free_port, log_dir};
use serde_json::json;

/// The handler as the host starts it on Flex Consumption, with the storage account and the
/// sealing secret set and `AUTH_JWKS_SNAPSHOT_DIR` left at `auto`.
fn handler(logs: &Path, name: &'static str, port: u16, issuer: &str, storage: &str) -> (Proc, Receiver<String>) {
    handler_with(logs, name, port, issuer, storage, &[])
}

/// [`handler`] with more settings.
fn handler_with(
    logs: &Path,
    name: &'static str,
    port: u16,
    issuer: &str,
    storage: &str,
    extra: &[(&str, &str)],
) -> (Proc, Receiver<String>) {
    let vars: Vec<(&str, &str)> = [("AzureWebJobsStorage", storage)].into_iter().chain(extra.iter().copied()).collect();
    flex::handler(logs, name, port, issuer, AUDIENCE, &vars)
}

async fn call(http: &reqwest::Client, port: u16, token: &str) -> u16 {
    let response =
        http.get(format!("http://127.0.0.1:{port}/api/api-a")).bearer_auth(token).send().await.expect("call handler");
    response.status().as_u16()
}

fn account(azurite: &Azurite) -> StorageAccount {
    StorageAccount::from_connection_string(&azurite.connection_string()).unwrap()
}

fn blobs(azurite: &Azurite) -> BlobClient {
    BlobClient::new(account(azurite), provider::http_client(Duration::from_secs(5)))
}

fn secret() -> SnapshotSecret {
    SnapshotSecret(SECRET.as_bytes().to_vec())
}

/// Waits (bounded) until the issuer's blob holds a sealed snapshot that unseals.
async fn wait_for_blob(client: &BlobClient, issuer: &str) -> Snapshot {
    let started = Instant::now();
    loop {
        if let Ok(Some(blob)) = client.get(CONTAINER, &snapshot::file_name(issuer)).await
            && let Ok(found) = blob_snapshot::unseal(&blob.body, issuer, &secret())
        {
            return found;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no snapshot blob written for {issuer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_new_instance_started_while_the_issuer_is_down_serves_from_the_blob_snapshot() {
    let logs = log_dir("storage", "restart");
    let azurite = Azurite::start(&logs);
    let http = provider::http_client(Duration::from_secs(10));
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let t = token(&key, &claims(&idp.issuer));

    // First instance: keys from the network, sealed into the storage account.
    let port = free_port();
    let (mut first, lines) = handler(&logs, "first", port, &idp.issuer, &azurite.connection_string());
    let start = read_until(&lines, "scale-out state");
    assert!(start.contains("plan=flex-consumption") && start.contains("snapshots=blob"), "{start}");
    assert!(start.contains("replay=memory"), "{start}");
    wait_ready(&mut first, port, &http).await;
    assert_eq!(call(&http, port, &t).await, 200);
    let written = wait_for_blob(&blobs(&azurite), &idp.issuer).await;
    assert_eq!(written.jwks_uri, format!("{}jwks", idp.issuer));
    assert!(written.jwks.contains("key-a"));
    drop(first);

    // The issuer goes down; a brand-new instance (its own disk: nothing local) serves at once.
    idp.set_mode(IdpMode::Status(503));
    let port = free_port();
    let (mut second, lines) = handler(&logs, "second", port, &idp.issuer, &azurite.connection_string());
    let log = read_until(&lines, "handler listening");
    assert!(log.contains("signing keys loaded from snapshot"), "{log}");
    wait_ready(&mut second, port, &http).await;
    assert_eq!(call(&http, port, &t).await, 200);
    // The snapshot only supplies keys: a token signed by another key is still refused.
    let other = rsa_key("rsa-b.pem", "key-a");
    assert_eq!(call(&http, port, &token(&other, &claims(&idp.issuer))).await, 401);
}

#[tokio::test]
async fn a_planted_or_edited_blob_is_refused_with_one_warning() {
    let logs = log_dir("storage", "planted");
    let azurite = Azurite::start(&logs);
    let http = provider::http_client(Duration::from_secs(10));
    let attacker = rsa_key("rsa-b.pem", "key-x");
    let idp = Idp::start(&[&rsa_key("rsa-a.pem", "key-a")]).await;
    idp.set_mode(IdpMode::Status(503));
    let client = blobs(&azurite);
    let name = snapshot::file_name(&idp.issuer);
    let planted = Snapshot::new(
        &idp.issuer,
        &format!("{}jwks", idp.issuer),
        now() as u64,
        json!({ "keys": [attacker.jwk.clone()] }).to_string(),
    );
    let t = token(&attacker, &claims(&idp.issuer));

    // Sealed with another secret: whoever wrote it does not hold AUTH_SNAPSHOT_SECRET.
    let forged = blob_snapshot::seal(&planted, &SnapshotSecret(vec![b'x'; 32]));
    assert!(matches!(client.put(CONTAINER, &name, forged, Condition::Absent).await.unwrap(), Written::Done(_)));
    let port = free_port();
    let (mut first, lines) = handler(&logs, "forged", port, &idp.issuer, &azurite.connection_string());
    let log = read_until(&lines, "handler listening");
    assert_eq!(log.matches("key set snapshot ignored").count(), 1, "{log}");
    assert!(log.contains("authentication check failed") && !log.contains("loaded from snapshot"), "{log}");
    wait_ready(&mut first, port, &http).await;
    assert_eq!(call(&http, port, &t).await, 503, "no keys: fail closed");
    drop(first);

    // Sealed with the right secret, then its key set swapped: the seal no longer verifies.
    let honest = Snapshot::new(
        &idp.issuer,
        &format!("{}jwks", idp.issuer),
        now() as u64,
        json!({ "keys": [rsa_key("rsa-a.pem", "key-a").jwk] }).to_string(),
    );
    let sealed = String::from_utf8(blob_snapshot::seal(&honest, &secret())).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&sealed).unwrap();
    doc["snapshot"] = json!(serde_json::to_string(&planted).unwrap());
    let current = client.get(CONTAINER, &name).await.unwrap().unwrap();
    let edited = doc.to_string().into_bytes();
    assert!(matches!(
        client.put(CONTAINER, &name, edited, Condition::Matches(&current.etag)).await.unwrap(),
        Written::Done(_)
    ));
    let port = free_port();
    let (mut second, lines) = handler(&logs, "edited", port, &idp.issuer, &azurite.connection_string());
    let log = read_until(&lines, "handler listening");
    assert!(log.contains("key set snapshot ignored") && log.contains("authentication check failed"), "{log}");
    wait_ready(&mut second, port, &http).await;
    assert_eq!(call(&http, port, &t).await, 503);
}

#[tokio::test]
async fn two_writers_racing_leave_the_newest_fetch_and_an_unchanged_key_set_is_not_rewritten() {
    let logs = log_dir("storage", "race");
    let azurite = Azurite::start(&logs);
    const ISSUER: &str = "https://issuer.example/";
    const URI: &str = "https://issuer.example/jwks";
    // Two writers with clients of their own, as two instances have.
    let writers = [BlobSnapshots::new(blobs(&azurite), secret()), BlobSnapshots::new(blobs(&azurite), secret())];
    let base = now() as u64;
    let snap = |n: u64| Snapshot::new(ISSUER, URI, base + n, format!("{{\"keys\":[\"set-{n}\"]}}"));
    let day = Duration::from_secs(86_400);

    // 40 writes, interleaved between the two, each a different key set fetched at its own time.
    let mut tasks = Vec::new();
    for n in 0..40u64 {
        let writer = &writers[(n % 2) as usize];
        tasks.push(async move { writer.store(&snap(n), day).await.unwrap() });
    }
    let results = futures_util::future::join_all(tasks).await;
    assert!(results.contains(&Stored::Written), "{results:?}");
    let client = blobs(&azurite);
    let stored = blob_snapshot::unseal(
        &client.get(CONTAINER, &snapshot::file_name(ISSUER)).await.unwrap().unwrap().body,
        ISSUER,
        &secret(),
    )
    .unwrap();
    assert_eq!(stored, snap(39), "the newest fetch wins");

    // An older fetch arriving late never replaces it.
    assert_eq!(writers[0].store(&snap(5), day).await.unwrap(), Stored::Newer);
    // The same key set fetched again is not rewritten (the ETag stays).
    let etag = client.get(CONTAINER, &snapshot::file_name(ISSUER)).await.unwrap().unwrap().etag;
    let again = Snapshot::new(ISSUER, URI, base + 100, snap(39).jwks);
    assert_eq!(writers[1].store(&again, day).await.unwrap(), Stored::Unchanged);
    assert_eq!(client.get(CONTAINER, &snapshot::file_name(ISSUER)).await.unwrap().unwrap().etag, etag);
}

#[tokio::test]
async fn storage_down_leaves_normal_service() {
    let logs = log_dir("storage", "down");
    let http = provider::http_client(Duration::from_secs(10));
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let closed = closed_port_url().await;
    let storage = format!(
        "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={}{}",
        azurite::ACCOUNT,
        azurite::KEY,
        closed,
        azurite::ACCOUNT
    );
    let port = free_port();
    let started = Instant::now();
    let (mut proc, lines) = handler(&logs, "down", port, &idp.issuer, &storage);
    let log = read_until(&lines, "handler listening");
    assert!(log.contains("key set snapshot ignored") && log.contains("unreachable"), "{log}");
    wait_ready(&mut proc, port, &http).await;
    assert!(started.elapsed() < Duration::from_secs(10), "start-up is bounded: {:?}", started.elapsed());
    let t = token(&key, &claims(&idp.issuer));
    assert_eq!(call(&http, port, &t).await, 200);
    let log = read_until(&lines, "key set snapshot not written");
    assert_eq!(log.matches("key set snapshot not written").count(), 1, "{log}");
}

#[tokio::test]
async fn azurite_checks_the_shared_key_signature() {
    // The other tests pass only because the signature is right: a wrong key gets 403.
    let logs = log_dir("storage", "signature");
    let azurite = Azurite::start(&logs);
    let wrong = azurite.connection_string().replace(azurite::KEY, &"A".repeat(88));
    let client = BlobClient::new(
        StorageAccount::from_connection_string(&wrong).unwrap(),
        provider::http_client(Duration::from_secs(5)),
    );
    assert_eq!(client.create_container(CONTAINER).await, Err(azfn_auth::storage::StorageError::Status(403)));
    assert_eq!(blobs(&azurite).create_container(CONTAINER).await, Ok(()));
}

// ---------------------------------------------------------------------------------------
// Strict DPoP single use.

const STRICT: [(&str, &str); 2] = [("AUTH_DPOP_REPLAY_STORE", "table"), ("AUTH_PUBLIC_URL", PUBLIC_ORIGIN)];

#[tokio::test]
async fn strict_dpop_single_use_admits_one_proof_once_across_two_instances() {
    let logs = log_dir("storage", "dpop-table");
    let azurite = Azurite::start(&logs);
    let http = provider::http_client(Duration::from_secs(10));
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let client = DpopClient::new();
    let mut bound = claims(&idp.issuer);
    bound["cnf"] = json!({"jkt": client.jkt()});
    let t = token(&key, &bound);

    let ports = [free_port(), free_port()];
    let mut instances = Vec::new();
    for (name, port) in ["instance-1", "instance-2"].into_iter().zip(ports) {
        let (mut proc, lines) = handler_with(&logs, name, port, &idp.issuer, &azurite.connection_string(), &STRICT);
        let start = read_until(&lines, "scale-out state");
        assert!(start.contains("replay=table"), "{start}");
        wait_ready(&mut proc, port, &http).await;
        instances.push((proc, lines));
    }

    // One proof, two instances: the first admits it, the second knows it was used.
    let proof = client.proof(&t, "the-one-jti");
    assert_eq!(call_dpop(&http, ports[0], &t, &proof).await.status(), 200);
    let replayed = call_dpop(&http, ports[1], &t, &proof).await;
    assert_eq!(replayed.status(), 401);
    let challenge = replayed.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("DPoP ") && challenge.contains(r#"error="invalid_dpop_proof""#), "{challenge}");
    // A fresh proof is fine on either, and the first instance refuses its own replay too.
    assert_eq!(call_dpop(&http, ports[1], &t, &client.proof(&t, "another-jti")).await.status(), 200);
    assert_eq!(call_dpop(&http, ports[0], &t, &proof).await.status(), 401);

    // The cost, measured (not asserted): DPoP requests in a row, each one Table insert,
    // against the same requests on an instance with the per-instance cache only.
    let memory_port = free_port();
    let only_origin = [("AUTH_PUBLIC_URL", PUBLIC_ORIGIN)];
    let (mut memory, _lines) =
        handler_with(&logs, "memory", memory_port, &idp.issuer, &azurite.connection_string(), &only_origin);
    wait_ready(&mut memory, memory_port, &http).await;
    let mut per_request = Vec::new();
    for (label, port) in [("memory", memory_port), ("table", ports[0])] {
        assert_eq!(call_dpop(&http, port, &t, &client.proof(&t, &format!("warm-{label}"))).await.status(), 200);
        let started = Instant::now();
        for n in 0..100 {
            let proof = client.proof(&t, &format!("cost-{label}-{n}"));
            assert_eq!(call_dpop(&http, port, &t, &proof).await.status(), 200);
        }
        per_request.push(format!("{label}: {:?}", started.elapsed() / 100));
    }
    eprintln!("DPoP request, Azurite on loopback, debug build, per request: {}", per_request.join(", "));
}

#[tokio::test]
async fn strict_dpop_with_storage_down_is_503_and_bearer_is_untouched() {
    let logs = log_dir("storage", "dpop-down");
    let http = provider::http_client(Duration::from_secs(10));
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let closed = closed_port_url().await;
    let storage = format!(
        "DefaultEndpointsProtocol=http;AccountName={0};AccountKey={1};BlobEndpoint={2}{0};TableEndpoint={2}{0}",
        azurite::ACCOUNT,
        azurite::KEY,
        closed
    );
    let port = free_port();
    let (mut proc, lines) = handler_with(&logs, "dpop-down", port, &idp.issuer, &storage, &STRICT);
    read_until(&lines, "handler listening");
    wait_ready(&mut proc, port, &http).await;
    let client = DpopClient::new();
    let mut bound = claims(&idp.issuer);
    bound["cnf"] = json!({"jkt": client.jkt()});
    let t = token(&key, &bound);

    for n in 0..3 {
        let refused = call_dpop(&http, port, &t, &client.proof(&t, &format!("down-{n}"))).await;
        assert_eq!(refused.status(), 503, "fail closed");
        assert!(refused.headers().contains_key("retry-after"));
    }
    // Bearer never touches storage.
    assert_eq!(call(&http, port, &token(&key, &claims(&idp.issuer))).await, 200);
    let log = read_until(&lines, "auth decision");
    let log = log + &read_until(&lines, "status=200");
    assert_eq!(log.matches("DPoP replay store unavailable;").count(), 1, "one warning per outage: {log}");
}
