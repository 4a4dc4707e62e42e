//! The key cache and what keeps it true: the clock cache under it, change events from other
//! nodes (`invalidation`), what each event does (`changes`), the background `backstop`, the
//! workspaces' standings its keys carry (`standings`), one storage read at a time per
//! credential missed (`inflight`), the recently used keys read at start (`warm`).
//!
//! The verification cache: key records by secret hash, bounded in size (a clock cache,
//! `clock_cache.rs`), dropped on change events (never expired by a TTL). "No such key" is
//! cached too, so a flood of made-up keys costs one lookup each; creating a key sends an
//! event that clears such an entry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use keyward_core::verify::VerifiableKey;

use crate::cache::clock_cache::{Change, ClockCache};
use crate::verify::keyhash::Hasher;
pub use crate::verify::keyhash::{key_hash, KeyHash};

pub(crate) mod backstop;
pub(crate) mod changes;
pub(crate) mod clock_cache;
#[cfg(test)]
mod footprint;
pub(crate) mod inflight;
pub(crate) mod invalidation;
pub(crate) mod standings;
pub(crate) mod warm;

#[derive(Debug, Clone)]
pub enum Entry {
    Found(Arc<VerifiableKey>),
    Missing,
}

/// A cache entry with the name change events use for it (hex hash, or public key).
pub type Cached = (String, Entry);

/// Fills in flight are checked against the epoch of their key's stripe, so a change to one
/// key discards only the fills that share its stripe (1 in 4096), not every fill on the node.
const STRIPES: usize = 4096;

fn stripe_of_bytes(b: &[u8]) -> usize {
    let hi = usize::from(b.first().copied().unwrap_or(0));
    let lo = usize::from(b.get(1).copied().unwrap_or(0));
    ((hi << 8) | lo) % STRIPES
}

/// The stripe of a public key: the first 12 bits of its hex (or of its bytes, if not hex).
fn stripe_of_public(public_key: &str) -> usize {
    match public_key.get(..3).and_then(|h| usize::from_str_radix(h, 16).ok()) {
        Some(n) => n % STRIPES,
        None => stripe_of_bytes(public_key.as_bytes()),
    }
}

pub struct KeyCache {
    entries: ClockCache<KeyHash, Entry, Hasher>,
    /// Registered public keys by their lower-case hex.
    public: ClockCache<String, Entry>,
    /// Verify tokens by hex hash: the workspace each binds to, or `None` (unknown, revoked).
    tokens: ClockCache<String, Option<Arc<str>>>,
    /// Which secret-key hashes exist: every event naming one adds it.
    pub known: crate::verify::known::KnownHashes,
    /// Which public keys are registered (by [`KeyCache::public_id`]), likewise.
    pub known_public: crate::verify::known::KnownHashes,
    /// Which verify-token hashes exist (revoked ones included), likewise.
    pub known_tokens: crate::verify::known::KnownHashes,
    /// Which plain SHA-256 hashes of imported keys not used yet exist (by their first 8
    /// bytes), likewise: import events name them.
    pub known_imported: crate::verify::known::KnownHashes,
    /// Keys the public keys' ids: chosen at random, so nobody can make up public keys that
    /// collide with a registered one's id.
    public_ids: foldhash::quality::RandomState,
    /// Bumped by every invalidation in their stripe; a fill that raced one is thrown away.
    /// Secret hashes and public keys share the stripes (a spurious discard costs one read).
    epochs: Box<[AtomicU64]>,
    /// Storage reads of secret keys in flight: concurrent misses for one key share one read.
    pub(crate) secret_reads: inflight::Inflight<KeyHash, Entry, Epoch, Hasher>,
    /// Likewise for public keys.
    pub(crate) public_reads: inflight::Inflight<String, Entry, Epoch>,
    /// Likewise for the first uses of an imported key, by the HMAC it is cached under.
    pub(crate) import_reads: inflight::Inflight<KeyHash, Option<Arc<VerifiableKey>>, Epoch, Hasher>,
}

/// Every stripe's epoch at one moment ([`KeyCache::epochs_now`]).
pub struct Epochs(Box<[Epoch]>);

impl Epochs {
    /// What [`KeyCache::epoch`] said for `key` then.
    pub fn of(&self, key: &KeyHash) -> Option<Epoch> {
        self.0.get(stripe_of_bytes(key)).copied()
    }
}

/// The epoch a fill was started under; see [`KeyCache::fill`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    stripe: usize,
    value: u64,
}

impl KeyCache {
    pub fn new(capacity: u64) -> Self {
        KeyCache {
            entries: ClockCache::with_hasher(capacity, Hasher::default()),
            public: ClockCache::new(capacity),
            tokens: ClockCache::new(10_000),
            known: crate::verify::known::KnownHashes::default(),
            known_public: crate::verify::known::KnownHashes::default(),
            known_tokens: crate::verify::known::KnownHashes::default(),
            known_imported: crate::verify::known::KnownHashes::default(),
            public_ids: foldhash::quality::RandomState::default(),
            epochs: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            secret_reads: inflight::Inflight::default(),
            public_reads: inflight::Inflight::default(),
            import_reads: inflight::Inflight::default(),
        }
    }

    pub fn get(&self, key: &KeyHash) -> Option<Entry> {
        self.entries.get(key)
    }

    /// A public key's id in [`KeyCache::known_public`] (its lower-case hex, as cached).
    pub fn public_id(&self, public_key: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.public_ids, public_key)
    }

    /// A verify token's id in [`KeyCache::known_tokens`] (from its hex hash).
    pub fn token_id(hash: &str) -> u64 {
        key_hash(hash).map(|h| crate::verify::known::prefix(&h)).unwrap_or(0)
    }

    /// Are the sets of existing secret keys, public keys, verify tokens and imported hashes
    /// all loaded?
    pub fn known_loaded(&self) -> bool {
        self.known.is_filled()
            && self.known_public.is_filled()
            && self.known_tokens.is_filled()
            && self.known_imported.is_filled()
    }

    fn epoch_at(&self, stripe: usize) -> Epoch {
        Epoch { stripe, value: self.epochs[stripe].load(Ordering::SeqCst) }
    }

    fn stale(&self, e: Epoch) -> bool {
        self.epochs[e.stripe].load(Ordering::SeqCst) != e.value
    }

    fn bump(&self, stripe: usize) {
        self.epochs[stripe].fetch_add(1, Ordering::SeqCst);
    }

    /// Call before reading storage for `key`; pass the value to [`KeyCache::fill`].
    pub fn epoch(&self, key: &KeyHash) -> Epoch {
        self.epoch_at(stripe_of_bytes(key))
    }

    /// Every stripe's epoch now, for one read of many keys (`warm.rs`): each key's fill takes
    /// its stripe's from it.
    pub fn epochs_now(&self) -> Epochs {
        Epochs((0..STRIPES).map(|s| self.epoch_at(s)).collect())
    }

    /// Like [`KeyCache::epoch`], for a public key.
    pub fn epoch_public(&self, public_key: &str) -> Epoch {
        self.epoch_at(stripe_of_public(public_key))
    }

    /// Caches what storage said, unless this key's stripe was invalidated since `epoch` was
    /// read: the record may then be stale, and the next request will read it again.
    pub fn fill(&self, key: KeyHash, entry: Entry, epoch: Epoch) {
        self.entries.insert(key, entry);
        // Checked after inserting: an invalidation either bumped the epoch before this check
        // (we remove our insert) or removes the entry itself after bumping.
        if self.stale(epoch) {
            self.entries.remove(&key);
        }
    }

    pub fn get_public(&self, public_key: &str) -> Option<Entry> {
        self.public.get(public_key)
    }

    /// Like [`KeyCache::fill`], for a public key.
    pub fn fill_public(&self, public_key: String, entry: Entry, epoch: Epoch) {
        self.public.insert(public_key.clone(), entry);
        if self.stale(epoch) {
            self.public.remove(&public_key);
        }
    }

    pub fn get_token(&self, hash: &str) -> Option<Option<Arc<str>>> {
        self.tokens.get(hash)
    }

    /// Like [`KeyCache::fill`], for a verify token (`epoch` from [`KeyCache::epoch_public`]).
    pub fn fill_token(&self, hash: String, workspace: Option<Arc<str>>, epoch: Epoch) {
        self.tokens.insert(hash.clone(), workspace);
        if self.stale(epoch) {
            self.tokens.remove(&hash);
        }
    }

    /// Drops the entry a change event names: a secret's hex hash, `pk:` and a public key, or
    /// `vt:` and a verify token's hash; `im:` adds imported hashes (nothing was cached under
    /// them: a key is cached by the HMAC of its secret only).
    pub fn invalidate(&self, event_key: &str) {
        if let Some(ids) = event_key.strip_prefix(keyward_store::IMPORT_EVENT_PREFIX) {
            crate::verify::known::ids_in_event(ids).for_each(|id| self.known_imported.add_id(id));
            return;
        }
        if let Some(vt) = event_key.strip_prefix(keyward_store::VERIFY_TOKEN_EVENT_PREFIX) {
            // Like a key's: the event names a token that exists (or existed).
            self.known_tokens.add_id(Self::token_id(vt));
            self.bump(stripe_of_public(vt));
            self.tokens.remove(vt);
            return;
        }
        if let Some(pk) = event_key.strip_prefix(keyward_store::PUBLIC_KEY_EVENT_PREFIX) {
            self.known_public.add_id(self.public_id(pk));
            self.bump(stripe_of_public(pk));
            self.public.remove(pk);
            return;
        }
        match key_hash(event_key) {
            Some(k) => {
                // An event names a key that exists (or existed): it is known from now on.
                self.known.add(&k);
                self.bump(stripe_of_bytes(&k));
                self.entries.remove(&k);
            }
            // Not a hash we could have cached under; drop everything rather than guess.
            None => self.clear(),
        }
    }

    /// Discards every fill in flight (they may have read a role as it was before a change).
    pub fn bump_all(&self) {
        (0..STRIPES).for_each(|s| self.bump(s));
    }

    /// Re-derives, in place, every cached key of `workspace` holding role `name`, which now
    /// grants `permissions` (`None`: deleted, or unknown because storage could not say — then
    /// the keys are dropped instead). Returns how many keys it touched. Each entry is
    /// replaced atomically: a change event for the key itself, which removes the entry, is
    /// never undone by this.
    pub fn rederive_role(&self, workspace: &str, name: &str, permissions: Result<Option<&[String]>, ()>) -> usize {
        let holds = |e: &Entry| matches!(e, Entry::Found(k) if &**k.workspace_id() == workspace && k.holds_role(name));
        let secret: Vec<KeyHash> = self.entries.collect(|k, e| holds(e).then_some(*k));
        let public: Vec<String> = self.public.collect(|k, e| holds(e).then(|| k.clone()));
        let touched = secret.len() + public.len();
        // An entry gone meanwhile (a change to the key itself) stays gone: `update` leaves
        // absent entries alone.
        let next = |e: &Entry| match (e, permissions) {
            (Entry::Found(k), Ok(p)) => match k.with_role(name, p) {
                Some(n) => Change::Put(Entry::Found(Arc::new(n))),
                None => Change::Keep,
            },
            (Entry::Found(k), Err(())) if k.holds_role(name) => Change::Remove,
            _ => Change::Keep,
        };
        for k in secret {
            self.entries.update(&k, next);
        }
        for k in public {
            self.public.update(&k, next);
        }
        touched
    }

    /// Gives every cached key of `workspace` the workspace's new `standing`, in place (each
    /// entry replaced atomically, as a role change does: a key's own change event, which
    /// removes its entry, is never undone). Returns how many keys it touched.
    pub fn restand(&self, workspace: &str, standing: keyward_core::standing::Standing) -> usize {
        let of = |e: &Entry| matches!(e, Entry::Found(k) if &**k.workspace_id() == workspace && k.standing != standing);
        let secret: Vec<KeyHash> = self.entries.collect(|k, e| of(e).then_some(*k));
        let public: Vec<String> = self.public.collect(|k, e| of(e).then(|| k.clone()));
        let touched = secret.len() + public.len();
        let next = |e: &Entry| match e {
            Entry::Found(k) if k.standing != standing => {
                let mut key = VerifiableKey::clone(k);
                key.standing = standing;
                Change::Put(Entry::Found(Arc::new(key)))
            }
            _ => Change::Keep,
        };
        for k in secret {
            self.entries.update(&k, next);
        }
        for k in public {
            self.public.update(&k, next);
        }
        touched
    }

    /// Drops every cached key owned by service account `id` (its state is read again), and
    /// discards every fill in flight: one may have read the account as it was before.
    pub fn evict_owner(&self, id: &str) {
        self.bump_all();
        let owned = |e: &Entry| matches!(e, Entry::Found(k) if k.owner() == Some(id));
        let secret: Vec<KeyHash> = self.entries.collect(|k, e| owned(e).then_some(*k));
        let public: Vec<String> = self.public.collect(|k, e| owned(e).then(|| k.clone()));
        for k in secret {
            self.bump(stripe_of_bytes(&k));
            self.entries.remove(&k);
        }
        for k in public {
            self.bump(stripe_of_public(&k));
            self.public.remove(&k);
        }
    }

    /// Drops every cached key of identity `id` (its shared limits, credits and meta are
    /// read again), and discards every fill in flight: one may have read it as it was.
    pub fn evict_identity(&self, id: &str) {
        self.bump_all();
        let of = |e: &Entry| matches!(e, Entry::Found(k) if k.identity() == Some(id));
        let secret: Vec<KeyHash> = self.entries.collect(|k, e| of(e).then_some(*k));
        let public: Vec<String> = self.public.collect(|k, e| of(e).then(|| k.clone()));
        for k in secret {
            self.bump(stripe_of_bytes(&k));
            self.entries.remove(&k);
        }
        for k in public {
            self.bump(stripe_of_public(&k));
            self.public.remove(&k);
        }
    }

    pub fn clear(&self) {
        (0..STRIPES).for_each(|s| self.bump(s));
        self.entries.clear();
        self.public.clear();
        self.tokens.clear();
    }

    /// Every cached secret-key entry (hex hash) and public-key entry, for the backstop.
    pub fn snapshot(&self) -> (Vec<Cached>, Vec<Cached>) {
        let secret = self.entries.collect(|k, e| Some((keyward_core::pepper::hex_encode(k), e.clone())));
        let public = self.public.collect(|k, e| Some((k.clone(), e.clone())));
        (secret, public)
    }

    /// Every cached verify token (hex hash) and the workspace it was found to bind to.
    pub fn snapshot_tokens(&self) -> Vec<(String, Option<Arc<str>>)> {
        self.tokens.collect(|k, w| Some((k.clone(), w.clone())))
    }

    pub fn len(&self) -> u64 {
        (self.entries.len() + self.public.len()) as u64
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
        let e = c.epoch(&k);
        c.invalidate(HEX);
        c.fill(k, Entry::Missing, e);
        assert!(c.get(&k).is_none());
        let e = c.epoch(&k);
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
        c.fill(a, Entry::Missing, c.epoch(&a));
        assert!(c.get(&b).is_none());
        c.invalidate("not hex");
        assert!(c.get(&a).is_none(), "an unreadable event drops everything");
    }

    /// A key of a service account being filled while the account is disabled must not be
    /// cached with the account's old state.
    #[test]
    fn an_account_change_discards_fills_in_flight() {
        let c = KeyCache::new(10);
        let k = key_hash(HEX).unwrap();
        let e = c.epoch(&k);
        c.evict_owner("sa_1");
        c.fill(k, Entry::Missing, e);
        assert!(c.get(&k).is_none());
    }

    /// A change to one key must not throw away fills of other keys in flight (under a steady
    /// rate of creates, verified keys would never be cached and fail in an outage).
    #[test]
    fn a_change_to_another_key_keeps_a_fill() {
        let c = KeyCache::new(10);
        let a = key_hash(HEX).unwrap();
        let other = "ff112233445566778899aabbccddeeff00112233445566778899aabbccddee00";
        let e = c.epoch(&a);
        c.invalidate(other);
        c.invalidate("pk:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12");
        c.fill(a, Entry::Missing, e);
        assert!(matches!(c.get(&a), Some(Entry::Missing)), "the fill of an unchanged key was discarded");
        let pk = "0011223344556677889900112233445566778899001122334455667788990011";
        let e = c.epoch_public(pk);
        c.invalidate(other);
        c.fill_public(pk.into(), Entry::Missing, e);
        assert!(c.get_public(pk).is_some());
        let e = c.epoch_public(pk);
        c.invalidate(&format!("pk:{pk}"));
        c.fill_public(pk.into(), Entry::Missing, e);
        assert!(c.get_public(pk).is_none(), "a fill raced by its own key's change must go");
    }
}
