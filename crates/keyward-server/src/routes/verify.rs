//! Verification surfaces: `POST /v1/keys/verify` and forward-auth `GET /v1/auth`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use keyward_core::signing::{SignedParts, HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE};
use keyward_core::verify::VerifyCode;
use keyward_core::wire::verify::{VerifyKeyRequest, VerifyResponse, VerifySignedRequest};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::SharedState;
use crate::verify::credential::{credential, Credential};
use crate::verify::forward::{Ask, Original, CREDENTIALS_LISTED};
use crate::verify::request::{json_response, parse_query, requirements};
use crate::verify::{parse_ip, Verdict};

#[utoipa::path(post, path = "/v1/keys/verify", tag = "verification", request_body = VerifyKeyRequest,
    params(("Keyward-Verify-Token" = Option<String>, Header, description = "required when the server runs with --verify-token")),
    responses((status = 200, description = "always 200 for a well-formed request; see `code`", body = VerifyResponse),
        (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
// In front of the API the fast lane answers this route; the router's way in (the console's
// and tests' in-process calls) goes through the same function.
pub async fn verify_key(State(state): State<SharedState>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    crate::verify::key::verify_key(&state, &parts.headers, body).await
}

#[utoipa::path(post, path = "/v1/requests/verify", tag = "verification", request_body = VerifySignedRequest,
    params(("Keyward-Verify-Token" = Option<String>, Header, description = "required when the server runs with --verify-token")),
    responses((status = 200, description = "always 200 for a well-formed request; see `code`", body = VerifyResponse),
        (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn verify_request(
    State(state): State<SharedState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<VerifySignedRequest>,
) -> ApiResult<Response> {
    let token_ws = state.check_verify_token(&headers).await?;
    let query = parse_query(req.permissions.as_deref())?;
    let ip = parse_ip(req.ip.as_deref())?;
    let asked = ("workspace_id", req.workspace_id.as_deref());
    let environment = req.environment.as_deref();
    let Some(needs) =
        requirements(token_ws.as_deref(), asked, environment, ip, query.as_ref(), req.scope.as_deref(), req.cost)?
    else {
        return Ok(json_response(Verdict::bare(VerifyCode::NotFound).to_json()));
    };
    let (Some(key), Some(nonce), Some(signature)) =
        (req.header(HEADER_KEY), req.header(HEADER_NONCE), req.header(HEADER_SIGNATURE))
    else {
        return Ok(json_response(Verdict::bare(VerifyCode::Malformed).to_json()));
    };
    let parts = SignedParts {
        method: &req.method,
        path: &req.path,
        nonce,
        params: req.query.strip_prefix('?').unwrap_or(&req.query),
        body: req.body.as_bytes(),
    };
    let verdict = state.verify_signed(&parts, key, signature, &needs).await?;
    Ok(json_response(verdict.to_json()))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthParams {
    /// A permission query the request must satisfy, e.g. `wallet.read AND tx.create`.
    pub permissions: Option<String>,
    /// A resource scope the key must cover, e.g. `wallet:w_123`.
    pub scope: Option<String>,
    /// Only a key of this workspace passes; another's is `NOT_FOUND`.
    pub workspace: Option<String>,
    /// Only a key of this environment (`test` or `live`) passes; another's is
    /// `WRONG_ENVIRONMENT` (403).
    pub environment: Option<String>,
    /// Uses this request spends of the key's limits and credits (default 1).
    pub cost: Option<u32>,
}

#[utoipa::path(get, path = "/v1/auth", tag = "verification", params(AuthParams,
        ("X-API-Key" = Option<String>, Header, description = "the secret key (or Authorization: Bearer)"),
        ("X-Forwarded-For" = Option<String>, Header, description = "believed only from trusted proxies")),
    responses((status = 200, description = "valid; identity in X-Keyward-* headers", body = VerifyResponse),
        (status = 401, description = "missing or bad credentials", body = ErrorBody),
        (status = 403, description = "IP, permission or environment refusal (`WRONG_ENVIRONMENT`)", body = ErrorBody),
        (status = 429, description = "rate limit reached or credits spent; Retry-After, RateLimit-Policy, RateLimit", body = ErrorBody)))]
pub async fn forward_auth(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<AuthParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let token_ws = state.check_verify_token(&headers).await?;
    let Query(params) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    let ask = Ask {
        permissions: params.permissions.as_deref(),
        scope: params.scope.as_deref(),
        workspace: params.workspace.as_deref(),
        environment: params.environment.as_deref(),
        cost: params.cost,
        workspace_field: "workspace",
    };
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The request being authorised, as the proxy describes it; its body is not sent to
    // forward-auth, so it is taken as empty (signed requests with bodies go through the
    // gateway, `/v1/auth/{path}` or POST /v1/requests/verify).
    let original = Original {
        method: text("x-original-method").or_else(|| text("x-forwarded-method")),
        target: text("x-original-uri").or_else(|| text("x-forwarded-uri")),
        body: b"",
    };
    let ip = state.client_ip(peer.ip(), &headers);
    state.forward_auth(token_ws.as_deref(), &headers, ip, &ask, original).await
}

/// The requirements `ANY /v1/auth/{path}` reads from its headers (its query is the original
/// request's).
pub const PERMISSIONS_HEADER: &str = "keyward-permissions";
pub const SCOPE_HEADER: &str = "keyward-scope";
pub const WORKSPACE_HEADER: &str = "keyward-workspace";
pub const ENVIRONMENT_HEADER: &str = "keyward-environment";
pub const COST_HEADER: &str = "keyward-cost";

#[utoipa::path(method(get, post, put, patch, delete), path = "/v1/auth/{path}", tag = "verification",
    description = "Forward-auth for proxies that send the original method and path under a prefix (Envoy's \
        HTTP `ext_authz` with `path_prefix: /v1/auth`): the request being authorised is this one, less the \
        `/v1/auth` prefix. A signed request's signature is checked over that method, path, query and body \
        (have the proxy send the body). The requirements come from `Keyward-*` headers the proxy sets, never \
        from the query. On success `x-envoy-auth-headers-to-remove` names the credential headers, which Envoy \
        then removes before the request goes upstream.",
    params(
        ("path" = String, Path, description = "the original request's path, without its leading /"),
        ("Keyward-Permissions" = Option<String>, Header, description = "a permission query the request must satisfy"),
        ("Keyward-Scope" = Option<String>, Header, description = "a resource scope the key must cover"),
        ("Keyward-Workspace" = Option<String>, Header, description = "only a key of this workspace passes"),
        ("Keyward-Environment" = Option<String>, Header, description = "only a key of this environment (`test` or `live`) passes"),
        ("Keyward-Cost" = Option<u32>, Header, description = "uses this request spends of the key's limits and credits (default 1)"),
        ("X-API-Key" = Option<String>, Header, description = "the secret key (or Authorization: Bearer)"),
        ("X-Forwarded-For" = Option<String>, Header, description = "believed only from trusted proxies")),
    responses((status = 200, description = "valid; identity in X-Keyward-* headers", body = VerifyResponse),
        (status = 400, description = "a malformed requirement header", body = ErrorBody),
        (status = 401, description = "missing or bad credentials", body = ErrorBody),
        (status = 403, description = "IP, permission or environment refusal (`WRONG_ENVIRONMENT`)", body = ErrorBody),
        (status = 429, description = "rate limit reached or credits spent; Retry-After, RateLimit-Policy, RateLimit", body = ErrorBody),
        (status = 503, description = "storage cannot be reached", body = ErrorBody)))]
// Registered by hand for every method and `{*path}` (routes/mod.rs): the documented methods
// are those a schema can describe.
pub async fn forward_auth_path(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let token_ws = state.check_verify_token(headers).await?;
    let text = |name: &'static str| -> ApiResult<Option<&str>> {
        headers.get(name).map(|v| v.to_str().map_err(|_| ApiError::invalid(name, "is not printable ASCII"))).transpose()
    };
    let cost = text(COST_HEADER)?
        .map(|c| c.trim().parse::<u32>().map_err(|_| ApiError::invalid(COST_HEADER, format!("{c:?} is not a count"))))
        .transpose()?;
    let ask = Ask {
        permissions: text(PERMISSIONS_HEADER)?,
        scope: text(SCOPE_HEADER)?,
        workspace: text(WORKSPACE_HEADER)?,
        environment: text(ENVIRONMENT_HEADER)?,
        cost,
        workspace_field: WORKSPACE_HEADER,
    };
    // `/v1/auth/wallets/1?x=1` authorises `/wallets/1?x=1`, as the client sent (and signed) it.
    let path = parts.uri.path().strip_prefix("/v1/auth").filter(|p| !p.is_empty()).unwrap_or("/");
    let target = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    // Only a signed request's signature covers the body; for a secret key it is never read.
    let body = match credential(headers) {
        Credential::Signed { .. } => {
            let limit = state.config.body_limit;
            crate::http::pipeline::read_body(body, limit, crate::http::pipeline::too_large).await?
        }
        _ => axum::body::Bytes::new(),
    };
    let original = Original { method: Some(parts.method.as_str()), target: Some(&target), body: &body };
    let ip = state.client_ip(peer.ip(), headers);
    let mut resp = state.forward_auth(token_ws.as_deref(), headers, ip, &ask, original).await?;
    resp.headers_mut().insert(HEADERS_TO_REMOVE, HeaderValue::from_static(CREDENTIALS_LISTED));
    Ok(resp)
}

/// Envoy's HTTP ext_authz removes the request headers this answer header names.
const HEADERS_TO_REMOVE: HeaderName = HeaderName::from_static("x-envoy-auth-headers-to-remove");
