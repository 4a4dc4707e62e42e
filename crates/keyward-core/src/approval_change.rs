//! What an approval request would change, typed per kind, and what it is about (its
//! subject). Stored as the request's action, its `payload` JSON (the shapes below, shown as
//! `details` by the API) and a `subject_kind`/`subject_id` pair; read back in one place.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::policy::{KeyAction, Policy, PolicyPatch};
use crate::roles::Role;
// The request body a key update carries (moves with the wire types).
use crate::wire::keys::UpdateKeyRequest;

/// The change a request asks for, with what it needs to be carried out or judged.
#[derive(Debug, Clone)]
pub enum ApprovalChange {
    /// `{}`
    KeyCreate,
    /// `{"changes": <the PATCH body>}`
    KeyUpdate { changes: Box<UpdateKeyRequest> },
    /// `{}`
    KeyRevoke,
    /// `{"old_key_id", "grace_period_seconds"}`; the subject is the successor.
    KeyRotate { old_key_id: String, grace_period_seconds: i64 },
    /// `{"role"}`
    MemberInvite { role: Role },
    /// `{"role"}`, with `"from"` when the change could cut a quorum.
    MemberRole { role: Role, from: Option<Role> },
    /// `{"role", "email"}`
    MemberRemove { role: Role, email: String },
    /// `{"permissions", "description"}` (each `null` when left as it is).
    RoleUpdate { permissions: Option<Vec<String>>, description: Option<String> },
    /// `{"changes", "weakens", "basis"}`: the patch, the weakening it makes (or `null`) and
    /// the policy it was judged against (absent in requests made before that was kept).
    PolicyUpdate { changes: Box<PolicyPatch>, weakens: Option<String>, basis: Option<Box<Policy>> },
    /// `{"role", "from"}`
    ServiceAccountRole { role: String, from: String },
    /// `{"app_id", "permissions", "scopes"}`: what the installation would grant.
    AppInstall { app_id: String, permissions: Vec<String>, scopes: Vec<String> },
}

#[derive(Serialize, Deserialize)]
struct Changes<T> {
    changes: T,
}

#[derive(Serialize, Deserialize)]
struct Rotate {
    old_key_id: String,
    #[serde(default)]
    grace_period_seconds: i64,
}

#[derive(Serialize, Deserialize)]
struct RoleOnly<R> {
    role: R,
}

#[derive(Serialize, Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
struct RoleFrom<R> {
    role: R,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<R>,
}

#[derive(Serialize, Deserialize)]
struct Remove {
    role: Role,
    email: String,
}

#[derive(Serialize, Deserialize)]
struct RoleEdit {
    #[serde(default)]
    permissions: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Install {
    app_id: String,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct PolicyChange {
    changes: Box<PolicyPatch>,
    #[serde(default)]
    weakens: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    basis: Option<Box<Policy>>,
}

fn read<T: DeserializeOwned>(payload: &Value) -> Result<T, String> {
    T::deserialize(payload).map_err(|e| e.to_string())
}

fn value<T: Serialize>(v: T) -> Value {
    // Every payload type serializes to a JSON object (no map with non-string keys).
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl ApprovalChange {
    /// The governed action this change is.
    pub fn action(&self) -> KeyAction {
        match self {
            ApprovalChange::KeyCreate => KeyAction::Create,
            ApprovalChange::KeyUpdate { .. } => KeyAction::Update,
            ApprovalChange::KeyRevoke => KeyAction::Revoke,
            ApprovalChange::KeyRotate { .. } => KeyAction::Rotate,
            ApprovalChange::MemberInvite { .. } => KeyAction::MemberInvite,
            ApprovalChange::MemberRole { .. } => KeyAction::MemberRole,
            ApprovalChange::MemberRemove { .. } => KeyAction::MemberRemove,
            ApprovalChange::RoleUpdate { .. } => KeyAction::RoleUpdate,
            ApprovalChange::PolicyUpdate { .. } => KeyAction::PolicyUpdate,
            ApprovalChange::ServiceAccountRole { .. } => KeyAction::ServiceAccountRole,
            ApprovalChange::AppInstall { .. } => KeyAction::AppInstall,
        }
    }

    /// The stored and shown payload: the same JSON as before it was typed.
    pub fn payload(&self) -> Value {
        match self {
            ApprovalChange::KeyCreate | ApprovalChange::KeyRevoke => json!({}),
            ApprovalChange::KeyUpdate { changes } => value(Changes { changes }),
            ApprovalChange::KeyRotate { old_key_id, grace_period_seconds } => {
                value(Rotate { old_key_id: old_key_id.clone(), grace_period_seconds: *grace_period_seconds })
            }
            ApprovalChange::MemberInvite { role } => value(RoleOnly { role }),
            ApprovalChange::MemberRole { role, from } => value(RoleFrom { role: *role, from: *from }),
            ApprovalChange::MemberRemove { role, email } => value(Remove { role: *role, email: email.clone() }),
            ApprovalChange::RoleUpdate { permissions, description } => {
                value(RoleEdit { permissions: permissions.clone(), description: description.clone() })
            }
            ApprovalChange::PolicyUpdate { changes, weakens, basis } => {
                value(PolicyChange { changes: changes.clone(), weakens: weakens.clone(), basis: basis.clone() })
            }
            ApprovalChange::ServiceAccountRole { role, from } => {
                value(RoleFrom { role: role.clone(), from: Some(from.clone()) })
            }
            ApprovalChange::AppInstall { app_id, permissions, scopes } => {
                value(Install { app_id: app_id.clone(), permissions: permissions.clone(), scopes: scopes.clone() })
            }
        }
    }

    /// Reads a stored request's change: the one reader of payloads. `Err` names what does
    /// not fit the action's shape.
    pub fn from_parts(action: KeyAction, payload: &Value) -> Result<ApprovalChange, String> {
        Ok(match action {
            KeyAction::Create => ApprovalChange::KeyCreate,
            KeyAction::Revoke => ApprovalChange::KeyRevoke,
            KeyAction::Update => {
                let c: Changes<Box<UpdateKeyRequest>> = read(payload)?;
                ApprovalChange::KeyUpdate { changes: c.changes }
            }
            KeyAction::Rotate => {
                let r: Rotate = read(payload)?;
                ApprovalChange::KeyRotate { old_key_id: r.old_key_id, grace_period_seconds: r.grace_period_seconds }
            }
            KeyAction::MemberInvite => ApprovalChange::MemberInvite { role: read::<RoleOnly<Role>>(payload)?.role },
            KeyAction::MemberRole => {
                let r: RoleFrom<Role> = read(payload)?;
                ApprovalChange::MemberRole { role: r.role, from: r.from }
            }
            KeyAction::MemberRemove => {
                let r: Remove = read(payload)?;
                ApprovalChange::MemberRemove { role: r.role, email: r.email }
            }
            KeyAction::RoleUpdate => {
                let r: RoleEdit = read(payload)?;
                ApprovalChange::RoleUpdate { permissions: r.permissions, description: r.description }
            }
            KeyAction::PolicyUpdate => {
                let p: PolicyChange = read(payload)?;
                ApprovalChange::PolicyUpdate { changes: p.changes, weakens: p.weakens, basis: p.basis }
            }
            KeyAction::ServiceAccountRole => {
                let r: RoleFrom<String> = read(payload)?;
                ApprovalChange::ServiceAccountRole { role: r.role, from: r.from.unwrap_or_default() }
            }
            KeyAction::AppInstall => {
                let i: Install = read(payload)?;
                ApprovalChange::AppInstall { app_id: i.app_id, permissions: i.permissions, scopes: i.scopes }
            }
        })
    }
}

/// Two changes are equal when they are the same action with the same stored payload (the
/// request bodies they carry have no equality of their own).
impl PartialEq for ApprovalChange {
    fn eq(&self, other: &Self) -> bool {
        self.action() == other.action() && self.payload() == other.payload()
    }
}

/// What kind of thing an approval request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Key,
    Member,
    /// A custom or member role, by name.
    Role,
    /// The workspace itself (its policy).
    Workspace,
    ServiceAccount,
    /// An app's installation in the workspace.
    Installation,
}

impl SubjectKind {
    pub const ALL: [SubjectKind; 6] = [
        SubjectKind::Key,
        SubjectKind::Member,
        SubjectKind::Role,
        SubjectKind::Workspace,
        SubjectKind::ServiceAccount,
        SubjectKind::Installation,
    ];

    /// Stored in `approvals.subject_kind`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Key => "key",
            SubjectKind::Member => "member",
            SubjectKind::Role => "role",
            SubjectKind::Workspace => "workspace",
            SubjectKind::ServiceAccount => "service_account",
            SubjectKind::Installation => "installation",
        }
    }

    pub fn parse(s: &str) -> Option<SubjectKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What a request for `action` is about (migration 0015 derives it the same way).
    pub const fn of(action: KeyAction) -> SubjectKind {
        match action {
            KeyAction::Create | KeyAction::Update | KeyAction::Revoke | KeyAction::Rotate => SubjectKind::Key,
            KeyAction::MemberInvite | KeyAction::MemberRole | KeyAction::MemberRemove => SubjectKind::Member,
            KeyAction::RoleUpdate => SubjectKind::Role,
            KeyAction::PolicyUpdate => SubjectKind::Workspace,
            KeyAction::ServiceAccountRole => SubjectKind::ServiceAccount,
            KeyAction::AppInstall => SubjectKind::Installation,
        }
    }
}

/// What an approval request is about: a key (for a rotation, the successor), a member, a
/// role's name, the workspace or a service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: SubjectKind,
    pub id: String,
}

impl Subject {
    /// The subject of a request for `action` about `id`.
    pub fn of(action: KeyAction, id: impl Into<String>) -> Subject {
        Subject { kind: SubjectKind::of(action), id: id.into() }
    }

    /// The key's id, when the subject is a key.
    pub fn key_id(&self) -> Option<&str> {
        (self.kind == SubjectKind::Key).then_some(self.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Payloads exactly as the routes wrote them before they were typed.
    fn stored() -> Vec<(KeyAction, Value)> {
        vec![
            (KeyAction::Create, json!({})),
            (KeyAction::Revoke, json!({})),
            (
                KeyAction::Update,
                json!({"changes": {"name": "n", "roles": null, "permissions": ["a:b"], "scopes": null,
                    "ip_allowlist": null, "meta": null, "expires_at": null}}),
            ),
            (
                KeyAction::Update,
                json!({"changes": {"name": null, "roles": ["r"], "permissions": null, "scopes": null,
                    "ip_allowlist": null, "meta": {"a": 1}, "callback_url": "https://x.example/h"}}),
            ),
            (KeyAction::Rotate, json!({"old_key_id": "key_1", "grace_period_seconds": 60})),
            (KeyAction::MemberInvite, json!({"role": "admin"})),
            (KeyAction::MemberRole, json!({"role": "admin"})),
            (KeyAction::MemberRole, json!({"role": "viewer", "from": "owner"})),
            (KeyAction::MemberRemove, json!({"role": "admin", "email": "a@example.com"})),
            (KeyAction::RoleUpdate, json!({"permissions": ["x:y"], "description": null})),
            (KeyAction::RoleUpdate, json!({"permissions": ["x:y"], "description": "d"})),
            (
                KeyAction::PolicyUpdate,
                json!({"changes": {"require_mfa": false}, "weakens": "require_mfa", "basis": Policy::default()}),
            ),
            (KeyAction::PolicyUpdate, json!({"changes": {"temporary_max_days": 3}, "weakens": null})),
            (KeyAction::ServiceAccountRole, json!({"role": "deployer", "from": "reader"})),
            (KeyAction::AppInstall, json!({"app_id": "app_1", "permissions": ["a.b"], "scopes": []})),
        ]
    }

    #[test]
    fn every_stored_payload_reads_back_and_writes_the_same_json() {
        for (action, payload) in stored() {
            let c = ApprovalChange::from_parts(action, &payload).unwrap_or_else(|e| panic!("{action:?}: {e}"));
            assert_eq!(c.action(), action);
            assert_eq!(c.payload(), payload, "{action:?}");
        }
    }

    #[test]
    fn a_payload_of_the_wrong_shape_is_named() {
        assert!(ApprovalChange::from_parts(KeyAction::Rotate, &json!({})).is_err());
        assert!(ApprovalChange::from_parts(KeyAction::MemberInvite, &json!({"role": "emperor"})).is_err());
        assert!(ApprovalChange::from_parts(KeyAction::Update, &json!({"changes": {"nope": 1}})).is_err());
    }

    #[test]
    fn subject_kinds_round_trip_and_follow_the_action() {
        for k in SubjectKind::ALL {
            assert_eq!(SubjectKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Subject::of(KeyAction::Rotate, "key_2").key_id(), Some("key_2"));
        assert_eq!(Subject::of(KeyAction::MemberRemove, "mem_1").key_id(), None);
        assert_eq!(SubjectKind::of(KeyAction::RoleUpdate), SubjectKind::Role);
        assert_eq!(SubjectKind::of(KeyAction::PolicyUpdate), SubjectKind::Workspace);
        assert_eq!(SubjectKind::of(KeyAction::ServiceAccountRole), SubjectKind::ServiceAccount);
    }
}
