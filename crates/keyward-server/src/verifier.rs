//! The verify hot path, shared by `POST /v1/keys/verify` and `GET /v1/auth`. It reads the
//! cache first, storage only on a miss, and never writes: usage goes to an in-memory buffer.

use std::net::IpAddr;
use std::sync::Arc;

use keyward_core::keyformat::{self, TokenKind};
use keyward_core::model::VerifyResponse;
use keyward_core::verify::{decide, Requirements, VerifiableKey, VerifyCode};

use crate::cache::{Entry, KeyHash};
use crate::error::ApiResult;
use crate::state::AppState;
use keyward_core::pepper::hex_encode;

/// The outcome of a verification: the code, and the key when one was found.
pub struct Verdict {
    pub code: VerifyCode,
    pub key: Option<Arc<VerifiableKey>>,
}

impl Verdict {
    fn bare(code: VerifyCode) -> Self {
        Verdict { code, key: None }
    }

    pub fn valid(&self) -> bool {
        self.code == VerifyCode::Valid
    }

    /// The answer's JSON; for a found key, spliced from its cached serialization.
    pub fn to_json(&self) -> String {
        match &self.key {
            Some(k) => k.answer_json(self.code),
            None => serde_json::to_string(&VerifyResponse::bare(self.code)).unwrap_or_default(),
        }
    }
}

impl AppState {
    /// Verifies a secret key. `Err` only when the key is unknown to this node's cache and
    /// storage cannot be reached.
    pub async fn verify_secret(&self, token: &str, req: &Requirements<'_>) -> ApiResult<Verdict> {
        // The checksum rejects typos and made-up keys before any lookup.
        match keyformat::parse(token) {
            Some(p) if p.kind == TokenKind::Secret => {}
            _ => return Ok(Verdict::bare(VerifyCode::Malformed)),
        }
        let hash = self.pepper.hash_bytes(token);
        let entry = match self.cache.get(&hash) {
            Some(e) => e,
            None => self.load(hash).await?,
        };
        let key = match entry {
            // The cache and the store are keyed by this hash, so a found entry is this key.
            Entry::Found(k) => k,
            _ => return Ok(Verdict::bare(VerifyCode::NotFound)),
        };
        let now = self.clock.now();
        let code = decide(&key, now, req);
        if code == VerifyCode::Valid {
            self.usage.record(&key.id, now.timestamp_millis(), req.ip.map(|ip| ip.to_string()));
        }
        Ok(Verdict { code, key: Some(key) })
    }

    async fn load(&self, hash: KeyHash) -> ApiResult<Entry> {
        let epoch = self.cache.epoch();
        let entry = match self.store.key_by_hash(&hex_encode(&hash)).await? {
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
