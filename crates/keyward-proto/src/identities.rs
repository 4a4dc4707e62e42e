//! Identities on the wire: `POST|GET|PATCH|DELETE /v1/identities…`. An identity is a
//! customer of the operator (Unkey's `externalId`): its named limits and credits are shared by
//! every key that names it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::keys::{CreditsSpec, RateLimitSpec};
use crate::some;

/// `POST /v1/identities`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateIdentityRequest {
    /// The operator's own id of the customer (1-255 bytes, no control characters), unique in
    /// the workspace.
    pub external_id: String,
    /// A JSON object (at most 4 KiB), shown in verify answers of the identity's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub meta: Option<Value>,
    /// Named limits shared by all the identity's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimits: Option<Vec<RateLimitSpec>>,
    /// Credits shared by all the identity's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditsSpec>,
}

/// `PATCH /v1/identities/{id}`. A field left out keeps its value; `null` credits removes them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateIdentityRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub meta: Option<Value>,
    /// Replaces the identity's limits (`[]` removes them), in force on every node within a
    /// second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimits: Option<Vec<RateLimitSpec>>,
    /// Sets the identity's credits (an override: `remaining` starts again); `null` removes them.
    #[serde(default, deserialize_with = "some", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<CreditsSpec>))]
    pub credits: Option<Option<CreditsSpec>>,
}

/// An identity as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityView {
    pub id: String,
    pub external_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub meta: Map<String, Value>,
    pub ratelimits: Vec<RateLimitSpec>,
    /// `remaining` as last written (counts are flushed like keys').
    pub credits: Option<CreditsSpec>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityList {
    pub items: Vec<IdentityView>,
    pub next_cursor: Option<String>,
}
