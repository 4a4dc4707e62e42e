//! Rate limiting as a service on the wire: `POST /v1/ratelimit` and
//! `/v1/ratelimit/overrides` (limits that are not about keys: logins, SMS, per address).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /v1/ratelimit`: spend `cost` of `limit` per `duration` for `identifier`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitRequest {
    /// What is limited, e.g. `sms.sign_up` (1-255 bytes, no NUL).
    pub namespace: String,
    /// Who is limited, e.g. a user id or an address (1-255 bytes, no NUL).
    pub identifier: String,
    /// Uses allowed per `duration` (1-1,000,000,000), unless an override says otherwise.
    pub limit: u64,
    /// The window in milliseconds (1,000 to 2,592,000,000: 1 s to 30 d).
    pub duration: u64,
    /// Uses this request spends (default 1, at most `limit`; 0 only looks).
    #[serde(default)]
    pub cost: Option<u64>,
}

/// The answer of `POST /v1/ratelimit` (always 200 for a well-formed request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimitAnswer {
    /// Whether the request fits (and was counted).
    pub success: bool,
    /// Uses left after this request (or now, when refused).
    pub remaining: u64,
    /// Unix milliseconds when the limit is whole again.
    pub reset: i64,
    /// The limit applied: the request's, or its override's.
    pub limit: u64,
    /// The override that applied, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_id: Option<String>,
}

/// `POST /v1/ratelimit/overrides`: sets (or replaces) the limit of one identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    pub namespace: String,
    /// The identifier exactly, or a pattern where `*` stands for any run of characters
    /// (`premium_*`, `*@example.com`).
    pub identifier: String,
    /// Uses allowed per `duration` (0-1,000,000,000; 0 refuses every request).
    pub limit: u64,
    /// The window in milliseconds (1,000 to 2,592,000,000).
    pub duration: u64,
}

/// A stored override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverrideView {
    pub id: String,
    pub namespace: String,
    pub identifier: String,
    pub limit: u64,
    pub duration: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/ratelimit/overrides`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverrideList {
    pub items: Vec<OverrideView>,
    pub next_cursor: Option<String>,
}
