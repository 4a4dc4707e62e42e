//! The audit trail on the wire: events as stored and served, a page of them, and the outcome
//! of recomputing a chain. Their hashing and the chain's check are `keyward_core::audit`'s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who did it: a member (by session), a management key, or the server itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditActor {
    /// `member`, `management_key` or `system`
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
}

/// What it was done to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditTarget {
    /// `key`, `member`, `role`, `service_account`, `policy`, `approval`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
}

/// One audit event as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    pub id: String,
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub workspace_id: String,
    pub actor: AuditActor,
    /// e.g. `key.create`
    pub action: String,
    pub target: AuditTarget,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// What changed; never a secret.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub changes: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// `GET /v1/audit`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditList {
    pub items: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

/// The outcome of recomputing a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ChainCheck {
    Intact { ok: bool, events: u64, head: String },
    Broken { ok: bool, broken_at: i64, reason: String },
}
