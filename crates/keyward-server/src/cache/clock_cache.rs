//! A bounded concurrent map for the verification cache, whose hits are plain reads: a read
//! lock on one of its shards, a lookup and a flag set once. Eviction is by the clock
//! algorithm (an entry read since the hand last passed gets another round), run only when an
//! insert finds its shard full. moka, used before, did LRU and frequency bookkeeping on every
//! hit (a queued read event, replayed later under a lock) and kept several allocations per
//! entry; this keeps one slot in a dense array per entry (see docs/BENCHMARKS.md).
//!
//! A shard is an index map of its own making, to keep an entry small (a node may cache a
//! million keys): the entries in one array (key and value, no stored hash: the hash is
//! computed again from the key, which for the key cache is reading 8 bytes), found through a
//! hash table of 4-byte positions, the clock's flags in a bitmap beside them, and the array
//! grown by an eighth at a time rather than doubled.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;
use indexmap::Equivalent;

struct Shard<K, V> {
    /// Where each entry is in `entries`, by its key's hash.
    index: HashTable<u32>,
    entries: Vec<(K, V)>,
    /// One bit per entry: read since the clock hand last passed it.
    used: Vec<AtomicU64>,
    hand: usize,
}

/// What [`ClockCache::update`] does to an entry.
pub enum Change<V> {
    Keep,
    Put(V),
    Remove,
}

pub struct ClockCache<K, V, S = RandomState> {
    shards: Box<[RwLock<Shard<K, V>>]>,
    hasher: S,
    per_shard: usize,
}

impl<K: Hash + Eq, V: Clone> ClockCache<K, V, RandomState> {
    pub fn new(capacity: u64) -> Self {
        Self::with_hasher(capacity, RandomState::new())
    }
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher> ClockCache<K, V, S> {
    /// Holds at most about `capacity` entries (rounded up to a multiple of the shards).
    pub fn with_hasher(capacity: u64, hasher: S) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        // One shard per 1,024 entries, up to 64: enough that two threads seldom meet on one.
        let shards = (capacity / 1024).clamp(1, 64).next_power_of_two();
        // Positions are 4 bytes.
        let per_shard = capacity.div_ceil(shards).min(u32::MAX as usize);
        let shards = (0..shards)
            .map(|_| RwLock::new(Shard { index: HashTable::new(), entries: Vec::new(), used: Vec::new(), hand: 0 }))
            .collect();
        ClockCache { shards, hasher, per_shard }
    }

    fn shard_of(&self, hash: u64) -> &RwLock<Shard<K, V>> {
        // The high bits: the table inside the shard uses the low ones.
        &self.shards[(hash >> 40) as usize % self.shards.len()]
    }

    fn read(&self, hash: u64) -> RwLockReadGuard<'_, Shard<K, V>> {
        self.shard_of(hash).read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, hash: u64) -> RwLockWriteGuard<'_, Shard<K, V>> {
        self.shard_of(hash).write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let shard = self.read(hash);
        let at = shard.position(hash, key)?;
        shard.mark(at);
        shard.entries.get(at).map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        let hash = self.hasher.hash_one(&key);
        let mut shard = self.write(hash);
        if let Some(at) = shard.position(hash, &key) {
            if let Some((_, v)) = shard.entries.get_mut(at) {
                *v = value;
            }
            return;
        }
        if shard.entries.len() >= self.per_shard {
            shard.evict_one(&self.hasher);
        }
        shard.push(hash, key, value, self.per_shard, &self.hasher);
    }

    pub fn remove<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) {
        let hash = self.hasher.hash_one(key);
        let mut shard = self.write(hash);
        if let Some(at) = shard.position(hash, key) {
            shard.swap_remove(hash, at, &self.hasher);
        }
    }

    /// Changes an entry that is present, atomically (nothing else reads or writes it between
    /// `f` seeing the value and its change); an absent entry stays absent.
    pub fn update<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q, f: impl FnOnce(&V) -> Change<V>) {
        let hash = self.hasher.hash_one(key);
        let mut shard = self.write(hash);
        let Some(at) = shard.position(hash, key) else { return };
        let Some((_, value)) = shard.entries.get_mut(at) else { return };
        match f(value) {
            Change::Keep => {}
            Change::Put(v) => *value = v,
            Change::Remove => shard.swap_remove(hash, at, &self.hasher),
        }
    }

    /// What `f` picks out of each entry, one shard at a time (a snapshot, not atomic).
    pub fn collect<T>(&self, mut f: impl FnMut(&K, &V) -> Option<T>) -> Vec<T> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.read().unwrap_or_else(|e| e.into_inner());
            out.extend(shard.entries.iter().filter_map(|(k, v)| f(k, v)));
        }
        out
    }

    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            *shard = Shard { index: HashTable::new(), entries: Vec::new(), used: Vec::new(), hand: 0 };
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().map_or(0, |s| s.entries.len())).sum()
    }
}

impl<K: Hash, V> Shard<K, V> {
    /// Where the entry of `key` (whose hash is `hash`) is.
    fn position<Q: Equivalent<K> + ?Sized>(&self, hash: u64, key: &Q) -> Option<usize> {
        let entries = &self.entries;
        let at = self.index.find(hash, |&i| entries.get(i as usize).is_some_and(|(k, _)| key.equivalent(k)))?;
        Some(*at as usize)
    }

    /// Sets the clock's flag of entry `at`; written only when not set yet, so hot entries
    /// do not bounce their cache line.
    fn mark(&self, at: usize) {
        if let Some(word) = self.used.get(at / 64) {
            let bit = 1u64 << (at % 64);
            if word.load(Ordering::Relaxed) & bit == 0 {
                word.fetch_or(bit, Ordering::Relaxed);
            }
        }
    }

    /// Clears entry `at`'s flag, answering whether it was set.
    fn take_mark(&self, at: usize) -> bool {
        let bit = 1u64 << (at % 64);
        self.used.get(at / 64).is_some_and(|w| w.fetch_and(!bit, Ordering::Relaxed) & bit != 0)
    }

    /// Appends a new entry (not read yet), growing the array by an eighth at most up to
    /// `limit` entries: doubling would leave up to half of it unused for good.
    fn push<S: BuildHasher>(&mut self, hash: u64, key: K, value: V, limit: usize, hasher: &S) {
        let at = self.entries.len();
        let Ok(position) = u32::try_from(at) else { return };
        if at == self.entries.capacity() {
            let room = (at / 8).max(16).min(limit.saturating_sub(at)).max(1);
            self.entries.reserve_exact(room);
        }
        self.entries.push((key, value));
        if at / 64 >= self.used.len() {
            self.used.push(AtomicU64::new(0));
        }
        self.take_mark(at);
        let entries = &self.entries;
        self.index.insert_unique(hash, position, |&i| entries.get(i as usize).map_or(0, |(k, _)| hasher.hash_one(k)));
    }

    /// Removes entry `at` (its key's hash is `hash`): the last entry moves into its place,
    /// with its flag.
    fn swap_remove<S: BuildHasher>(&mut self, hash: u64, at: usize, hasher: &S) {
        let Ok(position) = u32::try_from(at) else { return };
        if let Ok(found) = self.index.find_entry(hash, |&i| i == position) {
            found.remove();
        }
        let last = self.entries.len().saturating_sub(1);
        let moved = self.take_mark(last);
        self.take_mark(at);
        self.entries.swap_remove(at);
        if at < last {
            if moved {
                self.mark(at);
            }
            // The moved entry's position in the index changes from `last` to `at`.
            let Ok(old) = u32::try_from(last) else { return };
            if let Some((k, _)) = self.entries.get(at) {
                if let Some(p) = self.index.find_mut(hasher.hash_one(k), |&i| i == old) {
                    *p = position;
                }
            }
        }
        self.used.truncate(self.entries.len().div_ceil(64));
    }

    /// Moves the hand past entries read since its last pass (clearing their flag) and drops
    /// the first one that was not. Ends within two turns: the first clears every flag.
    fn evict_one<S: BuildHasher>(&mut self, hasher: &S) {
        let len = self.entries.len();
        for _ in 0..=2 * len {
            if self.hand >= self.entries.len() {
                self.hand = 0;
            }
            let Some((k, _)) = self.entries.get(self.hand) else { return };
            if self.take_mark(self.hand) {
                self.hand += 1;
            } else {
                // The last entry, the newest, moves into the hole. The hand passes it: looked
                // at next, never read yet, it would be the next one evicted.
                let hash = hasher.hash_one(k);
                self.swap_remove(hash, self.hand, hasher);
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

    /// Removing an entry moves the last one into its place: the index must find it there,
    /// and its clock flag must move with it.
    #[test]
    fn removing_moves_the_last_entry_with_its_flag() {
        let c: ClockCache<u32, u32> = ClockCache::new(8);
        for i in 0..8 {
            c.insert(i, i);
        }
        assert_eq!(c.get(&7), Some(7));
        c.remove(&0);
        c.insert(8, 8);
        // Full: the hand spares the moved, read entry and evicts the next one.
        c.insert(9, 9);
        assert_eq!(c.len(), 8);
        assert_eq!(c.get(&1), None, "the first unread entry is evicted");
        for i in [2, 3, 4, 5, 6, 7, 8, 9] {
            assert_eq!(c.get(&i), Some(i), "{i}");
        }
    }

    /// Inserts, replacements, updates and removals in a random order agree with a map.
    #[test]
    fn agrees_with_a_map() {
        let c: ClockCache<u64, u64> = ClockCache::new(100_000);
        let mut model = std::collections::HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for step in 0..50_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = x % 3_000;
            match x >> 60 {
                0..=7 => {
                    c.insert(key, step);
                    model.insert(key, step);
                }
                8..=11 => {
                    c.remove(&key);
                    model.remove(&key);
                }
                12 | 13 => {
                    c.update(&key, |v| if v % 2 == 0 { Change::Remove } else { Change::Put(v + 1) });
                    if let Some(v) = model.get(&key).copied() {
                        if v % 2 == 0 {
                            model.remove(&key);
                        } else {
                            model.insert(key, v + 1);
                        }
                    }
                }
                _ => assert_eq!(c.get(&key), model.get(&key).copied(), "step {step}"),
            }
        }
        assert_eq!(c.len(), model.len());
        let mut all = c.collect(|k, v| Some((*k, *v)));
        all.sort_unstable();
        let mut want: Vec<_> = model.into_iter().collect();
        want.sort_unstable();
        assert_eq!(all, want);
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
