//! A key's settings as the console's forms write them and read them back: grants as
//! `ROLE=SCOPE,SCOPE` lines, rate limits as `NAME=LIMIT/DURATION` (the CLI's `--grant` and
//! `--ratelimit`), credits with their refill, and the roles a form offers.

use keyward_core::ratelimit::{Interval, RateLimit, Refill};
use keyward_core::wire::keys::{CreditsSpec, KeyGrant, RateLimitSpec};
use keyward_core::wire::policy::TEMPORARY_DEFAULT_DAYS;
use keyward_core::wire::roles::RoleView;

use crate::error::Fail;

/// The create form's expiry when none is chosen: the API's own default for a temporary key
/// (one constant for both, so the form never promises another lifetime than the server's).
pub(crate) fn default_expiry() -> String {
    format!("{TEMPORARY_DEFAULT_DAYS}d")
}

/// Grants one per line: `operator=wallet:w_1,wallet:w_2`.
pub(crate) fn grants_text(grants: &[KeyGrant]) -> String {
    grants.iter().map(|g| format!("{}={}", g.role, g.scopes.join(","))).collect::<Vec<_>>().join("\n")
}

/// Reads [`grants_text`]'s form (blank lines skipped); the API checks roles and scopes.
pub(crate) fn parse_grants(raw: &str) -> Result<Vec<KeyGrant>, Fail> {
    raw.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (role, scopes) = l
                .split_once('=')
                .ok_or_else(|| Fail::invalid("grants", format!("write a grant as ROLE=SCOPE[,SCOPE…], not {l:?}")))?;
            let scopes = scopes.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
            Ok(KeyGrant { role: role.trim().to_string(), scopes })
        })
        .collect()
}

/// Limits comma-separated, `default` unnamed, `:fast` after a fast one:
/// `10/1s, burst=100/1m:fast`.
pub(crate) fn limits_text(limits: &[RateLimitSpec]) -> String {
    limits
        .iter()
        .map(|l| {
            let mode = if l.mode == "exact" { "" } else { ":fast" };
            match l.name.as_str() {
                "default" => format!("{}/{}{mode}", l.limit, l.duration),
                n => format!("{n}={}/{}{mode}", l.limit, l.duration),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads [`limits_text`]'s form. A limit keeps `auto_apply: false` when `current` has one of
/// that name so (the form has no word for it).
pub(crate) fn parse_limits(raw: &str, current: &[RateLimitSpec]) -> Result<Vec<RateLimitSpec>, Fail> {
    crate::form::split_list(raw)
        .iter()
        .map(|l| {
            let mut spec = RateLimit::parse_spec(l)
                .map(|r| RateLimitSpec::from(&r))
                .map_err(|e| Fail::invalid("ratelimits", format!("{l:?}: {e}")))?;
            spec.auto_apply = current.iter().find(|c| c.name == spec.name).is_none_or(|c| c.auto_apply);
            Ok(spec)
        })
        .collect()
}

/// Credits from the form's fields: `remaining` (blank: none), `refill` (`""`, `daily` or
/// `monthly`) to `amount` (blank: `remaining`), on `day` of the month.
pub(crate) fn parse_credits(remaining: &str, refill: &str, amount: &str, day: u8) -> Result<Option<CreditsSpec>, Fail> {
    if remaining.is_empty() {
        return Ok(None);
    }
    let whole = |field: &str, v: &str| {
        v.parse::<u64>().map_err(|_| Fail::invalid(field, format!("{field} must be a whole number")))
    };
    let remaining = whole("credits", remaining)?;
    let amount = if amount.is_empty() { remaining } else { whole("refill_amount", amount)? };
    let refill = match refill {
        "daily" => Some(Refill { interval: Interval::Daily, amount, day: 1 }),
        "monthly" => Some(Refill { interval: Interval::Monthly, amount, day }),
        _ => None,
    };
    Ok(Some(CreditsSpec { remaining, refill }))
}

/// The refill's interval as the form's select names it.
pub(crate) fn refill_word(c: Option<&CreditsSpec>) -> &'static str {
    match c.and_then(|c| c.refill.map(|r| r.interval)) {
        Some(Interval::Daily) => "daily",
        Some(Interval::Monthly) => "monthly",
        None => "",
    }
}

/// The roles a key form offers: the workspace's own roles (member roles are for people), and
/// any role the key already holds, so saving the form keeps it. Each with whether it is held.
pub(crate) fn offered_roles(roles: &[RoleView], held: &[String]) -> Vec<(String, bool)> {
    roles
        .iter()
        .filter(|r| !r.member_role || held.contains(&r.name))
        .map(|r| (r.name.clone(), held.contains(&r.name)))
        .collect()
}

/// What a role lets a key do, in words.
pub(crate) fn grants_of(r: &RoleView) -> String {
    match &r.permissions {
        Some(p) if !p.is_empty() => p.join(", "),
        _ => "nothing".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, member: bool) -> RoleView {
        RoleView {
            name: name.into(),
            description: String::new(),
            permissions: Some(vec!["a.read".into()]),
            member_role: member,
            keys: 0,
            created_at: None,
            updated_at: None,
            approval_id: None,
        }
    }

    #[test]
    fn grants_read_back_as_written() {
        let g = parse_grants("operator = wallet:w_1, wallet:w_2\n\n reader=*").unwrap();
        assert_eq!(g[0], KeyGrant { role: "operator".into(), scopes: vec!["wallet:w_1".into(), "wallet:w_2".into()] });
        assert_eq!(grants_text(&g), "operator=wallet:w_1,wallet:w_2\nreader=*");
        assert_eq!(parse_grants("operator").unwrap_err().status(), axum::http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn limits_keep_their_names_and_auto_apply() {
        let current = parse_limits("10/1s, burst=100/1m:fast", &[]).unwrap();
        assert_eq!(limits_text(&current), "10/1s, burst=100/1m:fast");
        assert_eq!(current[1].mode, "fast");
        let named_only = RateLimitSpec { auto_apply: false, ..current[1].clone() };
        let again = parse_limits("burst=50/1m", &[named_only]).unwrap();
        assert!(!again[0].auto_apply && again[0].limit == 50);
        assert!(parse_limits("ten per second", &[]).is_err());
    }

    #[test]
    fn credits_refill_to_the_amount_or_the_credits() {
        assert_eq!(parse_credits("", "daily", "", 1).unwrap(), None);
        let c = parse_credits("5", "monthly", "100", 3).unwrap().unwrap();
        assert_eq!((c.remaining, c.refill.unwrap().amount, c.refill.unwrap().day), (5, 100, 3));
        assert_eq!(parse_credits("5", "daily", "", 1).unwrap().unwrap().refill.unwrap().amount, 5);
        assert_eq!(refill_word(Some(&c)), "monthly");
        assert!(parse_credits("many", "", "", 1).is_err());
    }

    #[test]
    fn forms_offer_the_workspace_roles_and_those_held() {
        let roles = [role("admin", true), role("viewer", true), role("billing-reader", false)];
        let offered = offered_roles(&roles, &["viewer".to_string()]);
        assert_eq!(offered, vec![("viewer".to_string(), true), ("billing-reader".to_string(), false)]);
        assert_eq!(default_expiry(), format!("{TEMPORARY_DEFAULT_DAYS}d"));
    }
}
