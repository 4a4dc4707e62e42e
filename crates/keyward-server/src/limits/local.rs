//! Rate limits and credits as this node keeps them, in memory (the mode without Redis):
//! one entry per key that has limits or credits, in 16 shards, each check under one shard
//! lock and no await. Every node counts on its own here: N nodes allow up to N × a limit,
//! and spend credits from their own running counts (written back in batches, the last write
//! winning). With `--redis-url` the shared store in `redis.rs` is used instead.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use keyward_core::codes::VerifyCode;
use keyward_core::ratelimit::{gcra, spend, CreditState, LimitCheck};
use keyward_core::verify::Limits;
use keyward_core::wire::verify::{CreditsAnswer, RatelimitAnswer};

const SHARDS: usize = 16;

/// What a key's limits and credits said about one verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Spent {
    /// `RATE_LIMITED` or `USAGE_EXCEEDED` when refused.
    pub refused: Option<VerifyCode>,
    /// The tightest limit (the refusing one, or the one with the fewest uses left).
    pub ratelimit: Option<RatelimitAnswer>,
    pub retry_after_ms: i64,
    pub credits: Option<u64>,
    /// When it was checked (for the headers' seconds).
    pub now_ms: i64,
}

impl Spent {
    /// The IETF draft's headers (draft-ietf-httpapi-ratelimit-headers) and, when refused,
    /// `Retry-After` in seconds.
    pub fn headers(&self, limits: &Limits) -> Vec<(&'static str, axum::http::HeaderValue)> {
        let mut out = Vec::new();
        let policy: Vec<String> = limits
            .ratelimits
            .iter()
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

    /// `,"ratelimit":{…},"credits":{…}` for the verify answer.
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
        out
    }

    /// Builds the answer from each limit's check and the credit outcome.
    pub(crate) fn from_checks(
        limits: &Limits,
        checks: &[LimitCheck],
        credits: Option<(bool, u64)>,
        now_ms: i64,
    ) -> Spent {
        let refusing = checks.iter().position(|c| !c.allowed);
        let tightest = refusing.or_else(|| (0..checks.len()).min_by_key(|i| checks[*i].remaining));
        let ratelimit = tightest.map(|i| RatelimitAnswer {
            name: limits.ratelimits[i].name.clone(),
            limit: limits.ratelimits[i].limit,
            remaining: checks[i].remaining,
            reset: checks[i].reset_ms,
        });
        let refused = match (refusing, credits) {
            (Some(_), _) => Some(VerifyCode::RateLimited),
            (None, Some((false, _))) => Some(VerifyCode::UsageExceeded),
            _ => None,
        };
        let retry_after_ms = match refused {
            Some(VerifyCode::RateLimited) => refusing.map_or(0, |i| checks[i].retry_after_ms),
            Some(_) => until_midnight(now_ms),
            None => 0,
        };
        Spent { refused, ratelimit, retry_after_ms, credits: credits.map(|(_, left)| left), now_ms }
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
    /// One TAT (ns) per limit, in the key's order.
    tats: Vec<i64>,
    credits: Option<Running>,
}

/// A key's running credit count on this node.
struct Running {
    state: CreditState,
    /// When the credits this count started from were set (ms).
    set_at: i64,
    /// Spent since the last flush.
    dirty: bool,
}

/// A running credit count to write back.
pub type CreditWrite = keyward_store::CreditCount;

#[derive(Default)]
pub struct LocalLimits {
    shards: [Mutex<HashMap<Box<str>, Entry>>; SHARDS],
}

fn shard_of(key_id: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key_id.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

impl LocalLimits {
    /// Checks and spends `cost` of `key_id`'s limits, then its credits. Nothing is spent
    /// when a limit refuses, and credits are not spent when a limit refuses.
    pub fn check(&self, key_id: &str, limits: &Limits, now: DateTime<Utc>, cost: u32) -> Spent {
        let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let fp = limits.fingerprint;
        let n = limits.ratelimits.len();
        let Ok(mut shard) = self.shards[shard_of(key_id)].lock() else {
            // A poisoned shard (a panic elsewhere) must not stop verification.
            return Spent::from_checks(limits, &[], None, now.timestamp_millis());
        };
        // The key's id is copied only the first time the key is seen, not on every check.
        if !shard.contains_key(key_id) {
            shard.insert(key_id.into(), Entry { fingerprint: fp, tats: vec![0; n], credits: None });
        }
        let Some(entry) = shard.get_mut(key_id) else {
            // Cannot miss: inserted above under the same lock.
            return Spent::from_checks(limits, &[], None, now.timestamp_millis());
        };
        if entry.fingerprint != fp || entry.tats.len() != n {
            entry.fingerprint = fp;
            entry.tats = vec![0; n];
        }
        let mut checks = Vec::with_capacity(n);
        let mut next = [0i64; keyward_core::ratelimit::MAX_LIMITS];
        for (i, (l, tat)) in limits.ratelimits.iter().zip(&entry.tats).enumerate() {
            let (t, c) = gcra(l, *tat, now_ns, cost);
            checks.push(c);
            if let Some(slot) = next.get_mut(i) {
                *slot = t;
            }
        }
        let limited = checks.iter().any(|c| !c.allowed);
        if !limited {
            for (tat, t) in entry.tats.iter_mut().zip(next) {
                *tat = t;
            }
        }
        let credits = limits.credits.map(|stored| {
            let set_at = stored.set_at.timestamp_millis();
            let running = match &mut entry.credits {
                Some(r) if r.set_at == set_at => r,
                slot => slot.insert(Running { state: stored.state(), set_at, dirty: false }),
            };
            let cost = if limited { 0 } else { u64::from(cost) };
            let (ok, state) = spend(running.state, stored.refill.as_ref(), now, cost);
            if state != running.state {
                running.state = state;
                running.dirty = true;
            }
            (ok, state.remaining)
        });
        Spent::from_checks(limits, &checks, credits, now.timestamp_millis())
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
                shard.retain(|_, e| e.credits.is_some() || e.tats.iter().any(|t| *t > now_ns));
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|s| s.len()).unwrap_or(0)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use keyward_core::ratelimit::{Interval, KeyCredits, RateLimit, Refill};

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

    #[test]
    fn limit_then_credits_then_refused() {
        let l = LocalLimits::default();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let k = limits(3, Some(2));
        let a = l.check("k1", &k, t, 1);
        assert_eq!((a.refused, a.credits), (None, Some(1)));
        assert_eq!(a.ratelimit.as_ref().unwrap().remaining, 2);
        let b = l.check("k1", &k, t, 1);
        assert_eq!((b.refused, b.credits), (None, Some(0)));
        // Credits spent: the limit still had room; the answer says which ran out.
        let c = l.check("k1", &k, t, 1);
        assert_eq!((c.refused, c.credits), (Some(VerifyCode::UsageExceeded), Some(0)));
        let d = l.check("k1", &k, t, 1);
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
        assert_eq!(l.check("k", &k, t, 1).refused, None);
        assert_eq!(l.check("k", &k, t, 1).refused, Some(VerifyCode::RateLimited));
        // New limits (a PATCH): a fresh burst; new credits (set later): a fresh count.
        let mut k2 = limits(2, Some(5));
        if let Some(c) = k2.credits.as_mut() {
            c.set_at = Utc.timestamp_millis_opt(2).unwrap();
        }
        let s = l.check("k", &k2, t, 1);
        assert_eq!((s.refused, s.credits), (None, Some(4)));
    }

    #[test]
    fn cost_zero_spends_nothing_and_whole_limits_are_pruned() {
        let l = LocalLimits::default();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let k = limits(1, None);
        assert_eq!(l.check("k", &k, t, 0).ratelimit.unwrap().remaining, 1);
        assert_eq!(l.check("k", &k, t, 1).ratelimit.unwrap().remaining, 0);
        l.prune(t);
        assert_eq!(l.len(), 1, "still counting");
        l.prune(t + chrono::Duration::minutes(2));
        assert_eq!(l.len(), 0);
        assert!(l.check("k", &k, t + chrono::Duration::minutes(2), 1).refused.is_none());
    }

    #[test]
    fn the_answer_block() {
        let l = LocalLimits::default();
        let t = Utc.timestamp_millis_opt(1_000).unwrap();
        let s = l.check("k", &limits(5, Some(9)), t, 1);
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
