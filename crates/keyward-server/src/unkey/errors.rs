//! The one place a refusal becomes Unkey's error shape: `{"meta":{"requestId"},"error":
//! {"title","detail","status","type"}}`, with `errors[{location,message}]` on a 400 and
//! `application/problem+json` on a 429 (the SDKs match on that content type).

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{ApiError, ErrorBody};

/// An answer refused in Unkey's shape. `kind` is the tail of Unkey's error type URI
/// (`data/key_not_found`), so clients matching on `type` behave as against Unkey.
#[derive(Debug)]
pub(crate) struct UnkeyError {
    status: StatusCode,
    kind: &'static str,
    detail: String,
    /// 400 only: where and what.
    errors: Vec<(String, String)>,
}

impl UnkeyError {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        UnkeyError { status, kind: default_kind(status), detail: detail.into(), errors: Vec::new() }
    }

    /// A 400 naming the field at fault (`location` as Unkey writes it: `body.keyId`).
    pub(crate) fn invalid(location: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = UnkeyError::new(StatusCode::BAD_REQUEST, message.clone());
        e.errors.push((location.into(), message));
        e
    }

    pub(crate) fn not_found(kind: &'static str, detail: impl Into<String>) -> Self {
        UnkeyError { kind, ..UnkeyError::new(StatusCode::NOT_FOUND, detail) }
    }

    /// The same refusal with another of Unkey's error types (`data/identity_already_exists`).
    pub(crate) fn kind(self, kind: &'static str) -> Self {
        UnkeyError { kind, ..self }
    }

    /// The key named is not one of the caller's workspace (or does not exist).
    pub(crate) fn key_not_found() -> Self {
        UnkeyError::not_found("data/key_not_found", "the requested key does not exist or was deleted")
    }

    /// `apiId` names something other than the caller's workspace.
    pub(crate) fn api_not_found() -> Self {
        UnkeyError::not_found("data/api_not_found", "the requested API does not exist (apiId is your workspace id)")
    }

    /// A native route's refusal, from its status and error body.
    pub(crate) fn from_native(status: StatusCode, body: &[u8]) -> Self {
        let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) else {
            return UnkeyError::new(status, status.canonical_reason().unwrap_or("error"));
        };
        let mut e = UnkeyError::new(status, error.message.clone());
        if status == StatusCode::BAD_REQUEST {
            let location = error.field.as_deref().map_or_else(|| "body".to_string(), |f| format!("body.{f}"));
            e.errors.push((location, error.message));
        }
        e
    }

    /// The same refusal with its locations under `prefix` instead of `body` (an item of a
    /// list the route took apart).
    pub(crate) fn located(mut self, prefix: &str) -> Self {
        for (location, _) in &mut self.errors {
            *location = location.replacen("body", prefix, 1);
        }
        self
    }

    /// The same refusal with a native field name in its locations written as Unkey's
    /// (`external_id` → `externalId`).
    pub(crate) fn renamed(mut self, native: &str, unkey: &str) -> Self {
        for (location, _) in &mut self.errors {
            *location = location.replace(native, unkey);
        }
        self
    }

    #[allow(dead_code)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn into_response(self, request_id: &str) -> Response {
        let mut error = json!({
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "detail": self.detail,
            "status": self.status.as_u16(),
            "type": format!("https://unkey.com/docs/errors/unkey/{}", self.kind),
        });
        if self.status == StatusCode::BAD_REQUEST {
            let errors: Vec<_> = self
                .errors
                .iter()
                .map(|(location, message)| json!({"location": location, "message": message}))
                .collect();
            error["errors"] = errors.into();
        }
        let body = json!({"meta": {"requestId": request_id}, "error": error});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        }
        resp
    }
}

fn default_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "application/invalid_input",
        401 => "authentication/missing",
        403 => "authorization/insufficient_permissions",
        404 => "data/key_not_found",
        409 => "application/precondition_failed",
        412 => "application/precondition_failed",
        429 => "application/rate_limited",
        503 | 507 => "application/service_unavailable",
        _ => "application/unexpected_error",
    }
}

impl From<ApiError> for UnkeyError {
    fn from(e: ApiError) -> Self {
        if let ApiError::Internal(detail) = &e {
            tracing::error!(%detail, "internal error");
        }
        let (status, _code, field, message) = e.parts();
        let mut u = UnkeyError::new(status, message.clone());
        if status == StatusCode::UNAUTHORIZED && message.starts_with("invalid") {
            u.kind = "authentication/key_not_found";
        }
        if status == StatusCode::BAD_REQUEST {
            let location = field.map_or_else(|| "body".to_string(), |f| format!("body.{f}"));
            u.errors.push((location, message));
        }
        u
    }
}
