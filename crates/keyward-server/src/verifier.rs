//! The verify hot path, shared by `POST /v1/keys/verify` and `GET /v1/auth`. It reads the
//! cache first, storage only on a miss, and never writes: usage goes to an in-memory buffer.

use std::net::IpAddr;
use std::sync::Arc;

use keyward_core::keyformat::{self, TokenKind};
use keyward_core::model::VerifyResponse;
use keyward_core::pepper::hashes_equal;
use keyward_core::verify::{decide, Requirements, VerifiableKey, VerifyCode};

use crate::cache::Entry;
use crate::error::ApiResult;
use crate::state::AppState;

impl AppState {
    /// Verifies a secret key. `Err` only when the key is unknown to this node's cache and
    /// storage cannot be reached.
    pub async fn verify_secret(&self, token: &str, req: &Requirements<'_>) -> ApiResult<VerifyResponse> {
        // The checksum rejects typos and made-up keys before any lookup.
        match keyformat::parse(token) {
            Some(p) if p.kind == TokenKind::Secret => {}
            _ => return Ok(VerifyResponse::bare(VerifyCode::Malformed)),
        }
        let hash = self.pepper.hash(token);
        let entry = match self.cache.get(&hash) {
            Some(e) => e,
            None => self.load(hash.clone()).await?,
        };
        let key = match entry {
            Entry::Found(k) if k.record.hash.as_deref().is_some_and(|h| hashes_equal(h, &hash)) => k,
            _ => return Ok(VerifyResponse::bare(VerifyCode::NotFound)),
        };
        let now = self.clock.now();
        let code = decide(&key, now, req);
        if code == VerifyCode::Valid {
            self.usage.record(&key.record.id, now.timestamp_millis(), req.ip.map(|ip| ip.to_string()));
        }
        Ok(VerifyResponse::about(&key.record, code))
    }

    async fn load(&self, hash: String) -> ApiResult<Entry> {
        let epoch = self.cache.epoch();
        let entry = match self.store.key_by_hash(&hash).await? {
            Some(rec) => Entry::Found(Arc::new(VerifiableKey::new(rec))),
            None => Entry::Missing,
        };
        self.cache.fill(hash, entry.clone(), epoch);
        Ok(entry)
    }
}

/// Parses the optional `ip` of a verify request.
pub fn parse_ip(raw: Option<&str>) -> Result<Option<IpAddr>, crate::error::ApiError> {
    raw.map(|s| {
        s.trim()
            .parse::<IpAddr>()
            .map_err(|_| crate::error::ApiError::invalid("ip", format!("{s:?} is not an IP address")))
    })
    .transpose()
}
