//! Key set snapshots in the app's storage account (`AUTH_JWKS_SNAPSHOT_DIR=blob`), for plans
//! where instances share no `$HOME` (Flex Consumption): one blob per issuer in a container of
//! its own, sealed with HMAC-SHA256 under `AUTH_SNAPSHOT_SECRET`, since anyone who can write
//! the account could otherwise plant a signing key. Written with ETag conditions so the
//! newest fetch wins a race between instances; read once at start-up.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::snapshot::{self, Ignored, Snapshot};
use crate::storage::{BlobClient, Condition, StorageAccount, StorageError, Written};

/// The container snapshots live in (private; created on the first write).
pub const CONTAINER: &str = "azfn-auth-snapshots";

/// Shortest `AUTH_SNAPSHOT_SECRET` accepted: the HMAC key must not be guessable.
pub const MIN_SECRET_BYTES: usize = 32;

/// What the seal's MAC covers before the snapshot: a fixed label (so a MAC made with the same
/// secret for anything else never verifies here) and the blob name (so a sealed snapshot
/// cannot be moved under another issuer's name).
const SEAL_LABEL: &str = "azfn-auth jwks snapshot v1\n";

/// Rounds one write may lose an ETag race before it gives up. Each lost round means another
/// writer's write succeeded in between, and a writer only writes a fetch at least as new as
/// the stored one, so the newest fetch is stored once it has lost at most one round per other
/// concurrent writer: the bound only guards against a store that never settles. (It was 3,
/// and the newest of 40 concurrent writes then gave up with an older one stored.)
const MAX_RACES: usize = 64;

/// `AUTH_SNAPSHOT_SECRET`: the HMAC key every instance seals and checks snapshots with.
#[derive(Clone, PartialEq, Eq)]
pub struct SnapshotSecret(pub Vec<u8>);

impl fmt::Debug for SnapshotSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SnapshotSecret(redacted)")
    }
}

/// Where blob snapshots go: the account and the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobSnapshotConfig {
    /// The storage account (`AzureWebJobsStorage`).
    pub account: StorageAccount,
    /// The sealing key (`AUTH_SNAPSHOT_SECRET`).
    pub secret: SnapshotSecret,
}

/// The blob body: the snapshot document as a string, and its seal.
#[derive(Serialize, Deserialize)]
struct Sealed {
    snapshot: String,
    /// Base64 HMAC-SHA256 of [`SEAL_LABEL`], the blob name, a newline and `snapshot`.
    mac: String,
}

fn mac_key(secret: &SnapshotSecret) -> aws_lc_rs::hmac::Key {
    aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret.0)
}

fn mac_input(name: &str, document: &str) -> Vec<u8> {
    [SEAL_LABEL, name, "\n", document].concat().into_bytes()
}

/// The blob body for `snapshot`, sealed under `secret`.
pub fn seal(snapshot: &Snapshot, secret: &SnapshotSecret) -> Vec<u8> {
    let name = snapshot::file_name(&snapshot.issuer);
    let document = serde_json::to_string(snapshot).unwrap_or_default();
    let tag = aws_lc_rs::hmac::sign(&mac_key(secret), &mac_input(&name, &document));
    let sealed = Sealed { mac: BASE64.encode(tag.as_ref()), snapshot: document };
    serde_json::to_vec(&sealed).unwrap_or_default()
}

/// The snapshot in blob `body` if its seal verifies under `secret` for `issuer`'s blob name
/// (checked in constant time, before anything in it is parsed or trusted).
pub fn unseal(body: &[u8], issuer: &str, secret: &SnapshotSecret) -> Result<Snapshot, Ignored> {
    let sealed: Sealed = serde_json::from_slice(body).map_err(|_| Ignored::Corrupt)?;
    let tag = BASE64.decode(sealed.mac.as_bytes()).map_err(|_| Ignored::BadSeal)?;
    let input = mac_input(&snapshot::file_name(issuer), &sealed.snapshot);
    aws_lc_rs::hmac::verify(&mac_key(secret), &input, &tag).map_err(|_| Ignored::BadSeal)?;
    serde_json::from_str(&sealed.snapshot).map_err(|_| Ignored::Corrupt)
}

/// What a store call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The blob now holds this snapshot.
    Written,
    /// The blob already holds the same key set, young enough: nothing written.
    Unchanged,
    /// The blob holds a newer fetch (another instance's): left alone.
    Newer,
    /// Lost every ETag race in a row: other writers are busy; theirs stays.
    Lost,
}

/// Reads and writes issuers' snapshots in the snapshot container.
#[derive(Debug)]
pub struct BlobSnapshots {
    client: BlobClient,
    secret: SnapshotSecret,
}

impl BlobSnapshots {
    /// Snapshots through `client`, sealed with `secret`.
    pub fn new(client: BlobClient, secret: SnapshotSecret) -> Self {
        Self { client, secret }
    }

    /// The blob's address for logs (account and blob name; nothing secret).
    pub fn describe(&self, issuer: &str) -> String {
        format!("{}/{CONTAINER}/{}", self.client.account().name, snapshot::file_name(issuer))
    }

    /// `issuer`'s snapshot, if sealed with our secret and passing the same checks as a file.
    pub async fn load(
        &self,
        issuer: &str,
        jwks_uri: Option<&str>,
        now: u64,
        max_stale: Duration,
    ) -> Result<(Snapshot, Duration), Ignored> {
        let blob = match self.client.get(CONTAINER, &snapshot::file_name(issuer)).await {
            Ok(Some(blob)) => blob,
            Ok(None) => return Err(Ignored::Missing),
            Err(error) => return Err(Ignored::Unreadable(error.to_string())),
        };
        let found = unseal(&blob.body, issuer, &self.secret)?;
        snapshot::check(found, issuer, jwks_uri, now, max_stale)
    }

    /// Writes `ours` unless the blob holds a newer fetch, or the same key set fetched less
    /// than `refresh_after` before ours. Every write is conditional on the version read
    /// (or on there being none), so of two racing instances the newer fetch ends up stored.
    /// A blob that fails its seal is overwritten.
    pub async fn store(&self, ours: &Snapshot, refresh_after: Duration) -> Result<Stored, StorageError> {
        let name = snapshot::file_name(&ours.issuer);
        let body = seal(ours, &self.secret);
        for _ in 0..MAX_RACES {
            let current = self.client.get(CONTAINER, &name).await?;
            let condition = match &current {
                None => Condition::Absent,
                Some(blob) => {
                    if let Ok(theirs) = unseal(&blob.body, &ours.issuer, &self.secret)
                        && theirs.issuer == ours.issuer
                    {
                        if theirs.fetched_at > ours.fetched_at {
                            return Ok(Stored::Newer);
                        }
                        if theirs.jwks == ours.jwks
                            && theirs.jwks_uri == ours.jwks_uri
                            && ours.fetched_at - theirs.fetched_at < refresh_after.as_secs()
                        {
                            return Ok(Stored::Unchanged);
                        }
                    }
                    Condition::Matches(&blob.etag)
                }
            };
            match self.client.put(CONTAINER, &name, body.clone(), condition).await? {
                Written::Done(_) => return Ok(Stored::Written),
                Written::Lost => continue,
            }
        }
        Ok(Stored::Lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://issuer.example/";

    fn snap() -> Snapshot {
        Snapshot::new(ISSUER, "https://issuer.example/jwks", 1_000, r#"{"keys":[]}"#.to_owned())
    }

    fn secret(byte: u8) -> SnapshotSecret {
        SnapshotSecret(vec![byte; 32])
    }

    #[test]
    fn a_sealed_snapshot_unseals_with_the_same_secret() {
        let body = seal(&snap(), &secret(1));
        assert_eq!(unseal(&body, ISSUER, &secret(1)).unwrap(), snap());
    }

    #[test]
    fn another_secret_an_edit_or_another_issuers_name_fails_the_seal() {
        let body = seal(&snap(), &secret(1));
        assert!(matches!(unseal(&body, ISSUER, &secret(2)), Err(Ignored::BadSeal)));
        let edited = String::from_utf8(body.clone()).unwrap().replace("1000", "9999");
        assert!(matches!(unseal(edited.as_bytes(), ISSUER, &secret(1)), Err(Ignored::BadSeal)));
        assert!(matches!(unseal(&body, "https://other.example/", &secret(1)), Err(Ignored::BadSeal)));
        assert!(matches!(unseal(b"{\"keys\":[]}", ISSUER, &secret(1)), Err(Ignored::Corrupt)));
    }

    #[test]
    fn the_secret_never_prints() {
        assert_eq!(format!("{:?}", secret(b'x')), "SnapshotSecret(redacted)");
    }
}
