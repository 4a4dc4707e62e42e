//! Which limits one verification checks, and at what cost: Unkey's rules (its key
//! verifier's), so that its SDKs see the same answers (see docs/RATELIMITS.md).
//!
//! - Every limit with `auto_apply` is checked, at the request's `cost`: the key's, then its
//!   identity's — except an identity's limit whose name a key's limit also has: the key's
//!   shadows it (one limit per name).
//! - Each limit the request names (`ratelimits[i]`) is checked at its own cost (default 1):
//!   with `limit` and `duration`, a limit made for this request (counted per key, under its
//!   name, limit and window); else the key's limit of that name, else its identity's. A name
//!   neither has is refused (400 naming `ratelimits[i].name`). A named limit that is also
//!   auto-applied is checked once, at the named cost; a name given twice, the later wins.

use std::borrow::Cow;

use keyward_proto::verify::VerifyRatelimit;

use crate::error::CoreError;
use crate::ratelimit::{LimitCheck, RateLimit, MAX_LIMIT, MAX_WINDOW_MS};

/// Whose count a limit spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Key,
    Identity,
}

/// Where a planned limit's count is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The holder's `n`th limit (its position in the holder's list).
    At(usize),
    /// A limit the request made, counted for the key under its name, limit and window.
    Request,
}

/// One limit to check, and (once checked) what it said.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned<'a> {
    pub holder: Holder,
    pub slot: Slot,
    pub limit: Cow<'a, RateLimit>,
    pub cost: u32,
    pub check: LimitCheck,
}

impl Planned<'_> {
    /// `key`, `identity` or `request`, as answers name it.
    pub fn source(&self) -> &'static str {
        match (self.slot, self.holder) {
            (Slot::Request, _) => "request",
            (_, Holder::Key) => "key",
            (_, Holder::Identity) => "identity",
        }
    }
}

/// Most limits one verification may name.
pub const MAX_NAMED: usize = 16;

/// Checks the limits a request names, before any is looked up: errors name `ratelimits[i]…`.
pub fn check_named(named: &[VerifyRatelimit<'_>]) -> Result<(), CoreError> {
    if named.len() > MAX_NAMED {
        return Err(CoreError::invalid("ratelimits", format!("at most {MAX_NAMED} limits per verification")));
    }
    for (i, n) in named.iter().enumerate() {
        crate::ratelimit::check_name(format!("ratelimits[{i}].name"), &n.name)?;
        match (n.limit, n.duration) {
            (None, None) => {}
            (Some(l), Some(d)) => {
                if !(1..=MAX_LIMIT).contains(&l) {
                    return Err(CoreError::invalid(format!("ratelimits[{i}].limit"), format!("1-{MAX_LIMIT} uses")));
                }
                if !(1_000..=MAX_WINDOW_MS).contains(&d) {
                    return Err(CoreError::invalid(
                        format!("ratelimits[{i}].duration"),
                        format!("1000-{MAX_WINDOW_MS} milliseconds"),
                    ));
                }
            }
            (Some(_), None) => {
                return Err(CoreError::invalid(format!("ratelimits[{i}].duration"), "give duration with limit"))
            }
            (None, Some(_)) => {
                return Err(CoreError::invalid(format!("ratelimits[{i}].limit"), "give limit with duration"))
            }
        }
    }
    Ok(())
}

fn planned(holder: Holder, slot: Slot, limit: Cow<'_, RateLimit>, cost: u32) -> Planned<'_> {
    Planned { holder, slot, limit, cost, check: LimitCheck::default() }
}

/// The limits to check, in order (see the module's rules). `Err(i)`: `ratelimits[i]` names
/// a limit neither the key nor its identity has. `named` must have passed [`check_named`].
pub fn plan<'a>(
    key: &'a [RateLimit],
    identity: &'a [RateLimit],
    named: &[VerifyRatelimit<'_>],
    cost: u32,
) -> Result<Vec<Planned<'a>>, usize> {
    let shadowed = |l: &RateLimit| key.iter().any(|k| k.name == l.name);
    let mut out: Vec<Planned<'a>> = Vec::with_capacity(key.len() + identity.len() + named.len());
    for (i, l) in key.iter().enumerate().filter(|(_, l)| l.auto_apply) {
        out.push(planned(Holder::Key, Slot::At(i), Cow::Borrowed(l), cost));
    }
    for (i, l) in identity.iter().enumerate().filter(|(_, l)| l.auto_apply && !shadowed(l)) {
        out.push(planned(Holder::Identity, Slot::At(i), Cow::Borrowed(l), cost));
    }
    for (j, n) in named.iter().enumerate() {
        let cost = n.cost.unwrap_or(1);
        let p = match (n.limit, n.duration) {
            (Some(limit), Some(duration_ms)) => planned(
                Holder::Key,
                Slot::Request,
                Cow::Owned(RateLimit {
                    name: n.name.to_string(),
                    limit,
                    duration_ms,
                    auto_apply: false,
                    mode: crate::ratelimit::LimitMode::Exact,
                }),
                cost,
            ),
            _ => {
                let own = key.iter().position(|l| l.name == n.name).map(|i| (Holder::Key, i, &key[i]));
                let shared = || {
                    identity
                        .iter()
                        .position(|l| l.name == n.name && !shadowed(l))
                        .map(|i| (Holder::Identity, i, &identity[i]))
                };
                let (holder, i, l) = own.or_else(shared).ok_or(j)?;
                planned(holder, Slot::At(i), Cow::Borrowed(l), cost)
            }
        };
        match out.iter_mut().find(|o| o.limit.name == p.limit.name) {
            Some(o) => *o = p,
            None => out.push(p),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(name: &str, n: u32, auto_apply: bool) -> RateLimit {
        let mut l = RateLimit::new("x", name, n, "1m").unwrap();
        l.auto_apply = auto_apply;
        l
    }

    fn named(name: &str, cost: Option<u32>) -> VerifyRatelimit<'_> {
        VerifyRatelimit { name: name.into(), cost, limit: None, duration: None }
    }

    fn summary(p: &[Planned<'_>]) -> Vec<(String, &'static str, u32, u32)> {
        p.iter().map(|p| (p.limit.name.clone(), p.source(), p.limit.limit, p.cost)).collect()
    }

    #[test]
    fn auto_applied_then_named_with_the_key_shadowing_its_identity() {
        let key = [limit("a", 1, true), limit("manual", 2, false), limit("shared", 3, true)];
        let identity = [limit("shared", 30, true), limit("team", 40, true), limit("burst", 50, false)];
        let p = plan(&key, &identity, &[], 2).unwrap();
        assert_eq!(
            summary(&p),
            [("a".into(), "key", 1, 2), ("shared".into(), "key", 3, 2), ("team".into(), "identity", 40, 2)]
        );
        // Named: at their own cost; an auto-applied one named is checked once.
        let p =
            plan(&key, &identity, &[named("manual", Some(5)), named("burst", None), named("a", Some(0))], 2).unwrap();
        assert_eq!(
            summary(&p),
            [
                ("a".into(), "key", 1, 0),
                ("shared".into(), "key", 3, 2),
                ("team".into(), "identity", 40, 2),
                ("manual".into(), "key", 2, 5),
                ("burst".into(), "identity", 50, 1),
            ]
        );
        // A name neither has: refused, naming its index; with limit and duration, made.
        assert_eq!(plan(&key, &identity, &[named("a", None), named("nope", None)], 1).unwrap_err(), 1);
        let adhoc = VerifyRatelimit { name: "nope".into(), cost: None, limit: Some(7), duration: Some(1000) };
        let p = plan(&key, &[], &[adhoc], 1).unwrap();
        assert_eq!(p.last().map(|p| (p.source(), p.slot, p.limit.limit)), Some(("request", Slot::Request, 7)));
        // No limits at all: an empty plan, nothing allocated.
        assert!(plan(&[], &[], &[], 1).unwrap().is_empty());
    }

    #[test]
    fn named_limits_are_checked_first() {
        let ok = [named("a.b-c_1", Some(3))];
        assert!(check_named(&ok).is_ok());
        let bad = [
            (VerifyRatelimit { name: "".into(), ..Default::default() }, "ratelimits[0].name"),
            (VerifyRatelimit { name: "a\0".into(), ..Default::default() }, "ratelimits[0].name"),
            (VerifyRatelimit { name: "a".into(), limit: Some(1), ..Default::default() }, "ratelimits[0].duration"),
            (
                VerifyRatelimit { name: "a".into(), limit: Some(0), duration: Some(1000), cost: None },
                "ratelimits[0].limit",
            ),
            (
                VerifyRatelimit { name: "a".into(), limit: Some(1), duration: Some(10), cost: None },
                "ratelimits[0].duration",
            ),
        ];
        for (b, field) in bad {
            assert_eq!(check_named(std::slice::from_ref(&b)).unwrap_err().field(), field, "{b:?}");
        }
        let many: Vec<_> = (0..17).map(|_| named("a", None)).collect();
        assert_eq!(check_named(&many).unwrap_err().field(), "ratelimits");
    }
}
