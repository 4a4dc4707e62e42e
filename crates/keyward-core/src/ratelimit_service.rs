//! Rate limiting as a service (`POST /v1/ratelimit`): the input rules and which override
//! applies to an identifier. The arithmetic is GCRA, the same as keys' limits
//! ([`crate::ratelimit::gcra`]).

use std::collections::HashMap;

use crate::error::CoreError;
use crate::ratelimit::{RateLimit, MAX_LIMIT, MAX_WINDOW_MS};
use crate::wire::ratelimit::{LimitRequest, OverrideRequest};

/// Longest namespace or identifier, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Shortest window: 1 s (Unkey's too); the longest is keys' 30 d.
pub const MIN_WINDOW_MS: u64 = 1_000;
/// Most overrides in one namespace (every node holds a namespace's overrides whole).
pub const MAX_OVERRIDES: u64 = 10_000;
/// Most overrides with a `*` in one namespace (each check tries every one).
pub const MAX_PATTERNS: u64 = 100;

/// One checked limit: `limit` uses per `duration_ms` (`limit` 0 only from an override:
/// every request refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceLimit {
    pub limit: u32,
    pub duration_ms: u64,
}

impl ServiceLimit {
    /// The limit in the form [`crate::ratelimit::gcra`] takes (for `limit` ≥ 1).
    pub fn as_rate_limit(&self) -> RateLimit {
        RateLimit {
            name: String::new(),
            limit: self.limit,
            duration_ms: self.duration_ms,
            auto_apply: true,
            mode: crate::ratelimit::LimitMode::Exact,
        }
    }
}

/// A checked `POST /v1/ratelimit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRequest<'a> {
    pub namespace: &'a str,
    pub identifier: &'a str,
    pub limit: ServiceLimit,
    pub cost: u32,
}

/// A namespace or identifier: 1-255 bytes, no NUL (PostgreSQL cannot store one).
pub fn name<'a>(field: &str, s: &'a str) -> Result<&'a str, CoreError> {
    if s.is_empty() || s.len() > MAX_NAME_BYTES {
        return Err(CoreError::invalid(field, format!("{field} is 1-{MAX_NAME_BYTES} bytes")));
    }
    if s.contains('\0') {
        return Err(CoreError::invalid(field, format!("{field} holds a NUL character")));
    }
    Ok(s)
}

fn limit(field: &str, n: u64, min: u64) -> Result<u32, CoreError> {
    u32::try_from(n)
        .ok()
        .filter(|n| (min..=u64::from(MAX_LIMIT)).contains(&u64::from(*n)))
        .ok_or_else(|| CoreError::invalid(field, format!("limit is {min}-{MAX_LIMIT}")))
}

fn window(ms: u64) -> Result<u64, CoreError> {
    if (MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(CoreError::invalid(
            "duration",
            format!("duration is in milliseconds, {MIN_WINDOW_MS} (1 s) to {MAX_WINDOW_MS} (30 d)"),
        ))
    }
}

/// Checks a `POST /v1/ratelimit` body; errors name the field.
pub fn check_request(req: &LimitRequest) -> Result<CheckedRequest<'_>, CoreError> {
    let namespace = name("namespace", &req.namespace)?;
    let identifier = name("identifier", &req.identifier)?;
    let limit = limit("limit", req.limit, 1)?;
    let duration_ms = window(req.duration)?;
    let cost = req.cost.unwrap_or(1);
    if cost > u64::from(limit) {
        return Err(CoreError::invalid("cost", "cost is 0 to limit"));
    }
    let cost = u32::try_from(cost).map_err(|_| CoreError::invalid("cost", "cost is 0 to limit"))?;
    Ok(CheckedRequest { namespace, identifier, limit: ServiceLimit { limit, duration_ms }, cost })
}

/// Checks a `POST /v1/ratelimit/overrides` body (limit 0 is allowed: it refuses everything).
pub fn check_override(req: &OverrideRequest) -> Result<ServiceLimit, CoreError> {
    name("namespace", &req.namespace)?;
    name("identifier", &req.identifier)?;
    Ok(ServiceLimit { limit: limit("limit", req.limit, 0)?, duration_ms: window(req.duration)? })
}

/// Whether an override's identifier is a pattern.
pub fn is_pattern(identifier: &str) -> bool {
    identifier.contains('*')
}

/// Whether `s` matches `pattern`, where `*` stands for any run of bytes (none included).
/// Linear backtracking on the last `*`: at most `|pattern| × |s|` steps.
pub fn matches(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

/// A namespace's overrides, for finding the one that applies to an identifier: its exact
/// identifier first, else the matching pattern with the most literal characters (the most
/// specific; on a tie, the first in the order given).
#[derive(Debug, Clone, Default)]
pub struct OverrideSet<T> {
    exact: HashMap<String, T>,
    patterns: Vec<(String, T)>,
}

impl<T> OverrideSet<T> {
    pub fn new(items: impl IntoIterator<Item = (String, T)>) -> OverrideSet<T> {
        let mut set = OverrideSet { exact: HashMap::new(), patterns: Vec::new() };
        for (identifier, v) in items {
            if is_pattern(&identifier) {
                set.patterns.push((identifier, v));
            } else {
                set.exact.insert(identifier, v);
            }
        }
        set
    }

    pub fn find(&self, identifier: &str) -> Option<&T> {
        if let Some(v) = self.exact.get(identifier) {
            return Some(v);
        }
        let literal = |p: &str| p.bytes().filter(|b| *b != b'*').count();
        let mut best: Option<(usize, &T)> = None;
        for (p, v) in &self.patterns {
            let n = literal(p);
            if best.is_none_or(|(b, _)| n > b) && matches(p, identifier) {
                best = Some((n, v));
            }
        }
        best.map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(limit: u64, duration: u64, cost: Option<u64>) -> LimitRequest {
        LimitRequest { namespace: "sms".into(), identifier: "u1".into(), limit, duration, cost }
    }

    #[test]
    fn bounds_name_the_field() {
        let field = |r: &LimitRequest| check_request(r).err().map(|e| e.field().to_string());
        assert_eq!(field(&req(10, 60_000, None)), None);
        assert_eq!(check_request(&req(10, 60_000, None)).unwrap().cost, 1);
        assert_eq!(field(&req(0, 60_000, None)).as_deref(), Some("limit"));
        assert_eq!(field(&req(u64::from(MAX_LIMIT) + 1, 60_000, None)).as_deref(), Some("limit"));
        assert_eq!(field(&req(10, 999, None)).as_deref(), Some("duration"));
        assert_eq!(field(&req(10, MAX_WINDOW_MS + 1, None)).as_deref(), Some("duration"));
        assert_eq!(field(&req(10, 60_000, Some(11))).as_deref(), Some("cost"));
        assert_eq!(field(&req(10, 60_000, Some(0))), None);
        let mut r = req(10, 60_000, None);
        r.namespace = "a\0b".into();
        assert_eq!(field(&r).as_deref(), Some("namespace"));
        r.namespace = "n".into();
        r.identifier = "x".repeat(256);
        assert_eq!(field(&r).as_deref(), Some("identifier"));
        r.identifier = String::new();
        assert_eq!(field(&r).as_deref(), Some("identifier"));
        let o = OverrideRequest { namespace: "n".into(), identifier: "i".into(), limit: 0, duration: 1_000 };
        assert_eq!(check_override(&o).unwrap().limit, 0, "an override may block");
    }

    #[test]
    fn patterns() {
        assert!(matches("premium_*", "premium_1"));
        assert!(matches("premium_*", "premium_"));
        assert!(!matches("premium_*", "premiu"));
        assert!(matches("*@example.com", "a@example.com"));
        assert!(matches("*sus*", "very-suspicious"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(matches("*", ""));
        assert!(!matches("abc", "abcd"));
    }

    #[test]
    fn exact_wins_then_the_most_specific_pattern() {
        let set = OverrideSet::new([
            ("*".to_string(), 1),
            ("premium_*".to_string(), 2),
            ("premium_gold_*".to_string(), 3),
            ("premium_gold_7".to_string(), 4),
        ]);
        assert_eq!(set.find("premium_gold_7"), Some(&4));
        assert_eq!(set.find("premium_gold_8"), Some(&3));
        assert_eq!(set.find("premium_x"), Some(&2));
        assert_eq!(set.find("other"), Some(&1));
        assert_eq!(OverrideSet::<u8>::new([]).find("x"), None);
    }
}
