//! Every action the operator log records (`GET /v1/operator/log`), spelled once: its wire
//! string and, for those done to one workspace, the action its own audit chain records too.

use std::fmt;

use crate::audit_action::AuditAction;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorAction {
    OperatorTokenCreate,
    OperatorTokenRevoke,
    WorkspaceCreate,
    WorkspaceDelete,
    /// The background erasure of a deleted workspace finished (the server's own).
    WorkspaceErased,
    WorkspaceResume,
    WorkspaceSuspend,
    WorkspaceUpdate,
}

impl OperatorAction {
    pub const ALL: &'static [OperatorAction] = &[
        OperatorAction::OperatorTokenCreate,
        OperatorAction::OperatorTokenRevoke,
        OperatorAction::WorkspaceCreate,
        OperatorAction::WorkspaceDelete,
        OperatorAction::WorkspaceErased,
        OperatorAction::WorkspaceResume,
        OperatorAction::WorkspaceSuspend,
        OperatorAction::WorkspaceUpdate,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OperatorAction::OperatorTokenCreate => "operator_token.create",
            OperatorAction::OperatorTokenRevoke => "operator_token.revoke",
            OperatorAction::WorkspaceCreate => "workspace.create",
            OperatorAction::WorkspaceDelete => "workspace.delete",
            OperatorAction::WorkspaceErased => "workspace.erased",
            OperatorAction::WorkspaceResume => "workspace.resume",
            OperatorAction::WorkspaceSuspend => "workspace.suspend",
            OperatorAction::WorkspaceUpdate => "workspace.update",
        }
    }

    pub fn parse(s: &str) -> Option<OperatorAction> {
        Self::ALL.iter().copied().find(|a| a.as_str() == s)
    }

    /// What the workspace's own audit chain records of it (`None`: it is about no
    /// workspace, or the workspace's chain is gone with its data).
    pub const fn audit_action(self) -> Option<AuditAction> {
        Some(match self {
            OperatorAction::WorkspaceCreate => AuditAction::WorkspaceCreate,
            OperatorAction::WorkspaceDelete => AuditAction::WorkspaceDelete,
            OperatorAction::WorkspaceResume => AuditAction::WorkspaceResume,
            OperatorAction::WorkspaceSuspend => AuditAction::WorkspaceSuspend,
            OperatorAction::WorkspaceUpdate => AuditAction::WorkspaceUpdate,
            OperatorAction::OperatorTokenCreate
            | OperatorAction::OperatorTokenRevoke
            | OperatorAction::WorkspaceErased => return None,
        })
    }
}

impl fmt::Display for OperatorAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_round_trips_and_a_workspace_action_is_its_chains_too() {
        for a in OperatorAction::ALL {
            assert_eq!(OperatorAction::parse(a.as_str()), Some(*a), "{a}");
            // One spelling in both logs.
            if let Some(audit) = a.audit_action() {
                assert_eq!(audit.as_str(), a.as_str());
            }
        }
        assert_eq!(OperatorAction::parse("workspace.frobnicate"), None);
    }
}
