//! Apps and their installations (docs/APPS.md). An app belongs to its developer's workspace;
//! an installation to the organisation's. A change that ends tokens (an uninstall, an app
//! deleted) emits an `app:` event, so every node drops the token decisions it cached.
//! Installing and uninstalling are recorded in both workspaces' trails: the organisation's
//! (who did it) and the developer's (`app.installed`, `app.uninstalled`, which are webhooks
//! there) — both chains' heads locked in the order of their ids, so two such changes never
//! wait on each other's locks.

use chrono::{DateTime, Utc};
use keyward_core::clock::{from_ms, to_ms};
use sqlx::FromRow;

use crate::audit::{append, AuditRecord};
use crate::events::emit;
use crate::tx::Tx;
use crate::{Store, StoreError};

/// How change events about apps' tokens begin: `app:inst:<installation>`,
/// `app:app:<app>`, `app:fam:<token family>`, `app:tok:<jti>`, `app:key:<kid>`.
pub const APP_EVENT_PREFIX: &str = "app:";

pub fn app_event(kind: &str, id: &str) -> String {
    format!("{APP_EVENT_PREFIX}{kind}:{id}")
}

/// One of an app's public keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppKey {
    pub public_key: String,
    pub algorithm: String,
    pub created_at: DateTime<Utc>,
    /// When a rotation's overlap ends for it (`None`: current).
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: String,
    pub homepage_url: Option<String>,
    pub permissions: Vec<String>,
    pub scopes: Vec<String>,
    /// Newest first.
    pub keys: Vec<AppKey>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl AppRecord {
    /// The keys that may sign an assertion at `now`.
    pub fn live_keys(&self, now: DateTime<Utc>) -> impl Iterator<Item = &AppKey> {
        self.keys.iter().filter(move |k| k.expires_at.is_none_or(|t| t > now))
    }
}

/// What `PATCH /v1/apps/{id}` changes (`None`: kept).
#[derive(Debug, Clone, Default)]
pub struct AppChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub homepage_url: Option<Option<String>>,
    pub permissions: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallationStatus {
    Pending,
    Active,
    Rejected,
    Uninstalled,
}

impl InstallationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstallationStatus::Pending => "pending",
            InstallationStatus::Active => "active",
            InstallationStatus::Rejected => "rejected",
            InstallationStatus::Uninstalled => "uninstalled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Active, Self::Rejected, Self::Uninstalled].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub id: String,
    pub app_id: String,
    pub app_name: String,
    /// The organisation's workspace.
    pub workspace_id: String,
    /// The developer's.
    pub app_workspace_id: String,
    pub status: InstallationStatus,
    pub permissions: Vec<String>,
    pub scopes: Vec<String>,
    pub environment: String,
    pub approval_id: Option<String>,
    pub installed_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub uninstalled_at: Option<DateTime<Utc>>,
}

const APP_COLUMNS: &str =
    "id, workspace_id, name, description, homepage_url, permissions, scopes, created_by, created_at, updated_at, deleted_at";

#[derive(FromRow)]
struct AppRow {
    id: String,
    workspace_id: String,
    name: String,
    description: String,
    homepage_url: Option<String>,
    permissions: String,
    scopes: String,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

fn list(what: &str, s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|_| StoreError::Internal(format!("unreadable {what} in an apps row")))
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

impl AppRow {
    fn record(self, keys: Vec<AppKey>) -> Result<AppRecord, StoreError> {
        Ok(AppRecord {
            permissions: list("permissions", &self.permissions)?,
            scopes: list("scopes", &self.scopes)?,
            id: self.id,
            workspace_id: self.workspace_id,
            name: self.name,
            description: self.description,
            homepage_url: self.homepage_url,
            keys,
            created_by: self.created_by,
            created_at: from_ms(self.created_at),
            updated_at: from_ms(self.updated_at),
            deleted_at: self.deleted_at.map(from_ms),
        })
    }
}

const INSTALLATION_COLUMNS: &str = "i.id, i.app_id, a.name AS app_name, i.workspace_id, i.app_workspace_id, i.status, \
     i.permissions, i.scopes, i.environment, i.approval_id, i.installed_by, i.created_at, i.updated_at, i.uninstalled_at";
const INSTALLATION_FROM: &str = "app_installations i JOIN apps a ON a.id = i.app_id";

#[derive(FromRow)]
struct InstallationRow {
    id: String,
    app_id: String,
    app_name: String,
    workspace_id: String,
    app_workspace_id: String,
    status: String,
    permissions: String,
    scopes: String,
    environment: String,
    approval_id: Option<String>,
    installed_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    uninstalled_at: Option<i64>,
}

impl InstallationRow {
    fn record(self) -> Result<Installation, StoreError> {
        Ok(Installation {
            status: InstallationStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Internal("unreadable status in an app_installations row".into()))?,
            permissions: list("permissions", &self.permissions)?,
            scopes: list("scopes", &self.scopes)?,
            id: self.id,
            app_id: self.app_id,
            app_name: self.app_name,
            workspace_id: self.workspace_id,
            app_workspace_id: self.app_workspace_id,
            environment: self.environment,
            approval_id: self.approval_id,
            installed_by: self.installed_by,
            created_at: from_ms(self.created_at),
            updated_at: from_ms(self.updated_at),
            uninstalled_at: self.uninstalled_at.map(from_ms),
        })
    }
}

async fn keys_of(ex: &mut sqlx::AnyConnection, app_id: &str) -> Result<Vec<AppKey>, StoreError> {
    let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT public_key, algorithm, created_at, expires_at FROM app_keys WHERE app_id = $1 \
         ORDER BY created_at DESC, public_key",
    )
    .bind(app_id)
    .fetch_all(ex)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(public_key, algorithm, c, e)| AppKey {
            public_key,
            algorithm,
            created_at: from_ms(c),
            expires_at: e.map(from_ms),
        })
        .collect())
}

async fn insert_key(tx: &mut Tx, app_id: &str, k: &AppKey) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO app_keys (app_id, public_key, algorithm, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(app_id)
    .bind(&k.public_key)
    .bind(&k.algorithm)
    .bind(to_ms(k.created_at))
    .bind(k.expires_at.map(to_ms))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn installation_in(tx: &mut Tx, id: &str) -> Result<Option<Installation>, StoreError> {
    let sql = format!("SELECT {INSTALLATION_COLUMNS} FROM {INSTALLATION_FROM} WHERE i.id = $1");
    let row = sqlx::query_as::<_, InstallationRow>(&sql).bind(id).fetch_optional(&mut **tx).await?;
    row.map(InstallationRow::record).transpose()
}

/// What the developer's trail (and webhooks) are told of an installation: nothing of the
/// organisation beyond its workspace id and what it granted.
fn told_developer(i: &Installation) -> serde_json::Value {
    serde_json::json!({
        "installation_id": i.id, "app_id": i.app_id, "workspace_id": i.workspace_id,
        "permissions": i.permissions, "scopes": i.scopes, "environment": i.environment,
    })
}

fn developer_record(action: keyward_core::audit_action::AuditAction, i: &Installation) -> AuditRecord {
    let target = keyward_core::audit::AuditTarget {
        kind: "installation".into(),
        id: Some(i.id.clone()),
        name: Some(i.app_name.clone()),
    };
    AuditRecord::system(action, target, told_developer(i))
}

/// Makes `id` active (it was pending) and tells the developer: an approval's quorum.
pub(crate) async fn activate(tx: &mut Tx, id: &str, approval_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE app_installations SET status = 'active', updated_at = $1 WHERE id = $2 AND status = 'pending' \
         AND approval_id = $3",
    )
    .bind(to_ms(now))
    .bind(id)
    .bind(approval_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if done > 0 {
        if let Some(i) = installation_in(tx, id).await? {
            let rec = developer_record(keyward_core::audit_action::AuditAction::AppInstalled, &i);
            // The organisation's chain is written when the approval commits: both locked now,
            // in the one order every two-chain change takes.
            crate::audit::lock_heads(tx, [&i.workspace_id, &i.app_workspace_id]).await?;
            append(tx, &i.app_workspace_id, &rec, now).await?;
        }
    }
    Ok(())
}

/// Ends a pending installation unapplied (rejected, cancelled or expired approvals).
pub(crate) async fn reject(tx: &mut Tx, id: &str, approval_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE app_installations SET status = 'rejected', updated_at = $1 WHERE id = $2 AND status = 'pending' \
         AND approval_id = $3",
    )
    .bind(to_ms(now))
    .bind(id)
    .bind(approval_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Registers an app with its first key.
    pub async fn insert_app(&self, app: &AppRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.audited(&app.workspace_id, audit, app.created_at).await?;
        sqlx::query(&format!(
            "INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)"
        ))
        .bind(&app.id)
        .bind(&app.workspace_id)
        .bind(&app.name)
        .bind(&app.description)
        .bind(&app.homepage_url)
        .bind(json(&app.permissions))
        .bind(json(&app.scopes))
        .bind(&app.created_by)
        .bind(to_ms(app.created_at))
        .bind(to_ms(app.updated_at))
        .execute(&mut **tx)
        .await?;
        for k in &app.keys {
            insert_key(&mut tx, &app.id, k).await?;
        }
        tx.commit().await
    }

    /// An app by id, whichever workspace it belongs to (deleted ones too; callers check).
    pub async fn get_app(&self, id: &str) -> Result<Option<AppRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query_as::<_, AppRow>(&format!("SELECT {APP_COLUMNS} FROM apps WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let keys = keys_of(&mut conn, id).await?;
        row.record(keys).map(Some)
    }

    /// A workspace's apps (not deleted), oldest first.
    pub async fn list_apps(&self, workspace_id: &str) -> Result<Vec<AppRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query_as::<_, AppRow>(&format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE workspace_id = $1 AND deleted_at IS NULL ORDER BY id LIMIT 1000"
        ))
        .bind(workspace_id)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let keys = keys_of(&mut conn, &r.id).await?;
            out.push(r.record(keys)?);
        }
        Ok(out)
    }

    /// Changes an app of `workspace_id`; `None` when it has no such (live) app.
    pub async fn update_app(
        &self,
        workspace_id: &str,
        id: &str,
        c: &AppChanges,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<AppRecord>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let done = sqlx::query(
            "UPDATE apps SET name = COALESCE($1, name), description = COALESCE($2, description), \
             homepage_url = CASE WHEN $3 = 1 THEN $4 ELSE homepage_url END, \
             permissions = COALESCE($5, permissions), scopes = COALESCE($6, scopes), updated_at = $7 \
             WHERE workspace_id = $8 AND id = $9 AND deleted_at IS NULL",
        )
        .bind(&c.name)
        .bind(&c.description)
        .bind(i64::from(c.homepage_url.is_some()))
        .bind(c.homepage_url.clone().flatten())
        .bind(c.permissions.as_deref().map(json))
        .bind(c.scopes.as_deref().map(json))
        .bind(to_ms(now))
        .bind(workspace_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if done == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        self.get_app(id).await
    }

    /// Adds a key to an app; the keys before it end at `overlap_end` (those ending sooner
    /// keep their end). `None` when the workspace has no such (live) app.
    pub async fn add_app_key(
        &self,
        workspace_id: &str,
        id: &str,
        key: &AppKey,
        overlap_end: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<AppRecord>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, key.created_at).await?;
        let live =
            sqlx::query("UPDATE apps SET updated_at = $1 WHERE workspace_id = $2 AND id = $3 AND deleted_at IS NULL")
                .bind(to_ms(key.created_at))
                .bind(workspace_id)
                .bind(id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        if live == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query(
            "UPDATE app_keys SET expires_at = $1 WHERE app_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(to_ms(overlap_end))
        .bind(id)
        .execute(&mut **tx)
        .await?;
        // The same key again is a rotation to itself: it stays, current.
        sqlx::query("DELETE FROM app_keys WHERE app_id = $1 AND public_key = $2")
            .bind(id)
            .bind(&key.public_key)
            .execute(&mut **tx)
            .await?;
        insert_key(&mut tx, id, key).await?;
        tx.commit().await?;
        self.get_app(id).await
    }

    /// Deletes an app: no new installations or tokens, and every token of its installations
    /// is refused on every node. `None` when the workspace has no such (live) app.
    pub async fn delete_app(
        &self,
        workspace_id: &str,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<AppRecord>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let done = sqlx::query(
            "UPDATE apps SET deleted_at = $1, updated_at = $1 WHERE workspace_id = $2 AND id = $3 AND deleted_at IS NULL",
        )
        .bind(to_ms(now))
        .bind(workspace_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if done == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        emit(&mut tx, &app_event("app", id), now).await?;
        tx.commit().await?;
        self.get_app(id).await
    }

    /// Records an installation: active at once (the developer told in the same transaction),
    /// or pending with its approval request.
    pub async fn insert_installation(
        &self,
        i: &Installation,
        approval: Option<&crate::NewApproval>,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.audited(&i.workspace_id, audit, i.created_at).await?;
        sqlx::query(
            "INSERT INTO app_installations (id, app_id, workspace_id, app_workspace_id, status, permissions, scopes, \
             environment, approval_id, installed_by, created_at, updated_at, uninstalled_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)",
        )
        .bind(&i.id)
        .bind(&i.app_id)
        .bind(&i.workspace_id)
        .bind(&i.app_workspace_id)
        .bind(i.status.as_str())
        .bind(json(&i.permissions))
        .bind(json(&i.scopes))
        .bind(&i.environment)
        .bind(&i.approval_id)
        .bind(&i.installed_by)
        .bind(to_ms(i.created_at))
        .bind(to_ms(i.updated_at))
        .execute(&mut **tx)
        .await?;
        // A token refused as "no such installation" may be cached for this id.
        emit(&mut tx, &app_event("inst", &i.id), i.created_at).await?;
        match approval {
            Some(a) => crate::approvals::insert_approval(&mut tx, a).await?,
            None => {
                // The organisation's event, then the developer's (heads locked in id order).
                let rec = developer_record(keyward_core::audit_action::AuditAction::AppInstalled, i);
                return tx.commit_also(&i.app_workspace_id, &rec).await;
            }
        }
        tx.commit().await
    }

    pub async fn get_installation(&self, id: &str) -> Result<Option<Installation>, StoreError> {
        let sql = format!("SELECT {INSTALLATION_COLUMNS} FROM {INSTALLATION_FROM} WHERE i.id = $1");
        let row = sqlx::query_as::<_, InstallationRow>(&sql).bind(id).fetch_optional(&self.pool).await?;
        row.map(InstallationRow::record).transpose()
    }

    /// The apps installed in an organisation's workspace (uninstalled ones too), newest first.
    pub async fn list_installations(&self, workspace_id: &str) -> Result<Vec<Installation>, StoreError> {
        let sql = format!(
            "SELECT {INSTALLATION_COLUMNS} FROM {INSTALLATION_FROM} WHERE i.workspace_id = $1 ORDER BY i.id DESC LIMIT 1000"
        );
        let rows = sqlx::query_as::<_, InstallationRow>(&sql).bind(workspace_id).fetch_all(&self.pool).await?;
        rows.into_iter().map(InstallationRow::record).collect()
    }

    /// An app's installations, newest first.
    pub async fn app_installations(&self, app_id: &str) -> Result<Vec<Installation>, StoreError> {
        let sql = format!(
            "SELECT {INSTALLATION_COLUMNS} FROM {INSTALLATION_FROM} WHERE i.app_id = $1 ORDER BY i.id DESC LIMIT 1000"
        );
        let rows = sqlx::query_as::<_, InstallationRow>(&sql).bind(app_id).fetch_all(&self.pool).await?;
        rows.into_iter().map(InstallationRow::record).collect()
    }

    /// Uninstalls an app from an organisation: its token families are revoked and every
    /// node drops what it cached of its tokens; the developer is told. `None` when the
    /// workspace has no such installation; an uninstalled one answers as it is.
    pub async fn uninstall(
        &self,
        workspace_id: &str,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<Installation>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let done = sqlx::query(
            "UPDATE app_installations SET status = 'uninstalled', uninstalled_at = $1, updated_at = $1 \
             WHERE workspace_id = $2 AND id = $3 AND status IN ('active', 'pending')",
        )
        .bind(to_ms(now))
        .bind(workspace_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if done == 0 {
            tx.rollback().await?;
            return Ok(self.get_installation(id).await?.filter(|i| i.workspace_id == workspace_id));
        }
        crate::app_tokens::revoke_families_of(&mut tx, id, "uninstalled", now).await?;
        // A pending installation's request has nothing left to decide.
        sqlx::query(
            "UPDATE approvals SET status = 'cancelled', reason = 'the app was uninstalled', decided_at = $1 \
             WHERE subject_kind = 'installation' AND subject_id = $2 AND status = 'pending'",
        )
        .bind(to_ms(now))
        .bind(id)
        .execute(&mut **tx)
        .await?;
        emit(&mut tx, &app_event("inst", id), now).await?;
        let i = installation_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::Internal("installation vanished while uninstalled".into()))?;
        let rec = developer_record(keyward_core::audit_action::AuditAction::AppUninstalled, &i);
        tx.commit_also(&i.app_workspace_id, &rec).await?;
        Ok(Some(i))
    }
}
