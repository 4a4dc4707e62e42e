//! Limits, credits, signed-request replay memory and per-address login throttles shared by
//! every node through Redis (`--redis-url`). Each check is one round trip: one script run
//! (`EVALSHA`, loaded once) for a key's limits and credits, one `SET NX PX` for a nonce, one
//! `INCR` for a failed login. The connection (`redis_conn.rs`) is one server's, a Redis
//! Cluster's or a Sentinel-named primary's, each multiplexed (pipelining concurrent requests)
//! and reconnecting by itself; in a cluster every script run's keys share one hash tag.
//!
//! When Redis does not answer within [`DEADLINE`], verification goes on: rate limits as
//! `--ratelimit-on-error` says (`allow`, the default, answers as if the key had room; `deny`
//! answers `RATE_LIMITED`), credits as `--credits-on-error` says (`deny`, the default:
//! credits are money, a key with credits is answered `RATE_LIMITED`, the same temporary
//! refusal); the replay memory and the login throttle fall back to this node's own. A metric
//! counts every such answer and a warning is logged (at most once per [`WARN_EVERY`]).
//!
//! A check answered without Redis is never applied later: each script run carries a deadline
//! in Redis's time ([`RUN_BY`] after it was sent) and one that starts later (Redis was stalled
//! and has woken with a queue) changes nothing. Credits missing from Redis (first use, or a
//! Redis that lost its data) are seeded from the database's last written count, read then,
//! never from the cached record, which keeps the count it was created or overridden with.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keyward_core::clock::Clock;
use keyward_core::codes::VerifyCode;
use keyward_core::limit_plan::{Holder, Planned, Slot};
use keyward_core::ratelimit::RefillRules;
use keyward_core::ratelimit::{KeyCredits, LimitCheck, RateLimit};
use keyward_core::verify::Limits;

use crate::limits::local::{combine, CreditWrite, Spent};
use crate::limits::redis_clock::RedisClock;
use crate::limits::redis_conn::{holders_tag, RedisConn};

/// Longest a verification waits for Redis.
pub const DEADLINE: Duration = Duration::from_millis(250);
/// Latest a check may start in Redis after it was sent; later it is refused unapplied. The
/// rest of [`DEADLINE`] is for the answer to travel back, so an answer the node stopped
/// waiting for was not applied either.
const RUN_BY: Duration = Duration::from_millis(200);
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

/// GCRA over every planned limit, then the credits, atomically, for a key and (when it has
/// one) its identity: each *holder* has a hash of limit counts (`KEYS[2h-1]`) and one of
/// credits (`KEYS[2h]`). Times in microseconds (Lua numbers are doubles: exact up to 2^53 µs,
/// far beyond any date). The same rules as `keyward_core::ratelimit` and `limits/local.rs`:
/// no limit is spent unless every limit allows; no credits are spent unless every limit
/// allows and every holder's credits cover the cost.
///
/// ARGV: now, the deadline in Redis's time, `1` when the credits given are the database's
/// (they may seed), the number of holders; per holder its limits' fingerprint and longest
/// window; the number of limits, then per limit its holder, its position in the holder's
/// list (hash field `l<n>`) or the `r:…` field of a limit the request made, spacing, window and
/// cost; per holder `1` and its credits' cost, count, period, set time, refill period and
/// refill amount (or `0`). The answer starts with a status — [`DONE`], [`STALE`] (started
/// after the deadline: nothing changed) or [`SEED`] (a holder's credits are not in Redis, or
/// older than the cached record's: nothing changed, ask again with the database's) — and
/// Redis's time; then, when done, four numbers per limit and four per holder with credits.
const SCRIPT: &str = r#"
local clock = redis.call('TIME')
local rtime = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
if rtime > tonumber(ARGV[2]) then return {1, rtime} end
local now = tonumber(ARGV[1])
local seeding = ARGV[3] == '1'
local m = tonumber(ARGV[4])
local at = 5
local fps, longest, used = {}, {}, {}
for h = 1, m do fps[h] = ARGV[at]; longest[h] = tonumber(ARGV[at + 1]); at = at + 2 end
local n = tonumber(ARGV[at]); at = at + 1
local lim = {}
for i = 1, n do
  local field = ARGV[at + 1]
  if string.sub(field, 1, 2) ~= 'r:' then field = 'l' .. field end
  lim[i] = {tonumber(ARGV[at]), field, tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])}
  used[lim[i][1]] = true
  at = at + 5
end
local cr, stored = {}, {}
for h = 1, m do
  if ARGV[at] == '1' then
    cr[h] = {tonumber(ARGV[at + 1]), ARGV[at + 2], ARGV[at + 3], ARGV[at + 4], tonumber(ARGV[at + 5]), ARGV[at + 6]}
    at = at + 7
    stored[h] = tonumber(redis.call('HGET', KEYS[2 * h], 'set_at') or '-1')
    if stored[h] < tonumber(cr[h][4]) and not seeding then return {2, rtime} end
  else
    at = at + 1
  end
end
for h = 1, m do
  if used[h] and redis.call('HGET', KEYS[2 * h - 1], 'fp') ~= fps[h] then
    redis.call('DEL', KEYS[2 * h - 1])
    redis.call('HSET', KEYS[2 * h - 1], 'fp', fps[h])
  end
end
local out = {0, rtime}
local tats = {}
local limited = 0
for i = 1, n do
  local h, t, w, cost = lim[i][1], lim[i][3], lim[i][4], lim[i][5]
  local tat = tonumber(redis.call('HGET', KEYS[2 * h - 1], lim[i][2]) or '0')
  local base = math.max(tat, now)
  local after = base + t * cost
  local ok = (after - now) <= w
  local u, full, retry
  if ok then u = after - now; full = after; retry = 0; tats[i] = after
  else u = base - now; full = base; retry = after - w - now; limited = 1 end
  local remaining = math.floor(math.max(w - u, 0) / math.max(t, 1))
  out[#out + 1] = ok and 1 or 0
  out[#out + 1] = remaining
  out[#out + 1] = math.floor(math.max(full, now) / 1000)
  out[#out + 1] = math.ceil(math.max(retry, 0) / 1000)
end
if limited == 0 then
  for i = 1, n do
    if lim[i][5] > 0 then redis.call('HSET', KEYS[2 * lim[i][1] - 1], lim[i][2], string.format('%.0f', tats[i])) end
  end
end
for h = 1, m do
  if used[h] then redis.call('PEXPIRE', KEYS[2 * h - 1], math.ceil(longest[h] / 1000) + 1000) end
end
local rems, pers, oks = {}, {}, {}
local all_ok = true
for h = 1, m do
  local c = cr[h]
  if c then
    if stored[h] < tonumber(c[4]) then
      redis.call('HSET', KEYS[2 * h], 'remaining', c[2], 'period', c[3], 'set_at', c[4])
    end
    local rem = tonumber(redis.call('HGET', KEYS[2 * h], 'remaining'))
    local per = tonumber(redis.call('HGET', KEYS[2 * h], 'period'))
    if c[5] >= 0 and c[5] > per then rem = tonumber(c[6]); per = c[5] end
    local spend = c[1]
    if limited == 1 then spend = 0 end
    oks[h] = rem >= spend
    if not oks[h] then all_ok = false end
    rems[h] = rem; pers[h] = per
  end
end
for h = 1, m do
  local c = cr[h]
  if c then
    local rem = rems[h]
    if limited == 0 and all_ok then rem = rem - c[1] end
    redis.call('HSET', KEYS[2 * h], 'remaining', string.format('%.0f', rem), 'period', string.format('%.0f', pers[h]))
    out[#out + 1] = oks[h] and 1 or 0
    out[#out + 1] = string.format('%.0f', rem)
    out[#out + 1] = string.format('%.0f', pers[h])
    out[#out + 1] = redis.call('HGET', KEYS[2 * h], 'set_at')
  end
end
return out
"#;
const DONE: i64 = 0;
const STALE: i64 = 1;
const SEED: i64 = 2;

pub struct Shared {
    conn: RedisConn,
    script: redis::Script,
    /// Rate limits while Redis is away.
    pub on_error: OnError,
    /// Credits while Redis is away.
    pub credits_on_error: OnError,
    /// Answers given without Redis (`keyward_redis_errors_total`).
    pub errors: AtomicU64,
    /// When the last warning was logged (ms, by `clock`).
    last_warned: AtomicI64,
    /// The node's clock, for spacing the warnings.
    time: Arc<dyn Clock>,
    /// Credit counts seen in Redis since the last flush, to write back.
    seen_credits: Mutex<std::collections::HashMap<String, CreditWrite>>,
    clock: RedisClock,
}

/// What one script run came back with.
enum Run {
    Done(Vec<redis::Value>),
    /// Not applied: no answer in time, or it started too late.
    Unanswered,
    /// Not applied: the credits must be seeded from the database.
    Seed,
}

impl Shared {
    /// Connects (failing at start when Redis cannot be reached: a typo should not wait for
    /// the first request).
    pub async fn connect(
        url: &str,
        on_error: OnError,
        credits_on_error: OnError,
        time: Arc<dyn Clock>,
    ) -> std::io::Result<Shared> {
        let connecting = async {
            // Boxed: redis-rs's cluster and sentinel futures are deep, and every future that
            // starts a server would embed them.
            let mut conn = Box::pin(RedisConn::connect(url, DEADLINE)).await?;
            // Any node's time, in a cluster: see `redis_clock.rs`.
            let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
            let clock = RedisClock::new(secs.saturating_mul(1_000_000).saturating_add(micros), Instant::now());
            Ok::<_, redis::RedisError>((conn, clock))
        };
        let (conn, clock) = tokio::time::timeout(Duration::from_secs(5), connecting)
            .await
            .map_err(|_| std::io::Error::other("Redis did not answer within 5 s"))?
            .map_err(|e| std::io::Error::other(format!("cannot reach Redis (--redis-url): {e}")))?;
        tracing::info!(topology = conn.topology(), "Redis connected");
        Ok(Shared {
            conn,
            script: redis::Script::new(SCRIPT),
            on_error,
            credits_on_error,
            errors: AtomicU64::new(0),
            last_warned: AtomicI64::new(i64::MIN / 2),
            time,
            seen_credits: Mutex::default(),
            clock,
        })
    }

    fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let now = self.time.now().timestamp_millis();
        let last = self.last_warned.load(Ordering::Relaxed);
        if now - last >= WARN_EVERY
            && self.last_warned.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(
                error = %e,
                what,
                ratelimit_on_error = self.on_error.as_str(),
                credits_on_error = self.credits_on_error.as_str(),
                "Redis unavailable; answering without it"
            );
        }
    }

    /// Checks and spends the planned limits and the credits of a key and its identity in
    /// Redis, in one script run. `stored` reads the key's and the identity's credits from the
    /// database (`None` when it cannot): called only when Redis has none to go on.
    #[allow(clippy::too_many_arguments)]
    pub async fn check<F, R>(
        &self,
        key_id: &str,
        limits: &Limits,
        plan: &mut [Planned<'_>],
        now: DateTime<Utc>,
        cost: u32,
        list: bool,
        stored: F,
    ) -> Spent
    where
        F: FnOnce() -> R,
        R: std::future::Future<Output = Option<(Option<KeyCredits>, Option<KeyCredits>)>>,
    {
        let identity = limits.identity.as_deref();
        let cached = [limits.credits, limits.identity_credits().copied()];
        let values = match self.run(key_id, limits, plan, cached, false, now, cost).await {
            Run::Done(values) => values,
            Run::Unanswered => return self.without(limits, plan, now),
            Run::Seed => {
                let Some((key_db, identity_db)) = stored().await else {
                    self.failed("credits", &"the database did not answer for the credits missing from Redis");
                    return self.without(limits, plan, now);
                };
                let seed = [
                    limits.credits.map(|c| self.seed(key_id, c, key_db)),
                    identity.and_then(|i| i.limits.credits.map(|c| self.seed(&i.id, c, identity_db))),
                ];
                match self.run(key_id, limits, plan, seed, true, now, cost).await {
                    Run::Done(values) => values,
                    Run::Unanswered | Run::Seed => return self.without(limits, plan, now),
                }
            }
        };
        let num = |i: usize| -> i64 {
            match values.get(i + 2) {
                Some(redis::Value::Int(n)) => *n,
                Some(redis::Value::BulkString(b)) => {
                    std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
                }
                _ => 0,
            }
        };
        for (i, p) in plan.iter_mut().enumerate() {
            p.check = LimitCheck {
                allowed: num(i * 4) == 1,
                remaining: u32::try_from(num(i * 4 + 1)).unwrap_or(0),
                reset_ms: num(i * 4 + 2),
                retry_after_ms: num(i * 4 + 3),
            };
        }
        let mut at = plan.len() * 4;
        let mut answers: [Option<(bool, u64)>; 2] = [None, None];
        let ids = [Some(key_id), identity.map(|i| &*i.id)];
        for ((answer, credits), id) in answers.iter_mut().zip(cached).zip(ids) {
            let (Some(_), Some(id)) = (credits, id) else { continue };
            let left = u64::try_from(num(at + 1)).unwrap_or(0);
            self.saw(CreditWrite {
                key_id: id.to_string(),
                remaining: left,
                period: num(at + 2),
                set_at_ms: num(at + 3),
            });
            *answer = Some((num(at) == 1, left));
            at += 4;
        }
        Spent::from_checks(plan, combine(answers[0], answers[1]), now.timestamp_millis(), list)
    }

    /// Spends `cost` of one limit counted under the Redis key `key` (rate limiting as a
    /// service, `limits/service.rs`), by the same script as keys' limits, without credits;
    /// `None` when Redis did not answer in time or started the check too late (counted and
    /// logged; nothing was applied then).
    pub async fn limit_one(
        &self,
        key: &str,
        limit: &RateLimit,
        fingerprint: u64,
        now: DateTime<Utc>,
        cost: u32,
    ) -> Option<LimitCheck> {
        let mut inv = self.script.prepare_invoke();
        inv.key(key).key(key);
        let (t, w) = spacing_us(limit);
        inv.arg(now.timestamp_micros()).arg(self.clock.deadline(RUN_BY)).arg("0").arg(1);
        inv.arg(fingerprint.to_string()).arg(w);
        inv.arg(1).arg(1).arg(1).arg(t).arg(w).arg(cost);
        inv.arg("0");
        let mut conn = self.conn.clone();
        let values = self.answer::<Vec<redis::Value>>("service limits", inv.invoke_async(&mut conn)).await?;
        let num = |i: usize| match values.get(i) {
            Some(redis::Value::Int(n)) => Some(*n),
            _ => None,
        };
        if let Some(t) = num(1) {
            self.clock.saw(t);
        }
        if num(0) != Some(DONE) {
            self.failed("service limits", &"Redis started the check after its deadline (it was stalled)");
            return None;
        }
        Some(LimitCheck {
            allowed: num(2)? == 1,
            remaining: u32::try_from(num(3)?).unwrap_or(0),
            reset_ms: num(4)?,
            retry_after_ms: num(5)?,
        })
    }

    /// One script run, with `credits` (the cached records', or with `seeding` the
    /// database's) in place of the key's and the identity's.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        key_id: &str,
        limits: &Limits,
        plan: &[Planned<'_>],
        credits: [Option<KeyCredits>; 2],
        seeding: bool,
        now: DateTime<Utc>,
        cost: u32,
    ) -> Run {
        let identity = limits.identity.as_deref();
        let holders: [(Holder, Option<(&str, &Limits)>); 2] =
            [(Holder::Key, Some((key_id, limits))), (Holder::Identity, identity.map(|i| (&*i.id, &i.limits)))];
        let mut inv = self.script.prepare_invoke();
        let m = if identity.is_some() { 2 } else { 1 };
        let tag = holders_tag(key_id, limits);
        for (_, h) in holders.iter().take(m) {
            let (rl, cr) = self.conn.names(tag, h.map_or("", |h| h.0));
            inv.key(rl).key(cr);
        }
        inv.arg(now.timestamp_micros()).arg(self.clock.deadline(RUN_BY)).arg(if seeding { "1" } else { "0" }).arg(m);
        for (holder, h) in holders.iter().take(m) {
            let own = h.map(|h| h.1);
            // The hash lives as long as the longest window it may hold: its own limits' and
            // those requests made for it.
            let longest = own
                .iter()
                .flat_map(|l| l.ratelimits.iter())
                .chain(plan.iter().filter(|p| p.holder == *holder).map(|p| &*p.limit))
                .map(|l| spacing_us(l).1)
                .max()
                .unwrap_or(0);
            inv.arg(own.map_or(0, |l| l.fingerprint).to_string()).arg(longest);
        }
        inv.arg(plan.len());
        for p in plan {
            let (t, w) = spacing_us(&p.limit);
            inv.arg(if p.holder == Holder::Key { 1 } else { 2 });
            // A holder's own limit by its position (the script names its field `l<n>`); a
            // limit the request made by its name, limit and window.
            match p.slot {
                Slot::At(n) => inv.arg(n + 1),
                Slot::Request => inv.arg(format!("r:{}:{}:{}", p.limit.name, p.limit.limit, p.limit.duration_ms)),
            };
            inv.arg(t).arg(w).arg(p.cost);
        }
        for c in credits.iter().take(m) {
            match c {
                Some(c) => {
                    let refill_period = c.refill.map_or(-1, |r| r.period(now));
                    inv.arg("1")
                        .arg(cost)
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
        }
        let mut conn = self.conn.clone();
        let Some(values) = self.answer::<Vec<redis::Value>>("limits", inv.invoke_async(&mut conn)).await else {
            return Run::Unanswered;
        };
        let int = |i: usize| match values.get(i) {
            Some(redis::Value::Int(n)) => Some(*n),
            _ => None,
        };
        if let Some(t) = int(1) {
            self.clock.saw(t);
        }
        match int(0) {
            Some(DONE) => Run::Done(values),
            Some(SEED) => Run::Seed,
            Some(STALE) => {
                self.failed("limits", &"Redis started the check after its deadline (it was stalled)");
                Run::Unanswered
            }
            _ => {
                self.failed("limits", &"an answer the script does not give");
                Run::Unanswered
            }
        }
    }

    /// The credits to seed Redis with: the database's (the latest written count), unless
    /// the cached record's were set later (an override not read yet); and this node's own
    /// later sight of the count, not written yet, which Redis may have lost with its data.
    fn seed(&self, key_id: &str, cached: KeyCredits, from_db: Option<KeyCredits>) -> KeyCredits {
        let mut seed = match from_db {
            Some(db) if db.set_at >= cached.set_at => db,
            _ => cached,
        };
        let written = CreditWrite {
            key_id: key_id.to_string(),
            remaining: seed.remaining,
            period: seed.period,
            set_at_ms: seed.set_at.timestamp_millis(),
        };
        if let Ok(seen) = self.seen_credits.lock() {
            if let Some(w) = seen.get(key_id).filter(|w| w.set_at_ms == written.set_at_ms && w.is_later_than(&written))
            {
                seed.remaining = w.remaining;
                seed.period = w.period;
            }
        }
        seed
    }

    /// The answer while Redis is away: a key with rate limits as `--ratelimit-on-error`
    /// says, one with credits as `--credits-on-error` says; refused means `RATE_LIMITED`
    /// (a temporary refusal, `Retry-After: 1`: not `USAGE_EXCEEDED`, the credits may be
    /// there), allowed means as if there were room (no counts in the answer).
    fn without(&self, limits: &Limits, plan: &[Planned<'_>], now: DateTime<Utc>) -> Spent {
        let mut s = Spent::from_checks(&[], None, now.timestamp_millis(), false);
        let deny_limits = !plan.is_empty() && self.on_error == OnError::Deny;
        let has_credits = limits.credits.is_some() || limits.identity_credits().is_some();
        let deny_credits = has_credits && self.credits_on_error == OnError::Deny;
        if deny_limits || deny_credits {
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
        self.count_in_window("login throttle", &format!("kw:lf:{ip}"), window).await
    }

    /// Counts a leak report from `ip` in the current window (shared by every node); the
    /// count with this one, or `None` while Redis is away.
    pub async fn leak_report(&self, ip: &str, window: Duration) -> Option<u32> {
        self.count_in_window("leak report throttle", &format!("kw:lr:{ip}"), window).await
    }

    /// Counts a token issued to installation `id` in the current window (shared by every
    /// node); the count with this one, or `None` while Redis is away.
    pub async fn token_issued(&self, id: &str, window: Duration) -> Option<u32> {
        self.count_in_window("token issue throttle", &format!("kw:ti:{id}"), window).await
    }

    /// One more in `key`'s fixed window (it starts with the first count and lasts `window`).
    async fn count_in_window(&self, what: &str, key: &str, window: Duration) -> Option<u32> {
        let mut conn = self.conn.clone();
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("INCR").arg(key).cmd("PEXPIRE").arg(key).arg(ms).arg("NX").ignore();
        let (n,): (u32,) = self.answer(what, pipe.query_async(&mut conn)).await?;
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

    /// The hash of holder `id`'s limit counts, tagged `tag` in a cluster
    /// ([`holders_tag`]): the one [`SCRIPT`] counts in, so leases (`limits/lease.rs`) and
    /// exact checks of a limit share one count, on any topology.
    pub(crate) fn limits_name(&self, tag: &str, id: &str) -> String {
        self.conn.limits_name(tag, id)
    }

    /// The deadline in Redis's time for a script run sent now (see [`RUN_BY`]).
    pub(crate) fn run_by(&self) -> i64 {
        self.clock.deadline(RUN_BY)
    }

    /// Runs another module's script (`limits/lease.rs`) whose first argument is
    /// [`Shared::run_by`] and whose answer starts like [`SCRIPT`]'s (a status, Redis's
    /// time); `None` when it was not answered in time or started too late (counted and
    /// logged; nothing was applied then).
    pub(crate) async fn run_script(&self, what: &str, inv: &redis::ScriptInvocation<'_>) -> Option<Vec<redis::Value>> {
        let mut conn = self.conn.clone();
        let values = self.answer::<Vec<redis::Value>>(what, inv.invoke_async(&mut conn)).await?;
        if let Some(redis::Value::Int(t)) = values.get(1) {
            self.clock.saw(*t);
        }
        match values.first() {
            Some(redis::Value::Int(DONE)) => Some(values),
            _ => {
                self.failed(what, &"Redis started the run after its deadline (it was stalled)");
                None
            }
        }
    }
}

/// A limit's spacing and burst window in microseconds (see `keyward_core::ratelimit`).
pub(crate) fn spacing_us(l: &RateLimit) -> (i64, i64) {
    let d = i64::try_from(l.duration_ms).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
    let n = i64::from(l.limit.max(1));
    let t = (d + n - 1) / n;
    (t, t.saturating_mul(n))
}
