//! Limits, credits, signed-request replay memory and per-address login throttles shared by
//! every node through Redis (`--redis-url`). Each check is one round trip: one script run
//! (`EVALSHA`, loaded once) for a key's limits and credits — gathered with the checks of
//! concurrent requests into one run (`redis_batch.rs`) — one `SET NX PX` for a nonce, one
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
use crate::limits::redis_batch::{Answer, Part, Runs};
use crate::limits::redis_clock::RedisClock;
use crate::limits::redis_conn::{holders_tag, RedisConn};

/// Longest a verification waits for Redis.
pub const DEADLINE: Duration = Duration::from_millis(250);
/// How long `/healthz` says `degraded` after a check was answered without Redis.
pub const HEALTH_WINDOW: Duration = Duration::from_secs(5);
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
/// one) its identity, for each of the checks in the run (`limits/redis_batch.rs` gathers
/// those of concurrent requests): each check's *holder* h has a hash of limit counts
/// (its `KEYS[2h-1]`) and one of credits (its `KEYS[2h]`). Times in microseconds (Lua numbers
/// are doubles: exact up to 2^53 µs, far beyond any date). The same rules as
/// `keyward_core::ratelimit` and `limits/local.rs`: no limit is spent unless every limit
/// allows; no credits are spent unless every limit allows and every holder's credits cover
/// the cost. The checks run one after another, so two of one key in a run count as two
/// runs would.
///
/// ARGV: the number of checks, then each check's arguments after their count: now, the
/// deadline in Redis's time, `1` when the credits given are the database's (they may seed),
/// the number of holders; per holder its limits' fingerprint and how long its limits hash
/// lives after a write (ms, [`hash_ttl_ms`]); the number
/// of limits, then per limit its holder, its hash field (`l<n>` for the holder's own limit n,
/// `r:…` for a limit the request made), spacing, window and cost; per holder `1` and its
/// credits' cost, count, period, set time, refill period and refill amount (or `0`). The
/// answer starts with Redis's time, then per check a status — [`DONE`], [`STALE`] (started
/// after its deadline: nothing changed) or [`SEED`] (a holder's credits are not in Redis, or
/// older than the cached record's: nothing changed, ask again with the database's) — and the
/// count of integers that follow: when done, four per limit and four per holder with credits
/// (left, period, set time).
///
/// Redis's share of a check is its calls and turning text into numbers and back: each
/// holder's hashes are read with one `HMGET` and written with one `HSET` (none when nothing
/// changed), so a key with a limit and credits costs two `HMGET`, two `HSET` and a `PEXPIRE`
/// (none when refused: nothing was written), and its run's `TIME`. Numbers are written with
/// `%d` (every count is an integer below 2^53; `%.0f` took a microsecond each) and the hash's
/// lifetime comes ready to use, so Lua formats no number for it. The stored
/// fields are as before (`fp`, `l<n>`/`r:…` TATs in µs, `remaining`, `period`, `set_at`,
/// integers as text): `limits/lease.rs` reads and writes the same limit hashes.
const SCRIPT: &str = r#"
local call, num, A, K = redis.call, tonumber, ARGV, KEYS
local floor, ceil, fmt = math.floor, math.ceil, string.format
local clock = call('TIME')
local rtime = num(clock[1]) * 1000000 + num(clock[2])
local out, o = {rtime}, 1
-- Scratch tables every check of the run reuses, each entry set before it is read: a table
-- made per check costs more than the check's arithmetic.
local cr, tat, after, costs, hold, owns, rst, args = {}, {}, {}, {}, {}, {}, {}, {}
local function check(k, a)
  if rtime > num(A[a + 2]) then out[o + 1] = 1; out[o + 2] = 0; o = o + 2; return end
  local now = num(A[a + 1])
  local m = num(A[a + 4])
  local n = num(A[a + 5 + 2 * m])
  local first = a + 6 + 2 * m
  local at = first + 5 * n
  for h = 1, m do
    if A[at] == '1' then
      local s = call('HMGET', K[k + 2 * h], 'set_at', 'remaining', 'period')
      local set_at = num(A[at + 4])
      if num(s[1] or '-1') < set_at then
        if A[a + 3] ~= '1' then out[o + 1] = 2; out[o + 2] = 0; o = o + 2; return end
        cr[h] = {at, true, num(A[at + 2]), num(A[at + 3]), set_at}
      else
        cr[h] = {at, false, num(s[2]), num(s[3]), num(s[1])}
      end
      at = at + 7
    else
      cr[h] = false
      at = at + 1
    end
  end
  for i = 1, n do hold[i] = A[first + 5 * i - 5] == '1' and 1 or 2 end
  for h = 1, m do
    local c = 2
    args[1] = K[k + 2 * h - 1]; args[2] = 'fp'
    for i = 1, n do
      if hold[i] == h then c = c + 1; args[c] = A[first + 5 * i - 4] end
    end
    owns[h] = c - 2
    rst[h] = false
    if c > 2 then
      local got = call('HMGET', unpack(args, 1, c))
      if got[1] ~= A[a + 3 + 2 * h] then
        rst[h] = true
        call('DEL', K[k + 2 * h - 1])
        for i = 1, n do if hold[i] == h then tat[i] = 0 end end
      else
        local j = 1
        for i = 1, n do if hold[i] == h then j = j + 1; tat[i] = num(got[j] or '0') end end
      end
    end
  end
  local start = o + 1
  out[start] = 0
  o = o + 2
  local limited = false
  for i = 1, n do
    local b = first + 5 * i - 5
    local t, w, cost = num(A[b + 2]), num(A[b + 3]), num(A[b + 4])
    costs[i] = cost
    local base = tat[i]
    if base < now then base = now end
    local aft = base + t * cost
    local u, full, retry
    if aft - now <= w then
      u = aft - now; full = aft; retry = 0; after[i] = aft; out[o + 1] = 1
    else
      u = base - now; full = base; retry = aft - w - now; limited = true; out[o + 1] = 0
    end
    local left = w - u
    if left < 0 then left = 0 end
    out[o + 2] = floor(left / (t > 1 and t or 1))
    if full < now then full = now end
    out[o + 3] = floor(full / 1000)
    out[o + 4] = retry > 0 and ceil(retry / 1000) or 0
    o = o + 4
  end
  for h = 1, m do
    if owns[h] > 0 then
      local c = 1
      args[1] = K[k + 2 * h - 1]
      if rst[h] then args[2] = 'fp'; args[3] = A[a + 3 + 2 * h]; c = 3 end
      if not limited then
        for i = 1, n do
          if hold[i] == h and costs[i] > 0 then
            args[c + 1] = A[first + 5 * i - 4]; args[c + 2] = fmt('%d', after[i]); c = c + 2
          end
        end
      end
      if c > 1 then
        call('HSET', unpack(args, 1, c))
        -- Never shortened while the hash lives on (a limit a request made may hold a longer
        -- window than this check's): only a hash started again here has no lifetime yet.
        if rst[h] then
          call('PEXPIRE', K[k + 2 * h - 1], A[a + 4 + 2 * h])
        else
          call('PEXPIRE', K[k + 2 * h - 1], A[a + 4 + 2 * h], 'GT')
        end
      end
    end
  end
  local all_ok = true
  for h = 1, m do
    local c = cr[h]
    if c then
      local rem, per, b = c[3], c[4], c[1]
      local refill = num(A[b + 5])
      if refill >= 0 and refill > per then rem = num(A[b + 6]); per = refill end
      c[6], c[7] = rem, per
      c[8] = rem >= (limited and 0 or num(A[b + 1]))
      if not c[8] then all_ok = false end
    end
  end
  for h = 1, m do
    local c = cr[h]
    if c then
      local rem, per = c[6], c[7]
      if not limited and all_ok then rem = rem - num(A[c[1] + 1]) end
      if c[2] then
        call('HSET', K[k + 2 * h], 'remaining', fmt('%d', rem), 'period', fmt('%d', per), 'set_at', A[c[1] + 4])
      elseif rem ~= c[3] or per ~= c[4] then
        call('HSET', K[k + 2 * h], 'remaining', fmt('%d', rem), 'period', fmt('%d', per))
      end
      out[o + 1] = c[8] and 1 or 0
      out[o + 2] = rem
      out[o + 3] = per
      out[o + 4] = c[5]
      o = o + 4
    end
  end
  out[start + 1] = o - start - 1
end
local k, a = 0, 2
for _ = 1, num(A[1]) do
  check(k, a)
  k = k + 2 * num(A[a + 4])
  a = a + num(A[a]) + 1
end
return out
"#;
const DONE: i64 = 0;
const STALE: i64 = 1;
const SEED: i64 = 2;

pub struct Shared {
    conn: RedisConn,
    /// Where [`SCRIPT`]'s runs go (gathered, on one server).
    runs: Runs,
    /// Rate limits while Redis is away.
    pub on_error: OnError,
    /// Credits while Redis is away.
    pub credits_on_error: OnError,
    /// Answers given without Redis (`keyward_redis_errors_total`).
    pub errors: AtomicU64,
    /// When the last of them was given (ms since `started`, real time: `/healthz`'s window).
    last_failed: AtomicU64,
    started: Instant,
    /// `/healthz`'s `PING`s: concurrent calls share one (as the database's probe does), so a
    /// flood of them sends Redis one at a time.
    pings_begun: AtomicU64,
    last_ping: tokio::sync::Mutex<Option<(u64, bool)>>,
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
    Done(Answer),
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
            runs: Runs::new(conn.clone(), redis::Script::new(SCRIPT), url),
            conn,
            on_error,
            credits_on_error,
            errors: AtomicU64::new(0),
            last_failed: AtomicU64::new(0),
            started: Instant::now(),
            pings_begun: AtomicU64::new(0),
            last_ping: tokio::sync::Mutex::new(None),
            last_warned: AtomicI64::new(i64::MIN / 2),
            time,
            seen_credits: Mutex::default(),
            clock,
        })
    }

    fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        // 0 stands for "never": a failure in the first millisecond counts as at 1.
        let at = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
        self.last_failed.store(at, Ordering::Relaxed);
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
            Run::Done(answer) => answer,
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
                    Run::Done(answer) => answer,
                    Run::Unanswered | Run::Seed => return self.without(limits, plan, now),
                }
            }
        };
        let num = |i: usize| values.num(i);
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
            self.saw(id, left, num(at + 2), num(at + 3));
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
        let (t, w) = spacing_us(limit);
        let mut part = Part::new(2);
        let cmd = &mut part.cmd;
        cmd.arg(key).arg(key);
        cmd.arg(now.timestamp_micros()).arg(self.clock.deadline(RUN_BY)).arg("0").arg(1);
        cmd.arg(fingerprint).arg(hash_ttl_ms(w));
        cmd.arg(1).arg(1).arg(Field::Own(0)).arg(t).arg(w).arg(cost);
        cmd.arg("0");
        let answer = self.script("service limits", part).await?;
        if answer.status() != Some(DONE) {
            self.failed("service limits", &"Redis started the check after its deadline (it was stalled)");
            return None;
        }
        Some(LimitCheck {
            allowed: answer.num(0) == 1,
            remaining: u32::try_from(answer.num(1)).unwrap_or(0),
            reset_ms: answer.num(2),
            retry_after_ms: answer.num(3),
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
        let m = if identity.is_some() { 2 } else { 1 };
        // The command is written in place: integers straight into its buffer, no string or
        // vector made per argument (`ScriptInvocation` makes one of each, then copies them).
        let mut part = Part::new(2 * m);
        let cmd = &mut part.cmd;
        let tag = holders_tag(key_id, limits);
        for (_, h) in holders.iter().take(m) {
            let (rl, cr) = self.conn.names(tag, h.map_or("", |h| h.0));
            cmd.arg(rl).arg(cr);
        }
        cmd.arg(now.timestamp_micros()).arg(self.clock.deadline(RUN_BY)).arg(if seeding { "1" } else { "0" }).arg(m);
        for (holder, h) in holders.iter().take(m) {
            let own = h.map(|h| h.1);
            // The hash lives as long as the longest window it may hold: its own limits' and
            // those this request made for it (the script never shortens a live hash's
            // lifetime, so a count an earlier request made with a longer window outlives it).
            let longest = own
                .iter()
                .flat_map(|l| l.ratelimits.iter())
                .chain(plan.iter().filter(|p| p.holder == *holder).map(|p| &*p.limit))
                .map(|l| spacing_us(l).1)
                .max()
                .unwrap_or(0);
            cmd.arg(own.map_or(0, |l| l.fingerprint)).arg(hash_ttl_ms(longest));
        }
        cmd.arg(plan.len());
        for p in plan {
            let (t, w) = spacing_us(&p.limit);
            let field = match p.slot {
                Slot::At(n) => Field::Own(n),
                Slot::Request => Field::Request(&p.limit),
            };
            cmd.arg(if p.holder == Holder::Key { 1 } else { 2 }).arg(field).arg(t).arg(w).arg(p.cost);
        }
        for c in credits.iter().take(m) {
            match c {
                Some(c) => {
                    let refill_period = c.refill.map_or(-1, |r| r.period(now));
                    cmd.arg("1")
                        .arg(cost)
                        .arg(c.remaining)
                        .arg(c.period)
                        .arg(c.set_at.timestamp_millis())
                        .arg(refill_period)
                        .arg(c.refill.map_or(0, |r| r.amount));
                }
                None => {
                    cmd.arg("0");
                }
            }
        }
        let Some(answer) = self.script("limits", part).await else {
            return Run::Unanswered;
        };
        match answer.status() {
            Some(DONE) => Run::Done(answer),
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

    /// One check's run of [`SCRIPT`] (gathered with others', on one server) within
    /// [`DEADLINE`]; `None` when not answered (counted and logged). Redis's time in the
    /// answer keeps the clock.
    async fn script(&self, what: &str, part: Part) -> Option<Answer> {
        let answer = self.answer(what, self.runs.run(part)).await?;
        if let Some(t) = answer.redis_time() {
            self.clock.saw(t);
        }
        Some(answer)
    }

    /// Redis's answer within [`DEADLINE`], or `None` (counted and logged).
    async fn answer<T, E: std::fmt::Display>(
        &self,
        what: &str,
        query: impl std::future::Future<Output = Result<T, E>>,
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

    /// Keeps the latest count seen of `id`: answers to concurrent checks arrive in any order.
    /// The id is copied only the first time it is seen since the last flush.
    fn saw(&self, id: &str, remaining: u64, period: i64, set_at_ms: i64) {
        let Ok(mut seen) = self.seen_credits.lock() else { return };
        let count = CreditWrite { key_id: String::new(), remaining, period, set_at_ms };
        match seen.get_mut(id) {
            Some(had) => {
                if count.is_later_than(had) {
                    (had.remaining, had.period, had.set_at_ms) = (remaining, period, set_at_ms);
                }
            }
            None => {
                seen.insert(id.to_string(), CreditWrite { key_id: id.to_string(), ..count });
            }
        }
    }

    /// Runs of [`SCRIPT`] sent (each carries the exact checks that arrived together).
    pub fn exact_batches(&self) -> u64 {
        self.runs.sent()
    }

    /// Puts back counts whose write failed, unless a later one was seen meanwhile.
    pub fn put_back(&self, writes: Vec<CreditWrite>) {
        for w in writes {
            self.saw(&w.key_id, w.remaining, w.period, w.set_at_ms);
        }
    }

    /// The credit counts read from Redis since the last call.
    pub fn take_credit_writes(&self) -> Vec<CreditWrite> {
        self.seen_credits.lock().map(|mut s| s.drain().map(|(_, w)| w).collect()).unwrap_or_default()
    }

    /// What `/healthz` says of Redis: `unavailable` when it does not answer a `PING` now
    /// (in a cluster, every master the client is connected to) within twice the checks'
    /// deadline; `degraded` when it does but a check was answered without it in the last
    /// [`HEALTH_WINDOW`] (a cluster's master away, a stall just over, answers too late);
    /// else `ok`.
    pub async fn health(&self) -> &'static str {
        if !self.answers_ping().await {
            return "unavailable";
        }
        let last = self.last_failed.load(Ordering::Relaxed);
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match last != 0 && now.saturating_sub(last) < HEALTH_WINDOW.as_millis() as u64 {
            true => "degraded",
            false => "ok",
        }
    }

    /// Whether Redis answers a `PING`: this caller's, or that of one begun after it arrived.
    async fn answers_ping(&self) -> bool {
        let arrived = self.pings_begun.load(Ordering::Acquire);
        let mut last = self.last_ping.lock().await;
        if let Some((n, answered)) = *last {
            if n > arrived {
                return answered;
            }
        }
        let n = self.pings_begun.fetch_add(1, Ordering::AcqRel) + 1;
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        let answered =
            matches!(tokio::time::timeout(DEADLINE * 2, ping.query_async::<()>(&mut conn)).await, Ok(Ok(())));
        *last = Some((n, answered));
        answered
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
        let values = self.answer::<Vec<redis::Value>, _>(what, inv.invoke_async(&mut conn)).await?;
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

/// How long a holder's limits hash lives after a write, in ms, from the longest window it
/// holds in µs: past it every count in the hash would be full again, so nothing is lost.
pub(crate) fn hash_ttl_ms(longest_us: i64) -> i64 {
    longest_us.max(0).saturating_add(999) / 1000 + 1000
}

/// A limit's spacing and burst window in microseconds (see `keyward_core::ratelimit`).
pub(crate) fn spacing_us(l: &RateLimit) -> (i64, i64) {
    let d = i64::try_from(l.duration_ms).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
    let n = i64::from(l.limit.max(1));
    let t = (d + n - 1) / n;
    (t, t.saturating_mul(n))
}

/// A planned limit's field in its holder's limits hash, written straight into the command:
/// `l<n>` (from 1) for the holder's own limit n, `r:<name>:<limit>:<duration ms>` for a limit
/// the request made.
enum Field<'a> {
    Own(usize),
    Request(&'a RateLimit),
}

impl redis::ToRedisArgs for Field<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        use std::io::Write;
        let mut w = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = match self {
            Field::Own(n) => {
                let mut digits = itoa::Buffer::new();
                w.write_all(b"l").and_then(|()| w.write_all(digits.format(n + 1).as_bytes()))
            }
            Field::Request(l) => write!(w, "r:{}:{}:{}", l.name, l.limit, l.duration_ms),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limits_hash_lives_its_longest_window_rounded_up_and_a_second() {
        // As the script computed it before it came ready made: ceil(µs / 1000) + 1000.
        assert_eq!(hash_ttl_ms(60_000_000), 61_000);
        assert_eq!(hash_ttl_ms(1_000_001), 2_001);
        assert_eq!(hash_ttl_ms(1), 1_001);
        assert_eq!(hash_ttl_ms(0), 1_000);
        assert_eq!(hash_ttl_ms(-5), 1_000);
        assert_eq!(hash_ttl_ms(i64::MAX), i64::MAX / 1000 + 1000);
    }
}
