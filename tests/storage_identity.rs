//! Identity-based `AzureWebJobsStorage` against the real emulator: Azurite over HTTPS with
//! OAuth on (it accepts bearer tokens only over HTTPS: a test CA and a 127.0.0.1
//! certificate are made at test time), and a stand-in of the App Service identity endpoint
//! on loopback speaking its protocol (`GET ?resource=…&api-version=2019-08-01[&client_id=]`
//! with `X-IDENTITY-HEADER`). Through the library with a client that trusts the test CA:
//! blob snapshots written and read back and table inserts refused the second time, with one
//! token fetched for many storage calls, `client_id` sent for a user-assigned identity.
//! The app in-process, configured from settings as on Flex Consumption
//! (`Authenticator::with_storage_client` gives the storage side that client): a brand-new
//! instance with the issuer down serves from the snapshot, and a DPoP proof is admitted once
//! across two instances. Through the built `handler`: a wrong `IDENTITY_HEADER` leaves
//! normal service without snapshots and refuses strict DPoP with 503; a missing
//! `IDENTITY_ENDPOINT` stops start-up.
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use azfn_auth::auth::blob_snapshot::{BlobSnapshots, SnapshotSecret, Stored};
use azfn_auth::auth::snapshot::Snapshot;
use azfn_auth::storage::settings::{self, Service};
use azfn_auth::storage::{BlobClient, Inserted, StorageAccount, StorageError, TableClient};
use azurite::Azurite;
use common::*;
use dpop_client::{DpopClient, PUBLIC_ORIGIN, call_dpop};
use flex::{SECRET, handler, read_until, wait_ready};
use provider::{free_port, log_dir, repo_root};
use serde_json::json;

/// The stand-in's `IDENTITY_HEADER` (a per-test value, as the platform's is per app).
const HEADER: &str = "stand-in-identity-header-1f6c";

// ---------------------------------------------------------------------------------------
// The test CA, and Azurite over HTTPS.

/// A CA made now and a certificate for 127.0.0.1 and localhost it signed, as PEM files in
/// `dir`; the CA's PEM for clients to trust.
struct TestTls {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

/// What every test here starts from: Azurite over HTTPS in OAuth mode (with its test CA)
/// and a stand-in identity endpoint; logs under `storage-identity/<name>`.
struct Stage {
    logs: PathBuf,
    tls: TestTls,
    azurite: Azurite,
    identity: IdentityEndpoint,
}

async fn stage(name: &str) -> Stage {
    let logs = log_dir("storage-identity", name);
    let tls = test_tls(&logs);
    let azurite = Azurite::start_https_oauth(&logs, &tls.cert, &tls.key);
    let identity = IdentityEndpoint::start().await;
    Stage { logs, tls, azurite, identity }
}

fn test_tls(dir: &Path) -> TestTls {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "azfn-auth storage test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    let (cert, key) = (dir.join("azurite-cert.pem"), dir.join("azurite-key.pem"));
    std::fs::write(&cert, leaf_cert.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    TestTls { ca_pem: ca_cert.pem(), cert, key }
}

/// The storage client of these tests: the library's bounds (no redirects, timeouts), and
/// only the test CA trusted.
fn trusting(tls: &TestTls) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// A stand-in of the App Service identity endpoint.

#[derive(Default)]
struct Seen {
    /// Token requests answered with a token.
    issued: AtomicUsize,
    /// Requests refused for a wrong or missing `X-IDENTITY-HEADER`.
    refused: AtomicUsize,
    /// The `client_id` of every request (None: the system-assigned identity).
    client_ids: Mutex<Vec<Option<String>>>,
    /// An audience other than storage's for the tokens issued, when set.
    wrong_audience: Mutex<Option<String>>,
}

/// The identity endpoint protocol (API version 2019-08-01) on 127.0.0.1:0: checks the
/// secret header, the resource and the version, and answers a storage token Azurite's OAuth
/// mode accepts (audience `https://storage.azure.com`, an `sts.windows.net` issuer, a
/// lifetime; Azurite checks those, not the signature, so it is signed with a test HMAC key).
struct IdentityEndpoint {
    url: String,
    seen: Arc<Seen>,
}

impl IdentityEndpoint {
    async fn start() -> Self {
        let seen = Arc::new(Seen::default());
        let app = axum::Router::new().route("/msi/token", axum::routing::get(token_endpoint)).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/msi/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, seen }
    }

    fn issued(&self) -> usize {
        self.seen.issued.load(Ordering::SeqCst)
    }

    fn refused(&self) -> usize {
        self.seen.refused.load(Ordering::SeqCst)
    }

    fn client_ids(&self) -> Vec<Option<String>> {
        self.seen.client_ids.lock().unwrap().clone()
    }

    /// Issues tokens for `audience` from now on (as if asked for another resource).
    fn issue_for(&self, audience: &str) {
        *self.seen.wrong_audience.lock().unwrap() = Some(audience.to_owned());
    }

    /// The platform's two variables for this endpoint, with `header` as the secret.
    fn platform(&self, header: &'static str) -> [(&'static str, String); 2] {
        [("IDENTITY_ENDPOINT", self.url.clone()), ("IDENTITY_HEADER", header.to_owned())]
    }
}

async fn token_endpoint(
    State(seen): State<Arc<Seen>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if headers.get("x-identity-header").and_then(|v| v.to_str().ok()) != Some(HEADER) {
        seen.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid X-IDENTITY-HEADER"}))).into_response();
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01")
        || query.get("resource").map(String::as_str) != Some("https://storage.azure.com/")
    {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "unexpected resource or api-version"})))
            .into_response();
    }
    seen.client_ids.lock().unwrap().push(query.get("client_id").cloned());
    seen.issued.fetch_add(1, Ordering::SeqCst);
    let now = now();
    let expires_on = now + 3_600;
    let audience = seen.wrong_audience.lock().unwrap().clone();
    let claims = json!({
        "aud": audience.as_deref().unwrap_or("https://storage.azure.com"),
        "iss": "https://sts.windows.net/72f988bf-0000-4000-8000-000000000000/",
        "iat": now,
        "nbf": now,
        "exp": expires_on,
        "oid": "00000000-0000-4000-8000-00000000a11d",
        "tid": "72f988bf-0000-4000-8000-000000000000",
    });
    let key = jsonwebtoken::EncodingKey::from_secret(b"stand-in signing key, checked by nobody");
    let access_token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
    // As the real endpoint does: `expires_on` in Unix seconds, as a string.
    axum::Json(json!({
        "access_token": access_token,
        "expires_on": expires_on.to_string(),
        "resource": "https://storage.azure.com/",
        "token_type": "Bearer",
    }))
    .into_response()
}

/// The account `vars` describe, read as the handler reads its settings.
fn account(vars: &[(&str, String)], service: Service) -> StorageAccount {
    let map: HashMap<&str, String> = vars.iter().cloned().collect();
    settings::account(&|name: &str| map.get(name).cloned(), service, "the test").unwrap()
}

// ---------------------------------------------------------------------------------------
// Through the library.

#[tokio::test]
async fn blob_snapshots_go_through_managed_identity_tokens_fetched_once() {
    let Stage { tls, azurite, identity, .. } = stage("blob").await;
    assert!(azurite.blob_endpoint.starts_with("https://127.0.0.1:"), "{}", azurite.blob_endpoint);
    let mut vars = identity.platform(HEADER).to_vec();
    vars.push(("AzureWebJobsStorage__blobServiceUri", azurite.blob_endpoint.clone()));
    let snapshots = BlobSnapshots::new(
        BlobClient::new(account(&vars, Service::Blob), trusting(&tls)),
        SnapshotSecret(SECRET.as_bytes().to_vec()),
    );

    let key = rsa_key("rsa-a.pem", "key-a");
    let issuer = "https://issuer.example.com/";
    let jwks_uri = "https://issuer.example.com/jwks";
    let fetched_at = now() as u64;
    let ours = Snapshot::new(issuer, jwks_uri, fetched_at, json!({ "keys": [key.jwk] }).to_string());
    // The first write finds no container: a read, a write refused 404, the container made,
    // the write again; then a read for the load. One token for all of them.
    assert_eq!(snapshots.store(&ours, Duration::from_secs(600)).await, Ok(Stored::Written));
    let (loaded, _age) = snapshots.load(issuer, Some(jwks_uri), fetched_at, Duration::from_secs(3_600)).await.unwrap();
    assert_eq!(loaded, ours);
    assert_eq!(snapshots.store(&ours, Duration::from_secs(600)).await, Ok(Stored::Unchanged));
    assert_eq!(identity.issued(), 1, "the token is cached across storage calls");
    assert_eq!(identity.client_ids(), vec![None], "the system-assigned identity: no client_id");
}

#[tokio::test]
async fn table_inserts_go_through_a_user_assigned_identity_and_refuse_a_second_proof() {
    let Stage { tls, azurite, identity, .. } = stage("table").await;
    let client_id = "5f0c1a2b-0000-4000-8000-00000000c11d";
    let mut vars = identity.platform(HEADER).to_vec();
    vars.push(("AzureWebJobsStorage__tableServiceUri", azurite.table_endpoint.clone()));
    vars.push(("AzureWebJobsStorage__credential", "managedidentity".to_owned()));
    vars.push(("AzureWebJobsStorage__clientId", client_id.to_owned()));
    let tables = TableClient::new(account(&vars, Service::Table), trusting(&tls));

    // The replay store's calls: the insert of a proof's key, the table made on first use.
    let insert = || tables.insert("azfnauthdpop1", "ab", "cdef-jti", serde_json::Map::new());
    assert_eq!(insert().await, Ok(Inserted::NoTable));
    tables.create_table("azfnauthdpop1").await.unwrap();
    assert_eq!(insert().await, Ok(Inserted::Created));
    assert_eq!(insert().await, Ok(Inserted::Exists), "the same proof id twice is a duplicate");
    tables.delete_table("azfnauthdpop1").await.unwrap();
    assert_eq!(identity.issued(), 1, "the token is cached across storage calls");
    assert_eq!(identity.client_ids(), vec![Some(client_id.to_owned())], "user-assigned: client_id sent");
}

#[tokio::test]
async fn a_wrong_identity_header_makes_no_storage_call_and_azurite_refuses_a_token_for_another_audience() {
    let Stage { tls, azurite, identity, .. } = stage("refused").await;

    // A wrong IDENTITY_HEADER: the endpoint refuses, and no storage call is made at all.
    let mut vars = identity.platform("not-the-platform-header").to_vec();
    vars.push(("AzureWebJobsStorage__blobServiceUri", azurite.blob_endpoint.clone()));
    let blobs = BlobClient::new(account(&vars, Service::Blob), trusting(&tls));
    let error = blobs.create_container("refused-container").await.unwrap_err();
    assert!(matches!(&error, StorageError::Identity(why) if why.contains("401")), "{error}");
    assert!(!error.to_string().contains("not-the-platform-header"));
    assert_eq!((identity.refused(), identity.issued()), (1, 0));

    // Azurite really checks the token: one for another audience is refused.
    identity.issue_for("https://vault.azure.net");
    let mut vars = identity.platform(HEADER).to_vec();
    vars.push(("AzureWebJobsStorage__blobServiceUri", azurite.blob_endpoint.clone()));
    let blobs = BlobClient::new(account(&vars, Service::Blob), trusting(&tls));
    let refused = blobs.create_container("refused-container").await.unwrap_err();
    assert!(matches!(refused, StorageError::Status(401 | 403)), "{refused}");
    assert_eq!(identity.issued(), 1);
}

// ---------------------------------------------------------------------------------------
// The app in-process, configured from settings as on Flex Consumption, with the storage
// client trusting the test CA (Authenticator::with_storage_client; key sets keep theirs).

/// The handler's configuration from `vars` (plus the issuer, audience and Flex), as
/// `Config::from_env` reads it.
fn flex_config(issuer: &str, vars: &[(&str, String)]) -> azfn_auth::config::AuthConfig {
    let mut map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    map.insert("WEBSITE_SKU".into(), "FlexConsumption".into());
    map.insert("AUTH_ISSUER".into(), issuer.into());
    map.insert("AUTH_AUDIENCE".into(), AUDIENCE.into());
    map.insert("FUNCTIONS_APP_ROOT_PATH".into(), repo_root().to_string_lossy().into_owned());
    azfn_auth::config::Config::from_lookup(|name| map.get(name).cloned()).unwrap().auth
}

fn in_process(config: &azfn_auth::config::AuthConfig, tls: &TestTls) -> axum::Router {
    let auth = azfn_auth::auth::Authenticator::with_storage_client(config, trusting(tls)).unwrap();
    let state = azfn_auth::app::AppState::new(auth, layout(azfn_auth::layout::HostMode::Forwarding, "api"), 1 << 20);
    azfn_auth::app::app(Arc::new(state.unwrap()))
}

#[tokio::test]
async fn a_new_instance_with_the_issuer_down_serves_from_a_snapshot_reached_with_identity_tokens() {
    let Stage { tls, azurite, identity, .. } = stage("restart").await;
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let mut vars = identity.platform(HEADER).to_vec();
    vars.push(("AzureWebJobsStorage__blobServiceUri", azurite.blob_endpoint.clone()));
    vars.push(("AUTH_SNAPSHOT_SECRET", SECRET.to_owned()));
    let config = flex_config(&idp.issuer, &vars);
    assert!(matches!(config.snapshots, azfn_auth::config::SnapshotDir::Blob(_)), "auto: blob on Flex");
    let t = token(&key, &claims(&idp.issuer));

    // The first instance fetches the keys and seals them into the account in the background.
    let first = in_process(&config, &tls);
    assert_ok(&with_token(&first, &t).await);
    let blobs = BlobClient::new(account(&vars, Service::Blob), trusting(&tls));
    let name = azfn_auth::auth::snapshot::file_name(&idp.issuer);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while blobs.get(azfn_auth::auth::blob_snapshot::CONTAINER, &name).await.unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "no snapshot written");
    }

    // The issuer goes down; a brand-new instance reads the snapshot before serving.
    idp.set_mode(IdpMode::Status(503));
    let auth = azfn_auth::auth::Authenticator::with_storage_client(&config, trusting(&tls)).unwrap();
    auth.load_shared_snapshots().await;
    let state = azfn_auth::app::AppState::new(auth, layout(azfn_auth::layout::HostMode::Forwarding, "api"), 1 << 20);
    let second = azfn_auth::app::app(Arc::new(state.unwrap()));
    assert_ok(&with_token(&second, &t).await);
    assert_invalid_token(&with_token(&second, &token(&rsa_key("rsa-b.pem", "key-a"), &claims(&idp.issuer))).await);
    // One token per client, however many calls: the first instance's writer, this test's
    // reader, the second instance's.
    assert_eq!(identity.issued(), 3);
}

#[tokio::test]
async fn strict_dpop_through_identity_tokens_admits_a_proof_once() {
    let Stage { tls, azurite, identity, .. } = stage("dpop").await;
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let client_id = "0d9e8f7a-0000-4000-8000-0000000dc0de";
    let mut vars = identity.platform(HEADER).to_vec();
    vars.push(("AzureWebJobsStorage__accountName", "devstoreaccount1".to_owned()));
    vars.push(("AzureWebJobsStorage__tableServiceUri", azurite.table_endpoint.clone()));
    vars.push(("AzureWebJobsStorage__clientId", client_id.to_owned()));
    vars.push(("AUTH_DPOP_REPLAY_STORE", "table".to_owned()));
    vars.push(("AUTH_PUBLIC_URL", PUBLIC_ORIGIN.to_owned()));
    vars.push(("AUTH_JWKS_SNAPSHOT_DIR", "off".to_owned()));
    let config = flex_config(&idp.issuer, &vars);
    // Two instances: the proof store is the account's table, not either one's memory.
    let (one, two) = (in_process(&config, &tls), in_process(&config, &tls));
    let client = DpopClient::new();
    let mut bound = claims(&idp.issuer);
    bound["cnf"] = json!({"jkt": client.jkt()});
    let t = token(&key, &bound);
    let call = |router: &axum::Router, proof: &str| {
        let request = http::Request::get("/api/api-a")
            .header("authorization", format!("DPoP {t}"))
            .header("dpop", proof)
            .body(axum::body::Body::empty())
            .unwrap();
        let router = router.clone();
        async move { send(&router, request).await }
    };
    let proof = client.proof(&t, "identity-jti");
    assert_ok(&call(&one, &proof).await);
    let replayed = call(&two, &proof).await;
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    assert!(replayed.challenge().unwrap().contains(r#"error="invalid_dpop_proof""#));
    assert_ok(&call(&two, &client.proof(&t, "another-identity-jti")).await);
    assert_eq!(identity.issued(), 2, "one token per instance, cached for its inserts");
    assert_eq!(identity.client_ids(), vec![Some(client_id.to_owned()); 2]);
}

// ---------------------------------------------------------------------------------------
// Through the built handler, as the host starts it on Flex Consumption with an
// identity-based AzureWebJobsStorage.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_identity_header_leaves_normal_service_without_snapshots_and_never_logs_it() {
    let Stage { logs, azurite, identity, .. } = stage("snapshot-refused").await;
    let http = provider::http_client(Duration::from_secs(10));
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let wrong = "wrong-identity-header-9d2e";
    let mut vars = identity.platform(wrong).to_vec();
    vars.push(("AzureWebJobsStorage__blobServiceUri", azurite.blob_endpoint.clone()));

    let port = free_port();
    let (mut proc, lines) = handler(&logs, "snapshot-refused", port, &idp.issuer, AUDIENCE, &vars);
    let start = read_until(&lines, "scale-out state");
    assert!(start.contains("snapshots=blob"), "auto picks blob for an identity-based app: {start}");
    wait_ready(&mut proc, port, &http).await;
    let t = token(&key, &claims(&idp.issuer));
    for _ in 0..3 {
        let response = http.get(format!("http://127.0.0.1:{port}/api/api-a")).bearer_auth(&t).send().await.unwrap();
        assert_eq!(response.status(), 200, "normal service");
    }
    // The start-up read and the write after the first fetch fail at the identity endpoint,
    // and say so.
    let text = start + &read_until(&lines, "key set snapshot not written");
    assert!(text.contains("key set snapshot ignored"), "{text}");
    assert!(text.contains("identity endpoint answered 401"), "{text}");
    assert!(!text.contains(wrong), "IDENTITY_HEADER never logged: {text}");
    assert!(identity.refused() >= 1 && identity.issued() == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_dpop_with_a_wrong_identity_header_is_503_and_bearer_is_untouched() {
    let Stage { logs, azurite, identity, .. } = stage("dpop-refused").await;
    let http = provider::http_client(Duration::from_secs(10));
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let mut vars = identity.platform("wrong-identity-header-77aa").to_vec();
    vars.push(("AzureWebJobsStorage__accountName", "devstoreaccount1".to_owned()));
    vars.push(("AzureWebJobsStorage__tableServiceUri", azurite.table_endpoint.clone()));
    vars.push(("AUTH_DPOP_REPLAY_STORE", "table".to_owned()));
    vars.push(("AUTH_PUBLIC_URL", PUBLIC_ORIGIN.to_owned()));
    // Snapshots off: only the replay store asks for tokens here.
    vars.push(("AUTH_JWKS_SNAPSHOT_DIR", "off".to_owned()));

    let port = free_port();
    let (mut proc, lines) = handler(&logs, "dpop-refused", port, &idp.issuer, AUDIENCE, &vars);
    let start = read_until(&lines, "scale-out state");
    assert!(start.contains("replay=table"), "{start}");
    wait_ready(&mut proc, port, &http).await;
    let client = DpopClient::new();
    let mut bound = claims(&idp.issuer);
    bound["cnf"] = json!({"jkt": client.jkt()});
    let t = token(&key, &bound);
    for n in 0..2 {
        let refused = call_dpop(&http, port, &t, &client.proof(&t, &format!("refused-{n}"))).await;
        assert_eq!(refused.status(), 503, "fail closed");
        assert!(refused.headers().contains_key("retry-after"));
    }
    assert_eq!(identity.issued(), 0);
    assert!(identity.refused() >= 2, "each DPoP request asked the identity endpoint");
    let bearer = http.get(format!("http://127.0.0.1:{port}/api/api-a")).bearer_auth(token(&key, &claims(&idp.issuer)));
    assert_eq!(bearer.send().await.unwrap().status(), 200, "Bearer never touches storage");
    let text = start + &read_until(&lines, "auth decision");
    let text = text + &read_until(&lines, "status=200");
    assert_eq!(text.matches("DPoP replay store unavailable;").count(), 1, "one warning: {text}");
    assert!(!text.contains("wrong-identity-header-77aa"), "IDENTITY_HEADER never logged: {text}");
}

#[test]
fn an_identity_based_replay_store_without_the_identity_endpoint_does_not_start() {
    let logs = log_dir("storage-identity", "no-endpoint");
    let vars = [
        ("AzureWebJobsStorage__accountName", "myflexapp".to_owned()),
        ("AUTH_DPOP_REPLAY_STORE", "table".to_owned()),
        ("AUTH_PUBLIC_URL", PUBLIC_ORIGIN.to_owned()),
    ];
    let (mut proc, _lines) = handler(&logs, "no-endpoint", free_port(), "https://issuer.example.com/", AUDIENCE, &vars);
    let status = proc.child.wait().unwrap();
    assert!(!status.success(), "must not start");
    let text = proc.log_text();
    assert!(text.contains("IDENTITY_ENDPOINT"), "the error names the variable: {text}");
}

/// Callers that find no token at the same moment share one fetch, and one failed fetch: a
/// burst of first requests after start-up is one call to the identity endpoint, not one each.
#[tokio::test]
async fn concurrent_first_callers_share_one_token_fetch_and_one_failure() {
    use azfn_auth::storage::identity::{Identity, IdentityHeader, IdentityTokens};
    let endpoint = IdentityEndpoint::start().await;
    let tokens = |header: &str| {
        let identity = Identity {
            endpoint: endpoint.url.parse().unwrap(),
            header: IdentityHeader(header.into()),
            client_id: None,
        };
        IdentityTokens::new(identity, provider::http_client(Duration::from_secs(10)))
    };
    let good = tokens(HEADER);
    let answers = futures_util::future::join_all((0..16).map(|_| good.token())).await;
    assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|t| t == answers[0].as_ref().unwrap())));
    assert_eq!((endpoint.issued(), endpoint.refused()), (1, 0), "one fetch for 16 callers");

    let refused = tokens("not-the-platform-header");
    let answers = futures_util::future::join_all((0..16).map(|_| refused.token())).await;
    assert!(answers.iter().all(|a| matches!(a, Err(StorageError::Identity(_)))), "{answers:?}");
    assert_eq!((endpoint.issued(), endpoint.refused()), (1, 1), "one failed fetch for 16 callers");
    // A later caller tries again: a failure is not cached.
    assert!(refused.token().await.is_err());
    assert_eq!(endpoint.refused(), 2);
}
