//! The shapes of members, sessions, MFA and approval requests in the public contract,
//! shared by the server and the SDK.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::member_role::Role;

/// A member as the API shows it; `status` is `invited` until the setup token is used.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberView {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// invited or active
    pub status: String,
    pub mfa_enabled: bool,
    pub created_at: DateTime<Utc>,
    /// The approval request this member's invitation or promotion waits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// The role a pending promotion would give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_role: Option<Role>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberList {
    pub items: Vec<MemberView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    pub email: String,
    /// owner, admin, manager, developer, operator or viewer
    pub role: String,
}

/// The new member and the one-time `setup_token` to hand them (shown only here).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invitation {
    #[serde(flatten)]
    pub member: MemberView,
    pub setup_token: String,
    pub setup_expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    pub setup_token: String,
    pub password: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub password: String,
    /// Required when the member already has a password.
    pub current_password: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpEnrolment {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    pub otpauth_uri: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OtpBody {
    pub otp: Option<String>,
}

/// Single-use recovery codes, shown only here.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewManagementKeyView {
    pub id: String,
    /// Shown only here.
    pub management_key: String,
    pub start: String,
    pub role: Role,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /v1/members/me/keys` (the body is optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewManagementKeyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// e.g. `90d`; none: the key lasts until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// A fresh one-time code: required when the member has MFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
}

/// A management key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManagementKeyView {
    pub id: String,
    pub member_id: String,
    pub email: String,
    pub name: String,
    pub start: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was first reported leaked (GitHub's secret scanning or `POST /v1/leaks`,
    /// docs/LEAKS.md); absent when never reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_at: Option<DateTime<Utc>>,
    /// Where that first report found it: `github:<source>` or `report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak_source: Option<String>,
    /// The URL the report named, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManagementKeyList {
    pub items: Vec<ManagementKeyView>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// A TOTP code (or a recovery code), when the member has MFA on.
    pub otp: Option<String>,
    /// Needed only when the email is a member of several workspaces.
    pub workspace_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionView {
    /// `Authorization: Bearer <token>` for the management API.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub member_id: String,
    pub workspace_id: String,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoteView {
    pub member_id: String,
    pub at: DateTime<Utc>,
}

/// An approval request. `details` holds the proposed changes of an update
/// (`{"changes": …}`) or the rotated key and grace period of a rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalView {
    pub id: String,
    /// key.create, key.update, key.revoke or key.rotate
    pub action: String,
    /// The key concerned (for a rotation: the new key).
    pub key_id: String,
    /// pending, approved, rejected, cancelled or expired
    pub status: String,
    pub requested_by: String,
    /// Approvals needed.
    pub required: u32,
    pub approved_by: Vec<VoteView>,
    pub approver_roles: Vec<Role>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Value,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalList {
    pub items: Vec<ApprovalView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// A current TOTP code (or a recovery code).
    pub otp: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    pub otp: Option<String>,
    pub reason: Option<String>,
}

/// The answer of `PUT /v1/policies`: the whole policy when the change applied at once (200),
/// or the approval request it waits on (202) while the policy in force stays as it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PolicyAnswer {
    Pending(ApprovalView),
    Applied(crate::policy::Policy),
}
