//! Leases of `fast` limits' tokens (see `keyward_core::ratelimit::LimitMode`): with Redis, a
//! node spends [`lease_size`] tokens of a fast limit in Redis in one script run (the same
//! GCRA count as exact checks, so leases are prepaid and the limit is never exceeded), then
//! answers checks from them without Redis until they run out or [`LEASE_LIFE_MS`] passes.
//! Then its unused tokens go back to Redis: with the next lease of that limit (in the same
//! run) or, for a limit not checked again, by [`run`] in the background; never on a
//! request's way. A node holds at most one lease per limit, so while one node is refused the
//! others hold at most (N − 1) × k tokens unused, each for at most a lease's life and the
//! return interval (docs/RATELIMITS.md).
//!
//! A lease comes from the holder's hash that exact checks count in, on every topology: in a
//! Redis Cluster named with the key's holders' hash tag (`redis_conn::holders_tag`). The tag
//! is kept with the leases, so unused tokens go back where they were taken from even after
//! the key's identity (and so its tag) changed.
//!
//! Only a verification whose limits are all fast, all the key's or its identity's own, each
//! at a cost within a lease, and without credits, is answered here; the rest (and a fast
//! limit whose lease Redis refuses: it is nearly spent) take the exact script run.
//!
//! The table holds keys and identities verified on this node (found keys only: a stranger
//! cannot add to it), at most [`MOST_HOLDERS`], in 16 shards like `local.rs`; a check takes
//! one or two shard locks, allocates nothing and never awaits when its leases have tokens.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keyward_core::codes::VerifyCode;
use keyward_core::limit_plan::{Holder, Planned, Slot};
use keyward_core::ratelimit::{lease_size, LimitCheck, LimitMode, RateLimit, LEASE_LIFE_MS, MAX_LIMITS};
use keyward_core::verify::Limits;

use crate::limits::local::Spent;
use crate::limits::redis::{hash_ttl_ms, spacing_us, OnError, Shared};
use crate::limits::redis_conn::holders_tag;

const SHARDS: usize = 16;
/// Most keys and identities holding leases on this node; past it one is let go (its
/// leases returned) for each new one.
pub const MOST_HOLDERS: usize = 65_536;
/// Most returns waiting for [`run`]; past it a return is dropped (its tokens come back as
/// time refills the limit: fewer allowed for a while, never more).
const MOST_RETURNS: usize = 65_536;
/// How often expired leases are returned.
pub const RETURN_EVERY: Duration = Duration::from_millis(250);
const LIFE: Duration = Duration::from_millis(LEASE_LIFE_MS);

/// Takes leases and returns unused tokens, for one holder's limits hash (`KEYS[1]`, the
/// exact script's: field `l<n>` holds limit n's TAT, `g<n>` the microseconds returned to it
/// so far). ARGV: the deadline in Redis's time, now (µs), the holder's fingerprint, the
/// number of returns, per return its limit (n), the TAT the lease left, `g<n>` when it was
/// taken and its unused tokens × spacing; the number of leases to take, how long the hash
/// lives after a write (ms, the exact script's [`hash_ttl_ms`]), per lease its limit, spacing, window and size. A return gives back only the part of the
/// unused tail still ahead of now, placed no later than returns since could have moved it
/// (`keyward_core::ratelimit::returnable`). Answers a status (0 done, 1 started after the
/// deadline: nothing changed) and Redis's time, then per lease taken: granted, the TAT it
/// left (or now stands at), `g<n>`, uses left.
const SCRIPT: &str = r#"
local clock = redis.call('TIME')
local rtime = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
if rtime > tonumber(ARGV[1]) then return {1, rtime} end
local now = tonumber(ARGV[2])
local fp = ARGV[3]
local same = redis.call('HGET', KEYS[1], 'fp') == fp
local n = tonumber(ARGV[4])
local at = 5
for i = 1, n do
  if same then
    local f, gf = 'l' .. ARGV[at], 'g' .. ARGV[at]
    local tat = tonumber(redis.call('HGET', KEYS[1], f) or '0')
    local g = tonumber(redis.call('HGET', KEYS[1], gf) or '0')
    local shift = g - tonumber(ARGV[at + 2])
    if shift >= 0 then
      local e = math.min(tonumber(ARGV[at + 1]) - shift, tat)
      local give = math.min(tonumber(ARGV[at + 3]), math.max(e - now, 0))
      if give > 0 then
        redis.call('HSET', KEYS[1], f, string.format('%.0f', tat - give), gf, string.format('%.0f', g + give))
      end
    end
  end
  at = at + 4
end
n = tonumber(ARGV[at])
local out = {0, rtime}
if n == 0 then return out end
if not same then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'fp', fp)
end
local ttl = ARGV[at + 1]
at = at + 2
for i = 1, n do
  local f, gf = 'l' .. ARGV[at], 'g' .. ARGV[at]
  local t, w, k = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local tat = tonumber(redis.call('HGET', KEYS[1], f) or '0')
  local base = math.max(tat, now)
  local after = base + t * k
  local ok = (after - now) <= w
  local full = base
  if ok then
    redis.call('HSET', KEYS[1], f, string.format('%.0f', after))
    full = after
  end
  out[#out + 1] = ok and 1 or 0
  out[#out + 1] = full
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[1], gf) or '0')
  out[#out + 1] = math.floor(math.max(w - (full - now), 0) / math.max(t, 1))
  at = at + 4
end
-- Never shortened while the hash lives on (the exact script's limits a request made may
-- hold longer windows); a hash started again here has no lifetime yet.
if same then
  redis.call('PEXPIRE', KEYS[1], ttl, 'GT')
else
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return out
"#;

static LEASE_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(SCRIPT));

/// One limit's lease on this node.
#[derive(Debug, Clone, Copy, Default)]
struct Lease {
    /// Tokens not spent yet.
    left: u32,
    /// When it ends (while `taking`: when the take is given up on).
    until: Option<Instant>,
    /// The TAT (µs) Redis kept after the lease was taken, and `g<n>` then.
    end_us: i64,
    returned_us: i64,
    spacing_us: i64,
    /// What Redis said was left after the lease, and when the limit is whole again.
    remaining: u32,
    reset_ms: i64,
    /// A run taking a new lease is under way: other checks go exact meanwhile.
    taking: bool,
}

impl Lease {
    fn live(&self, now: Instant) -> bool {
        !self.taking && self.until.is_some_and(|u| u > now)
    }

    /// Its unused tokens, to give back to the hash it was taken from, holder's under
    /// `tag` (none left: `None`).
    fn unused(&self, holder: &str, tag: &str, fingerprint: u64, slot: usize) -> Option<Return> {
        (!self.taking && self.left > 0).then(|| Return {
            holder: holder.into(),
            tag: tag.into(),
            fingerprint,
            slot,
            end_us: self.end_us,
            returned_us: self.returned_us,
            unused_us: i64::from(self.left).saturating_mul(self.spacing_us),
        })
    }
}

struct Entry {
    fingerprint: u64,
    /// The hash tag its leases were taken under (`redis_conn::holders_tag`): a key's changes
    /// with its identity, and its leases then go back under the old one.
    tag: Box<str>,
    leases: [Lease; MAX_LIMITS],
}

/// Unused tokens of a lease to give back.
#[derive(Debug, Clone)]
struct Return {
    holder: Box<str>,
    /// The hash tag it was taken under: it goes back to that hash.
    tag: Box<str>,
    fingerprint: u64,
    slot: usize,
    end_us: i64,
    returned_us: i64,
    unused_us: i64,
}

type Shard = HashMap<Box<str>, Entry>;

/// The leases of this node, and counts of the Redis runs verification made.
#[derive(Default)]
pub struct Leases {
    shards: [Mutex<Shard>; SHARDS],
    returns: Mutex<Vec<Return>>,
    /// Exact script runs for keys' limits and credits (`keyward_redis_limit_runs_total`).
    pub exact_runs: AtomicU64,
    /// Runs taking leases.
    pub lease_runs: AtomicU64,
    /// Runs returning unused tokens in the background.
    pub return_runs: AtomicU64,
}

/// What the leases said about one check.
enum Local {
    /// Answered from the leases.
    Spent,
    /// These limits of the key (bit n: its limit n) and of its identity need a new lease;
    /// their `taking` is set, and the unused tokens of the leases they replace come back.
    Need([u8; 2], Vec<Return>),
    /// Another check is taking a lease of a limit needed: go exact.
    Busy,
}

fn shard_of(id: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

fn pick<'g>(first: &'g mut Shard, second: Option<&'g mut Shard>, in_first: bool) -> &'g mut Shard {
    match second {
        Some(s) if !in_first => s,
        _ => first,
    }
}

impl Leases {
    /// May `plan`'s limits be answered from leases? Every limit fast, the key's or its
    /// identity's own (not one the request made), at a cost within a lease. Credits are not
    /// leased: they stay exact, checked in a Redis run of their own.
    pub fn applies(plan: &[Planned<'_>]) -> bool {
        !plan.is_empty()
            && plan.iter().all(|p| {
                p.limit.mode == LimitMode::Fast
                    && matches!(p.slot, Slot::At(n) if n < MAX_LIMITS)
                    && p.cost <= lease_size(p.limit.limit)
            })
    }

    /// Answers `plan` (which [`Leases::applies`] to) from this node's leases, taking new ones
    /// from Redis when needed; `None`: check it exactly (a lease was refused, or another check
    /// is taking one).
    pub async fn check(
        &self,
        shared: &Shared,
        key_id: &str,
        limits: &Limits,
        plan: &mut [Planned<'_>],
        now: DateTime<Utc>,
        list: bool,
    ) -> Option<Spent> {
        let now_ms = now.timestamp_millis();
        let (need, returns) = match self.spend(key_id, limits, plan, Instant::now()) {
            Local::Spent => return Some(Spent::from_checks(plan, None, now_ms, list)),
            Local::Busy => return None,
            Local::Need(need, returns) => (need, returns),
        };
        let identity = limits.identity.as_deref();
        let holders = [(key_id, limits), (identity.map_or("", |i| &*i.id), identity.map_or(limits, |i| &i.limits))];
        // Both holders' hashes by the exact script's names (one slot in a cluster).
        let tag = holders_tag(key_id, limits);
        let now_us = now.timestamp_micros();
        let goes_with = |r: &Return, h: usize| need[h] != 0 && *r.holder == *holders[h].0 && *r.tag == *tag;
        let take = |h: usize| {
            let (id, own) = holders[h];
            let back: Vec<&Return> = returns.iter().filter(|r| goes_with(r, h)).collect();
            self.take(shared, tag, id, own, need[h], back, now_us)
        };
        let (key_taken, identity_taken) = match (need[0] != 0, need[1] != 0) {
            (true, true) => tokio::join!(take(0), take(1)),
            (true, false) => (take(0).await, Some(Vec::new())),
            _ => (Some(Vec::new()), take(1).await),
        };
        // Any return not sent with a lease run goes back in the background.
        self.queue(returns.into_iter().filter(|r| !goes_with(r, 0) && !goes_with(r, 1)));
        let mut refused = false;
        let mut unanswered = false;
        for (h, taken) in [key_taken, identity_taken].into_iter().enumerate() {
            if need[h] == 0 {
                continue;
            }
            let (id, own) = holders[h];
            match taken {
                Some(taken) => refused |= self.install(id, tag, own, need[h], &taken),
                None => {
                    self.install(id, tag, own, need[h], &[]);
                    unanswered = true;
                }
            }
        }
        if unanswered {
            // Redis did not answer: `--ratelimit-on-error` (leases still running were spent).
            let mut s = Spent::from_checks(&[], None, now_ms, false);
            if shared.on_error == OnError::Deny {
                s.refused = Some(VerifyCode::RateLimited);
                s.retry_after_ms = 1000;
            }
            return Some(s);
        }
        if refused {
            return None;
        }
        match self.spend(key_id, limits, plan, Instant::now()) {
            Local::Spent => Some(Spent::from_checks(plan, None, now_ms, list)),
            Local::Need(need, returns) => {
                // Spent by concurrent checks already: let go of the marks, go exact.
                self.queue(returns);
                for (h, (id, own)) in holders.iter().enumerate() {
                    if need[h] != 0 {
                        self.install(id, tag, own, need[h], &[]);
                    }
                }
                None
            }
            Local::Busy => None,
        }
    }

    /// Spends each planned limit's cost from its lease when every one has enough, or marks
    /// those without as being taken.
    fn spend(&self, key_id: &str, limits: &Limits, plan: &mut [Planned<'_>], now: Instant) -> Local {
        let identity = limits.identity.as_deref();
        let tag = holders_tag(key_id, limits);
        let key_shard = shard_of(key_id);
        let id_shard = identity.map(|i| shard_of(&i.id));
        let (low, high) = match id_shard {
            Some(s) if s != key_shard => (key_shard.min(s), Some(key_shard.max(s))),
            _ => (key_shard, None),
        };
        let lock = |i: usize| self.shards[i].lock().ok();
        let Some(mut first) = lock(low) else { return Local::Busy };
        let mut second: Option<MutexGuard<'_, Shard>> = match high.map(lock) {
            Some(None) => return Local::Busy,
            Some(g) => g,
            None => None,
        };
        let whose = |p: &Planned<'_>| match (p.holder, identity) {
            (Holder::Identity, Some(i)) => (&*i.id, &i.limits, id_shard == Some(low) || high.is_none()),
            _ => (key_id, limits, key_shard == low),
        };
        let slot = |p: &Planned<'_>| match p.slot {
            Slot::At(n) => n.min(MAX_LIMITS - 1),
            Slot::Request => 0,
        };
        let mut all = true;
        let mut busy = false;
        for p in plan.iter() {
            let (id, own, in_first) = whose(p);
            let Some(e) = self.entry(pick(&mut first, second.as_deref_mut(), in_first), id, tag, own.fingerprint)
            else {
                return Local::Busy;
            };
            let l = &e.leases[slot(p)];
            if !(l.live(now) && l.left >= p.cost) {
                all = false;
                busy |= l.taking;
            }
        }
        if busy {
            return Local::Busy;
        }
        if all {
            for p in plan.iter_mut() {
                let (id, own, in_first) = whose(&*p);
                let n = slot(&*p);
                let Some(e) = self.entry(pick(&mut first, second.as_deref_mut(), in_first), id, tag, own.fingerprint)
                else {
                    return Local::Busy;
                };
                let l = &mut e.leases[n];
                l.left -= p.cost;
                p.check = LimitCheck {
                    allowed: true,
                    remaining: l.remaining.saturating_add(l.left).min(p.limit.limit),
                    reset_ms: l.reset_ms,
                    retry_after_ms: 0,
                };
            }
            return Local::Spent;
        }
        let mut need = [0u8; 2];
        let mut returns = Vec::new();
        for p in plan.iter() {
            let (id, own, in_first) = whose(p);
            let n = slot(p);
            let Some(e) = self.entry(pick(&mut first, second.as_deref_mut(), in_first), id, tag, own.fingerprint)
            else {
                continue;
            };
            let l = &mut e.leases[n];
            if l.live(now) && l.left >= p.cost {
                continue;
            }
            returns.extend(l.unused(id, &e.tag, own.fingerprint, n));
            e.leases[n] =
                Lease { taking: true, until: Some(now + 2 * crate::limits::redis::DEADLINE), ..Lease::default() };
            need[usize::from(p.holder == Holder::Identity)] |= 1 << n;
        }
        Local::Need(need, returns)
    }

    /// The entry of `id` with its leases taken under hash tag `tag` (made the first time:
    /// the id and tag copied only then; when the shard is full, another let go and its leases
    /// returned), its leases dropped when its limits changed (their counts in Redis restart
    /// too), or returned under their old tag when its tag changed (a key's identity did).
    fn entry<'m>(&self, map: &'m mut Shard, id: &str, tag: &str, fingerprint: u64) -> Option<&'m mut Entry> {
        let fresh = || Entry { fingerprint, tag: tag.into(), leases: [Lease::default(); MAX_LIMITS] };
        if !map.contains_key(id) {
            if map.len() >= MOST_HOLDERS / SHARDS {
                let gone = map.iter().find(|(_, e)| !e.leases.iter().any(|l| l.taking)).map(|(k, _)| k.clone());
                if let Some((gone, e)) = gone.and_then(|k| map.remove_entry(&k)) {
                    self.queue(
                        e.leases.iter().enumerate().filter_map(|(n, l)| l.unused(&gone, &e.tag, e.fingerprint, n)),
                    );
                }
            }
            map.insert(id.into(), fresh());
        }
        let e = map.get_mut(id)?;
        if *e.tag != *tag {
            self.queue(e.leases.iter().enumerate().filter_map(|(n, l)| l.unused(id, &e.tag, e.fingerprint, n)));
            *e = fresh();
        } else if e.fingerprint != fingerprint {
            *e = fresh();
        }
        Some(e)
    }

    /// One run for holder `id` (its hash tagged `tag`): gives back `back`, takes a lease of
    /// each limit in `need`. Answers per limit taken (in order) whether it was granted, the
    /// TAT it left, `g<n>` and the uses left; `None` when Redis did not answer in time.
    #[allow(clippy::too_many_arguments)]
    async fn take(
        &self,
        shared: &Shared,
        tag: &str,
        id: &str,
        own: &Limits,
        need: u8,
        back: Vec<&Return>,
        now_us: i64,
    ) -> Option<Vec<[i64; 4]>> {
        self.lease_runs.fetch_add(1, Ordering::Relaxed);
        let mut inv = LEASE_SCRIPT.prepare_invoke();
        inv.key(shared.limits_name(tag, id));
        inv.arg(shared.run_by()).arg(now_us).arg(own.fingerprint.to_string()).arg(back.len());
        for r in back {
            inv.arg(r.slot + 1).arg(r.end_us).arg(r.returned_us).arg(r.unused_us);
        }
        let limits: Vec<(usize, &RateLimit)> =
            own.ratelimits.iter().enumerate().filter(|(n, _)| need & (1 << n) != 0).collect();
        let longest = own.ratelimits.iter().map(|l| spacing_us(l).1).max().unwrap_or(0);
        inv.arg(limits.len()).arg(hash_ttl_ms(longest));
        for (n, l) in &limits {
            let (t, w) = spacing_us(l);
            inv.arg(n + 1).arg(t).arg(w).arg(lease_size(l.limit));
        }
        let values = shared.run_script("limit leases", &inv).await?;
        let int = |i: usize| match values.get(i) {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        };
        Some((0..limits.len()).map(|i| [int(2 + 4 * i), int(3 + 4 * i), int(4 + 4 * i), int(5 + 4 * i)]).collect())
    }

    /// Puts the leases taken for `need` of holder `id` (with limits `own`, under hash tag
    /// `tag`) in place, clearing their marks; those refused or not answered stay empty. True
    /// when one was refused. A lease whose holder was let go, or whose limits or tag changed
    /// meanwhile, is returned whole, to the hash it was taken from.
    fn install(&self, id: &str, tag: &str, own: &Limits, need: u8, taken: &[[i64; 4]]) -> bool {
        let slots = (0..MAX_LIMITS).filter(|n| need & (1 << n) != 0);
        let lease = |n: usize, t: &[i64; 4]| {
            let l = own.ratelimits.get(n)?;
            let k = lease_size(l.limit);
            Some(Lease {
                left: k,
                until: Some(Instant::now() + LIFE),
                end_us: t[1],
                returned_us: t[2],
                spacing_us: spacing_us(l).0,
                remaining: u32::try_from(t[3]).unwrap_or(0),
                reset_ms: t[1].div_euclid(1000),
                taking: false,
            })
        };
        let granted = || taken.iter().zip(slots.clone()).filter(|(t, _)| t[0] == 1);
        let refused = taken.iter().any(|t| t[0] != 1);
        let Ok(mut shard) = self.shards[shard_of(id)].lock() else { return true };
        let Some(e) = shard.get_mut(id).filter(|e| e.fingerprint == own.fingerprint && *e.tag == *tag) else {
            drop(shard);
            // Nowhere to keep them: give them back.
            let back = granted().filter_map(|(t, n)| lease(n, t)?.unused(id, tag, own.fingerprint, n));
            self.queue(back.collect::<Vec<_>>());
            return true;
        };
        let mut replaced = Vec::new();
        for n in slots.clone() {
            // Not always this take's mark: a take that outlived its mark (a task not polled
            // for a while) finds the lease another take installed since. Its unused tokens
            // go back, not lost.
            replaced.extend(e.leases[n].unused(id, &e.tag, e.fingerprint, n));
            e.leases[n] = Lease::default();
        }
        for (t, n) in granted() {
            if let Some(l) = lease(n, t) {
                e.leases[n] = l;
            }
        }
        drop(shard);
        self.queue(replaced);
        refused
    }

    /// Queues returns for [`run`] (dropped past [`MOST_RETURNS`]).
    fn queue(&self, returns: impl IntoIterator<Item = Return>) {
        let Ok(mut q) = self.returns.lock() else { return };
        for r in returns {
            if q.len() < MOST_RETURNS && r.unused_us > 0 {
                q.push(r);
            }
        }
    }

    /// Ends expired leases (and takes given up on), queueing their unused tokens, and lets
    /// go of holders with no lease left.
    fn expire(&self, now: Instant) {
        let mut out = Vec::new();
        for shard in &self.shards {
            let Ok(mut shard) = shard.lock() else { continue };
            shard.retain(|id, e| {
                for (n, l) in e.leases.iter_mut().enumerate() {
                    if l.until.is_some_and(|u| u <= now) {
                        out.extend(l.unused(id, &e.tag, e.fingerprint, n));
                        *l = Lease::default();
                    }
                }
                e.leases.iter().any(|l| l.until.is_some())
            });
        }
        self.queue(out);
    }

    /// Sends the queued returns, one run per holder's hash (the one each was taken from,
    /// under the tag it was taken with).
    async fn give_back(&self, shared: &Shared, now_us: i64) {
        let mut q = match self.returns.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(_) => return,
        };
        fn whose(r: &Return) -> (&str, &str, u64) {
            (&r.holder, &r.tag, r.fingerprint)
        }
        q.sort_by(|a, b| whose(a).cmp(&whose(b)));
        for group in q.chunk_by(|a, b| whose(a) == whose(b)) {
            let Some(first) = group.first() else { continue };
            self.return_runs.fetch_add(1, Ordering::Relaxed);
            let mut inv = LEASE_SCRIPT.prepare_invoke();
            inv.key(shared.limits_name(&first.tag, &first.holder));
            inv.arg(shared.run_by()).arg(now_us).arg(first.fingerprint.to_string()).arg(group.len());
            for r in group {
                inv.arg(r.slot + 1).arg(r.end_us).arg(r.returned_us).arg(r.unused_us);
            }
            inv.arg(0);
            // Not answered: not known whether applied, so not sent again (fewer allowed for
            // a while, never more).
            let _ = shared.run_script("limit lease returns", &inv).await;
        }
    }

    /// Tokens this node holds of other nodes' reach: unused in its leases, or waiting to be
    /// returned (`keyward_redis_lease_tokens_held`).
    pub fn held(&self) -> u64 {
        let mut n = 0u64;
        for shard in &self.shards {
            let Ok(shard) = shard.lock() else { continue };
            n += shard.values().flat_map(|e| e.leases.iter()).map(|l| u64::from(l.left)).sum::<u64>();
        }
        if let Ok(q) = self.returns.lock() {
            // Counted in tokens where the spacing is known; a return holds at least one.
            n += q.len() as u64;
        }
        n
    }
}

/// Returns expired leases' unused tokens every [`RETURN_EVERY`] (with Redis only).
pub async fn run(state: crate::state::SharedState, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let Some(shared) = &state.shared else { return };
    let mut tick = tokio::time::interval(RETURN_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        state.leases.expire(Instant::now());
        state.leases.give_back(shared, state.clock.now().timestamp_micros()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::limit_plan::plan;

    fn fast(limit: u32) -> Limits {
        let mut l = RateLimit::new("x", "a", limit, "1m").unwrap();
        l.mode = LimitMode::Fast;
        Limits::new(vec![l], None)
    }

    #[test]
    fn a_lease_answers_its_size_then_asks_for_another() {
        let leases = Leases::default();
        let limits = fast(300);
        let now = Instant::now();
        let mut p = plan(&limits.ratelimits, &[], &[], 1).unwrap();
        assert!(Leases::applies(&p));
        let Local::Need(need, back) = leases.spend("k", &limits, &mut p, now) else { panic!("no lease yet") };
        assert_eq!((need, back.len()), ([1, 0], 0));
        // While one check takes the lease, the others go exact rather than take one too.
        assert!(matches!(leases.spend("k", &limits, &mut p, now), Local::Busy));
        assert!(!leases.install("k", "k", &limits, 1, &[[1, 60_000_000, 0, 297]]));
        assert_eq!(leases.held(), 3);
        for left in [299, 298, 297] {
            assert!(matches!(leases.spend("k", &limits, &mut p, Instant::now()), Local::Spent));
            assert_eq!((p[0].check.allowed, p[0].check.remaining), (true, left));
        }
        // Used up: another is needed, nothing to give back; refused, it stays empty.
        let Local::Need(need, back) = leases.spend("k", &limits, &mut p, Instant::now()) else { panic!() };
        assert_eq!((need, back.len()), ([1, 0], 0));
        assert!(leases.install("k", "k", &limits, 1, &[[0, 60_000_000, 0, 0]]));
        assert!(matches!(leases.spend("k", &limits, &mut p, Instant::now()), Local::Need(..)));
    }

    #[test]
    fn expired_leases_are_returned_with_their_unused_tokens() {
        let leases = Leases::default();
        let limits = fast(300);
        let mut p = plan(&limits.ratelimits, &[], &[], 1).unwrap();
        let _ = leases.spend("k", &limits, &mut p, Instant::now());
        leases.install("k", "k", &limits, 1, &[[1, 60_000_000, 7, 297]]);
        assert!(matches!(leases.spend("k", &limits, &mut p, Instant::now()), Local::Spent));
        leases.expire(Instant::now() + LIFE + Duration::from_millis(1));
        let q = leases.returns.lock().unwrap().clone();
        assert_eq!(q.len(), 1);
        // Two unused tokens of 200 ms each, with the lease's place in the count.
        assert_eq!((q[0].unused_us, q[0].end_us, q[0].returned_us, q[0].slot), (400_000, 60_000_000, 7, 0));
        assert_eq!(leases.held(), 1, "waiting to be returned");
        assert!(leases.shards.iter().all(|s| s.lock().unwrap().is_empty()), "the holder is let go");
        // A lease too small for a request's cost is replaced, its rest given back with it.
        let _ = leases.spend("k", &limits, &mut p, Instant::now());
        leases.install("k", "k", &limits, 1, &[[1, 60_000_000, 0, 297]]);
        let mut p3 = plan(&limits.ratelimits, &[], &[], 3).unwrap();
        assert!(matches!(leases.spend("k", &limits, &mut p3, Instant::now()), Local::Spent));
        let mut p2 = plan(&limits.ratelimits, &[], &[], 1).unwrap();
        let _ = leases.spend("k", &limits, &mut p2, Instant::now());
        leases.install("k", "k", &limits, 1, &[[1, 60_000_000, 0, 297]]);
        assert!(matches!(leases.spend("k", &limits, &mut p2, Instant::now()), Local::Spent));
        let Local::Need(_, back) = leases.spend("k", &limits, &mut p3, Instant::now()) else { panic!() };
        assert_eq!(back.len(), 1, "two left, three asked: the two go back with the next lease");
    }

    #[test]
    fn leases_go_back_under_the_tag_they_were_taken_with() {
        let leases = Leases::default();
        let limits = fast(300);
        let mut p = plan(&limits.ratelimits, &[], &[], 1).unwrap();
        let _ = leases.spend("k", &limits, &mut p, Instant::now());
        assert!(!leases.install("k", "k", &limits, 1, &[[1, 60_000_000, 0, 297]]));
        assert!(matches!(leases.spend("k", &limits, &mut p, Instant::now()), Local::Spent));
        // The key joins an identity with limits: its hashes are tagged with the identity's
        // id now (in a cluster, another name). Its lease goes back under the old tag.
        let joined = limits.clone().with_identity("i", fast(10));
        let mut pj = plan(&joined.ratelimits, &[], &[], 1).unwrap();
        let Local::Need(need, back) = leases.spend("k", &joined, &mut pj, Instant::now()) else { panic!() };
        assert_eq!((need, back.len()), ([1, 0], 0), "a fresh lease under the new tag");
        let q = leases.returns.lock().unwrap().clone();
        assert_eq!(q.len(), 1);
        assert_eq!((&*q[0].holder, &*q[0].tag, q[0].unused_us), ("k", "k", 400_000));
        // It leaves the identity while that lease is being taken: the lease, taken under
        // "i", goes back there whole rather than be spent under "k".
        assert!(matches!(leases.spend("k", &limits, &mut p, Instant::now()), Local::Need(..)));
        assert!(leases.install("k", "i", &joined, 1, &[[1, 60_000_000, 0, 297]]), "not kept");
        let q = leases.returns.lock().unwrap().clone();
        assert_eq!(q.len(), 2);
        assert_eq!((&*q[1].holder, &*q[1].tag, q[1].unused_us), ("k", "i", 600_000));
    }

    #[test]
    fn a_take_that_outlived_its_mark_loses_no_tokens() {
        let leases = Leases::default();
        let limits = fast(300);
        let mut p = plan(&limits.ratelimits, &[], &[], 1).unwrap();
        let now = Instant::now();
        assert!(matches!(leases.spend("k", &limits, &mut p, now), Local::Need(..)));
        // The first take's task is not polled for a while: its mark is given up on and a
        // second check takes a lease too.
        leases.expire(now + 2 * crate::limits::redis::DEADLINE + Duration::from_millis(1));
        assert!(matches!(leases.spend("k", &limits, &mut p, Instant::now()), Local::Need(..)));
        // Both are granted; whichever comes second replaces the other, which goes back.
        assert!(!leases.install("k", "k", &limits, 1, &[[1, 60_000_000, 0, 297]]));
        assert!(matches!(leases.spend("k", &limits, &mut p, Instant::now()), Local::Spent));
        assert!(!leases.install("k", "k", &limits, 1, &[[1, 60_000_000, 0, 294]]));
        let q = leases.returns.lock().unwrap().clone();
        assert_eq!(q.len(), 1, "the replaced lease's two unused tokens go back");
        assert_eq!(q[0].unused_us, 400_000);
        assert_eq!(leases.held(), 3 + 1);
    }

    #[test]
    fn what_takes_the_fast_path() {
        let limits = fast(300);
        assert!(!Leases::applies(&plan(&limits.ratelimits, &[], &[], 4).unwrap()), "cost past a lease");
        let exact = Limits::new(vec![RateLimit::new("x", "a", 300, "1m").unwrap()], None);
        assert!(!Leases::applies(&plan(&exact.ratelimits, &[], &[], 1).unwrap()));
        assert!(!Leases::applies(&[]));
    }

    #[test]
    fn the_table_is_bounded() {
        let leases = Leases::default();
        let limits = fast(300);
        let mut map = Shard::new();
        for i in 0..MOST_HOLDERS / SHARDS {
            let e = leases.entry(&mut map, &format!("k{i}"), &format!("k{i}"), limits.fingerprint).unwrap();
            e.leases[0] = Lease { left: 1, until: Some(Instant::now() + LIFE), spacing_us: 5, ..Lease::default() };
        }
        leases.entry(&mut map, "one more", "one more", limits.fingerprint).unwrap();
        assert_eq!(map.len(), MOST_HOLDERS / SHARDS);
        assert_eq!(leases.returns.lock().unwrap().len(), 1, "the holder let go gives its lease back");
    }
}
