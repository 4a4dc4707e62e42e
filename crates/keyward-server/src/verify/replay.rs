//! Replay protection for signed requests. A signature is accepted once while its nonce is
//! fresh; after the window the nonce check refuses it anyway, so entries can expire.
//! Memory is bounded by capacity. The set is per node: a copy of a request sent to another
//! node within the window is not caught there unless the nodes share Redis (`redis.rs`).

use moka::sync::Cache;
use std::time::Duration;

pub struct ReplayGuard {
    seen: Cache<String, ()>,
}

impl ReplayGuard {
    pub fn new(window: Duration, capacity: u64) -> Self {
        // A nonce may be up to `window` early or late, so it stays fresh for twice that long.
        ReplayGuard { seen: Cache::builder().max_capacity(capacity).time_to_live(window * 2).build() }
    }

    /// True the first time this (key, nonce, signature) is presented.
    pub fn first_use(&self, public_key: &str, nonce: &str, signature: &str) -> bool {
        let id = format!("{public_key}|{nonce}|{}", signature.to_ascii_lowercase());
        self.seen.entry(id).or_insert(()).is_fresh()
    }
}

/// The name a signed request is remembered by in Redis: SHA-256 of what identifies it (the
/// signature's case does not matter, as above).
pub fn digest(public_key: &str, nonce: &str, signature: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::new()
        .chain_update(public_key.as_bytes())
        .chain_update(b"|")
        .chain_update(nonce.as_bytes())
        .chain_update(b"|")
        .chain_update(signature.to_ascii_lowercase().as_bytes())
        .finalize();
    keyward_core::pepper::hex_encode(&d)
}
