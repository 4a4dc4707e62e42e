//! Limits, credits, signed-request replay memory and per-address login throttles shared by
//! every node through Redis (`--redis-url`). Each check is one round trip: one script run
//! (`EVALSHA`, loaded once) for a key's limits and credits, one `SET NX PX` for a nonce, one
//! `INCR` for a failed login. The connection is redis-rs's `ConnectionManager` (one
//! multiplexed connection per node, pipelining concurrent requests, reconnecting by itself).
//!
//! When Redis does not answer within [`DEADLINE`], verification goes on: `allow` (the
//! default) answers as if the key had room, `deny` answers `RATE_LIMITED`; the replay memory
//! and the login throttle fall back to this node's own. A metric counts every such answer
//! and a warning is logged (at most once per [`WARN_EVERY`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keyward_core::codes::VerifyCode;
use keyward_core::ratelimit::{LimitCheck, RateLimit};
use keyward_core::verify::Limits;
use redis::aio::ConnectionManager;

use crate::limits::{CreditWrite, Spent};

/// Longest a verification waits for Redis.
pub const DEADLINE: Duration = Duration::from_millis(250);
const WARN_EVERY: i64 = 10_000;

/// What verification does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    #[default]
    Allow,
    Deny,
}

impl OnError {
    pub fn parse(s: &str) -> Option<OnError> {
        match s {
            "allow" => Some(OnError::Allow),
            "deny" => Some(OnError::Deny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Allow => "allow",
            OnError::Deny => "deny",
        }
    }
}

/// GCRA over every limit, then the credits, atomically. Times in microseconds (Lua numbers
/// are doubles: exact up to 2^53 µs, far beyond any date). The same rules as
/// `keyward_core::ratelimit`, there in nanoseconds.
const SCRIPT: &str = r#"
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local fp = ARGV[4]
if redis.call('HGET', KEYS[1], 'fp') ~= fp then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'fp', fp)
end
local out = {}
local tats = {}
local limited = 0
local longest = 0
local at = 5
for i = 1, n do
  local t = tonumber(ARGV[at])
  local w = tonumber(ARGV[at + 1])
  at = at + 2
  if w > longest then longest = w end
  local tat = tonumber(redis.call('HGET', KEYS[1], 'l' .. i) or '0')
  local base = math.max(tat, now)
  local after = base + t * cost
  local ok = (after - now) <= w
  local used, full, retry
  if ok then used = after - now; full = after; retry = 0; tats[i] = after
  else used = base - now; full = base; retry = after - w - now; limited = 1 end
  local remaining = math.floor(math.max(w - used, 0) / math.max(t, 1))
  out[#out + 1] = ok and 1 or 0
  out[#out + 1] = remaining
  out[#out + 1] = math.floor(math.max(full, now) / 1000)
  out[#out + 1] = math.ceil(math.max(retry, 0) / 1000)
end
if limited == 0 and cost > 0 then
  for i = 1, n do redis.call('HSET', KEYS[1], 'l' .. i, string.format('%.0f', tats[i])) end
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], math.ceil(longest / 1000) + 1000) end
local credit_ok, left = -1, -1
if ARGV[at] == '1' then
  local seed, seed_period, set_at = ARGV[at + 1], ARGV[at + 2], tonumber(ARGV[at + 3])
  local refill_period, refill_amount = tonumber(ARGV[at + 4]), ARGV[at + 5]
  local stored = tonumber(redis.call('HGET', KEYS[2], 'set_at') or '-1')
  if stored < set_at then
    redis.call('HSET', KEYS[2], 'remaining', seed, 'period', seed_period, 'set_at', ARGV[at + 3])
  end
  local rem = tonumber(redis.call('HGET', KEYS[2], 'remaining'))
  local per = tonumber(redis.call('HGET', KEYS[2], 'period'))
  if refill_period >= 0 and refill_period > per then rem = tonumber(refill_amount); per = refill_period end
  local spend = cost
  if limited == 1 then spend = 0 end
  if rem >= spend then rem = rem - spend; credit_ok = 1 else credit_ok = 0 end
  redis.call('HSET', KEYS[2], 'remaining', string.format('%.0f', rem), 'period', string.format('%.0f', per))
  left = rem
  out[#out + 1] = credit_ok
  out[#out + 1] = string.format('%.0f', left)
  out[#out + 1] = string.format('%.0f', per)
  out[#out + 1] = redis.call('HGET', KEYS[2], 'set_at')
end
return out
"#;

pub struct Shared {
    conn: ConnectionManager,
    script: redis::Script,
    pub on_error: OnError,
    /// Answers given without Redis (`keyward_redis_errors_total`).
    pub errors: AtomicU64,
    last_warned: AtomicI64,
    /// Credit counts seen in Redis since the last flush, to write back.
    seen_credits: Mutex<std::collections::HashMap<String, CreditWrite>>,
}

impl Shared {
    /// Connects (failing at start when Redis cannot be reached: a typo should not wait for
    /// the first request).
    pub async fn connect(url: &str, on_error: OnError) -> std::io::Result<Shared> {
        let client = redis::Client::open(url).map_err(|e| std::io::Error::other(format!("--redis-url: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(DEADLINE));
        let conn = tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| std::io::Error::other("Redis did not answer within 5 s"))?
            .map_err(|e| std::io::Error::other(format!("cannot reach Redis: {e}")))?;
        Ok(Shared {
            conn,
            script: redis::Script::new(SCRIPT),
            on_error,
            errors: AtomicU64::new(0),
            last_warned: AtomicI64::new(i64::MIN / 2),
            seen_credits: Mutex::default(),
        })
    }

    fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let now = Utc::now().timestamp_millis();
        let last = self.last_warned.load(Ordering::Relaxed);
        if now - last >= WARN_EVERY
            && self.last_warned.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(error = %e, what, on_error = self.on_error.as_str(), "Redis unavailable; answering without it");
        }
    }

    /// Checks and spends a key's limits and credits in Redis.
    pub async fn check(&self, key_id: &str, limits: &Limits, now: DateTime<Utc>, cost: u32) -> Spent {
        let now_us = now.timestamp_micros();
        let mut inv = self.script.prepare_invoke();
        inv.key(format!("kw:rl:{key_id}")).key(format!("kw:cr:{key_id}"));
        inv.arg(now_us).arg(cost).arg(limits.ratelimits.len()).arg(limits.fingerprint.to_string());
        for l in limits.ratelimits.iter() {
            let (t, w) = spacing_us(l);
            inv.arg(t).arg(w);
        }
        match &limits.credits {
            Some(c) => {
                let refill_period = c.refill.map_or(-1, |r| r.period(now));
                inv.arg("1")
                    .arg(c.remaining)
                    .arg(c.period)
                    .arg(c.set_at.timestamp_millis())
                    .arg(refill_period)
                    .arg(c.refill.map_or(0, |r| r.amount));
            }
            None => {
                inv.arg("0");
            }
        }
        let mut conn = self.conn.clone();
        let Some(values) = self.answer::<Vec<redis::Value>>("limits", inv.invoke_async(&mut conn)).await else {
            return self.without(limits, now);
        };
        let num = |i: usize| -> i64 {
            match values.get(i) {
                Some(redis::Value::Int(n)) => *n,
                Some(redis::Value::BulkString(b)) => {
                    std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
                }
                _ => 0,
            }
        };
        let checks: Vec<LimitCheck> = (0..limits.ratelimits.len())
            .map(|i| LimitCheck {
                allowed: num(i * 4) == 1,
                remaining: u32::try_from(num(i * 4 + 1)).unwrap_or(0),
                reset_ms: num(i * 4 + 2),
                retry_after_ms: num(i * 4 + 3),
            })
            .collect();
        let at = limits.ratelimits.len() * 4;
        let credits = limits.credits.map(|_| {
            let left = u64::try_from(num(at + 1)).unwrap_or(0);
            let write = CreditWrite {
                key_id: key_id.to_string(),
                remaining: left,
                period: num(at + 2),
                set_at_ms: num(at + 3),
            };
            self.saw(write);
            (num(at) == 1, left)
        });
        Spent::from_checks(limits, &checks, credits, now.timestamp_millis())
    }

    /// The answer while Redis is away: as if there were room (`allow`), or refused (`deny`).
    fn without(&self, limits: &Limits, now: DateTime<Utc>) -> Spent {
        let mut s = Spent::from_checks(limits, &[], None, now.timestamp_millis());
        if self.on_error == OnError::Deny {
            s.refused = Some(VerifyCode::RateLimited);
            s.retry_after_ms = 1000;
        }
        s
    }

    /// Redis's answer within [`DEADLINE`], or `None` (counted and logged).
    async fn answer<T>(
        &self,
        what: &str,
        query: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(DEADLINE, query).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(what, &e);
                None
            }
            Err(_) => {
                self.failed(what, &"timed out");
                None
            }
        }
    }

    /// Keeps the latest count seen of a key: answers to concurrent checks arrive in any order.
    fn saw(&self, write: CreditWrite) {
        let Ok(mut seen) = self.seen_credits.lock() else { return };
        if seen.get(&write.key_id).is_none_or(|had| write.is_later_than(had)) {
            seen.insert(write.key_id.clone(), write);
        }
    }

    /// Puts back counts whose write failed, unless a later one was seen meanwhile.
    pub fn put_back(&self, writes: Vec<CreditWrite>) {
        for w in writes {
            self.saw(w);
        }
    }

    /// The credit counts read from Redis since the last call.
    pub fn take_credit_writes(&self) -> Vec<CreditWrite> {
        self.seen_credits.lock().map(|mut s| s.drain().map(|(_, w)| w).collect()).unwrap_or_default()
    }

    /// True the first time a signed request is seen by any node; `None` when Redis is away.
    pub async fn first_use(&self, digest: &str, window: Duration) -> Option<bool> {
        let mut conn = self.conn.clone();
        let ms = u64::try_from(window.as_millis() * 2).unwrap_or(u64::MAX);
        let cmd = redis::cmd("SET").arg(format!("kw:rp:{digest}")).arg(1).arg("NX").arg("PX").arg(ms).to_owned();
        let set: Option<String> = self.answer("replay memory", cmd.query_async(&mut conn)).await?;
        Some(set.is_some())
    }

    /// Counts a failed login from `ip`; answers the count in the current window.
    pub async fn login_failed(&self, ip: &str, window: Duration) -> Option<u32> {
        let mut conn = self.conn.clone();
        let key = format!("kw:lf:{ip}");
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("INCR").arg(&key).cmd("PEXPIRE").arg(&key).arg(ms).arg("NX").ignore();
        let (n,): (u32,) = self.answer("login throttle", pipe.query_async(&mut conn)).await?;
        Some(n)
    }

    /// Failed logins from `ip` in the current window, and the milliseconds it has left.
    pub async fn login_count(&self, ip: &str) -> Option<(u32, i64)> {
        let mut conn = self.conn.clone();
        let key = format!("kw:lf:{ip}");
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        let (n, ttl): (Option<u32>, i64) = self.answer("login throttle", pipe.query_async(&mut conn)).await?;
        Some((n.unwrap_or(0), ttl))
    }
}

/// A limit's spacing and burst window in microseconds (see `keyward_core::ratelimit`).
fn spacing_us(l: &RateLimit) -> (i64, i64) {
    let d = i64::try_from(l.duration_ms).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
    let n = i64::from(l.limit.max(1));
    let t = (d + n - 1) / n;
    (t, t.saturating_mul(n))
}
