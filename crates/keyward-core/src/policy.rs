//! Workspace policies: which key actions need approvals and from whom, the rules for
//! permanent and temporary keys, and whether every member must use MFA.

pub use keyward_proto::policy::{
    ActionRule, AlertPolicy, Approvals, LeakedKeys, Policy, PolicyPatch, MANAGEMENT_KEY_DEFAULT_MAX_DAYS,
    MAX_APPROVALS, MAX_EXPIRY_WARNING_DAYS, TEMPORARY_DEFAULT_DAYS,
};

use crate::error::CoreError;
use crate::roles::Role;

/// The quorum rule (the type is the wire crate's).
pub trait QuorumRule {
    /// The quorum of one request, fixed when it is made. `eligible`: members holding an
    /// approver role, other than the requester.
    fn required(self, eligible: u32) -> u32;
}

impl QuorumRule for Approvals {
    fn required(self, eligible: u32) -> u32 {
        match self {
            Approvals::Count(n) => n,
            Approvals::HalfOfAdmins => eligible.div_ceil(2),
        }
    }
}

/// The governed key actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    Create,
    Update,
    Revoke,
    Rotate,
    /// Inviting a member with an approver role (the request's target is the member).
    MemberInvite,
    /// Raising a member to an approver role.
    MemberRole,
    /// Widening what a role grants (the request's target is the role's name).
    RoleUpdate,
    /// A change of the policy itself (the request's target is the workspace).
    PolicyUpdate,
    /// Removing a member who holds an approver role (the request's target is the member).
    MemberRemove,
    /// Giving a service account a role that widens its keys (the target is the account).
    ServiceAccountRole,
    /// Installing an app (the request's target is the installation).
    AppInstall,
}

impl KeyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAction::Create => "key.create",
            KeyAction::Update => "key.update",
            KeyAction::Revoke => "key.revoke",
            KeyAction::Rotate => "key.rotate",
            KeyAction::MemberInvite => "member.invite",
            KeyAction::MemberRole => "member.role",
            KeyAction::RoleUpdate => "role.update",
            KeyAction::PolicyUpdate => "policy.update",
            KeyAction::MemberRemove => "member.remove",
            KeyAction::ServiceAccountRole => "service_account.role",
            KeyAction::AppInstall => "app.install",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            KeyAction::Create,
            KeyAction::Update,
            KeyAction::Revoke,
            KeyAction::Rotate,
            KeyAction::MemberInvite,
            KeyAction::MemberRole,
            KeyAction::RoleUpdate,
            KeyAction::PolicyUpdate,
            KeyAction::MemberRemove,
            KeyAction::ServiceAccountRole,
            KeyAction::AppInstall,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }

    /// Is this about a member rather than a key?
    pub fn is_member_action(self) -> bool {
        matches!(self, KeyAction::MemberInvite | KeyAction::MemberRole | KeyAction::MemberRemove)
    }
}

/// The alert rules' bounds.
fn check_alerts(alerts: &AlertPolicy) -> Result<(), CoreError> {
    if alerts.spike_factor.is_some_and(|f| !(f.is_finite() && f > 1.0 && f <= 1000.0)) {
        return Err(CoreError::invalid("alerts.spike_factor", "spike_factor must be more than 1 and at most 1000"));
    }
    if alerts.failure_ratio.is_some_and(|r| !(r.is_finite() && r > 0.0 && r <= 1.0)) {
        return Err(CoreError::invalid("alerts.failure_ratio", "failure_ratio must be more than 0 and at most 1"));
    }
    if alerts.unused_days.is_some_and(|d| !(1..=3650).contains(&d)) {
        return Err(CoreError::invalid("alerts.unused_days", "unused_days must be 1-3650"));
    }
    if alerts.min_requests > 1_000_000_000 {
        return Err(CoreError::invalid("alerts.min_requests", "min_requests must be at most 1000000000"));
    }
    Ok(())
}

fn check_rule(field: &str, r: &ActionRule) -> Result<(), CoreError> {
    if r.needs_approval() && r.approver_roles.is_empty() {
        return Err(CoreError::invalid(format!("{field}.approver_roles"), "name at least one approver role"));
    }
    if r.approver_roles.contains(&Role::Viewer) {
        return Err(CoreError::invalid(format!("{field}.approver_roles"), "viewers cannot approve"));
    }
    Ok(())
}

/// A policy's evaluation (the type is the wire crate's).
pub trait PolicyRules {
    fn rule(&self, a: KeyAction) -> &ActionRule;
    /// Every approval rule, with the action it governs.
    fn rules(&self) -> [(KeyAction, &ActionRule); 9];
    /// Does a member of `role` count towards some quorum now in force?
    fn binds(&self, role: Role) -> bool;
    /// Would going from this policy to `next` possibly weaken it: an approvals count lowered
    /// (a switch between a number and `half_of_admins` counts, as its effect depends on who
    /// is a member), an approver role dropped from or added to a rule that needs approvals,
    /// or `require_mfa` turned off? The field that does, for the audit trail.
    fn weakened_by(&self, next: &Policy) -> Option<&'static str>;
    /// The policy with a patch applied, checked.
    fn patched(&self, p: &PolicyPatch) -> Result<Policy, CoreError>;
}

impl PolicyRules for Policy {
    fn rule(&self, a: KeyAction) -> &ActionRule {
        match a {
            KeyAction::Create => &self.key_create,
            KeyAction::Update => &self.key_update,
            KeyAction::Revoke => &self.key_revoke,
            KeyAction::Rotate => &self.key_rotate,
            KeyAction::MemberInvite => &self.member_invite,
            KeyAction::MemberRole => &self.member_role,
            KeyAction::RoleUpdate | KeyAction::ServiceAccountRole => &self.role_update,
            KeyAction::PolicyUpdate => &self.policy_update,
            KeyAction::AppInstall => &self.app_install,
            // Quorum-cutting changes take the strictest rule (see `rules`); this is the rule
            // that governs adding an approver.
            KeyAction::MemberRemove => &self.member_role,
        }
    }

    fn rules(&self) -> [(KeyAction, &ActionRule); 9] {
        [
            (KeyAction::Create, &self.key_create),
            (KeyAction::Update, &self.key_update),
            (KeyAction::Revoke, &self.key_revoke),
            (KeyAction::Rotate, &self.key_rotate),
            (KeyAction::MemberInvite, &self.member_invite),
            (KeyAction::MemberRole, &self.member_role),
            (KeyAction::RoleUpdate, &self.role_update),
            (KeyAction::PolicyUpdate, &self.policy_update),
            (KeyAction::AppInstall, &self.app_install),
        ]
    }

    fn binds(&self, role: Role) -> bool {
        self.rules().iter().any(|(_, r)| r.needs_approval() && r.approver_roles.contains(&role))
    }

    fn weakened_by(&self, next: &Policy) -> Option<&'static str> {
        for ((action, old), (_, new)) in self.rules().iter().zip(next.rules().iter()) {
            let lowered = match (old.approvals, new.approvals) {
                (Approvals::Count(0), _) => false,
                (Approvals::Count(a), Approvals::Count(b)) => b < a,
                (a, b) => a != b,
            };
            let dropped = old.needs_approval() && old.approver_roles.iter().any(|r| !new.approver_roles.contains(r));
            // A role added to those who may approve lets its members (whom an admin may
            // invite) make up the quorum: as weakening as a lowered count.
            let added = old.needs_approval()
                && new.needs_approval()
                && new.approver_roles.iter().any(|r| !old.approver_roles.contains(r));
            if lowered || dropped || added {
                return Some(action.as_str());
            }
        }
        if self.require_mfa && !next.require_mfa {
            return Some("require_mfa");
        }
        // A leaked key left valid is a weaker answer than one revoked.
        (self.leaked_keys == LeakedKeys::Revoke && next.leaked_keys == LeakedKeys::Alert).then_some("leaked_keys")
    }

    fn patched(&self, p: &PolicyPatch) -> Result<Policy, CoreError> {
        let mut n = self.clone();
        for (field, new, slot) in [
            ("key.create", &p.key_create, &mut n.key_create),
            ("key.update", &p.key_update, &mut n.key_update),
            ("key.revoke", &p.key_revoke, &mut n.key_revoke),
            ("key.rotate", &p.key_rotate, &mut n.key_rotate),
            ("member.invite", &p.member_invite, &mut n.member_invite),
            ("member.role", &p.member_role, &mut n.member_role),
            ("role.update", &p.role_update, &mut n.role_update),
            ("policy.update", &p.policy_update, &mut n.policy_update),
            ("app.install", &p.app_install, &mut n.app_install),
        ] {
            if let Some(r) = new {
                check_rule(field, r)?;
                let mut r = r.clone();
                r.approver_roles.sort_by(|a, b| b.cmp(a));
                r.approver_roles.dedup();
                *slot = r;
            }
        }
        if let Some(v) = p.permanent_requires_ip_allowlist {
            n.permanent_requires_ip_allowlist = v;
        }
        if let Some(d) = p.temporary_max_days {
            if !(1..=3650).contains(&d) {
                return Err(CoreError::invalid("temporary_max_days", "temporary_max_days must be 1-3650"));
            }
            n.temporary_max_days = d;
        }
        if let Some(m) = p.max_key_lifetime_days {
            if m.is_some_and(|d| !(1..=36500).contains(&d)) {
                return Err(CoreError::invalid(
                    "max_key_lifetime_days",
                    "max_key_lifetime_days must be 1-36500 or null",
                ));
            }
            n.max_key_lifetime_days = m;
        }
        if let Some(v) = p.require_mfa {
            n.require_mfa = v;
        }
        if let Some(d) = p.management_key_max_days {
            if !(1..=3650).contains(&d) {
                return Err(CoreError::invalid("management_key_max_days", "management_key_max_days must be 1-3650"));
            }
            n.management_key_max_days = d;
        }
        if let Some(h) = p.approval_expiry_hours {
            if !(1..=720).contains(&h) {
                return Err(CoreError::invalid("approval_expiry_hours", "approval_expiry_hours must be 1-720"));
            }
            n.approval_expiry_hours = h;
        }
        if let Some(d) = p.expiry_warning_days {
            if d > MAX_EXPIRY_WARNING_DAYS {
                return Err(CoreError::invalid("expiry_warning_days", "expiry_warning_days must be 0-90"));
            }
            n.expiry_warning_days = d;
        }
        if let Some(a) = &p.alerts {
            check_alerts(a)?;
            n.alerts = a.clone();
        }
        if let Some(l) = p.leaked_keys {
            n.leaked_keys = l;
        }
        if let Some(d) = &p.default_ratelimits {
            for (env, limits) in d {
                if !crate::model::ENVIRONMENTS.contains(&env.as_str()) {
                    return Err(CoreError::invalid(
                        "default_ratelimits",
                        format!("unknown environment {env:?}: test or live"),
                    ));
                }
                let specs = limits.iter().map(|l| (l.name.as_str(), l.limit, l.duration.as_str()));
                crate::ratelimit::RateLimit::list(specs)
                    .map_err(|e| CoreError::invalid(format!("default_ratelimits.{env}"), e.to_string()))?;
            }
            n.default_ratelimits = d.clone();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(v: serde_json::Value) -> Result<Policy, CoreError> {
        let p: PolicyPatch = serde_json::from_value(v).map_err(|e| CoreError::invalid("body", e.to_string()))?;
        Policy::default().patched(&p)
    }

    #[test]
    fn default_needs_nothing_and_round_trips() {
        let p = Policy::default();
        assert!(!p.key_create.needs_approval());
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["key.create"], json!({"approvals": 0, "approver_roles": ["owner", "admin"]}));
        assert_eq!(v["temporary_max_days"], 30);
        assert_eq!(serde_json::from_value::<Policy>(v).unwrap(), p);
    }

    #[test]
    fn patch_keeps_what_is_left_out() {
        let p = patch(json!({"key.create": {"approvals": 2}, "temporary_max_days": 7})).unwrap();
        assert_eq!(p.key_create.approvals, Approvals::Count(2));
        assert_eq!(p.key_create.approver_roles, vec![Role::Owner, Role::Admin]);
        assert!(!p.key_revoke.needs_approval());
        assert!(p.permanent_requires_ip_allowlist);
        assert_eq!(p.temporary_max_days, 7);
        let p = patch(json!({"key.revoke": {}})).unwrap();
        assert_eq!(p.key_revoke.approvals, Approvals::HalfOfAdmins);
    }

    #[test]
    fn bad_patches_name_the_field() {
        assert_eq!(patch(json!({"temporary_max_days": 0})).unwrap_err().field(), "temporary_max_days");
        assert_eq!(patch(json!({"expiry_warning_days": 91})).unwrap_err().field(), "expiry_warning_days");
        assert_eq!(patch(json!({"expiry_warning_days": 0})).unwrap().expiry_warning_days, 0);
        assert_eq!(patch(json!({"alerts": {"spike_factor": 0.5}})).unwrap_err().field(), "alerts.spike_factor");
        assert_eq!(patch(json!({"alerts": {"failure_ratio": 2}})).unwrap_err().field(), "alerts.failure_ratio");
        assert_eq!(patch(json!({"alerts": {"unused_days": 0}})).unwrap_err().field(), "alerts.unused_days");
        let a = patch(json!({"alerts": {"new_ip": true, "spike_factor": 3}})).unwrap().alerts;
        assert!(a.new_ip && a.spike_factor == Some(3.0) && a.min_requests == 20);
        assert_eq!(
            patch(json!({"key.update": {"approvals": 1, "approver_roles": []}})).unwrap_err().field(),
            "key.update.approver_roles"
        );
        assert_eq!(
            patch(json!({"key.update": {"approver_roles": ["viewer"]}})).unwrap_err().field(),
            "key.update.approver_roles"
        );
        assert!(serde_json::from_value::<PolicyPatch>(json!({"key.create": {"approvals": 21}})).is_err());
        assert!(serde_json::from_value::<PolicyPatch>(json!({"key.create": {"approvals": "most"}})).is_err());
        assert!(serde_json::from_value::<PolicyPatch>(json!({"key.delete": {}})).is_err());
    }

    #[test]
    fn weakening_is_found() {
        let base = patch(json!({"key.create": {"approvals": 2}, "require_mfa": true})).unwrap();
        let next = |v| base.patched(&serde_json::from_value::<PolicyPatch>(v).unwrap()).unwrap();
        assert_eq!(base.weakened_by(&next(json!({"key.create": {"approvals": 1}}))), Some("key.create"));
        assert_eq!(base.weakened_by(&next(json!({"key.create": {"approvals": "half_of_admins"}}))), Some("key.create"));
        assert_eq!(
            base.weakened_by(&next(json!({"key.create": {"approvals": 2, "approver_roles": ["owner"]}}))),
            Some("key.create")
        );
        assert_eq!(base.weakened_by(&next(json!({"require_mfa": false}))), Some("require_mfa"));
        // One admin must not make the holders of a role they can hand out into approvers.
        assert_eq!(
            base.weakened_by(&next(
                json!({"key.create": {"approvals": 2, "approver_roles": ["owner", "admin", "operator"]}})
            )),
            Some("key.create")
        );
        assert_eq!(base.weakened_by(&next(json!({"key.create": {"approvals": 3}}))), None);
        assert_eq!(base.weakened_by(&next(json!({"key.revoke": {"approvals": 1}}))), None);
        assert_eq!(base.weakened_by(&next(json!({"temporary_max_days": 7}))), None);
        assert!(base.binds(Role::Admin) && !base.binds(Role::Manager));
        assert!(!Policy::default().binds(Role::Owner));
    }

    #[test]
    fn management_key_cap() {
        assert_eq!(Policy::default().management_key_max_days, 90);
        assert_eq!(patch(json!({"management_key_max_days": 7})).unwrap().management_key_max_days, 7);
        assert_eq!(patch(json!({"management_key_max_days": 0})).unwrap_err().field(), "management_key_max_days");
        let old: Policy = serde_json::from_value(json!({
            "key.create": {}, "key.update": {}, "key.revoke": {}, "key.rotate": {},
            "permanent_requires_ip_allowlist": true, "temporary_max_days": 30, "max_key_lifetime_days": null,
            "require_mfa": false, "approval_expiry_hours": 72
        }))
        .unwrap();
        assert_eq!(old.management_key_max_days, 90);
        assert!(!old.policy_update.needs_approval());
    }

    #[test]
    fn half_of_admins_rounds_up() {
        assert_eq!(Approvals::HalfOfAdmins.required(0), 0);
        assert_eq!(Approvals::HalfOfAdmins.required(1), 1);
        assert_eq!(Approvals::HalfOfAdmins.required(3), 2);
        assert_eq!(Approvals::HalfOfAdmins.required(4), 2);
        assert_eq!(Approvals::Count(2).required(0), 2);
    }
}
