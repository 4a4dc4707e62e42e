//! `POST /v1/keys/import`: keys brought from another system as hashes of their secrets, so
//! the keys already handed out keep working without being reissued.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::{CreditsSpec, RateLimitSpec};

/// How the other system hashed a secret: SHA-256 of the whole secret as sent, written as
/// lower- or upper-case hex, or as base64 (standard or URL-safe alphabet, padding optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HashVariant {
    Sha256Hex,
    Sha256Base64,
}

/// A secret's hash as the other system stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportHash {
    pub variant: HashVariant,
    pub value: String,
}

/// One key to import: its hash and the settings a created key takes. No secret: Keyward never
/// sees it until a client presents it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportKey {
    pub hash: ImportHash,
    /// The display hint shown in lists instead of the secret (e.g. `sk_live_ab`); at most 32
    /// printable ASCII characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Default `imported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `test` or `live` (default `test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// RFC 3339, in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub meta: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimits: Option<Vec<RateLimitSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditsSpec>,
    /// The identity the key belongs to (created when unknown), as for `POST /v1/keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl ImportKey {
    /// A key to import with this hash and every setting left to its default.
    pub fn with_hash(variant: HashVariant, value: impl Into<String>) -> Self {
        ImportKey {
            hash: ImportHash { variant, value: value.into() },
            start: None,
            name: None,
            environment: None,
            permissions: None,
            roles: None,
            expires_at: None,
            meta: None,
            ratelimits: None,
            credits: None,
            external_id: None,
        }
    }
}

/// The answer of `POST /v1/keys/import` (201): how many keys were imported and their ids,
/// in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportAnswer {
    pub imported: usize,
    pub ids: Vec<String>,
}
