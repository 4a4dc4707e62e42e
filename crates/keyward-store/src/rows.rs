//! Conversions between rows and domain records.

use keyward_core::clock::{from_ms, to_ms};
use keyward_core::model::{KeyKind, KeyLeak, KeyRecord, KeyStatus, KeyType};
use keyward_core::ratelimit::KeyCredits;
use sqlx::any::AnyRow;
use sqlx::FromRow;

use crate::StoreError;

pub(crate) const KEY_COLUMNS: &str = "id, workspace_id, name, kind, algorithm, public_key, key_type, environment, \
     status, hash, start, roles, permissions, scopes, ip_allowlist, meta, callback_url, expires_at, \
     created_at, updated_at, created_by, last_used_at, last_used_ip, revoked_at, approval_id, grants, \
     service_account_id, ratelimits, credits_refill, credits_remaining, credits_period, credits_set_at, disabled_at, \
     identity_id, external_id, leaked_at, leak_source, leak_url, replaced_by, rotated_from";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable {what} in api_keys row"))
}

fn list(s: &str, col: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|_| corrupt(col))
}

/// An `api_keys` row as stored ([`KEY_COLUMNS`]): text, integers (times in milliseconds)
/// and JSON text, the types sqlx's `Any` driver decodes on both backends. [`key_from_row`]
/// makes it a [`KeyRecord`].
#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    id: String,
    workspace_id: String,
    name: String,
    kind: String,
    algorithm: Option<String>,
    public_key: Option<String>,
    key_type: Option<String>,
    environment: String,
    status: String,
    hash: Option<String>,
    start: String,
    roles: String,
    permissions: String,
    scopes: String,
    ip_allowlist: String,
    meta: String,
    callback_url: Option<String>,
    expires_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    created_by: Option<String>,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
    revoked_at: Option<i64>,
    approval_id: Option<String>,
    grants: String,
    service_account_id: Option<String>,
    ratelimits: String,
    credits_refill: Option<String>,
    credits_remaining: Option<i64>,
    credits_period: Option<i64>,
    credits_set_at: Option<i64>,
    disabled_at: Option<i64>,
    identity_id: Option<String>,
    external_id: Option<String>,
    leaked_at: Option<i64>,
    leak_source: Option<String>,
    leak_url: Option<String>,
    replaced_by: Option<String>,
    rotated_from: Option<String>,
}

pub(crate) fn key_from_row(row: &AnyRow) -> Result<KeyRecord, StoreError> {
    KeyRow::from_row(row)?.record()
}

impl KeyRow {
    fn record(self) -> Result<KeyRecord, StoreError> {
        let credits = self.credits()?;
        Ok(KeyRecord {
            kind: KeyKind::parse(&self.kind).ok_or_else(|| corrupt("kind"))?,
            key_type: self
                .key_type
                .as_deref()
                .map(|t| KeyType::parse(t).ok_or_else(|| corrupt("key_type")))
                .transpose()?,
            status: KeyStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            roles: list(&self.roles, "roles")?,
            permissions: list(&self.permissions, "permissions")?,
            scopes: list(&self.scopes, "scopes")?,
            ip_allowlist: list(&self.ip_allowlist, "ip_allowlist")?,
            meta: serde_json::from_str(&self.meta).map_err(|_| corrupt("meta"))?,
            grants: serde_json::from_str(&self.grants).map_err(|_| corrupt("grants"))?,
            ratelimits: serde_json::from_str(&self.ratelimits).map_err(|_| corrupt("ratelimits"))?,
            expires_at: self.expires_at.map(from_ms),
            created_at: from_ms(self.created_at),
            updated_at: from_ms(self.updated_at),
            last_used_at: self.last_used_at.map(from_ms),
            revoked_at: self.revoked_at.map(from_ms),
            disabled_at: self.disabled_at.map(from_ms),
            credits,
            id: self.id,
            workspace_id: self.workspace_id,
            name: self.name,
            algorithm: self.algorithm,
            public_key: self.public_key,
            environment: self.environment,
            hash: self.hash,
            start: self.start,
            callback_url: self.callback_url,
            created_by: self.created_by,
            last_used_ip: self.last_used_ip,
            approval_id: self.approval_id,
            service_account_id: self.service_account_id,
            identity_id: self.identity_id,
            external_id: self.external_id,
            rotated_to: self.replaced_by,
            rotated_from: self.rotated_from,
            leak: self.leaked_at.map(|at| KeyLeak {
                at: from_ms(at),
                source: self.leak_source.unwrap_or_default(),
                url: self.leak_url,
            }),
        })
    }

    fn credits(&self) -> Result<Option<KeyCredits>, StoreError> {
        let Some(remaining) = self.credits_remaining else { return Ok(None) };
        Ok(Some(KeyCredits {
            remaining: u64::try_from(remaining).unwrap_or(0),
            refill: self
                .credits_refill
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| corrupt("credits_refill"))?,
            period: self.credits_period.unwrap_or(0),
            set_at: from_ms(self.credits_set_at.unwrap_or(0)),
        }))
    }
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
