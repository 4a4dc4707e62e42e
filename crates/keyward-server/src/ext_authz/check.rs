//! One Check: Envoy's `CheckRequest` read into forward-auth's inputs, and forward-auth's
//! answer (or refusal) written as a `CheckResponse`.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue as EnvoyHeader, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc;

use crate::error::{ApiError, ApiResult};
use crate::gateway::identity_like;
use crate::state::SharedState;
use crate::verify::forward::{Ask, Original, CREDENTIAL_HEADERS};

/// The `context_extensions` a route sets to require more than a good credential.
const PERMISSIONS: &str = "keyward_permissions";
const SCOPE: &str = "keyward_scope";
const WORKSPACE: &str = "keyward_workspace";
const ENVIRONMENT: &str = "keyward_environment";
const COST: &str = "keyward_cost";
const KNOWN: [&str; 5] = [PERMISSIONS, SCOPE, WORKSPACE, ENVIRONMENT, COST];

/// Judges one Check. `metadata` is the gRPC call's (Envoy's `initial_metadata`: the verify
/// token, when the server requires one; never the client's headers); `remote` the caller's
/// address, used when Envoy does not say who its client was.
pub(crate) async fn check(
    state: &SharedState,
    metadata: HeaderMap,
    remote: Option<SocketAddr>,
    message: CheckRequest,
) -> CheckResponse {
    let attributes = message.attributes.unwrap_or_default();
    let http = attributes.request.as_ref().and_then(|r| r.http.as_ref());
    let headers = http.map(client_headers).unwrap_or_default();
    let judged = judge(state, &metadata, remote, &attributes, http, &headers).await;
    let resp = judged.unwrap_or_else(IntoResponse::into_response);
    answer(resp, &headers).await
}

async fn judge(
    state: &SharedState,
    metadata: &HeaderMap,
    remote: Option<SocketAddr>,
    attributes: &AttributeContext,
    http: Option<&HttpRequest>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let token_ws = state.check_verify_token(metadata).await?;
    let ext = &attributes.context_extensions;
    // A misspelt requirement would silently require nothing: refused instead.
    if let Some(unknown) = ext.keys().find(|k| k.starts_with("keyward_") && !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            "context_extensions",
            format!("unknown requirement {unknown:?} (known: {})", KNOWN.join(", ")),
        ));
    }
    let cost = ext
        .get(COST)
        .map(|c| c.trim().parse::<u32>().map_err(|_| ApiError::invalid(COST, format!("{c:?} is not a count"))))
        .transpose()?;
    let get = |k: &str| ext.get(k).map(String::as_str);
    let ask = Ask {
        permissions: get(PERMISSIONS),
        scope: get(SCOPE),
        workspace: get(WORKSPACE),
        environment: get(ENVIRONMENT),
        cost,
        workspace_field: WORKSPACE,
    };
    let body = match http {
        Some(h) if !h.raw_body.is_empty() => h.raw_body.as_slice(),
        Some(h) => h.body.as_bytes(),
        None => b"",
    };
    if body.len() > state.config.body_limit {
        return Err(crate::http::pipeline::too_large());
    }
    let original = Original {
        method: http.map(|h| h.method.as_str()).filter(|m| !m.is_empty()),
        target: http.map(|h| h.path.as_str()).filter(|p| !p.is_empty()),
        body,
    };
    let peer = source_ip(attributes).or(remote.map(|r| r.ip())).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let ip = state.client_ip(peer, headers);
    state.forward_auth(token_ws.as_deref(), headers, ip, &ask, original).await
}

/// The client's headers as Envoy describes them: the `headers` map, or with
/// `encode_raw_headers` the `header_map` list. Pseudo-headers (`:path`) and what is no valid
/// header are left out.
fn client_headers(http: &HttpRequest) -> HeaderMap {
    let mut out = HeaderMap::new();
    let mut put = |name: &str, value: &[u8]| {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
            out.append(n, v);
        }
    };
    match &http.header_map {
        Some(map) if !map.headers.is_empty() => {
            for h in &map.headers {
                let value = if h.raw_value.is_empty() { h.value.as_bytes() } else { &h.raw_value };
                put(&h.key, value);
            }
        }
        _ => {
            for (name, value) in &http.headers {
                put(name, value.as_bytes());
            }
        }
    }
    out
}

/// The address of Envoy's client (its downstream peer), as Envoy reports it.
fn source_ip(attributes: &AttributeContext) -> Option<IpAddr> {
    let address = attributes.source.as_ref()?.address.as_ref()?.address.as_ref()?;
    match address {
        AddressKind::SocketAddress(s) => s.address.parse().ok(),
        _ => None,
    }
}

/// Forward-auth's answer as Envoy takes it: a 200 lets the request through with the
/// `X-Keyward-*` headers added (the client's own of those names replaced, their look-alikes
/// and the credentials removed) and the rate-limit headers on the client's answer; any other
/// answer goes to the client as it is (status, headers, JSON body).
async fn answer(resp: Response, client: &HeaderMap) -> CheckResponse {
    let (parts, body) = resp.into_parts();
    if parts.status == StatusCode::OK {
        let mut upstream = Vec::new();
        let mut downstream = Vec::new();
        for (name, value) in &parts.headers {
            if name.as_str().starts_with("x-keyward-") {
                upstream.push(option(name, value));
            } else if name != http::header::CONTENT_TYPE {
                downstream.push(option(name, value));
            }
        }
        let set: Vec<&str> = parts.headers.keys().map(HeaderName::as_str).collect();
        let mut headers_to_remove: Vec<String> = CREDENTIAL_HEADERS.iter().map(|h| h.to_string()).collect();
        headers_to_remove.extend(
            client.keys().map(HeaderName::as_str).filter(|n| identity_like(n) && !set.contains(n)).map(str::to_string),
        );
        let ok = OkHttpResponse {
            headers: upstream,
            headers_to_remove,
            response_headers_to_add: downstream,
            ..Default::default()
        };
        return CheckResponse {
            status: Some(rpc::Status { code: 0, ..Default::default() }),
            http_response: Some(HttpResponse::OkResponse(ok)),
            ..Default::default()
        };
    }
    // Our own answer's body: a small JSON object, read whole.
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let denied = DeniedHttpResponse {
        status: Some(HttpStatus { code: i32::from(parts.status.as_u16()) }),
        headers: parts.headers.iter().map(|(n, v)| option(n, v)).collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    CheckResponse {
        status: Some(rpc::Status { code: grpc_code(parts.status), message: reason(parts.status), details: Vec::new() }),
        http_response: Some(HttpResponse::DeniedResponse(denied)),
        ..Default::default()
    }
}

/// A header Envoy sets, replacing any of the same name.
fn option(name: &HeaderName, value: &HeaderValue) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(EnvoyHeader {
            key: name.as_str().to_string(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        ..Default::default()
    }
}

/// The gRPC status of a refusal (Envoy refuses on any code but OK; the HTTP status it sends
/// is the denied response's).
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 => 3,  // INVALID_ARGUMENT
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        429 => 8,        // RESOURCE_EXHAUSTED
        503 | 507 => 14, // UNAVAILABLE
        _ => 13,         // INTERNAL
    }
}

fn reason(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("refused").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn raw_headers_win_and_pseudo_headers_are_left_out() {
        let headers = HashMap::from([(":path".to_string(), "/x".to_string()), ("x-api-key".into(), "k1".into())]);
        let mut http = HttpRequest { headers, ..Default::default() };
        assert_eq!(client_headers(&http).get("x-api-key").unwrap(), "k1");
        assert!(client_headers(&http).get(":path").is_none());
        http.header_map = Some(envoy_types::pb::envoy::config::core::v3::HeaderMap {
            headers: vec![EnvoyHeader { key: "x-api-key".into(), raw_value: b"k2".to_vec(), ..Default::default() }],
        });
        assert_eq!(client_headers(&http).get("x-api-key").unwrap(), "k2");
    }

    #[test]
    fn refusals_have_grpc_codes() {
        assert_eq!(grpc_code(StatusCode::UNAUTHORIZED), 16);
        assert_eq!(grpc_code(StatusCode::FORBIDDEN), 7);
        assert_eq!(grpc_code(StatusCode::TOO_MANY_REQUESTS), 8);
        assert_eq!(grpc_code(StatusCode::SERVICE_UNAVAILABLE), 14);
    }
}
