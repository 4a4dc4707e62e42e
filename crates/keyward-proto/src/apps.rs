//! Apps, installations and their OAuth tokens on the wire. An app is registered by its
//! developer's workspace with the public half of an APP key pair; another workspace (an
//! organisation) installs it with some of the permissions and scopes it asks for; the app then
//! buys access tokens at `POST /v1/oauth/token` with an assertion it signs (RFC 7523), and the
//! tokens (RFC 9068 JWTs) verify wherever a key does.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::some;

/// The `grant_type` of an app's signed assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The `grant_type` of a refresh (RFC 6749 §6).
pub const REFRESH_TOKEN: &str = "refresh_token";
/// The `typ` of an access token (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Where apps buy tokens, under the server's public URL.
pub const TOKEN_PATH: &str = "/v1/oauth/token";
/// The longest an assertion may live, in seconds (its `exp` at most this far ahead).
pub const MAX_ASSERTION_SECONDS: i64 = 300;
/// How long an access token lives, in seconds.
pub const ACCESS_TOKEN_SECONDS: i64 = 3600;

/// `POST /v1/apps`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewAppRequest {
    /// 1-64 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The APP pair's public key (hex: 64 characters for Ed25519, 66 for compressed
    /// secp256k1), as `keyward keys generate --key-type APP` prints it.
    pub public_key: String,
    /// `ed25519` (default) or `secp256k1`: the assertion is then signed `EdDSA` or `ES256K`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// The permissions the app asks an organisation for.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// The resource scopes the app asks an organisation for.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage_url: Option<String>,
}

/// `PATCH /v1/apps/{id}`: a field left out keeps its value. What the app asks for changes
/// only future installations: an installation keeps what it was granted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateAppRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "some", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub homepage_url: Option<Option<String>>,
}

/// `POST /v1/apps/{id}/keys`: a new public key for the app. The keys before it keep signing
/// assertions for `overlap` (default `24h`; `0s` ends them at once).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateAppKeyRequest {
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
}

/// One of an app's public keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppKeyView {
    pub public_key: String,
    pub algorithm: String,
    pub created_at: DateTime<Utc>,
    /// When a rotation's overlap ends for this key (`null`: the current key).
    pub expires_at: Option<DateTime<Utc>>,
}

/// An app as its developer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppView {
    pub id: String,
    /// The developer's workspace.
    pub workspace_id: String,
    pub name: String,
    pub description: String,
    pub homepage_url: Option<String>,
    /// The current public key and its algorithm.
    pub public_key: String,
    pub algorithm: String,
    /// Every key that may sign assertions now, newest first.
    pub keys: Vec<AppKeyView>,
    pub permissions: Vec<String>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppList {
    pub items: Vec<AppView>,
}

/// What an organisation sees of an app before installing it (the consent screen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppListing {
    pub id: String,
    pub name: String,
    pub description: String,
    pub homepage_url: Option<String>,
    pub permissions: Vec<String>,
    pub scopes: Vec<String>,
}

/// `POST /v1/installations`: what the organisation grants, each covered by what the app
/// asks for (never more).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewInstallationRequest {
    pub app_id: String,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The environment the app's tokens verify in (`test` or `live`, default `live`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// An installation: an app's access to an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstallationView {
    pub id: String,
    pub app_id: String,
    pub app_name: String,
    /// The organisation's workspace.
    pub workspace_id: String,
    /// `pending` (waiting on approvals), `active`, `rejected` or `uninstalled`.
    pub status: String,
    pub permissions: Vec<String>,
    pub scopes: Vec<String>,
    pub environment: String,
    /// The approval request a pending installation waits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub uninstalled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstallationList {
    pub items: Vec<InstallationView>,
}

/// The claims of an app's assertion (RFC 7523 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    /// The app's id.
    pub iss: String,
    /// The installation's id.
    pub sub: String,
    /// The token endpoint's URL.
    pub aud: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique per assertion: a second use is refused.
    pub jti: String,
}

/// The claims of an access token (RFC 9068), with Keyward's `workspace_id` and `permissions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessClaims {
    /// The server's public URL.
    pub iss: String,
    /// The installation.
    pub sub: String,
    /// The organisation's workspace: a service checks it is its own.
    pub aud: String,
    /// The app.
    pub client_id: String,
    /// The granted resource scopes, space-separated.
    pub scope: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub workspace_id: String,
    /// The granted permissions.
    pub permissions: Vec<String>,
}

/// The answer of `POST /v1/oauth/token` (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Used once: a second use revokes every token descended from the same assertion.
    pub refresh_token: String,
    /// The granted resource scopes, space-separated.
    pub scope: String,
}

/// A refusal of the OAuth endpoints (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope` or `server_error`.
    pub error: String,
    pub error_description: String,
}

/// The answer of `POST /v1/oauth/introspect` (RFC 7662): `{"active": false}` for a token
/// that is not one of this server's live tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Introspection {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

/// `/.well-known/oauth-authorization-server` (RFC 8414).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
}

/// `POST /v1/oauth/token`'s form (`application/x-www-form-urlencoded`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer` or `refresh_token`.
    pub grant_type: String,
    /// With `jwt-bearer`: the assertion the app signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion: Option<String>,
    /// With `refresh_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `POST /v1/oauth/introspect` and `POST /v1/oauth/revoke`'s form.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenForm {
    pub token: String,
    /// `access_token` or `refresh_token` (a hint: the token's shape decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
}

/// `POST /v1/oauth/signing-key/rotate`: the new key's `kid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SigningKeyRotated {
    pub kid: String,
}
