//! Keys on the wire: `POST|GET|PATCH /v1/keys…` requests and answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::authority::KeyGrant;
use crate::model::{KeyKind, KeyRecord, KeyStatus, KeyType};
use crate::wire::some;

/// `POST /v1/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = Option<Object>)]
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
}

/// `PATCH /v1/keys/{id}`. A field left out keeps its value; `null` clears a nullable field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    pub name: Option<String>,
    pub roles: Option<Vec<String>>,
    pub permissions: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<KeyGrant>>,
    pub ip_allowlist: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub meta: Option<Value>,
    #[serde(default, deserialize_with = "some", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "some", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub callback_url: Option<Option<String>>,
    /// Replaces the key's limits (`[]` removes them), in force on every node within a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimits: Option<Vec<RateLimitSpec>>,
    /// Sets the key's credits (an override: `remaining` starts again); `null` removes them.
    #[serde(default, deserialize_with = "some", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CreditsSpec>)]
    pub credits: Option<Option<CreditsSpec>>,
}

/// The key object of the API. `secret` is present only in the answer that created the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub kind: KeyKind,
    pub algorithm: Option<String>,
    pub public_key: Option<String>,
    #[serde(rename = "type")]
    pub key_type: Option<KeyType>,
    pub environment: String,
    pub status: KeyStatus,
    pub start: String,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub grants: Vec<KeyGrant>,
    pub ip_allowlist: Vec<String>,
    #[schema(value_type = Object)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A named rate limit: `limit` uses per `duration` (1s-30d).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    #[serde(default = "default_limit_name")]
    pub name: String,
    pub limit: u32,
    /// e.g. `1s`, `1m`, `1h`, `1d`
    pub duration: String,
}

fn default_limit_name() -> String {
    "default".into()
}

/// Credits: uses left, and an optional refill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditsSpec {
    pub remaining: u64,
    #[serde(default)]
    pub refill: Option<crate::ratelimit::Refill>,
}

impl From<&crate::ratelimit::RateLimit> for RateLimitSpec {
    fn from(l: &crate::ratelimit::RateLimit) -> Self {
        RateLimitSpec { name: l.name.clone(), limit: l.limit, duration: crate::ratelimit::format_window(l.duration_ms) }
    }
}

/// A key's owner in the key object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyOwner {
    /// `service_account` or `member`
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyView>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/keys/{id}/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
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
}

impl KeyRecord {
    /// The key as the API shows it (without its secret).
    pub fn view(&self, now: DateTime<Utc>) -> KeyView {
        KeyView {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.kind,
            algorithm: self.algorithm.clone(),
            public_key: self.public_key.clone(),
            key_type: self.key_type,
            environment: self.environment.clone(),
            status: self.effective_status(now),
            start: self.start.clone(),
            roles: self.roles.clone(),
            permissions: self.permissions.clone(),
            scopes: self.scopes.clone(),
            grants: self.grants.clone(),
            ip_allowlist: self.ip_allowlist.clone(),
            meta: self.meta.clone(),
            callback_url: self.callback_url.clone(),
            expires_at: self.expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            created_by: self.created_by.clone(),
            last_used_at: self.last_used_at,
            last_used_ip: self.last_used_ip.clone(),
            revoked_at: self.revoked_at,
            approval_id: self.approval_id.clone(),
            owner: match (&self.service_account_id, &self.created_by) {
                (Some(sa), _) => Some(KeyOwner { kind: "service_account".into(), id: sa.clone() }),
                (None, Some(m)) => Some(KeyOwner { kind: "member".into(), id: m.clone() }),
                (None, None) => None,
            },
            requests_24h: None,
            ratelimits: self.ratelimits.iter().map(RateLimitSpec::from).collect(),
            credits: self.credits.map(|c| CreditsSpec { remaining: c.remaining, refill: c.refill }),
            secret: None,
        }
    }
}

/// `POST /v1/verify-tokens`: a token that binds verification to the caller's workspace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVerifyTokenRequest {
    /// What it is for, e.g. `billing-api gateway`.
    #[serde(default)]
    pub name: Option<String>,
}

/// A verify token as listed; `token` is present only in the answer that created it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerifyTokenView {
    pub id: String,
    pub name: String,
    pub workspace_id: String,
    pub start: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerifyTokenList {
    pub items: Vec<VerifyTokenView>,
}
