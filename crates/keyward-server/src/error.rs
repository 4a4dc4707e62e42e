//! The server's error type and the one place where errors become HTTP answers.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_core::verify::VerifyCode;
use keyward_core::CoreError;
use keyward_store::{Conflict, StoreError};

pub use keyward_core::wire::error::{ErrorBody, ErrorDetail};

/// `Clone`: one storage read's failure is the answer of every request that waited on it
/// (`cache/inflight.rs`).
#[derive(Debug, Clone)]
pub enum ApiError {
    Invalid {
        field: Option<String>,
        message: String,
    },
    Unauthenticated(String),
    Forbidden(String),
    /// A member's (or management key's) change in a workspace its operator suspended:
    /// 403 `workspace_suspended`; reads still work.
    WorkspaceSuspended(String),
    NotFound(String),
    /// The route exists, but not with this method.
    MethodNotAllowed,
    Conflict {
        field: Option<String>,
        message: String,
    },
    PayloadTooLarge(String),
    /// A one-time code is needed (401), or MFA must be enrolled first (`enrol`: 403).
    MfaRequired {
        enrol: bool,
        message: String,
    },
    /// Too many attempts; try again after this many seconds.
    RateLimited {
        retry_after: u64,
        message: String,
    },
    /// The gateway's upstream cannot be reached.
    BadGateway(String),
    /// The gateway's upstream did not answer in time.
    GatewayTimeout(String),
    /// The database cannot be reached.
    Unavailable,
    /// The database refused a write for want of disk space: 507 `storage_full` with
    /// `Retry-After`; nothing was written, the same request works once space is freed.
    StorageFull,
    /// `/healthz`: this node cannot take writes (503), and why (`storage_full` for a full
    /// disk, else `unavailable`).
    NotReady {
        storage_full: bool,
    },
    /// Detail goes to the log, never to the client.
    Internal(String),
    /// A forward-auth refusal: 401 or 403 with the verification code.
    Refused {
        code: VerifyCode,
        message: String,
    },
    /// A valid key out of its limits or credits (forward-auth, gateway): 429 with the
    /// verification code, `Retry-After` and the `RateLimit-Policy` / `RateLimit` headers.
    Limited {
        code: VerifyCode,
        message: String,
        headers: Vec<(&'static str, HeaderValue)>,
    },
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid { field: Some(field.into()), message: message.into() }
    }

    pub(crate) fn parts(&self) -> (StatusCode, &'static str, Option<&str>, String) {
        match self {
            ApiError::Invalid { field, message } => {
                (StatusCode::BAD_REQUEST, "invalid_request", field.as_deref(), message.clone())
            }
            ApiError::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, "unauthenticated", None, m.clone()),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", None, m.clone()),
            ApiError::WorkspaceSuspended(m) => (StatusCode::FORBIDDEN, "workspace_suspended", None, m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", None, m.clone()),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None, "method not allowed on this route".into())
            }
            ApiError::Conflict { field, message } => {
                (StatusCode::CONFLICT, "conflict", field.as_deref(), message.clone())
            }
            ApiError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None, m.clone()),
            ApiError::MfaRequired { enrol: true, message } => {
                (StatusCode::FORBIDDEN, "mfa_required", None, message.clone())
            }
            ApiError::MfaRequired { enrol: false, message } => {
                (StatusCode::UNAUTHORIZED, "mfa_required", Some("otp"), message.clone())
            }
            ApiError::RateLimited { message, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited", None, message.clone())
            }
            ApiError::BadGateway(m) => (StatusCode::BAD_GATEWAY, "bad_gateway", None, m.clone()),
            ApiError::GatewayTimeout(m) => (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout", None, m.clone()),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                None,
                "the database is unavailable; try again shortly".into(),
            ),
            ApiError::StorageFull => (
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                None,
                "the database has no space left to write; nothing was changed, try again later".into(),
            ),
            ApiError::NotReady { storage_full: true } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_full",
                None,
                "the database has no space left to write".into(),
            ),
            ApiError::NotReady { storage_full: false } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                None,
                "the database is unreachable or does not take writes".into(),
            ),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None, "internal error".into()),
            ApiError::Refused { code, message } => {
                let status =
                    if code.is_authentication_failure() { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
                let kind = if status == StatusCode::UNAUTHORIZED { "unauthenticated" } else { "forbidden" };
                (status, kind, None, message.clone())
            }
            ApiError::Limited { message, .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", None, message.clone()),
        }
    }
}

/// How long a client is asked to wait after a full disk: freeing space takes an operator.
const STORAGE_FULL_RETRY_AFTER_SECS: u64 = 30;

impl ApiError {
    /// `/healthz`'s refusal for a store that cannot take writes now.
    pub fn not_ready(e: &StoreError) -> Self {
        // Asked every few seconds by load balancers: the detail only when looked for.
        tracing::debug!(error = %e, "not ready");
        ApiError::NotReady { storage_full: matches!(e, StoreError::StorageFull(_)) }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        ApiError::Invalid { field: Some(e.field().to_string()), message: e.to_string() }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::StorageFull(detail) => {
                tracing::warn!(%detail, "database storage full");
                ApiError::StorageFull
            }
            StoreError::Conflict(c) => c.into(),
            StoreError::InvalidText => ApiError::Invalid {
                field: None,
                message: "the request holds a NUL character, which no field may contain".into(),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// How each typed refusal of the store reads to a client.
impl From<Conflict> for ApiError {
    fn from(c: Conflict) -> Self {
        let (field, message) = match c {
            Conflict::PublicKeyTaken => (Some("public_key"), "this public key is already registered".into()),
            Conflict::EmailTaken => (Some("email"), "a member with this email already exists in this workspace".into()),
            Conflict::DuplicateSecret => (None, "a generated credential collided; try again".into()),
            Conflict::LastOwner => (None, "a workspace must keep at least one owner".into()),
            Conflict::IdempotencyInFlight => {
                (Some("Idempotency-Key"), "a request with this Idempotency-Key is still in progress".into())
            }
            Conflict::KeyPendingApproval(id) => (
                None,
                format!(
                    "key has a pending approval request{}; decide or cancel it first",
                    id.map(|a| format!(" ({a})")).unwrap_or_default()
                ),
            ),
            Conflict::MemberPendingApproval => {
                (None, "the member has a pending approval request; decide or cancel it first".into())
            }
            Conflict::KeyStatus(s) => (None, format!("key is {} and cannot be changed", s.as_str())),
            Conflict::NotRotatable => (None, "only secret keys can be rotated".into()),
            Conflict::AlreadyRotated => {
                (None, "key was already rotated and is in its grace period; rotate its replacement instead".into())
            }
            Conflict::RoleExists => (Some("name"), "a role with this name already exists".into()),
            Conflict::RolePendingApproval(id) => (
                None,
                format!(
                    "a change of this role waits on approval request {}; decide or cancel it first",
                    id.unwrap_or_default()
                ),
            ),
            Conflict::PolicyChangedMeanwhile => {
                (None, "the policy changed after this change was asked for; reject or cancel it and ask again".into())
            }
            Conflict::ServiceAccountNameTaken => {
                (Some("name"), "a service account with this name already exists".into())
            }
            Conflict::ExternalIdTaken => {
                (Some("external_id"), "an identity with this external_id already exists".into())
            }
            Conflict::ImportHashTaken(i) => {
                let field = i.map_or_else(|| "keys".to_string(), |i| format!("keys[{i}].hash"));
                return ApiError::Conflict {
                    field: Some(field),
                    message: "a key with this hash was imported already and has not been used yet".into(),
                };
            }
            Conflict::WorkspaceSuspended => (None, "the workspace is suspended already".into()),
            Conflict::WorkspaceNotSuspended => (None, "the workspace is not suspended".into()),
            Conflict::WorkspaceDeleted => (None, "the workspace is deleted".into()),
            Conflict::WorkspaceHasLiveKeys(n) => (
                Some("force"),
                format!("the workspace still has {n} live keys; revoke them, or delete with ?force=true"),
            ),
            // The constraint's name is ours (the schema's), not data; still, say no more.
            Conflict::Unique(name) => {
                tracing::warn!(constraint = %name, "unexpected unique violation");
                (None, "this conflicts with an existing record".into())
            }
        };
        ApiError::Conflict { field: field.map(str::to_string), message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field, message) = self.parts();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let verification = match &self {
            ApiError::Refused { code, .. } | ApiError::Limited { code, .. } => Some(*code),
            _ => None,
        };
        let body = ErrorBody::new(code, message).field(field).verification_code(verification.map(VerifyCode::as_str));
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(v) = verification {
            resp.headers_mut().insert("x-keyward-code", HeaderValue::from_static(v.as_str()));
        }
        if let ApiError::RateLimited { retry_after, .. } = &self {
            resp.headers_mut().insert("retry-after", HeaderValue::from(*retry_after));
        }
        if matches!(self, ApiError::StorageFull | ApiError::NotReady { storage_full: true }) {
            resp.headers_mut().insert("retry-after", HeaderValue::from(STORAGE_FULL_RETRY_AFTER_SECS));
        }
        if let ApiError::Limited { headers, .. } = self {
            for (name, value) in headers {
                resp.headers_mut().insert(name, value);
            }
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
