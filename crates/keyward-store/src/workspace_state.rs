//! A workspace's life under its operator: provisioned with an owner who sets a password
//! (the members' setup token), renamed, suspended and resumed, deleted. Each change is one
//! transaction with its event in the workspace's audit chain, its line in the operator log
//! and, when the standing changes, a change event (`ws:<id>`) so every node's cached keys
//! learn it (`server/cache/standings.rs`).

use chrono::{DateTime, Utc};
use keyward_core::audit::AuditTarget;
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::standing::Standing;
use keyward_core::wire::operators::WorkspaceKeyCounts;
use serde_json::json;

use crate::events::emit;
use crate::operator_log::{write as log, OperatorRecord};
use crate::tx::Tx;
use crate::workspaces::NewWorkspace;
use crate::{Conflict, Store, StoreError};

/// How change events name a workspace whose standing changed: `ws:` and its id.
pub const WORKSPACE_EVENT_PREFIX: &str = "ws:";

pub fn workspace_event(id: &str) -> String {
    format!("{WORKSPACE_EVENT_PREFIX}{id}")
}

/// A workspace as its operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub suspended_at: Option<DateTime<Utc>>,
    pub suspend_reason: Option<String>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub erased_at: Option<DateTime<Utc>>,
    pub keys: WorkspaceKeyCounts,
}

impl Workspace {
    pub fn standing(&self) -> Standing {
        Standing::of(self.suspended_at.is_some(), self.deleted_at.is_some())
    }
}

/// Which workspaces `GET /v1/workspaces` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandingFilter {
    Any,
    Only(Standing),
}

/// Keys that verify, or may once approved: the count a delete without `force` refuses on.
const LIVE: &str = "k.status IN ('active', 'pending_create', 'pending_update', 'pending_revoke') \
     AND (k.expires_at IS NULL OR k.expires_at > $1)";

/// `workspaces w` with its key counts; `$1` is the time keys expire against.
fn select() -> String {
    format!(
        "SELECT w.id, w.name, w.prefix, w.created_at, w.suspended_at, w.suspend_reason, w.deleted_at, w.erased_at, \
         (SELECT COUNT(*) FROM api_keys k WHERE k.workspace_id = w.id) AS total_keys, \
         (SELECT COUNT(*) FROM api_keys k WHERE k.workspace_id = w.id AND {LIVE}) AS live_keys \
         FROM workspaces w"
    )
}

#[derive(sqlx::FromRow)]
struct WorkspaceRow {
    id: String,
    name: String,
    prefix: String,
    created_at: i64,
    suspended_at: Option<i64>,
    suspend_reason: Option<String>,
    deleted_at: Option<i64>,
    erased_at: Option<i64>,
    total_keys: i64,
    live_keys: i64,
}

impl From<WorkspaceRow> for Workspace {
    fn from(r: WorkspaceRow) -> Workspace {
        Workspace {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            created_at: from_ms(r.created_at),
            suspended_at: r.suspended_at.map(from_ms),
            suspend_reason: r.suspend_reason,
            deleted_at: r.deleted_at.map(from_ms),
            erased_at: r.erased_at.map(from_ms),
            keys: WorkspaceKeyCounts {
                live: u64::try_from(r.live_keys).unwrap_or(0),
                total: u64::try_from(r.total_keys).unwrap_or(0),
            },
        }
    }
}

fn target(id: &str, name: Option<&str>) -> AuditTarget {
    AuditTarget { kind: "workspace".into(), id: Some(id.into()), name: name.map(str::to_string) }
}

/// The audit record of `rec` done to workspace `id`.
fn audit_of(rec: &OperatorRecord, id: &str) -> Result<crate::AuditRecord, StoreError> {
    rec.audit(target(id, None))
        .ok_or_else(|| StoreError::Config(format!("{} is not recorded in a workspace's chain", rec.action)))
}

/// The stored standing of `id` inside `tx` (`None`: no such workspace).
async fn standing_in(tx: &mut Tx, id: &str) -> Result<Option<Standing>, StoreError> {
    let row: Option<(Option<i64>, Option<i64>)> =
        sqlx::query_as("SELECT suspended_at, deleted_at FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|(s, d)| Standing::of(s.is_some(), d.is_some())))
}

/// Whether workspace `id` exists, refusing a deleted one (the caller's transaction rolls
/// back when it is dropped with the error).
async fn undeleted_in(tx: &mut Tx, id: &str) -> Result<bool, StoreError> {
    match standing_in(tx, id).await? {
        None => Ok(false),
        Some(Standing::Deleted) => Err(Conflict::WorkspaceDeleted.into()),
        Some(_) => Ok(true),
    }
}

impl Store {
    /// A workspace provisioned by an operator: its owner has no password yet and sets one
    /// with the setup token whose HMAC is `setup_hash` (as an invited member does).
    pub async fn provision_workspace(
        &self,
        ws: &NewWorkspace,
        setup_hash: &str,
        setup_expires_at: DateTime<Utc>,
        rec: &OperatorRecord,
    ) -> Result<(), StoreError> {
        let audit = audit_of(rec, &ws.id)?;
        let mut tx = self.audited(&ws.id, &audit, ws.created_at).await?;
        let now = to_ms(ws.created_at);
        sqlx::query("INSERT INTO workspaces (id, name, prefix, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&ws.id)
            .bind(&ws.name)
            .bind(&ws.prefix)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO members (id, workspace_id, email, role, created_at, setup_hash, setup_expires_at) \
             VALUES ($1, $2, $3, 'owner', $4, $5, $6)",
        )
        .bind(&ws.owner_id)
        .bind(&ws.id)
        .bind(&ws.owner_email)
        .bind(now)
        .bind(setup_hash)
        .bind(to_ms(setup_expires_at))
        .execute(&mut **tx)
        .await?;
        log(&mut tx, rec, ws.created_at).await?;
        tx.commit().await
    }

    pub async fn get_workspace(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Workspace>, StoreError> {
        let sql = format!("{} WHERE w.id = $2", select());
        let row = sqlx::query_as::<_, WorkspaceRow>(&sql).bind(to_ms(now)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.map(Into::into))
    }

    /// One page of workspaces in id order (oldest first), `limit + 1` at most.
    pub async fn list_workspaces(
        &self,
        filter: StandingFilter,
        cursor: Option<&str>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Workspace>, StoreError> {
        let only = match filter {
            StandingFilter::Any => "",
            StandingFilter::Only(Standing::Active) => " AND w.suspended_at IS NULL AND w.deleted_at IS NULL",
            StandingFilter::Only(Standing::Suspended) => " AND w.suspended_at IS NOT NULL AND w.deleted_at IS NULL",
            StandingFilter::Only(Standing::Deleted) => " AND w.deleted_at IS NOT NULL",
        };
        let sql = format!("{} WHERE w.id > $2{only} ORDER BY w.id LIMIT $3", select());
        let rows = sqlx::query_as::<_, WorkspaceRow>(&sql)
            .bind(to_ms(now))
            .bind(cursor.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Renames a workspace that is not deleted; `None` when there is no such workspace.
    pub async fn rename_workspace(
        &self,
        id: &str,
        name: &str,
        rec: &OperatorRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<Workspace>, StoreError> {
        let audit = audit_of(rec, id)?;
        let mut tx = self.audited(id, &audit, now).await?;
        if !undeleted_in(&mut tx, id).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query("UPDATE workspaces SET name = $1 WHERE id = $2").bind(name).bind(id).execute(&mut **tx).await?;
        log(&mut tx, rec, now).await?;
        tx.commit().await?;
        self.get_workspace(id, now).await
    }

    /// Suspends a workspace: its keys answer `SUSPENDED` on every node once they hear the
    /// change event, its members may only read. `None` when there is no such workspace.
    pub async fn suspend_workspace(
        &self,
        id: &str,
        reason: &str,
        rec: &OperatorRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<Workspace>, StoreError> {
        self.change_standing(id, Some(reason), rec, now).await
    }

    /// Lifts a suspension. `None` when there is no such workspace.
    pub async fn resume_workspace(
        &self,
        id: &str,
        rec: &OperatorRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<Workspace>, StoreError> {
        self.change_standing(id, None, rec, now).await
    }

    /// Suspends (with a reason) or resumes.
    async fn change_standing(
        &self,
        id: &str,
        suspend: Option<&str>,
        rec: &OperatorRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<Workspace>, StoreError> {
        let audit = audit_of(rec, id)?;
        let mut tx = self.audited(id, &audit, now).await?;
        let refused = match (standing_in(&mut tx, id).await?, suspend) {
            (None, _) => {
                tx.rollback().await?;
                return Ok(None);
            }
            (Some(Standing::Deleted), _) => Some(Conflict::WorkspaceDeleted),
            (Some(Standing::Suspended), Some(_)) => Some(Conflict::WorkspaceSuspended),
            (Some(Standing::Active), None) => Some(Conflict::WorkspaceNotSuspended),
            _ => None,
        };
        if let Some(c) = refused {
            tx.rollback().await?;
            return Err(c.into());
        }
        // The conditions again: a concurrent change of the same workspace wins once.
        let changed = match suspend {
            Some(reason) => sqlx::query(
                "UPDATE workspaces SET suspended_at = $1, suspend_reason = $2 \
                 WHERE id = $3 AND suspended_at IS NULL AND deleted_at IS NULL",
            )
            .bind(to_ms(now))
            .bind(reason)
            .bind(id),
            None => sqlx::query(
                "UPDATE workspaces SET suspended_at = NULL, suspend_reason = NULL \
                 WHERE id = $1 AND suspended_at IS NOT NULL AND deleted_at IS NULL",
            )
            .bind(id),
        }
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Err(
                if suspend.is_some() { Conflict::WorkspaceSuspended } else { Conflict::WorkspaceNotSuspended }.into()
            );
        }
        emit(&mut tx, &workspace_event(id), now).await?;
        log(&mut tx, rec, now).await?;
        tx.commit().await?;
        self.get_workspace(id, now).await
    }

    /// Deletes a workspace: its keys are not found and its credentials refused from the
    /// commit on; its data is erased afterwards ([`Store::erase_workspace`]). Refused while it
    /// has live keys, unless `force`. `None` when there is no such workspace.
    pub async fn delete_workspace(
        &self,
        id: &str,
        force: bool,
        rec: &OperatorRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<Workspace>, StoreError> {
        let audit = audit_of(rec, id)?;
        let mut tx = self.audited(id, &audit, now).await?;
        if !undeleted_in(&mut tx, id).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let live: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM api_keys k WHERE {LIVE} AND k.workspace_id = $2"))
                .bind(to_ms(now))
                .bind(id)
                .fetch_one(&mut **tx)
                .await?;
        let live = u64::try_from(live).unwrap_or(0);
        if live > 0 && !force {
            tx.rollback().await?;
            return Err(Conflict::WorkspaceHasLiveKeys(live).into());
        }
        let changed = sqlx::query("UPDATE workspaces SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
            .bind(to_ms(now))
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Err(Conflict::WorkspaceDeleted.into());
        }
        let what = json!({"force": force, "live_keys": live});
        tx.changes(what.clone());
        let rec = OperatorRecord { changes: what, ..rec.clone() };
        emit(&mut tx, &workspace_event(id), now).await?;
        log(&mut tx, &rec, now).await?;
        tx.commit().await?;
        self.get_workspace(id, now).await
    }

    /// Every workspace not active, with its standing: what a node's cache holds of them.
    pub async fn standings(&self) -> Result<Vec<(String, Standing)>, StoreError> {
        let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT id, suspended_at, deleted_at FROM workspaces \
             WHERE suspended_at IS NOT NULL OR deleted_at IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, s, d)| (id, Standing::of(s.is_some(), d.is_some()))).collect())
    }

    /// One workspace's standing (a workspace that does not exist is as good as deleted).
    pub async fn workspace_standing(&self, id: &str) -> Result<Standing, StoreError> {
        let row: Option<(Option<i64>, Option<i64>)> =
            sqlx::query_as("SELECT suspended_at, deleted_at FROM workspaces WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map_or(Standing::Deleted, |(s, d)| Standing::of(s.is_some(), d.is_some())))
    }
}
