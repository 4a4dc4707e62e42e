//! `POST /v1/keys/verify`, one way for both ways in: the router's route and the fast lane
//! hand it the request's headers and body, and it reads, parses and verifies.

use std::borrow::Cow;
use std::fmt::Display;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use keyward_core::verify::VerifyCode;

use crate::error::ApiResult;
use crate::extract::parse_json;
use crate::http::pipeline::{read_body, too_large, within};
use crate::state::SharedState;
use crate::verify::request::{json_response, parse_query, requirements};
use crate::verify::{parse_ip, Verdict};

/// The body of `POST /v1/keys/verify`: the wire type of that name (which documents it), read
/// borrowing from the body where it can (strings without escapes). Same name, fields and
/// order, so a refusal is worded alike (the test below holds them so).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyKeyRequest<'a> {
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

/// The request's body read within its bounds, parsed, and the key verified. Generic over the
/// body (hyper's on the fast lane, axum's in the router): no box.
pub(crate) async fn verify_key<B>(state: &SharedState, headers: &HeaderMap, body: B) -> ApiResult<Response>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Display,
{
    let body = within(state.config.body_read_timeout, read_body(body, state.config.body_limit, too_large)).await?;
    // The plain parse is the quick way; what it refuses, the parser naming the field words.
    let args = match serde_json::from_slice::<VerifyKeyRequest>(&body) {
        Ok(args) => args,
        Err(_) => parse_json::<VerifyKeyRequest>(&body)?,
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
    let Some(needs) =
        requirements(token_ws.as_deref(), asked, environment, ip, query.as_ref(), req.scope.as_deref(), req.cost)?
    else {
        return Ok(json_response(Verdict::bare(VerifyCode::NotFound).to_json()));
    };
    let verdict = state.verify_secret(&req.key, &needs).await?;
    Ok(json_response(verdict.to_json()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use keyward_core::wire::verify::VerifyKeyRequest as Wire;

    /// The borrowing body refuses what the documented wire type refuses, in the same words.
    #[test]
    fn refusals_are_worded_as_the_wire_type_words_them() {
        let bodies: &[&str] = &[
            "",
            "  ",
            "[]",
            "[1]",
            "5",
            "null",
            r#""k""#,
            "{}",
            "{",
            "{} x",
            r#"{"key": 5}"#,
            r#"{"key": null}"#,
            r#"{"key": "k", "ip": 5}"#,
            r#"{"key": "k", "permissions": []}"#,
            r#"{"key": "k", "scope": {}}"#,
            r#"{"key": "k", "workspace_id": true}"#,
            r#"{"key": "k", "environment": 1.5}"#,
            r#"{"key": "k", "cost": -1}"#,
            r#"{"key": "k", "cost": "1"}"#,
            r#"{"key": "k", "cost": 4294967296}"#,
            r#"{"key": "k", "extra": 1}"#,
            r#"{"key": "k", "key": "k"}"#,
            r#"{"ip": "1.2.3.4"}"#,
            r#"{"key": "k\u0000", "ip": "a\"b"}"#,
            r#"{"key": "k", "ip": null, "cost": null}"#,
        ];
        let worded = |r: Result<(), ApiError>| match r {
            Ok(()) => "accepted".to_string(),
            Err(ApiError::Invalid { field, message }) => format!("{field:?}: {message}"),
            Err(e) => format!("{e:?}"),
        };
        for body in bodies {
            let args = parse_json::<VerifyKeyRequest>(body.as_bytes()).map(|_| ());
            let wire = parse_json::<Wire>(body.as_bytes()).map(|_| ());
            assert_eq!(worded(args), worded(wire), "body {body:?}");
        }
    }
}
