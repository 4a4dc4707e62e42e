//! Workspace policies, stored as one JSON document per workspace (absent: the default).

use chrono::{DateTime, Utc};
use keyward_core::clock::to_ms;
use keyward_core::policy::Policy;

use crate::tx::Tx;
use crate::{Store, StoreError};

/// A stored policy document (absent: the default).
pub(crate) fn policy_from(body: Option<String>) -> Result<Policy, StoreError> {
    match body {
        None => Ok(Policy::default()),
        Some(b) => serde_json::from_str(&b).map_err(|_| StoreError::Internal("unreadable policy row".into())),
    }
}

impl Store {
    pub async fn policy(&self, workspace_id: &str) -> Result<Policy, StoreError> {
        let body = sqlx::query_scalar("SELECT body FROM policies WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_optional(&self.pool)
            .await?;
        policy_from(body)
    }

    pub async fn put_policy(
        &self,
        workspace_id: &str,
        p: &Policy,
        now: DateTime<Utc>,
        audit: &crate::AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        write_policy(&mut tx, workspace_id, p, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The policy in force, read inside `tx`.
pub(crate) async fn read_policy(tx: &mut Tx, workspace_id: &str) -> Result<Policy, StoreError> {
    let body = sqlx::query_scalar("SELECT body FROM policies WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_optional(&mut **tx)
        .await?;
    policy_from(body)
}

pub(crate) async fn write_policy(
    tx: &mut Tx,
    workspace_id: &str,
    p: &Policy,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let body = serde_json::to_string(p).map_err(|e| StoreError::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO policies (workspace_id, body, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (workspace_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
    )
    .bind(workspace_id)
    .bind(body)
    .bind(to_ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
