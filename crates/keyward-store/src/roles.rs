//! Workspace roles: what a key holding one may do. Every change emits a role event
//! (`role:<workspace>/<name>`), so every node re-derives the cached keys holding the role.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keyward_core::authority::{KeyGrant, RoleDefs};
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::model::KeyRecord;
use sqlx::any::AnyRow;
use sqlx::FromRow;

use crate::audit::AuditRecord;
use crate::events::emit;
use crate::key_state::emit_all;
use crate::rows::{json_grants, json_list, key_from_row, KEY_COLUMNS};
use crate::tx::Tx;
use crate::{Conflict, Store, StoreError};

/// How change events name a role: `role:`, the workspace, `/` and the role's name.
pub const ROLE_EVENT_PREFIX: &str = "role:";

pub fn role_event(workspace_id: &str, name: &str) -> String {
    format!("{ROLE_EVENT_PREFIX}{workspace_id}/{name}")
}

/// The (workspace, role) a role event names.
pub fn parse_role_event(event: &str) -> Option<(&str, &str)> {
    event.strip_prefix(ROLE_EVENT_PREFIX)?.split_once('/')
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRole {
    pub name: String,
    pub description: String,
    /// `None`: a member role whose permissions were never set.
    pub permissions: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub approval_id: Option<String>,
}

/// What deleting a role did, or why it did not.
#[derive(Debug)]
pub enum RoleDeletion {
    Deleted {
        changed_keys: Vec<KeyRecord>,
    },
    NotFound,
    /// Keys (not revoked) and service accounts still hold it.
    InUse {
        keys: u64,
        accounts: u64,
    },
}

const COLUMNS: &str = "name, description, permissions, created_at, updated_at, approval_id";

/// A `roles` row as stored ([`COLUMNS`]).
#[derive(sqlx::FromRow)]
struct RoleRow {
    name: String,
    description: String,
    permissions: Option<String>,
    created_at: i64,
    updated_at: i64,
    approval_id: Option<String>,
}

fn from_row(r: &AnyRow) -> Result<StoredRole, StoreError> {
    let r = RoleRow::from_row(r)?;
    Ok(StoredRole {
        permissions: r
            .permissions
            .map(|p| serde_json::from_str(&p).map_err(|_| StoreError::Internal("unreadable role permissions".into())))
            .transpose()?,
        created_at: from_ms(r.created_at),
        updated_at: from_ms(r.updated_at),
        name: r.name,
        description: r.description,
        approval_id: r.approval_id,
    })
}

/// The roles a key holds by its own `roles` and `grants` (its owner's role aside).
fn key_holds(roles: &[String], grants: &[KeyGrant], name: &str) -> bool {
    roles.iter().any(|r| r == name) || grants.iter().any(|g| g.role == name)
}

/// Live keys of a workspace that hold any role, or belong to a service account.
const HOLDERS: &str = "FROM api_keys WHERE workspace_id = $1 AND status NOT IN ('revoked', 'rejected') \
     AND (roles <> '[]' OR grants <> '[]' OR service_account_id IS NOT NULL)";

impl Store {
    pub async fn list_roles(&self, workspace_id: &str) -> Result<Vec<StoredRole>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM roles WHERE workspace_id = $1 ORDER BY name");
        let rows = sqlx::query(&sql).bind(workspace_id).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn get_role(&self, workspace_id: &str, name: &str) -> Result<Option<StoredRole>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM roles WHERE workspace_id = $1 AND name = $2");
        let row = sqlx::query(&sql).bind(workspace_id).bind(name).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The permissions each of `names` grants, for the roles that are defined and set.
    pub async fn role_defs(&self, workspace_id: &str, names: &[String]) -> Result<RoleDefs, StoreError> {
        let mut defs = RoleDefs::new();
        if names.is_empty() {
            return Ok(defs);
        }
        let rows = sqlx::query_as::<_, (String, String)>(
            "SELECT name, permissions FROM roles WHERE workspace_id = $1 AND permissions IS NOT NULL",
        )
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        for (name, p) in rows {
            if names.contains(&name) {
                let perms = serde_json::from_str(&p).map_err(|_| StoreError::Internal("unreadable role".into()))?;
                defs.insert(name, perms);
            }
        }
        Ok(defs)
    }

    /// How many live keys hold each role (through `roles`, `grants` or their service account).
    pub async fn role_holders(&self, workspace_id: &str) -> Result<BTreeMap<String, u64>, StoreError> {
        let accounts: BTreeMap<String, String> =
            sqlx::query_as::<_, (String, String)>("SELECT id, role FROM service_accounts WHERE workspace_id = $1")
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .collect();
        let sql = format!("SELECT {KEY_COLUMNS} {HOLDERS}");
        let rows = sqlx::query(&sql).bind(workspace_id).fetch_all(&self.pool).await?;
        let mut counts = BTreeMap::new();
        for r in &rows {
            let k = key_from_row(r)?;
            let owner_role = k.service_account_id.as_ref().and_then(|id| accounts.get(id)).map(String::as_str);
            for role in keyward_core::verify::KeyContext::roles_of(&k, owner_role) {
                *counts.entry(role).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    /// Creates a role. A new role never reaches into existing keys: a live key that still
    /// names it (from before keys could name only existing roles) has the name taken off in
    /// the same transaction, with its change event. Returns those keys.
    pub async fn create_role(
        &self,
        workspace_id: &str,
        role: &StoredRole,
        audit: &AuditRecord,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, role.created_at).await?;
        let exists = sqlx::query("SELECT 1 AS x FROM roles WHERE workspace_id = $1 AND name = $2")
            .bind(workspace_id)
            .bind(&role.name)
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_some() {
            tx.rollback().await?;
            return Err(StoreError::Conflict(Conflict::RoleExists));
        }
        insert_role(&mut tx, workspace_id, role).await?;
        let changed = take_off_keys(&mut tx, workspace_id, &role.name, role.created_at).await?;
        let mut changes = audit.changes.clone();
        if let (false, Some(obj)) = (changed.is_empty(), changes.as_object_mut()) {
            obj.insert("taken_off_keys".into(), changed.iter().map(|k| k.id.as_str()).collect::<Vec<_>>().into());
            tx.changes(changes);
        }
        emit_all(&mut tx, &changed, role.created_at).await?;
        emit(&mut tx, &role_event(workspace_id, &role.name), role.created_at).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Changes a role (creating the row of a member role set for the first time). `None`
    /// fields keep their value. Refused while a change of it waits on approval.
    pub async fn update_role(
        &self,
        workspace_id: &str,
        current: &StoredRole,
        description: Option<&str>,
        permissions: Option<&[String]>,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<StoredRole, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let out = write_role(&mut tx, workspace_id, current, description, permissions, None, now).await?;
        emit(&mut tx, &role_event(workspace_id, &current.name), now).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Deletes a role. In use, it is refused unless `force`, which takes it off every key
    /// (their change events are emitted); a service account's role is never taken away.
    pub async fn delete_role(
        &self,
        workspace_id: &str,
        name: &str,
        force: bool,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<RoleDeletion, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let found = sqlx::query("DELETE FROM roles WHERE workspace_id = $1 AND name = $2")
            .bind(workspace_id)
            .bind(name)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if found == 0 {
            tx.rollback().await?;
            return Ok(RoleDeletion::NotFound);
        }
        let accounts: i64 =
            sqlx::query_scalar("SELECT COUNT(*) AS n FROM service_accounts WHERE workspace_id = $1 AND role = $2")
                .bind(workspace_id)
                .bind(name)
                .fetch_one(&mut **tx)
                .await?;
        let holders = holders(&mut tx, workspace_id, name).await?;
        if accounts > 0 || (!holders.is_empty() && !force) {
            tx.rollback().await?;
            return Ok(RoleDeletion::InUse { keys: holders.len() as u64, accounts: accounts.unsigned_abs() });
        }
        let changed = take_off_keys(&mut tx, workspace_id, name, now).await?;
        let ids: Vec<&str> = changed.iter().map(|k| k.id.as_str()).collect();
        tx.changes(serde_json::json!({"force": force, "taken_off_keys": ids}));
        emit_all(&mut tx, &changed, now).await?;
        emit(&mut tx, &role_event(workspace_id, name), now).await?;
        tx.commit().await?;
        Ok(RoleDeletion::Deleted { changed_keys: changed })
    }
}

/// Live keys holding `name` by their own `roles` or `grants`.
async fn holders(tx: &mut Tx, workspace_id: &str, name: &str) -> Result<Vec<KeyRecord>, StoreError> {
    let sql = format!("SELECT {KEY_COLUMNS} {HOLDERS}");
    Ok(sqlx::query(&sql)
        .bind(workspace_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(key_from_row)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|k| key_holds(&k.roles, &k.grants, name))
        .collect())
}

/// Takes `name` off every live key holding it; returns the changed keys.
async fn take_off_keys(
    tx: &mut Tx,
    workspace_id: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Vec<KeyRecord>, StoreError> {
    let holders = holders(tx, workspace_id, name).await?;
    let mut changed = Vec::with_capacity(holders.len());
    for k in holders {
        let roles: Vec<String> = k.roles.iter().filter(|r| *r != name).cloned().collect();
        let grants: Vec<KeyGrant> = k.grants.iter().filter(|g| g.role != name).cloned().collect();
        let sql = format!(
            "UPDATE api_keys SET roles = $1, grants = $2, updated_at = $3 WHERE id = $4 RETURNING {KEY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(json_list(&roles))
            .bind(json_grants(&grants))
            .bind(to_ms(now))
            .bind(&k.id)
            .fetch_one(&mut **tx)
            .await?;
        changed.push(key_from_row(&row)?);
    }
    Ok(changed)
}

/// A role's row inside `tx`.
pub(crate) async fn read_role(tx: &mut Tx, workspace_id: &str, name: &str) -> Result<Option<StoredRole>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM roles WHERE workspace_id = $1 AND name = $2");
    let row = sqlx::query(&sql).bind(workspace_id).bind(name).fetch_optional(&mut **tx).await?;
    row.as_ref().map(from_row).transpose()
}

async fn insert_role(tx: &mut Tx, workspace_id: &str, role: &StoredRole) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO roles (workspace_id, name, description, permissions, created_at, updated_at, approval_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(workspace_id)
    .bind(&role.name)
    .bind(&role.description)
    .bind(role.permissions.as_deref().map(json_list))
    .bind(to_ms(role.created_at))
    .bind(to_ms(role.updated_at))
    .bind(&role.approval_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes a role's new description and permissions, inserting the row of a member role
/// that has none yet. `approval_id`: only the change that request waits for (which clears
/// it); without one, only a role no request waits on.
pub(crate) async fn write_role(
    tx: &mut Tx,
    workspace_id: &str,
    current: &StoredRole,
    description: Option<&str>,
    permissions: Option<&[String]>,
    approval_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<StoredRole, StoreError> {
    let row: Option<Option<String>> =
        sqlx::query_scalar("SELECT approval_id FROM roles WHERE workspace_id = $1 AND name = $2")
            .bind(workspace_id)
            .bind(&current.name)
            .fetch_optional(&mut **tx)
            .await?;
    let pending = row.clone().flatten();
    if pending.as_deref() != approval_id {
        return Err(StoreError::Conflict(Conflict::RolePendingApproval(pending)));
    }
    let new = StoredRole {
        description: description.map_or_else(|| current.description.clone(), str::to_string),
        permissions: permissions.map(<[String]>::to_vec).or_else(|| current.permissions.clone()),
        updated_at: now,
        approval_id: None,
        ..current.clone()
    };
    if row.is_none() {
        insert_role(tx, workspace_id, &new).await?;
    } else {
        sqlx::query(
            "UPDATE roles SET description = $1, permissions = $2, updated_at = $3, approval_id = NULL \
             WHERE workspace_id = $4 AND name = $5",
        )
        .bind(&new.description)
        .bind(new.permissions.as_deref().map(json_list))
        .bind(to_ms(now))
        .bind(workspace_id)
        .bind(&new.name)
        .execute(&mut **tx)
        .await?;
    }
    Ok(new)
}

/// Marks a role as waiting on approval request `approval_id` (inserting a member role's row).
pub(crate) async fn hold_role(
    tx: &mut Tx,
    workspace_id: &str,
    current: &StoredRole,
    approval_id: &str,
) -> Result<(), StoreError> {
    let held =
        sqlx::query("UPDATE roles SET approval_id = $1 WHERE workspace_id = $2 AND name = $3 AND approval_id IS NULL")
            .bind(approval_id)
            .bind(workspace_id)
            .bind(&current.name)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if held == 1 {
        return Ok(());
    }
    let exists: Option<Option<String>> =
        sqlx::query_scalar("SELECT approval_id FROM roles WHERE workspace_id = $1 AND name = $2")
            .bind(workspace_id)
            .bind(&current.name)
            .fetch_optional(&mut **tx)
            .await?;
    match exists {
        Some(pending) => Err(StoreError::Conflict(Conflict::RolePendingApproval(pending))),
        None => {
            let row = StoredRole { approval_id: Some(approval_id.to_string()), ..current.clone() };
            insert_role(tx, workspace_id, &row).await
        }
    }
}

/// Clears a role's pending request (rejected, cancelled or expired).
pub(crate) async fn release_role(tx: &mut Tx, workspace_id: &str, approval_id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE roles SET approval_id = NULL WHERE workspace_id = $1 AND approval_id = $2")
        .bind(workspace_id)
        .bind(approval_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
