//! The six member roles, ranked: a member may give a role up to their own (`Role::may_grant`).
//! What each may do is `keyward_core::roles`' table.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Developer,
    Manager,
    Admin,
    Owner,
}

pub const ALL_ROLES: [Role; 6] =
    [Role::Owner, Role::Admin, Role::Manager, Role::Developer, Role::Operator, Role::Viewer];

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Developer => "developer",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        ALL_ROLES.into_iter().find(|r| r.as_str() == s)
    }

    /// May a member with this role give `other` to someone (a member or a key)?
    pub fn may_grant(self, other: Role) -> bool {
        other <= self
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
