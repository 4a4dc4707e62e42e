//! The shapes of the public contract (API.md): stored key records and their JSON views.
//! Shared by the server and the SDK so both sides agree by construction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

/// A key as stored (never its secret: only the HMAC `hash` of a secret key).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub kind: KeyKind,
    pub algorithm: Option<String>,
    pub public_key: Option<String>,
    pub key_type: Option<KeyType>,
    pub environment: String,
    pub status: KeyStatus,
    pub hash: Option<String>,
    pub start: String,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub scopes: Vec<String>,
    /// Roles given in scopes of their own; their roles are also in `roles`.
    pub grants: Vec<crate::authority::KeyGrant>,
    pub ip_allowlist: Vec<String>,
    pub meta: Map<String, Value>,
    pub callback_url: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The approval request a pending key waits on.
    pub approval_id: Option<String>,
    /// The service account that owns the key (its role is the key's too).
    pub service_account_id: Option<String>,
    /// Named rate limits, checked on every verification.
    pub ratelimits: Vec<crate::ratelimit::RateLimit>,
    /// Credits that verifications spend.
    pub credits: Option<crate::ratelimit::KeyCredits>,
}

impl KeyRecord {
    /// The status a caller sees: an active key past its expiry reads `expired`.
    pub fn effective_status(&self, now: DateTime<Utc>) -> KeyStatus {
        match (self.status, self.expires_at) {
            (KeyStatus::Active | KeyStatus::PendingUpdate | KeyStatus::PendingRevoke, Some(t)) if t <= now => {
                KeyStatus::Expired
            }
            (s, _) => s,
        }
    }
}
