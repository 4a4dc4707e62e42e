//! A restarted node's cache, warmed at start with the keys used most recently: their records
//! come in one streamed read, where their first requests would each have made a read of
//! their own (at a million keys on a busy node, ten thousand hot keys took seconds to read
//! one by one: docs/BENCHMARKS.md "Cold start"). In the background, never on a request's way:
//! a request for a key not warmed yet reads it as before (`inflight.rs` shares that read).
//! Every fill is checked against the epoch its stripe had before the read began, so a key
//! changed meanwhile is not cached from it. Each key read is added to the set of existing
//! ones too (it exists): a request for it waiting for that set to load goes at once.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::cache::{key_hash, Entry};
use crate::state::SharedState;
use crate::verify::known::prefix;

/// Keys added to the set of existing ones under one lock (each addition wakes its waiters).
const KNOWN_BATCH: usize = 256;

/// Reads the most recently used keys' records into the cache. Once: if storage fails, warming
/// was only a head start, and requests read their keys as before.
pub async fn run(state: SharedState, mut stopped: watch::Receiver<bool>) {
    // At most `warm_keys` (a bound on the read and on the memory it fills, never past the
    // cache's capacity), used within `warm_within` before start (a key idle longer is not hot).
    let (warm_keys, warm_within) = state.config.warm;
    let most = warm_keys.min(state.config.cache_capacity);
    if most == 0 {
        return;
    }
    let epochs = state.cache.epochs_now();
    // A window reaching past what a date can hold (`--warm-within 99999999d`) is every key.
    let since = state.clock.now().checked_sub_signed(warm_within).unwrap_or(chrono::DateTime::UNIX_EPOCH);
    let mut rows = state.store.recently_used_keys(since, i64::try_from(most).unwrap_or(i64::MAX));
    let mut warmed = 0u64;
    let mut known = Vec::with_capacity(KNOWN_BATCH);
    let failed = loop {
        let row = tokio::select! {
            r = rows.next() => r,
            _ = stopped.wait_for(|s| *s) => return,
        };
        let rec = match row {
            Some(Ok(rec)) => rec,
            Some(Err(e)) => break Some(e.to_string()),
            None => break None,
        };
        let Some(hash) = rec.hash.as_deref().and_then(key_hash) else { continue };
        // Read by a request meanwhile: that read is as new as this one.
        if state.cache.get(&hash).is_some() {
            continue;
        }
        let Some(epoch) = epochs.of(&hash) else { continue };
        match state.verifiable(rec).await {
            Ok(key) => {
                state.cache.fill(hash, Entry::Found(Arc::new(key)), epoch);
                warmed += 1;
                known.push(prefix(&hash));
                if known.len() == KNOWN_BATCH {
                    state.cache.known.add_ids(&known);
                    known.clear();
                }
            }
            Err(e) => break Some(format!("{e:?}")),
        }
    };
    state.cache.known.add_ids(&known);
    state.metrics.warmed(warmed);
    match failed {
        Some(error) => tracing::warn!(%error, warmed, "cannot warm the cache with recently used keys"),
        None => tracing::info!(keys = warmed, "cache warmed with recently used keys"),
    }
}
