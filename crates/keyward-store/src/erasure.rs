//! Erasing a deleted workspace's data, in the background: batch after batch of a few
//! hundred rows, each its own short statement, so requests and other writers (SQLite's one
//! write lock) are never held up long. The workspace's row stays, marked erased, and so does
//! its audit chain's end: its last event becomes the checkpoint, named by one last
//! `audit.prune` event, so the chain still verifies from there and a forged continuation
//! of it is found. Safe to run twice, or on two nodes at once.

use chrono::{DateTime, Utc};
use keyward_core::clock::to_ms;
use keyward_core::operator_action::OperatorAction;
use serde_json::json;

use crate::operator_log::{write as log, OperatorRecord};
use crate::{Store, StoreError};

/// Rows one statement deletes at most.
const BATCH: u32 = 500;

/// Each table a workspace's data lives in, with which of its rows are the workspace's
/// (`$1`), in an order no foreign key refuses: children before the rows they name.
const TABLES: &[(&str, &str)] = &[
    // Apps: the tokens of installations in this workspace and of its own apps' installations
    // elsewhere (an erased developer's app is gone for every organisation), then the rest.
    ("app_access_tokens", "installation_id IN (SELECT id FROM app_installations WHERE workspace_id = $1 OR app_id IN (SELECT id FROM apps WHERE workspace_id = $1))"),
    ("app_refresh_tokens", "installation_id IN (SELECT id FROM app_installations WHERE workspace_id = $1 OR app_id IN (SELECT id FROM apps WHERE workspace_id = $1))"),
    ("app_token_families", "installation_id IN (SELECT id FROM app_installations WHERE workspace_id = $1 OR app_id IN (SELECT id FROM apps WHERE workspace_id = $1))"),
    ("app_installations", "workspace_id = $1 OR app_id IN (SELECT id FROM apps WHERE workspace_id = $1)"),
    ("app_assertion_ids", "app_id IN (SELECT id FROM apps WHERE workspace_id = $1)"),
    ("app_keys", "app_id IN (SELECT id FROM apps WHERE workspace_id = $1)"),
    ("apps", "workspace_id = $1"),
    ("app_signing_keys", "workspace_id = $1"),
    ("webhook_attempts", "delivery_id IN (SELECT id FROM webhook_deliveries WHERE workspace_id = $1)"),
    ("webhook_deliveries", "workspace_id = $1"),
    ("webhook_messages", "workspace_id = $1"),
    ("webhook_endpoints", "workspace_id = $1"),
    ("webhook_signing_keys", "workspace_id = $1"),
    ("approval_votes", "approval_id IN (SELECT id FROM approvals WHERE workspace_id = $1)"),
    ("approvals", "workspace_id = $1"),
    ("key_imports", "workspace_id = $1"),
    ("key_ips", "workspace_id = $1"),
    ("alerts", "workspace_id = $1"),
    ("usage_counts", "workspace_id = $1"),
    ("usage_tag_counts", "workspace_id = $1"),
    ("api_keys", "workspace_id = $1"),
    ("identities", "workspace_id = $1"),
    ("service_accounts", "workspace_id = $1"),
    ("roles", "workspace_id = $1"),
    ("ratelimit_overrides", "workspace_id = $1"),
    ("verify_tokens", "workspace_id = $1"),
    ("policies", "workspace_id = $1"),
    ("idempotency", "workspace_id = $1"),
    ("recovery_codes", "member_id IN (SELECT id FROM members WHERE workspace_id = $1)"),
    ("sessions", "workspace_id = $1"),
    ("management_keys", "workspace_id = $1"),
    ("members", "workspace_id = $1"),
    // Up to the checkpoint only: the event that names it stays.
    ("audit_events", "workspace_id = $1 AND seq <= (SELECT c.seq FROM audit_checkpoints c WHERE c.workspace_id = $1)"),
];

impl Store {
    /// Workspaces deleted before `deleted_before` whose data is not erased yet (a node that
    /// stopped mid-erasure leaves one for the next sweep).
    pub async fn workspaces_to_erase(&self, deleted_before: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM workspaces WHERE deleted_at < $1 AND erased_at IS NULL ORDER BY id")
            .bind(to_ms(deleted_before))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Erases deleted workspace `id`'s data, then marks it erased with a line in the
    /// operator log (`log_id` names it). Returns how many rows went. A workspace not deleted
    /// is left alone.
    pub async fn erase_workspace(&self, id: &str, log_id: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let deleted: Option<Option<i64>> = sqlx::query_scalar("SELECT deleted_at FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        if !matches!(deleted, Some(Some(_))) {
            return Ok(0);
        }
        // The chain's end becomes its checkpoint before its events go: it verifies from
        // there on, at every step of the erasure.
        self.checkpoint_for_erasure(id, now).await?;
        let rowid = self.dialect.row_id();
        let mut erased = 0;
        for (table, whose) in TABLES {
            let sql = format!(
                "DELETE FROM {table} WHERE {rowid} IN (SELECT {rowid} FROM {table} WHERE {whose} LIMIT {BATCH})"
            );
            loop {
                let n = sqlx::query(&sql).bind(id).execute(&self.pool).await?.rows_affected();
                erased += n;
                if n == 0 {
                    break;
                }
                // Others' statements run between batches.
                tokio::task::yield_now().await;
            }
        }
        let mut tx = self.begin().await?;
        let marked = sqlx::query("UPDATE workspaces SET erased_at = $1 WHERE id = $2 AND erased_at IS NULL")
            .bind(to_ms(now))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if marked > 0 {
            let rec = OperatorRecord {
                id: log_id.to_string(),
                actor: keyward_core::audit::AuditActor { kind: "system".into(), id: None, name: None },
                action: OperatorAction::WorkspaceErased,
                workspace_id: Some(id.to_string()),
                changes: json!({"rows": erased}),
                origin: Default::default(),
            };
            log(&mut tx, &rec, now).await?;
        }
        tx.commit().await?;
        Ok(erased)
    }
}
