//! Stored first answers of idempotent creates. The body is sealed by the server (it may hold
//! a secret key); the idempotency key itself is stored only as a hash.

use chrono::{DateTime, Utc};
use keyward_core::clock::to_ms;

use crate::tx::Tx;
use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IdempotencyRecord {
    pub workspace_id: String,
    pub key_hash: String,
    /// Hash of the request body: a retry with another body is a conflict, not a replay.
    pub request_hash: String,
    pub status: i64,
    pub sealed_body: String,
    pub created_at: i64,
}

#[derive(Debug)]
pub enum InsertOutcome {
    Created,
    Replayed(IdempotencyRecord),
}

/// `false` when a record with this key already exists.
pub(crate) async fn insert_idempotency(tx: &mut Tx, r: &IdempotencyRecord) -> Result<bool, StoreError> {
    let res = sqlx::query(
        "INSERT INTO idempotency (workspace_id, key_hash, request_hash, status, sealed_body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace_id, key_hash) DO NOTHING",
    )
    .bind(&r.workspace_id)
    .bind(&r.key_hash)
    .bind(&r.request_hash)
    .bind(r.status)
    .bind(&r.sealed_body)
    .bind(r.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(res.rows_affected() == 1)
}

impl Store {
    pub async fn idempotency(
        &self,
        workspace_id: &str,
        key_hash: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT workspace_id, key_hash, request_hash, status, sealed_body, created_at FROM idempotency \
             WHERE workspace_id = $1 AND key_hash = $2",
        )
        .bind(workspace_id)
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Forgets idempotency records older than `before` (they are kept 24 hours).
    pub async fn prune_idempotency(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
            .bind(to_ms(before))
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
