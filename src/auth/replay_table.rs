//! Strict DPoP single use across instances (`AUTH_DPOP_REPLAY_STORE=table`): after the
//! local replay cache says "not seen", the proof's replay key is inserted into Table storage
//! with an insert that fails when the key exists, so of two instances given the same proof
//! exactly one admits it. Tables have no TTL: entries go by table rotation, one table per
//! hour of proof expiry, dropped once everything in it has expired.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracing::warn;

use super::dpop::CheckedProof;
use crate::error::{AuthError, ProofRejection};
use crate::storage::{Inserted, TableClient};

/// Table names: this prefix and the hour (Unix seconds / [`PERIOD`]) the proofs in it expire in.
pub const TABLE_PREFIX: &str = "azfnauthdpop";

/// One table per this many seconds of proof expiry. A proof's table follows from the proof
/// itself (its `iat` plus the max age), so every instance given it picks the same table.
pub const PERIOD: u64 = 3_600;

/// Tables this many periods older than the one being created are dropped: with proofs
/// living at most an hour plus the clock skew past `iat`, everything in them has expired
/// (two periods back could still hold a live entry for up to the skew).
const DROP_AFTER_PERIODS: u64 = 3;

/// The table holding proofs that expire at `until` (Unix seconds).
pub fn table_for(until: i64) -> String {
    format!("{TABLE_PREFIX}{}", period_of(until))
}

fn period_of(until: i64) -> u64 {
    until.max(0) as u64 / PERIOD
}

/// Records DPoP proofs in the storage account's tables.
#[derive(Debug)]
pub struct ReplayTable {
    client: TableClient,
    /// Highest period whose table this process created (or found): later inserts there
    /// skip the creation round trip.
    created: AtomicU64,
    /// Set while storage fails, so an outage warns once, not once per request.
    failing: AtomicBool,
}

impl ReplayTable {
    /// Strict replay through `client`.
    pub fn new(client: TableClient) -> Self {
        Self { client, created: AtomicU64::new(0), failing: AtomicBool::new(false) }
    }

    /// Records `proof`: `Ok` when no instance recorded it before, a replay refusal when one
    /// did, and `ReplayStoreUnavailable` (503) when storage cannot say: fail closed.
    pub async fn record(&self, proof: &CheckedProof) -> Result<(), AuthError> {
        let until = proof.replay_until();
        let table = table_for(until);
        let hex: String = proof.replay_id().iter().map(|b| format!("{b:02x}")).collect();
        // The first byte spreads entries over 256 partitions.
        let (partition, row) = hex.split_at(2);
        let mut properties = serde_json::Map::new();
        properties.insert("until".into(), until.to_string().into());
        for _ in 0..2 {
            match self.client.insert(&table, partition, row, properties.clone()).await {
                Ok(Inserted::Created) => {
                    self.failing.store(false, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Inserted::Exists) => return Err(AuthError::InvalidDpopProof(ProofRejection::Replayed)),
                Ok(Inserted::NoTable) => self.create(period_of(until)).await?,
                Err(error) => return Err(self.unavailable(&error)),
            }
        }
        Err(AuthError::ReplayStoreUnavailable)
    }

    fn unavailable(&self, error: &crate::storage::StorageError) -> AuthError {
        if !self.failing.swap(true, Ordering::Relaxed) {
            warn!(error = %error, "DPoP replay store unavailable; refusing DPoP proofs until it answers");
        }
        AuthError::ReplayStoreUnavailable
    }

    /// Creates the table of `period` and drops tables whose proofs have all expired.
    async fn create(&self, period: u64) -> Result<(), AuthError> {
        let table = format!("{TABLE_PREFIX}{period}");
        self.client.create_table(&table).await.map_err(|e| self.unavailable(&e))?;
        if self.created.fetch_max(period, Ordering::Relaxed) < period {
            let client = self.client.clone();
            tokio::spawn(async move {
                for old in period.saturating_sub(DROP_AFTER_PERIODS + 1)..=period.saturating_sub(DROP_AFTER_PERIODS) {
                    let _ = client.delete_table(&format!("{TABLE_PREFIX}{old}")).await;
                }
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_table_follows_from_its_expiry_hour() {
        assert_eq!(table_for(0), "azfnauthdpop0");
        assert_eq!(table_for(3_599), "azfnauthdpop0");
        assert_eq!(table_for(3_600), "azfnauthdpop1");
        assert_eq!(table_for(-5), "azfnauthdpop0");
        // Table names: letters and digits, starting with a letter, at most 63.
        let name = table_for(i64::MAX);
        assert!(name.len() <= 63 && name.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
