//! Verification on the wire: the requests of `POST /v1/keys/verify` and
//! `POST /v1/requests/verify`, and the answer every verification surface gives.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::codes::VerifyCode;
use crate::keys::KeyGrant;

// The server reads it borrowing from the body where it can (strings without escapes), so a
// verification copies no string; callers build it with `.into()`.
/// `POST /v1/keys/verify`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyKeyRequest<'a> {
    #[serde(borrow)]
    pub key: Cow<'a, str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Cow<'a, str>>,
    /// A permission query such as `wallet.read AND (tx.create OR tx.approve)`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Cow<'a, str>>,
    /// Only a key of this workspace verifies; another's answers `NOT_FOUND`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Cow<'a, str>>,
    /// Only a key of this environment (`test` or `live`) verifies; another's answers
    /// `WRONG_ENVIRONMENT`, checked right after the workspace.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Cow<'a, str>>,
    /// Uses this verification spends of the key's limits and credits (default 1; 0 checks
    /// without spending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u32>,
    /// Up to 10 labels (1-64 characters each, no control characters) this verification is
    /// counted under in the key's usage, e.g. `path=/v1/orders` (`GET /v1/keys/{id}/usage?tag=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Cow<'a, str>>>,
    /// Limits to check besides those applied automatically, each at its own cost (Unkey's
    /// shape): a key's limit by name, else its identity's; with `limit` and `duration` a
    /// limit made for this request when the key has none of that name. The answer then
    /// lists every limit checked in `ratelimits`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub ratelimits: Option<Vec<VerifyRatelimit<'a>>>,
}

/// One limit a verification names (`ratelimits[]` of `POST /v1/keys/verify`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRatelimit<'a> {
    /// The limit's name (1-32 letters, digits, `_`, `-` or `.`).
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Uses spent of this limit (default 1; 0 only looks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u32>,
    /// With `duration`: a limit of this many uses, for this request only, when neither the
    /// key nor its identity has one of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The window of `limit`, in milliseconds (1,000 to 2,592,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
}

/// `POST /v1/requests/verify`: a signed request as the service received it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Only a key of this workspace verifies; another's answers `NOT_FOUND`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// Only a key of this environment (`test` or `live`) verifies; another's answers
    /// `WRONG_ENVIRONMENT`, checked right after the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Uses this verification spends of the key's limits and credits (default 1; 0 checks
    /// without spending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u32>,
}

impl VerifySignedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The answer of every verification surface; always `200` from the verify endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyResponse {
    pub valid: bool,
    pub code: VerifyCode,
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
    /// Every permission the key holds: its own and its roles'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// Roles the key holds only in scopes of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<KeyGrant>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub meta: Option<Map<String, Value>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The identity (customer) the key belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<VerifyIdentity>,
    /// The key's tightest rate limit after this verification (keys with limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<RatelimitAnswer>,
    /// The key's credits after this verification (keys with credits; with an identity's
    /// credits too, the smaller of the two counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditsAnswer>,
    /// Every limit checked, when the request named limits (`ratelimits`) or the key's
    /// identity has limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimits: Option<Vec<RatelimitResult>>,
    /// `app_token` when the credential was an app's access token (absent for keys); then
    /// `key_id` is the installation's id and `name` the app's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The app whose token it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The installation the token was issued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<String>,
}

/// The identity of a verified key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyIdentity {
    pub id: String,
    pub external_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub meta: Map<String, Value>,
}

/// One limit checked by a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RatelimitResult {
    pub name: String,
    pub limit: u32,
    /// The window in milliseconds.
    pub duration: u64,
    pub remaining: u32,
    /// Unix milliseconds when the limit is whole again.
    pub reset: i64,
    /// This limit refused the verification.
    pub exceeded: bool,
    pub auto_apply: bool,
    /// Whose limit it is: `key`, `identity`, or `request` (made for this request).
    pub source: String,
}

/// A limit's state in a verify answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RatelimitAnswer {
    pub name: String,
    pub limit: u32,
    pub remaining: u32,
    /// Unix milliseconds when the limit is whole again.
    pub reset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreditsAnswer {
    pub remaining: u64,
}

impl VerifyResponse {
    /// An answer that reveals nothing about the key (malformed, unknown).
    pub fn bare(code: VerifyCode) -> Self {
        VerifyResponse {
            valid: false,
            code,
            key_id: None,
            workspace_id: None,
            name: None,
            environment: None,
            roles: None,
            permissions: None,
            grants: None,
            scopes: None,
            meta: None,
            expires_at: None,
            identity: None,
            ratelimit: None,
            credits: None,
            ratelimits: None,
            kind: None,
            app_id: None,
            installation_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verify path answers unknown keys with `to_string(bare(code))` and falls back to an
    /// empty string on error: that fallback must be impossible for every code.
    #[test]
    fn every_bare_answer_serializes_whole() {
        for code in VerifyCode::ALL {
            let s = serde_json::to_string(&VerifyResponse::bare(code)).unwrap();
            let back: VerifyResponse = serde_json::from_str(&s).unwrap();
            assert_eq!(back.code, code);
            assert!(!back.valid);
        }
    }
}
