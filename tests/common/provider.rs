//! Real processes for the end-to-end tests (tests/e2e_provider.rs, tests/windows_exe.rs,
//! tests/example_mcp.rs): a child process guard, the local OpenID Connect provider process
//! (`scripts/oidc-provider`, oauth2-mock-server playing Auth0) with its token endpoint, the
//! MCP client's install, and the small helpers around them.
//!
//! Included with `#[path = "common/provider.rs"] mod provider;`, not from `common/mod.rs`:
//! those tests need none of the in-process helpers there, and the others none of these.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `scripts/oidc-provider`.
pub fn provider_dir() -> PathBuf {
    repo_root().join("scripts").join("oidc-provider")
}

/// A fresh directory for one test's process logs (removed when the test passes), named
/// `{prefix}-{name}-{pid}-{n}` under the target's tmp dir.
pub fn log_dir(prefix: &str, name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{prefix}-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create log dir");
    dir
}

/// A port that was free a moment ago (as the Functions host picks one).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A client that ignores proxy settings, with a per-request `timeout`.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder().no_proxy().timeout(timeout).build().expect("reqwest client")
}

/// A child process that is killed and reaped on drop; on a failing test it prints its log.
pub struct Proc {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
    _stdin: Option<ChildStdin>,
}

impl Proc {
    /// Guards `child`, holding its stdin pipe if it has one (the child sees EOF when this
    /// process dies without running destructors).
    pub fn new(name: &'static str, mut child: Child, log: PathBuf) -> Proc {
        let stdin = child.stdin.take();
        Proc { name, child, log, _stdin: stdin }
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- {} log ({}) -----\n{}", self.name, self.log.display(), self.log_text());
        }
    }
}

/// Readiness, as the Functions host probes a handler: `GET {base}/` until any answer (which
/// must be 200), polling every `poll`; fails if the process exits first or `timeout` passes.
pub async fn wait_ready(proc: &mut Proc, base: &str, client: &reqwest::Client, timeout: Duration, poll: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(response) = client.get(format!("{base}/")).send().await {
            assert_eq!(response.status(), 200, "GET / (readiness probe)");
            return;
        }
        if let Some(status) = proc.exited() {
            panic!("{} exited before it was ready: {status}\n{}", proc.name, proc.log_text());
        }
        assert!(Instant::now() < deadline, "{} did not answer GET / within {timeout:?}", proc.name);
        tokio::time::sleep(poll).await;
    }
}

/// `npm ci` for the provider when its node_modules is missing.
pub fn ensure_provider_installed() {
    ensure_npm_installed(&provider_dir(), "oauth2-mock-server", "the local OIDC provider");
}

/// `scripts/mcp-client`: the official MCP TypeScript SDK client (tests/example_mcp.rs).
pub fn mcp_client_dir() -> PathBuf {
    repo_root().join("scripts").join("mcp-client")
}

/// `npm ci` for the MCP client when its node_modules is missing.
pub fn ensure_mcp_client_installed() {
    ensure_npm_installed(&mcp_client_dir(), "@modelcontextprotocol/sdk", "the MCP client");
}

/// `npm ci` in `dir` (pinned by its package-lock.json) unless `node_modules/{marker}` is
/// there. Installs into a private directory and renames it into place, so concurrent test
/// processes never see half an install.
pub fn ensure_npm_installed(dir: &Path, marker: &str, what: &str) {
    if dir.join("node_modules").join(marker).is_dir() {
        return;
    }
    // Per test thread too: the tests of one file run concurrently in one process.
    static STAGING: AtomicUsize = AtomicUsize::new(0);
    let staging = dir.join(format!(".npm-ci-{}-{}", std::process::id(), STAGING.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).expect("create npm staging dir");
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(dir.join(file), staging.join(file)).expect("copy package files");
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&staging)
        .stdout(Stdio::null())
        .status();
    let installed = matches!(&status, Ok(s) if s.success());
    if installed {
        // Losing the race to another process is fine: its node_modules is the same.
        let _ = std::fs::rename(staging.join("node_modules"), dir.join("node_modules"));
    }
    let _ = std::fs::remove_dir_all(&staging);
    assert!(
        installed,
        "`npm ci` for {what} failed ({status:?}); run `npm ci --prefix {}` (needs node >= 20.19 and npm)",
        dir.display()
    );
}

/// How to start the provider.
pub struct ProviderOptions<'a> {
    /// The one client it knows (client credentials).
    pub client_id: &'a str,
    pub client_secret: &'a str,
    /// The APIs it issues tokens for.
    pub audiences: &'a [&'a str],
    /// `--allow-test-ttl`: a token request may set the token's lifetime (`test_ttl`).
    pub allow_test_ttl: bool,
    /// How long to wait for its ready line.
    pub startup_timeout: Duration,
    /// The client for token requests.
    pub http: reqwest::Client,
}

/// The local OIDC provider on 127.0.0.1 with an ephemeral port. Its stdin is a pipe held
/// here: if the test process dies without running destructors, the provider exits on EOF.
/// Does not install it: see [`ensure_provider_installed`].
pub struct Provider {
    _proc: Proc,
    pub issuer: String,
    pub token_endpoint: String,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
}

impl Provider {
    /// Starts `node scripts/oidc-provider/provider.mjs --port 0 ...`, logging to
    /// `{logs}/oidc-provider.log`, and waits (bounded) for its JSON ready line.
    pub fn start(logs: &Path, options: ProviderOptions<'_>) -> Provider {
        Self::start_with(logs, options, &[])
    }

    /// [`Provider::start`] with more command-line options (`--scope "a b"`, `--ttl N`).
    pub fn start_with(logs: &Path, options: ProviderOptions<'_>, extra: &[&str]) -> Provider {
        let log = logs.join("oidc-provider.log");
        let mut command = Command::new("node");
        command.arg(provider_dir().join("provider.mjs")).args(["--port", "0", "--host", "127.0.0.1"]).args(extra);
        if options.allow_test_ttl {
            command.arg("--allow-test-ttl");
        }
        let child = command
            .args(["--client-id", options.client_id, "--client-secret", options.client_secret])
            .arg("--audience")
            .arg(options.audiences.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create provider log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `node` for the local OIDC provider (need node >= 20.19): {e}"));
        let mut proc = Proc::new("oidc-provider", child, log);
        let stdout = proc.child.stdout.take().expect("provider stdout");

        // The ready line, read on a thread so the wait is bounded.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(options.startup_timeout) {
            Ok(line) if !line.trim().is_empty() => line,
            other => panic!(
                "the OIDC provider did not report ready ({other:?}, exit {:?}); its log:\n{}",
                proc.exited(),
                proc.log_text()
            ),
        };
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad ready line {line:?}: {e}"));
        assert_eq!(ready["event"], "ready", "{line}");
        let field = |k: &str| ready[k].as_str().unwrap_or_else(|| panic!("no {k} in {line}")).to_owned();
        Provider {
            issuer: field("issuer"),
            token_endpoint: field("token_endpoint"),
            _proc: proc,
            client_id: options.client_id.to_owned(),
            client_secret: options.client_secret.to_owned(),
            http: options.http,
        }
    }

    /// Client credentials for `audience`, as against Auth0's `POST /oauth/token` (JSON body),
    /// optionally with a `test_ttl` (seconds from now; negative: already expired; needs
    /// `allow_test_ttl`) and a DPoP proof header. Checks for 200 and returns the JSON answer.
    pub async fn token_response(&self, audience: &str, test_ttl: Option<i64>, dpop_proof: Option<&str>) -> Value {
        let mut body = json!({
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "audience": audience,
        });
        if let Some(ttl) = test_ttl {
            body["test_ttl"] = json!(ttl);
        }
        let mut request = self.http.post(&self.token_endpoint).header("content-type", "application/json");
        if let Some(proof) = dpop_proof {
            request = request.header("dpop", proof);
        }
        let response = request.body(body.to_string()).send().await.expect("token request to the provider");
        let status = response.status();
        let text = response.text().await.expect("token response body");
        assert_eq!(status, 200, "token endpoint answered {text}");
        serde_json::from_str(&text).expect("token response is JSON")
    }
}
