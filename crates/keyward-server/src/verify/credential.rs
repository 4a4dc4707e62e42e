//! What a request presents to the verifier: its credential (a secret key or a signed
//! request's headers), its client address, the verify token; and the identity headers a
//! verified request carries on.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use keyward_core::keyformat::{self, TokenKind};
use keyward_core::verify::VerifiableKey;

use crate::error::{ApiError, ApiResult};
use crate::extract::bearer;
use crate::state::AppState;

pub(crate) const VERIFY_TOKEN_HEADER: HeaderName = HeaderName::from_static("keyward-verify-token");

impl AppState {
    /// Who may verify, and inside which workspace: a workspace's verify token (`…_vt_…`)
    /// binds verification to that workspace; with `--verify-token`, callers without one must
    /// present the server's token. `Ok(Some(ws))` binds to `ws`.
    pub(crate) async fn check_verify_token(&self, headers: &HeaderMap) -> ApiResult<Option<Arc<str>>> {
        let given = headers.get(VERIFY_TOKEN_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().trim();
        if keyformat::parse(given).is_some_and(|p| p.kind == TokenKind::Verify) {
            let hash = self.pepper.hash(given);
            let workspace = match self.cache.get_token(&hash) {
                Some(w) => w,
                // A token none has: looked up only while the second's budget lasts, as for
                // secret keys.
                None if !self.may_read_token(&hash).await? => None,
                None => {
                    self.metrics.storage_read(crate::metrics::Lookup::VerifyToken);
                    let epoch = self.cache.epoch_public(&hash);
                    let read = async { Ok(self.store.verify_token_workspace(&hash).await?) };
                    let w: Option<Arc<str>> = Box::pin(super::bounded(read)).await?.map(Into::into);
                    self.cache.fill_token(hash, w.clone(), epoch);
                    w
                }
            };
            return workspace
                .map(Some)
                .ok_or_else(|| ApiError::Unauthenticated("invalid or revoked Keyward-Verify-Token".into()));
        }
        let Some(expected) = &self.config.verify_token else { return Ok(None) };
        if keyward_core::pepper::hashes_equal(given, expected.expose()) {
            Ok(None)
        } else {
            Err(ApiError::Unauthenticated("missing or wrong Keyward-Verify-Token".into()))
        }
    }

    /// May a verify token the cache does not hold be read from storage (`known.rs`)?
    async fn may_read_token(&self, hash: &str) -> ApiResult<bool> {
        let id = crate::cache::KeyCache::token_id(hash);
        self.may_read(&self.cache.known_tokens, id).await
    }

    /// Is `peer` one of the proxies whose word about the client is believed?
    pub(crate) fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted(&keyward_core::ip::canonical(peer))
    }

    /// Is this (canonical) address one of our proxies?
    fn trusted(&self, ip: &IpAddr) -> bool {
        self.config.trusted_proxies.iter().any(|n| n.contains(ip))
    }

    /// The client's address: the peer, or what a trusted proxy says the client was.
    pub(crate) fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = keyward_core::ip::canonical(peer);
        let trusted = |ip: &IpAddr| self.trusted(ip);
        if !trusted(&peer) {
            return peer;
        }
        // Walk X-Forwarded-For from the right: the first hop not run by us is the client. A
        // hop that is not an address ends the walk (what lies left of it was not written by a
        // proxy we trust); the client is then the last hop read. Its lines are one list, in
        // order (RFC 9110 §5.3): a proxy that appends a line of its own (HAProxy) leaves the
        // client's line first, so the walk starts at the last line.
        let mut last = None;
        'walk: for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let Ok(line) = line.to_str() else { break };
            for hop in line.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
                let Ok(ip) = hop.parse::<IpAddr>() else { break 'walk };
                let ip = keyward_core::ip::canonical(ip);
                last = Some(ip);
                if !trusted(&ip) {
                    return ip;
                }
            }
        }
        if let Some(ip) = last {
            return ip;
        }
        headers
            .get(X_REAL_IP)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(keyward_core::ip::canonical)
            .unwrap_or(peer)
    }
}

/// The credential a request's headers carry: a secret key (`X-API-Key`, Bearer) or a signed
/// request's `Biz-Api-*` headers (nonce and signature checked by the caller).
pub(crate) enum Credential<'a> {
    Secret(&'a str),
    Signed { public_key: &'a str, nonce: Option<&'a str>, signature: Option<&'a str> },
    Missing,
}

// Looked up by ready names: a name given as text is parsed again at every lookup.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
// Core's `signing::HEADER_*`, lowercased as a `HeaderName` must be (a test holds them alike).
const BIZ_KEY: HeaderName = HeaderName::from_static("biz-api-key");
const BIZ_NONCE: HeaderName = HeaderName::from_static("biz-api-nonce");
const BIZ_SIGNATURE: HeaderName = HeaderName::from_static("biz-api-signature");

/// Does a header (its lowercase name) carry a credential? The gateway never passes those on.
pub(crate) fn carries_credential(name: &str) -> bool {
    [X_API_KEY, http::header::AUTHORIZATION, BIZ_KEY, BIZ_NONCE, BIZ_SIGNATURE].iter().any(|n| n.as_str() == name)
}

pub(crate) fn credential(headers: &HeaderMap) -> Credential<'_> {
    let text = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = text(X_API_KEY).or_else(|| bearer(headers)) {
        return Credential::Secret(token.trim());
    }
    match text(BIZ_KEY) {
        Some(public_key) => Credential::Signed { public_key, nonce: text(BIZ_NONCE), signature: text(BIZ_SIGNATURE) },
        None => Credential::Missing,
    }
}

/// The `X-Keyward-*` headers naming a verified key, as names and text (`id` is
/// `key.id()`, which the caller holds): the gateway writes them straight into the request
/// it sends upstream, with no `HeaderValue` made.
pub(crate) fn identity_fields<'a>(key: &'a VerifiableKey, id: &'a str) -> [(&'static str, &'a str); 6] {
    let (roles, scopes) = key.listed();
    [
        ("x-keyward-key-id", id),
        ("x-keyward-workspace", key.workspace_id()),
        ("x-keyward-environment", key.environment()),
        ("x-keyward-roles", roles),
        ("x-keyward-scopes", scopes),
        ("x-keyward-grants", key.grants_listed()),
    ]
}

/// [`identity_fields`] as headers, for a forward-auth answer.
pub(crate) fn identity_headers(key: &VerifiableKey) -> [(HeaderName, HeaderValue); 6] {
    let id = key.id();
    identity_fields(key, &id).map(|(name, value)| (HeaderName::from_static(name), header(value)))
}

pub(crate) fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::signing::{HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE};

    #[test]
    fn signed_request_headers_are_cores_names() {
        for (name, core) in [(BIZ_KEY, HEADER_KEY), (BIZ_NONCE, HEADER_NONCE), (BIZ_SIGNATURE, HEADER_SIGNATURE)] {
            assert_eq!(name.as_str(), core.to_ascii_lowercase());
            assert!(carries_credential(name.as_str()));
        }
        assert!(carries_credential("x-api-key") && carries_credential("authorization"));
        assert!(!carries_credential("x-keyward-roles") && !carries_credential("accept"));
    }
}
