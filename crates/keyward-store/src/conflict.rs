//! Why a change was refused: typed, so the server words each refusal itself (in
//! `server/error.rs`) and nothing matches on a database's message.

use keyward_core::model::KeyStatus;

/// A change that conflicts with what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Another key already has this public key (registrations are unique server-wide).
    PublicKeyTaken,
    /// A member with this email already belongs to the workspace.
    EmailTaken,
    /// A stored secret's hash collided (a management key, session, or key secret).
    DuplicateSecret,
    /// The change would leave the workspace with no owner.
    LastOwner,
    /// The same `Idempotency-Key` is being used by a request still in flight.
    IdempotencyInFlight,
    /// The member's invitation or promotion waits on an approval request.
    MemberPendingApproval,
    /// The key waits on an approval request (its id) and refuses other changes.
    KeyPendingApproval(Option<String>),
    /// The key's status does not allow the change.
    KeyStatus(KeyStatus),
    /// Only secret keys can be rotated.
    NotRotatable,
    /// The key was already rotated and is in its grace period.
    AlreadyRotated,
    /// A role with this name already exists in the workspace.
    RoleExists,
    /// A change of the role waits on an approval request (its id).
    RolePendingApproval(Option<String>),
    /// Another service account of the workspace has this name.
    ServiceAccountNameTaken,
    /// The policy changed after this policy change was asked for: it was judged (weakening
    /// or not, which quorum) against a policy no longer in force.
    PolicyChangedMeanwhile,
    /// Another identity of the workspace has this `external_id`.
    ExternalIdTaken,
    /// An imported hash is already stored (its item's place in the call, when known).
    ImportHashTaken(Option<usize>),
    /// The workspace is suspended already.
    WorkspaceSuspended,
    /// The workspace is not suspended (nothing to resume).
    WorkspaceNotSuspended,
    /// The workspace is deleted (its data erased or on its way out).
    WorkspaceDeleted,
    /// The workspace still has this many live keys (a delete without `force`).
    WorkspaceHasLiveKeys(u64),
    /// Some other unique constraint of the schema (named by the database).
    Unique(String),
}

impl Conflict {
    /// The conflict a unique-constraint violation stands for, from the constraint or index
    /// name (PostgreSQL) or the message naming the columns (SQLite: `UNIQUE constraint
    /// failed: api_keys.public_key`). Both name the table's column, so one test suits both.
    pub(crate) fn from_unique(constraint: Option<&str>, message: &str) -> Conflict {
        let what = format!("{} {message}", constraint.unwrap_or_default());
        if what.contains("identities") {
            Conflict::ExternalIdTaken
        } else if what.contains("public_key") {
            Conflict::PublicKeyTaken
        } else if what.contains("email") {
            Conflict::EmailTaken
        } else if what.contains("key_imports") || what.contains("import_hash") {
            Conflict::ImportHashTaken(None)
        } else if what.contains("idempotency") {
            Conflict::IdempotencyInFlight
        } else if what.contains("hash") || what.contains("sessions") {
            Conflict::DuplicateSecret
        } else {
            Conflict::Unique(constraint.unwrap_or("unique").to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_of_both_backends() {
        let pg = |c: &str| Conflict::from_unique(Some(c), "duplicate key value violates unique constraint");
        let lite = |m: &str| Conflict::from_unique(None, m);
        assert_eq!(pg("api_keys_public_key"), Conflict::PublicKeyTaken);
        assert_eq!(lite("UNIQUE constraint failed: api_keys.public_key"), Conflict::PublicKeyTaken);
        assert_eq!(pg("members_workspace_id_email_key"), Conflict::EmailTaken);
        assert_eq!(lite("UNIQUE constraint failed: members.workspace_id, members.email"), Conflict::EmailTaken);
        assert_eq!(pg("idempotency_pkey"), Conflict::IdempotencyInFlight);
        assert_eq!(
            lite("UNIQUE constraint failed: idempotency.workspace_id, idempotency.key_hash"),
            Conflict::IdempotencyInFlight
        );
        assert_eq!(pg("sessions_pkey"), Conflict::DuplicateSecret);
        assert_eq!(pg("key_imports_pkey"), Conflict::ImportHashTaken(None));
        assert_eq!(lite("UNIQUE constraint failed: key_imports.import_hash"), Conflict::ImportHashTaken(None));
        assert_eq!(pg("workspaces_pkey"), Conflict::Unique("workspaces_pkey".into()));
    }
}
