//! Member roles and what each may do: the one table every management route consults.
//!
//! | action                         | owner | admin | manager | developer | operator | viewer |
//! |--------------------------------|:-----:|:-----:|:-------:|:---------:|:--------:|:------:|
//! | read keys, members, policies, approvals | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | create keys                    | ✓ | ✓ | ✓ | ✓ | ✓ |   |
//! | import keys by hash            | ✓ | ✓ |   |   |   |   |
//! | update keys                    | ✓ | ✓ | ✓ | own |   |   |
//! | rotate keys                    | ✓ | ✓ | ✓ | own | ✓ |   |
//! | revoke keys                    | ✓ | ✓ | ✓ | own | ✓ |   |
//! | invite, remove, change members | ✓ | ✓ |   |   |   |   |
//! | change policies                | ✓ | ✓ |   |   |   |   |
//! | manage roles, service accounts | ✓ | ✓ |   |   |   |   |
//! | read the audit trail           | ✓ | ✓ | ✓ |   |   |   |
//! | spend a rate limit (`POST /v1/ratelimit`) | ✓ | ✓ | ✓ | ✓ | ✓ |   |
//! | set and delete rate limit overrides | ✓ | ✓ | ✓ |   |   |   |
//! | create, change, delete identities | ✓ | ✓ | ✓ |   |   |   |
//!
//! "own": only keys the developer created. Approving is governed by each policy's
//! `approver_roles`. Nobody grants more than they hold: a member assigns roles up to their own
//! rank, and a key's `roles` may name a member role only up to its creator's rank. What a
//! member may put on a key in permissions is their reach (`authority::Reach`): the API
//! permissions of their member role once an owner sets them, everything until then, and
//! always everything for an owner.

pub use keyward_proto::member_role::{Role, ALL_ROLES};

/// What a management call wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    CreateKey,
    /// Import keys by the hashes of secrets made elsewhere (`POST /v1/keys/import`): many
    /// keys at once whose secrets the importer chose, so owners and admins only.
    ImportKeys,
    UpdateKey,
    RotateKey,
    RevokeKey,
    ManageMembers,
    ManagePolicies,
    /// Define roles and service accounts (and create keys for the accounts).
    ManageRoles,
    /// Read the audit trail.
    ReadAudit,
    /// Spend a service rate limit (`POST /v1/ratelimit` with a cost; a look is `Read`).
    Ratelimit,
    /// Set and delete service rate limit overrides.
    ManageRatelimits,
    /// Create, change and delete identities (reading them is `Read`; a key naming an
    /// unknown `external_id` creates one under `CreateKey`/`UpdateKey`).
    ManageIdentities,
    /// Register apps, install them in the workspace and uninstall them (owners and admins).
    ManageApps,
}

/// The answer of [`RoleMatrix::allows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Yes,
    /// Only on keys the member created.
    OwnKeysOnly,
    No,
}

/// The role table (the type is the wire crate's).
pub trait RoleMatrix {
    fn allows(self, action: Action) -> Grant;
}

impl RoleMatrix for Role {
    fn allows(self, action: Action) -> Grant {
        use Action::*;
        use Role::*;
        match (self, action) {
            (_, Read) => Grant::Yes,
            (Owner | Admin, _) => Grant::Yes,
            (
                Manager,
                CreateKey | UpdateKey | RotateKey | RevokeKey | ReadAudit | Ratelimit | ManageRatelimits
                | ManageIdentities,
            ) => Grant::Yes,
            (Developer, CreateKey | Ratelimit) => Grant::Yes,
            (Developer, UpdateKey | RotateKey | RevokeKey) => Grant::OwnKeysOnly,
            (Operator, CreateKey | RotateKey | RevokeKey | Ratelimit) => Grant::Yes,
            _ => Grant::No,
        }
    }
}

/// The reach of a member of `role` whose member role grants `permissions` (`None`: unset).
pub fn reach(role: Role, permissions: Option<&[String]>) -> crate::authority::Reach {
    use crate::authority::Reach;
    match (role, permissions) {
        (Role::Owner, _) | (_, None) => Reach::Everything,
        (_, Some(p)) => Reach::Only(p.to_vec()),
    }
}

/// The member roles named in a key's `roles` that `granter` may not give.
pub fn roles_beyond(granter: Role, key_roles: &[String]) -> Option<&str> {
    key_roles.iter().map(String::as_str).find(|r| Role::parse(r).is_some_and(|r| !granter.may_grant(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips() {
        for r in ALL_ROLES {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn granting_is_bounded_by_rank() {
        assert!(Role::Admin.may_grant(Role::Developer));
        assert!(Role::Admin.may_grant(Role::Admin));
        assert!(!Role::Admin.may_grant(Role::Owner));
        assert!(!Role::Viewer.may_grant(Role::Operator));
        let roles = vec!["billing".to_string(), "admin".to_string()];
        assert_eq!(roles_beyond(Role::Developer, &roles), Some("admin"));
        assert_eq!(roles_beyond(Role::Owner, &roles), None);
    }
}
