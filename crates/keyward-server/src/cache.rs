//! The verification cache: key records by secret hash, bounded in size, dropped on change
//! events (never expired by a TTL). "No such key" is cached too, so a flood of made-up keys
//! costs one lookup each; creating a key sends an event that clears such an entry.

use moka::sync::Cache;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use keyward_core::verify::VerifiableKey;

#[derive(Debug, Clone)]
pub enum Entry {
    Found(Arc<VerifiableKey>),
    Missing,
}

pub struct KeyCache {
    entries: Cache<String, Entry>,
    /// Bumped by every invalidation; a fill that raced one is thrown away.
    epoch: AtomicU64,
}

impl KeyCache {
    pub fn new(capacity: u64) -> Self {
        KeyCache { entries: Cache::new(capacity), epoch: AtomicU64::new(0) }
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        self.entries.get(key)
    }

    /// Call before reading storage; pass the value to [`KeyCache::fill`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches what storage said, unless an invalidation happened since `epoch` was read:
    /// the record may then be stale, and the next request will read it again.
    pub fn fill(&self, key: String, entry: Entry, epoch: u64) {
        self.entries.insert(key.clone(), entry);
        // Checked after inserting: an invalidation either bumped the epoch before this check
        // (we remove our insert) or removes the entry itself after bumping.
        if self.epoch.load(Ordering::SeqCst) != epoch {
            self.entries.invalidate(&key);
        }
    }

    pub fn invalidate(&self, key: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(key);
    }

    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate_all();
    }

    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_after_invalidation_is_discarded() {
        let c = KeyCache::new(10);
        let e = c.epoch();
        c.invalidate("k");
        c.fill("k".into(), Entry::Missing, e);
        assert!(c.get("k").is_none());
        let e = c.epoch();
        c.fill("k".into(), Entry::Missing, e);
        assert!(matches!(c.get("k"), Some(Entry::Missing)));
        c.invalidate("k");
        assert!(c.get("k").is_none());
    }
}
