//! The gateway: forwarding (here), the path's normal form (`path`), the `[[route]]` rules
//! (`rules`) and the HTTP/1 client to the upstream (`upstream/`).
//!
//! `keyward gateway`: a reverse proxy in front of an API. It accepts secret keys
//! (`X-API-Key`, `Authorization: Bearer`) and signed requests (`Biz-Api-*`, body included),
//! checks optional per-route permission rules, removes the credentials, adds the caller's
//! identity as `X-Keyward-*` headers, and streams the upstream's answer back.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;

use keyward_core::signing::SignedParts;
use keyward_core::verify::{Requirements, VerifyCode};

use crate::error::{ApiError, ApiResult};
use crate::gateway::upstream::conn::Outgoing;
use crate::gateway::upstream::head::{hop_by_hop, tokens};
use crate::state::SharedState;
use crate::verify::credential::{carries_credential, credential, identity_fields, Credential, X_FORWARDED_FOR};
use crate::verify::refused;

mod path;
mod rules;
pub(crate) mod upstream;

pub use rules::{parse_rules, RouteRule};

/// How the gateway runs, besides the server settings it shares with `serve`.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// e.g. `http://127.0.0.1:8080`; the request's path and query are appended.
    pub upstream: String,
    /// Largest request body passed on (and signed-request body checked).
    pub max_body: usize,
    pub rules: Vec<RouteRule>,
    /// An upstream silent this long (connecting, or between reads) answers 504.
    pub upstream_timeout: std::time::Duration,
    /// Only keys of this workspace pass; another's is refused as `NOT_FOUND`.
    pub workspace: Option<String>,
    /// Only keys of this environment (`test` or `live`) pass; another's is refused as
    /// `WRONG_ENVIRONMENT` (403).
    pub environment: Option<String>,
    /// PEM CA certificate(s) trusted for an `https://` upstream, besides the public roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The upstream takes `;` in a path as an ordinary character (no servlet-style path
    /// parameters), so paths holding one are passed on rather than refused.
    pub allow_path_parameters: bool,
}

impl GatewayConfig {
    /// Default limits: 1 MiB bodies, a 30-second upstream timeout.
    pub fn new(upstream: impl Into<String>, rules: Vec<RouteRule>) -> Self {
        GatewayConfig {
            upstream: upstream.into(),
            max_body: 1_048_576,
            rules,
            upstream_timeout: std::time::Duration::from_secs(30),
            workspace: None,
            environment: None,
            ca_pem: None,
            allow_path_parameters: false,
        }
    }
}

pub(crate) struct Gateway {
    state: SharedState,
    config: GatewayConfig,
    /// The upstream URL's own path without its trailing `/` (often empty); the request's
    /// path and query follow it. Empty, they go on as they came, with no string built.
    prefix: String,
    upstream: crate::gateway::upstream::client::Upstream,
}

/// What never reaches the upstream as the client sent it: hop-by-hop headers, credentials,
/// identity headers (those come only from us) and `X-Forwarded-For` (ours extends the
/// client's). `Host` is replaced by the upstream's, and the length by the one the buffered
/// body is sent with.
fn not_forwarded(name: &str) -> bool {
    hop_by_hop(name)
        || name == "content-length"
        || name == "x-forwarded-for"
        || carries_credential(name)
        || identity_like(name)
}

/// What a request from a peer that is not a trusted proxy does not pass on either: what it
/// says about the client or the address it called, which only a proxy of ours may say.
fn not_forwarded_untrusted(name: &str) -> bool {
    not_forwarded(name)
        || matches!(name, "x-real-ip" | "x-forwarded-host" | "x-forwarded-proto" | "x-forwarded-port" | "forwarded")
}

/// `x-keyward-…`, or a twin of it with `_` for either `-` (`x_keyward_roles`): many
/// upstreams (CGI, WSGI, some frameworks) read `_` and `-` in a header name alike, so a
/// twin would pass for our identity header there.
pub(crate) fn identity_like(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 10 && b[0] == b'x' && matches!(b[1], b'-' | b'_') && &b[2..9] == b"keyward" && matches!(b[9], b'-' | b'_')
}

/// The gateway, which the fast lane serves every request with. Fails at startup if its
/// upstream URL or CA certificate is unusable.
pub(crate) fn gateway(state: SharedState, config: GatewayConfig) -> std::io::Result<Arc<Gateway>> {
    let base = config.upstream.trim_end_matches('/');
    let uri = http::Uri::try_from(format!("{base}/"))
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() && u.query().is_none())
        .ok_or_else(|| std::io::Error::other(format!("the upstream {:?} is not an http(s) URL", config.upstream)))?;
    // Like every verify surface's: a malformed id would reach the usage counts.
    if let Some(w) = &config.workspace {
        keyward_core::validate::workspace_id("workspace", w)
            .map_err(|e| std::io::Error::other(format!("the gateway's --workspace: {e}")))?;
    }
    if let Some(e) = &config.environment {
        keyward_core::validate::known_environment(e)
            .map_err(|e| std::io::Error::other(format!("the gateway's --environment: {e}")))?;
    }
    let prefix = uri.path().trim_end_matches('/').to_string();
    let upstream =
        crate::gateway::upstream::client::Upstream::new(&uri, config.upstream_timeout, config.ca_pem.as_deref())?;
    Ok(Arc::new(Gateway { state, config, prefix, upstream }))
}

const X_KEYWARD_CODE: HeaderName = HeaderName::from_static("x-keyward-code");

/// `X-Forwarded-For` as the upstream gets it: the client's list, if any (every line of it,
/// in order, as one), and its peer. Each line is a valid header value, and so is the list.
fn forwarded_for<'a>(prev: impl IntoIterator<Item = &'a HeaderValue>, peer: std::net::IpAddr) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    for line in prev.into_iter().map(|l| l.as_bytes().trim_ascii()).filter(|l| !l.is_empty()) {
        v.extend_from_slice(line);
        v.extend_from_slice(b", ");
    }
    write_ip(&mut v, peer);
    v
}

/// An address as text; an IPv4 one without a formatter (this is on every request).
fn write_ip(v: &mut Vec<u8>, ip: std::net::IpAddr) {
    use std::io::Write as _;
    match ip {
        std::net::IpAddr::V4(ip) => {
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    v.push(b'.');
                }
                if octet >= 100 {
                    v.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    v.push(b'0' + octet / 10 % 10);
                }
                v.push(b'0' + octet % 10);
            }
        }
        // Writing an address into a Vec cannot fail.
        std::net::IpAddr::V6(ip) => {
            let _ = write!(v, "{ip}");
        }
    }
}

/// Removes the headers `doomed` picks and those the message's `Connection` header names
/// (hop-by-hop too), in place. This is on every request and answer, so the usual case
/// allocates nothing: a `Connection` naming only `close` or fixed hop-by-hop headers (as
/// `keep-alive` does) adds no name, and the doomed names are gathered a few per pass.
fn strip(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    let mut named: Vec<HeaderName> = Vec::new();
    for token in headers.get_all(http::header::CONNECTION).iter().flat_map(|v| tokens(v.as_bytes())) {
        let mut lower = [0u8; 32];
        let fixed = match lower.get_mut(..token.len()) {
            Some(lower) => {
                lower.copy_from_slice(token);
                lower.make_ascii_lowercase();
                std::str::from_utf8(lower).is_ok_and(|t| t == "close" || hop_by_hop(t))
            }
            None => false,
        };
        if !fixed {
            // Lowercased by the parse; a token that is no header name names nothing.
            named.extend(HeaderName::from_bytes(token).ok());
        }
    }
    for name in &named {
        headers.remove(name);
    }
    loop {
        let mut found: [Option<HeaderName>; 4] = Default::default();
        let mut n = 0;
        for name in headers.keys() {
            if doomed(name.as_str()) {
                found[n] = Some(name.clone());
                n += 1;
                if n == found.len() {
                    break;
                }
            }
        }
        for name in found.iter().flatten() {
            headers.remove(name);
        }
        if n < found.len() {
            return;
        }
    }
}

impl Gateway {
    /// The largest body the gateway passes on.
    pub(crate) fn max_body(&self) -> usize {
        self.config.max_body
    }

    pub(crate) fn too_large(&self) -> ApiError {
        ApiError::PayloadTooLarge(format!("request bodies are limited to {} bytes", self.config.max_body))
    }

    /// A request verified, rewritten and sent on; the upstream's answer streamed back.
    /// `body` reads the request's body (bounded by [`Gateway::max_body`]) when awaited: a
    /// secret key is checked before it is, so a caller without a good key cannot make the
    /// gateway wait for or hold a body; a signed request's body is read first, since its
    /// signature covers it.
    pub(crate) async fn forward(
        &self,
        peer: SocketAddr,
        parts: http::request::Parts,
        body: impl std::future::Future<Output = ApiResult<axum::body::Bytes>>,
    ) -> ApiResult<Response> {
        // Rules are matched on the path's one normal form, and the upstream receives exactly
        // that form; the signature is over the path as the client sent (and signed) it.
        let raw_path = parts.uri.path();
        let path = path::normalise(raw_path, self.config.allow_path_parameters)
            .map_err(|e| ApiError::Invalid { field: Some("path".into()), message: e.to_string() })?;
        let query = parts.uri.query().unwrap_or("");

        let state = &self.state;
        let client_ip = state.client_ip(peer.ip(), &parts.headers);
        let rule = rules::applying(&self.config.rules, &path);
        let scope = rule.and_then(|r| r.scope_for(&path));
        let needs = Requirements {
            workspace: self.config.workspace.as_deref(),
            environment: self.config.environment.as_deref(),
            ip: Some(client_ip),
            permissions: rule.and_then(|r| r.permissions()),
            scope: scope.as_deref(),
            ..Requirements::default()
        };
        let (verdict, body) = match credential(&parts.headers) {
            Credential::Secret(token) => {
                let verdict = state.verify_secret(token, &needs).await?;
                verdict.accepted()?;
                (verdict, body.await?)
            }
            Credential::Signed { public_key, nonce: Some(nonce), signature: Some(signature) } => {
                // The body is read only for a known key with a fresh nonce: the signature
                // covers it, nothing before needs it.
                match state.signed_key(public_key, nonce, query, &needs).await? {
                    Ok(found) => {
                        let body = body.await?;
                        let signed = SignedParts {
                            method: parts.method.as_str(),
                            path: raw_path,
                            nonce,
                            params: query,
                            body: &body,
                        };
                        (state.signed_check(found, &signed, signature, &needs).await, body)
                    }
                    // Refused below, its body never read.
                    Err(no) => (no, axum::body::Bytes::new()),
                }
            }
            Credential::Signed { .. } | Credential::Missing => return Err(refused(VerifyCode::Malformed)),
        };
        let key = verdict.accepted()?;

        // Origin-form: the upstream client adds the upstream's `Host`. The request's own
        // target is sent as it is when its path was already normal (no string built).
        let target: std::borrow::Cow<str> = match (parts.uri.path_and_query(), &path) {
            (Some(pq), std::borrow::Cow::Borrowed(_)) if self.prefix.is_empty() && parts.uri.query() != Some("") => {
                pq.as_str().into()
            }
            _ => {
                let q = if query.is_empty() { "" } else { "?" };
                [self.prefix.as_str(), &path, q, query].concat().into()
            }
        };
        let forwarded = forwarded_for(parts.headers.get_all(X_FORWARDED_FOR), peer.ip());
        let id = key.id();
        let [a, b, c, d, e, f] = identity_fields(key, &id).map(|(name, value)| (name, value.as_bytes()));
        // Written after the request's own headers, made into no `HeaderValue`.
        let added = [("x-forwarded-for", &forwarded[..]), a, b, c, d, e, f];
        // The request's own headers, rewritten in place: credentials, hop-by-hop ones and
        // what `added` replaces out.
        let mut headers = parts.headers;
        if state.trusts(peer.ip()) {
            strip(&mut headers, not_forwarded);
        } else {
            strip(&mut headers, not_forwarded_untrusted);
        }
        let sent = Outgoing { method: &parts.method, target: &target, headers: &headers, added: &added, body };
        let upstream = self.upstream.send(sent).await.map_err(|e| match e {
            crate::gateway::upstream::failure::Failure::TimedOut => {
                tracing::warn!("upstream did not answer in time");
                ApiError::GatewayTimeout("the upstream API did not answer in time".into())
            }
            crate::gateway::upstream::failure::Failure::Unreachable(e) => {
                tracing::warn!(error = %e, "upstream unreachable");
                ApiError::BadGateway("the upstream API cannot be reached".into())
            }
        })?;
        // The client left out the answer's hop-by-hop headers; its Content-Length stays when
        // the streamed body has exactly that length.
        let (mut head, body) = upstream.into_parts();
        head.headers.insert(X_KEYWARD_CODE, HeaderValue::from_static("VALID"));
        for (name, value) in verdict.limit_headers() {
            head.headers.insert(name, value);
        }
        Ok(Response::from_parts(head, Body::new(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_writes_addresses_as_std_does() {
        for ip in ["0.0.0.0", "255.255.255.255", "10.20.3.100", "127.0.0.1", "192.168.9.99", "::1", "2001:db8::7"] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(forwarded_for(None, ip), ip.to_string().as_bytes());
            let prev = HeaderValue::from_static("203.0.113.5");
            assert_eq!(forwarded_for(Some(&prev), ip), format!("203.0.113.5, {ip}").as_bytes());
        }
        // Every line, in order: a proxy that appended its own line is not hidden behind the
        // client's.
        let mut h = HeaderMap::new();
        for line in ["198.51.100.1, 203.0.113.9", " ", "203.0.113.5"] {
            h.append(X_FORWARDED_FOR, HeaderValue::from_static(line));
        }
        let peer = "127.0.0.1".parse().unwrap();
        assert_eq!(
            forwarded_for(h.get_all(X_FORWARDED_FOR), peer),
            b"198.51.100.1, 203.0.113.9, 203.0.113.5, 127.0.0.1"
        );
    }

    #[test]
    fn strip_removes_hop_by_hop_named_and_picked_headers_in_passes() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "X-Private, keep-alive"),
            ("connection", "x-second, Close, X-A-Very-Long-Private-Header-Name"),
            ("x-private", "1"),
            ("x-a-very-long-private-header-name", "3"),
            ("x-second", "2"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("trailer", "x-t"),
            ("x-api-key", "secret"),
            ("x-keyward-roles", "forged"),
            ("x_keyward_roles", "forged"),
            ("x-keyward_workspace", "forged"),
            ("x_keyward-key-id", "forged"),
            ("x-real-ip", "203.0.113.5"),
            ("host", "client.example"),
            ("content-length", "3"),
            ("accept", "text/plain"),
            ("x-kept", "yes"),
        ] {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let mut answer = headers.clone();
        let mut untrusted = headers.clone();
        strip(&mut headers, not_forwarded);
        let mut left: Vec<_> = headers.keys().map(|n| n.as_str()).collect();
        left.sort();
        // `Host` is replaced when the request is sent.
        assert_eq!(left, ["accept", "host", "x-kept", "x-real-ip"]);
        strip(&mut untrusted, not_forwarded_untrusted);
        assert!(untrusted.get("x-real-ip").is_none() && untrusted.get("x-kept").is_some());

        strip(&mut answer, hop_by_hop);
        let mut left: Vec<_> = answer.keys().map(|n| n.as_str()).collect();
        left.sort();
        assert_eq!(
            left,
            [
                "accept",
                "content-length",
                "host",
                "x-api-key",
                "x-kept",
                "x-keyward-roles",
                "x-keyward_workspace",
                "x-real-ip",
                "x_keyward-key-id",
                "x_keyward_roles"
            ]
        );

        let mut plain = HeaderMap::new();
        plain.insert(HeaderName::from_static("x-a"), HeaderValue::from_static("1"));
        strip(&mut plain, not_forwarded);
        assert_eq!(plain.len(), 1);
    }
}
