//! Recently verified API keys, so a busy client's requests do not each
//! cost a store lookup.
//!
//! Only keys found in the store are kept, each for [`KeyCache::TTL`]: a key
//! revoked with `maskline key revoke` (another process, writing the store)
//! stops working on a running node within that time, and an unknown key
//! is looked up every time (guessing keys cannot fill the cache). Tenant
//! rows change only at start (limits from the config), so a cached row is
//! never stale for longer than the TTL either.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::store::tenants::TenantRow;

/// Most keys kept; past it the cache starts over.
const CAPACITY: usize = 10_000;

/// Tenants by API key hash, for a short time. Cheap to clone.
#[derive(Clone, Default)]
pub struct KeyCache {
    entries: Arc<DashMap<String, (TenantRow, Instant)>>,
}

impl KeyCache {
    /// How long a verified key is trusted without a lookup.
    pub const TTL: Duration = Duration::from_secs(1);

    /// The tenant of `key_hash` if it was verified less than [`Self::TTL`]
    /// before `now`.
    pub fn get(&self, key_hash: &str, now: Instant) -> Option<TenantRow> {
        let entry = self.entries.get(key_hash)?;
        let (tenant, at) = entry.value();
        (now.saturating_duration_since(*at) < Self::TTL).then(|| tenant.clone())
    }

    /// Remember that `key_hash` belongs to `tenant`, verified at `now`.
    pub fn put(&self, key_hash: &str, tenant: &TenantRow, now: Instant) {
        if self.entries.len() >= CAPACITY {
            self.entries.clear();
        }
        self.entries
            .insert(key_hash.to_string(), (tenant.clone(), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantRow {
        TenantRow {
            id: id.into(),
            name: id.into(),
            default_ttl_minutes: 60,
            max_ttl_minutes: 1440,
            max_concurrent_calls: 10,
            calls_per_second: 1,
            webhook_url: None,
            created_at: 0,
        }
    }

    #[test]
    fn a_key_is_trusted_for_the_ttl_only() {
        let cache = KeyCache::default();
        let t0 = Instant::now();
        assert!(cache.get("h", t0).is_none(), "unknown until put");
        cache.put("h", &tenant("ten_1"), t0);
        assert_eq!(cache.get("h", t0).map(|t| t.id), Some("ten_1".into()));
        let almost = t0 + KeyCache::TTL - Duration::from_millis(1);
        assert!(cache.get("h", almost).is_some());
        assert!(cache.get("h", t0 + KeyCache::TTL).is_none(), "expired");
        assert!(cache.get("other", t0).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = KeyCache::default();
        let now = Instant::now();
        for i in 0..=CAPACITY {
            cache.put(&format!("h{i}"), &tenant("ten_1"), now);
        }
        assert!(cache.entries.len() <= CAPACITY);
        assert!(
            cache.get(&format!("h{CAPACITY}"), now).is_some(),
            "the newest stays"
        );
    }
}
