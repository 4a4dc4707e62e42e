//! Request extractors that turn bad input into the API's error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use keyward_core::keyformat::{self, TokenKind};
use keyward_store::Principal;

use crate::error::ApiError;
use crate::state::SharedState;

/// The raw body, with an over-limit body answered `413` in the API's shape.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge("request body is too large".into()))
            }
            Err(r) => Err(ApiError::Invalid { field: None, message: r.body_text() }),
        }
    }
}

/// Parses JSON, naming the field at fault when the shape is wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Invalid { field: None, message: "request body must be a JSON object".into() });
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // serde names an unknown field in its message; point `field` at it.
        let field = if let Some(rest) = msg.strip_prefix("unknown field `") {
            rest.split('`').next().map(str::to_string)
        } else if path != "." && !inner.is_syntax() && !inner.is_eof() {
            Some(path)
        } else {
            None
        };
        let message = if inner.is_syntax() || inner.is_eof() { format!("malformed JSON: {msg}") } else { msg };
        ApiError::Invalid { field, message }
    })
}

/// JSON body extractor using [`parse_json`].
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(b) = RawBody::from_request(req, state).await?;
        parse_json(&b).map(ApiJson)
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The authenticated caller of a management route.
pub struct Caller(pub Principal);

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::Unauthenticated("missing credentials: send Authorization: Bearer <management key>".into())
        })?;
        match keyformat::parse(token) {
            Some(p) if p.kind == TokenKind::Management => {}
            Some(_) => {
                return Err(ApiError::Forbidden("API keys cannot call the management API; use a management key".into()))
            }
            None => return Err(ApiError::Unauthenticated("invalid management key".into())),
        }
        let hash = state.pepper.hash(token);
        state
            .store
            .principal_by_hash(&hash)
            .await?
            .map(Caller)
            .ok_or_else(|| ApiError::Unauthenticated("invalid management key".into()))
    }
}

impl Caller {
    /// Viewers read; every other role may change keys (the full matrix arrives with governance).
    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.0.role == "viewer" {
            return Err(ApiError::Forbidden("your role may only read".into()));
        }
        Ok(())
    }
}
