//! Verified-token cache. Clients reuse one access token until it expires, so remembering
//! "this exact token verified" skips the RSA check on every repeat.
//!
//! Safety rests on four bounds: the key is the SHA-256 of the whole token (a different
//! token, even one byte, is a different entry); an entry never outlives the token's `exp`
//! nor the configured TTL; an entry is only honoured while the key that verified it is
//! still in its issuer's current, usable key set; and the map holds a bounded number of
//! entries. Per-function policy is applied after this cache, on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};

use super::claims::Claims;
use super::keys::VerifyingKey;

#[derive(Debug)]
struct Entry {
    claims: Arc<Claims>,
    store: usize,
    key: Arc<VerifyingKey>,
    /// Unix seconds after which the entry is ignored: min(`exp`, insert time + TTL).
    valid_until: i64,
}

/// A bounded map from token hash to verified claims.
#[derive(Debug)]
pub struct TokenCache {
    ttl: i64,
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

fn hash(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

impl TokenCache {
    /// A cache keeping entries at most `ttl` and `capacity` of them; a zero TTL disables it.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl: ttl.as_secs() as i64, capacity, entries: Mutex::new(HashMap::new()) }
    }

    fn enabled(&self) -> bool {
        self.ttl > 0 && self.capacity > 0
    }

    /// Claims for `token` if it verified before, is still within its lifetime at `now`, and
    /// `still_trusted(store, key)` says its key is still current.
    pub fn get(
        &self,
        token: &str,
        now: i64,
        still_trusted: impl FnOnce(usize, &Arc<VerifyingKey>) -> bool,
    ) -> Option<Arc<Claims>> {
        if !self.enabled() {
            return None;
        }
        let id = hash(token);
        let (claims, store, key) = {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let entry = entries.get(&id)?;
            if now >= entry.valid_until {
                return None;
            }
            (entry.claims.clone(), entry.store, entry.key.clone())
        };
        if still_trusted(store, &key) {
            Some(claims)
        } else {
            self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            None
        }
    }

    /// Remembers a verified token until `min(exp, now + ttl)`.
    pub fn insert(&self, token: &str, claims: Arc<Claims>, store: usize, key: Arc<VerifyingKey>, exp: i64, now: i64) {
        if !self.enabled() {
            return;
        }
        let valid_until = exp.min(now.saturating_add(self.ttl));
        if valid_until <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.valid_until > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: start over rather than grow. Evicted tokens are
                // simply verified again.
                entries.clear();
            }
        }
        entries.insert(hash(token), Entry { claims, store, key, valid_until });
    }

    /// Number of entries (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{AlgorithmFamily, DecodingKey};

    fn key() -> Arc<VerifyingKey> {
        Arc::new(VerifyingKey::new(
            Some("k".into()),
            AlgorithmFamily::Rsa,
            None,
            DecodingKey::from_rsa_raw_components(&[1], &[1]),
        ))
    }

    fn claims() -> Arc<Claims> {
        Arc::new(Claims::from_verified("i".into(), vec![], 0, None, Default::default()))
    }

    #[test]
    fn entries_end_at_exp_or_ttl_whichever_is_first() {
        let cache = TokenCache::new(Duration::from_secs(100), 10);
        cache.insert("a", claims(), 0, key(), 1_050, 1_000);
        assert!(cache.get("a", 1_049, |_, _| true).is_some());
        assert!(cache.get("a", 1_050, |_, _| true).is_none());
        cache.insert("b", claims(), 0, key(), 5_000, 1_000);
        assert!(cache.get("b", 1_099, |_, _| true).is_some());
        assert!(cache.get("b", 1_100, |_, _| true).is_none());
    }

    #[test]
    fn an_entry_whose_key_is_gone_is_dropped() {
        let cache = TokenCache::new(Duration::from_secs(100), 10);
        cache.insert("a", claims(), 0, key(), 2_000, 1_000);
        assert!(cache.get("a", 1_001, |_, _| false).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn other_tokens_miss() {
        let cache = TokenCache::new(Duration::from_secs(100), 10);
        cache.insert("a.b.c", claims(), 0, key(), 2_000, 1_000);
        assert!(cache.get("a.b.d", 1_001, |_, _| true).is_none());
    }

    #[test]
    fn size_is_bounded() {
        let cache = TokenCache::new(Duration::from_secs(100), 3);
        for i in 0..10 {
            cache.insert(&format!("t{i}"), claims(), 0, key(), 2_000, 1_000);
            assert!(cache.len() <= 3);
        }
    }

    #[test]
    fn zero_ttl_disables_the_cache() {
        let cache = TokenCache::new(Duration::ZERO, 10);
        cache.insert("a", claims(), 0, key(), 2_000, 1_000);
        assert!(cache.get("a", 1_001, |_, _| true).is_none());
    }
}
