//! Workspaces, members and management keys.

use keyward_core::clock::to_ms;
use sqlx::Row;

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
}

/// Who is calling the management API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub workspace_id: String,
    pub member_id: String,
    pub role: String,
    pub prefix: String,
    pub hash: String,
}

impl Store {
    /// Has `init` already run on this database?
    pub async fn is_initialised(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM workspaces").fetch_one(&self.pool).await?.try_get("n")?;
        Ok(n > 0)
    }

    /// Creates the first workspace, its owner and the owner's management key, in one
    /// transaction; refuses when a workspace already exists.
    pub async fn init_workspace(&self, ws: &NewWorkspace, key: &NewManagementKey) -> Result<(), StoreError> {
        self.add_workspace(ws, key, true).await
    }

    /// Creates one more workspace with its owner and the owner's management key.
    pub async fn create_workspace(&self, ws: &NewWorkspace, key: &NewManagementKey) -> Result<(), StoreError> {
        self.add_workspace(ws, key, false).await
    }

    async fn add_workspace(&self, ws: &NewWorkspace, key: &NewManagementKey, first: bool) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = to_ms(ws.created_at);
        if first && self.backend == crate::Backend::Postgres {
            // Two nodes starting on an empty database must not both initialise it.
            sqlx::query("LOCK TABLE workspaces IN EXCLUSIVE MODE").execute(&mut *tx).await?;
        }
        // On SQLite, writing first takes the write lock, so two racing inits cannot both pass.
        sqlx::query("INSERT INTO workspaces (id, name, prefix, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&ws.id)
            .bind(&ws.name)
            .bind(&ws.prefix)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM workspaces").fetch_one(&mut *tx).await?.try_get("n")?;
        if first && n > 1 {
            tx.rollback().await?;
            return Err(StoreError::AlreadyInitialised);
        }
        sqlx::query("INSERT INTO members (id, workspace_id, email, role, created_at) VALUES ($1, $2, $3, 'owner', $4)")
            .bind(&ws.owner_id)
            .bind(&ws.id)
            .bind(&ws.owner_email)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO management_keys (id, workspace_id, member_id, hash, start, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&ws.id)
        .bind(&ws.owner_id)
        .bind(&key.hash)
        .bind(&key.start)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The principal behind a management key hash, if the key exists and is not revoked.
    pub async fn principal_by_hash(&self, hash: &str) -> Result<Option<Principal>, StoreError> {
        let row = sqlx::query(
            "SELECT mk.workspace_id, mk.member_id, mk.hash, m.role, w.prefix FROM management_keys mk \
             JOIN members m ON m.id = mk.member_id JOIN workspaces w ON w.id = mk.workspace_id \
             WHERE mk.hash = $1 AND mk.revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Principal {
                workspace_id: r.try_get("workspace_id")?,
                member_id: r.try_get("member_id")?,
                role: r.try_get("role")?,
                prefix: r.try_get("prefix")?,
                hash: r.try_get("hash")?,
            })
        })
        .transpose()
    }
}
