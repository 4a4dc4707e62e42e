//! Keys on the wire: `POST|GET|PATCH /v1/keys…` requests and answers, and the parts of a key
//! its stored record shares (status, kind, type, grants, refills).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::some;

/// `POST /v1/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub name: Option<String>,
    pub environment: Option<String>,
    pub algorithm: Option<String>,
    pub public_key: Option<String>,
    #[serde(rename = "type")]
    pub key_type: Option<String>,
    pub expires_at: Option<String>,
    pub expires_in: Option<String>,
    pub ip_allowlist: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    pub permissions: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    /// Roles given in scopes of their own: `[{"role": "operator", "scopes": ["wallet:w_1"]}]`.
    /// Left out when absent, so this SDK still creates keys on servers that predate grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<KeyGrant>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub meta: Option<Value>,
    pub callback_url: Option<String>,
    /// Named rate limits (GCRA); without them the policy's defaults for the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimits: Option<Vec<RateLimitSpec>>,
    /// Uses the key may spend, with an optional daily or monthly refill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditsSpec>,
    /// A one-time code of the caller's (TOTP or recovery code): when sent, the key is created
    /// only if it is right, like the seeds' "Security Verification" before a registration.
    /// The console sends it for every member with MFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    /// `false` creates the key disabled (it answers `DISABLED` until enabled); default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The identity (customer) the key belongs to, by its `external_id`: its limits and
    /// credits are shared with its other keys. An unknown one is created with the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// `PATCH /v1/keys/{id}`. A field left out keeps its value; `null` clears a nullable field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    pub name: Option<String>,
    pub roles: Option<Vec<String>>,
    pub permissions: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<KeyGrant>>,
    pub ip_allowlist: Option<Vec<String>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub meta: Option<Value>,
    #[serde(default, deserialize_with = "some", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "some", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub callback_url: Option<Option<String>>,
    /// Replaces the key's limits (`[]` removes them), in force on every node within a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimits: Option<Vec<RateLimitSpec>>,
    /// Sets the key's credits (an override: `remaining` starts again); `null` removes them.
    #[serde(default, deserialize_with = "some", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<CreditsSpec>))]
    pub credits: Option<Option<CreditsSpec>>,
    /// `false` disables the key (it answers `DISABLED` everywhere until enabled again);
    /// `true` enables it. A revoked key cannot be enabled (409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Moves the key to the identity with this `external_id` (created when unknown); `null`
    /// detaches it.
    #[serde(default, deserialize_with = "some", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub external_id: Option<Option<String>>,
}

/// The key object of the API. `secret` is present only in the answer that created the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub kind: KeyKind,
    pub algorithm: Option<String>,
    pub public_key: Option<String>,
    #[serde(rename = "type")]
    pub key_type: Option<KeyType>,
    pub environment: String,
    /// The key's lifecycle; a disabled key keeps its status (see `enabled`).
    pub status: KeyStatus,
    /// `false` while the key is disabled: it answers `DISABLED` until enabled again.
    /// Beside `status` rather than in it, so `status` keeps its meaning for existing
    /// consumers (a server that predates it sends none: enabled).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// When the key was disabled (present only while it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<DateTime<Utc>>,
    /// When the key was first reported leaked (by GitHub's secret scanning or a report to
    /// `POST /v1/leaks`); absent for a key never reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_at: Option<DateTime<Utc>>,
    /// Where that first report found it: `github:<source>` (`github:commit`, …) or `report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak_source: Option<String>,
    /// The URL the report named, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak_url: Option<String>,
    pub start: String,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub grants: Vec<KeyGrant>,
    pub ip_allowlist: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub meta: Map<String, Value>,
    pub callback_url: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// While the key waits on an approval request: its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Who the key belongs to: the service account that owns it, else the member who made it.
    #[serde(default)]
    pub owner: Option<KeyOwner>,
    /// Verifications in the last 24 hours (in `GET /v1/keys` lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_24h: Option<u64>,
    #[serde(default)]
    pub ratelimits: Vec<RateLimitSpec>,
    /// `remaining` as last written (counts are flushed like usage).
    #[serde(default)]
    pub credits: Option<CreditsSpec>,
    /// The identity the key belongs to (its id and `external_id`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The key that replaced this one by a rotation: while this one is still `active` it is
    /// in its grace period and stops at `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_to: Option<String>,
    /// The key this one replaced by a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A named rate limit: `limit` uses per `duration` (1s-30d).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    #[serde(default = "default_limit_name")]
    pub name: String,
    pub limit: u32,
    /// e.g. `1s`, `1m`, `1h`, `1d`
    pub duration: String,
    /// Checked on every verification (default `true`); `false`: only when a verification
    /// names it in `ratelimits`.
    #[serde(default = "enabled_by_default", skip_serializing_if = "is_true")]
    pub auto_apply: bool,
    /// `exact` (the default): every check counted in Redis when nodes share it; `fast`: a
    /// node leases a few tokens at a time and answers most checks without Redis (never
    /// more than the limit; briefly fewer, see docs/RATELIMITS.md). Shown only when `fast`.
    #[serde(default = "exact_mode", skip_serializing_if = "is_exact_mode")]
    #[cfg_attr(feature = "openapi", schema(example = "exact"))]
    pub mode: String,
}

fn exact_mode() -> String {
    "exact".into()
}

fn is_exact_mode(m: &String) -> bool {
    m == "exact"
}

fn is_true(b: &bool) -> bool {
    *b
}

fn enabled_by_default() -> bool {
    true
}

fn default_limit_name() -> String {
    "default".into()
}

/// Credits: uses left, and an optional refill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreditsSpec {
    pub remaining: u64,
    #[serde(default)]
    pub refill: Option<Refill>,
}

/// A key's owner in the key object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyOwner {
    /// `service_account` or `member`
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyList {
    pub items: Vec<KeyView>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/keys/{id}/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old key keeps working: `0s` (default) stops it at once.
    #[serde(default)]
    pub grace_period: Option<String>,
}

/// The answer of `keyward init` and of the first `serve` on an empty data dir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitOutcome {
    pub workspace_id: String,
    pub member_id: String,
    pub management_key: String,
    pub prefix: String,
    /// The first operator token (`kw_op_…`), made by `init` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_token: Option<String>,
}

/// `POST /v1/verify-tokens`: a token that binds verification to the caller's workspace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewVerifyTokenRequest {
    /// What it is for, e.g. `billing-api gateway`.
    #[serde(default)]
    pub name: Option<String>,
}

/// A verify token as listed; `token` is present only in the answer that created it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyTokenView {
    pub id: String,
    pub name: String,
    pub workspace_id: String,
    pub start: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was first reported leaked (GitHub's secret scanning or `POST /v1/leaks`,
    /// docs/LEAKS.md); absent when never reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_at: Option<DateTime<Utc>>,
    /// Where that first report found it: `github:<source>` or `report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak_source: Option<String>,
    /// The URL the report named, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyTokenList {
    pub items: Vec<VerifyTokenView>,
}

// A key's status, kind and type: one type each for the stored record (`keyward_core::model`)
// and the key object (a plain comment: a doc comment would change the OpenAPI document).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Revoked,
    Expired,
    PendingCreate,
    PendingUpdate,
    PendingRevoke,
    Rejected,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Revoked => "revoked",
            KeyStatus::Expired => "expired",
            KeyStatus::PendingCreate => "pending_create",
            KeyStatus::PendingUpdate => "pending_update",
            KeyStatus::PendingRevoke => "pending_revoke",
            KeyStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => KeyStatus::Active,
            "revoked" => KeyStatus::Revoked,
            "expired" => KeyStatus::Expired,
            "pending_create" => KeyStatus::PendingCreate,
            "pending_update" => KeyStatus::PendingUpdate,
            "pending_revoke" => KeyStatus::PendingRevoke,
            "rejected" => KeyStatus::Rejected,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Secret,
    Public,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "secret" => Some(KeyKind::Secret),
            "public" => Some(KeyKind::Public),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    Temporary,
    Permanent,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Temporary => "temporary",
            KeyType::Permanent => "permanent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "temporary" => Some(KeyType::Temporary),
            "permanent" => Some(KeyType::Permanent),
            _ => None,
        }
    }
}

pub const ENVIRONMENTS: [&str; 2] = ["test", "live"];

/// One role given to a key in resource scopes of its own: `{"role": "operator", "scopes":
/// ["wallet:w_1"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyGrant {
    pub role: String,
    pub scopes: Vec<String>,
}

/// How often credits come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Daily,
    Monthly,
}

/// Credits refill to `amount` at the start of every day (UTC), or every month on `day`
/// (1-31; a month shorter than `day` refills on its last day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Refill {
    pub interval: Interval,
    pub amount: u64,
    #[serde(default = "first_day")]
    pub day: u8,
}

fn first_day() -> u8 {
    1
}
