//! Usage and alerts on the wire: `GET /v1/keys/{id}/usage`, `GET /v1/usage`, `/v1/alerts`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Verifications in one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageBucket {
    pub start: DateTime<Utc>,
    pub total: u64,
    /// e.g. `{"VALID": 120, "REVOKED": 2}`; codes with no verification are left out.
    pub by_code: BTreeMap<String, u64>,
}

/// `GET /v1/keys/{id}/usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyUsage {
    pub key_id: String,
    /// `minute`, `hour` or `day`
    pub granularity: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub total: u64,
    pub by_code: BTreeMap<String, u64>,
    /// Every bucket of the range, empty ones included, oldest first.
    pub buckets: Vec<UsageBucket>,
}

/// One of the busiest keys of a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopKey {
    pub key_id: String,
    pub name: Option<String>,
    pub total: u64,
    pub by_code: BTreeMap<String, u64>,
}

/// `GET /v1/usage`: the workspace's totals (refusals whose key was not known included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceUsage {
    pub granularity: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub total: u64,
    pub by_code: BTreeMap<String, u64>,
    /// Verifications refused before a key was known (`MALFORMED`, unknown keys).
    pub unknown_keys: u64,
    pub buckets: Vec<UsageBucket>,
    /// At most 10, busiest first.
    pub top_keys: Vec<TopKey>,
}

/// An alert on a key's use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertView {
    pub id: String,
    pub key_id: String,
    /// `spike`, `failures`, `new_ip`, `unused` or `leaked` (a leak report, docs/LEAKS.md)
    pub kind: String,
    /// The window the rule looked at (for `new_ip`, when the address was first seen).
    pub window_start: DateTime<Utc>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertList {
    pub items: Vec<AlertView>,
}
