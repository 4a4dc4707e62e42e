//! A bounded concurrent map for the verification cache, whose hits are plain reads: a read
//! lock on one of its shards, a lookup and a flag set once. Eviction is by the clock
//! algorithm (an entry read since the hand last passed gets another round), run only when an
//! insert finds its shard full. moka, used before, did LRU and frequency bookkeeping on every
//! hit (a queued read event, replayed later under a lock) and kept several allocations per
//! entry; this keeps one slot in a dense array per entry (see docs/BENCHMARKS.md).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use indexmap::{Equivalent, IndexMap};

struct Slot<V> {
    value: V,
    /// Read since the clock hand last passed it.
    used: AtomicBool,
}

struct Shard<K, V, S> {
    map: IndexMap<K, Slot<V>, S>,
    hand: usize,
}

/// What [`ClockCache::update`] does to an entry.
pub enum Change<V> {
    Keep,
    Put(V),
    Remove,
}

pub struct ClockCache<K, V, S = RandomState> {
    shards: Box<[RwLock<Shard<K, V, S>>]>,
    hasher: S,
    per_shard: usize,
}

impl<K: Hash + Eq, V: Clone> ClockCache<K, V, RandomState> {
    pub fn new(capacity: u64) -> Self {
        Self::with_hasher(capacity, RandomState::new())
    }
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher + Clone> ClockCache<K, V, S> {
    /// Holds at most about `capacity` entries (rounded up to a multiple of the shards).
    pub fn with_hasher(capacity: u64, hasher: S) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        // One shard per 1,024 entries, up to 64: enough that two threads seldom meet on one.
        let shards = (capacity / 1024).clamp(1, 64).next_power_of_two();
        let per_shard = capacity.div_ceil(shards);
        let shards =
            (0..shards).map(|_| RwLock::new(Shard { map: IndexMap::with_hasher(hasher.clone()), hand: 0 })).collect();
        ClockCache { shards, hasher, per_shard }
    }

    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> &RwLock<Shard<K, V, S>> {
        // The high bits: the map inside the shard uses the low ones.
        let h = self.hasher.hash_one(key);
        &self.shards[(h >> 40) as usize % self.shards.len()]
    }

    fn read<Q: Hash + ?Sized>(&self, key: &Q) -> RwLockReadGuard<'_, Shard<K, V, S>> {
        self.shard_of(key).read().unwrap_or_else(|e| e.into_inner())
    }

    fn write<Q: Hash + ?Sized>(&self, key: &Q) -> RwLockWriteGuard<'_, Shard<K, V, S>> {
        self.shard_of(key).write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) -> Option<V> {
        let shard = self.read(key);
        let slot = shard.map.get(key)?;
        // Written only when not set yet, so hot entries do not bounce their cache line.
        if !slot.used.load(Ordering::Relaxed) {
            slot.used.store(true, Ordering::Relaxed);
        }
        Some(slot.value.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        let mut shard = self.write(&key);
        if let Some(slot) = shard.map.get_mut(&key) {
            slot.value = value;
            return;
        }
        if shard.map.len() >= self.per_shard {
            shard.evict_one();
        }
        shard.map.insert(key, Slot { value, used: AtomicBool::new(false) });
    }

    pub fn remove<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) {
        self.write(key).map.swap_remove(key);
    }

    /// Changes an entry that is present, atomically (nothing else reads or writes it between
    /// `f` seeing the value and its change); an absent entry stays absent.
    pub fn update<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q, f: impl FnOnce(&V) -> Change<V>) {
        let mut shard = self.write(key);
        let Some(slot) = shard.map.get_mut(key) else { return };
        match f(&slot.value) {
            Change::Keep => {}
            Change::Put(v) => slot.value = v,
            Change::Remove => {
                shard.map.swap_remove(key);
            }
        }
    }

    /// What `f` picks out of each entry, one shard at a time (a snapshot, not atomic).
    pub fn collect<T>(&self, mut f: impl FnMut(&K, &V) -> Option<T>) -> Vec<T> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.read().unwrap_or_else(|e| e.into_inner());
            out.extend(shard.map.iter().filter_map(|(k, s)| f(k, &s.value)));
        }
        out
    }

    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            shard.map.clear();
            shard.hand = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().map_or(0, |s| s.map.len())).sum()
    }
}

impl<K, V, S> Shard<K, V, S> {
    /// Moves the hand past entries read since its last pass (clearing their flag) and drops
    /// the first one that was not. Ends within two turns: the first clears every flag.
    fn evict_one(&mut self) {
        let len = self.map.len();
        for _ in 0..=2 * len {
            if self.hand >= self.map.len() {
                self.hand = 0;
            }
            let Some((_, slot)) = self.map.get_index(self.hand) else { return };
            if slot.used.swap(false, Ordering::Relaxed) {
                self.hand += 1;
            } else {
                // The last entry, the newest, moves into the hole. The hand passes it: looked
                // at next, never read yet, it would be the next one evicted.
                self.map.swap_remove_index(self.hand);
                self.hand += 1;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_capacity_and_keeps_what_is_read() {
        let c: ClockCache<u32, u32> = ClockCache::new(100);
        for i in 0..100 {
            c.insert(i, i);
        }
        assert_eq!(c.len(), 100);
        // Read the first ten: the clock gives them another round.
        for i in 0..10 {
            assert_eq!(c.get(&i), Some(i));
        }
        for i in 100..150 {
            c.insert(i, i);
        }
        assert_eq!(c.len(), 100, "never above capacity");
        for i in 0..10 {
            assert_eq!(c.get(&i), Some(i), "{i}: read entries outlive unread ones");
        }
        assert!((100..150).all(|i| c.get(&i) == Some(i)), "the newest are there");
    }

    #[test]
    fn replaces_removes_updates_and_clears() {
        let c: ClockCache<String, u32> = ClockCache::new(10);
        c.insert("a".into(), 1);
        c.insert("a".into(), 2);
        assert_eq!(c.get("a"), Some(2));
        assert_eq!(c.len(), 1);
        c.update("a", |v| Change::Put(v + 1));
        assert_eq!(c.get("a"), Some(3));
        c.update("b", |_| Change::Put(9));
        assert_eq!(c.get("b"), None, "an absent entry stays absent");
        c.update("a", |_| Change::Remove);
        assert_eq!(c.get("a"), None);
        c.insert("x".into(), 1);
        c.insert("y".into(), 2);
        let mut seen = c.collect(|k, v| (*v > 1).then(|| k.clone()));
        seen.sort();
        assert_eq!(seen, ["y"]);
        c.remove("y");
        assert_eq!(c.len(), 1);
        c.clear();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn many_shards_under_threads() {
        let c: std::sync::Arc<ClockCache<u64, u64>> = std::sync::Arc::new(ClockCache::new(10_000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        c.insert(t * 100_000 + i, i);
                        let _ = c.get(&(t * 100_000 + i / 2));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(c.len() <= 10_000 + 64, "{}", c.len());
        assert!(c.len() >= 9_000, "{}", c.len());
    }
}
