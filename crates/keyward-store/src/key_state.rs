//! Changes of one key's stored state, used by direct changes (`keys.rs`) and by approval
//! requests when they are applied or undone (`approvals.rs`): each runs inside the caller's
//! transaction, which also records the change events.

use chrono::{DateTime, Utc};
use keyward_core::clock::to_ms;
use keyward_core::model::{KeyRecord, KeyStatus};
use keyward_core::validate::KeyChanges;

use crate::events::emit;
use crate::rows::{credit_columns, json_grants, json_limits, json_list, key_from_row, opt_ms, KEY_COLUMNS};
use crate::tx::Tx;
use crate::{Conflict, StoreError};

/// The cache key under which verification finds a record: the secret's hash.
/// What change events name a key by: its secret's hash, or `pk:` and its public key.
pub fn cache_key(rec: &KeyRecord) -> Option<String> {
    match (&rec.hash, &rec.public_key) {
        (Some(h), _) => Some(h.clone()),
        (None, Some(pk)) => Some(format!("{PUBLIC_KEY_EVENT_PREFIX}{pk}")),
        (None, None) => None,
    }
}

pub const PUBLIC_KEY_EVENT_PREFIX: &str = "pk:";

pub(crate) async fn insert_row(tx: &mut Tx, rec: &KeyRecord) -> Result<(), StoreError> {
    let (refill, remaining, period, set_at) = credit_columns(rec.credits.as_ref());
    let sql = format!(
        "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40)"
    );
    sqlx::query(&sql)
        .bind(&rec.id)
        .bind(&rec.workspace_id)
        .bind(&rec.name)
        .bind(rec.kind.as_str())
        .bind(&rec.algorithm)
        .bind(&rec.public_key)
        .bind(rec.key_type.map(|t| t.as_str()))
        .bind(&rec.environment)
        .bind(rec.status.as_str())
        .bind(&rec.hash)
        .bind(&rec.start)
        .bind(json_list(&rec.roles))
        .bind(json_list(&rec.permissions))
        .bind(json_list(&rec.scopes))
        .bind(json_list(&rec.ip_allowlist))
        .bind(serde_json::Value::Object(rec.meta.clone()).to_string())
        .bind(&rec.callback_url)
        .bind(opt_ms(rec.expires_at))
        .bind(to_ms(rec.created_at))
        .bind(to_ms(rec.updated_at))
        .bind(&rec.created_by)
        .bind(opt_ms(rec.last_used_at))
        .bind(&rec.last_used_ip)
        .bind(opt_ms(rec.revoked_at))
        .bind(&rec.approval_id)
        .bind(json_grants(&rec.grants))
        .bind(&rec.service_account_id)
        .bind(json_limits(&rec.ratelimits))
        .bind(refill)
        .bind(remaining)
        .bind(period)
        .bind(set_at)
        .bind(opt_ms(rec.disabled_at))
        .bind(&rec.identity_id)
        .bind(&rec.external_id)
        .bind(rec.leak.as_ref().map(|l| to_ms(l.at)))
        .bind(rec.leak.as_ref().map(|l| l.source.clone()))
        .bind(rec.leak.as_ref().and_then(|l| l.url.clone()))
        .bind(&rec.rotated_to)
        .bind(&rec.rotated_from)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Writes a patch inside `tx`. New credits always get a later `credits_set_at` than the
/// ones they replace (even within one millisecond): nodes restart their counts on it. Without `approval_id` it changes an active key; with one, the
/// key waiting on that request, which becomes active again. Disabling a disabled key keeps
/// the time it was first disabled.
pub(crate) async fn apply_changes(
    tx: &mut Tx,
    workspace_id: &str,
    id: &str,
    c: &KeyChanges,
    now: DateTime<Utc>,
    approval_id: Option<&str>,
) -> Result<Option<KeyRecord>, StoreError> {
    let (refill, remaining, period, set_at) = credit_columns(c.credits.flatten().as_ref());
    // Moving the key to an identity creates the identity when it is unknown, in this
    // transaction (as Unkey does).
    let identity = match &c.external_id {
        Some(Some(x)) => Some(Some(crate::identities::ensure_identity(tx, workspace_id, x, now).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let cond = if approval_id.is_some() {
        "status = 'pending_update' AND approval_id = $23"
    } else {
        "status = 'active' AND CAST($23 AS TEXT) IS NULL"
    };
    let sql = format!(
        "UPDATE api_keys SET name = COALESCE($1, name), roles = COALESCE($2, roles), \
         permissions = COALESCE($3, permissions), scopes = COALESCE($4, scopes), \
         ip_allowlist = COALESCE($5, ip_allowlist), meta = COALESCE($6, meta), \
         expires_at = CASE WHEN $7 = 1 THEN $8 ELSE expires_at END, \
         callback_url = CASE WHEN $9 = 1 THEN $10 ELSE callback_url END, updated_at = $11, \
         status = 'active', approval_id = NULL, grants = COALESCE($14, grants), \
         ratelimits = COALESCE($15, ratelimits), \
         credits_refill = CASE WHEN $16 = 1 THEN $17 ELSE credits_refill END, \
         credits_remaining = CASE WHEN $16 = 1 THEN $18 ELSE credits_remaining END, \
         credits_period = CASE WHEN $16 = 1 THEN $19 ELSE credits_period END, \
         credits_set_at = CASE WHEN $16 = 1 THEN \
           (CASE WHEN credits_set_at IS NOT NULL AND credits_set_at >= $20 THEN credits_set_at + 1 ELSE $20 END) \
           ELSE credits_set_at END, \
         disabled_at = CASE WHEN $21 = 0 THEN disabled_at WHEN $22 = 1 THEN NULL ELSE COALESCE(disabled_at, $11) END, \
         identity_id = CASE WHEN $24 = 1 THEN $25 ELSE identity_id END, \
         external_id = CASE WHEN $24 = 1 THEN $26 ELSE external_id END \
         WHERE workspace_id = $12 AND id = $13 AND {cond} RETURNING {KEY_COLUMNS}"
    );
    let q = sqlx::query(&sql)
        .bind(c.name.clone())
        .bind(c.roles.as_deref().map(json_list))
        .bind(c.permissions.as_deref().map(json_list))
        .bind(c.scopes.as_deref().map(json_list))
        .bind(c.ip_allowlist.as_deref().map(json_list))
        .bind(c.meta.clone().map(|m| serde_json::Value::Object(m).to_string()))
        .bind(i64::from(c.expires_at.is_some()))
        .bind(c.expires_at.flatten().map(to_ms))
        .bind(i64::from(c.callback_url.is_some()))
        .bind(c.callback_url.clone().flatten())
        .bind(to_ms(now))
        .bind(workspace_id)
        .bind(id)
        .bind(c.grants.as_deref().map(json_grants))
        .bind(c.ratelimits.as_deref().map(json_limits))
        .bind(i64::from(c.credits.is_some()))
        .bind(refill)
        .bind(remaining)
        .bind(period)
        .bind(set_at)
        .bind(i64::from(c.enabled.is_some()))
        .bind(i64::from(c.enabled.unwrap_or(true)))
        // $23 is the approval's id (bound last, or NULL): the numbering stays fixed.
        .bind(approval_id)
        .bind(i64::from(identity.is_some()))
        .bind(identity.clone().flatten())
        .bind(c.external_id.clone().flatten());
    let row = q.fetch_optional(&mut **tx).await?;
    row.as_ref().map(key_from_row).transpose()
}

/// Ends a rotated key: revoked at once (`grace_end` `None`) or expiring at `grace_end`.
pub(crate) async fn retire(
    tx: &mut Tx,
    id: &str,
    grace_end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<KeyRecord>, StoreError> {
    let sql = match grace_end {
        None => format!(
            "UPDATE api_keys SET status = 'revoked', revoked_at = $1, updated_at = $1 WHERE id = $2 \
             AND status NOT IN ('revoked', 'rejected') RETURNING {KEY_COLUMNS}"
        ),
        Some(_) => format!(
            "UPDATE api_keys SET expires_at = CASE WHEN expires_at IS NULL OR expires_at > $1 THEN $1 \
             ELSE expires_at END WHERE id = $2 RETURNING {KEY_COLUMNS}"
        ),
    };
    let row = sqlx::query(&sql).bind(to_ms(grace_end.unwrap_or(now))).bind(id).fetch_optional(&mut **tx).await?;
    row.as_ref().map(key_from_row).transpose()
}

/// Sets a key's status where it still waits on `approval_id`; returns the changed row.
pub(crate) async fn set_key_status(
    tx: &mut Tx,
    key_id: &str,
    approval_id: &str,
    status: KeyStatus,
    now: DateTime<Utc>,
) -> Result<Option<KeyRecord>, StoreError> {
    let revoked = if status == KeyStatus::Revoked { ", revoked_at = $2" } else { "" };
    let sql = format!(
        "UPDATE api_keys SET status = $1, approval_id = NULL, updated_at = $2{revoked} \
         WHERE id = $3 AND approval_id = $4 RETURNING {KEY_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(status.as_str())
        .bind(to_ms(now))
        .bind(key_id)
        .bind(approval_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(key_from_row).transpose()
}

/// Records a change event for each changed key, so every node drops its cached copy.
pub(crate) async fn emit_all(tx: &mut Tx, keys: &[KeyRecord], now: DateTime<Utc>) -> Result<(), StoreError> {
    for k in keys.iter().filter_map(cache_key) {
        emit(tx, &k, now).await?;
    }
    Ok(())
}

/// Why a key cannot be put under a (new) change now.
pub(crate) fn refusal(k: &KeyRecord, now: DateTime<Utc>) -> Conflict {
    match k.effective_status(now) {
        KeyStatus::PendingCreate | KeyStatus::PendingUpdate | KeyStatus::PendingRevoke => {
            Conflict::KeyPendingApproval(k.approval_id.clone())
        }
        s => Conflict::KeyStatus(s),
    }
}
