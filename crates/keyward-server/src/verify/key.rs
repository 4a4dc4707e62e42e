//! `POST /v1/keys/verify`, one way for both ways in: the router's route and the fast lane
//! hand it the request's headers and body, and it reads, parses and verifies.

use std::fmt::Display;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName};
use axum::response::Response;

use keyward_core::verify::VerifyCode;
use keyward_core::wire::verify::VerifyKeyRequest;

use crate::error::ApiResult;
use crate::extract::parse_json;
use crate::http::pipeline::{read_body, too_large, within};
use crate::state::SharedState;
use crate::verify::request::{json_response, parse_query, requirements};
use crate::verify::{parse_ip, Verdict};

/// The request's body read within its bounds, parsed, and the key verified. Generic over the
/// body (hyper's on the fast lane, axum's in the router): no box.
pub(crate) async fn verify_key<B>(state: &SharedState, headers: &HeaderMap, body: B) -> ApiResult<Response>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Display,
{
    let body = within(state.config.body_read_timeout, read_body(body, state.config.body_limit, too_large)).await?;
    verify_key_body(state, headers, &body).await
}

/// The headers [`verify_key_body`] reads: the HTTP lane's own loop keeps only these.
pub(crate) static READS: [HeaderName; 2] = [crate::http::request_id::HEADER, super::credential::VERIFY_TOKEN_HEADER];

/// `POST /v1/keys/verify` once its body is read.
pub(crate) async fn verify_key_body(state: &SharedState, headers: &HeaderMap, body: &[u8]) -> ApiResult<Response> {
    // The plain parse is the quick way; what it refuses, the parser naming the field words.
    let args = match serde_json::from_slice::<VerifyKeyRequest>(body) {
        Ok(args) => args,
        Err(_) => parse_json::<VerifyKeyRequest>(body)?,
    };
    verify_key_with(state, headers, &args).await
}

/// `POST /v1/keys/verify` once its body is parsed.
async fn verify_key_with(state: &SharedState, headers: &HeaderMap, req: &VerifyKeyRequest<'_>) -> ApiResult<Response> {
    let token_ws = state.check_verify_token(headers).await?;
    let query = parse_query(req.permissions.as_deref())?;
    let ip = parse_ip(req.ip.as_deref())?;
    let asked = ("workspace_id", req.workspace_id.as_deref());
    let environment = req.environment.as_deref();
    let Some(mut needs) =
        requirements(token_ws.as_deref(), asked, environment, ip, query.as_ref(), req.scope.as_deref(), req.cost)?
    else {
        return Ok(json_response(Verdict::bare(VerifyCode::NotFound).to_json()));
    };
    if let Some(tags) = &req.tags {
        keyward_core::validate::tags(tags)?;
        needs.tags = tags;
    }
    if let Some(named) = req.ratelimits.as_deref() {
        keyward_core::limit_plan::check_named(named)?;
        needs.ratelimits = named;
    }
    let verdict = state.verify_secret(&req.key, &needs).await?;
    Ok(json_response(verdict.to_json()))
}
