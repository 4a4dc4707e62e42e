//! Which secret-key hashes exist, in memory, so a flood of made-up keys with valid checksums
//! cannot turn into a flood of storage reads. Filled from storage in the background at
//! start; every change event names a hash that exists, and is added, so the set only grows
//! with the keys. A hash it does not hold is still looked up in storage — a key created on
//! another node a moment ago may not have reached this node yet — but only `LOOKUPS_PER_SECOND`
//! of those a second; past that, unknown keys are answered `NOT_FOUND` without storage.
//! It holds 8 bytes of each HMAC: a collision only costs the storage read it would have cost.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use crate::keyhash::{Hasher, KeyHash};

type Prefixes = HashSet<u64, Hasher>;

/// Storage lookups a second for hashes the set does not hold.
pub const LOOKUPS_PER_SECOND: u32 = 200;

#[derive(Default)]
pub struct KnownHashes {
    set: RwLock<Prefixes>,
    ready: AtomicBool,
    /// The current second's start and the lookups spent in it.
    budget: std::sync::Mutex<Option<(std::time::Instant, u32)>>,
}

fn prefix(h: &KeyHash) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_le_bytes(b)
}

impl KnownHashes {
    /// Could a key with this hash exist? `true` until the set is filled.
    pub fn may_exist(&self, h: &KeyHash) -> bool {
        !self.ready.load(Ordering::Acquire) || self.set.read().map(|s| s.contains(&prefix(h))).unwrap_or(true)
    }

    /// May a hash the set does not hold be looked up in storage now? Spends one lookup.
    pub fn spend_lookup(&self, now: std::time::Instant) -> bool {
        let Ok(mut b) = self.budget.lock() else { return true };
        match &mut *b {
            Some((start, used)) if now.duration_since(*start) < std::time::Duration::from_secs(1) => {
                *used += 1;
                *used <= LOOKUPS_PER_SECOND
            }
            slot => {
                *slot = Some((now, 1));
                true
            }
        }
    }

    pub fn add(&self, h: &KeyHash) {
        if let Ok(mut s) = self.set.write() {
            s.insert(prefix(h));
        }
    }

    /// The set holds every stored hash: unknown ones may be answered from it.
    pub fn mark_filled(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn len(&self) -> usize {
        self.set.read().map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_only_once_filled() {
        let k = KnownHashes::default();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert!(k.may_exist(&a), "before it is filled, everything may exist");
        k.add(&a);
        k.mark_filled();
        assert!(k.may_exist(&a));
        assert!(!k.may_exist(&b));
        k.add(&b);
        assert!(k.may_exist(&b), "a created key is known at once");
    }

    #[test]
    fn lookups_of_unknown_hashes_are_bounded() {
        let k = KnownHashes::default();
        let t = std::time::Instant::now();
        let spent = (0..LOOKUPS_PER_SECOND + 50).filter(|_| k.spend_lookup(t)).count();
        assert_eq!(spent, LOOKUPS_PER_SECOND as usize);
        assert!(k.spend_lookup(t + std::time::Duration::from_secs(1)), "the next second has a new budget");
    }
}
