//! Rate limits and credits as this node keeps them, in memory (the mode without Redis):
//! one entry per key that has limits or credits, in 16 shards, each check under one shard
//! lock and no await. Every node counts on its own here: N nodes allow up to N × a limit,
//! and spend credits from their own running counts (written back in batches, the last write
//! winning). With `--redis-url` the shared store in `redis.rs` is used instead.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use keyward_core::codes::VerifyCode;
use keyward_core::limit_plan::{Holder, Planned, Slot, MAX_NAMED};
use keyward_core::ratelimit::{gcra, spend, CreditState, KeyCredits, MAX_LIMITS};
use keyward_core::verify::Limits;
use keyward_core::wire::verify::{CreditsAnswer, RatelimitAnswer, RatelimitResult};

const SHARDS: usize = 16;
/// Most limits one check holds: a key's, its identity's and those a request names.
const MOST_PLANNED: usize = 2 * MAX_LIMITS + MAX_NAMED;

/// What a key's limits and credits said about one verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Spent {
    /// `RATE_LIMITED` or `USAGE_EXCEEDED` when refused.
    pub refused: Option<VerifyCode>,
    /// The tightest limit (the refusing one, or the one with the fewest uses left).
    pub ratelimit: Option<RatelimitAnswer>,
    pub retry_after_ms: i64,
    /// Credits left: the key's, or its identity's, or (both) the smaller count.
    pub credits: Option<u64>,
    /// When it was checked (for the headers' seconds).
    pub now_ms: i64,
    /// Every limit checked, for the answers that list them (see [`Spent::from_checks`]).
    pub ratelimits: Option<Vec<RatelimitResult>>,
}

impl Spent {
    /// The IETF draft's headers (draft-ietf-httpapi-ratelimit-headers) and, when refused,
    /// `Retry-After` in seconds.
    pub fn headers(&self, limits: &Limits) -> Vec<(&'static str, axum::http::HeaderValue)> {
        let mut out = Vec::new();
        let policy: Vec<String> = limits
            .ratelimits
            .iter()
            .chain(limits.identity_limits())
            .filter(|l| l.auto_apply)
            .map(|l| format!("\"{}\";q={};w={}", l.name, l.limit, l.duration_ms / 1000))
            .collect();
        let mut push = |name, v: String| {
            if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
                out.push((name, v));
            }
        };
        if !policy.is_empty() {
            push("ratelimit-policy", policy.join(", "));
        }
        if let Some(r) = &self.ratelimit {
            let now_ms = self.now_ms;
            let t = ((r.reset - now_ms).max(0) + 999) / 1000;
            push("ratelimit", format!("\"{}\";r={};t={t}", r.name, r.remaining));
        }
        if self.refused.is_some() {
            push("retry-after", ((self.retry_after_ms.max(0) + 999) / 1000).max(1).to_string());
        }
        out
    }

    /// `,"ratelimit":{…},"credits":{…},"ratelimits":[…]` for the verify answer.
    pub fn json(&self) -> String {
        let mut out = String::new();
        if let Some(r) = &self.ratelimit {
            out.push_str(",\"ratelimit\":");
            out.push_str(&serde_json::to_string(r).unwrap_or_else(|_| "null".into()));
        }
        if let Some(c) = self.credits {
            out.push_str(",\"credits\":");
            out.push_str(&serde_json::to_string(&CreditsAnswer { remaining: c }).unwrap_or_else(|_| "null".into()));
        }
        if let Some(l) = &self.ratelimits {
            out.push_str(",\"ratelimits\":");
            out.push_str(&serde_json::to_string(l).unwrap_or_else(|_| "[]".into()));
        }
        out
    }

    /// Builds the answer from each planned limit's check and the credit outcome; `list`
    /// adds every limit checked (`ratelimits`).
    pub(crate) fn from_checks(plan: &[Planned<'_>], credits: Option<(bool, u64)>, now_ms: i64, list: bool) -> Spent {
        let refusing = plan.iter().position(|p| !p.check.allowed);
        let tightest = refusing.or_else(|| (0..plan.len()).min_by_key(|i| plan[*i].check.remaining));
        let ratelimit = tightest.map(|i| RatelimitAnswer {
            name: plan[i].limit.name.clone(),
            limit: plan[i].limit.limit,
            remaining: plan[i].check.remaining,
            reset: plan[i].check.reset_ms,
        });
        let refused = match (refusing, credits) {
            (Some(_), _) => Some(VerifyCode::RateLimited),
            (None, Some((false, _))) => Some(VerifyCode::UsageExceeded),
            _ => None,
        };
        let retry_after_ms = match refused {
            Some(VerifyCode::RateLimited) => refusing.map_or(0, |i| plan[i].check.retry_after_ms),
            Some(_) => until_midnight(now_ms),
            None => 0,
        };
        let ratelimits = list.then(|| {
            plan.iter()
                .map(|p| RatelimitResult {
                    name: p.limit.name.clone(),
                    limit: p.limit.limit,
                    duration: p.limit.duration_ms,
                    remaining: p.check.remaining,
                    reset: p.check.reset_ms,
                    exceeded: !p.check.allowed,
                    auto_apply: p.limit.auto_apply,
                    source: p.source().to_string(),
                })
                .collect()
        });
        Spent { refused, ratelimit, retry_after_ms, credits: credits.map(|(_, left)| left), now_ms, ratelimits }
    }
}

/// The credit outcomes of a key and its identity as one: allowed when both allow, the
/// smaller count left.
pub(crate) fn combine(a: Option<(bool, u64)>, b: Option<(bool, u64)>) -> Option<(bool, u64)> {
    match (a, b) {
        (Some((x, l)), Some((y, m))) => Some((x && y, l.min(m))),
        (one, None) | (None, one) => one,
    }
}

/// Spent credits come back at a refill, which happens at a UTC midnight: the soonest a
/// client may usefully ask again (or an override, which no client can predict).
fn until_midnight(now_ms: i64) -> i64 {
    let day = 86_400_000;
    day - now_ms.rem_euclid(day)
}

struct Entry {
    fingerprint: u64,
    /// One TAT (ns) per limit, in the holder's order.
    tats: Vec<i64>,
    /// Limits made by requests (name, limit, window in ms, TAT): few, and only for keys
    /// whose verifications make them.
    made: Vec<(Box<str>, u32, u64, i64)>,
    credits: Option<Running>,
}

/// A key's (or an identity's) running credit count on this node.
struct Running {
    state: CreditState,
    /// When the credits this count started from were set (ms).
    set_at: i64,
    /// Spent since the last flush.
    dirty: bool,
}

/// A running credit count to write back (a key's, or an identity's by its `idn_` id).
pub type CreditWrite = keyward_store::CreditCount;

type Shard = HashMap<Box<str>, Entry>;

#[derive(Default)]
pub struct LocalLimits {
    shards: [Mutex<Shard>; SHARDS],
}

fn shard_of(id: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

/// The entry of `id` (made the first time it is seen: the id is copied only then), its
/// counts restarted when its limits changed. Always `Some` (inserted under the same lock).
fn entry<'m>(map: &'m mut Shard, id: &str, limits: &Limits) -> Option<&'m mut Entry> {
    let n = limits.ratelimits.len();
    if !map.contains_key(id) {
        map.insert(
            id.into(),
            Entry { fingerprint: limits.fingerprint, tats: vec![0; n], made: Vec::new(), credits: None },
        );
    }
    let e = map.get_mut(id)?;
    if e.fingerprint != limits.fingerprint || e.tats.len() != n {
        e.fingerprint = limits.fingerprint;
        e.tats = vec![0; n];
        e.made.clear();
    }
    Some(e)
}

/// The map holding `shard` of the one or two locked.
fn pick<'g>(first: &'g mut Shard, second: Option<&'g mut Shard>, in_first: bool) -> &'g mut Shard {
    match second {
        Some(s) if !in_first => s,
        _ => first,
    }
}

/// A holder's running count, restarted from the stored one when that was set anew.
fn running<'e>(e: &'e mut Entry, stored: &KeyCredits) -> &'e mut Running {
    let set_at = stored.set_at.timestamp_millis();
    if e.credits.as_ref().is_none_or(|r| r.set_at != set_at) {
        e.credits = None;
    }
    e.credits.get_or_insert_with(|| Running { state: stored.state(), set_at, dirty: false })
}

impl LocalLimits {
    /// Checks and spends the planned limits of a key and its identity, then their credits,
    /// as one step: nothing of the limits is spent when one refuses, and no credits are
    /// spent when a limit refuses or when either holder's credits fall short.
    ///
    /// A key and its identity may sit in two shards: both are locked, always the one with
    /// the lower index first (one lock when they share it), so two checks never each hold
    /// one and wait for the other.
    pub fn check(
        &self,
        key_id: &str,
        limits: &Limits,
        plan: &mut [Planned<'_>],
        now: DateTime<Utc>,
        cost: u32,
        list: bool,
    ) -> Spent {
        let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let now_ms = now.timestamp_millis();
        let identity = limits.identity.as_deref();
        let key_shard = shard_of(key_id);
        let id_shard = identity.map(|i| shard_of(&i.id));
        let (low, high) = match id_shard {
            Some(s) if s != key_shard => (key_shard.min(s), Some(key_shard.max(s))),
            _ => (key_shard, None),
        };
        let lock = |i: usize| self.shards[i].lock().ok();
        // A poisoned shard (a panic elsewhere) must not stop verification.
        let Some(mut first) = lock(low) else { return Spent::from_checks(&[], None, now_ms, false) };
        let mut second: Option<MutexGuard<'_, Shard>> = match high.map(lock) {
            Some(None) => return Spent::from_checks(&[], None, now_ms, false),
            Some(g) => g,
            None => None,
        };
        let mut next = [0i64; MOST_PLANNED];
        let holders = [(Holder::Key, key_id, key_shard, limits)]
            .into_iter()
            .chain(identity.map(|i| (Holder::Identity, &*i.id, shard_of(&i.id), &i.limits)));
        // Each limit checked against its holder's counts.
        for (holder, id, shard, own) in holders.clone() {
            if !plan.iter().any(|p| p.holder == holder) {
                continue;
            }
            let Some(e) = entry(pick(&mut first, second.as_deref_mut(), shard == low), id, own) else { continue };
            for (i, p) in plan.iter_mut().enumerate().filter(|(_, p)| p.holder == holder) {
                let tat = match p.slot {
                    Slot::At(n) => e.tats.get(n).copied().unwrap_or(0),
                    Slot::Request => made_tat(e, &p.limit),
                };
                let (t, c) = gcra(&p.limit, tat, now_ns, p.cost);
                p.check = c;
                if let Some(slot) = next.get_mut(i) {
                    *slot = t;
                }
            }
        }
        let limited = plan.iter().any(|p| !p.check.allowed);
        if !limited {
            for (holder, id, shard, own) in holders.clone() {
                if !plan.iter().any(|p| p.holder == holder) {
                    continue;
                }
                let Some(e) = entry(pick(&mut first, second.as_deref_mut(), shard == low), id, own) else {
                    continue;
                };
                for (i, p) in plan.iter().enumerate().filter(|(_, p)| p.holder == holder && p.cost > 0) {
                    let t = next.get(i).copied().unwrap_or(0);
                    match p.slot {
                        Slot::At(n) => {
                            if let Some(tat) = e.tats.get_mut(n) {
                                *tat = t;
                            }
                        }
                        Slot::Request => set_made(e, &p.limit, t),
                    }
                }
            }
        }
        // Credits: each holder's looked at first; spent only when every holder's cover it.
        let spend_cost = if limited { 0 } else { u64::from(cost) };
        let mut outcomes: [Option<(bool, CreditState)>; 2] = [None, None];
        for (slot, (_, id, shard, own)) in outcomes.iter_mut().zip(holders.clone()) {
            if let Some(stored) = own.credits {
                let Some(e) = entry(pick(&mut first, second.as_deref_mut(), shard == low), id, own) else { continue };
                let r = running(e, &stored);
                *slot = Some(spend(r.state, stored.refill.as_ref(), now, spend_cost));
            }
        }
        let all_ok = outcomes.iter().flatten().all(|(ok, _)| *ok);
        let mut answers: [Option<(bool, u64)>; 2] = [None, None];
        for ((answer, outcome), (_, id, shard, own)) in answers.iter_mut().zip(outcomes).zip(holders) {
            let (Some((ok, spent)), Some(stored)) = (outcome, own.credits) else { continue };
            let Some(e) = entry(pick(&mut first, second.as_deref_mut(), shard == low), id, own) else { continue };
            let r = running(e, &stored);
            let state = if all_ok { spent } else { spend(r.state, stored.refill.as_ref(), now, 0).1 };
            if state != r.state {
                r.state = state;
                r.dirty = true;
            }
            *answer = Some((ok, state.remaining));
        }
        Spent::from_checks(plan, combine(answers[0], answers[1]), now_ms, list)
    }

    /// The running counts spent since the last call (marked written).
    pub fn take_credit_writes(&self) -> Vec<CreditWrite> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let Ok(mut shard) = shard.lock() else { continue };
            for (id, e) in shard.iter_mut() {
                if let Some(r) = e.credits.as_mut().filter(|r| r.dirty) {
                    r.dirty = false;
                    out.push(CreditWrite {
                        key_id: id.to_string(),
                        remaining: r.state.remaining,
                        period: r.state.period,
                        set_at_ms: r.set_at,
                    });
                }
            }
        }
        out
    }

    /// Puts back writes that failed, unless the key was spent again meanwhile.
    pub fn put_back(&self, writes: Vec<CreditWrite>) {
        for w in writes {
            let Ok(mut shard) = self.shards[shard_of(&w.key_id)].lock() else { continue };
            if let Some(r) = shard.get_mut(w.key_id.as_str()).and_then(|e| e.credits.as_mut()) {
                r.dirty = true;
            }
        }
    }

    /// Drops the entries of keys without credits whose limits are whole again (they hold
    /// nothing a fresh entry would not). Credit counts stay: the cached record may be older
    /// than the last write.
    pub fn prune(&self, now: DateTime<Utc>) {
        let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        for shard in &self.shards {
            if let Ok(mut shard) = shard.lock() {
                shard.retain(|_, e| {
                    e.made.retain(|m| m.3 > now_ns);
                    e.credits.is_some() || !e.made.is_empty() || e.tats.iter().any(|t| *t > now_ns)
                });
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|s| s.len()).unwrap_or(0)).sum()
    }
}

fn made_tat(e: &Entry, l: &keyward_core::ratelimit::RateLimit) -> i64 {
    e.made.iter().find(|m| *m.0 == *l.name && m.1 == l.limit && m.2 == l.duration_ms).map_or(0, |m| m.3)
}

fn set_made(e: &mut Entry, l: &keyward_core::ratelimit::RateLimit, tat: i64) {
    match e.made.iter_mut().find(|m| *m.0 == *l.name && m.1 == l.limit && m.2 == l.duration_ms) {
        Some(m) => m.3 = tat,
        None => e.made.push((l.name.as_str().into(), l.limit, l.duration_ms, tat)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use keyward_core::limit_plan::plan;
    use keyward_core::ratelimit::{Interval, RateLimit, Refill};

    fn check(l: &LocalLimits, id: &str, k: &Limits, t: DateTime<Utc>, cost: u32) -> Spent {
        let mut p = plan(&k.ratelimits, k.identity_limits(), &[], cost).unwrap();
        l.check(id, k, &mut p, t, cost, false)
    }

    fn limits(n: u32, credits: Option<u64>) -> Limits {
        Limits::new(
            vec![RateLimit::new("x", "default", n, "1m").unwrap()],
            credits.map(|c| KeyCredits {
                remaining: c,
                refill: Some(Refill { interval: Interval::Daily, amount: c, day: 1 }),
                period: 0,
                set_at: Utc.timestamp_millis_opt(1).unwrap(),
            }),
        )
    }

    fn credits_of(n: u64) -> KeyCredits {
        KeyCredits { remaining: n, refill: None, period: 0, set_at: Utc.timestamp_millis_opt(1).unwrap() }
    }

    /// Two keys of one identity share its limit and credits; a key's own credits and the
    /// identity's are spent together or not at all.
    #[test]
    fn keys_of_an_identity_share_its_limits_and_credits() {
        let l = LocalLimits::default();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let shared = Limits::new(vec![RateLimit::new("x", "team", 3, "1m").unwrap()], Some(credits_of(4)));
        let k1 = Limits::new(Vec::new(), Some(credits_of(1))).with_identity("idn_1", shared.clone());
        let k2 = Limits::new(Vec::new(), None).with_identity("idn_1", shared);
        let a = check(&l, "key_1", &k1, t, 1);
        assert_eq!((a.refused, a.credits), (None, Some(0)), "the smaller of the key's 0 and the identity's 3");
        // key_1's own credits are spent: refused, and the identity's are not touched.
        let b = check(&l, "key_1", &k1, t, 1);
        assert_eq!(b.refused, Some(VerifyCode::UsageExceeded));
        let c = check(&l, "key_2", &k2, t, 1);
        assert_eq!((c.refused, c.credits), (None, Some(2)), "the identity's 4, less key_1's and key_2's");
        assert_eq!(c.ratelimit.as_ref().map(|r| r.remaining), Some(0), "the shared limit counted all three");
        let d = check(&l, "key_2", &k2, t, 1);
        assert_eq!((d.refused, d.credits), (Some(VerifyCode::RateLimited), Some(2)));
        let writes = l.take_credit_writes();
        let idn = writes.iter().find(|w| w.key_id == "idn_1").map(|w| w.remaining);
        assert_eq!(idn, Some(2), "{writes:?}");
    }

    /// A limit that is not applied automatically is checked only when named, at its cost.
    #[test]
    fn a_named_limit_at_its_own_cost() {
        use keyward_core::wire::verify::VerifyRatelimit;
        let l = LocalLimits::default();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let mut manual = RateLimit::new("x", "manual", 5, "1m").unwrap();
        manual.auto_apply = false;
        let k = Limits::new(vec![manual], None);
        for _ in 0..10 {
            assert_eq!(check(&l, "k", &k, t, 1).refused, None, "not checked unless named");
        }
        let named = [VerifyRatelimit { name: "manual".into(), cost: Some(3), limit: None, duration: None }];
        let mut p = plan(&k.ratelimits, &[], &named, 1).unwrap();
        let s = l.check("k", &k, &mut p, t, 1, true);
        let listed = s.ratelimits.unwrap();
        assert_eq!((listed[0].remaining, listed[0].auto_apply, listed[0].exceeded), (2, false, false));
        let mut p = plan(&k.ratelimits, &[], &named, 1).unwrap();
        assert_eq!(l.check("k", &k, &mut p, t, 1, true).refused, Some(VerifyCode::RateLimited));
    }

    /// Unkey's `credits.cost`: the limit spends 1 a verification, the credits 4.
    #[test]
    fn credits_and_limits_spend_different_costs() {
        let l = LocalLimits::default();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let k = limits(3, Some(10));
        let mut p = plan(&k.ratelimits, &[], &[], 1).unwrap();
        let a = l.check("k1", &k, &mut p, t, 4, false);
        assert_eq!((a.refused, a.credits, a.ratelimit.map(|r| r.remaining)), (None, Some(6), Some(2)));
        let mut p = plan(&k.ratelimits, &[], &[], 1).unwrap();
        let b = l.check("k1", &k, &mut p, t, 4, true);
        assert_eq!((b.refused, b.credits), (None, Some(2)));
        assert_eq!(b.ratelimits.map(|r| r[0].remaining), Some(1));
        let mut p = plan(&k.ratelimits, &[], &[], 1).unwrap();
        assert_eq!(l.check("k1", &k, &mut p, t, 4, false).refused, Some(VerifyCode::UsageExceeded));
    }

    #[test]
    fn limit_then_credits_then_refused() {
        let l = LocalLimits::default();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let k = limits(3, Some(2));
        let a = check(&l, "k1", &k, t, 1);
        assert_eq!((a.refused, a.credits), (None, Some(1)));
        assert_eq!(a.ratelimit.as_ref().unwrap().remaining, 2);
        let b = check(&l, "k1", &k, t, 1);
        assert_eq!((b.refused, b.credits), (None, Some(0)));
        // Credits spent: the limit still had room; the answer says which ran out.
        let c = check(&l, "k1", &k, t, 1);
        assert_eq!((c.refused, c.credits), (Some(VerifyCode::UsageExceeded), Some(0)));
        let d = check(&l, "k1", &k, t, 1);
        assert_eq!(d.refused, Some(VerifyCode::RateLimited));
        assert!(d.retry_after_ms > 0);
        // The written count, once; then nothing until spent again.
        let w = l.take_credit_writes();
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].remaining, w[0].set_at_ms), (0, 1));
        assert!(l.take_credit_writes().is_empty());
        l.put_back(w);
        assert_eq!(l.take_credit_writes().len(), 1);
    }

    #[test]
    fn an_override_restarts_the_counts() {
        let l = LocalLimits::default();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let k = limits(1, Some(1));
        assert_eq!(check(&l, "k", &k, t, 1).refused, None);
        assert_eq!(check(&l, "k", &k, t, 1).refused, Some(VerifyCode::RateLimited));
        // New limits (a PATCH): a fresh burst; new credits (set later): a fresh count.
        let mut k2 = limits(2, Some(5));
        if let Some(c) = k2.credits.as_mut() {
            c.set_at = Utc.timestamp_millis_opt(2).unwrap();
        }
        let s = check(&l, "k", &k2, t, 1);
        assert_eq!((s.refused, s.credits), (None, Some(4)));
    }

    #[test]
    fn cost_zero_spends_nothing_and_whole_limits_are_pruned() {
        let l = LocalLimits::default();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let k = limits(1, None);
        assert_eq!(check(&l, "k", &k, t, 0).ratelimit.unwrap().remaining, 1);
        assert_eq!(check(&l, "k", &k, t, 1).ratelimit.unwrap().remaining, 0);
        l.prune(t);
        assert_eq!(l.len(), 1, "still counting");
        l.prune(t + chrono::Duration::minutes(2));
        assert_eq!(l.len(), 0);
        assert!(check(&l, "k", &k, t + chrono::Duration::minutes(2), 1).refused.is_none());
    }

    #[test]
    fn the_answer_block() {
        let l = LocalLimits::default();
        let t = Utc.timestamp_millis_opt(1_000).unwrap();
        let s = check(&l, "k", &limits(5, Some(9)), t, 1);
        assert_eq!(
            s.json(),
            r#","ratelimit":{"name":"default","limit":5,"remaining":4,"reset":13000},"credits":{"remaining":8}"#
        );
        let h: Vec<(String, String)> = s
            .headers(&limits(5, Some(9)))
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            h,
            vec![
                ("ratelimit-policy".to_string(), r#""default";q=5;w=60"#.to_string()),
                ("ratelimit".to_string(), r#""default";r=4;t=12"#.to_string())
            ]
        );
    }
}
