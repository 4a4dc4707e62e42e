//! The operator's API on the wire (`/v1/workspaces`, `/v1/operator/log`; operator token
//! required): provisioning, listing, suspending, resuming and deleting workspaces, and the
//! log of what operators did.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::AuditActor;

/// `POST /v1/workspaces`: a new workspace and its owner.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWorkspaceRequest {
    /// 1-64 characters.
    pub name: String,
    /// The workspace's key prefix (`caibo` gives `caibo_live_sk_…`): 1-16 lowercase letters or
    /// digits, starting with a letter. Default `kw`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The owner: sets a password with `owner.setup_token` (`POST /v1/members/setup`).
    pub owner_email: String,
}

/// The owner of a workspace just provisioned, and the one-time token to hand them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OwnerSetup {
    pub member_id: String,
    pub email: String,
    /// Shown only here: `POST /v1/members/setup {"setup_token", "password"}`.
    pub setup_token: String,
    pub setup_expires_at: DateTime<Utc>,
}

/// The answer of `POST /v1/workspaces`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvisionedWorkspace {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub owner: OwnerSetup,
}

/// How many keys a workspace holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceKeyCounts {
    /// Keys that verify or may (active, awaiting approval, not expired).
    pub live: u64,
    /// Every stored key, revoked and expired ones included.
    pub total: u64,
}

/// A workspace as its operator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    /// active, suspended or deleted
    pub status: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    /// When the deleted workspace's data was erased (absent while it is being erased).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<DateTime<Utc>>,
    pub keys: WorkspaceKeyCounts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceList {
    pub items: Vec<WorkspaceView>,
    pub next_cursor: Option<String>,
}

/// `PATCH /v1/workspaces/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkspaceChanges {
    /// 1-64 characters.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /v1/workspaces/{id}/suspend`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    /// Why (1-500 characters): told to the workspace's members, its audit trail and webhooks.
    pub reason: String,
}

/// One operator action, as `GET /v1/operator/log` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorLogEntry {
    pub id: String,
    pub time: DateTime<Utc>,
    /// `operator` (an operator token: its id and name), `cli` (the `keyward` command on the
    /// database) or `system`.
    pub actor: AuditActor,
    /// e.g. `workspace.suspend`, `operator_token.create`
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub changes: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A page of the operator log, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorLog {
    pub items: Vec<OperatorLogEntry>,
    pub next_cursor: Option<String>,
}
