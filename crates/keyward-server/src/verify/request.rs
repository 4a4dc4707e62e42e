//! What a verify request asks, as every verification surface reads it (`POST
//! /v1/keys/verify`, `POST /v1/requests/verify`, `GET /v1/auth`), and its JSON answer.

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use keyward_core::permissions::Query as PermQuery;
use keyward_core::verify::Requirements;

use crate::error::ApiResult;

pub(crate) fn parse_query(raw: Option<&str>) -> ApiResult<Option<PermQuery>> {
    Ok(raw.map(PermQuery::parse).transpose()?)
}

/// What a verify request needs, bound to the workspace of its verify token or the one it
/// names (`asked`, under the name the surface gives it, checked to be shaped like a
/// workspace id before anything counts it), and to `environment` (`test` or `live`). 400 for
/// a malformed workspace or environment; `None`: the token and the request name different
/// workspaces, so no key can verify.
#[allow(clippy::too_many_arguments)]
pub(crate) fn requirements<'a>(
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
    Ok(Some(Requirements { workspace, environment, ip, permissions, scope, cost, ..Requirements::default() }))
}

pub(crate) fn json_response(body: String) -> Response {
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
