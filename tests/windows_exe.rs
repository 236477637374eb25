//! The Windows build, `handler.exe`, run under Wine against the real local OpenID Connect
//! provider process (`scripts/oidc-provider`): readiness on `FUNCTIONS_CUSTOMHANDLER_PORT`,
//! keys fetched from the provider, the README's main answer rows, Ctrl-C and SIGTERM, and a
//! start-up error naming a Windows path.
//!
//! Ignored in a plain `cargo test` (there is no Windows binary or Wine there). Run by
//! `scripts/test-windows.sh`, which installs Wine, builds `handler.exe` and the Wine-only
//! ProcessPrng shim next to a copy of it, prepares a private Wine prefix, and runs
//! `cargo test --test windows_exe -- --ignored` with `AZFN_HANDLER_EXE` (the .exe) and
//! `AZFN_WINE` (the wine loader) set. Each test starts its own provider and handler on
//! 127.0.0.1 with ephemeral ports; both are killed and reaped when their guards drop.

// Helpers outside #[test] fns: failing loudly is what a test wants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

#[path = "common/provider.rs"]
mod provider;

use provider::{Proc, Provider, ProviderOptions, free_port, repo_root};

const AUDIENCE: &str = "https://api-a.local/";
const CLIENT_ID: &str = "win-client";
const CLIENT_SECRET: &str = "win-secret";
const FUNCTION_PATH: &str = "/api/api-a";
/// Wine's first start of a process in a prefix can take several seconds on a loaded machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const IGNORED: &str = "needs Wine and handler.exe: run scripts/test-windows.sh";

fn required_env(name: &str) -> PathBuf {
    let value = std::env::var_os(name).unwrap_or_else(|| panic!("{name} is not set; {IGNORED}"));
    let path = PathBuf::from(value);
    assert!(path.is_file(), "{name}={} is not a file; {IGNORED}", path.display());
    path
}

/// A fresh directory for one test's process logs (removed when the test passes).
fn log_dir(name: &str) -> PathBuf {
    provider::log_dir("win", name)
}

/// The local OIDC provider (installed by scripts/test-windows.sh), which lets a token request
/// set the token's lifetime.
fn start_provider(logs: &Path) -> Provider {
    let installed = provider::provider_dir().join("node_modules").is_dir();
    assert!(installed, "run `npm ci --prefix scripts/oidc-provider` first");
    let options = ProviderOptions {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        audiences: &[AUDIENCE],
        allow_test_ttl: true,
        startup_timeout: STARTUP_TIMEOUT,
        http: client(),
    };
    Provider::start(logs, options)
}

/// An access token from `POST /oauth/token` (client credentials), living `ttl` seconds from
/// now (negative: already expired, still signed by the provider's key).
async fn fetch_token(provider: &Provider, ttl: i64) -> String {
    let parsed = provider.token_response(AUDIENCE, Some(ttl), None).await;
    parsed["access_token"].as_str().expect("access_token").to_owned()
}

/// `handler.exe` under Wine, started the way the Functions host on Windows starts it.
struct Handler {
    proc: Proc,
    base: String,
}

impl Handler {
    /// Starts `wine handler.exe` with the host's variables; not waiting for anything.
    fn spawn(issuer: &str, app_root: &str, port: u16, logs: &Path) -> Proc {
        let exe = required_env("AZFN_HANDLER_EXE");
        let wine = required_env("AZFN_WINE");
        let log = logs.join("handler.log");
        let out = std::fs::File::create(&log).expect("create handler log");
        let err = out.try_clone().expect("clone log handle");
        let mut command = Command::new(wine);
        // A clean environment: only what Wine itself needs plus what the host sets.
        command.env_clear();
        for name in ["PATH", "HOME", "WINEPREFIX", "WINEDEBUG", "WINEARCH", "WINEDLLOVERRIDES", "RUST_LOG"] {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .arg(&exe)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", "00000000-0000-4000-8000-00000000000e")
            .env("FUNCTIONS_APP_ROOT_PATH", app_root)
            .env("AUTH_ISSUER", issuer)
            .env("AUTH_AUDIENCE", AUDIENCE)
            // Each test's own key set snapshot folder (a Windows path), so no test starts
            // from another's keys.
            .env("AUTH_JWKS_SNAPSHOT_DIR", windows_path(&logs.join("snapshots")))
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command.spawn().expect("spawn wine handler.exe");
        Proc::new("handler.exe", child, log)
    }

    async fn start(issuer: &str, logs: &Path) -> Handler {
        let port = free_port();
        // A Windows path, as the host passes it (Wine maps drive Z: to the Unix root).
        let mut proc = Handler::spawn(issuer, &windows_path(repo_root()), port, logs);

        let base = format!("http://127.0.0.1:{port}");
        provider::wait_ready(&mut proc, &base, &client(), STARTUP_TIMEOUT, Duration::from_millis(100)).await;
        Handler { proc, base }
    }

    /// Waits (bounded) for `text` in the handler's log and returns that line.
    async fn log_line(&self, text: &str) -> String {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(line) = self.proc.log_text().lines().find(|l| l.contains(text)) {
                return line.to_owned();
            }
            assert!(Instant::now() < deadline, "no {text:?} in the handler log within {STARTUP_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) for the process to end.
    async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.proc.exited() {
                return status;
            }
            assert!(Instant::now() < deadline, "handler.exe still running {STARTUP_TIMEOUT:?} after SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

fn client() -> reqwest::Client {
    provider::http_client(Duration::from_secs(20))
}

/// A provider and a ready handler.exe using it, logging to a fresh directory.
async fn started(name: &str) -> (PathBuf, Provider, Handler) {
    let logs = log_dir(name);
    let provider = start_provider(&logs);
    let handler = Handler::start(&provider.issuer, &logs).await;
    (logs, provider, handler)
}

struct Answer {
    status: u16,
    www_authenticate: String,
    allow: String,
    body: String,
}

async fn call(handler: &Handler, method: reqwest::Method, authorization: Option<&str>) -> Answer {
    let mut request = client().request(method, format!("{}{FUNCTION_PATH}", handler.base));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.expect("request to handler.exe");
    let header = |name: &str| {
        response.headers().get(name).map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned()).unwrap_or_default()
    };
    let (www_authenticate, allow) = (header("www-authenticate"), header("allow"));
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Answer { status, www_authenticate, allow, body }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn segments(token: &str) -> Vec<String> {
    let parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    assert_eq!(parts.len(), 3, "a JWS compact token");
    parts
}

fn finish(logs: PathBuf, provider: Provider, handler: Handler) {
    drop(handler);
    drop(provider);
    let _ = std::fs::remove_dir_all(logs);
}

const INVALID_TOKEN: &str =
    r#"Bearer realm="api", error="invalid_token", error_description="The access token is invalid""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn readiness_probe_answers_200_on_the_custom_handler_port() {
    let (logs, provider, handler) = started("ready").await;
    let response = client().get(format!("{}/", handler.base)).send().await.expect("GET /");
    assert_eq!(response.status(), 200);
    finish(logs, provider, handler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn signing_keys_are_fetched_from_the_provider() {
    let (logs, provider, handler) = started("keys").await;
    let token = fetch_token(&provider, 3600).await;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&segments(&token)[0]).unwrap()).unwrap();
    let kid = header["kid"].as_str().expect("kid in the provider's token header");
    let line = handler.log_line("signing keys loaded").await;
    assert!(line.contains("jwks.keys=1"), "{line}");
    assert!(line.contains(kid), "the provider's key {kid} in {line}");
    finish(logs, provider, handler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn restarted_with_the_provider_down_it_serves_from_the_key_set_snapshot() {
    let (logs, provider, handler) = started("snapshot").await;
    let token = fetch_token(&provider, 3600).await;
    assert_eq!(call(&handler, reqwest::Method::GET, Some(&bearer(&token))).await.status, 200);
    // The snapshot is written on a background thread after the fetch: wait for it (bounded).
    let snapshots = logs.join("snapshots");
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let written = || {
        std::fs::read_dir(&snapshots).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("jwks-") && name.ends_with(".json")
            })
        })
    };
    while !written() {
        assert!(Instant::now() < deadline, "no key set snapshot in {}", snapshots.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(handler);
    let issuer = provider.issuer.clone();
    drop(provider);

    // Issuer gone: a new handler.exe answers from the snapshot, and says so.
    let handler = Handler::start(&issuer, &logs).await;
    let a = call(&handler, reqwest::Method::GET, Some(&bearer(&token))).await;
    assert_eq!((a.status, a.body.as_str()), (200, "Authentication successful"));
    let line = handler.log_line("signing keys loaded from snapshot").await;
    assert!(line.contains("jwks.age_s="), "{line}");
    drop(handler);
    let _ = std::fs::remove_dir_all(logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn no_token_is_401_with_a_bearer_challenge() {
    let (logs, provider, handler) = started("none").await;
    let a = call(&handler, reqwest::Method::GET, None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.www_authenticate, r#"Bearer realm="api""#);
    assert_eq!(a.body, "No authorization token was found");
    finish(logs, provider, handler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn valid_token_is_200_authentication_successful() {
    let (logs, provider, handler) = started("valid").await;
    let token = fetch_token(&provider, 3600).await;
    let a = call(&handler, reqwest::Method::GET, Some(&bearer(&token))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.www_authenticate, "");
    assert_eq!(a.body, "Authentication successful");
    finish(logs, provider, handler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn expired_token_is_401_invalid_token_expired() {
    let (logs, provider, handler) = started("expired").await;
    // Signed by the provider's key; expired ten minutes ago, far beyond the clock skew.
    let token = fetch_token(&provider, -600).await;
    let a = call(&handler, reqwest::Method::GET, Some(&bearer(&token))).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(
        a.www_authenticate,
        r#"Bearer realm="api", error="invalid_token", error_description="The access token expired""#
    );
    assert_eq!(a.body, "The access token expired");
    finish(logs, provider, handler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn tampered_payload_is_401_invalid_token() {
    let (logs, provider, handler) = started("tampered").await;
    let token = fetch_token(&provider, 3600).await;
    let parts = segments(&token);
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("attacker@clients");
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    let a = call(&handler, reqwest::Method::GET, Some(&bearer(&tampered))).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.www_authenticate, INVALID_TOKEN);
    assert_eq!(a.body, "The access token is invalid");
    finish(logs, provider, handler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn token_signed_by_another_key_under_the_providers_kid_is_401_invalid_token() {
    let (logs, provider, handler) = started("forged").await;
    let token = fetch_token(&provider, 3600).await;
    let parts = segments(&token);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    let mut forged_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    forged_header.kid = header["kid"].as_str().map(str::to_owned);
    let pem = std::fs::read(repo_root().join("tests/fixtures/rsa-a.pem")).expect("fixture key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("fixture key parses");
    let forged = jsonwebtoken::encode(&forged_header, &claims, &key).expect("sign");
    let a = call(&handler, reqwest::Method::GET, Some(&bearer(&forged))).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.www_authenticate, INVALID_TOKEN);
    assert_eq!(a.body, "The access token is invalid");
    finish(logs, provider, handler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn malformed_authorization_header_is_400_invalid_request() {
    let (logs, provider, handler) = started("malformed").await;
    let a = call(&handler, reqwest::Method::GET, Some("Bearer a b")).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.www_authenticate.starts_with(r#"Bearer realm="api", error="invalid_request", error_description=""#),
        "{:?}",
        a.www_authenticate
    );
    assert!(a.body.starts_with("Malformed Authorization header"), "{:?}", a.body);
    finish(logs, provider, handler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn method_not_in_function_json_is_405_with_allow() {
    let (logs, provider, handler) = started("method").await;
    let token = fetch_token(&provider, 3600).await;
    let a = call(&handler, reqwest::Method::DELETE, Some(&bearer(&token))).await;
    assert_eq!(a.status, 405, "{}", a.body);
    assert_eq!(a.allow, "GET, POST");
    assert_eq!(a.www_authenticate, "");
    finish(logs, provider, handler);
}

/// Sends `signal` to the Wine process (which is the Windows process: `wine` execs it).
fn send(handler: &Handler, signal: &str) {
    let pid = handler.proc.child.id().to_string();
    let status = Command::new("kill").args([signal, &pid]).status().expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn ctrl_c_stops_handler_exe_gracefully_with_exit_code_0() {
    let (logs, provider, mut handler) = started("ctrl-c").await;
    // Wine delivers SIGINT to a console program as CTRL_C_EVENT, as a console's Ctrl-C does.
    send(&handler, "-INT");
    let exit = handler.wait_exit().await;
    assert_eq!(exit.code(), Some(0), "exit after Ctrl-C: {exit}\n{}", handler.proc.log_text());
    // The handler's own Ctrl-C handler ran (not Wine's default, which also exits).
    let line = handler.log_line("stopping: finishing the requests in flight").await;
    assert!(line.contains("signal=Ctrl-C"), "{line}");
    let port_closed = client().get(format!("{}/", handler.base)).send().await.is_err();
    assert!(port_closed, "the port still answers after the exit");
    finish(logs, provider, handler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn sigterm_ends_handler_exe_and_frees_the_port() {
    let (logs, provider, mut handler) = started("sigterm").await;
    // Windows has no SIGTERM: Wine ends the process at once, as TerminateProcess (what the
    // Functions host does on Windows) would. What matters is that it is gone, port and all.
    send(&handler, "-TERM");
    handler.wait_exit().await;
    let port_closed = client().get(format!("{}/", handler.base)).send().await.is_err();
    assert!(port_closed, "the port still answers after the exit");
    finish(logs, provider, handler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Wine and handler.exe: run scripts/test-windows.sh"]
async fn missing_app_root_exits_1_naming_the_windows_path() {
    let logs = log_dir("no-root");
    let missing = windows_path(&logs.join("no-such-app"));
    let mut proc = Handler::spawn("https://issuer.invalid/", &missing, free_port(), &logs);
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let exit = loop {
        if let Some(status) = proc.exited() {
            break status;
        }
        assert!(Instant::now() < deadline, "handler.exe still running without an app root");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(1), "{exit}");
    let log = proc.log_text();
    assert!(log.contains(&format!("handler: start-up failed: {missing}: cannot list the app root")), "{log}");
    drop(proc);
    let _ = std::fs::remove_dir_all(logs);
}
