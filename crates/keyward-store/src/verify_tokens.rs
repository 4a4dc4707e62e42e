//! Verify tokens: credentials a verifying service sends so that only keys of one workspace
//! verify. Revoking one emits a change event, so every node's cache forgets it.

use chrono::{DateTime, Utc};
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::model::KeyLeak;
use sqlx::any::AnyRow;
use sqlx::FromRow;

use crate::events::emit;
use crate::{Store, StoreError};

/// How change events name a verify token: `vt:` and its hash.
pub const VERIFY_TOKEN_EVENT_PREFIX: &str = "vt:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyToken {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub hash: String,
    pub start: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Its first leak report, when there was one (docs/LEAKS.md).
    pub leak: Option<KeyLeak>,
}

/// The columns a token is written with.
const COLUMNS: &str = "id, workspace_id, name, hash, start, created_by, created_at, revoked_at";
/// The columns a token is read from: [`COLUMNS`] and where it was reported leaked.
const READ_COLUMNS: &str = "id, workspace_id, name, hash, start, created_by, created_at, revoked_at, \
     leaked_at, leak_source, leak_url";

/// A `verify_tokens` row as stored ([`READ_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    workspace_id: String,
    name: String,
    hash: String,
    start: String,
    created_by: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
    leaked_at: Option<i64>,
    leak_source: Option<String>,
    leak_url: Option<String>,
}

fn from_row(r: &AnyRow) -> Result<VerifyToken, StoreError> {
    let r = TokenRow::from_row(r)?;
    Ok(VerifyToken {
        id: r.id,
        workspace_id: r.workspace_id,
        name: r.name,
        hash: r.hash,
        start: r.start,
        created_by: r.created_by,
        created_at: from_ms(r.created_at),
        revoked_at: r.revoked_at.map(from_ms),
        leak: r.leaked_at.map(|at| KeyLeak {
            at: from_ms(at),
            source: r.leak_source.unwrap_or_default(),
            url: r.leak_url,
        }),
    })
}

impl Store {
    pub async fn insert_verify_token(&self, t: &VerifyToken, audit: &crate::AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.audited(&t.workspace_id, audit, t.created_at).await?;
        sqlx::query(&format!("INSERT INTO verify_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)"))
            .bind(&t.id)
            .bind(&t.workspace_id)
            .bind(&t.name)
            .bind(&t.hash)
            .bind(&t.start)
            .bind(&t.created_by)
            .bind(to_ms(t.created_at))
            .execute(&mut **tx)
            .await?;
        // A node may have cached "no such token" for this hash.
        emit(&mut tx, &format!("{VERIFY_TOKEN_EVENT_PREFIX}{}", t.hash), t.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The workspace each live (unrevoked) token among `hashes` binds to.
    pub async fn verify_token_workspaces(
        &self,
        hashes: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let mut out = std::collections::HashMap::with_capacity(hashes.len());
        if hashes.is_empty() {
            return Ok(out);
        }
        let marks: Vec<String> = (1..=hashes.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT hash, workspace_id FROM verify_tokens WHERE revoked_at IS NULL AND hash IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query_as::<_, (String, String)>(&sql);
        for h in hashes {
            q = q.bind(h);
        }
        out.extend(q.fetch_all(&self.pool).await?);
        Ok(out)
    }

    /// The workspace a live (unrevoked) token binds to.
    pub async fn verify_token_workspace(&self, hash: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT workspace_id FROM verify_tokens WHERE hash = $1 AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every verify-token hash (revoked ones too), streamed: the set of existing ones.
    pub fn verify_token_hashes(&self) -> crate::Column<'_> {
        crate::column(&self.pool, "SELECT hash FROM verify_tokens")
    }

    pub async fn list_verify_tokens(&self, workspace_id: &str) -> Result<Vec<VerifyToken>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {READ_COLUMNS} FROM verify_tokens WHERE workspace_id = $1 ORDER BY id"))
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(from_row).collect()
    }

    /// Revokes a token at once on every node; `None` when the workspace has no such token.
    pub async fn revoke_verify_token(
        &self,
        workspace_id: &str,
        id: &str,
        now: DateTime<Utc>,
        audit: &crate::AuditRecord,
    ) -> Result<Option<VerifyToken>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let row = sqlx::query(&format!(
            "UPDATE verify_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE workspace_id = $2 AND id = $3 \
             RETURNING {READ_COLUMNS}"
        ))
        .bind(to_ms(now))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let t = from_row(&row)?;
        emit(&mut tx, &format!("{VERIFY_TOKEN_EVENT_PREFIX}{}", t.hash), now).await?;
        tx.commit().await?;
        Ok(Some(t))
    }
}
