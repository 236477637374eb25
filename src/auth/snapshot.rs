//! The last good key set of one issuer on disk: written atomically after a successful fetch,
//! read back at start-up so a new or restarted instance can answer before the issuer does.
//! A snapshot is only a cache of network answers: its keys go through the same parser.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::config::SnapshotDir;

/// Format version written into every file; other versions are ignored.
const VERSION: u32 = 1;

/// How far in the future a snapshot's fetch time may lie (clocks of two instances differ)
/// before the file is refused. Larger would let a wrong clock extend the stale window.
const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(60);

/// Largest snapshot file read; bigger files are ignored (the key set itself is capped).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One issuer's key set as last fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    /// The issuer the keys belong to.
    pub issuer: String,
    /// The URL the key set was fetched from.
    pub jwks_uri: String,
    /// When it was fetched, in seconds since the Unix epoch.
    pub fetched_at: u64,
    /// The key set document exactly as served (parsed again, by the same rules, on load).
    pub jwks: String,
}

/// Why a snapshot was not used (logged once as a warning).
#[derive(Debug, thiserror::Error)]
pub enum Ignored {
    /// No file for this issuer.
    #[error("no snapshot")]
    Missing,
    /// The file could not be read.
    #[error("unreadable: {0}")]
    Unreadable(String),
    /// Not a snapshot document of this version.
    #[error("corrupt or of another format")]
    Corrupt,
    /// Written for another issuer.
    #[error("written for another issuer")]
    OtherIssuer,
    /// Fetched from another key set URL than the configured one.
    #[error("fetched from another key set URL")]
    OtherUrl,
    /// Older than the stale limit.
    #[error("older than AUTH_JWKS_MAX_STALE_SECONDS")]
    TooOld,
    /// Dated in the future beyond clock tolerance.
    #[error("dated in the future")]
    FromTheFuture,
    /// Its HMAC does not verify under `AUTH_SNAPSHOT_SECRET`: written by someone without
    /// the secret (or with another one), or altered since.
    #[error("authentication check failed (not sealed with AUTH_SNAPSHOT_SECRET)")]
    BadSeal,
}

impl Snapshot {
    /// A snapshot of `jwks` for `issuer`, fetched from `jwks_uri` at `fetched_at`.
    pub fn new(issuer: &str, jwks_uri: &str, fetched_at: u64, jwks: String) -> Self {
        Self { version: VERSION, issuer: issuer.to_owned(), jwks_uri: jwks_uri.to_owned(), fetched_at, jwks }
    }
}

/// The file holding `issuer`'s snapshot in `dir`: one per issuer, named by a hash so any
/// issuer string gives a safe file name.
pub fn path_for(dir: &Path, issuer: &str) -> PathBuf {
    dir.join(file_name(issuer))
}

/// `jwks-<first 16 bytes of SHA-256(issuer), hex>.json`: the file (and blob) name of `issuer`'s snapshot.
pub fn file_name(issuer: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, issuer.as_bytes());
    let hex: String = digest.as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("jwks-{hex}.json")
}

/// Age of a snapshot fetched at `fetched_at` when it is `now` (Unix seconds), if it may
/// still serve under `max_stale`.
pub fn usable_age(fetched_at: u64, now: u64, max_stale: Duration) -> Result<Duration, Ignored> {
    if fetched_at > now {
        return if fetched_at - now <= MAX_CLOCK_AHEAD.as_secs() {
            Ok(Duration::ZERO)
        } else {
            Err(Ignored::FromTheFuture)
        };
    }
    let age = Duration::from_secs(now - fetched_at);
    if age > max_stale { Err(Ignored::TooOld) } else { Ok(age) }
}

/// Writes `snapshot` into `dir` atomically: a uniquely named temp file (owner-only on
/// Unix), flushed to disk, then renamed over the issuer's file, so readers (in this or
/// any other process) see the old file or the new one, never a mix.
pub fn write(dir: &Path, snapshot: &Snapshot) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    create_private_dir(dir)?;
    let target = path_for(dir, &snapshot.issuer);
    let body = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
    let temp = dir.join(format!(
        ".{}.{}.{}.tmp",
        target.file_name().and_then(|n| n.to_str()).unwrap_or("jwks"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(&body)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map(|()| target)
}

/// The folder snapshots live in for `setting`, created when missing; `None` when snapshots
/// are off or no trustworthy folder can be had (one warning line says why).
///
/// A configured folder is used as given (its permissions are the operator's). The App
/// Service default must accept a write, else the OS temp dir is used. The temp dir is
/// shared by every local user, so there the folder is per user and, on Unix, must be
/// owned by this user and closed to others: a snapshot planted by someone else would be
/// trusted as signing keys.
pub fn resolve(setting: &SnapshotDir) -> Option<PathBuf> {
    let warn_unusable = |dir: &Path, why: &dyn std::fmt::Display| {
        warn!(dir = %dir.display(), error = %why, "key set snapshot folder unusable; snapshots off");
    };
    match setting {
        // Blob snapshots are no folder (`super::blob_snapshot`).
        SnapshotDir::Off | SnapshotDir::Blob(_) => None,
        SnapshotDir::Dir(dir) => match create_private_dir(dir) {
            Ok(()) => Some(dir.clone()),
            Err(e) => {
                warn_unusable(dir, &e);
                None
            }
        },
        SnapshotDir::Default { app_service } => {
            if let Some(dir) = app_service {
                match create_private_dir(dir).and_then(|()| probe_write(dir)) {
                    Ok(()) => return Some(dir.clone()),
                    Err(e) => warn!(
                        dir = %dir.display(),
                        error = %e,
                        "app storage not writable; key set snapshots go to the temp dir"
                    ),
                }
            }
            let dir = match private_temp_dir() {
                Ok(dir) => dir,
                Err(e) => {
                    warn_unusable(&std::env::temp_dir(), &e);
                    return None;
                }
            };
            match create_private_dir(&dir).and_then(|()| check_private(&dir)) {
                Ok(()) => Some(dir),
                Err(e) => {
                    warn_unusable(&dir, &e);
                    None
                }
            }
        }
    }
}

/// Creates and removes a file in `dir`: a folder can exist and still refuse writes.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".probe.{}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&probe)?;
    std::fs::remove_file(probe)
}

/// `<temp>/azfn-auth-<uid>` on Unix (the uid read from `/proc/self`), `<temp>/azfn-auth`
/// elsewhere (Windows' temp dir is already per user).
fn private_temp_dir() -> std::io::Result<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self")?.uid();
        Ok(std::env::temp_dir().join(format!("azfn-auth-{uid}")))
    }
    #[cfg(not(unix))]
    {
        Ok(std::env::temp_dir().join("azfn-auth"))
    }
}

/// On Unix: `dir` is owned by this process's user and neither group nor others may
/// write into it (it may have been created by someone else before us).
fn check_private(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self")?.uid();
        let meta = std::fs::symlink_metadata(dir)?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Removes temp files older than `older_than` that writers killed mid-write (the host kills
/// workers with SIGKILL) left in `dir`; younger ones may belong to a write in progress.
pub fn sweep_temp_files(dir: &Path, older_than: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let old =
            || entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > older_than));
        if name.starts_with(".jwks-") && name.ends_with(".tmp") && old() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Reads `issuer`'s snapshot from `dir` and checks it names that issuer, that `jwks_uri`
/// (when the URL is configured rather than discovered) matches, and that it is young enough
/// at `now` (Unix seconds). Returns the snapshot and its age.
pub fn read(
    dir: &Path,
    issuer: &str,
    jwks_uri: Option<&str>,
    now: u64,
    max_stale: Duration,
) -> Result<(Snapshot, Duration), Ignored> {
    use std::io::Read;
    let path = path_for(dir, issuer);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Ignored::Missing),
        Err(e) => return Err(Ignored::Unreadable(e.kind().to_string())),
    };
    let mut body = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut body).map_err(|e| Ignored::Unreadable(e.kind().to_string()))?;
    if body.len() as u64 > MAX_FILE_BYTES {
        return Err(Ignored::Corrupt);
    }
    let snapshot: Snapshot = serde_json::from_slice(&body).map_err(|_| Ignored::Corrupt)?;
    check(snapshot, issuer, jwks_uri, now, max_stale)
}

/// The checks every snapshot passes wherever it was kept: this format version, `issuer`,
/// `jwks_uri` when configured, and young enough at `now`.
pub fn check(
    snapshot: Snapshot,
    issuer: &str,
    jwks_uri: Option<&str>,
    now: u64,
    max_stale: Duration,
) -> Result<(Snapshot, Duration), Ignored> {
    if snapshot.version != VERSION {
        return Err(Ignored::Corrupt);
    }
    if snapshot.issuer != issuer {
        return Err(Ignored::OtherIssuer);
    }
    if jwks_uri.is_some_and(|uri| uri != snapshot.jwks_uri) {
        return Err(Ignored::OtherUrl);
    }
    let age = usable_age(snapshot.fetched_at, now, max_stale)?;
    Ok((snapshot, age))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://issuer.example/";
    const URI: &str = "https://issuer.example/.well-known/jwks.json";
    const DAY: Duration = Duration::from_secs(86_400);

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            Self(std::env::temp_dir().join(format!("azfn-snapshot-{name}-{}-{n}", std::process::id())))
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn snap(fetched_at: u64) -> Snapshot {
        Snapshot::new(ISSUER, URI, fetched_at, r#"{"keys":[]}"#.to_owned())
    }

    #[test]
    fn age_is_checked_against_the_stale_limit() {
        assert_eq!(usable_age(1_000, 1_000, DAY).ok(), Some(Duration::ZERO));
        assert_eq!(usable_age(1_000, 1_000 + 86_400, DAY).ok(), Some(DAY));
        assert!(matches!(usable_age(1_000, 1_001 + 86_400, DAY), Err(Ignored::TooOld)));
        assert_eq!(usable_age(1_060, 1_000, DAY).ok(), Some(Duration::ZERO));
        assert!(matches!(usable_age(1_061, 1_000, DAY), Err(Ignored::FromTheFuture)));
    }

    #[test]
    fn a_written_snapshot_reads_back_with_its_age() {
        let dir = TempDir::new("roundtrip");
        let path = write(&dir.0, &snap(1_000)).unwrap();
        assert_eq!(path, path_for(&dir.0, ISSUER));
        let (read_back, age) = read(&dir.0, ISSUER, Some(URI), 1_010, DAY).unwrap();
        assert_eq!(read_back, snap(1_000));
        assert_eq!(age, Duration::from_secs(10));
        // Discovered URL: any recorded URL is accepted.
        assert!(read(&dir.0, ISSUER, None, 1_010, DAY).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn snapshot_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("mode");
        let path = write(&dir.0, &snap(1)).unwrap();
        assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn other_issuer_url_age_and_corruption_are_ignored() {
        let dir = TempDir::new("ignored");
        assert!(matches!(read(&dir.0, ISSUER, None, 1, DAY), Err(Ignored::Missing)));
        write(&dir.0, &snap(1_000)).unwrap();
        assert!(matches!(
            read(&dir.0, ISSUER, Some("https://issuer.example/other"), 1_000, DAY),
            Err(Ignored::OtherUrl)
        ));
        assert!(matches!(read(&dir.0, ISSUER, None, 1_000 + 2 * 86_400, DAY), Err(Ignored::TooOld)));
        // A file for another issuer placed under this issuer's name.
        let mut other = snap(1_000);
        other.issuer = "https://evil.example/".to_owned();
        std::fs::write(path_for(&dir.0, ISSUER), serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(matches!(read(&dir.0, ISSUER, None, 1_000, DAY), Err(Ignored::OtherIssuer)));
        std::fs::write(path_for(&dir.0, ISSUER), b"{\"version\":1,\"issuer\":").unwrap();
        assert!(matches!(read(&dir.0, ISSUER, None, 1_000, DAY), Err(Ignored::Corrupt)));
    }

    #[test]
    fn sweeping_removes_only_old_temp_files() {
        let dir = TempDir::new("sweep");
        write(&dir.0, &snap(1)).unwrap();
        let leftover = dir.0.join(".jwks-0123.json.99.0.tmp");
        std::fs::write(&leftover, b"{").unwrap();
        sweep_temp_files(&dir.0, Duration::from_secs(3600));
        assert!(leftover.exists(), "a young temp file may be a write in progress");
        sweep_temp_files(&dir.0, Duration::ZERO);
        assert!(!leftover.exists());
        assert!(path_for(&dir.0, ISSUER).exists(), "the snapshot itself stays");
    }

    #[test]
    fn concurrent_writers_never_leave_a_torn_file() {
        let dir = TempDir::new("race");
        let big = |n: u64| Snapshot::new(ISSUER, URI, n, format!("{{\"keys\":[\"{}\"]}}", "x".repeat(64 * 1024)));
        std::thread::scope(|s| {
            for w in 0..4u64 {
                let dir = &dir.0;
                s.spawn(move || {
                    for i in 0..25 {
                        write(dir, &big(w * 100 + i)).unwrap();
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..200 {
                    match read(&dir.0, ISSUER, Some(URI), 1_000, DAY) {
                        Ok((s, _)) => assert_eq!(s.jwks.len(), big(0).jwks.len()),
                        Err(Ignored::Missing) => {}
                        Err(other) => panic!("torn or unreadable snapshot: {other}"),
                    }
                }
            });
        });
        let leftovers = std::fs::read_dir(&dir.0).unwrap().count();
        assert_eq!(leftovers, 1, "temp files left behind");
    }
}
