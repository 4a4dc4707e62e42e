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

/// A key's HMAC under the pepper, raw.
pub type KeyHash = [u8; 32];

/// Hashes a [`KeyHash`] by taking 8 of its bytes. Safe because the bytes are HMAC outputs
/// that nobody without the pepper can steer, and it spares SipHash on every verification.
#[derive(Default, Clone)]
pub struct PrefixHasher(u64);

impl std::hash::Hasher for PrefixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }

    fn write_usize(&mut self, _len: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

type Hasher = std::hash::BuildHasherDefault<PrefixHasher>;

/// The raw form of a hex hash as stored and sent in change events.
pub fn key_hash(hex: &str) -> Option<KeyHash> {
    keyward_core::pepper::hex_decode(hex)?.try_into().ok()
}

pub struct KeyCache {
    entries: Cache<KeyHash, Entry, Hasher>,
    /// Registered public keys by their lower-case hex.
    public: Cache<String, Entry>,
    /// Bumped by every invalidation; a fill that raced one is thrown away.
    epoch: AtomicU64,
}

impl KeyCache {
    pub fn new(capacity: u64) -> Self {
        KeyCache {
            entries: Cache::builder().max_capacity(capacity).build_with_hasher(Hasher::default()),
            public: Cache::new(capacity),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn get(&self, key: &KeyHash) -> Option<Entry> {
        self.entries.get(key)
    }

    /// Call before reading storage; pass the value to [`KeyCache::fill`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches what storage said, unless an invalidation happened since `epoch` was read:
    /// the record may then be stale, and the next request will read it again.
    pub fn fill(&self, key: KeyHash, entry: Entry, epoch: u64) {
        self.entries.insert(key, entry);
        // Checked after inserting: an invalidation either bumped the epoch before this check
        // (we remove our insert) or removes the entry itself after bumping.
        if self.epoch.load(Ordering::SeqCst) != epoch {
            self.entries.invalidate(&key);
        }
    }

    pub fn get_public(&self, public_key: &str) -> Option<Entry> {
        self.public.get(public_key)
    }

    /// Like [`KeyCache::fill`], for a public key.
    pub fn fill_public(&self, public_key: String, entry: Entry, epoch: u64) {
        self.public.insert(public_key.clone(), entry);
        if self.epoch.load(Ordering::SeqCst) != epoch {
            self.public.invalidate(&public_key);
        }
    }

    /// Drops the entry a change event names: a secret's hex hash, or `pk:` and a public key.
    pub fn invalidate(&self, event_key: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(pk) = event_key.strip_prefix(keyward_store::PUBLIC_KEY_EVENT_PREFIX) {
            self.public.invalidate(pk);
            return;
        }
        match key_hash(event_key) {
            Some(k) => self.entries.invalidate(&k),
            // Not a hash we could have cached under; drop everything rather than guess.
            None => {
                self.entries.invalidate_all();
                self.public.invalidate_all();
            }
        }
    }

    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate_all();
        self.public.invalidate_all();
    }

    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.public.run_pending_tasks();
        self.entries.entry_count() + self.public.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn fill_after_invalidation_is_discarded() {
        let c = KeyCache::new(10);
        let k = key_hash(HEX).unwrap();
        let e = c.epoch();
        c.invalidate(HEX);
        c.fill(k, Entry::Missing, e);
        assert!(c.get(&k).is_none());
        let e = c.epoch();
        c.fill(k, Entry::Missing, e);
        assert!(matches!(c.get(&k), Some(Entry::Missing)));
        c.invalidate(HEX);
        assert!(c.get(&k).is_none());
    }

    #[test]
    fn hashes_sharing_a_prefix_stay_distinct() {
        let c = KeyCache::new(10);
        let a = key_hash(HEX).unwrap();
        let mut b = a;
        b[31] ^= 1; // same first 8 bytes: same bucket, still two keys
        c.fill(a, Entry::Missing, c.epoch());
        assert!(c.get(&b).is_none());
        c.invalidate("not hex");
        assert!(c.get(&a).is_none(), "an unreadable event drops everything");
    }
}
