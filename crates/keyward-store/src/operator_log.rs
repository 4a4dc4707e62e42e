//! The operator log: what operators (and the `keyward` command on the database, and the
//! server's own erasures) did across workspaces. Each line is written in its change's own
//! transaction, so there is no operator change without its line.

use chrono::{DateTime, Utc};
use keyward_core::audit::{AuditActor, AuditTarget};
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::operator_action::OperatorAction;
use keyward_core::wire::operators::OperatorLogEntry;
use serde_json::Value;

use crate::audit::{AuditRecord, Origin};
use crate::tx::Tx;
use crate::{Store, StoreError};

/// What an operator change says about itself; storage adds the time.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorRecord {
    /// `opl_…`, made by the caller (storage has no randomness).
    pub id: String,
    pub actor: AuditActor,
    pub action: OperatorAction,
    pub workspace_id: Option<String>,
    /// What changed; never a secret.
    pub changes: Value,
    pub origin: Origin,
}

impl OperatorRecord {
    /// An operator token's holder doing `action`.
    pub fn by_token(id: String, token: (&str, &str), action: OperatorAction, origin: Origin) -> OperatorRecord {
        OperatorRecord {
            id,
            actor: AuditActor { kind: "operator".into(), id: Some(token.0.into()), name: Some(token.1.into()) },
            action,
            workspace_id: None,
            changes: Value::Null,
            origin,
        }
    }

    /// The `keyward` command run on the database (whoever holds the data dir or URL).
    pub fn by_cli(id: String, action: OperatorAction) -> OperatorRecord {
        OperatorRecord {
            id,
            actor: AuditActor { kind: "cli".into(), id: None, name: None },
            action,
            workspace_id: None,
            changes: Value::Null,
            origin: Origin::default(),
        }
    }

    /// The same, about workspace `workspace_id`.
    pub fn about(mut self, workspace_id: &str) -> OperatorRecord {
        self.workspace_id = Some(workspace_id.to_string());
        self
    }

    /// The same, saying what changed.
    pub fn with_changes(mut self, changes: Value) -> OperatorRecord {
        self.changes = changes;
        self
    }

    /// The same change as the workspace's own chain records it, done to `target`.
    pub(crate) fn audit(&self, target: AuditTarget) -> Option<AuditRecord> {
        Some(AuditRecord {
            actor: self.actor.clone(),
            action: self.action.audit_action()?,
            target,
            changes: self.changes.clone(),
            origin: self.origin.clone(),
        })
    }
}

const COLUMNS: &str =
    "id, time, actor_type, actor_id, actor_name, action, workspace_id, changes, ip, user_agent, request_id";
/// What a listing shows ([`LogRow`]): the user agent is kept, not listed.
const LISTED: &str = "id, time, actor_type, actor_id, actor_name, action, workspace_id, changes, ip, request_id";

#[derive(sqlx::FromRow)]
struct LogRow {
    id: String,
    time: i64,
    actor_type: String,
    actor_id: Option<String>,
    actor_name: Option<String>,
    action: String,
    workspace_id: Option<String>,
    changes: String,
    ip: Option<String>,
    request_id: Option<String>,
}

impl From<LogRow> for OperatorLogEntry {
    fn from(r: LogRow) -> OperatorLogEntry {
        OperatorLogEntry {
            id: r.id,
            time: from_ms(r.time),
            actor: AuditActor { kind: r.actor_type, id: r.actor_id, name: r.actor_name },
            action: r.action,
            workspace_id: r.workspace_id,
            changes: serde_json::from_str(&r.changes).unwrap_or(Value::String(r.changes)),
            ip: r.ip,
            request_id: r.request_id,
        }
    }
}

/// Writes `rec`'s line inside `tx`.
pub(crate) async fn write(tx: &mut Tx, rec: &OperatorRecord, now: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(&format!("INSERT INTO operator_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"))
        .bind(&rec.id)
        .bind(to_ms(now))
        .bind(&rec.actor.kind)
        .bind(&rec.actor.id)
        .bind(&rec.actor.name)
        .bind(rec.action.as_str())
        .bind(&rec.workspace_id)
        .bind(rec.changes.to_string())
        .bind(&rec.origin.ip)
        .bind(&rec.origin.user_agent)
        .bind(&rec.origin.request_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// One page of the log, newest first: lines before `cursor` (an id), `limit + 1` at most;
    /// only `workspace_id`'s when given.
    pub async fn operator_log(
        &self,
        workspace_id: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OperatorLogEntry>, StoreError> {
        let mut sql = format!("SELECT {LISTED} FROM operator_log WHERE id < $1");
        if workspace_id.is_some() {
            sql.push_str(" AND workspace_id = $3");
        }
        sql.push_str(" ORDER BY id DESC LIMIT $2");
        // Every id sorts below `~` (ids are ASCII letters, digits and `_`).
        let mut q = sqlx::query_as::<_, LogRow>(&sql).bind(cursor.unwrap_or("~")).bind(i64::from(limit) + 1);
        if let Some(w) = workspace_id {
            q = q.bind(w);
        }
        Ok(q.fetch_all(&self.pool).await?.into_iter().map(OperatorLogEntry::from).collect())
    }
}
