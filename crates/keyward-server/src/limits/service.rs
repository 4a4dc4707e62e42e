//! Rate limiting as a service (`POST /v1/ratelimit`): limits that are not about keys (logins,
//! SMS, addresses), named by the caller's workspace, a namespace and an identifier. The
//! arithmetic is keys' GCRA (`keyward_core::ratelimit::gcra`); the counts live on this node
//! (16 shards, bounded: [`CAPACITY`]) or, with `--redis-url`, in Redis through the same
//! script as keys' limits, so every node sharing Redis shares the limit.
//!
//! Overrides (per identifier, or per `*` pattern) are read from storage one namespace at a
//! time and held here; a change to any override of a workspace emits an `rlo:<workspace>`
//! change event, on which every node drops what it holds for the workspace. Entries are also
//! re-read after [`OVERRIDES_TTL`], a backstop against a missed event.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keyward_core::ratelimit::{gcra, LimitCheck};
use keyward_core::ratelimit_service::{CheckedRequest, OverrideSet, ServiceLimit};
use keyward_core::wire::ratelimit::LimitAnswer;
use keyward_store::StoreError;
use sha2::{Digest, Sha256};

use crate::limits::redis::OnError;
use crate::state::AppState;

const SHARDS: usize = 16;
/// Most identifiers counted on one node (all workspaces and namespaces together). A
/// namespace and identifier are kept as a 128-bit keyed hash, so an entry is a few dozen
/// bytes whatever their length: at most some 40 MB. When a shard is full, the entries
/// whose limits are whole again go first (they hold nothing), then the quarter nearest to
/// whole (those identifiers may burst again a little early).
pub const CAPACITY: usize = 1 << 19;
const PER_SHARD: usize = CAPACITY / SHARDS;
/// Most namespaces whose overrides a node holds at once.
const OVERRIDE_NAMESPACES: usize = 4_096;
/// A namespace's overrides are read again after this long even without a change event.
pub const OVERRIDES_TTL: Duration = Duration::from_secs(60);

/// The override an identifier's check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub id: String,
    pub limit: ServiceLimit,
}

struct Slot {
    fingerprint: u64,
    /// The theoretical arrival time (ns).
    tat: i64,
}

struct Held {
    overrides: Arc<OverrideSet<Applied>>,
    at: Instant,
}

/// One workspace's held overrides, by namespace.
type Namespaces = HashMap<Box<str>, Held>;

pub struct ServiceLimits {
    shards: [Mutex<HashMap<(u64, u64), Slot>>; SHARDS],
    /// Two independently keyed hashers: a 128-bit name nobody outside can aim collisions at.
    hashers: (RandomState, RandomState),
    /// By workspace, then namespace: a workspace's change event drops its whole entry.
    overrides: Mutex<HashMap<Box<str>, Namespaces>>,
    /// Bumped by every invalidation: a fill that read storage before one is not kept.
    generation: AtomicU64,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits {
            shards: Default::default(),
            hashers: (RandomState::new(), RandomState::new()),
            overrides: Mutex::default(),
            generation: AtomicU64::new(0),
        }
    }
}

/// What identifies a limit's counts: a change of limit or window starts them again (as a
/// key's limits do when changed).
pub fn fingerprint(l: ServiceLimit) -> u64 {
    u64::from(l.limit).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ l.duration_ms
}

/// The Redis key of a limit: its names hashed, so any bytes fit and the key stays short.
pub fn redis_key(workspace_id: &str, namespace: &str, identifier: &str) -> String {
    let mut h = Sha256::new();
    // Neither name holds a NUL (checked), so the joined form is unambiguous.
    for part in [namespace, "\0", identifier] {
        h.update(part.as_bytes());
    }
    format!("kw:rs:{workspace_id}:{}", keyward_core::wire::hex::hex_encode(&h.finalize()))
}

impl ServiceLimits {
    fn name(&self, workspace_id: &str, namespace: &str, identifier: &str) -> (u64, u64) {
        let parts = (workspace_id, namespace, identifier);
        (self.hashers.0.hash_one(parts), self.hashers.1.hash_one(parts))
    }

    /// Checks and spends `cost` of `limit` (≥ 1) for one identifier, counted on this node.
    pub fn check_local(
        &self,
        (workspace_id, namespace, identifier): (&str, &str, &str),
        limit: ServiceLimit,
        now: DateTime<Utc>,
        cost: u32,
    ) -> LimitCheck {
        let name = self.name(workspace_id, namespace, identifier);
        let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let fp = fingerprint(limit);
        let rl = limit.as_rate_limit();
        let shard = &self.shards[(name.0 as usize) % SHARDS];
        let Ok(mut shard) = shard.lock() else {
            // A poisoned shard (a panic elsewhere): answer from a fresh count.
            return gcra(&rl, 0, now_ns, cost).1;
        };
        let tat = match shard.get(&name) {
            Some(s) if s.fingerprint == fp => s.tat,
            _ => 0,
        };
        let (next, check) = gcra(&rl, tat, now_ns, cost);
        if next != tat {
            if !shard.contains_key(&name) && shard.len() >= PER_SHARD {
                make_room(&mut shard, now_ns);
            }
            shard.insert(name, Slot { fingerprint: fp, tat: next });
        }
        check
    }

    /// A namespace's overrides as held here, when fresh.
    pub fn held_overrides(&self, workspace_id: &str, namespace: &str) -> Option<Arc<OverrideSet<Applied>>> {
        let held = self.overrides.lock().ok()?;
        let h = held.get(workspace_id)?.get(namespace)?;
        (h.at.elapsed() < OVERRIDES_TTL).then(|| h.overrides.clone())
    }

    /// The generation to pass to [`ServiceLimits::hold_overrides`], taken before reading.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Holds a namespace's overrides read from storage, unless an invalidation came since
    /// `generation` (the read may be older than the change).
    pub fn hold_overrides(&self, generation: u64, workspace_id: &str, namespace: &str, set: Arc<OverrideSet<Applied>>) {
        let Ok(mut held) = self.overrides.lock() else { return };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if held.values().map(HashMap::len).sum::<usize>() >= OVERRIDE_NAMESPACES {
            // The oldest read goes: it is the next to expire anyway.
            let oldest = held
                .iter()
                .flat_map(|(ws, nss)| nss.iter().map(move |(ns, h)| (h.at, ws.clone(), ns.clone())))
                .min_by_key(|(at, _, _)| *at);
            if let Some((_, ws, ns)) = oldest {
                if let Some(nss) = held.get_mut(&ws) {
                    nss.remove(&ns);
                    if nss.is_empty() {
                        held.remove(&ws);
                    }
                }
            }
        }
        held.entry(Box::from(workspace_id))
            .or_default()
            .insert(Box::from(namespace), Held { overrides: set, at: Instant::now() });
    }

    /// Drops the overrides held for a workspace (its change event, or a change made here).
    pub fn forget_overrides(&self, workspace_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut held) = self.overrides.lock() {
            held.remove(workspace_id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|s| s.len()).unwrap_or(0)).sum()
    }
}

/// Answers a checked `POST /v1/ratelimit` of `workspace_id`: its override (if any) in place
/// of the request's limit, then the count in Redis (when configured and answering) or here.
pub async fn check(state: &AppState, workspace_id: &str, req: &CheckedRequest<'_>) -> Result<LimitAnswer, StoreError> {
    let applied = overrides(state, workspace_id, req.namespace).await?.find(req.identifier).cloned();
    let limit = applied.as_ref().map_or(req.limit, |a| a.limit);
    let now = state.clock.now();
    let answer = |c: LimitCheck| LimitAnswer {
        success: c.allowed,
        remaining: u64::from(c.remaining),
        reset: c.reset_ms,
        limit: u64::from(limit.limit),
        override_id: applied.as_ref().map(|a| a.id.clone()),
    };
    if limit.limit == 0 {
        // An override of 0 refuses everything (a ban); nothing to count.
        let reset_ms = now.timestamp_millis();
        return Ok(answer(LimitCheck { allowed: false, remaining: 0, reset_ms, retry_after_ms: 0 }));
    }
    let names = (workspace_id, req.namespace, req.identifier);
    if let Some(shared) = &state.shared {
        let key = redis_key(workspace_id, req.namespace, req.identifier);
        let rl = limit.as_rate_limit();
        if let Some(c) = shared.limit_one(&key, &rl, fingerprint(limit), now, req.cost).await {
            return Ok(answer(c));
        }
        // Redis is away: `--ratelimit-on-error allow` counts on this node meanwhile (as the
        // login throttle does); `deny` refuses.
        if shared.on_error == OnError::Deny {
            let reset_ms = now.timestamp_millis() + 1_000;
            return Ok(answer(LimitCheck { allowed: false, remaining: 0, reset_ms, retry_after_ms: 1_000 }));
        }
    }
    Ok(answer(state.service_limits.check_local(names, limit, now, req.cost)))
}

/// A namespace's overrides: held here, or read from storage (and held).
async fn overrides(
    state: &AppState,
    workspace_id: &str,
    namespace: &str,
) -> Result<Arc<OverrideSet<Applied>>, StoreError> {
    let service = &state.service_limits;
    if let Some(set) = service.held_overrides(workspace_id, namespace) {
        return Ok(set);
    }
    let generation = service.generation();
    let rows = state.store.namespace_ratelimit_overrides(workspace_id, namespace).await?;
    let set = Arc::new(OverrideSet::new(rows.into_iter().map(|o| {
        let limit = ServiceLimit { limit: o.limit, duration_ms: o.duration_ms };
        (o.identifier, Applied { id: o.id, limit })
    })));
    service.hold_overrides(generation, workspace_id, namespace, set.clone());
    Ok(set)
}

/// Frees room in a full shard: entries whole again go first, then the quarter nearest to whole.
fn make_room(shard: &mut HashMap<(u64, u64), Slot>, now_ns: i64) {
    shard.retain(|_, s| s.tat > now_ns);
    if shard.len() < PER_SHARD {
        return;
    }
    let mut tats: Vec<i64> = shard.values().map(|s| s.tat).collect();
    if tats.is_empty() {
        return;
    }
    let quarter = tats.len() / 4;
    let (_, cut, _) = tats.select_nth_unstable(quarter);
    let cut = *cut;
    shard.retain(|_, s| s.tat > cut);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const LIMIT: ServiceLimit = ServiceLimit { limit: 3, duration_ms: 60_000 };

    #[test]
    fn counts_per_workspace_namespace_and_identifier() {
        let s = ServiceLimits::default();
        let t = Utc.timestamp_millis_opt(1_000_000).unwrap();
        for left in [2, 1, 0] {
            let c = s.check_local(("ws_a", "login", "u1"), LIMIT, t, 1);
            assert_eq!((c.allowed, c.remaining), (true, left));
        }
        assert!(!s.check_local(("ws_a", "login", "u1"), LIMIT, t, 1).allowed);
        assert!(s.check_local(("ws_b", "login", "u1"), LIMIT, t, 1).allowed, "another workspace");
        assert!(s.check_local(("ws_a", "sms", "u1"), LIMIT, t, 1).allowed, "another namespace");
        assert!(s.check_local(("ws_a", "login", "u2"), LIMIT, t, 1).allowed, "another identifier");
        // A peek stores nothing new.
        assert_eq!(s.check_local(("ws_a", "login", "u3"), LIMIT, t, 0).remaining, 3);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn a_flood_of_identifiers_stays_bounded() {
        let s = ServiceLimits::default();
        let t = Utc.timestamp_millis_opt(1_000_000).unwrap();
        let day = ServiceLimit { limit: 10, duration_ms: 86_400_000 };
        for i in 0..(CAPACITY + CAPACITY / 2) {
            s.check_local(("ws", "ip", &i.to_string()), day, t, 1);
        }
        assert!(s.len() <= CAPACITY, "{}", s.len());
    }

    #[test]
    fn overrides_held_until_forgotten_and_stale_fills_dropped() {
        let s = ServiceLimits::default();
        let set = Arc::new(OverrideSet::new([("u1".to_string(), Applied { id: "rlo_1".into(), limit: LIMIT })]));
        let g = s.generation();
        s.hold_overrides(g, "ws", "login", set.clone());
        assert!(s.held_overrides("ws", "login").is_some());
        s.forget_overrides("ws");
        assert!(s.held_overrides("ws", "login").is_none());
        // A fill that read before the invalidation is not kept.
        s.hold_overrides(g, "ws", "login", set);
        assert!(s.held_overrides("ws", "login").is_none());
        assert_ne!(redis_key("ws", "a", "b:c"), redis_key("ws", "a:b", "c"));
    }
}
