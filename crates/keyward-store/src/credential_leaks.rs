//! Leaked credentials that are not API keys — management keys, verify tokens and session
//! tokens: found many at once by their HMACs (GitHub sends batches), and a credential's first
//! leak report recorded with what the policy makes of it, in one audited transaction. API
//! keys (and keys imported by hash) are `leaks.rs`'.

use chrono::{DateTime, Utc};
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::model::KeyLeak;

use crate::audit::{append, AuditRecord};
use crate::events::emit;
use crate::leaks::{insert_alert, CHUNK};
use crate::usage::Alert;
use crate::verify_tokens::VERIFY_TOKEN_EVENT_PREFIX;
use crate::{Store, StoreError};

/// A kind of credential a leak report can name besides API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeakableKind {
    ManagementKey,
    VerifyToken,
    Session,
}

impl LeakableKind {
    /// As audit targets and alert details name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            LeakableKind::ManagementKey => "management_key",
            LeakableKind::VerifyToken => "verify_token",
            LeakableKind::Session => "session",
        }
    }

    const fn table(self) -> &'static str {
        match self {
            LeakableKind::ManagementKey => "management_keys",
            LeakableKind::VerifyToken => "verify_tokens",
            LeakableKind::Session => "sessions",
        }
    }

    /// The columns of [`CredentialRow`], from this kind's table (a session is named by its
    /// member: it has no id or name of its own).
    const fn select(self) -> &'static str {
        match self {
            LeakableKind::ManagementKey => {
                "SELECT id, workspace_id, member_id, COALESCE(name, '') AS name, hash, revoked_at, expires_at, \
                 leaked_at, leak_source, leak_url FROM management_keys WHERE hash IN "
            }
            LeakableKind::VerifyToken => {
                "SELECT id, workspace_id, CAST(NULL AS TEXT) AS member_id, name, hash, revoked_at, \
                 CAST(NULL AS BIGINT) AS expires_at, \
                 leaked_at, leak_source, leak_url FROM verify_tokens WHERE hash IN "
            }
            LeakableKind::Session => {
                "SELECT s.member_id AS id, s.workspace_id, s.member_id, m.email AS name, s.hash, \
                 CAST(NULL AS BIGINT) AS revoked_at, \
                 s.expires_at, s.leaked_at, s.leak_source, s.leak_url \
                 FROM sessions s JOIN members m ON m.id = s.member_id WHERE s.hash IN "
            }
        }
    }
}

/// A management key, verify token or session as a leak report needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakableCredential {
    pub kind: LeakableKind,
    /// The management key's or verify token's id; for a session, its member's.
    pub id: String,
    pub workspace_id: String,
    /// The member a management key or session acts as (a verify token has none).
    pub member_id: Option<String>,
    /// The management key's or verify token's name; for a session, its member's email.
    pub name: String,
    /// The HMAC of its secret (how it is found, and named in change events).
    pub hash: String,
    /// Revoked, expired or ended: it works no more.
    pub dead: bool,
    /// Its first leak report, when there was one.
    pub leak: Option<KeyLeak>,
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    id: String,
    workspace_id: String,
    member_id: Option<String>,
    name: String,
    hash: String,
    revoked_at: Option<i64>,
    expires_at: Option<i64>,
    leaked_at: Option<i64>,
    leak_source: Option<String>,
    leak_url: Option<String>,
}

/// A credential's first leak report's effects, all in one transaction.
pub struct CredentialLeakFound<'a> {
    pub credential: &'a LeakableCredential,
    pub leak: &'a KeyLeak,
    /// The `<kind>.leaked` event.
    pub audit: &'a AuditRecord,
    /// `Some` (the revoke, or for a session the logout, event) when the policy ends a
    /// leaked credential.
    pub end: Option<&'a AuditRecord>,
    pub alert: &'a Alert,
    pub now: DateTime<Utc>,
}

impl Store {
    /// The credentials of `kind` (any state) whose HMAC is one of `hashes`, in as few
    /// statements as the batch allows.
    pub async fn credentials_by_hashes(
        &self,
        kind: LeakableKind,
        hashes: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<LeakableCredential>, StoreError> {
        let now = to_ms(now);
        let mut out = Vec::new();
        for chunk in hashes.chunks(CHUNK) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("{}({})", kind.select(), marks.join(", "));
            let mut q = sqlx::query_as::<_, CredentialRow>(&sql);
            for h in chunk {
                q = q.bind(h);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(LeakableCredential {
                    kind,
                    dead: r.revoked_at.is_some() || r.expires_at.is_some_and(|t| t <= now),
                    leak: r.leaked_at.map(|at| KeyLeak {
                        at: from_ms(at),
                        source: r.leak_source.unwrap_or_default(),
                        url: r.leak_url,
                    }),
                    id: r.id,
                    workspace_id: r.workspace_id,
                    member_id: r.member_id,
                    name: r.name,
                    hash: r.hash,
                });
            }
        }
        Ok(out)
    }

    /// Records a credential's first leak report: marks it, ends it when `f.end` says so
    /// (a management key or verify token revoked, a session ended — as a manual revoke or
    /// logout does, a verify token's change event telling every node), raises the `leaked`
    /// alert and appends the events. `false` when it was reported before (or is gone):
    /// nothing changes.
    pub async fn record_credential_leak(&self, f: &CredentialLeakFound<'_>) -> Result<bool, StoreError> {
        let c = f.credential;
        let mut tx = self.audited(&c.workspace_id, f.audit, f.now).await?;
        let mark = format!(
            "UPDATE {} SET leaked_at = $1, leak_source = $2, leak_url = $3 \
             WHERE hash = $4 AND workspace_id = $5 AND leaked_at IS NULL",
            c.kind.table()
        );
        let marked = sqlx::query(&mark)
            .bind(to_ms(f.leak.at))
            .bind(&f.leak.source)
            .bind(&f.leak.url)
            .bind(&c.hash)
            .bind(&c.workspace_id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if marked != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(end) = f.end {
            // Each as its manual counterpart: revoked_at set once; a session ends now.
            let sql = match c.kind {
                LeakableKind::ManagementKey => {
                    "UPDATE management_keys SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL"
                }
                LeakableKind::VerifyToken => {
                    "UPDATE verify_tokens SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL"
                }
                LeakableKind::Session => "UPDATE sessions SET expires_at = $1 WHERE hash = $2 AND expires_at > $1",
            };
            let ended = sqlx::query(sql).bind(to_ms(f.now)).bind(&c.hash).execute(&mut **tx).await?.rows_affected();
            if ended == 1 {
                if c.kind == LeakableKind::VerifyToken {
                    emit(&mut tx, &format!("{VERIFY_TOKEN_EVENT_PREFIX}{}", c.hash), f.now).await?;
                }
                append(&mut tx, &c.workspace_id, end, f.now).await?;
            }
        }
        insert_alert(&mut tx, f.alert).await?;
        tx.commit().await?;
        Ok(true)
    }
}
