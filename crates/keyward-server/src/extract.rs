//! Request extractors that turn bad input into the API's error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use serde::de::{Deserialize, DeserializeOwned};

use keyward_core::keyformat::{self, TokenKind};
use keyward_core::model::KeyRecord;
use keyward_core::roles::RoleMatrix;
use keyward_core::roles::{Action, Grant};
use keyward_store::{OperatorToken, Principal};

use crate::error::ApiError;
use crate::state::SharedState;

/// The raw body, with an over-limit body answered `413` in the API's shape.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(crate::http::pipeline::too_large()),
            Err(r) => Err(ApiError::Invalid { field: None, message: r.body_text() }),
        }
    }
}

/// Parses JSON, naming the field at fault when the shape is wrong.
pub fn parse_json<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Invalid { field: None, message: "request body must be a JSON object".into() });
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // serde names an unknown field in its message; point `field` at it.
        let field = if let Some(rest) = msg.strip_prefix("unknown field `") {
            rest.split('`').next().map(str::to_string)
        } else if let Some(rest) = msg.strip_prefix("missing field `") {
            // The path is the object that lacks it; name the whole path (`key.create.x`).
            let f = rest.split('`').next().unwrap_or_default();
            Some(if path == "." { f.to_string() } else { format!("{path}.{f}") })
        } else if path != "." && !inner.is_syntax() && !inner.is_eof() {
            Some(path)
        } else {
            None
        };
        let message = if inner.is_syntax() || inner.is_eof() { format!("malformed JSON: {msg}") } else { msg };
        ApiError::Invalid { field, message }
    })?;
    // One JSON value and nothing after it (whitespace aside): `{} x` is not a request.
    de.end().map_err(|e| ApiError::Invalid { field: None, message: format!("malformed JSON: {e}") })?;
    Ok(value)
}

/// Refuses a path or query holding a NUL character (`%00`): no route takes one, and
/// PostgreSQL cannot store one. Checked where management routes authenticate, so the
/// verification routes (whose paths and queries never reach storage) pay nothing for it.
fn refuse_nul(uri: &axum::http::Uri) -> Result<(), ApiError> {
    let nul = |s: &str| s.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0');
    if nul(uri.path()) || uri.query().is_some_and(nul) {
        return Err(ApiError::Invalid { field: None, message: "the path or query holds a NUL character (%00)".into() });
    }
    Ok(())
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

/// The authenticated caller of a management route: a management key or a session token,
/// either way a member of one workspace acting with that member's role.
pub struct Caller(pub Principal);

/// Routes a member without MFA may still use when the policy requires MFA: enough to enrol.
const MFA_ENROLMENT_PATHS: [&str; 4] =
    ["/v1/members/me", "/v1/members/me/mfa/totp", "/v1/members/me/mfa/totp/confirm", "/v1/sessions/current"];

/// What a member of a suspended workspace may still do besides reading: sign out.
const WHILE_SUSPENDED: [(&str, &str); 2] = [("DELETE", "/v1/sessions/current"), ("DELETE", "/v1/sessions")];

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let caller = Caller::authenticate(parts, state).await?;
        let (method, path) = (&parts.method, parts.uri.path());
        let reads = method == Method::GET || method == Method::HEAD;
        if caller.0.suspended && !reads && !WHILE_SUSPENDED.contains(&(method.as_str(), path)) {
            return Err(ApiError::WorkspaceSuspended(
                "this workspace is suspended by the service's operator: it can be read, not changed".into(),
            ));
        }
        Ok(caller)
    }
}

impl Caller {
    /// The caller behind the request's credential, without the suspended workspace's
    /// refusal of changes: `/v2` authenticates its root key with this (each native route it
    /// calls then refuses or not), so a suspended workspace's verifications still answer.
    pub(crate) async fn authenticate(parts: &Parts, state: &SharedState) -> Result<Caller, ApiError> {
        refuse_nul(&parts.uri)?;
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::Unauthenticated(
                "missing credentials: send Authorization: Bearer <management key or session token>".into(),
            )
        })?;
        let principal = match keyformat::parse(token).map(|p| p.kind) {
            Some(TokenKind::Management) => {
                state.store.principal_by_hash(&state.pepper.hash(token), state.clock.now()).await?
            }
            Some(TokenKind::Session) => {
                state.store.principal_by_session(&state.pepper.hash(token), state.clock.now()).await?
            }
            Some(TokenKind::Secret) => {
                return Err(ApiError::Forbidden("API keys cannot call the management API; use a management key".into()))
            }
            Some(TokenKind::Verify) => {
                return Err(ApiError::Forbidden("verify tokens only verify; use a management key".into()))
            }
            Some(TokenKind::Operator) => {
                return Err(ApiError::Forbidden(
                    "operator tokens manage workspaces (/v1/workspaces), not what is in them; use a management key"
                        .into(),
                ))
            }
            None => None,
        };
        let p = principal.ok_or_else(|| ApiError::Unauthenticated("invalid or expired credentials".into()))?;
        if p.policy.require_mfa && !p.mfa_enabled && !MFA_ENROLMENT_PATHS.contains(&parts.uri.path()) {
            return Err(ApiError::MfaRequired {
                enrol: true,
                message: "this workspace requires MFA: enrol with POST /v1/members/me/mfa/totp first".into(),
            });
        }
        Ok(Caller(p))
    }
}

/// The authenticated caller of an operator route (`/v1/workspaces…`, `/v1/operator/log`):
/// the holder of a live operator token. A workspace's credentials never get this far.
pub struct Operator(pub OperatorToken);

impl FromRequestParts<SharedState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        refuse_nul(&parts.uri)?;
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::Unauthenticated(
                "missing credentials: send Authorization: Bearer <operator token (kw_op_…)>".into(),
            )
        })?;
        match keyformat::parse(token).map(|p| p.kind) {
            Some(TokenKind::Operator) => {}
            Some(_) => {
                return Err(ApiError::Forbidden(
                    "a workspace's credentials cannot call the operator API; use an operator token (kw_op_…)".into(),
                ))
            }
            None => return Err(ApiError::Unauthenticated("invalid or revoked operator token".into())),
        }
        let found = state.store.operator_by_hash(&state.pepper.hash(token)).await?;
        found.map(Operator).ok_or_else(|| ApiError::Unauthenticated("invalid or revoked operator token".into()))
    }
}

impl Caller {
    /// Refuses an action the caller's role does not allow at all.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        match self.0.role.allows(action) {
            Grant::No => Err(ApiError::Forbidden(format!("the {} role may not do this", self.0.role))),
            Grant::Yes | Grant::OwnKeysOnly => Ok(()),
        }
    }

    /// Refuses an action on one key, counting "own keys only" grants.
    pub fn require_on_key(&self, action: Action, rec: &KeyRecord) -> Result<(), ApiError> {
        match self.0.role.allows(action) {
            Grant::Yes => Ok(()),
            Grant::OwnKeysOnly if rec.created_by.as_deref() == Some(self.0.member_id.as_str()) => Ok(()),
            Grant::OwnKeysOnly => {
                Err(ApiError::Forbidden(format!("the {} role may do this only to keys it created", self.0.role)))
            }
            Grant::No => Err(ApiError::Forbidden(format!("the {} role may not do this", self.0.role))),
        }
    }
}
