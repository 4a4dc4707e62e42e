//! The Keyward Rust SDK: a typed client for the management and verification API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keyward_client::ClientError> {
//! use keyward_client::{Client, CreateKeyRequest};
//! let kw = Client::new("http://127.0.0.1:5399", Some("kw_mk_…".into()))?;
//! let key = kw.create_key(&CreateKeyRequest { name: Some("billing".into()), ..Default::default() }, None).await?;
//! let answer = kw.verify(key.secret.as_deref().unwrap_or_default()).await?;
//! assert!(answer.valid);
//! # Ok(()) }
//! ```
//!
//! The request and answer types are those of `keyward-proto`, re-exported here; the SDK does
//! not build the server's domain crate (no argon2, totp-rs, utoipa or sqlx).
//!
//! Features: `secp256k1` (off by default) lets the request signer ([`signer::Signer`]) and an
//! app's [`token_source::TokenSource`] sign with secp256k1 keys as well as Ed25519 ones; it
//! brings in `k256`. Without it
//! `Algorithm::Secp256k1` does not exist.

// The SDK runs in the caller's process, where the system's time is the time (the `Clock`
// rule in clippy.toml is for server-side crates).
#![allow(clippy::disallowed_methods)]

pub mod layer;
pub mod signer;
pub mod token_source;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use keyward_proto::apps::{
    AppList, AppListing, AppView, InstallationList, InstallationView, NewAppRequest, NewInstallationRequest,
    TokenResponse,
};
pub use keyward_proto::audit::{AuditEvent, AuditList, ChainCheck};
pub use keyward_proto::codes::VerifyCode;
pub use keyward_proto::error::{ErrorBody, ErrorDetail};
pub use keyward_proto::governance::{
    ApprovalList, ApprovalView, Invitation, LoginRequest, ManagementKeyList, ManagementKeyView, MemberList, MemberView,
    NewManagementKeyRequest, NewManagementKeyView, PolicyAnswer, RecoveryCodes, SessionView, TotpEnrolment,
};
pub use keyward_proto::identities::{CreateIdentityRequest, IdentityList, IdentityView, UpdateIdentityRequest};
pub use keyward_proto::import::{HashVariant, ImportAnswer, ImportHash, ImportKey};
pub use keyward_proto::keys::{CreateKeyRequest, KeyList, KeyOwner, KeyView, RotateRequest, UpdateKeyRequest};
pub use keyward_proto::keys::{KeyGrant, KeyStatus};
pub use keyward_proto::keys::{NewVerifyTokenRequest, VerifyTokenList, VerifyTokenView};
pub use keyward_proto::policy::{Policy, PolicyPatch};
pub use keyward_proto::ratelimit::{LimitAnswer, LimitRequest, OverrideList, OverrideRequest, OverrideView};
pub use keyward_proto::roles::{
    CreateRoleRequest, CreateServiceAccountRequest, RoleList, RoleView, ServiceAccountList, ServiceAccountView,
    UpdateRoleRequest, UpdateServiceAccountRequest,
};
pub use keyward_proto::usage::{AlertList, AlertView, KeyUsage, TopKey, UsageBucket, WorkspaceUsage};
pub use keyward_proto::verify::{VerifyKeyRequest, VerifyResponse, VerifySignedRequest};
pub use keyward_proto::webhooks::{
    AttemptView, DeliveryList, DeliveryView, NewWebhookRequest, RotateSecretRequest, SigningKeyView, WebhookList,
    WebhookPatch, WebhookView,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{message} ({code}{})", field.as_deref().map(|f| format!(", field {f}")).unwrap_or_default())]
    Api { status: u16, code: String, message: String, field: Option<String> },
    #[error("cannot reach the server: {0}")]
    Transport(String),
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Filters of `GET /v1/keys`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListKeys {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Only the keys of the identity with this external id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Only the keys of this service account, or of this member (those no account owns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `service_account` or `member`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Filters of `GET /v1/identities`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListIdentities {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    /// Sent as `Keyward-Verify-Token` on verification calls.
    verify_token: Option<String>,
}

impl Client {
    /// `base_url` like `http://127.0.0.1:5399`; `token` a management key (needed for management calls).
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_ca(base_url, token, None)
    }

    /// Like [`Client::new`], also trusting the CA certificate(s) in `ca_pem` (a private CA
    /// of an `https://` server).
    pub fn with_ca(base_url: &str, token: Option<String>, ca_pem: Option<&[u8]>) -> Result<Self, ClientError> {
        let mut b = reqwest::Client::builder().user_agent(concat!("keyward-client/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| ClientError::Transport(e.to_string()))? {
                b = b.add_root_certificate(cert);
            }
        }
        let http = b.build().map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Client { base: base_url.trim_end_matches('/').to_string(), token, http, verify_token: None })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn send<T: DeserializeOwned>(rb: RequestBuilder) -> Result<T, ClientError> {
        let bytes = Self::exchange(rb).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// For answers without a body (`204`).
    async fn send_empty(rb: RequestBuilder) -> Result<(), ClientError> {
        Self::exchange(rb).await.map(drop)
    }

    async fn exchange(rb: RequestBuilder) -> Result<bytes::Bytes, ClientError> {
        let resp = rb.send().await.map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport(e.to_string()))?;
        if status.is_success() {
            return Ok(bytes);
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(env) => Err(ClientError::Api {
                status: status.as_u16(),
                code: env.error.code,
                message: env.error.message,
                field: env.error.field,
            }),
            Err(_) => Err(ClientError::Api {
                status: status.as_u16(),
                code: status.canonical_reason().unwrap_or("error").to_lowercase(),
                message: format!("HTTP {status}"),
                field: None,
            }),
        }
    }

    pub async fn health(&self) -> Result<bool, ClientError> {
        let resp =
            self.request(Method::GET, "/healthz").send().await.map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(resp.status() == StatusCode::OK)
    }

    /// Creates a secret key; the answer's `secret` is the only time it is shown.
    pub async fn create_key(
        &self,
        req: &CreateKeyRequest,
        idempotency_key: Option<&str>,
    ) -> Result<KeyView, ClientError> {
        let mut rb = self.request(Method::POST, "/v1/keys").json(req);
        if let Some(k) = idempotency_key {
            rb = rb.header("Idempotency-Key", k);
        }
        Self::send(rb).await
    }

    /// Imports keys by the hashes of their secrets, all or none (at most 10,000 a call).
    pub async fn import_keys(&self, keys: &[ImportKey]) -> Result<ImportAnswer, ClientError> {
        Self::send(self.request(Method::POST, "/v1/keys/import").json(keys)).await
    }

    pub async fn list_keys(&self, f: &ListKeys) -> Result<KeyList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/keys").query(f)).await
    }

    pub async fn create_identity(&self, req: &CreateIdentityRequest) -> Result<IdentityView, ClientError> {
        Self::send(self.request(Method::POST, "/v1/identities").json(req)).await
    }

    pub async fn list_identities(&self, f: &ListIdentities) -> Result<IdentityList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/identities").query(f)).await
    }

    /// An identity by its id or its external id.
    pub async fn get_identity(&self, id: &str) -> Result<IdentityView, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/identities/{}", path_segment(id)))).await
    }

    pub async fn update_identity(&self, id: &str, req: &UpdateIdentityRequest) -> Result<IdentityView, ClientError> {
        Self::send(self.request(Method::PATCH, &format!("/v1/identities/{}", path_segment(id))).json(req)).await
    }

    /// Deletes an identity; its keys keep working without it.
    pub async fn delete_identity(&self, id: &str) -> Result<IdentityView, ClientError> {
        Self::send(self.request(Method::DELETE, &format!("/v1/identities/{}", path_segment(id)))).await
    }

    pub async fn get_key(&self, id: &str) -> Result<KeyView, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/keys/{}", path_segment(id)))).await
    }

    pub async fn update_key(&self, id: &str, req: &UpdateKeyRequest) -> Result<KeyView, ClientError> {
        Self::send(self.request(Method::PATCH, &format!("/v1/keys/{}", path_segment(id))).json(req)).await
    }

    pub async fn revoke_key(&self, id: &str) -> Result<KeyView, ClientError> {
        Self::send(self.request(Method::POST, &format!("/v1/keys/{}/revoke", path_segment(id)))).await
    }

    /// Rotates a secret key; the old one keeps working for `grace_period` (e.g. `24h`).
    pub async fn rotate_key(&self, id: &str, grace_period: Option<&str>) -> Result<KeyView, ClientError> {
        let body = RotateRequest { grace_period: grace_period.map(str::to_string) };
        Self::send(self.request(Method::POST, &format!("/v1/keys/{}/rotate", path_segment(id))).json(&body)).await
    }

    /// Sends `Keyward-Verify-Token` on verification calls: the server's `--verify-token`, or a
    /// `…_vt_…` token that lets only keys of its workspace verify.
    pub fn with_verify_token(mut self, token: impl Into<String>) -> Self {
        self.verify_token = Some(token.into());
        self
    }

    fn verification(&self, path: &str) -> RequestBuilder {
        let rb = self.http.post(format!("{}{path}", self.base));
        match &self.verify_token {
            Some(t) => rb.header("Keyward-Verify-Token", t),
            None => rb,
        }
    }

    /// Verifies a secret key with optional requirements.
    pub async fn verify_key(&self, req: &VerifyKeyRequest<'_>) -> Result<VerifyResponse, ClientError> {
        Self::send(self.verification("/v1/keys/verify").json(req)).await
    }

    pub async fn verify(&self, key: &str) -> Result<VerifyResponse, ClientError> {
        self.verify_key(&VerifyKeyRequest { key: key.into(), ..Default::default() }).await
    }

    /// `POST /v1/requests/verify`: checks a signed request as the service received it.
    pub async fn verify_request(&self, req: &VerifySignedRequest) -> Result<VerifyResponse, ClientError> {
        Self::send(self.verification("/v1/requests/verify").json(req)).await
    }
}

/// Members, sessions and MFA.
impl Client {
    /// Invites a member; hand them the answer's `setup_token` (shown only here).
    pub async fn invite_member(&self, email: &str, role: &str) -> Result<Invitation, ClientError> {
        let body = serde_json::json!({"email": email, "role": role});
        Self::send(self.request(Method::POST, "/v1/members").json(&body)).await
    }

    /// Sets a new member's password with their setup token (no credential needed).
    pub async fn setup_member(&self, setup_token: &str, password: &str) -> Result<MemberView, ClientError> {
        let body = serde_json::json!({"setup_token": setup_token, "password": password});
        Self::send(self.http.post(format!("{}/v1/members/setup", self.base)).json(&body)).await
    }

    pub async fn list_members(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<MemberList, ClientError> {
        let q = ListKeys { limit, cursor: cursor.map(str::to_string), ..Default::default() };
        Self::send(self.request(Method::GET, "/v1/members").query(&q)).await
    }

    pub async fn me(&self) -> Result<MemberView, ClientError> {
        Self::send(self.request(Method::GET, "/v1/members/me")).await
    }

    pub async fn change_role(&self, id: &str, role: &str) -> Result<MemberView, ClientError> {
        let body = serde_json::json!({"role": role});
        Self::send(self.request(Method::PATCH, &format!("/v1/members/{}", path_segment(id))).json(&body)).await
    }

    pub async fn remove_member(&self, id: &str) -> Result<(), ClientError> {
        Self::send_empty(self.request(Method::DELETE, &format!("/v1/members/{}", path_segment(id)))).await
    }

    pub async fn set_password(&self, password: &str, current: Option<&str>) -> Result<(), ClientError> {
        let body = serde_json::json!({"password": password, "current_password": current});
        Self::send_empty(self.request(Method::POST, "/v1/members/me/password").json(&body)).await
    }

    pub async fn enrol_totp(&self) -> Result<TotpEnrolment, ClientError> {
        Self::send(self.request(Method::POST, "/v1/members/me/mfa/totp")).await
    }

    /// Turns TOTP on; the answer's recovery codes are shown only here.
    pub async fn confirm_totp(&self, otp: &str) -> Result<RecoveryCodes, ClientError> {
        let body = serde_json::json!({"otp": otp});
        Self::send(self.request(Method::POST, "/v1/members/me/mfa/totp/confirm").json(&body)).await
    }

    pub async fn disable_totp(&self, otp: &str) -> Result<(), ClientError> {
        let body = serde_json::json!({"otp": otp});
        Self::send_empty(self.request(Method::POST, "/v1/members/me/mfa/totp/disable").json(&body)).await
    }

    /// A management key acting as the caller, with the caller's role (shown only here).
    pub async fn create_management_key(&self) -> Result<NewManagementKeyView, ClientError> {
        Self::send(self.request(Method::POST, "/v1/members/me/keys")).await
    }

    /// Like [`Client::create_management_key`], with a name, an expiry and (with MFA) a code.
    pub async fn create_management_key_with(
        &self,
        req: &NewManagementKeyRequest,
    ) -> Result<NewManagementKeyView, ClientError> {
        Self::send(self.request(Method::POST, "/v1/members/me/keys").json(req)).await
    }

    /// The caller's management keys (owners and admins: every member's).
    pub async fn list_management_keys(&self) -> Result<ManagementKeyList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/management-keys")).await
    }

    /// Revokes a management key at once.
    pub async fn revoke_management_key(&self, id: &str) -> Result<(), ClientError> {
        Self::send_empty(self.request(Method::DELETE, &format!("/v1/management-keys/{}", path_segment(id)))).await
    }

    /// Mints a verify token binding verification to the caller's workspace (`token` shown
    /// only here).
    pub async fn create_verify_token(&self, req: &NewVerifyTokenRequest) -> Result<VerifyTokenView, ClientError> {
        Self::send(self.request(Method::POST, "/v1/verify-tokens").json(req)).await
    }

    pub async fn list_verify_tokens(&self) -> Result<VerifyTokenList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/verify-tokens")).await
    }

    /// Revokes a verify token at once, on every node.
    pub async fn revoke_verify_token(&self, id: &str) -> Result<VerifyTokenView, ClientError> {
        Self::send(self.request(Method::DELETE, &format!("/v1/verify-tokens/{}", path_segment(id)))).await
    }

    /// Logs in with a password (and a one-time code when MFA is on); the answer's token is a
    /// bearer credential for [`Client::new`].
    pub async fn login(&self, req: &LoginRequest) -> Result<SessionView, ClientError> {
        Self::send(self.http.post(format!("{}/v1/sessions", self.base)).json(req)).await
    }

    pub async fn logout(&self) -> Result<(), ClientError> {
        Self::send_empty(self.request(Method::DELETE, "/v1/sessions/current")).await
    }

    /// Ends every session of the caller's member, on every node ("log out everywhere").
    pub async fn logout_everywhere(&self) -> Result<(), ClientError> {
        Self::send_empty(self.request(Method::DELETE, "/v1/sessions")).await
    }
}

/// Policies and approval requests.
impl Client {
    pub async fn policies(&self) -> Result<Policy, ClientError> {
        Self::send(self.request(Method::GET, "/v1/policies")).await
    }

    /// Changes the fields given; the answer is the whole policy, or the approval request the
    /// change waits on (a change that may weaken the policy, or any under `policy.update`).
    pub async fn set_policies(&self, patch: &PolicyPatch) -> Result<PolicyAnswer, ClientError> {
        Self::send(self.request(Method::PUT, "/v1/policies").json(patch)).await
    }

    pub async fn list_approvals(&self, status: Option<&str>) -> Result<ApprovalList, ClientError> {
        let q: Vec<(&str, &str)> = status.map(|s| ("status", s)).into_iter().collect();
        Self::send(self.request(Method::GET, "/v1/approvals").query(&q)).await
    }

    pub async fn get_approval(&self, id: &str) -> Result<ApprovalView, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/approvals/{}", path_segment(id)))).await
    }

    pub async fn approve(&self, id: &str, otp: &str) -> Result<ApprovalView, ClientError> {
        let body = serde_json::json!({"otp": otp});
        Self::send(self.request(Method::POST, &format!("/v1/approvals/{}/approve", path_segment(id))).json(&body)).await
    }

    pub async fn reject(&self, id: &str, otp: &str, reason: Option<&str>) -> Result<ApprovalView, ClientError> {
        let body = serde_json::json!({"otp": otp, "reason": reason});
        Self::send(self.request(Method::POST, &format!("/v1/approvals/{}/reject", path_segment(id))).json(&body)).await
    }

    pub async fn cancel_approval(&self, id: &str) -> Result<ApprovalView, ClientError> {
        Self::send(self.request(Method::POST, &format!("/v1/approvals/{}/cancel", path_segment(id)))).await
    }
}

/// Roles that grant permissions, and service accounts.
impl Client {
    pub async fn list_roles(&self) -> Result<RoleList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/roles")).await
    }

    pub async fn get_role(&self, name: &str) -> Result<RoleView, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/roles/{}", path_segment(name)))).await
    }

    pub async fn create_role(&self, req: &CreateRoleRequest) -> Result<RoleView, ClientError> {
        Self::send(self.request(Method::POST, "/v1/roles").json(req)).await
    }

    /// Changes a role; under policy `role.update` a widening change answers with an
    /// `approval_id` and takes effect once approved.
    pub async fn update_role(&self, name: &str, req: &UpdateRoleRequest) -> Result<RoleView, ClientError> {
        Self::send(self.request(Method::PATCH, &format!("/v1/roles/{}", path_segment(name))).json(req)).await
    }

    /// Deletes a role; `force` takes it off the keys holding it.
    pub async fn delete_role(&self, name: &str, force: bool) -> Result<(), ClientError> {
        let q: Vec<(&str, &str)> = if force { vec![("force", "true")] } else { vec![] };
        Self::send_empty(self.request(Method::DELETE, &format!("/v1/roles/{}", path_segment(name))).query(&q)).await
    }

    pub async fn create_service_account(
        &self,
        req: &CreateServiceAccountRequest,
    ) -> Result<ServiceAccountView, ClientError> {
        Self::send(self.request(Method::POST, "/v1/service-accounts").json(req)).await
    }

    pub async fn list_service_accounts(&self) -> Result<ServiceAccountList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/service-accounts")).await
    }

    pub async fn get_service_account(&self, id: &str) -> Result<ServiceAccountView, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/service-accounts/{}", path_segment(id)))).await
    }

    /// Changes an account; `disabled: Some(true)` stops all its keys at once.
    pub async fn update_service_account(
        &self,
        id: &str,
        req: &UpdateServiceAccountRequest,
    ) -> Result<ServiceAccountView, ClientError> {
        Self::send(self.request(Method::PATCH, &format!("/v1/service-accounts/{}", path_segment(id))).json(req)).await
    }

    /// Deletes an account and revokes its keys.
    pub async fn delete_service_account(&self, id: &str) -> Result<(), ClientError> {
        Self::send_empty(self.request(Method::DELETE, &format!("/v1/service-accounts/{}", path_segment(id)))).await
    }

    /// Creates a key owned by the account (it holds the account's role); `secret` shown once.
    pub async fn create_service_account_key(
        &self,
        id: &str,
        req: &CreateKeyRequest,
        idempotency_key: Option<&str>,
    ) -> Result<KeyView, ClientError> {
        let mut rb = self.request(Method::POST, &format!("/v1/service-accounts/{}/keys", path_segment(id))).json(req);
        if let Some(k) = idempotency_key {
            rb = rb.header("Idempotency-Key", k);
        }
        Self::send(rb).await
    }
}

/// Filters of [`Client::list_audit`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ListAudit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The audit trail.
impl Client {
    /// Events, newest first.
    pub async fn list_audit(&self, f: &ListAudit) -> Result<AuditList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/audit").query(f)).await
    }

    /// Every event (between `since` and `until`, RFC 3339) as NDJSON, oldest first.
    pub async fn export_audit(&self, since: Option<&str>, until: Option<&str>) -> Result<String, ClientError> {
        let q: Vec<(&str, &str)> =
            [("since", since), ("until", until)].into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        let bytes = Self::exchange(self.request(Method::GET, "/v1/audit/export").query(&q)).await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Recomputes the workspace's chain on the server.
    pub async fn verify_audit(&self) -> Result<ChainCheck, ClientError> {
        Self::send(self.request(Method::GET, "/v1/audit/verify")).await
    }
}

/// Usage and alerts.
impl Client {
    fn usage_query(
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
        granularity: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(f) = from {
            q.push(("from", f.to_rfc3339()));
        }
        if let Some(t) = to {
            q.push(("to", t.to_rfc3339()));
        }
        if let Some(g) = granularity {
            q.push(("granularity", g.to_string()));
        }
        q
    }

    /// A key's verifications per bucket (`granularity` `minute`, `hour` or `day`).
    pub async fn key_usage(
        &self,
        id: &str,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
        granularity: Option<&str>,
    ) -> Result<KeyUsage, ClientError> {
        let path = format!("/v1/keys/{}/usage", path_segment(id));
        Self::send(self.request(Method::GET, &path).query(&Self::usage_query(from, to, granularity))).await
    }

    /// A key's verifications that named `tag` (a verify request's `tags`).
    pub async fn key_usage_for_tag(
        &self,
        id: &str,
        tag: &str,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
        granularity: Option<&str>,
    ) -> Result<KeyUsage, ClientError> {
        let path = format!("/v1/keys/{}/usage", path_segment(id));
        let mut q = Self::usage_query(from, to, granularity);
        q.push(("tag", tag.to_string()));
        Self::send(self.request(Method::GET, &path).query(&q)).await
    }

    /// The workspace's totals and its busiest keys.
    pub async fn usage(
        &self,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
        granularity: Option<&str>,
    ) -> Result<WorkspaceUsage, ClientError> {
        Self::send(self.request(Method::GET, "/v1/usage").query(&Self::usage_query(from, to, granularity))).await
    }

    /// Rate limiting as a service: spends `cost` of an identifier's limit in a namespace.
    pub async fn ratelimit(&self, req: &LimitRequest) -> Result<LimitAnswer, ClientError> {
        Self::send(self.request(Method::POST, "/v1/ratelimit").json(req)).await
    }

    /// Creates or replaces the override of a namespace's identifier.
    pub async fn set_ratelimit_override(&self, req: &OverrideRequest) -> Result<OverrideView, ClientError> {
        Self::send(self.request(Method::POST, "/v1/ratelimit/overrides").json(req)).await
    }

    /// One page of overrides (by id), optionally of one namespace.
    pub async fn list_ratelimit_overrides(
        &self,
        namespace: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<OverrideList, ClientError> {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(n) = namespace {
            q.push(("namespace", n));
        }
        if let Some(c) = cursor {
            q.push(("cursor", c));
        }
        Self::send(self.request(Method::GET, "/v1/ratelimit/overrides").query(&q)).await
    }

    pub async fn delete_ratelimit_override(&self, id: &str) -> Result<OverrideView, ClientError> {
        let path = format!("/v1/ratelimit/overrides/{}", path_segment(id));
        Self::send(self.request(Method::DELETE, &path)).await
    }

    pub async fn list_alerts(&self, acknowledged: Option<bool>) -> Result<AlertList, ClientError> {
        let q: Vec<(&str, String)> = acknowledged.map(|a| vec![("acknowledged", a.to_string())]).unwrap_or_default();
        Self::send(self.request(Method::GET, "/v1/alerts").query(&q)).await
    }

    pub async fn acknowledge_alert(&self, id: &str) -> Result<AlertView, ClientError> {
        Self::send(self.request(Method::POST, &format!("/v1/alerts/{}/acknowledge", path_segment(id)))).await
    }
}

/// Webhook endpoints, their deliveries, and the callback signing key.
impl Client {
    /// Registers an endpoint; the answer's `secret` is shown only here.
    pub async fn create_webhook(&self, req: &NewWebhookRequest) -> Result<WebhookView, ClientError> {
        Self::send(self.request(Method::POST, "/v1/webhooks").json(req)).await
    }

    pub async fn list_webhooks(&self) -> Result<WebhookList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/webhooks")).await
    }

    pub async fn get_webhook(&self, id: &str) -> Result<WebhookView, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/webhooks/{}", path_segment(id)))).await
    }

    pub async fn update_webhook(&self, id: &str, req: &WebhookPatch) -> Result<WebhookView, ClientError> {
        Self::send(self.request(Method::PATCH, &format!("/v1/webhooks/{}", path_segment(id))).json(req)).await
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<(), ClientError> {
        Self::send_empty(self.request(Method::DELETE, &format!("/v1/webhooks/{}", path_segment(id)))).await
    }

    /// A new secret (in the answer only); the previous one signs too until `overlap` ends.
    pub async fn rotate_webhook_secret(&self, id: &str, overlap: Option<&str>) -> Result<WebhookView, ClientError> {
        let req = RotateSecretRequest { overlap: overlap.map(str::to_string) };
        let path = format!("/v1/webhooks/{}/rotate-secret", path_segment(id));
        Self::send(self.request(Method::POST, &path).json(&req)).await
    }

    /// Queues a `webhook.test` delivery to the endpoint.
    pub async fn test_webhook(&self, id: &str) -> Result<DeliveryView, ClientError> {
        Self::send(self.request(Method::POST, &format!("/v1/webhooks/{}/test", path_segment(id)))).await
    }

    pub async fn list_deliveries(&self, id: &str, limit: Option<u32>) -> Result<DeliveryList, ClientError> {
        let q: Vec<(&str, String)> = limit.map(|l| vec![("limit", l.to_string())]).unwrap_or_default();
        let path = format!("/v1/webhooks/{}/deliveries", path_segment(id));
        Self::send(self.request(Method::GET, &path).query(&q)).await
    }

    /// Deliveries to a key's callback URL, newest first, with their attempts.
    pub async fn list_callbacks(&self, key_id: &str, limit: Option<u32>) -> Result<DeliveryList, ClientError> {
        let q: Vec<(&str, String)> = limit.map(|l| vec![("limit", l.to_string())]).unwrap_or_default();
        let path = format!("/v1/keys/{}/callbacks", path_segment(key_id));
        Self::send(self.request(Method::GET, &path).query(&q)).await
    }

    /// Makes a delivery due again now (with the same `webhook-id`).
    pub async fn retry_delivery(&self, id: &str, delivery_id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/webhooks/{}/deliveries/{}/retry", path_segment(id), path_segment(delivery_id));
        Self::send_empty(self.request(Method::POST, &path)).await
    }

    /// The `whpk_…` public key per-key callbacks are signed with.
    pub async fn webhook_signing_key(&self) -> Result<SigningKeyView, ClientError> {
        Self::send(self.request(Method::GET, "/v1/webhooks/signing-key")).await
    }

    /// Registers an app (`POST /v1/apps`).
    pub async fn create_app(&self, req: &NewAppRequest) -> Result<AppView, ClientError> {
        Self::send(self.request(Method::POST, "/v1/apps").json(req)).await
    }

    pub async fn list_apps(&self) -> Result<AppList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/apps")).await
    }

    pub async fn get_app(&self, id: &str) -> Result<AppView, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/apps/{id}"))).await
    }

    pub async fn delete_app(&self, id: &str) -> Result<AppView, ClientError> {
        Self::send(self.request(Method::DELETE, &format!("/v1/apps/{id}"))).await
    }

    /// Where the app is installed (`GET /v1/apps/{id}/installations`).
    pub async fn app_installations(&self, id: &str) -> Result<InstallationList, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/apps/{id}/installations"))).await
    }

    /// Installs an app in this workspace (`POST /v1/installations`).
    pub async fn install_app(&self, req: &NewInstallationRequest) -> Result<InstallationView, ClientError> {
        Self::send(self.request(Method::POST, "/v1/installations").json(req)).await
    }

    pub async fn list_installations(&self) -> Result<InstallationList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/installations")).await
    }

    pub async fn uninstall_app(&self, installation_id: &str) -> Result<InstallationView, ClientError> {
        Self::send(self.request(Method::DELETE, &format!("/v1/installations/{installation_id}"))).await
    }
}

/// Checks a webhook delivery or per-key callback as Keyward signs them (Standard Webhooks):
/// `trust` is the endpoint's `whsec_…` secret or the workspace's `whpk_…` public key (from
/// `GET /v1/webhooks/signing-key`); the other arguments are the `webhook-id`,
/// `webhook-timestamp` and `webhook-signature` headers, the raw body, and the receiver's
/// clock (Unix seconds; deliveries more than 5 minutes off are refused).
pub fn verify_webhook(
    trust: &str,
    webhook_id: &str,
    webhook_timestamp: &str,
    webhook_signature: &str,
    body: &[u8],
    now_unix: i64,
) -> bool {
    use keyward_proto::webhook_signature::{verify, Trust};
    let Ok(ts) = webhook_timestamp.trim().parse::<i64>() else { return false };
    let trust = if trust.starts_with("whpk_") { Trust::PublicKey(trust) } else { Trust::Secret(trust) };
    verify(trust, webhook_id, ts, body, webhook_signature, now_unix)
}

/// Ids are plain ASCII; anything else is escaped rather than trusted into a URL path.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// The Standard Webhooks specification's published vector, through the SDK helper.
    #[test]
    fn verify_webhook_checks_the_published_vector() {
        let (secret, id, ts) = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330");
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(super::verify_webhook(secret, id, ts, sig, br#"{"test": 2432232314}"#, 1_614_265_400));
        assert!(!super::verify_webhook(secret, id, ts, sig, br#"{"test": 1}"#, 1_614_265_400));
        assert!(!super::verify_webhook(secret, id, "soon", sig, br#"{"test": 2432232314}"#, 1_614_265_400));
    }
}
