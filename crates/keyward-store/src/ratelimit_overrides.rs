//! Overrides of service rate limits (`/v1/ratelimit/overrides`): one identifier's (or one
//! pattern's) limit in a namespace, replacing what requests name. Every change emits a change
//! event naming the workspace, so every node drops the overrides it holds for it.

use chrono::{DateTime, Utc};
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::ratelimit_service::{is_pattern, MAX_OVERRIDES, MAX_PATTERNS};

use crate::events::emit;
use crate::{Store, StoreError};

/// How change events name a workspace's rate limit overrides: `rlo:` and the workspace id.
pub const RATELIMIT_OVERRIDE_EVENT_PREFIX: &str = "rlo:";

/// The change event of `workspace_id`'s overrides.
pub fn ratelimit_override_event(workspace_id: &str) -> String {
    format!("{RATELIMIT_OVERRIDE_EVENT_PREFIX}{workspace_id}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatelimitOverride {
    pub id: String,
    pub workspace_id: String,
    pub namespace: String,
    pub identifier: String,
    /// 0 refuses every request.
    pub limit: u32,
    pub duration_ms: u64,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What setting an override did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideWrite {
    /// Stored (new, or the existing one of the identifier replaced, keeping its id).
    Set(RatelimitOverride),
    /// Not stored: the namespace holds [`MAX_OVERRIDES`] already, or [`MAX_PATTERNS`]
    /// patterns and this is one more.
    Full,
}

const COLUMNS: &str =
    "id, workspace_id, namespace, identifier, rate_limit, duration_ms, created_by, created_at, updated_at";

/// A `ratelimit_overrides` row as stored ([`COLUMNS`]).
#[derive(sqlx::FromRow)]
struct OverrideRow {
    id: String,
    workspace_id: String,
    namespace: String,
    identifier: String,
    rate_limit: i64,
    duration_ms: i64,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<OverrideRow> for RatelimitOverride {
    fn from(r: OverrideRow) -> RatelimitOverride {
        RatelimitOverride {
            id: r.id,
            workspace_id: r.workspace_id,
            namespace: r.namespace,
            identifier: r.identifier,
            limit: u32::try_from(r.rate_limit).unwrap_or(0),
            duration_ms: u64::try_from(r.duration_ms).unwrap_or(0),
            created_by: r.created_by,
            created_at: from_ms(r.created_at),
            updated_at: from_ms(r.updated_at),
        }
    }
}

impl Store {
    /// Sets `o`'s identifier's override in its namespace: inserted with `o.id`, or the
    /// existing one's limit and duration replaced (its id and creation kept).
    pub async fn set_ratelimit_override(
        &self,
        o: &RatelimitOverride,
        audit: &crate::AuditRecord,
    ) -> Result<OverrideWrite, StoreError> {
        let mut tx = self.audited(&o.workspace_id, audit, o.updated_at).await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT id FROM ratelimit_overrides WHERE workspace_id = $1 AND namespace = $2 AND identifier = $3",
        )
        .bind(&o.workspace_id)
        .bind(&o.namespace)
        .bind(&o.identifier)
        .fetch_optional(&mut **tx)
        .await?;
        if existing.is_none() {
            // Counted inside the change: two at once may pass together, which only bounds
            // the namespace a little more loosely.
            let (all, patterns): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), SUM(is_pattern) FROM ratelimit_overrides WHERE workspace_id = $1 AND namespace = $2",
            )
            .bind(&o.workspace_id)
            .bind(&o.namespace)
            .fetch_one(&mut **tx)
            .await?;
            let patterns = patterns.unwrap_or(0);
            let full = all >= MAX_OVERRIDES as i64 || (is_pattern(&o.identifier) && patterns >= MAX_PATTERNS as i64);
            if full {
                tx.rollback().await?;
                return Ok(OverrideWrite::Full);
            }
        }
        let row = sqlx::query_as::<_, OverrideRow>(&format!(
            "INSERT INTO ratelimit_overrides (id, workspace_id, namespace, identifier, is_pattern, rate_limit, \
             duration_ms, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
             ON CONFLICT (workspace_id, namespace, identifier) DO UPDATE SET rate_limit = excluded.rate_limit, \
             duration_ms = excluded.duration_ms, updated_at = excluded.updated_at RETURNING {COLUMNS}"
        ))
        .bind(&o.id)
        .bind(&o.workspace_id)
        .bind(&o.namespace)
        .bind(&o.identifier)
        .bind(i32::from(is_pattern(&o.identifier)))
        .bind(i64::from(o.limit))
        .bind(i64::try_from(o.duration_ms).unwrap_or(i64::MAX))
        .bind(&o.created_by)
        .bind(to_ms(o.updated_at))
        .fetch_one(&mut **tx)
        .await?;
        let stored = RatelimitOverride::from(row);
        tx.target_id(&stored.id);
        emit(&mut tx, &ratelimit_override_event(&o.workspace_id), o.updated_at).await?;
        tx.commit().await?;
        Ok(OverrideWrite::Set(stored))
    }

    /// A page of a workspace's overrides, by id after `after`, optionally of one namespace.
    pub async fn list_ratelimit_overrides(
        &self,
        workspace_id: &str,
        namespace: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RatelimitOverride>, StoreError> {
        // Placeholders numbered in the order they appear (SQLite numbers them so).
        let sql = match namespace {
            Some(_) => format!(
                "SELECT {COLUMNS} FROM ratelimit_overrides WHERE workspace_id = $1 AND id > $2 AND namespace = $3 \
                 ORDER BY id LIMIT $4"
            ),
            None => format!(
                "SELECT {COLUMNS} FROM ratelimit_overrides WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
        };
        let mut q = sqlx::query_as::<_, OverrideRow>(&sql).bind(workspace_id).bind(after.unwrap_or(""));
        if let Some(ns) = namespace {
            q = q.bind(ns);
        }
        q = q.bind(i64::from(limit));
        Ok(q.fetch_all(&self.pool).await?.into_iter().map(RatelimitOverride::from).collect())
    }

    /// Every override of one namespace (at most [`MAX_OVERRIDES`], and a few more after
    /// concurrent sets), in id order: what a node holds to answer checks in it.
    pub async fn namespace_ratelimit_overrides(
        &self,
        workspace_id: &str,
        namespace: &str,
    ) -> Result<Vec<RatelimitOverride>, StoreError> {
        let rows = sqlx::query_as::<_, OverrideRow>(&format!(
            "SELECT {COLUMNS} FROM ratelimit_overrides WHERE workspace_id = $1 AND namespace = $2 ORDER BY id"
        ))
        .bind(workspace_id)
        .bind(namespace)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(RatelimitOverride::from).collect())
    }

    /// Deletes one override; `None` when the workspace has no such override.
    pub async fn delete_ratelimit_override(
        &self,
        workspace_id: &str,
        id: &str,
        now: DateTime<Utc>,
        audit: &crate::AuditRecord,
    ) -> Result<Option<RatelimitOverride>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let row = sqlx::query_as::<_, OverrideRow>(&format!(
            "DELETE FROM ratelimit_overrides WHERE workspace_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let o = RatelimitOverride::from(row);
        tx.changes(serde_json::json!({
            "namespace": o.namespace, "identifier": o.identifier, "limit": o.limit, "duration": o.duration_ms
        }));
        emit(&mut tx, &ratelimit_override_event(workspace_id), now).await?;
        tx.commit().await?;
        Ok(Some(o))
    }
}
