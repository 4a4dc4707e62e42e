//! Unkey's shapes shared by several routes (a key, credits, rate limits) and their
//! translation to and from Keyward's: Unix milliseconds for times, milliseconds for
//! durations, camelCase names.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use keyward_core::wire::identities::IdentityView;
use keyward_core::wire::keys::{CreditsSpec, Interval, KeyView, RateLimitSpec, Refill};

use super::UnkeyError;

/// `KeyResponseData`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyData {
    pub key_id: String,
    pub start: String,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    pub permissions: Vec<String>,
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditsData>,
    pub ratelimits: Vec<RatelimitData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityData>,
}

impl KeyData {
    /// `identity`: the key's identity as read (`None` for a key without one).
    pub(crate) fn of(v: KeyView, identity: Option<&IdentityView>) -> Self {
        let ratelimits = v.ratelimits.iter().map(|l| RatelimitData::of(&v.id, l)).collect();
        KeyData {
            identity: identity.map(IdentityData::of),
            start: if v.start.is_empty() { v.id.clone() } else { v.start },
            key_id: v.id,
            enabled: v.enabled,
            name: Some(v.name).filter(|n| !n.is_empty()),
            meta: Some(v.meta).filter(|m| !m.is_empty()),
            created_at: v.created_at.timestamp_millis(),
            updated_at: v.updated_at.timestamp_millis(),
            last_used_at: v.last_used_at.map(|t| t.timestamp_millis()),
            expires: v.expires_at.map(|t| t.timestamp_millis()),
            permissions: v.permissions,
            roles: v.roles,
            credits: v.credits.clone().map(CreditsData::of),
            ratelimits,
        }
    }
}

/// `KeyCreditsData`: `remaining: null` is unlimited.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreditsData {
    pub remaining: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<RefillData>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefillData {
    pub interval: Interval,
    pub amount: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill_day: Option<u8>,
}

impl CreditsData {
    pub(crate) fn of(c: CreditsSpec) -> Self {
        CreditsData {
            remaining: Some(c.remaining),
            refill: c.refill.map(|r| RefillData {
                interval: r.interval,
                amount: r.amount,
                refill_day: (r.interval == Interval::Monthly).then_some(r.day),
            }),
        }
    }

    /// Keyward's credits, or `None` for unlimited (`remaining: null`).
    pub(crate) fn spec(&self) -> Option<CreditsSpec> {
        let remaining = self.remaining?;
        Some(CreditsSpec { remaining, refill: self.refill.as_ref().map(RefillData::spec) })
    }
}

impl RefillData {
    pub(crate) fn spec(&self) -> Refill {
        Refill { interval: self.interval, amount: self.amount, day: self.refill_day.unwrap_or(1) }
    }
}

/// `RatelimitRequest`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RatelimitRequest {
    pub name: String,
    pub limit: u64,
    pub duration: u64,
    /// Unkey's default is `false`: the limit is checked only when a verification names it.
    #[serde(default)]
    pub auto_apply: Option<bool>,
    /// Keyward's own: `exact` (the default) or `fast` (see docs/RATELIMITS.md).
    #[serde(default)]
    pub mode: Option<String>,
}

/// A list of limits as Keyward's, each checked (`at` is the list's location, `body.ratelimits`).
pub(crate) fn specs(at: &str, limits: &[RatelimitRequest]) -> Result<Vec<RateLimitSpec>, UnkeyError> {
    limits.iter().enumerate().map(|(i, l)| l.spec(&format!("{at}[{i}]"))).collect()
}

impl RatelimitRequest {
    /// Keyward's limit; `at` is the location for a 400 (`body.ratelimits[0]`).
    pub(crate) fn spec(&self, at: &str) -> Result<RateLimitSpec, UnkeyError> {
        let limit = u32::try_from(self.limit)
            .map_err(|_| UnkeyError::invalid(format!("{at}.limit"), "limit must be at most 4294967295"))?;
        Ok(RateLimitSpec {
            name: self.name.clone(),
            limit,
            duration: duration_secs(&format!("{at}.duration"), self.duration)?,
            auto_apply: self.auto_apply.unwrap_or(false),
            mode: self.mode.clone().unwrap_or_else(|| "exact".into()),
        })
    }
}

/// A duration in milliseconds as Keyward writes it (`60s`): whole seconds only.
pub(crate) fn duration_secs(location: &str, ms: u64) -> Result<String, UnkeyError> {
    if ms == 0 || !ms.is_multiple_of(1000) {
        return Err(UnkeyError::invalid(
            location,
            "Keyward counts durations in whole seconds: a positive multiple of 1000",
        ));
    }
    Ok(format!("{}s", ms / 1000))
}

/// `RatelimitResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RatelimitData {
    pub id: String,
    pub name: String,
    pub limit: u32,
    pub duration: i64,
    pub auto_apply: bool,
    /// Keyward's own, shown only for a `fast` limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl RatelimitData {
    /// A limit of the key or identity `holder` (its id).
    pub(crate) fn of(holder: &str, l: &RateLimitSpec) -> Self {
        let ms = keyward_core::duration::parse(&l.duration).map_or(0, |d| d.num_milliseconds());
        RatelimitData {
            id: limit_id(holder, &l.name),
            name: l.name.clone(),
            limit: l.limit,
            duration: ms,
            auto_apply: l.auto_apply,
            mode: (l.mode != "exact").then(|| l.mode.clone()),
        }
    }
}

/// A limit's id as Unkey shapes them (`^rl_[a-zA-Z0-9_]+$`): Keyward's limits are known by
/// their holder and name, so the id is made of both, `rl_<holder id>_<name>`, the name
/// written with `_` as `__`, `-` as `_d` and `.` as `_e` (any other byte `_x<hex>`): the
/// same limit has the same id in every answer, and two names never share one.
pub(crate) fn limit_id(holder: &str, name: &str) -> String {
    let mut out = String::with_capacity(4 + holder.len() + name.len() * 2);
    out.push_str("rl_");
    out.push_str(holder);
    out.push('_');
    for b in name.bytes() {
        match b {
            b'_' => out.push_str("__"),
            b'-' => out.push_str("_d"),
            b'.' => out.push_str("_e"),
            b if b.is_ascii_alphanumeric() => out.push(char::from(b)),
            b => out.push_str(&format!("_x{b:02x}")),
        }
    }
    out
}

/// `Identity`: the limits shared by its keys, and its meta. Keyward's identities may also
/// hold credits (Keyward's addition, shown as `credits` like a key's).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IdentityData {
    pub id: String,
    pub external_id: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub meta: Map<String, Value>,
    pub ratelimits: Vec<RatelimitData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditsData>,
}

impl IdentityData {
    pub(crate) fn of(v: &IdentityView) -> Self {
        IdentityData {
            id: v.id.clone(),
            external_id: v.external_id.clone(),
            meta: v.meta.clone(),
            ratelimits: v.ratelimits.iter().map(|l| RatelimitData::of(&v.id, l)).collect(),
            credits: v.credits.clone().map(CreditsData::of),
        }
    }
}

/// Unix milliseconds as RFC 3339 (what the native routes take).
pub(crate) fn rfc3339(location: &str, ms: i64) -> Result<String, UnkeyError> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .ok_or_else(|| UnkeyError::invalid(location, "not a time in Unix milliseconds"))
}

/// `{ "id", "name", "slug" }`: Keyward's permissions are their names, so all three are.
pub(crate) fn permission(p: &str) -> Value {
    serde_json::json!({"id": p, "name": p, "slug": p})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_ids_fit_unkeys_pattern_and_never_collide() {
        let names = ["a_b", "a-b", "a.b", "a__b", "ab", "a_db", "x"];
        let ids: Vec<String> = names.iter().map(|n| limit_id("key_01ABC", n)).collect();
        for id in &ids {
            assert!(id.starts_with("rl_") && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{id}");
        }
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert_eq!(limit_id("idn_1", "per-day.v2"), "rl_idn_1_per_dday_ev2");
    }
}
