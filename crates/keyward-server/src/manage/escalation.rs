//! No escalation: a member may put on a key only what they could give directly. Their reach
//! is their member role's API permissions once an owner sets them (everything until then;
//! owners always everything). A key's own permissions, and the permissions of every role it
//! gets (through `roles`, `grants` or its service account), must lie inside that reach, and a
//! member role is given only up to the giver's rank. Checked on create, update, rotate, the
//! approval that applies any of them, role changes and service accounts. Every role named
//! must exist (a member role always does).

use keyward_core::authority::{KeyGrant, Reach};
use keyward_core::roles::{self, Role};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What is about to be given to a key (or to a role or service account).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Gift<'a> {
    pub permissions: &'a [String],
    pub roles: &'a [String],
    pub grants: &'a [KeyGrant],
}

impl<'a> Gift<'a> {
    /// Everything a key holds by itself (its owner's role aside).
    pub(crate) fn of_key(k: &'a keyward_core::model::KeyRecord) -> Self {
        Gift { permissions: &k.permissions, roles: &k.roles, grants: &k.grants }
    }
}

impl AppState {
    /// The reach of a member of `role` in `workspace_id`.
    pub(crate) async fn reach(&self, workspace_id: &str, role: Role) -> ApiResult<Reach> {
        let row = self.store.get_role(workspace_id, role.as_str()).await?;
        Ok(roles::reach(role, row.and_then(|r| r.permissions).as_deref()))
    }

    /// Refuses (403) a gift beyond what a member of `giver` may give; 400 for a grant naming
    /// a role that does not exist.
    pub(crate) async fn may_give(&self, workspace_id: &str, giver: Role, gift: Gift<'_>) -> ApiResult<()> {
        if gift.permissions.is_empty() && gift.roles.is_empty() && gift.grants.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = gift.roles.to_vec();
        names.extend(gift.grants.iter().map(|g| g.role.clone()));
        if let Some(r) = roles::roles_beyond(giver, &names) {
            return Err(ApiError::Forbidden(format!("a {giver} cannot give a key the {r} role")));
        }
        let reach = self.reach(workspace_id, giver).await?;
        if let Some(p) = reach.first_beyond(gift.permissions) {
            return Err(ApiError::Forbidden(format!(
                "a {giver} may not give the permission {p:?}: it is beyond the {giver} role's permissions"
            )));
        }
        let defs = self.store.role_defs(workspace_id, &names).await?;
        // Only roles that exist: a name given ahead of its role would gain whatever the role
        // is later made to grant, beyond what its giver could give.
        for r in gift.roles {
            if !defs.contains_key(r)
                && Role::parse(r).is_none()
                && self.store.get_role(workspace_id, r).await?.is_none()
            {
                return Err(ApiError::invalid("roles", format!("no role named {r:?}: create the role first")));
            }
        }
        for (i, g) in gift.grants.iter().enumerate() {
            if !defs.contains_key(&g.role) && Role::parse(&g.role).is_none() {
                let exists = self.store.get_role(workspace_id, &g.role).await?.is_some();
                if !exists {
                    return Err(ApiError::invalid(format!("grants[{i}].role"), format!("no role named {:?}", g.role)));
                }
            }
        }
        for (name, perms) in &defs {
            if let Some(p) = reach.first_beyond(perms) {
                return Err(ApiError::Forbidden(format!(
                    "a {giver} may not give the role {name}: its permission {p:?} is beyond the {giver} role's permissions"
                )));
            }
        }
        Ok(())
    }
}
