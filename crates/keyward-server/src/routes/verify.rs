//! Verification surfaces: `POST /v1/keys/verify` and forward-auth `GET /v1/auth`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use keyward_core::signing::{SignedParts, HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE};
use keyward_core::verify::VerifyCode;
use keyward_core::wire::verify::{VerifyKeyRequest, VerifyResponse, VerifySignedRequest};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::SharedState;
use crate::verify::credential::{credential, identity_headers, Credential};
use crate::verify::request::{json_response, parse_query, requirements};
use crate::verify::{parse_ip, refused, Verdict};

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
    let query = parse_query(params.permissions.as_deref())?;
    let ip = Some(state.client_ip(peer.ip(), &headers));
    let asked = ("workspace", params.workspace.as_deref());
    let environment = params.environment.as_deref();
    let needs = requirements(
        token_ws.as_deref(),
        asked,
        environment,
        ip,
        query.as_ref(),
        params.scope.as_deref(),
        params.cost,
    )?
    .ok_or_else(|| refused(VerifyCode::NotFound))?;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verdict = match credential(&headers) {
        Credential::Secret(token) => state.verify_secret(token, &needs).await?,
        Credential::Signed { public_key, nonce, signature } => {
            // The request being authorised, as the proxy describes it; its body is not sent
            // to forward-auth, so it is taken as empty (signed requests with bodies go
            // through the gateway or POST /v1/requests/verify).
            let method = text("x-original-method").or_else(|| text("x-forwarded-method"));
            let uri = text("x-original-uri").or_else(|| text("x-forwarded-uri"));
            let (Some(method), Some(uri), Some(nonce), Some(signature)) = (method, uri, nonce, signature) else {
                return Err(ApiError::Refused {
                    code: VerifyCode::Malformed,
                    message: "a signed request needs Biz-Api-Nonce, Biz-Api-Signature and the original method \
                              and URI (X-Original-Method / X-Original-URI or X-Forwarded-Method / X-Forwarded-Uri)"
                        .into(),
                });
            };
            let (path, params) = uri.split_once('?').unwrap_or((uri, ""));
            let parts = SignedParts { method, path, nonce, params, body: b"" };
            state.verify_signed(&parts, public_key, signature, &needs).await?
        }
        Credential::Missing => return Err(refused(VerifyCode::Malformed)),
    };
    let key = verdict.accepted()?;
    let mut resp = json_response(verdict.to_json());
    let h = resp.headers_mut();
    for (name, value) in identity_headers(key) {
        h.insert(name, value);
    }
    h.insert("x-keyward-code", HeaderValue::from_static("VALID"));
    for (name, value) in verdict.limit_headers() {
        h.insert(name, value);
    }
    Ok(resp)
}
