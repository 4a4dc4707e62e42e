//! Roles and service accounts on the wire: `/v1/roles…` and `/v1/service-accounts…`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /v1/roles`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRoleRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Permission patterns, with the wildcards of permission queries (`wallet.*`).
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `PATCH /v1/roles/{name}`: a field left out keeps its value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

/// A role as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleView {
    pub name: String,
    pub description: String,
    /// What a key holding the role may do. `null` only for a member role never set: keys
    /// get nothing from it and its members may give keys any permission.
    pub permissions: Option<Vec<String>>,
    /// One of the six member roles (cannot be deleted).
    pub member_role: bool,
    /// Keys holding the role (through `roles`, `grants` or their service account).
    pub keys: u64,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// A change waiting on an approval request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleList {
    pub items: Vec<RoleView>,
}

/// `POST /v1/service-accounts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccountRequest {
    pub name: String,
    /// A workspace role (custom or member role); every key of the account holds it.
    pub role: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// `PATCH /v1/service-accounts/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceAccountRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `true` stops every key of the account at once (`DISABLED`); `false` restarts them.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// A service account: a member of kind `service` that cannot log in and owns keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceAccountView {
    pub id: String,
    /// Always `service`.
    pub kind: String,
    pub name: String,
    pub description: String,
    pub role: String,
    pub disabled: bool,
    /// Its keys that are not revoked.
    pub keys: u64,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A role change waiting on this approval request (`role.update`): `role` is still the
    /// one in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceAccountList {
    pub items: Vec<ServiceAccountView>,
}
