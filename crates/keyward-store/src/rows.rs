//! Conversions between rows and domain records.

use keyward_core::clock::{from_ms, to_ms};
use keyward_core::model::{KeyKind, KeyRecord, KeyStatus, KeyType};
use keyward_core::ratelimit::KeyCredits;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::StoreError;

pub(crate) const KEY_COLUMNS: &str = "id, workspace_id, name, kind, algorithm, public_key, key_type, environment, \
     status, hash, start, roles, permissions, scopes, ip_allowlist, meta, callback_url, expires_at, \
     created_at, updated_at, created_by, last_used_at, last_used_ip, revoked_at, approval_id, grants, \
     service_account_id, ratelimits, credits_refill, credits_remaining, credits_period, credits_set_at";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable {what} in api_keys row"))
}

fn list(row: &AnyRow, col: &str) -> Result<Vec<String>, StoreError> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|_| corrupt(col))
}

fn time(row: &AnyRow, col: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_ms))
}

pub(crate) fn key_from_row(row: &AnyRow) -> Result<KeyRecord, StoreError> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let key_type: Option<String> = row.try_get("key_type")?;
    let meta: String = row.try_get("meta")?;
    Ok(KeyRecord {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        name: row.try_get("name")?,
        kind: KeyKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
        algorithm: row.try_get("algorithm")?,
        public_key: row.try_get("public_key")?,
        key_type: key_type.as_deref().map(|t| KeyType::parse(t).ok_or_else(|| corrupt("key_type"))).transpose()?,
        environment: row.try_get("environment")?,
        status: KeyStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        hash: row.try_get("hash")?,
        start: row.try_get("start")?,
        roles: list(row, "roles")?,
        permissions: list(row, "permissions")?,
        scopes: list(row, "scopes")?,
        ip_allowlist: list(row, "ip_allowlist")?,
        meta: serde_json::from_str(&meta).map_err(|_| corrupt("meta"))?,
        callback_url: row.try_get("callback_url")?,
        expires_at: time(row, "expires_at")?,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
        created_by: row.try_get("created_by")?,
        last_used_at: time(row, "last_used_at")?,
        last_used_ip: row.try_get("last_used_ip")?,
        revoked_at: time(row, "revoked_at")?,
        approval_id: row.try_get("approval_id")?,
        grants: serde_json::from_str(&row.try_get::<String, _>("grants")?).map_err(|_| corrupt("grants"))?,
        service_account_id: row.try_get("service_account_id")?,
        ratelimits: serde_json::from_str(&row.try_get::<String, _>("ratelimits")?)
            .map_err(|_| corrupt("ratelimits"))?,
        credits: credits(row)?,
    })
}

fn credits(row: &AnyRow) -> Result<Option<KeyCredits>, StoreError> {
    let Some(remaining) = row.try_get::<Option<i64>, _>("credits_remaining")? else { return Ok(None) };
    let refill: Option<String> = row.try_get("credits_refill")?;
    Ok(Some(KeyCredits {
        remaining: u64::try_from(remaining).unwrap_or(0),
        refill: refill.map(|r| serde_json::from_str(&r)).transpose().map_err(|_| corrupt("credits_refill"))?,
        period: row.try_get::<Option<i64>, _>("credits_period")?.unwrap_or(0),
        set_at: from_ms(row.try_get::<Option<i64>, _>("credits_set_at")?.unwrap_or(0)),
    }))
}

/// The credit columns of a record: refill, remaining, period, set_at (all NULL without).
pub(crate) type CreditColumns = (Option<String>, Option<i64>, Option<i64>, Option<i64>);

pub(crate) fn credit_columns(c: Option<&KeyCredits>) -> CreditColumns {
    match c {
        None => (None, None, None, None),
        Some(c) => (
            c.refill.map(|r| serde_json::to_string(&r).unwrap_or_default()),
            Some(i64::try_from(c.remaining).unwrap_or(i64::MAX)),
            Some(c.period),
            Some(to_ms(c.set_at)),
        ),
    }
}

pub(crate) fn json_limits(v: &[keyward_core::ratelimit::RateLimit]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn json_grants(v: &[keyward_core::authority::KeyGrant]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn opt_ms(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<i64> {
    t.map(to_ms)
}
