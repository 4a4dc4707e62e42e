//! Service accounts: members of kind `service` that cannot log in and own keys (seed 002's
//! dedicated integration user). Every change emits `sa:<id>`, so every node drops the cached
//! keys the account owns; deleting one revokes them.

use chrono::{DateTime, Utc};
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::model::KeyRecord;
use keyward_core::verify::{KeyContext, OwnerState};
use sqlx::any::AnyRow;
use sqlx::FromRow;

use crate::audit::AuditRecord;
use crate::events::emit;
use crate::key_state::emit_all;
use crate::rows::{key_from_row, KEY_COLUMNS};
use crate::{Conflict, Store, StoreError};

/// How change events name a service account: `sa:` and its id.
pub const SERVICE_ACCOUNT_EVENT_PREFIX: &str = "sa:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: String,
    pub role: String,
    pub disabled: bool,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Its keys that are not revoked (filled in by reads).
    pub keys: u64,
}

/// A patch of a service account; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChanges {
    pub name: Option<String>,
    pub role: Option<String>,
    pub description: Option<String>,
    pub disabled: Option<bool>,
}

const COLUMNS: &str = "s.id, s.workspace_id, s.name, s.description, s.role, s.disabled, s.created_by, \
     s.created_at, s.updated_at, (SELECT COUNT(*) FROM api_keys k WHERE k.service_account_id = s.id \
     AND k.status NOT IN ('revoked', 'rejected')) AS keys";

/// A `service_accounts` row with its count of live keys ([`COLUMNS`]).
#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    workspace_id: String,
    name: String,
    description: String,
    role: String,
    disabled: i64,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    keys: i64,
}

fn from_row(r: &AnyRow) -> Result<ServiceAccount, StoreError> {
    let r = AccountRow::from_row(r)?;
    Ok(ServiceAccount {
        id: r.id,
        workspace_id: r.workspace_id,
        name: r.name,
        description: r.description,
        role: r.role,
        disabled: r.disabled != 0,
        created_by: r.created_by,
        created_at: from_ms(r.created_at),
        updated_at: from_ms(r.updated_at),
        keys: r.keys.unsigned_abs(),
    })
}

pub(crate) fn event(id: &str) -> String {
    format!("{SERVICE_ACCOUNT_EVENT_PREFIX}{id}")
}

impl Store {
    pub async fn create_service_account(&self, a: &ServiceAccount, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.audited(&a.workspace_id, audit, a.created_at).await?;
        let taken = sqlx::query("SELECT 1 AS x FROM service_accounts WHERE workspace_id = $1 AND name = $2")
            .bind(&a.workspace_id)
            .bind(&a.name)
            .fetch_optional(&mut **tx)
            .await?;
        if taken.is_some() {
            tx.rollback().await?;
            return Err(StoreError::Conflict(Conflict::ServiceAccountNameTaken));
        }
        sqlx::query(
            "INSERT INTO service_accounts (id, workspace_id, name, description, role, disabled, created_by, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.id)
        .bind(&a.workspace_id)
        .bind(&a.name)
        .bind(&a.description)
        .bind(&a.role)
        .bind(i64::from(a.disabled))
        .bind(&a.created_by)
        .bind(to_ms(a.created_at))
        .bind(to_ms(a.updated_at))
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_service_accounts(&self, workspace_id: &str) -> Result<Vec<ServiceAccount>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM service_accounts s WHERE s.workspace_id = $1 ORDER BY s.name");
        let rows = sqlx::query(&sql).bind(workspace_id).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn get_service_account(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<ServiceAccount>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM service_accounts s WHERE s.workspace_id = $1 AND s.id = $2");
        let row = sqlx::query(&sql).bind(workspace_id).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Changes an account; every node re-reads the keys it owns.
    pub async fn update_service_account(
        &self,
        workspace_id: &str,
        id: &str,
        c: &AccountChanges,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<ServiceAccount>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        if let Some(name) = &c.name {
            let taken =
                sqlx::query("SELECT 1 AS x FROM service_accounts WHERE workspace_id = $1 AND name = $2 AND id <> $3")
                    .bind(workspace_id)
                    .bind(name)
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?;
            if taken.is_some() {
                tx.rollback().await?;
                return Err(StoreError::Conflict(Conflict::ServiceAccountNameTaken));
            }
        }
        let changed = sqlx::query(
            "UPDATE service_accounts SET name = COALESCE($1, name), role = COALESCE($2, role), \
             description = COALESCE($3, description), disabled = COALESCE($4, disabled), updated_at = $5 \
             WHERE workspace_id = $6 AND id = $7",
        )
        .bind(c.name.clone())
        .bind(c.role.clone())
        .bind(c.description.clone())
        .bind(c.disabled.map(i64::from))
        .bind(to_ms(now))
        .bind(workspace_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        emit(&mut tx, &event(id), now).await?;
        tx.commit().await?;
        self.get_service_account(workspace_id, id).await
    }

    /// Deletes an account and revokes its keys, in one transaction.
    pub async fn delete_service_account(
        &self,
        workspace_id: &str,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<Vec<KeyRecord>>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let gone = sqlx::query("DELETE FROM service_accounts WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if gone == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let sql = format!(
            "UPDATE api_keys SET status = 'revoked', revoked_at = $1, updated_at = $1, approval_id = NULL \
             WHERE workspace_id = $2 AND service_account_id = $3 AND status NOT IN ('revoked', 'rejected') \
             RETURNING {KEY_COLUMNS}"
        );
        let revoked = sqlx::query(&sql)
            .bind(to_ms(now))
            .bind(workspace_id)
            .bind(id)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(key_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query(
            "UPDATE approvals SET status = 'cancelled', decided_at = $1 WHERE status = 'pending' AND subject_kind = 'key' AND subject_id IN \
             (SELECT id FROM api_keys WHERE service_account_id = $2)",
        )
        .bind(to_ms(now))
        .bind(id)
        .execute(&mut **tx)
        .await?;
        let ids: Vec<&str> = revoked.iter().map(|k| k.id.as_str()).collect();
        tx.changes(serde_json::json!({"revoked_keys": ids}));
        emit_all(&mut tx, &revoked, now).await?;
        emit(&mut tx, &event(id), now).await?;
        tx.commit().await?;
        Ok(Some(revoked))
    }

    /// What verification needs besides the record: its roles' permissions, its owner and its
    /// identity.
    pub async fn key_context(&self, rec: &KeyRecord) -> Result<KeyContext, StoreError> {
        let owner = match &rec.service_account_id {
            None => None,
            Some(id) => {
                let row =
                    sqlx::query_as::<_, (String, i64)>("SELECT role, disabled FROM service_accounts WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                Some(match row {
                    Some((role, disabled)) => OwnerState { role, disabled: disabled != 0 },
                    // A deleted account's keys were revoked with it; refuse them regardless.
                    None => OwnerState { role: String::new(), disabled: true },
                })
            }
        };
        let roles = KeyContext::roles_of(rec, owner.as_ref().map(|o| o.role.as_str()).filter(|r| !r.is_empty()));
        let defs = self.role_defs(&rec.workspace_id, &roles).await?;
        // One more read for a key of an identity: its shared limits, credits and meta.
        let identity = match &rec.identity_id {
            Some(id) => self.identity_by_id(id).await?.filter(|i| i.workspace_id == rec.workspace_id),
            None => None,
        };
        Ok(KeyContext { defs, owner, identity })
    }
}
