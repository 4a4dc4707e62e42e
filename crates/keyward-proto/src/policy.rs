//! Workspace policies on the wire: which key actions need approvals and from whom, the rules
//! for permanent and temporary keys, whether every member must use MFA, alerts and default
//! limits. Applying a patch, telling a weakening change and fixing a quorum are
//! `keyward_core::policy`'s.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::keys::RateLimitSpec;
use crate::member_role::Role;

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
#[cfg(feature = "openapi")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActionRule {
    #[serde(default = "default_approvals")]
    #[cfg_attr(feature = "openapi", schema(schema_with = approvals_schema, example = json!(2)))]
    pub approvals: Approvals,
    #[serde(default = "default_approver_roles")]
    pub approver_roles: Vec<Role>,
}

impl ActionRule {
    /// No approvals needed (owners and admins named for when some are).
    pub fn none() -> Self {
        ActionRule { approvals: Approvals::Count(0), approver_roles: default_approver_roles() }
    }

    pub fn needs_approval(&self) -> bool {
        self.approvals != Approvals::Count(0)
    }
}

/// Alerts on unusual use of a key (each rule off until set), evaluated in the background.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
}

/// What a leak report does (`leaked_keys`), to a key or any other secret Keyward issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LeakedKeys {
    /// The key is revoked at once, on every node, as by `POST /v1/keys/{id}/revoke` (a
    /// management key or verify token revoked, a session ended, as by hand).
    #[default]
    Revoke,
    /// The key (or other credential) stays valid; an alert of kind `leaked` is raised.
    Alert,
}

/// A workspace's policy. The default needs no approvals, so a new workspace works at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Installing an app in this workspace (the installation waits as `pending`).
    #[serde(rename = "app.install", default = "ActionRule::none")]
    pub app_install: ActionRule,
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
    /// What a report of a leaked key does: `revoke` (default) or `alert`. Either way the
    /// leak is audited (`key.leaked`), sent as a `key.leaked` event and raised as an alert;
    /// a management key, verify token or session token alike, as `management_key.leaked`,
    /// `verify_token.leaked` or `session.leaked`.
    #[serde(default)]
    pub leaked_keys: LeakedKeys,
    /// Rate limits a new key gets when its request names none, by environment
    /// (`{"live": [{"name": "default", "limit": 100, "duration": "1s"}]}`).
    #[serde(default)]
    pub default_ratelimits: std::collections::BTreeMap<String, Vec<RateLimitSpec>>,
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
            app_install: ActionRule::none(),
            management_key_max_days: MANAGEMENT_KEY_DEFAULT_MAX_DAYS,
            permanent_requires_ip_allowlist: true,
            temporary_max_days: TEMPORARY_DEFAULT_DAYS as u32,
            max_key_lifetime_days: None,
            require_mfa: false,
            approval_expiry_hours: 72,
            expiry_warning_days: default_expiry_warning_days(),
            default_ratelimits: Default::default(),
            alerts: AlertPolicy::default(),
            leaked_keys: LeakedKeys::Revoke,
        }
    }
}

/// `PUT /v1/policies`: any subset of the fields; those left out keep their values.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[serde(rename = "app.install", default, skip_serializing_if = "Option::is_none")]
    pub app_install: Option<ActionRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_key_max_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent_requires_ip_allowlist: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_max_days: Option<u32>,
    /// `null` removes the cap.
    #[serde(default, deserialize_with = "crate::some", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
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
    /// `revoke` or `alert`; going from `revoke` to `alert` weakens the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_keys: Option<LeakedKeys>,
    /// Replaces the default limits whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ratelimits: Option<std::collections::BTreeMap<String, Vec<RateLimitSpec>>>,
}
