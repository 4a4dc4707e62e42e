//! Verification surfaces: `POST /v1/keys/verify` and forward-auth `GET /v1/auth`.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use keyward_core::permissions::Query as PermQuery;
use keyward_core::signing::{SignedParts, HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE};
use keyward_core::verify::{Requirements, VerifyCode};
use keyward_core::wire::verify::{VerifyKeyRequest, VerifyResponse, VerifySignedRequest};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::SharedState;
use crate::verify::credential::{credential, identity_headers, Credential};
use crate::verify::{parse_ip, refused, Verdict};

fn parse_query(raw: Option<&str>) -> ApiResult<Option<PermQuery>> {
    Ok(raw.map(PermQuery::parse).transpose()?)
}

#[utoipa::path(post, path = "/v1/keys/verify", tag = "verification", request_body = VerifyKeyRequest,
    params(("Keyward-Verify-Token" = Option<String>, Header, description = "required when the server runs with --verify-token")),
    responses((status = 200, description = "always 200 for a well-formed request; see `code`", body = VerifyResponse),
        (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn verify_key(
    State(state): State<SharedState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<VerifyKeyRequest>,
) -> ApiResult<Response> {
    verify_key_with(&state, &headers, &VerifyKeyArgs::from(&req)).await
}

/// A [`VerifyKeyRequest`] borrowing from the body where it can (strings without escapes):
/// the fast lane parses it without copies. Same fields; a refusal is worded by the wire
/// type's parser, as the route words it (a test holds the two ways' answers equal).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyKeyArgs<'a> {
    #[serde(borrow)]
    pub key: Cow<'a, str>,
    #[serde(default, borrow)]
    pub ip: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub permissions: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub scope: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub workspace_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub environment: Option<Cow<'a, str>>,
    #[serde(default)]
    pub cost: Option<u32>,
}

impl<'a> From<&'a VerifyKeyRequest> for VerifyKeyArgs<'a> {
    fn from(r: &'a VerifyKeyRequest) -> Self {
        let b = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
        VerifyKeyArgs {
            key: Cow::Borrowed(&r.key),
            ip: b(&r.ip),
            permissions: b(&r.permissions),
            scope: b(&r.scope),
            workspace_id: b(&r.workspace_id),
            environment: b(&r.environment),
            cost: r.cost,
        }
    }
}

/// `POST /v1/keys/verify` once its body is parsed: shared by the route and the fast lane
/// that answers it straight from the connection (`fast_lane.rs`).
pub(crate) async fn verify_key_with(
    state: &SharedState,
    headers: &HeaderMap,
    req: &VerifyKeyArgs<'_>,
) -> ApiResult<Response> {
    let token_ws = state.check_verify_token(headers).await?;
    let query = parse_query(req.permissions.as_deref())?;
    let ip = parse_ip(req.ip.as_deref())?;
    let asked = ("workspace_id", req.workspace_id.as_deref());
    let environment = req.environment.as_deref();
    let Some(needs) =
        requirements(token_ws.as_deref(), asked, environment, ip, query.as_ref(), req.scope.as_deref(), req.cost)?
    else {
        return Ok(json_response(Verdict::bare(VerifyCode::NotFound).to_json()));
    };
    let verdict = state.verify_secret(&req.key, &needs).await?;
    Ok(json_response(verdict.to_json()))
}

/// What a verify request needs, bound to the workspace of its verify token or the one it
/// names (`asked`, under the name the surface gives it, checked to be shaped like a
/// workspace id before anything counts it), and to `environment` (`test` or `live`). 400 for
/// a malformed workspace or environment; `None`: the token and the request name different
/// workspaces, so no key can verify.
#[allow(clippy::too_many_arguments)]
fn requirements<'a>(
    token_ws: Option<&'a str>,
    asked: (&str, Option<&'a str>),
    environment: Option<&'a str>,
    ip: Option<std::net::IpAddr>,
    permissions: Option<&'a PermQuery>,
    scope: Option<&'a str>,
    cost: Option<u32>,
) -> ApiResult<Option<Requirements<'a>>> {
    let (field, asked) = asked;
    let asked = asked.map(|w| keyward_core::validate::workspace_id(field, w)).transpose()?;
    if let Some(e) = environment {
        keyward_core::validate::known_environment(e)?;
    }
    let workspace = match (token_ws, asked) {
        (Some(token), Some(asked)) if token != asked => return Ok(None),
        (token, asked) => token.or(asked),
    };
    Ok(Some(Requirements { workspace, environment, ip, permissions, scope, cost }))
}

fn json_response(body: String) -> Response {
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
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
