//! Which credentials exist, in memory, so a flood of made-up ones cannot turn into a flood of
//! storage reads. One set each for secret-key hashes, registered public keys, verify-token
//! hashes and the plain SHA-256 hashes of imported keys not used yet (`cache.rs`). Filled from storage in the background at start; every change event
//! names a credential that exists, and is added, so a set only grows with its credentials. A
//! credential a set does not hold is still looked up in storage — one created on another node
//! a moment ago may not have reached this node yet — but only `LOOKUPS_PER_SECOND` of those a
//! second (of the injected clock) per set; past that, unknown ones are refused without storage.
//! While a set is still loading (a node just started), it cannot tell a credential not loaded
//! yet from a made-up one: those it does not hold yet spend the same budget, and past it they
//! wait for the set to be loaded (at most `LOADING_WAIT`, then 503) instead of reading storage,
//! so a restarted node under a flood of made-up keys does not read storage for each. A set is
//! loaded in one streamed read (about a second for a million keys on a busy node,
//! docs/BENCHMARKS.md "Cold start"), well within `LOADING_WAIT`.
//! It holds 8 bytes of each HMAC (for public keys, a hash keyed at random per node): a
//! collision only costs the storage read it would have cost.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use crate::verify::keyhash::{Hasher, KeyHash};

type Prefixes = HashSet<u64, Hasher>;

/// Storage lookups a second for hashes the set does not hold.
pub const LOOKUPS_PER_SECOND: u32 = 200;

/// How long a credential the set does not hold yet, past the budget, waits for a set still
/// loading; then the answer is 503 (storage cannot say yet): the set's load is late (storage
/// slow or failing).
pub const LOADING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a credential the cache does not hold may do, by the set ([`KnownHashes::gate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Read storage.
    Read,
    /// No such credential: answer without storage.
    Refuse,
    /// The set is loading and the budget is spent: [`KnownHashes::after_loading`].
    Wait,
}

pub struct KnownHashes {
    set: RwLock<Prefixes>,
    ready: AtomicBool,
    /// `ready`, for those waiting for it; also told of every addition while loading, so a
    /// waiter whose credential comes in goes at once.
    loaded: tokio::sync::watch::Sender<bool>,
    /// Set once the set holds anything: read without the lock where an empty set means
    /// there is nothing to look for.
    nonempty: AtomicBool,
    /// The current second's start (ms) and the lookups spent in it.
    budget: std::sync::Mutex<Option<(i64, u32)>>,
}

impl Default for KnownHashes {
    fn default() -> Self {
        KnownHashes {
            set: RwLock::default(),
            ready: AtomicBool::new(false),
            loaded: tokio::sync::watch::Sender::new(false),
            nonempty: AtomicBool::new(false),
            budget: std::sync::Mutex::new(None),
        }
    }
}

/// The 8 bytes of an HMAC the set holds.
pub fn prefix(h: &KeyHash) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_le_bytes(b)
}

impl KnownHashes {
    /// Could a key with this hash exist? `true` until the set is filled.
    #[cfg(test)]
    pub fn may_exist(&self, h: &KeyHash) -> bool {
        self.may_exist_id(prefix(h))
    }

    /// Like [`Self::may_exist`], for a credential by its 8-byte id.
    #[cfg(test)]
    pub fn may_exist_id(&self, id: u64) -> bool {
        !self.ready.load(Ordering::Acquire) || self.set.read().map(|s| s.contains(&id)).unwrap_or(true)
    }

    /// May a credential the set does not hold be looked up in storage at `now_ms` (the
    /// injected clock's)? Spends one lookup.
    pub fn spend_lookup(&self, now_ms: i64) -> bool {
        let Ok(mut b) = self.budget.lock() else { return true };
        match &mut *b {
            Some((start, used)) if (0..1000).contains(&(now_ms - *start)) => {
                *used = used.saturating_add(1);
                *used <= LOOKUPS_PER_SECOND
            }
            slot => {
                *slot = Some((now_ms, 1));
                true
            }
        }
    }

    /// May a credential not cached be read from storage at `now_ms`? Yes when the set holds
    /// it, else while this second's lookups last; past them, refused once the set is loaded,
    /// and left to wait for it while it loads.
    pub fn gate(&self, id: u64, now_ms: i64) -> Gate {
        let ready = self.ready.load(Ordering::Acquire);
        if self.holds(id) || self.spend_lookup(now_ms) {
            Gate::Read
        } else if ready {
            Gate::Refuse
        } else {
            Gate::Wait
        }
    }

    /// After [`Gate::Wait`]: waits for the set to be loaded (at most [`LOADING_WAIT`]), then
    /// decides as a loaded set does (`now_ms` read then). `None`: still loading.
    /// One whose id is added meanwhile (by the load, or by `warm.rs`) goes at once.
    pub async fn after_loading(&self, id: u64, now_ms: impl Fn() -> i64) -> Option<bool> {
        let mut loaded = self.loaded.subscribe();
        let done = loaded.wait_for(|filled| *filled || self.holds(id));
        tokio::time::timeout(LOADING_WAIT, done).await.ok()?.ok()?;
        Some(self.holds(id) || self.spend_lookup(now_ms()))
    }

    /// Does the set (as loaded so far) hold `id`?
    fn holds(&self, id: u64) -> bool {
        self.set.read().map(|s| s.contains(&id)).unwrap_or(true)
    }

    /// Does the set hold `id`? `None` while it is not filled yet (it may then hold less than
    /// exists).
    pub fn holds_id(&self, id: u64) -> Option<bool> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        Some(self.set.read().map(|s| s.contains(&id)).unwrap_or(true))
    }

    pub fn add(&self, h: &KeyHash) {
        self.add_id(prefix(h));
    }

    pub fn add_id(&self, id: u64) {
        self.add_ids(&[id]);
    }

    /// Adds many under one lock (a load's batch).
    pub fn add_ids(&self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        if let Ok(mut s) = self.set.write() {
            s.extend(ids);
        }
        self.nonempty.store(true, Ordering::Release);
        if !self.ready.load(Ordering::Acquire) {
            self.loaded.send_modify(|_| {});
        }
    }

    /// May the set hold anything? `false` only once it is filled and still empty: one atomic
    /// load, no lock.
    pub fn may_hold_any(&self) -> bool {
        !self.ready.load(Ordering::Acquire) || self.nonempty.load(Ordering::Acquire)
    }

    pub fn is_filled(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The set holds every stored hash: unknown ones may be answered from it.
    pub fn mark_filled(&self) {
        self.ready.store(true, Ordering::Release);
        self.loaded.send_replace(true);
    }

    /// The set may miss hashes (events were skipped) until it is filled again.
    pub fn mark_loading(&self) {
        self.ready.store(false, Ordering::Release);
        self.loaded.send_replace(false);
    }

    pub fn len(&self) -> usize {
        self.set.read().map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ids an import event names: each 16 hex characters are the first 8 bytes of a plain
/// hash, read as [`prefix`] reads a hash's. A piece that is not hex is skipped.
pub fn ids_in_event(hex: &str) -> impl Iterator<Item = u64> + '_ {
    hex.as_bytes().chunks(16).filter_map(|c| {
        let bytes = keyward_core::pepper::hex_decode(std::str::from_utf8(c).ok()?)?;
        let b: [u8; 8] = bytes.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_event_names_the_prefixes_of_its_hashes() {
        let (a, b) = ([0xabu8; 32], [7u8; 32]);
        let hex =
            format!("{}{}", &keyward_core::pepper::hex_encode(&a)[..16], &keyward_core::pepper::hex_encode(&b)[..16]);
        let ids: Vec<u64> = ids_in_event(&hex).collect();
        assert_eq!(ids, vec![prefix(&a), prefix(&b)]);
        assert_eq!(ids_in_event("zz").count(), 0);
        let k = KnownHashes::default();
        assert_eq!(k.holds_id(1), None, "not filled: unknown");
        assert!(k.may_hold_any(), "not filled: anything may exist");
        k.mark_filled();
        assert!(!k.may_hold_any(), "filled and empty");
        k.add_id(ids[0]);
        assert!(k.may_hold_any());
        assert_eq!(k.holds_id(ids[0]), Some(true));
        assert_eq!(k.holds_id(ids[1]), Some(false));
    }

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

    /// A node just started: hashes loaded so far are read, unknown ones spend the budget,
    /// and past it they wait for the set instead of reading storage.
    #[tokio::test(flavor = "current_thread")]
    async fn while_loading_unknown_hashes_past_the_budget_wait_for_the_set() {
        let k = std::sync::Arc::new(KnownHashes::default());
        let t = 5_000_000;
        k.add_id(1);
        assert_eq!(k.gate(1, t), Gate::Read, "loaded already");
        let read = (0..LOOKUPS_PER_SECOND + 100).filter(|i| k.gate(100 + u64::from(*i), t) == Gate::Read).count();
        assert_eq!(read, LOOKUPS_PER_SECOND as usize, "the budget holds while loading");
        assert_eq!(k.gate(2, t), Gate::Wait);
        assert_eq!(k.gate(1, t), Gate::Read, "held: no budget needed");
        let waiting = {
            let k = std::sync::Arc::clone(&k);
            tokio::spawn(async move { (k.after_loading(2, || t).await, k.after_loading(3, || t).await) })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "waits while the set loads");
        k.add_id(2); // loaded meanwhile
        k.mark_filled();
        assert_eq!(
            waiting.await.unwrap(),
            (Some(true), Some(false)),
            "a hash loaded meanwhile is read; one not held is refused, the second's budget spent"
        );
        assert_eq!(k.gate(4, t), Gate::Refuse, "loaded: past the budget, refused");
        assert_eq!(k.after_loading(4, || t).await, Some(false));
        k.mark_loading();
        assert_eq!(k.gate(4, t), Gate::Wait, "loading again (events were skipped)");
    }

    /// A set whose load does not end (storage slow or failing): a waiter gives up after
    /// `LOADING_WAIT` (the verification then answers 503), not before; a set filled meanwhile
    /// answers its waiters at once.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_wait_for_a_set_that_does_not_load_ends_after_loading_wait() {
        let k = std::sync::Arc::new(KnownHashes::default());
        let started = tokio::time::Instant::now();
        assert_eq!(k.after_loading(9, || 0).await, None, "still loading: storage cannot say");
        assert_eq!(started.elapsed(), LOADING_WAIT);
        let waiting = {
            let k = std::sync::Arc::clone(&k);
            tokio::spawn(async move { k.after_loading(9, || 0).await })
        };
        tokio::time::sleep(LOADING_WAIT / 2).await;
        k.mark_filled();
        assert_eq!(waiting.await.unwrap(), Some(true), "filled in time: not held, the budget decides");
        assert_eq!(started.elapsed(), LOADING_WAIT + LOADING_WAIT / 2);
    }

    /// While the set loads, a waiter goes as soon as its credential is added, not at the end.
    #[tokio::test(flavor = "current_thread")]
    async fn a_waiter_goes_once_its_credential_is_added() {
        let k = std::sync::Arc::new(KnownHashes::default());
        let wait = |id: u64| {
            let k = std::sync::Arc::clone(&k);
            tokio::spawn(async move { k.after_loading(id, || 0).await })
        };
        let (one, two) = (wait(1), wait(2));
        tokio::task::yield_now().await;
        k.add_ids(&[1, 7]);
        assert_eq!(one.await.unwrap(), Some(true), "added: read");
        tokio::task::yield_now().await;
        assert!(!two.is_finished(), "another id added does not let it go");
        k.mark_filled();
        assert_eq!(two.await.unwrap(), Some(true), "not held, but the second's budget is left");
    }

    #[test]
    fn lookups_of_unknown_hashes_are_bounded() {
        let k = KnownHashes::default();
        let t = 1_000_000;
        let spent = (0..LOOKUPS_PER_SECOND + 50).filter(|_| k.spend_lookup(t)).count();
        assert_eq!(spent, LOOKUPS_PER_SECOND as usize);
        assert!(!k.spend_lookup(t + 999));
        assert!(k.spend_lookup(t + 1000), "the next second has a new budget");
        assert!(k.spend_lookup(t - 5_000), "a clock set back starts a new second");
    }
}
