//! Workspaces, members and management keys.

use crate::audit::AuditRecord;
use keyward_core::audit::AuditTarget;
use keyward_core::audit_action::AuditAction;
use keyward_core::clock::to_ms;

use crate::operator_log::OperatorRecord;
use crate::operator_tokens::NewOperatorToken;
use crate::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct NewWorkspace {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub owner_id: String,
    pub owner_email: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
pub struct NewManagementKey {
    pub id: String,
    pub hash: String,
    pub start: String,
    pub name: String,
}

impl Store {
    /// Has `init` already run on this database?
    pub async fn is_initialised(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) AS n FROM workspaces").fetch_one(&self.pool).await?;
        Ok(n > 0)
    }

    /// A workspace's key prefix, if there is such a workspace.
    pub async fn workspace_prefix(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT prefix FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Creates the first workspace, its owner and the owner's management key, and the first
    /// operator token (`rec` its line in the operator log), in one transaction; refuses when
    /// a workspace already exists.
    pub async fn init_workspace(
        &self,
        ws: &NewWorkspace,
        key: &NewManagementKey,
        operator: &NewOperatorToken,
        rec: &OperatorRecord,
    ) -> Result<(), StoreError> {
        self.add_workspace(ws, key, Some((operator, rec))).await
    }

    /// Creates one more workspace with its owner and the owner's management key.
    pub async fn create_workspace(&self, ws: &NewWorkspace, key: &NewManagementKey) -> Result<(), StoreError> {
        self.add_workspace(ws, key, None).await
    }

    async fn add_workspace(
        &self,
        ws: &NewWorkspace,
        key: &NewManagementKey,
        operator: Option<(&NewOperatorToken, &OperatorRecord)>,
    ) -> Result<(), StoreError> {
        let first = operator.is_some();
        // Made at the server's console (`init`, `workspaces create`), not through the API.
        let target = AuditTarget { kind: "workspace".into(), id: Some(ws.id.clone()), name: Some(ws.name.clone()) };
        let what = serde_json::json!({"prefix": ws.prefix, "owner_id": ws.owner_id, "owner_email": ws.owner_email});
        let rec = AuditRecord::system(AuditAction::WorkspaceCreate, target, what);
        let mut tx = self.audited(&ws.id, &rec, ws.created_at).await?;
        let now = to_ms(ws.created_at);
        if first {
            // Two nodes starting on an empty database must not both initialise it.
            self.dialect.lock_workspaces(&mut tx).await?;
        }
        sqlx::query("INSERT INTO workspaces (id, name, prefix, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&ws.id)
            .bind(&ws.name)
            .bind(&ws.prefix)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) AS n FROM workspaces").fetch_one(&mut **tx).await?;
        if first && n > 1 {
            tx.rollback().await?;
            return Err(StoreError::AlreadyInitialised);
        }
        sqlx::query("INSERT INTO members (id, workspace_id, email, role, created_at) VALUES ($1, $2, $3, 'owner', $4)")
            .bind(&ws.owner_id)
            .bind(&ws.id)
            .bind(&ws.owner_email)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO management_keys (id, workspace_id, member_id, hash, start, created_at, name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(&ws.id)
        .bind(&ws.owner_id)
        .bind(&key.hash)
        .bind(&key.start)
        .bind(now)
        .bind(&key.name)
        .execute(&mut **tx)
        .await?;
        if let Some((token, rec)) = operator {
            crate::operator_tokens::insert(&mut tx, token).await?;
            crate::operator_log::write(&mut tx, rec, ws.created_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
