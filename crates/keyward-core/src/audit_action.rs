//! Every action the audit trail records, spelled once: its wire string (stored in
//! `audit_events.action`, shown by `GET /v1/audit`) and the webhook event type it raises.

use std::fmt;

/// What an audit event records. The stored and shown form is [`AuditAction::as_str`]; a
/// new action is added here, and nowhere else is its string written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    AlertAcknowledge,
    AppCreate,
    AppDelete,
    AppInstall,
    AppInstalled,
    AppKeyRotate,
    AppSigningKeyRotate,
    AppTokenIssue,
    AppTokenReuse,
    AppTokenRevoke,
    AppUninstall,
    AppUninstalled,
    AppUpdate,
    ApprovalApprove,
    ApprovalApproved,
    ApprovalCancel,
    ApprovalExpired,
    ApprovalReject,
    ApprovalRequest,
    AuditChainKeyed,
    AuditPrune,
    IdentityCreate,
    IdentityDelete,
    IdentityUpdate,
    KeyCreate,
    KeyExpired,
    KeyExpiring,
    KeyImport,
    KeyLeaked,
    KeyRevoke,
    KeyRotate,
    KeyUpdate,
    ManagementKeyCreate,
    ManagementKeyLeaked,
    ManagementKeyRevoke,
    MemberCodeRefused,
    MemberInvite,
    MemberJoin,
    MemberMfaDisable,
    MemberMfaEnable,
    MemberMfaEnrol,
    MemberPassword,
    MemberPasswordRefused,
    MemberRecoveryCodeUsed,
    MemberRemove,
    MemberRole,
    PolicyUpdate,
    RatelimitOverrideDelete,
    RatelimitOverrideSet,
    RoleCreate,
    RoleDelete,
    RoleUpdate,
    ServiceAccountCreate,
    ServiceAccountDelete,
    ServiceAccountUpdate,
    SessionLeaked,
    SessionLogin,
    SessionLoginFailed,
    SessionLogout,
    SessionLogoutAll,
    UsageAlert,
    VerifyTokenCreate,
    VerifyTokenLeaked,
    VerifyTokenRevoke,
    WebhookCreate,
    WebhookDelete,
    WebhookDisabled,
    WebhookRetry,
    WebhookRotateSecret,
    WebhookTest,
    WebhookUpdate,
    WorkspaceCreate,
    WorkspaceDelete,
    WorkspaceResume,
    WorkspaceSuspend,
    WorkspaceUpdate,
}

impl AuditAction {
    /// Every action, for parsing and tests.
    pub const ALL: &'static [AuditAction] = &[
        AuditAction::AlertAcknowledge,
        AuditAction::AppCreate,
        AuditAction::AppDelete,
        AuditAction::AppInstall,
        AuditAction::AppInstalled,
        AuditAction::AppKeyRotate,
        AuditAction::AppSigningKeyRotate,
        AuditAction::AppTokenIssue,
        AuditAction::AppTokenReuse,
        AuditAction::AppTokenRevoke,
        AuditAction::AppUninstall,
        AuditAction::AppUninstalled,
        AuditAction::AppUpdate,
        AuditAction::ApprovalApprove,
        AuditAction::ApprovalApproved,
        AuditAction::ApprovalCancel,
        AuditAction::ApprovalExpired,
        AuditAction::ApprovalReject,
        AuditAction::ApprovalRequest,
        AuditAction::AuditChainKeyed,
        AuditAction::AuditPrune,
        AuditAction::IdentityCreate,
        AuditAction::IdentityDelete,
        AuditAction::IdentityUpdate,
        AuditAction::KeyCreate,
        AuditAction::KeyExpired,
        AuditAction::KeyExpiring,
        AuditAction::KeyImport,
        AuditAction::KeyLeaked,
        AuditAction::KeyRevoke,
        AuditAction::KeyRotate,
        AuditAction::KeyUpdate,
        AuditAction::ManagementKeyCreate,
        AuditAction::ManagementKeyLeaked,
        AuditAction::ManagementKeyRevoke,
        AuditAction::MemberCodeRefused,
        AuditAction::MemberInvite,
        AuditAction::MemberJoin,
        AuditAction::MemberMfaDisable,
        AuditAction::MemberMfaEnable,
        AuditAction::MemberMfaEnrol,
        AuditAction::MemberPassword,
        AuditAction::MemberPasswordRefused,
        AuditAction::MemberRecoveryCodeUsed,
        AuditAction::MemberRemove,
        AuditAction::MemberRole,
        AuditAction::PolicyUpdate,
        AuditAction::RatelimitOverrideDelete,
        AuditAction::RatelimitOverrideSet,
        AuditAction::RoleCreate,
        AuditAction::RoleDelete,
        AuditAction::RoleUpdate,
        AuditAction::ServiceAccountCreate,
        AuditAction::ServiceAccountDelete,
        AuditAction::ServiceAccountUpdate,
        AuditAction::SessionLeaked,
        AuditAction::SessionLogin,
        AuditAction::SessionLoginFailed,
        AuditAction::SessionLogout,
        AuditAction::SessionLogoutAll,
        AuditAction::UsageAlert,
        AuditAction::VerifyTokenCreate,
        AuditAction::VerifyTokenLeaked,
        AuditAction::VerifyTokenRevoke,
        AuditAction::WebhookCreate,
        AuditAction::WebhookDelete,
        AuditAction::WebhookDisabled,
        AuditAction::WebhookRetry,
        AuditAction::WebhookRotateSecret,
        AuditAction::WebhookTest,
        AuditAction::WebhookUpdate,
        AuditAction::WorkspaceCreate,
        AuditAction::WorkspaceDelete,
        AuditAction::WorkspaceResume,
        AuditAction::WorkspaceSuspend,
        AuditAction::WorkspaceUpdate,
    ];

    /// The wire string: what is stored, hashed into the chain and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::AlertAcknowledge => "alert.acknowledge",
            AuditAction::AppCreate => "app.create",
            AuditAction::AppDelete => "app.delete",
            AuditAction::AppInstall => "app.install",
            AuditAction::AppInstalled => "app.installed",
            AuditAction::AppKeyRotate => "app.key_rotate",
            AuditAction::AppSigningKeyRotate => "app.signing_key_rotate",
            AuditAction::AppTokenIssue => "app_token.issue",
            AuditAction::AppTokenReuse => "app_token.refresh_reused",
            AuditAction::AppTokenRevoke => "app_token.revoke",
            AuditAction::AppUninstall => "app.uninstall",
            AuditAction::AppUninstalled => "app.uninstalled",
            AuditAction::AppUpdate => "app.update",
            AuditAction::ApprovalApprove => "approval.approve",
            AuditAction::ApprovalApproved => "approval.approved",
            AuditAction::ApprovalCancel => "approval.cancel",
            AuditAction::ApprovalExpired => "approval.expired",
            AuditAction::ApprovalReject => "approval.reject",
            AuditAction::ApprovalRequest => "approval.request",
            AuditAction::AuditChainKeyed => "audit.chain_keyed",
            AuditAction::AuditPrune => "audit.prune",
            AuditAction::IdentityCreate => "identity.create",
            AuditAction::IdentityDelete => "identity.delete",
            AuditAction::IdentityUpdate => "identity.update",
            AuditAction::KeyCreate => "key.create",
            AuditAction::KeyExpired => "key.expired",
            AuditAction::KeyExpiring => "key.expiring",
            AuditAction::KeyImport => "key.import",
            AuditAction::KeyLeaked => "key.leaked",
            AuditAction::KeyRevoke => "key.revoke",
            AuditAction::KeyRotate => "key.rotate",
            AuditAction::KeyUpdate => "key.update",
            AuditAction::ManagementKeyCreate => "management_key.create",
            AuditAction::ManagementKeyLeaked => "management_key.leaked",
            AuditAction::ManagementKeyRevoke => "management_key.revoke",
            AuditAction::MemberCodeRefused => "member.code_refused",
            AuditAction::MemberInvite => "member.invite",
            AuditAction::MemberJoin => "member.join",
            AuditAction::MemberMfaDisable => "member.mfa_disable",
            AuditAction::MemberMfaEnable => "member.mfa_enable",
            AuditAction::MemberMfaEnrol => "member.mfa_enrol",
            AuditAction::MemberPassword => "member.password",
            AuditAction::MemberPasswordRefused => "member.password_refused",
            AuditAction::MemberRecoveryCodeUsed => "member.recovery_code_used",
            AuditAction::MemberRemove => "member.remove",
            AuditAction::MemberRole => "member.role",
            AuditAction::PolicyUpdate => "policy.update",
            AuditAction::RatelimitOverrideDelete => "ratelimit_override.delete",
            AuditAction::RatelimitOverrideSet => "ratelimit_override.set",
            AuditAction::RoleCreate => "role.create",
            AuditAction::RoleDelete => "role.delete",
            AuditAction::RoleUpdate => "role.update",
            AuditAction::ServiceAccountCreate => "service_account.create",
            AuditAction::ServiceAccountDelete => "service_account.delete",
            AuditAction::ServiceAccountUpdate => "service_account.update",
            AuditAction::SessionLeaked => "session.leaked",
            AuditAction::SessionLogin => "session.login",
            AuditAction::SessionLoginFailed => "session.login_failed",
            AuditAction::SessionLogout => "session.logout",
            AuditAction::SessionLogoutAll => "session.logout_all",
            AuditAction::UsageAlert => "usage.alert",
            AuditAction::VerifyTokenCreate => "verify_token.create",
            AuditAction::VerifyTokenLeaked => "verify_token.leaked",
            AuditAction::VerifyTokenRevoke => "verify_token.revoke",
            AuditAction::WebhookCreate => "webhook.create",
            AuditAction::WebhookDelete => "webhook.delete",
            AuditAction::WebhookDisabled => "webhook.disabled",
            AuditAction::WebhookRetry => "webhook.retry",
            AuditAction::WebhookRotateSecret => "webhook.rotate_secret",
            AuditAction::WebhookTest => "webhook.test",
            AuditAction::WebhookUpdate => "webhook.update",
            AuditAction::WorkspaceCreate => "workspace.create",
            AuditAction::WorkspaceDelete => "workspace.delete",
            AuditAction::WorkspaceResume => "workspace.resume",
            AuditAction::WorkspaceSuspend => "workspace.suspend",
            AuditAction::WorkspaceUpdate => "workspace.update",
        }
    }

    /// The action a stored string names; `None` for a string this version does not know.
    pub fn parse(s: &str) -> Option<AuditAction> {
        Self::ALL.iter().copied().find(|a| a.as_str() == s)
    }

    /// The webhook event type this action raises, when it is one.
    pub const fn webhook_event(self) -> Option<&'static str> {
        Some(match self {
            AuditAction::AppInstalled => "app.installed",
            AuditAction::AppUninstalled => "app.uninstalled",
            AuditAction::ApprovalApproved => "approval.approved",
            AuditAction::ApprovalExpired => "approval.expired",
            AuditAction::ApprovalReject => "approval.rejected",
            AuditAction::ApprovalRequest => "approval.requested",
            AuditAction::KeyCreate => "key.created",
            AuditAction::KeyExpired => "key.expired",
            AuditAction::KeyExpiring => "key.expiring",
            AuditAction::KeyLeaked => "key.leaked",
            AuditAction::KeyRevoke => "key.revoked",
            AuditAction::KeyRotate => "key.rotated",
            AuditAction::KeyUpdate => "key.updated",
            AuditAction::ManagementKeyLeaked => "management_key.leaked",
            AuditAction::MemberInvite => "member.invited",
            AuditAction::MemberJoin => "member.joined",
            AuditAction::MemberRemove => "member.removed",
            AuditAction::MemberRole => "member.role_changed",
            AuditAction::SessionLeaked => "session.leaked",
            AuditAction::UsageAlert => "usage.alert",
            AuditAction::VerifyTokenLeaked => "verify_token.leaked",
            AuditAction::WebhookDisabled => "webhook.disabled",
            AuditAction::WorkspaceResume => "workspace.resumed",
            AuditAction::WorkspaceSuspend => "workspace.suspended",
            _ => return None,
        })
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_its_string() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a), "{a}");
        }
        let mut seen: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), AuditAction::ALL.len(), "two actions share a string");
        assert_eq!(AuditAction::parse("key.frobnicate"), None);
        assert_eq!(AuditAction::parse("KEY.CREATE"), None);
    }

    #[test]
    fn the_wire_strings_are_todays() {
        let today = [
            "alert.acknowledge",
            "app.create",
            "app.delete",
            "app.install",
            "app.installed",
            "app.key_rotate",
            "app.signing_key_rotate",
            "app_token.issue",
            "app_token.refresh_reused",
            "app_token.revoke",
            "app.uninstall",
            "app.uninstalled",
            "app.update",
            "approval.approve",
            "approval.approved",
            "approval.cancel",
            "approval.expired",
            "approval.reject",
            "approval.request",
            "audit.chain_keyed",
            "audit.prune",
            "identity.create",
            "identity.delete",
            "identity.update",
            "key.create",
            "key.expired",
            "key.expiring",
            "key.import",
            "key.leaked",
            "key.revoke",
            "key.rotate",
            "key.update",
            "management_key.create",
            "management_key.leaked",
            "management_key.revoke",
            "member.code_refused",
            "member.invite",
            "member.join",
            "member.mfa_disable",
            "member.mfa_enable",
            "member.mfa_enrol",
            "member.password",
            "member.password_refused",
            "member.recovery_code_used",
            "member.remove",
            "member.role",
            "policy.update",
            "ratelimit_override.delete",
            "ratelimit_override.set",
            "role.create",
            "role.delete",
            "role.update",
            "service_account.create",
            "service_account.delete",
            "service_account.update",
            "session.leaked",
            "session.login",
            "session.login_failed",
            "session.logout",
            "session.logout_all",
            "usage.alert",
            "verify_token.create",
            "verify_token.leaked",
            "verify_token.revoke",
            "webhook.create",
            "webhook.delete",
            "webhook.disabled",
            "webhook.retry",
            "webhook.rotate_secret",
            "webhook.test",
            "webhook.update",
            "workspace.create",
            "workspace.delete",
            "workspace.resume",
            "workspace.suspend",
            "workspace.update",
        ];
        let ours: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(ours, today);
    }

    /// The mapping that was a string match in `webhooks::event_type`: every action that was
    /// a webhook event still raises the same type, and no other action raises one.
    #[test]
    fn webhook_events_are_unchanged() {
        let before = [
            ("key.create", "key.created"),
            ("key.update", "key.updated"),
            ("key.rotate", "key.rotated"),
            ("key.revoke", "key.revoked"),
            ("key.expired", "key.expired"),
            ("key.expiring", "key.expiring"),
            ("approval.request", "approval.requested"),
            ("approval.approved", "approval.approved"),
            ("approval.reject", "approval.rejected"),
            ("approval.expired", "approval.expired"),
            ("member.invite", "member.invited"),
            ("member.join", "member.joined"),
            ("member.remove", "member.removed"),
            ("member.role", "member.role_changed"),
            ("webhook.disabled", "webhook.disabled"),
            ("usage.alert", "usage.alert"),
            // Added with leak reports (issue 32).
            ("key.leaked", "key.leaked"),
            // A leaked management key, verify token or session token (docs/LEAKS.md).
            ("management_key.leaked", "management_key.leaked"),
            ("verify_token.leaked", "verify_token.leaked"),
            ("session.leaked", "session.leaked"),
            // Added with operators (issue 33).
            ("workspace.suspend", "workspace.suspended"),
            ("workspace.resume", "workspace.resumed"),
            // Added with apps (issue 35): told to the app's developer.
            ("app.installed", "app.installed"),
            ("app.uninstalled", "app.uninstalled"),
        ];
        for (action, ty) in before {
            let a = AuditAction::parse(action).unwrap_or_else(|| panic!("{action} is no longer an action"));
            assert_eq!(a.webhook_event(), Some(ty), "{action}");
        }
        for a in AuditAction::ALL {
            if !before.iter().any(|(s, _)| *s == a.as_str()) {
                assert_eq!(a.webhook_event(), None, "{a} raises a webhook it did not before");
            }
        }
        for (_, ty) in before {
            assert!(crate::webhooks::EVENT_TYPES.contains(&ty), "{ty} is not a subscribable type");
        }
    }
}
