//! Identities (docs/IDENTITIES.md): one row each, found by id or by `external_id` within a
//! workspace. Every change emits `idn:<id>`, so every node drops the cached keys of the
//! identity (their shared limits, credits and meta are cached with them); deleting one
//! clears it from its keys in the same transaction.

use chrono::{DateTime, Utc};
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::identity::{IdentityChanges, IdentityRecord, ID_PREFIX};
use keyward_core::ratelimit::KeyCredits;

use crate::events::emit;
use crate::rows::{credit_columns, json_limits};
use crate::tx::Tx;
use crate::{Store, StoreError};

/// How change events name an identity: `idn:` and its id.
pub const IDENTITY_EVENT_PREFIX: &str = "idn:";

pub fn identity_event(id: &str) -> String {
    format!("{IDENTITY_EVENT_PREFIX}{id}")
}

const COLUMNS: &str = "id, workspace_id, external_id, meta, ratelimits, credits_refill, credits_remaining, \
     credits_period, credits_set_at, created_at, updated_at";

/// An `identities` row as stored ([`COLUMNS`]).
#[derive(sqlx::FromRow)]
struct IdentityRow {
    id: String,
    workspace_id: String,
    external_id: String,
    meta: String,
    ratelimits: String,
    credits_refill: Option<String>,
    credits_remaining: Option<i64>,
    credits_period: Option<i64>,
    credits_set_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable {what} in identities row"))
}

impl IdentityRow {
    fn record(self) -> Result<IdentityRecord, StoreError> {
        let credits = match self.credits_remaining {
            None => None,
            Some(remaining) => Some(KeyCredits {
                remaining: u64::try_from(remaining).unwrap_or(0),
                refill: self
                    .credits_refill
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|_| corrupt("credits_refill"))?,
                period: self.credits_period.unwrap_or(0),
                set_at: from_ms(self.credits_set_at.unwrap_or(0)),
            }),
        };
        Ok(IdentityRecord {
            meta: serde_json::from_str(&self.meta).map_err(|_| corrupt("meta"))?,
            ratelimits: serde_json::from_str(&self.ratelimits).map_err(|_| corrupt("ratelimits"))?,
            credits,
            created_at: from_ms(self.created_at),
            updated_at: from_ms(self.updated_at),
            id: self.id,
            workspace_id: self.workspace_id,
            external_id: self.external_id,
        })
    }
}

async fn insert(tx: &mut Tx, i: &IdentityRecord, on_conflict_nothing: bool) -> Result<u64, StoreError> {
    let (refill, remaining, period, set_at) = credit_columns(i.credits.as_ref());
    let tail = if on_conflict_nothing { " ON CONFLICT (workspace_id, external_id) DO NOTHING" } else { "" };
    let sql = format!("INSERT INTO identities ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11){tail}");
    let done = sqlx::query(&sql)
        .bind(&i.id)
        .bind(&i.workspace_id)
        .bind(&i.external_id)
        .bind(serde_json::Value::Object(i.meta.clone()).to_string())
        .bind(json_limits(&i.ratelimits))
        .bind(refill)
        .bind(remaining)
        .bind(period)
        .bind(set_at)
        .bind(to_ms(i.created_at))
        .bind(to_ms(i.updated_at))
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

/// The id of `workspace_id`'s identity with `external_id`, created (bare) inside `tx` when
/// there is none: a key naming an unknown `external_id` makes it, as Unkey does. Its id is
/// derived from the workspace, the external id and the time (no randomness is at hand here).
pub(crate) async fn ensure_identity(
    tx: &mut Tx,
    workspace_id: &str,
    external_id: &str,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let seed = format!("{workspace_id}\0{external_id}");
    let id = keyward_core::ids::derived_id(ID_PREFIX, now, seed.as_bytes());
    insert(tx, &IdentityRecord::bare(id, workspace_id, external_id, now), true).await?;
    Ok(sqlx::query_scalar("SELECT id FROM identities WHERE workspace_id = $1 AND external_id = $2")
        .bind(workspace_id)
        .bind(external_id)
        .fetch_one(&mut **tx)
        .await?)
}

/// Filters of `GET /v1/identities`.
#[derive(Debug, Clone, Default)]
pub struct IdentityFilter {
    pub external_id: Option<String>,
    /// The last id of the previous page; pages run newest first.
    pub cursor: Option<String>,
    pub limit: u32,
}

impl Store {
    /// Stores a new identity; [`crate::Conflict::ExternalIdTaken`] when the workspace has
    /// one with its `external_id`.
    pub async fn insert_identity(&self, i: &IdentityRecord, audit: &crate::AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.audited(&i.workspace_id, audit, i.created_at).await?;
        if insert(&mut tx, i, true).await? == 0 {
            tx.rollback().await?;
            return Err(StoreError::Conflict(crate::Conflict::ExternalIdTaken));
        }
        emit(&mut tx, &identity_event(&i.id), i.created_at).await?;
        tx.commit().await
    }

    /// `workspace_id`'s identity whose id, or else whose `external_id`, is `id_or_external`.
    pub async fn get_identity(
        &self,
        workspace_id: &str,
        id_or_external: &str,
    ) -> Result<Option<IdentityRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM identities WHERE workspace_id = $1 AND (id = $2 OR external_id = $2) \
             ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1"
        );
        let row = sqlx::query_as::<_, IdentityRow>(&sql)
            .bind(workspace_id)
            .bind(id_or_external)
            .fetch_optional(&self.pool)
            .await?;
        row.map(IdentityRow::record).transpose()
    }

    /// One page, newest first; `limit + 1` rows at most so the caller can tell whether
    /// another page follows.
    pub async fn list_identities(
        &self,
        workspace_id: &str,
        f: &IdentityFilter,
    ) -> Result<Vec<IdentityRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM identities WHERE workspace_id = $1 \
             AND ($2 = '' OR external_id = $2) AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4"
        );
        let rows = sqlx::query_as::<_, IdentityRow>(&sql)
            .bind(workspace_id)
            .bind(f.external_id.as_deref().unwrap_or_default())
            .bind(f.cursor.as_deref().unwrap_or_default())
            .bind(i64::from(f.limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(IdentityRow::record).collect()
    }

    /// Applies a checked patch; `Ok(None)` when no such identity. New credits always get a
    /// later `credits_set_at` than the ones they replace: nodes restart their counts on it.
    pub async fn update_identity(
        &self,
        workspace_id: &str,
        id: &str,
        c: &IdentityChanges,
        now: DateTime<Utc>,
        audit: &crate::AuditRecord,
    ) -> Result<Option<IdentityRecord>, StoreError> {
        let (refill, remaining, period, set_at) = credit_columns(c.credits.flatten().as_ref());
        let sql = format!(
            "UPDATE identities SET meta = COALESCE($1, meta), ratelimits = COALESCE($2, ratelimits), \
             credits_refill = CASE WHEN $3 = 1 THEN $4 ELSE credits_refill END, \
             credits_remaining = CASE WHEN $3 = 1 THEN $5 ELSE credits_remaining END, \
             credits_period = CASE WHEN $3 = 1 THEN $6 ELSE credits_period END, \
             credits_set_at = CASE WHEN $3 = 1 THEN \
               (CASE WHEN credits_set_at IS NOT NULL AND credits_set_at >= $7 THEN credits_set_at + 1 ELSE $7 END) \
               ELSE credits_set_at END, \
             updated_at = $8 WHERE workspace_id = $9 AND id = $10 RETURNING {COLUMNS}"
        );
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let row = sqlx::query_as::<_, IdentityRow>(&sql)
            .bind(c.meta.clone().map(|m| serde_json::Value::Object(m).to_string()))
            .bind(c.ratelimits.as_deref().map(json_limits))
            .bind(i64::from(c.credits.is_some()))
            .bind(refill)
            .bind(remaining)
            .bind(period)
            .bind(set_at)
            .bind(to_ms(now))
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        emit(&mut tx, &identity_event(id), now).await?;
        tx.commit().await?;
        row.record().map(Some)
    }

    /// Deletes an identity; its keys keep working without it (their `identity_id` and
    /// `external_id` cleared, as Unkey does). `Ok(None)` when no such identity.
    pub async fn delete_identity(
        &self,
        workspace_id: &str,
        id: &str,
        now: DateTime<Utc>,
        audit: &crate::AuditRecord,
    ) -> Result<Option<IdentityRecord>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let sql = format!("DELETE FROM identities WHERE workspace_id = $1 AND id = $2 RETURNING {COLUMNS}");
        let row = sqlx::query_as::<_, IdentityRow>(&sql).bind(workspace_id).bind(id).fetch_optional(&mut **tx).await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let keys = sqlx::query(
            "UPDATE api_keys SET identity_id = NULL, external_id = NULL, updated_at = $1 \
             WHERE workspace_id = $2 AND identity_id = $3",
        )
        .bind(to_ms(now))
        .bind(workspace_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        tx.changes(serde_json::json!({"keys_detached": keys}));
        // One event for all its keys: each node drops the cached keys of the identity.
        emit(&mut tx, &identity_event(id), now).await?;
        tx.commit().await?;
        row.record().map(Some)
    }

    /// An identity by id alone (the verify path's read, with its key).
    pub async fn identity_by_id(&self, id: &str) -> Result<Option<IdentityRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM identities WHERE id = $1");
        let row = sqlx::query_as::<_, IdentityRow>(&sql).bind(id).fetch_optional(&self.pool).await?;
        row.map(IdentityRow::record).transpose()
    }

    /// The id of `workspace_id`'s identity with `external_id`, if any.
    pub async fn identity_id_of(&self, workspace_id: &str, external_id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM identities WHERE workspace_id = $1 AND external_id = $2")
            .bind(workspace_id)
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await?)
    }
}
