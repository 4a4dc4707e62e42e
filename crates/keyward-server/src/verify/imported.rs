//! Keys imported by hash (`POST /v1/keys/import`) on the verify path, where the normal path
//! found nothing: a secret not of Keyward's shape, or no key under the secret's HMAC. A key
//! found here is cached under the HMAC and re-keyed in the background, so from then on it is
//! found as any other key; a key found by its HMAC never comes here.
//!
//! Made-up credentials stay cheap. The set of imported hashes not used yet
//! (`cache.known_imported`, filled at start and by import events) is asked first: once it is
//! filled, a plain hash it does not hold costs no read, and when it is empty (nothing waits
//! for its first use) not even the SHA-256. While it is still loading, lookups spend the same
//! per-second budget as unknown HMACs (`known.rs`).

use std::sync::Arc;

use keyward_core::import::{plain_hash, MAX_IMPORTED_SECRET_LEN};
use keyward_core::pepper::hex_encode;
use keyward_core::verify::{Requirements, VerifiableKey, VerifyCode};

use crate::cache::{Entry, KeyHash};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::verify::known::prefix;
use crate::verify::{bounded, Verdict};

impl AppState {
    /// A secret that is not of Keyward's shape: only an imported key can have one. Looked up
    /// only when a set in memory says it may exist — its HMAC (a key re-keyed already) or its
    /// plain hash (one not used yet) — so a malformed made-up key never reaches storage
    /// once the sets are loaded.
    pub(crate) async fn verify_unshaped(
        &self,
        token: &str,
        req: &Requirements<'_>,
        started: std::time::Instant,
    ) -> ApiResult<Verdict> {
        if token.is_empty() || token.len() > MAX_IMPORTED_SECRET_LEN {
            return Ok(self.unknown(req, VerifyCode::Malformed, started));
        }
        let hash = self.pepper.hash_bytes(token);
        if !self.unshaped_may_exist(token, &hash) {
            return Ok(self.unknown(req, VerifyCode::Malformed, started));
        }
        self.verify_hashed(token, hash, VerifyCode::Malformed, req, started).await
    }

    fn unshaped_may_exist(&self, token: &str, hash: &KeyHash) -> bool {
        let known = self.cache.known.holds_id(prefix(hash));
        if known == Some(true) {
            return true;
        }
        let imported = &self.cache.known_imported;
        let plain = if imported.may_hold_any() { imported.holds_id(prefix(&plain_hash(token))) } else { Some(false) };
        match (known, plain) {
            (_, Some(true)) => true,
            (Some(false), Some(false)) => false,
            // A set still loading: looked up while the second's budget lasts.
            _ => self.cache.known.spend_lookup(self.clock.now().timestamp_millis()),
        }
    }

    /// The imported key not used yet whose plain hash is the presented secret's, when no key
    /// has the secret's HMAC. Found, it is cached under `hash` and re-keyed in the background.
    /// Concurrent first uses of one key share one read (`cache/inflight.rs`).
    pub(super) async fn find_imported(&self, token: &str, hash: KeyHash) -> ApiResult<Option<Arc<VerifiableKey>>> {
        let imported = &self.cache.known_imported;
        // Nothing imported waits for its first use (the usual case): no hash, no read.
        if !imported.may_hold_any() || token.len() > MAX_IMPORTED_SECRET_LEN {
            return Ok(None);
        }
        let plain = plain_hash(token);
        let look = match imported.holds_id(prefix(&plain)) {
            Some(held) => held,
            None => self.cache.known.spend_lookup(self.clock.now().timestamp_millis()),
        };
        if !look {
            return Ok(None);
        }
        let import_hash = hex_encode(&plain);
        let read = |epoch| self.read_imported(&import_hash, hash, epoch);
        self.cache.import_reads.get(&hash, || self.cache.epoch(&hash), read).await
    }

    /// [`Self::find_imported`]'s read, once per key at a time.
    async fn read_imported(
        &self,
        import_hash: &str,
        hash: KeyHash,
        epoch: crate::cache::Epoch,
    ) -> ApiResult<Option<Arc<VerifiableKey>>> {
        // Found by a read that ended between this request's miss and its taking the lead.
        if let Some(Entry::Found(key)) = self.cache.get(&hash) {
            return Ok(Some(key));
        }
        self.metrics.storage_read(crate::metrics::Lookup::SecretKey);
        let read = async {
            Ok(match self.store.key_by_import_hash(import_hash, &hex_encode(&hash)).await? {
                // No HMAC yet: this is its first use, to be re-keyed.
                Some(rec) => Some((rec.hash.is_none(), Arc::new(self.verifiable(rec).await?))),
                None => None,
            })
        };
        let Some((imported, key)) = bounded(read).await? else { return Ok(None) };
        self.cache.fill(hash, Entry::Found(Arc::clone(&key)), epoch);
        if imported {
            self.rekey(import_hash.to_string(), hash);
        }
        Ok(Some(key))
    }

    /// Re-keys an imported key under its secret's HMAC after the answer, off the request:
    /// the store claims the plain hash in one statement, so nodes doing it at once agree.
    /// One that fails (storage away) is tried again at the key's next use through this path:
    /// on another node, or here once the cache's backstop finds no stored key under the HMAC
    /// and drops the entry.
    fn rekey(&self, import_hash: String, hash: KeyHash) {
        let store = self.store.clone();
        let now = self.clock.now();
        tokio::spawn(async move {
            if let Err(e) = store.rekey_imported(&import_hash, &hex_encode(&hash), now).await {
                tracing::warn!(error = %e, "could not re-key an imported key; its next use tries again");
            }
        });
    }
}
