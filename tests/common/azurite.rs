//! Azurite, the real Azure Storage emulator (`scripts/azurite`, npm, pinned by its lock
//! file), as a child process on loopback with ephemeral ports and in-memory persistence,
//! killed when dropped. Included with `#[path = "common/azurite.rs"] mod azurite;` next to
//! `common/provider.rs` (for its process guard and `npm ci`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::provider::{Proc, ensure_npm_installed, repo_root};

/// Azurite's well-known development account (public, from Microsoft's documentation).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub fn azurite_dir() -> PathBuf {
    repo_root().join("scripts").join("azurite")
}

/// A running Azurite: its Blob and Table endpoints (path-style, account in the path).
pub struct Azurite {
    _proc: Proc,
    pub blob_endpoint: String,
    pub table_endpoint: String,
}

impl Azurite {
    /// Installs Azurite on first use (`npm ci`) and starts it, waiting (bounded) until both
    /// services say where they listen.
    pub fn start(logs: &Path) -> Azurite {
        Self::start_with(logs, &[])
    }

    /// Azurite over HTTPS with this certificate and key (PEM files) and OAuth on
    /// (`--oauth basic`: bearer tokens accepted, checked for audience, issuer and lifetime,
    /// and only over HTTPS), beside Shared Key.
    pub fn start_https_oauth(logs: &Path, cert: &Path, key: &Path) -> Azurite {
        let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
        Self::start_with(logs, &["--cert", &cert, "--key", &key, "--oauth", "basic"])
    }

    fn start_with(logs: &Path, extra: &[&str]) -> Azurite {
        ensure_npm_installed(&azurite_dir(), "azurite", "Azurite");
        let log = logs.join("azurite.log");
        let child = Command::new("node")
            .arg(azurite_dir().join("node_modules/azurite/dist/src/azurite.js"))
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0"])
            .args(["--queueHost", "127.0.0.1", "--queuePort", "0"])
            .args(["--tableHost", "127.0.0.1", "--tablePort", "0"])
            .args(["--inMemoryPersistence", "--extentMemoryLimit", "64", "--skipApiVersionCheck", "--loose"])
            // No access log on stdout (only the start-up lines are read).
            .args(["--disableTelemetry", "--silent"])
            .args(extra)
            .current_dir(logs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create azurite log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `node` for Azurite: {e}"));
        let mut proc = Proc::new("azurite", child, log);
        let stdout = proc.child.stdout.take().expect("azurite stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Drains stdout to the end, so Azurite never writes into a closed pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut blob, mut table) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while blob.is_none() || table.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("Azurite did not report its ports ({e}); its log:\n{}", proc.log_text()));
            let at = |service: &str| {
                line.strip_prefix(&format!("Azurite {service} service is successfully listening at "))
                    .map(|url| format!("{}/{ACCOUNT}", url.trim().trim_end_matches('/')))
            };
            blob = blob.or_else(|| at("Blob"));
            table = table.or_else(|| at("Table"));
        }
        Azurite { _proc: proc, blob_endpoint: blob.unwrap(), table_endpoint: table.unwrap() }
    }

    /// A Shared Key connection string with explicit endpoints, as for any account.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={};TableEndpoint={};",
            self.blob_endpoint, self.table_endpoint
        )
    }
}
