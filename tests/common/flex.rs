//! The built `handler` started as the host starts it on Flex Consumption (no shared
//! `$HOME`: `WEBSITE_SKU=FlexConsumption`, `CONTAINER_NAME`), for the storage tests: its
//! stdout as lines to wait on, stderr in a log file.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use super::provider::{self, Proc, repo_root};

/// The secret that seals blob snapshots in these tests.
pub const SECRET: &str = "a-test-secret-of-at-least-32-characters";

/// The handler for `issuer` and `audience` with `vars` set (and nothing else from this
/// process's environment): its guard and its stdout lines.
pub fn handler(
    logs: &Path,
    name: &'static str,
    port: u16,
    issuer: &str,
    audience: &str,
    vars: &[(&str, impl AsRef<str>)],
) -> (Proc, Receiver<String>) {
    let log = logs.join(format!("{name}.stderr.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_handler"))
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_APP_ROOT_PATH", repo_root())
        .env("RUST_LOG", "info")
        .env("WEBSITE_SKU", "FlexConsumption")
        .env("CONTAINER_NAME", "flex-instance")
        .env("AUTH_ISSUER", issuer)
        .env("AUTH_AUDIENCE", audience)
        .env("AUTH_SNAPSHOT_SECRET", SECRET)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_ref())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    (Proc::new(name, child, log), lines)
}

/// Stdout lines until one contains `needle` (bounded); all lines read so far. Blocks its
/// worker thread, so the tests calling it run on two.
pub fn read_until(lines: &Receiver<String>, needle: &str) -> String {
    let mut out = String::new();
    while !out.contains(needle) {
        match lines.recv_timeout(Duration::from_secs(15)) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
            }
            Err(_) => panic!("no line with {needle:?} on stdout; got:\n{out}"),
        }
    }
    out
}

/// Until the handler on `port` answers its readiness probe (bounded).
pub async fn wait_ready(proc: &mut Proc, port: u16, http: &reqwest::Client) {
    provider::wait_ready(
        proc,
        &format!("http://127.0.0.1:{port}"),
        http,
        Duration::from_secs(20),
        Duration::from_millis(20),
    )
    .await;
}
