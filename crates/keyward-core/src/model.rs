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
            secret: None,
        }
    }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyView>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/keys/verify`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyKeyRequest {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// A permission query such as `wallet.read AND (tx.create OR tx.approve)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// `POST /v1/requests/verify`: a signed request as the service received it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySignedRequest {
    /// e.g. `POST`
    pub method: String,
    /// The path without host or query, e.g. `/v2/wallets`.
    pub path: String,
    /// The raw query string as sent, without `?`.
    #[serde(default)]
    pub query: String,
    /// The raw body as sent (empty when none).
    #[serde(default)]
    pub body: String,
    /// `Biz-Api-Key`, `Biz-Api-Nonce`, `Biz-Api-Signature` (names in any case).
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl VerifySignedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The answer of every verification surface; always `200` from the verify endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    pub valid: bool,
    pub code: crate::verify::VerifyCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub meta: Option<Map<String, Value>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl VerifyResponse {
    /// An answer that reveals nothing about the key (malformed, unknown).
    pub fn bare(code: crate::verify::VerifyCode) -> Self {
        VerifyResponse {
            valid: false,
            code,
            key_id: None,
            workspace_id: None,
            name: None,
            environment: None,
            roles: None,
            permissions: None,
            scopes: None,
            meta: None,
            expires_at: None,
        }
    }

    /// An answer about a known key.
    pub fn about(rec: &KeyRecord, code: crate::verify::VerifyCode) -> Self {
        VerifyResponse {
            valid: code == crate::verify::VerifyCode::Valid,
            code,
            key_id: Some(rec.id.clone()),
            workspace_id: Some(rec.workspace_id.clone()),
            name: Some(rec.name.clone()),
            environment: Some(rec.environment.clone()),
            roles: Some(rec.roles.clone()),
            permissions: Some(rec.permissions.clone()),
            scopes: Some(rec.scopes.clone()),
            meta: Some(rec.meta.clone()),
            expires_at: rec.expires_at,
        }
    }
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
