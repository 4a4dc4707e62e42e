//! The OAuth endpoints of apps (docs/APPS.md): `POST /v1/oauth/token` (RFC 6749, RFC 7523),
//! `POST /v1/oauth/introspect` (RFC 7662), `POST /v1/oauth/revoke` (RFC 7009),
//! `/.well-known/jwks.json` and `/.well-known/oauth-authorization-server` (RFC 8414), and
//! `POST /v1/oauth/signing-key/rotate`. The token endpoint answers refusals in RFC 6749's
//! shape (`{"error", "error_description"}`), not the API's.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyward_core::audit::{AuditActor, AuditTarget};
use keyward_core::audit_action::AuditAction;
use keyward_core::keyformat;
use keyward_core::oauth::{OAuthCode, OAuthRefusal};
use keyward_core::roles::Action;
use keyward_core::verify::{Requirements, VerifyCode};
use keyward_core::wire::apps::{
    AccessClaims, Introspection, OAuthError, ServerMetadata, SigningKeyRotated, TokenForm, TokenRequest, TokenResponse,
    JWT_BEARER, REFRESH_TOKEN, TOKEN_PATH,
};
use keyward_core::wire::jwt::{self, JwkSet};
use keyward_store::AuditRecord;

use crate::apps::grants::{self, Refusal};
use crate::audit::{target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, RawBody};
use crate::state::SharedState;

/// A token endpoint answer: never cached (RFC 6749 §5.1).
fn no_store(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn oauth_error(r: OAuthRefusal) -> Response {
    let status = StatusCode::from_u16(r.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    no_store(status, OAuthError { error: r.code.as_str().into(), error_description: r.description })
}

fn refused(code: OAuthCode, why: &str) -> Response {
    oauth_error(OAuthRefusal::new(code, why))
}

#[utoipa::path(post, path = "/v1/oauth/token", tag = "apps",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "an access token (an RFC 9068 JWT) and a refresh token", body = TokenResponse),
        (status = 400, description = "refused (RFC 6749 §5.2)", body = OAuthError),
        (status = 401, description = "`invalid_client`: no such app, or not its signature", body = OAuthError),
        (status = 429, description = "`slow_down`: too many tokens for the installation in the window (`--oauth-token-limit`); `Retry-After` says when to try again", body = OAuthError),
        (status = 503, description = "`server_error`: the server has no --public-url, or the database is unavailable", body = OAuthError)))]
pub async fn token(State(state): State<SharedState>, origin: RequestOrigin, RawBody(body): RawBody) -> Response {
    let form = match grants::form(&body) {
        Ok(f) => f,
        Err(r) => return oauth_error(r),
    };
    let answer = match form.get("grant_type").map(String::as_str) {
        None => return refused(OAuthCode::InvalidRequest, "grant_type is required"),
        Some(JWT_BEARER) => match form.get("assertion") {
            Some(a) => grants::assertion_grant(&state, a, &origin.0).await,
            None => return refused(OAuthCode::InvalidRequest, "assertion is required with this grant_type"),
        },
        Some(REFRESH_TOKEN) => match form.get("refresh_token") {
            Some(t) => grants::refresh_grant(&state, t, &origin.0).await,
            None => return refused(OAuthCode::InvalidRequest, "refresh_token is required with this grant_type"),
        },
        Some(_) => {
            return refused(
                OAuthCode::UnsupportedGrantType,
                "grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer or refresh_token",
            )
        }
    };
    match answer {
        Ok(t) => no_store(StatusCode::OK, t),
        Err(Refusal::OAuth(r)) => oauth_error(r),
        Err(Refusal::SlowDown(wait)) => {
            let mut r = no_store(
                StatusCode::TOO_MANY_REQUESTS,
                OAuthError {
                    error: "slow_down".into(),
                    error_description: format!(
                        "too many tokens for this installation (--oauth-token-limit): try again in {wait} s"
                    ),
                },
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
            r
        }
        Err(Refusal::NoPublicUrl) => no_store(
            StatusCode::SERVICE_UNAVAILABLE,
            OAuthError {
                error: "server_error".into(),
                error_description: "this server has no public URL to name as the tokens' issuer and the assertions' \
                                    audience: start it with --public-url (KEYWARD_PUBLIC_URL)"
                    .into(),
            },
        ),
        Err(Refusal::Api(e)) => {
            // Storage away (503) or an internal failure (500, detail logged): the same status,
            // in this endpoint's shape.
            let (status, _, _, message) = e.parts();
            if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
                tracing::error!(error = ?e, "token endpoint failed");
            }
            no_store(status, OAuthError { error: "server_error".into(), error_description: message })
        }
    }
}

/// The token a form names (`token`), or the API's 400.
fn form_token(body: &[u8]) -> ApiResult<String> {
    let form = grants::form(body).map_err(|r| ApiError::invalid("token", r.description))?;
    form.get("token")
        .filter(|t| !t.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::invalid("token", "token is required (application/x-www-form-urlencoded)"))
}

#[utoipa::path(post, path = "/v1/oauth/introspect", tag = "apps",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    params(("Keyward-Verify-Token" = Option<String>, Header, description = "as for the verify endpoints: required with --verify-token; a workspace's token shows only its own tokens active")),
    responses((status = 200, description = "`active` and, for a live access token, its claims", body = Introspection),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn introspect(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<Introspection>> {
    let bound = state.check_verify_token(&headers).await?;
    let token = form_token(&body)?;
    let token = token.trim();
    if !jwt::looks_like(token) {
        return Ok(Json(Introspection::default()));
    }
    let req = Requirements { workspace: bound.as_deref(), ..Requirements::default() };
    let v = state.verify_secret(token, &req).await?;
    let claims = jwt::decode(token).and_then(|j| j.claims::<AccessClaims>());
    match claims {
        Some(c) if v.code == VerifyCode::Valid => Ok(Json(Introspection {
            active: true,
            scope: Some(c.scope),
            client_id: Some(c.client_id),
            token_type: Some("Bearer".into()),
            exp: Some(c.exp),
            iat: Some(c.iat),
            sub: Some(c.sub),
            aud: Some(c.aud),
            iss: Some(c.iss),
            jti: Some(c.jti),
            workspace_id: Some(c.workspace_id),
            permissions: Some(c.permissions),
        })),
        _ => Ok(Json(Introspection::default())),
    }
}

#[utoipa::path(post, path = "/v1/oauth/revoke", tag = "apps",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "revoked, or not a live token of this server (RFC 7009 answers both alike)"),
        (status = 400, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<SharedState>,
    origin: RequestOrigin,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let token = form_token(&body)?;
    let token = token.trim();
    let now = state.clock.now();
    // Whoever holds a token may end it: the holder is the actor.
    let record = |what: &str| AuditRecord {
        actor: AuditActor { kind: "token_holder".into(), id: None, name: None },
        action: AuditAction::AppTokenRevoke,
        target: AuditTarget { kind: "installation".into(), id: None, name: None },
        changes: serde_json::json!({ "token_type": what }),
        origin: origin.0.clone(),
    };
    if keyformat::is_refresh_token(token) {
        let hash = state.pepper.hash(token);
        if let Some(family) = state.store.revoke_refresh(&hash, now, &record("refresh_token")).await? {
            state.app_tokens.apply(&format!("fam:{family}"));
        }
    } else if jwt::looks_like(token) {
        // Only a token this server signed (its signature checked by the verifier).
        let v = state.verify_secret(token, &Requirements::default()).await?;
        let jti = jwt::decode(token).and_then(|j| j.claims::<AccessClaims>()).map(|c| c.jti);
        if let (Some(_), Some(jti)) = (v.key.as_ref(), jti) {
            let mut rec = record("access_token");
            rec.changes["jti"] = jti.clone().into();
            if state.store.revoke_access_token(&jti, now, &rec).await? {
                state.app_tokens.apply(&format!("tok:{jti}"));
            }
        }
    }
    Ok(StatusCode::OK)
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "apps",
    responses((status = 200, description = "every key a live access token may be signed with (Ed25519, `kid` in each token's header)", body = JwkSet)))]
pub async fn jwks(State(state): State<SharedState>) -> ApiResult<Response> {
    let set = crate::apps::signing::jwks(&state).await?;
    let mut r = Json(set).into_response();
    // A verifier meeting an unknown `kid` fetches again; five minutes spares the rest.
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(r)
}

#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "apps",
    responses((status = 200, description = "the authorization server's metadata (RFC 8414)", body = ServerMetadata),
        (status = 404, description = "the server has no --public-url", body = ErrorBody)))]
pub async fn metadata(State(state): State<SharedState>) -> ApiResult<Json<ServerMetadata>> {
    let iss = grants::issuer(&state)
        .ok_or_else(|| ApiError::NotFound("this server has no --public-url to describe itself with".into()))?;
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Ok(Json(ServerMetadata {
        issuer: iss.to_string(),
        token_endpoint: format!("{iss}{TOKEN_PATH}"),
        jwks_uri: format!("{iss}/.well-known/jwks.json"),
        introspection_endpoint: format!("{iss}/v1/oauth/introspect"),
        revocation_endpoint: format!("{iss}/v1/oauth/revoke"),
        grant_types_supported: list(&[JWT_BEARER, REFRESH_TOKEN]),
        token_endpoint_auth_methods_supported: list(&["none"]),
        token_endpoint_auth_signing_alg_values_supported: list(&["EdDSA", "ES256K"]),
        introspection_endpoint_auth_methods_supported: list(&["none"]),
        revocation_endpoint_auth_methods_supported: list(&["none"]),
        response_types_supported: Vec::new(),
    }))
}

#[utoipa::path(post, path = "/v1/oauth/signing-key/rotate", tag = "apps",
    responses((status = 200, description = "a new key signs this workspace's tokens; the one before stays published until its last token expires", body = SigningKeyRotated),
        (status = 403, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn rotate_signing_key(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
) -> ApiResult<Json<SigningKeyRotated>> {
    caller.require(Action::ManageApps)?;
    let ws = caller.0.workspace_id.clone();
    let audit =
        caller.audit(&origin, AuditAction::AppSigningKeyRotate, target("workspace", &ws, None), serde_json::json!({}));
    let kid = crate::apps::signing::rotate(&state, &ws, &audit).await?;
    Ok(Json(SigningKeyRotated { kid }))
}
