//! What this node knows of apps' access tokens: the decision about each token verified
//! (by `jti`, with the token's digest, so a forged token under a known `jti` is checked in
//! full) and the signing keys by `kid`. Change events (`app:…`) drop what they touch; a
//! decision read from storage while an event arrived is not kept.
//!
//! Signing keys are few (one per workspace and rotation) and never change once made, so a
//! node holds them all: read at start ([`TokenCache::load_keys`]), and each new one announced
//! by its event, so that a `kid` no key has can only spend the lookup budget, never a real
//! key's chance to be read.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use keyward_core::signing::PublicKey;
use keyward_core::verify::{VerifiableKey, VerifyCode};

use crate::cache::inflight::Inflight;

/// A verified token as the verifier needs it again.
#[derive(Debug)]
pub struct TokenDecision {
    /// SHA-256 of the whole token: the same `jti` with other bytes is another token.
    pub digest: [u8; 32],
    pub installation: Box<str>,
    pub family: Box<str>,
    pub app: Box<str>,
    /// The token standing as a key of the organisation (see `keyward_core::oauth::token_record`).
    pub key: Arc<VerifiableKey>,
    /// `,"kind":"app_token","app_id":…,"installation_id":…` for the answer.
    pub extra: Arc<str>,
    /// Unix seconds: kept no longer.
    pub exp: i64,
}

/// A signing key: its workspace and public key (`None`: no such `kid`).
pub type KnownKey = Option<Arc<(Box<str>, PublicKey)>>;

pub struct TokenCache {
    tokens: RwLock<HashMap<Box<str>, Arc<TokenDecision>>>,
    keys: RwLock<HashMap<Box<str>, KnownKey>>,
    /// Signing keys made since this node read them all, by their events: looked up without
    /// the budget, which made-up `kid`s may have spent.
    announced: RwLock<HashSet<Box<str>>>,
    /// Bumped by every event: a fill begun before one is dropped.
    generation: AtomicU64,
    capacity: usize,
    /// Lookups of `kid`s this node does not know, in the current second: bounded, so made-up
    /// `kid`s cannot turn into a storage read each.
    lookup_second: AtomicI64,
    lookups: AtomicU32,
    /// Concurrent first uses of one token share its decision and the storage read behind it
    /// (`cache/inflight.rs`), by the token's digest (the same bytes, so the same claims),
    /// under the generation they began in: a node restarted under load would otherwise read
    /// a hot token's row once per request.
    pub(crate) decisions: Inflight<[u8; 32], Result<Arc<TokenDecision>, VerifyCode>, u64>,
    /// The same for a signing key this node does not know yet: one read, and one unit of the
    /// lookup budget, for all of its concurrent first uses.
    pub(crate) key_reads: Inflight<Box<str>, KnownKey, u64>,
}

/// Unknown `kid`s looked up in storage per second, per node.
const KID_LOOKUPS_PER_SECOND: u32 = 20;
/// Most `kid`s remembered (known and unknown), and read at start.
pub(crate) const MAX_KIDS: usize = 10_000;

fn lock_poisoned<T>(e: std::sync::PoisonError<T>) -> T {
    e.into_inner()
}

impl TokenCache {
    pub fn new(capacity: u64) -> Self {
        TokenCache {
            tokens: RwLock::default(),
            keys: RwLock::default(),
            announced: RwLock::default(),
            generation: AtomicU64::new(0),
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX).clamp(1, 100_000),
            lookup_second: AtomicI64::new(0),
            lookups: AtomicU32::new(0),
            decisions: Inflight::default(),
            key_reads: Inflight::default(),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, jti: &str) -> Option<Arc<TokenDecision>> {
        self.tokens.read().unwrap_or_else(lock_poisoned).get(jti).cloned()
    }

    /// Keeps a decision read from storage, unless an event came since `generation` was read.
    pub fn fill(&self, jti: &str, d: Arc<TokenDecision>, generation: u64, now: i64) {
        let mut map = self.tokens.write().unwrap_or_else(lock_poisoned);
        if self.generation() != generation {
            return;
        }
        if map.len() >= self.capacity {
            map.retain(|_, d| d.exp > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(jti.into(), d);
    }

    pub fn key(&self, kid: &str) -> Option<KnownKey> {
        self.keys.read().unwrap_or_else(lock_poisoned).get(kid).cloned()
    }

    pub fn fill_key(&self, kid: &str, k: KnownKey, generation: u64) {
        let mut map = self.keys.write().unwrap_or_else(lock_poisoned);
        if self.generation() != generation {
            return;
        }
        if map.len() >= MAX_KIDS {
            map.retain(|_, k| k.is_some());
        }
        if k.is_some() {
            self.announced.write().unwrap_or_else(lock_poisoned).remove(kid);
        }
        map.insert(kid.into(), k);
    }

    /// Holds the signing keys read from storage (at start). A key never changes once made,
    /// so what was read stands whatever events came meanwhile.
    pub fn load_keys(&self, keys: impl IntoIterator<Item = (Box<str>, Arc<(Box<str>, PublicKey)>)>) {
        let mut map = self.keys.write().unwrap_or_else(lock_poisoned);
        for (kid, k) in keys {
            map.insert(kid, Some(k));
        }
    }

    /// Was signing key `kid` made since this node read them all (its event came, and it has
    /// not been read yet)?
    pub fn announced(&self, kid: &str) -> bool {
        self.announced.read().unwrap_or_else(lock_poisoned).contains(kid)
    }

    /// May an unknown `kid` be looked up now (`now_ms`)?
    pub fn may_look_up(&self, now_ms: i64) -> bool {
        let second = now_ms.div_euclid(1000);
        if self.lookup_second.swap(second, Ordering::AcqRel) != second {
            self.lookups.store(0, Ordering::Release);
        }
        self.lookups.fetch_add(1, Ordering::AcqRel) < KID_LOOKUPS_PER_SECOND
    }

    /// Applies an `app:` event (what follows the prefix): `inst:<id>`, `app:<id>`,
    /// `fam:<id>`, `tok:<jti>` or `key:<kid>`.
    pub fn apply(&self, event: &str) {
        let mut tokens = self.tokens.write().unwrap_or_else(lock_poisoned);
        self.generation.fetch_add(1, Ordering::AcqRel);
        let Some((kind, id)) = event.split_once(':') else {
            tokens.clear();
            return;
        };
        match kind {
            "inst" => tokens.retain(|_, d| &*d.installation != id),
            "app" => tokens.retain(|_, d| &*d.app != id),
            "fam" => tokens.retain(|_, d| &*d.family != id),
            "tok" => {
                tokens.remove(id);
            }
            "key" => {
                drop(tokens);
                // A new key: a "no such key" this node kept for its `kid` is wrong now. One
                // already held (read at start, or the event seen again) stays as it is.
                let mut keys = self.keys.write().unwrap_or_else(lock_poisoned);
                if keys.get(id).is_some_and(|k| k.is_some()) {
                    return;
                }
                keys.remove(id);
                let mut announced = self.announced.write().unwrap_or_else(lock_poisoned);
                if announced.len() < MAX_KIDS {
                    announced.insert(id.into());
                }
            }
            _ => tokens.clear(),
        }
    }

    /// Forgets every decision, and every `kid` taken for no key's (a missed event may have
    /// been a key's making); the keys themselves never change.
    pub fn clear(&self) {
        let mut tokens = self.tokens.write().unwrap_or_else(lock_poisoned);
        self.generation.fetch_add(1, Ordering::AcqRel);
        tokens.clear();
        drop(tokens);
        self.keys.write().unwrap_or_else(lock_poisoned).retain(|_, k| k.is_some());
    }

    pub fn len(&self) -> usize {
        self.tokens.read().unwrap_or_else(lock_poisoned).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::model::KeyRecord;
    use keyward_core::oauth::{access_claims, token_record, Grant};
    use keyward_core::verify::KeyContext;

    fn decision(inst: &str, family: &str, app: &str) -> Arc<TokenDecision> {
        let g = Grant {
            issuer: "https://kw.example",
            installation_id: inst,
            app_id: app,
            workspace_id: "ws_1",
            permissions: &[],
            scopes: &[],
        };
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let c = access_claims(&g, "j".into(), now);
        let rec: KeyRecord = token_record(&c, "app", "live", false, now);
        Arc::new(TokenDecision {
            digest: [0; 32],
            installation: inst.into(),
            family: family.into(),
            app: app.into(),
            key: Arc::new(VerifiableKey::new(rec, KeyContext::default())),
            extra: "".into(),
            exp: c.exp,
        })
    }

    #[test]
    fn events_drop_what_they_name_and_nothing_else() {
        let c = TokenCache::new(100);
        for (jti, inst, fam, app) in [("t1", "i1", "f1", "a1"), ("t2", "i1", "f2", "a1"), ("t3", "i2", "f3", "a2")] {
            c.fill(jti, decision(inst, fam, app), c.generation(), 0);
        }
        c.apply("fam:f2");
        assert!(c.get("t2").is_none() && c.get("t1").is_some());
        c.apply("inst:i1");
        assert!(c.get("t1").is_none() && c.get("t3").is_some());
        c.apply("tok:t3");
        assert!(c.is_empty());
        c.fill("t4", decision("i4", "f4", "a4"), c.generation(), 0);
        c.apply("app:a4");
        assert!(c.get("t4").is_none());
    }

    /// A decision read before an event arrived is stale: it is not kept.
    #[test]
    fn a_fill_begun_before_an_event_is_dropped() {
        let c = TokenCache::new(100);
        let before = c.generation();
        c.apply("inst:i9");
        c.fill("t1", decision("i1", "f1", "a1"), before, 0);
        assert!(c.get("t1").is_none());
        c.fill_key("tsk_1", None, before);
        assert!(c.key("tsk_1").is_none(), "nor a key looked up before it");
    }

    #[test]
    fn unknown_kids_are_looked_up_within_a_budget() {
        let c = TokenCache::new(100);
        let allowed = (0..100).filter(|_| c.may_look_up(5_000)).count();
        assert_eq!(allowed, KID_LOOKUPS_PER_SECOND as usize);
        assert!(c.may_look_up(6_000), "a new second, a new budget");
    }

    fn public_key() -> Arc<(Box<str>, PublicKey)> {
        let k = keyward_core::signing::SecretKey::generate(
            keyward_core::signing::Algorithm::Ed25519,
            &keyward_core::OsRandom,
        );
        Arc::new(("ws_1".into(), k.public_key()))
    }

    /// A key made after the node read them all is announced by its event and read without
    /// the budget until it is held; a missed event drops every "no such key".
    #[test]
    fn new_keys_are_announced_and_a_clear_forgets_absent_kids() {
        let c = TokenCache::new(100);
        c.load_keys([("tsk_old".into(), public_key())]);
        assert!(c.key("tsk_old").is_some_and(|k| k.is_some()));
        c.fill_key("tsk_new", None, c.generation());
        assert!(!c.announced("tsk_new"));
        c.apply("key:tsk_new");
        assert!(c.key("tsk_new").is_none(), "its \"no such key\" is gone");
        assert!(c.announced("tsk_new"));
        c.fill_key("tsk_new", Some(public_key()), c.generation());
        assert!(!c.announced("tsk_new"), "held now");
        c.apply("key:tsk_old");
        assert!(c.key("tsk_old").is_some_and(|k| k.is_some()), "an event seen again drops no held key");
        assert!(!c.announced("tsk_old"));

        c.fill_key("tsk_none", None, c.generation());
        c.clear();
        assert!(c.key("tsk_none").is_none(), "a missed event may have made it");
        assert!(c.key("tsk_old").is_some() && c.key("tsk_new").is_some(), "keys never change");
    }

    #[test]
    fn capacity_is_a_bound() {
        let c = TokenCache::new(2);
        for i in 0..5 {
            c.fill(&format!("t{i}"), decision("i", "f", "a"), c.generation(), i64::MAX);
        }
        assert!(c.len() <= 2);
    }
}
