//! The stored key record and how the API shows it (`KeyView`, in the wire crate). The key's
//! status, kind and type are the wire crate's, one type each for both.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use keyward_proto::keys::{CreditsSpec, KeyOwner, KeyView, RateLimitSpec};
pub use keyward_proto::keys::{KeyKind, KeyStatus, KeyType, ENVIRONMENTS};

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
    /// When the key was disabled; `None` while it is enabled. A disabled key answers
    /// `DISABLED` until enabled again, whatever its status.
    pub disabled_at: Option<DateTime<Utc>>,
    /// The identity the key belongs to, and its `external_id` (kept beside it: an
    /// identity's `external_id` never changes, so lists filter without a join).
    pub identity_id: Option<String>,
    pub external_id: Option<String>,
    /// The first report of the key leaked, when there was one.
    pub leak: Option<KeyLeak>,
    /// The key that replaced this one by a rotation (this one then ends, at once or after
    /// its grace period), and the key this one replaced.
    pub rotated_to: Option<String>,
    pub rotated_from: Option<String>,
}

/// Where and when a key was first reported leaked (`source`: `github:<source>` or `report`;
/// `url` as the report named it). Never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLeak {
    pub at: DateTime<Utc>,
    pub source: String,
    pub url: Option<String>,
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

// A stored limit in the API's words (the wire crate cannot name core's `RateLimit`).
impl From<&crate::ratelimit::RateLimit> for RateLimitSpec {
    fn from(l: &crate::ratelimit::RateLimit) -> Self {
        RateLimitSpec {
            name: l.name.clone(),
            limit: l.limit,
            duration: crate::ratelimit::format_window(l.duration_ms),
            auto_apply: l.auto_apply,
            mode: l.mode.as_str().to_string(),
        }
    }
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
            enabled: self.disabled_at.is_none(),
            disabled_at: self.disabled_at,
            leaked_at: self.leak.as_ref().map(|l| l.at),
            leak_source: self.leak.as_ref().map(|l| l.source.clone()),
            leak_url: self.leak.as_ref().and_then(|l| l.url.clone()),
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
            identity_id: self.identity_id.clone(),
            external_id: self.external_id.clone(),
            rotated_to: self.rotated_to.clone(),
            rotated_from: self.rotated_from.clone(),
            secret: None,
        }
    }
}
