//! Workspace policies: which key actions need approvals and from whom, the rules for
//! permanent and temporary keys, and whether every member must use MFA.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

use crate::error::CoreError;
use crate::roles::Role;

pub const MAX_APPROVALS: u32 = 20;
/// Expiry of a `temporary` key when none is given (seed: "A temporary key expires in 30 days").
pub const TEMPORARY_DEFAULT_DAYS: i64 = 30;

/// How many approvals an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approvals {
    Count(u32),
    /// Half of the members who could approve (the requester not counted), rounded up.
    HalfOfAdmins,
}

impl Approvals {
    /// The quorum of one request, fixed when it is made. `eligible`: members holding an
    /// approver role, other than the requester.
    pub fn required(self, eligible: u32) -> u32 {
        match self {
            Approvals::Count(n) => n,
            Approvals::HalfOfAdmins => eligible.div_ceil(2),
        }
    }
}

impl Serialize for Approvals {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Approvals::Count(n) => s.serialize_u32(*n),
            Approvals::HalfOfAdmins => s.serialize_str("half_of_admins"),
        }
    }
}

impl<'de> Deserialize<'de> for Approvals {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u32),
            S(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("approvals must be a number from 0 to 20 or \"half_of_admins\""))?
        {
            Raw::N(n) if n <= MAX_APPROVALS => Ok(Approvals::Count(n)),
            Raw::S(s) if s == "half_of_admins" => Ok(Approvals::HalfOfAdmins),
            _ => Err(serde::de::Error::custom("approvals must be a number from 0 to 20 or \"half_of_admins\"")),
        }
    }
}

/// `approvals` in OpenAPI: a number from 0 to 20, or `"half_of_admins"`.
fn approvals_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(MAX_APPROVALS)))
            .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["half_of_admins"])))
            .build(),
    )
}

fn default_approvals() -> Approvals {
    Approvals::HalfOfAdmins
}

fn default_approver_roles() -> Vec<Role> {
    vec![Role::Owner, Role::Admin]
}

/// The rule for one action. Given in a `PUT`, it replaces the previous rule whole: left-out
/// `approvals` means `half_of_admins`, left-out `approver_roles` means owner and admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRule {
    #[serde(default = "default_approvals")]
    #[schema(schema_with = approvals_schema, example = json!(2))]
    pub approvals: Approvals,
    #[serde(default = "default_approver_roles")]
    pub approver_roles: Vec<Role>,
}

impl ActionRule {
    pub(crate) fn none() -> Self {
        ActionRule { approvals: Approvals::Count(0), approver_roles: default_approver_roles() }
    }

    pub fn needs_approval(&self) -> bool {
        self.approvals != Approvals::Count(0)
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
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }

    /// Is this about a member rather than a key?
    pub fn is_member_action(self) -> bool {
        matches!(self, KeyAction::MemberInvite | KeyAction::MemberRole | KeyAction::MemberRemove)
    }
}

/// Alerts on unusual use of a key (each rule off until set), evaluated in the background.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertPolicy {
    /// A key's verifications in the last complete hour above this many times its average
    /// hour over the 24 before (at least `min_requests`).
    #[serde(default)]
    pub spike_factor: Option<f64>,
    /// Refused verifications of a key, as a share of all its verifications in the last
    /// complete 5 minutes (at least `min_requests`), from 0 to 1.
    #[serde(default)]
    pub failure_ratio: Option<f64>,
    /// Fewer verifications than this never raise `spike` or `failures`.
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    /// A key verified from an address it was never verified from before.
    #[serde(default)]
    pub new_ip: bool,
    /// A live key not verified for this many days.
    #[serde(default)]
    pub unused_days: Option<u32>,
}

fn default_min_requests() -> u32 {
    20
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            spike_factor: None,
            failure_ratio: None,
            min_requests: default_min_requests(),
            new_ip: false,
            unused_days: None,
        }
    }
}

impl AlertPolicy {
    pub fn any(&self) -> bool {
        self.spike_factor.is_some() || self.failure_ratio.is_some() || self.new_ip || self.unused_days.is_some()
    }

    fn check(&self) -> Result<(), CoreError> {
        if self.spike_factor.is_some_and(|f| !(f.is_finite() && f > 1.0 && f <= 1000.0)) {
            return Err(CoreError::invalid("alerts.spike_factor", "spike_factor must be more than 1 and at most 1000"));
        }
        if self.failure_ratio.is_some_and(|r| !(r.is_finite() && r > 0.0 && r <= 1.0)) {
            return Err(CoreError::invalid("alerts.failure_ratio", "failure_ratio must be more than 0 and at most 1"));
        }
        if self.unused_days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(CoreError::invalid("alerts.unused_days", "unused_days must be 1-3650"));
        }
        if self.min_requests > 1_000_000_000 {
            return Err(CoreError::invalid("alerts.min_requests", "min_requests must be at most 1000000000"));
        }
        Ok(())
    }
}

/// A workspace's policy. The default needs no approvals, so a new workspace works at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    #[serde(rename = "key.create")]
    pub key_create: ActionRule,
    #[serde(rename = "key.update")]
    pub key_update: ActionRule,
    #[serde(rename = "key.revoke")]
    pub key_revoke: ActionRule,
    #[serde(rename = "key.rotate")]
    pub key_rotate: ActionRule,
    /// Inviting a member whose role is one of this rule's approver roles.
    #[serde(rename = "member.invite", default = "ActionRule::none")]
    pub member_invite: ActionRule,
    /// Raising a member to one of this rule's approver roles.
    #[serde(rename = "member.role", default = "ActionRule::none")]
    pub member_role: ActionRule,
    /// Changing a role so that it grants more than before.
    #[serde(rename = "role.update", default = "ActionRule::none")]
    pub role_update: ActionRule,
    /// Any change of the policy. Whatever this says, a change that may weaken it (lowers an
    /// approvals count, drops an approver role, turns `require_mfa` off) needs the approvals
    /// of the strictest rule in force when it is asked for.
    #[serde(rename = "policy.update", default = "ActionRule::none")]
    pub policy_update: ActionRule,
    /// A new management key expires after at most this many days (its default expiry).
    #[serde(default = "default_management_key_max_days")]
    pub management_key_max_days: u32,
    /// A permanent key must have a non-empty IP allowlist.
    pub permanent_requires_ip_allowlist: bool,
    /// A temporary key expires after at most this many days (its default expiry).
    pub temporary_max_days: u32,
    /// Caps the expiry of every key that is not permanent (and gives one to keys without).
    pub max_key_lifetime_days: Option<u32>,
    /// Every member must have TOTP enrolled to use the management API.
    pub require_mfa: bool,
    /// Approval requests not decided within this many hours expire.
    pub approval_expiry_hours: u32,
    /// A `key.expiring` event is sent this many days before a key expires (0: never).
    #[serde(default = "default_expiry_warning_days")]
    pub expiry_warning_days: u32,
    /// Alerts on unusual use (`usage.alert` events).
    #[serde(default)]
    pub alerts: AlertPolicy,
    /// Rate limits a new key gets when its request names none, by environment
    /// (`{"live": [{"name": "default", "limit": 100, "duration": "1s"}]}`).
    #[serde(default)]
    pub default_ratelimits: std::collections::BTreeMap<String, Vec<crate::wire::keys::RateLimitSpec>>,
}

/// Longest `expiry_warning_days`.
pub const MAX_EXPIRY_WARNING_DAYS: u32 = 90;

fn default_expiry_warning_days() -> u32 {
    7
}

/// Longest lifetime of a new management key when the policy does not say (days).
pub const MANAGEMENT_KEY_DEFAULT_MAX_DAYS: u32 = 90;

fn default_management_key_max_days() -> u32 {
    MANAGEMENT_KEY_DEFAULT_MAX_DAYS
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            key_create: ActionRule::none(),
            key_update: ActionRule::none(),
            key_revoke: ActionRule::none(),
            key_rotate: ActionRule::none(),
            member_invite: ActionRule::none(),
            member_role: ActionRule::none(),
            role_update: ActionRule::none(),
            policy_update: ActionRule::none(),
            management_key_max_days: MANAGEMENT_KEY_DEFAULT_MAX_DAYS,
            permanent_requires_ip_allowlist: true,
            temporary_max_days: TEMPORARY_DEFAULT_DAYS as u32,
            max_key_lifetime_days: None,
            require_mfa: false,
            approval_expiry_hours: 72,
            expiry_warning_days: default_expiry_warning_days(),
            default_ratelimits: Default::default(),
            alerts: AlertPolicy::default(),
        }
    }
}

/// `PUT /v1/policies`: any subset of the fields; those left out keep their values.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    #[serde(rename = "key.create", default, skip_serializing_if = "Option::is_none")]
    pub key_create: Option<ActionRule>,
    #[serde(rename = "key.update", default, skip_serializing_if = "Option::is_none")]
    pub key_update: Option<ActionRule>,
    #[serde(rename = "key.revoke", default, skip_serializing_if = "Option::is_none")]
    pub key_revoke: Option<ActionRule>,
    #[serde(rename = "key.rotate", default, skip_serializing_if = "Option::is_none")]
    pub key_rotate: Option<ActionRule>,
    #[serde(rename = "member.invite", default, skip_serializing_if = "Option::is_none")]
    pub member_invite: Option<ActionRule>,
    #[serde(rename = "member.role", default, skip_serializing_if = "Option::is_none")]
    pub member_role: Option<ActionRule>,
    #[serde(rename = "role.update", default, skip_serializing_if = "Option::is_none")]
    pub role_update: Option<ActionRule>,
    #[serde(rename = "policy.update", default, skip_serializing_if = "Option::is_none")]
    pub policy_update: Option<ActionRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_key_max_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent_requires_ip_allowlist: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_max_days: Option<u32>,
    /// `null` removes the cap.
    #[serde(default, deserialize_with = "crate::wire::some", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u32>)]
    pub max_key_lifetime_days: Option<Option<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_mfa: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_expiry_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warning_days: Option<u32>,
    /// Replaces the alert rules whole (rules left out are off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertPolicy>,
    /// Replaces the default limits whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ratelimits: Option<std::collections::BTreeMap<String, Vec<crate::wire::keys::RateLimitSpec>>>,
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

impl Policy {
    pub fn rule(&self, a: KeyAction) -> &ActionRule {
        match a {
            KeyAction::Create => &self.key_create,
            KeyAction::Update => &self.key_update,
            KeyAction::Revoke => &self.key_revoke,
            KeyAction::Rotate => &self.key_rotate,
            KeyAction::MemberInvite => &self.member_invite,
            KeyAction::MemberRole => &self.member_role,
            KeyAction::RoleUpdate | KeyAction::ServiceAccountRole => &self.role_update,
            KeyAction::PolicyUpdate => &self.policy_update,
            // Quorum-cutting changes take the strictest rule (see `rules`); this is the rule
            // that governs adding an approver.
            KeyAction::MemberRemove => &self.member_role,
        }
    }

    /// Every approval rule, with the action it governs.
    pub fn rules(&self) -> [(KeyAction, &ActionRule); 8] {
        [
            (KeyAction::Create, &self.key_create),
            (KeyAction::Update, &self.key_update),
            (KeyAction::Revoke, &self.key_revoke),
            (KeyAction::Rotate, &self.key_rotate),
            (KeyAction::MemberInvite, &self.member_invite),
            (KeyAction::MemberRole, &self.member_role),
            (KeyAction::RoleUpdate, &self.role_update),
            (KeyAction::PolicyUpdate, &self.policy_update),
        ]
    }

    /// Does a member of `role` count towards some quorum now in force?
    pub fn binds(&self, role: Role) -> bool {
        self.rules().iter().any(|(_, r)| r.needs_approval() && r.approver_roles.contains(&role))
    }

    /// Would going from this policy to `next` possibly weaken it: an approvals count lowered
    /// (a switch between a number and `half_of_admins` counts, as its effect depends on who
    /// is a member), an approver role dropped from or added to a rule that needs approvals,
    /// or `require_mfa` turned off? The field that does, for the audit trail.
    pub fn weakened_by(&self, next: &Policy) -> Option<&'static str> {
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
        (self.require_mfa && !next.require_mfa).then_some("require_mfa")
    }

    /// The policy with a patch applied, checked.
    pub fn patched(&self, p: &PolicyPatch) -> Result<Policy, CoreError> {
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
            a.check()?;
            n.alerts = a.clone();
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
