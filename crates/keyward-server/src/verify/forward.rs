//! Forward-auth's decision, shared by every proxy-facing surface: `GET /v1/auth`, `ANY
//! /v1/auth/{path}` (Envoy's HTTP ext_authz) and the gRPC ext_authz service (`ext_authz/`),
//! so a request is judged alike whichever way the proxy asks.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;

use keyward_core::signing::SignedParts;
use keyward_core::verify::VerifyCode;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::verify::credential::{credential, identity_headers, Credential};
use crate::verify::refused;
use crate::verify::request::{json_response, parse_query, requirements};

/// What the proxy requires of the request, besides a good credential.
#[derive(Debug, Default)]
pub(crate) struct Ask<'a> {
    pub permissions: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub workspace: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub cost: Option<u32>,
    /// The name a malformed workspace is refused under (the surface's own name for it).
    pub workspace_field: &'static str,
}

/// The request being authorised, as the proxy describes it: its method and target (path and
/// query, for a signed request's signature) and its body (empty when the proxy sends none).
pub(crate) struct Original<'a> {
    pub method: Option<&'a str>,
    pub target: Option<&'a str>,
    pub body: &'a [u8],
}

/// The headers that carry a credential, which the proxy removes from a request it lets
/// through (as the gateway does): the upstream never sees a caller's key.
pub(crate) const CREDENTIAL_HEADERS: [&str; 5] =
    ["x-api-key", "authorization", "biz-api-key", "biz-api-nonce", "biz-api-signature"];

/// [`CREDENTIAL_HEADERS`] as one header value.
pub(crate) const CREDENTIALS_LISTED: &str = "x-api-key,authorization,biz-api-key,biz-api-nonce,biz-api-signature";

/// `X-Keyward-Code` on every answer that judged a credential.
pub(crate) const X_KEYWARD_CODE: HeaderName = HeaderName::from_static("x-keyward-code");

impl AppState {
    /// Judges a request a proxy asks about: its credential (`headers`), its client (`ip`),
    /// what the route requires (`ask`), bound to the verify token's workspace (`token_ws`).
    /// `Ok`: 200 with the verification's JSON, the identity in `X-Keyward-*` headers and the
    /// rate-limit headers; `Err`: the refusal (401, 403, 429; 400 for a malformed
    /// requirement; 503 when storage cannot be reached).
    pub(crate) async fn forward_auth(
        &self,
        token_ws: Option<&str>,
        headers: &HeaderMap,
        ip: IpAddr,
        ask: &Ask<'_>,
        original: Original<'_>,
    ) -> ApiResult<Response> {
        let query = parse_query(ask.permissions)?;
        let needs = requirements(
            token_ws,
            (ask.workspace_field, ask.workspace),
            ask.environment,
            Some(ip),
            query.as_ref(),
            ask.scope,
            ask.cost,
        )?
        .ok_or_else(|| refused(VerifyCode::NotFound))?;
        let verdict = match credential(headers) {
            Credential::Secret(token) => self.verify_secret(token, &needs).await?,
            Credential::Signed { public_key, nonce, signature } => {
                let (Some(method), Some(target), Some(nonce), Some(signature)) =
                    (original.method, original.target, nonce, signature)
                else {
                    return Err(ApiError::Refused {
                        code: VerifyCode::Malformed,
                        message: "a signed request needs Biz-Api-Nonce, Biz-Api-Signature and the original method \
                                  and URI (X-Original-Method / X-Original-URI or X-Forwarded-Method / X-Forwarded-Uri)"
                            .into(),
                    });
                };
                let (path, params) = target.split_once('?').unwrap_or((target, ""));
                let parts = SignedParts { method, path, nonce, params, body: original.body };
                self.verify_signed(&parts, public_key, signature, &needs).await?
            }
            Credential::Missing => return Err(refused(VerifyCode::Malformed)),
        };
        let key = verdict.accepted()?;
        let mut resp = json_response(verdict.to_json());
        let h = resp.headers_mut();
        for (name, value) in identity_headers(key) {
            h.insert(name, value);
        }
        h.insert(X_KEYWARD_CODE, HeaderValue::from_static("VALID"));
        for (name, value) in verdict.limit_headers() {
            h.insert(name, value);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_headers_are_those_that_carry_one() {
        assert_eq!(CREDENTIALS_LISTED, CREDENTIAL_HEADERS.join(","));
        assert!(CREDENTIAL_HEADERS.iter().all(|h| crate::verify::credential::carries_credential(h)));
    }
}
