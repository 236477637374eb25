//! The built `handler` binary started the way the Functions host starts it: environment,
//! port, app root; start-up failures exit non-zero naming the setting; a SIGKILL and a
//! restart lose nothing; a restart while the issuer is down serves from the key set snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Kills the child when dropped, even if the test panics.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn handler(port: u16, app_root: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handler"));
    command
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_APP_ROOT_PATH", app_root)
        .env("RUST_LOG", "info")
        // Hermetic by default: no key set snapshot from another test or an earlier run.
        .env("AUTH_JWKS_SNAPSHOT_DIR", "off")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A plain HTTP/1.1 GET on loopback; `None` while nothing listens.
fn http_get(port: u16, path: &str, headers: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// Polls the readiness probe like the host does (every 25 ms), bounded.
fn wait_ready(port: u16) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if http_get(port, "/", "").is_some() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("handler did not answer GET / within 20 s");
}

/// Reads the child's stdout line by line on a thread.
fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

#[test]
fn missing_audience_exits_non_zero_naming_the_variable() {
    let output = handler(free_port(), &repo_root(), &[("AUTH0_DOMAIN", "t.auth0.com")]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AUTH_AUDIENCE"), "{stderr}");
}

#[test]
fn insecure_issuer_exits_non_zero_naming_the_variable() {
    let env = [("AUTH_ISSUER", "http://login.example.com/"), ("AUTH_AUDIENCE", "a")];
    let output = handler(free_port(), &repo_root(), &env).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("AUTH_ISSUER"));
}

#[test]
fn a_function_folder_without_a_handler_exits_non_zero_naming_the_file() {
    let root = std::env::temp_dir().join(format!("azfn-auth-unknown-{}", std::process::id()));
    std::fs::create_dir_all(root.join("api-z")).unwrap();
    std::fs::copy(repo_root().join("api-a/function.json"), root.join("api-z/function.json")).unwrap();
    let env = [("AUTH0_DOMAIN", "t.auth0.com"), ("AUTH_AUDIENCE", "a")];
    let output = handler(free_port(), &root, &env).output().unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("api-z/function.json"));
}

#[test]
fn port_in_use_exits_non_zero() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let env = [("AUTH0_DOMAIN", "t.auth0.com"), ("AUTH_AUDIENCE", "a")];
    let output = handler(port, &repo_root(), &env).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("FUNCTIONS_CUSTOMHANDLER_PORT"));
}

#[test]
fn serves_the_shipped_app_root_and_survives_sigkill_and_restart() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = rt.block_on(Idp::start(&[&key]));
    let port = free_port();
    let env = [("AUTH_ISSUER", idp.issuer.as_str()), ("AUTH_AUDIENCE", AUDIENCE)];
    let t = token(&key, &claims(&idp.issuer));
    let auth = format!("Authorization: Bearer {t}\r\nx-functions-key: k\r\n");

    for round in 0..2 {
        let mut child = Running(handler(port, &repo_root(), &env).spawn().unwrap());
        let lines = stdout_lines(&mut child.0);
        wait_ready(port);
        assert_eq!(http_get(port, "/", "").unwrap().0, 200);
        let (status, body) = http_get(port, "/api/api-a", &auth).unwrap();
        assert_eq!((status, body.as_str()), (200, "Authentication successful"), "round {round}");
        let (status, body) = http_get(port, "/api/api-a?code=k", "").unwrap();
        assert_eq!((status, body.as_str()), (401, "No authorization token was found"));
        // Both decisions reach stdout (written in batches, so wait for them, bounded).
        let mut stdout = String::new();
        while stdout.matches("auth decision").count() < 2 {
            let line = lines.recv_timeout(Duration::from_secs(10)).expect("decision lines on stdout");
            stdout.push_str(&line);
            stdout.push('\n');
        }
        // logfmt: plain values bare, others quoted (src/telemetry.rs), as the README's query expects.
        assert!(stdout.contains(" INFO auth decision function=api-a outcome=allowed status=200 "), "{stdout}");
        assert!(stdout.contains("outcome=denied status=401 auth.reason=\"no bearer token\" client_id=-"), "{stdout}");
        // The host kills workers with SIGKILL; no state is lost because there is none.
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        stdout.extend(lines.iter().map(|l| l + "\n"));
        assert!(!stdout.contains(&t), "the token was logged");
        assert!(!stdout.contains("x-functions-key") && !stdout.contains("code=k"), "the function key was logged");
    }
}

#[test]
fn local_settings_json_lists_every_setting_and_parses() {
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("local.settings.json")).unwrap()).unwrap();
    let values = settings["Values"].as_object().unwrap();
    let config =
        azfn_auth::config::Config::from_lookup(|name| values.get(name).and_then(|v| v.as_str()).map(str::to_owned));
    assert!(config.is_ok(), "{:?}", config.err());
    // Every variable in the settings table of src/config.rs has a placeholder (the host sets
    // the two FUNCTIONS_* ones itself, the platform IDENTITY_ENDPOINT/IDENTITY_HEADER, and
    // the identity-based AzureWebJobsStorage__* connection is for Azure: locally,
    // AzureWebJobsStorage holds a connection string).
    let documented = include_str!("../src/config.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|l| l.split('`').next())
        .filter(|name| !name.starts_with("FUNCTIONS_") && !name.starts_with("IDENTITY_"))
        .filter(|name| !name.starts_with("AzureWebJobsStorage__"))
        .collect::<Vec<_>>();
    assert!(documented.len() > 10, "{documented:?}");
    for name in documented {
        assert!(values.contains_key(name), "local.settings.json lacks {name}");
    }
}

/// A private folder under the temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("azfn-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits (bounded) until the issuer's snapshot file exists and holds a key set.
fn wait_for_snapshot(dir: &Path, issuer: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if azfn_auth::auth::snapshot::read(dir, issuer, None, now() as u64, Duration::from_secs(3600)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no snapshot for {issuer} written to {}", dir.display());
}

/// Collects stdout lines until one contains `needle` (bounded); returns all read so far.
fn read_until(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let mut out = String::new();
    while !out.contains(needle) {
        match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
            }
            Err(_) => panic!("no line with {needle:?} on stdout; got:\n{out}"),
        }
    }
    out
}

#[test]
fn restart_with_the_issuer_down_serves_from_the_snapshot() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = rt.block_on(Idp::start(&[&key]));
    let dir = TempDir::new("snapshot-restart");
    let port = free_port();
    let dir_value = dir.0.to_str().unwrap();
    let env =
        [("AUTH_ISSUER", idp.issuer.as_str()), ("AUTH_AUDIENCE", AUDIENCE), ("AUTH_JWKS_SNAPSHOT_DIR", dir_value)];
    let t = token(&key, &claims(&idp.issuer));
    let auth = format!("Authorization: Bearer {t}\r\n");

    // First instance: keys from the network, written to the snapshot.
    let mut first = Running(handler(port, &repo_root(), &env).spawn().unwrap());
    let lines = stdout_lines(&mut first.0);
    wait_ready(port);
    assert_eq!(http_get(port, "/api/api-a", &auth).unwrap().0, 200);
    let log = read_until(&lines, "auth decision");
    assert!(log.contains("signing keys loaded") && log.contains("jwks.source=network"), "{log}");
    assert!(log.contains(" keys=fresh "), "{log}");
    wait_for_snapshot(&dir.0, &idp.issuer);
    drop(first);

    // The issuer goes down; a new instance answers at once from the snapshot.
    idp.set_mode(IdpMode::Status(503));
    let mut second = Running(handler(port, &repo_root(), &env).spawn().unwrap());
    let lines = stdout_lines(&mut second.0);
    wait_ready(port);
    let (status, body) = http_get(port, "/api/api-a", &auth).unwrap();
    assert_eq!((status, body.as_str()), (200, "Authentication successful"));
    let log = read_until(&lines, "auth decision");
    assert!(log.contains("signing keys loaded from snapshot") && log.contains("jwks.age_s="), "{log}");
    assert!(log.contains(" keys=snapshot "), "stale service shows on the decision line: {log}");
    // A tampered token is still refused: the snapshot only supplies keys.
    let tampered = format!("Authorization: Bearer {}x\r\n", &t[..t.len() - 1]);
    assert_eq!(http_get(port, "/api/api-a", &tampered).unwrap().0, 401);
    drop(second);

    // Off: the same restart has no keys and fails closed.
    let off = [("AUTH_ISSUER", idp.issuer.as_str()), ("AUTH_AUDIENCE", AUDIENCE)];
    let _third = Running(handler(port, &repo_root(), &off).spawn().unwrap());
    wait_ready(port);
    assert_eq!(http_get(port, "/api/api-a", &auth).unwrap().0, 503);
}

#[test]
fn two_processes_writing_one_snapshot_folder_never_tear_a_file() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = rt.block_on(Idp::start(&[&key]));
    let dir = TempDir::new("snapshot-two-writers");
    let dir_value = dir.0.to_str().unwrap();
    // Cooldown 0: every unknown kid is a fetch, and every fetch a snapshot write.
    let env = [
        ("AUTH_ISSUER", idp.issuer.as_str()),
        ("AUTH_AUDIENCE", AUDIENCE),
        ("AUTH_JWKS_SNAPSHOT_DIR", dir_value),
        ("AUTH_JWKS_COOLDOWN_SECONDS", "0"),
    ];
    let ports = [free_port(), free_port()];
    let _children: Vec<_> =
        ports.iter().map(|&port| Running(handler(port, &repo_root(), &env).spawn().unwrap())).collect();
    for &port in &ports {
        wait_ready(port);
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let reads = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let now = now() as u64;
                match azfn_auth::auth::snapshot::read(&dir.0, &idp.issuer, None, now, Duration::from_secs(3600)) {
                    Ok(_) => reads += 1,
                    Err(azfn_auth::auth::snapshot::Ignored::Missing) => {}
                    Err(other) => panic!("torn or unreadable snapshot: {other}"),
                }
            }
            reads
        });
        let writers: Vec<_> = ports
            .iter()
            .map(|&port| {
                let issuer = idp.issuer.as_str();
                scope.spawn(move || {
                    for i in 0..60 {
                        let random = rsa_key("rsa-a.pem", &format!("unknown-{port}-{i}"));
                        let auth = format!("Authorization: Bearer {}\r\n", token(&random, &claims(issuer)));
                        assert_eq!(http_get(port, "/api/api-a", &auth).unwrap().0, 401);
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(reads > 0, "the reader never saw a snapshot");
    assert!(idp.jwks_hits() >= 100, "each unknown kid should have been a fetch: {}", idp.jwks_hits());
    // Once the last writes finish (bounded wait), only the snapshot file is left: no temp
    // files from either writer.
    let started = Instant::now();
    let mut names: Vec<_>;
    loop {
        names = std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        if names.len() == 1 || started.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(names.len(), 1, "{names:?}");
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_handler_gracefully_with_exit_0_and_says_so() {
    let port = free_port();
    let env = [("AUTH0_DOMAIN", "t.auth0.com"), ("AUTH_AUDIENCE", "a")];
    let mut child = Running(handler(port, &repo_root(), &env).spawn().unwrap());
    let lines = stdout_lines(&mut child.0);
    wait_ready(port);
    let sent = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let log = read_until(&lines, "stopping");
    assert!(log.contains("signal=SIGTERM"), "{log}");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "handler still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
}
