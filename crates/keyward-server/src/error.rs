//! The server's error type and the one place where errors become HTTP answers.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_core::verify::VerifyCode;
use keyward_core::CoreError;
use keyward_store::StoreError;
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    Invalid {
        field: Option<String>,
        message: String,
    },
    Unauthenticated(String),
    Forbidden(String),
    NotFound(String),
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
    /// The database cannot be reached.
    Unavailable,
    /// Detail goes to the log, never to the client.
    Internal(String),
    /// A forward-auth refusal: 401 or 403 with the verification code.
    Refused {
        code: VerifyCode,
        message: String,
    },
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid { field: Some(field.into()), message: message.into() }
    }

    fn parts(&self) -> (StatusCode, &'static str, Option<&str>, String) {
        match self {
            ApiError::Invalid { field, message } => {
                (StatusCode::BAD_REQUEST, "invalid_request", field.as_deref(), message.clone())
            }
            ApiError::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, "unauthenticated", None, m.clone()),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", None, m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", None, m.clone()),
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
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                None,
                "the database is unavailable; try again shortly".into(),
            ),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None, "internal error".into()),
            ApiError::Refused { code, message } => {
                let status =
                    if code.is_authentication_failure() { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
                let kind = if status == StatusCode::UNAUTHORIZED { "unauthenticated" } else { "forbidden" };
                (status, kind, None, message.clone())
            }
        }
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
            StoreError::Conflict(m) => ApiError::Conflict { field: None, message: m },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field, message) = self.parts();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let mut error = json!({ "code": code, "message": message });
        if let Some(f) = field {
            error["field"] = json!(f);
        }
        let verification = match &self {
            ApiError::Refused { code, .. } => Some(*code),
            _ => None,
        };
        if let Some(v) = verification {
            error["verification_code"] = json!(v.as_str());
        }
        let mut resp = (status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(v) = verification {
            resp.headers_mut().insert("x-keyward-code", HeaderValue::from_static(v.as_str()));
        }
        if let ApiError::RateLimited { retry_after, .. } = &self {
            resp.headers_mut().insert("retry-after", HeaderValue::from(*retry_after));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The error shape, for the OpenAPI document.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// invalid_request, unauthenticated, forbidden, not_found, conflict, mfa_required,
    /// rate_limited, payload_too_large, unavailable, internal
    pub code: String,
    pub message: String,
    /// The input field at fault, when there is one.
    pub field: Option<String>,
    /// Forward-auth refusals: the verification code (e.g. `REVOKED`).
    pub verification_code: Option<String>,
}
