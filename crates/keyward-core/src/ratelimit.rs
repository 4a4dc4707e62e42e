//! Rate limits and credits per key: the arithmetic only, no state and no clock of its own,
//! so that the in-memory store of one node and a Redis script shared by many apply exactly
//! the same rules (see docs/RATELIMITS.md).
//!
//! **Limits** use GCRA, the generic cell rate algorithm (ITU-T I.371; the algorithm of
//! redis-cell and of Brandur Leach's "Rate limiting, cells, and GCRA"): one number per key
//! and limit, the *theoretical arrival time* (TAT). A limit of `L` per `D` spaces requests
//! by `T = D / L` and tolerates a burst of `L`: a fresh key may send `L` at once, then one
//! per `T`, and after `D` of quiet it may burst `L` again. It needs no window boundary (no
//! double burst at a window's edge, unlike fixed windows) and one value instead of a log.
//!
//! **Credits** are a count of uses that `cost` spends, never below zero, refilled to an
//! amount once a day or once a month.

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

pub use keyward_proto::keys::{Interval, Refill};

use crate::error::CoreError;

/// One named limit of a key: `limit` uses per `duration_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub name: String,
    pub limit: u32,
    pub duration_ms: u64,
    /// Checked on every verification; `false`: only when a verification names it. Stored
    /// only when `false`, so limits written before it read back as they were.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub auto_apply: bool,
    /// How nodes sharing Redis count it (see [`LimitMode`]). Stored only when `fast`.
    #[serde(default, skip_serializing_if = "LimitMode::is_exact")]
    pub mode: LimitMode,
}

/// How a limit is counted across nodes sharing Redis. `Exact`: every check is one Redis
/// script run. `Fast`: a node takes leases of a few tokens at a time ([`lease_size`]) and
/// answers checks from them without Redis; tokens are prepaid, so the limit is never
/// exceeded, and tokens leased but unused are held back from other nodes for at most
/// [`LEASE_LIFE_MS`] (then returned). Without Redis both count on the node alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitMode {
    #[default]
    Exact,
    Fast,
}

impl LimitMode {
    pub fn parse(field: impl Into<String>, s: &str) -> Result<LimitMode, CoreError> {
        match s {
            "exact" => Ok(LimitMode::Exact),
            "fast" => Ok(LimitMode::Fast),
            _ => Err(CoreError::invalid(field, "a limit's mode is \"exact\" or \"fast\"")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LimitMode::Exact => "exact",
            LimitMode::Fast => "fast",
        }
    }

    pub fn is_exact(&self) -> bool {
        *self == LimitMode::Exact
    }
}

/// Longest a fast limit's lease lives on a node before its unused tokens are returned.
pub const LEASE_LIFE_MS: u64 = 1_000;
/// Most tokens one lease holds.
pub const MAX_LEASE: u32 = 1_000;

/// The tokens a node leases at a time for a fast limit: 1 % of the limit, at least 1 and at
/// most [`MAX_LEASE`]. With N nodes, at most (N − 1) × this is held unused by other nodes
/// when one is refused: the bound on fast mode's under-admission.
pub fn lease_size(limit: u32) -> u32 {
    (limit / 100).clamp(1, MAX_LEASE)
}

/// What returning `unused` tokens of a lease gives back, in the TAT's unit: the part of the
/// lease's unused tail (its last `unused × t`) still ahead of `now`. `end` is the TAT the
/// lease left; `shift` how much other leases returned since it was taken (the lease's
/// place moved at most that much earlier); `tat` the TAT now. Never more than what is still
/// ahead of `now` in the count, so returning cannot free what other nodes spent or what
/// time already freed. The Redis script (`limits/lease.rs`) applies the same rule.
pub fn returnable(end: i64, shift: i64, tat: i64, now: i64, unused: i64) -> i64 {
    if shift < 0 {
        // The count was reset (lost or changed) since the lease was taken.
        return 0;
    }
    let end = (end - shift).min(tat);
    unused.min((end - now).max(0)).max(0)
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// Longest limit window: 30 days.
pub const MAX_WINDOW_MS: u64 = 30 * 86_400_000;
/// Most uses a limit may allow in its window.
pub const MAX_LIMIT: u32 = 1_000_000_000;
/// Most limits on one key.
pub const MAX_LIMITS: usize = 8;

/// A limit's name: 1-32 letters, digits, `_`, `-` or `.` (a key's, an identity's, or one a
/// verification names); `field` names it in the error.
pub fn check_name(field: impl Into<String>, name: &str) -> Result<(), CoreError> {
    if name.is_empty()
        || name.len() > 32
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(CoreError::invalid(field, "a limit's name is 1-32 letters, digits, '_', '-' or '.'"));
    }
    Ok(())
}

impl RateLimit {
    /// A limit from its parts, checked; `field` names it in errors.
    pub fn new(field: &str, name: &str, limit: u32, duration: &str) -> Result<RateLimit, CoreError> {
        let name = name.trim();
        check_name(field, name)?;
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(CoreError::invalid(field, format!("a limit is 1-{MAX_LIMIT} uses")));
        }
        let ms = crate::duration::parse(duration)
            .and_then(|d| u64::try_from(d.num_milliseconds()).ok())
            .filter(|ms| (1_000..=MAX_WINDOW_MS).contains(ms))
            .ok_or_else(|| {
                CoreError::invalid(field, "a limit's duration is 1s to 30d, e.g. \"1s\", \"1m\", \"1h\", \"1d\"")
            })?;
        Ok(RateLimit { name: name.to_string(), limit, duration_ms: ms, auto_apply: true, mode: LimitMode::Exact })
    }

    /// A key's limits from (name, limit, duration): at most [`MAX_LIMITS`], names unique;
    /// errors name `ratelimits[i]`.
    pub fn list<'a>(specs: impl IntoIterator<Item = (&'a str, u32, &'a str)>) -> Result<Vec<RateLimit>, CoreError> {
        Self::list_applied(specs.into_iter().map(|(n, l, d)| (n, l, d, true)))
    }

    /// Like [`RateLimit::list`], each with its `auto_apply`.
    pub fn list_applied<'a>(
        specs: impl IntoIterator<Item = (&'a str, u32, &'a str, bool)>,
    ) -> Result<Vec<RateLimit>, CoreError> {
        Self::list_full(specs.into_iter().map(|(n, l, d, a)| (n, l, d, a, "exact")))
    }

    /// Like [`RateLimit::list_applied`], each with its mode (`exact` or `fast`; errors name
    /// `ratelimits[i].mode`).
    pub fn list_full<'a>(
        specs: impl IntoIterator<Item = (&'a str, u32, &'a str, bool, &'a str)>,
    ) -> Result<Vec<RateLimit>, CoreError> {
        let mut out: Vec<RateLimit> = Vec::new();
        for (i, (name, limit, duration, auto_apply, mode)) in specs.into_iter().enumerate() {
            if i >= MAX_LIMITS {
                return Err(CoreError::invalid("ratelimits", format!("at most {MAX_LIMITS} limits per key")));
            }
            let mut l = RateLimit::new(&format!("ratelimits[{i}]"), name, limit, duration)?;
            l.auto_apply = auto_apply;
            l.mode = LimitMode::parse(format!("ratelimits[{i}].mode"), mode)?;
            if out.iter().any(|o| o.name == l.name) {
                return Err(CoreError::invalid(
                    format!("ratelimits[{i}].name"),
                    format!("two limits are named {:?}", l.name),
                ));
            }
            out.push(l);
        }
        Ok(out)
    }

    /// `100/1m`, or `name=100/1m` (the CLI's form; the name defaults to `default`), with
    /// `:fast` after it for a fast limit (`100/1m:fast`).
    pub fn parse_spec(spec: &str) -> Result<RateLimit, CoreError> {
        let (spec, mode) = match spec.rsplit_once(':') {
            Some((s, m)) => (s, LimitMode::parse("ratelimit", m.trim())?),
            None => (spec, LimitMode::Exact),
        };
        let (name, rest) = spec.split_once('=').unwrap_or(("default", spec));
        let (limit, duration) = rest
            .split_once('/')
            .ok_or_else(|| CoreError::invalid("ratelimit", "write a limit as 100/1m or name=100/1m"))?;
        let limit =
            limit.trim().parse().map_err(|_| CoreError::invalid("ratelimit", "the limit must be a whole number"))?;
        let mut l = RateLimit::new("ratelimit", name, limit, duration.trim())?;
        l.mode = mode;
        Ok(l)
    }

    /// The spacing of requests, `ceil(D / L)`, and the burst window `T × L` (≥ `D`, so that
    /// exactly `L` requests fit a burst whatever the rounding), in nanoseconds.
    fn spacing(&self) -> (i64, i64) {
        let d = i64::try_from(self.duration_ms).unwrap_or(i64::MAX / 2_000_000).saturating_mul(1_000_000);
        let l = i64::from(self.limit.max(1));
        let t = (d + l - 1) / l;
        (t, t.saturating_mul(l))
    }
}

/// What one limit says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitCheck {
    pub allowed: bool,
    /// Uses left after this request (or now, when it was refused).
    pub remaining: u32,
    /// Unix milliseconds when the limit is whole again (`remaining == limit`).
    pub reset_ms: i64,
    /// Milliseconds until one more request would be allowed (0 when allowed).
    pub retry_after_ms: i64,
}

/// Applies GCRA: `tat_ns` is the stored TAT (0 for none), `now_ns` the time, `cost` the
/// uses asked for (0 only looks). Answers the check and the TAT to store (unchanged when
/// refused or when `cost` is 0).
pub fn gcra(limit: &RateLimit, tat_ns: i64, now_ns: i64, cost: u32) -> (i64, LimitCheck) {
    let (t, window) = limit.spacing();
    let base = tat_ns.max(now_ns);
    let after = base.saturating_add(t.saturating_mul(i64::from(cost)));
    let allowed = after - now_ns <= window;
    let (stored, used) = if allowed { (after, after - now_ns) } else { (tat_ns, base - now_ns) };
    let remaining = ((window - used).max(0) / t.max(1)).min(i64::from(limit.limit));
    let retry_after = if allowed { 0 } else { (after - window - now_ns).max(0) };
    let stored = if cost == 0 { tat_ns } else { stored };
    let full = if allowed { after } else { base };
    (
        stored,
        LimitCheck {
            allowed,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset_ms: full.max(now_ns).div_euclid(1_000_000),
            retry_after_ms: (retry_after + 999_999) / 1_000_000,
        },
    )
}

/// Most credits a key may hold.
pub const MAX_CREDITS: u64 = 1_000_000_000_000_000;

/// The rules of a refill (the type is the wire crate's).
pub trait RefillRules {
    fn check(&self) -> Result<(), CoreError>;
    /// The refill period `now` falls in: days since 1970 (daily), or months since 1970
    /// counted from each month's refill day (monthly). Credits refill when it changes.
    fn period(&self, now: DateTime<Utc>) -> i64;
}

impl RefillRules for Refill {
    fn check(&self) -> Result<(), CoreError> {
        if self.amount > MAX_CREDITS {
            return Err(CoreError::invalid("credits.refill.amount", format!("at most {MAX_CREDITS}")));
        }
        if !(1..=31).contains(&self.day) {
            return Err(CoreError::invalid("credits.refill.day", "day is 1-31"));
        }
        Ok(())
    }

    fn period(&self, now: DateTime<Utc>) -> i64 {
        match self.interval {
            Interval::Daily => now.timestamp().div_euclid(86_400),
            Interval::Monthly => {
                let months = i64::from(now.year() - 1970) * 12 + i64::from(now.month0());
                let last = last_day(now.year(), now.month());
                let refill_day = u32::from(self.day).min(last);
                if now.day() >= refill_day {
                    months
                } else {
                    months - 1
                }
            }
        }
    }
}

fn last_day(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    chrono::NaiveDate::from_ymd_opt(y, m, 1).and_then(|d| d.pred_opt()).map_or(28, |d| d.day())
}

/// A key's credits as last known: what is left, and the refill period that was counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditState {
    pub remaining: u64,
    pub period: i64,
}

/// A key's credits as stored: what was left at the last flush, the refill rule, the period
/// that was counted in, and when they were last set (a create or an override): a node's
/// running count restarts from the stored one only when that changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCredits {
    pub remaining: u64,
    pub refill: Option<Refill>,
    pub period: i64,
    pub set_at: DateTime<Utc>,
}

impl KeyCredits {
    pub fn state(&self) -> CreditState {
        CreditState { remaining: self.remaining, period: self.period }
    }
}

/// A window in the API's words: the largest unit that divides it (`90s`, `1m`, `2h`, `1d`).
pub fn format_window(ms: u64) -> String {
    let s = ms / 1000;
    for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= secs && s.is_multiple_of(secs) {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

/// Spends `cost` credits at `now`: first a refill if a new period began, then the spend,
/// refused (and nothing spent) when fewer than `cost` are left. Answers whether it was
/// allowed and the state to keep.
pub fn spend(state: CreditState, refill: Option<&Refill>, now: DateTime<Utc>, cost: u64) -> (bool, CreditState) {
    let mut s = state;
    if let Some(r) = refill {
        let p = r.period(now);
        if p > s.period {
            s = CreditState { remaining: r.amount, period: p };
        }
    }
    if s.remaining >= cost {
        s.remaining -= cost;
        (true, s)
    } else {
        (false, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const S: i64 = 1_000_000_000;

    fn per_minute(n: u32) -> RateLimit {
        RateLimit::new("ratelimits", "default", n, "1m").unwrap()
    }

    #[test]
    fn exactly_the_limit_in_a_burst_then_refused_with_the_reset() {
        for n in [1, 3, 7, 100, 1_000_000] {
            let l = per_minute(n);
            let t0 = 1_700_000_000 * S;
            let mut tat = 0;
            for i in 0..n {
                let (next, c) = gcra(&l, tat, t0, 1);
                assert!(c.allowed, "{n}: request {i}");
                assert_eq!(c.remaining, n - i - 1, "{n}: request {i}");
                tat = next;
            }
            let (same, c) = gcra(&l, tat, t0, 1);
            assert!(!c.allowed, "{n}: one more than the limit");
            assert_eq!((same, c.remaining), (tat, 0));
            // Whole again one window later (the spacing's rounding adds under 1 ns per use).
            let over = c.reset_ms - t0 / 1_000_000 - 60_000;
            assert!((0..=1).contains(&over), "{n}: {c:?}");
            // One more is allowed after one spacing.
            let spacing_ms = (60_000 + i64::from(n) - 1) / i64::from(n);
            assert!(c.retry_after_ms <= spacing_ms.max(1), "{n}: {c:?}");
            let (_, later) = gcra(&l, tat, t0 + (c.retry_after_ms * 1_000_000), 1);
            assert!(later.allowed, "{n}: after retry_after");
            // After a whole window of quiet, a whole burst again.
            let mut tat2 = tat;
            for _ in 0..n {
                let (next, c) = gcra(&l, tat2, t0 + 60 * S + S / 1000, 1);
                assert!(c.allowed);
                tat2 = next;
            }
        }
    }

    /// What docs/RATELIMITS.md promises: in any span of `D`, a burst of `L` plus what refills
    /// within it — at most `2L - 1` — and `L` more per `D` after that; not "never more than
    /// `L` in any span of `D`".
    #[test]
    fn a_span_of_one_window_allows_the_burst_plus_the_refill() {
        let l = RateLimit::new("ratelimits", "default", 100, "10s").unwrap();
        let (mut tat, mut allowed, mut first_window) = (0, 0, 0);
        // One request a millisecond for 20 s.
        for ms in 0..20_000i64 {
            let (next, c) = gcra(&l, tat, ms * 1_000_000, 1);
            if c.allowed {
                allowed += 1;
                if ms < 10_000 {
                    first_window += 1;
                }
                tat = next;
            }
        }
        assert_eq!((first_window, allowed), (199, 299));
    }

    #[test]
    fn cost_spends_several_and_zero_only_looks() {
        let l = per_minute(10);
        let (tat, c) = gcra(&l, 0, 0, 4);
        assert_eq!((c.allowed, c.remaining), (true, 6));
        let (same, c) = gcra(&l, tat, 0, 0);
        assert_eq!((same, c.allowed, c.remaining), (tat, true, 6));
        let (_, c) = gcra(&l, tat, 0, 7);
        assert!(!c.allowed, "7 more do not fit in 6");
        let (_, c) = gcra(&l, tat, 0, 6);
        assert_eq!((c.allowed, c.remaining), (true, 0));
    }

    #[test]
    fn windows_read_back_as_written() {
        for w in ["1s", "90s", "1m", "15m", "2h", "1d", "30d"] {
            let l = RateLimit::new("x", "a", 1, w).unwrap();
            assert_eq!(format_window(l.duration_ms), w);
        }
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(
            RateLimit::parse_spec("100/1m").unwrap(),
            RateLimit {
                name: "default".into(),
                limit: 100,
                duration_ms: 60_000,
                auto_apply: true,
                mode: LimitMode::Exact
            }
        );
        assert_eq!(RateLimit::parse_spec("b=10/1s:fast").unwrap().mode, LimitMode::Fast);
        assert!(RateLimit::parse_spec("10/1s:quick").is_err());
        assert_eq!(RateLimit::parse_spec("burst=10/1s").unwrap().name, "burst");
        for bad in ["100", "0/1m", "x/1m", "10/0s", "10/31d", "10/500ms", "bad name=1/1s", "=1/1s"] {
            assert!(RateLimit::parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes_read_and_write() {
        let l = RateLimit::list_full([("a", 1, "1s", true, "fast"), ("b", 1, "1s", true, "exact")]).unwrap();
        assert_eq!((l[0].mode, l[1].mode), (LimitMode::Fast, LimitMode::Exact));
        let e = RateLimit::list_full([("a", 1, "1s", true, "exact"), ("b", 1, "1s", true, "FAST")]).unwrap_err();
        assert_eq!(e.field(), "ratelimits[1].mode");
        // Stored limits without a mode read as exact; exact is not written.
        let old: RateLimit = serde_json::from_str(r#"{"name":"a","limit":1,"duration_ms":1000}"#).unwrap();
        assert_eq!(old.mode, LimitMode::Exact);
        assert!(!serde_json::to_string(&old).unwrap().contains("mode"));
        assert!(serde_json::to_string(&l[0]).unwrap().contains(r#""mode":"fast""#));
    }

    #[test]
    fn lease_sizes() {
        assert_eq!([1, 99, 100, 300, 250_000, 1_000_000_000].map(lease_size), [1, 1, 1, 3, 1000, 1000]);
    }

    /// Returning a lease's unused tokens: all of them while they are still ahead of now,
    /// only what is left ahead of now once time reached them, nothing after the count was
    /// reset, and never past the count now (which other nodes may have moved on).
    #[test]
    fn lease_returns_give_back_only_what_is_still_counted() {
        let t = 10;
        // A lease of 5 left the TAT at 1_000; 3 unused (30); now 500; others spent 200 more.
        assert_eq!(returnable(1_000, 0, 1_200, 500, 3 * t), 30);
        // Time passed into the unused tail: only the part still ahead.
        assert_eq!(returnable(1_000, 0, 1_200, 990, 3 * t), 10);
        assert_eq!(returnable(1_000, 0, 1_200, 1_500, 3 * t), 0);
        // Another lease taken earlier returned 50: this one's tail moved at most 50 earlier.
        assert_eq!(returnable(1_000, 50, 1_150, 960, 3 * t), 0);
        assert_eq!(returnable(1_000, 50, 1_150, 930, 3 * t), 20);
        // The count was reset (returns counter behind the lease's): nothing.
        assert_eq!(returnable(1_000, -10, 1_000, 0, 3 * t), 0);
        // The count now is behind the lease's end (it was reset and refilled): at most it.
        assert_eq!(returnable(1_000, 0, 520, 500, 3 * t), 20);
        // Applied as GCRA would: returning all unused of a fresh lease is as if it was never
        // taken, so the limit allows them again.
        let l = RateLimit::new("x", "a", 100, "1s").unwrap();
        let (tat, _) = gcra(&l, 0, 0, 5);
        let back = returnable(tat / 1000, 0, tat / 1000, 0, 5 * (l.spacing().0 / 1000)) * 1000;
        let (_, c) = gcra(&l, tat - back, 0, 100);
        assert!(c.allowed, "the whole limit again");
    }

    #[test]
    fn credits_never_go_below_zero_and_refill() {
        let monthly = Refill { interval: Interval::Monthly, amount: 1000, day: 1 };
        let jan = Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap();
        let s = CreditState { remaining: 2, period: monthly.period(jan) };
        let (ok, s) = spend(s, Some(&monthly), jan, 2);
        assert!(ok);
        assert_eq!(s.remaining, 0);
        let (ok, s) = spend(s, Some(&monthly), jan, 1);
        assert!(!ok);
        assert_eq!(s.remaining, 0);
        let feb = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 1).unwrap();
        let (ok, s) = spend(s, Some(&monthly), feb, 1);
        assert!(ok);
        assert_eq!(s.remaining, 999);
        let (_, s2) = spend(s, Some(&monthly), feb, 0);
        assert_eq!(s2, s, "cost 0 spends nothing and the period is kept");
        // Without a refill nothing comes back.
        let (ok, _) = spend(CreditState { remaining: 0, period: 0 }, None, feb, 1);
        assert!(!ok);
    }

    #[test]
    fn refill_periods() {
        let daily = Refill { interval: Interval::Daily, amount: 5, day: 1 };
        let a = Utc.with_ymd_and_hms(2026, 3, 1, 23, 59, 59).unwrap();
        let b = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        assert_eq!(daily.period(b), daily.period(a) + 1);
        // Refilled on the 31st, or on the last day of a shorter month.
        let late = Refill { interval: Interval::Monthly, amount: 5, day: 31 };
        let feb27 = Utc.with_ymd_and_hms(2026, 2, 27, 12, 0, 0).unwrap();
        let feb28 = Utc.with_ymd_and_hms(2026, 2, 28, 0, 0, 0).unwrap();
        let mar30 = Utc.with_ymd_and_hms(2026, 3, 30, 0, 0, 0).unwrap();
        let mar31 = Utc.with_ymd_and_hms(2026, 3, 31, 0, 0, 0).unwrap();
        assert_eq!(late.period(feb28), late.period(feb27) + 1);
        assert_eq!(late.period(mar30), late.period(feb28));
        assert_eq!(late.period(mar31), late.period(feb28) + 1);
        assert!(Refill { interval: Interval::Monthly, amount: 1, day: 0 }.check().is_err());
        assert!(Refill { interval: Interval::Monthly, amount: MAX_CREDITS + 1, day: 1 }.check().is_err());
    }
}
