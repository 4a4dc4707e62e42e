//! Keeps this node's verification cache in step with changes made by other nodes.
//! PostgreSQL: LISTEN/NOTIFY (push). SQLite: several processes may share one file, so the
//! `key_events` table is read every `poll_interval`.

use std::time::Duration;
use tokio::sync::watch;

use crate::state::SharedState;

pub async fn run(state: SharedState, stopped: watch::Receiver<bool>) {
    if state.store.pushes_changes() {
        listen(state, stopped).await
    } else {
        poll(state, stopped).await
    }
}

/// How long `key_events` rows are kept; a node cut off for longer cannot catch up from them.
pub const EVENT_RETENTION: chrono::Duration = chrono::Duration::minutes(10);
/// Allowance for clock skew between nodes and commit latency when catching up by time.
const CATCH_UP_MARGIN: chrono::Duration = chrono::Duration::seconds(5);
const CATCH_UP_LIMIT: i64 = 10_000;

async fn listen(state: SharedState, mut stopped: watch::Receiver<bool>) {
    // When the stream was (or may have been) deaf; at start, before the first subscription.
    let mut deaf_since = state.clock.now();
    loop {
        let mut sub = match state.store.subscribe().await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for key changes; retrying");
                // The pool may still reach the database (e.g. no connection slot was left for
                // the listener): read the changes from `key_events` meanwhile.
                let polled_at = state.clock.now();
                if catch_up(&state, deaf_since).await.is_ok() {
                    deaf_since = polled_at;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stopped.wait_for(|s| *s) => return,
                }
            }
        };
        // Listening now: changes from here on arrive as notifications; those made while deaf
        // are read from `key_events`. Cached entries stay in use meanwhile, so verification of
        // known keys keeps working through a database outage.
        if catch_up(&state, deaf_since).await.is_err() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
        loop {
            tokio::select! {
                msg = sub.next() => match msg {
                    Ok(Some(key)) => state.cache.invalidate(&key),
                    Ok(None) => {
                        deaf_since = state.clock.now();
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the key-change listener; reconnecting");
                        deaf_since = state.clock.now();
                        break;
                    }
                },
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    }
}

/// Drops the cache entries of keys changed since `since`, or the whole cache when the events
/// needed may already be pruned.
async fn catch_up(state: &SharedState, since: chrono::DateTime<chrono::Utc>) -> Result<(), ()> {
    let now = state.clock.now();
    if now - since > EVENT_RETENTION - CATCH_UP_MARGIN * 2 {
        state.cache.clear();
        return Ok(());
    }
    match state.store.events_since(since - CATCH_UP_MARGIN, CATCH_UP_LIMIT).await {
        Ok(events) if events.len() as i64 >= CATCH_UP_LIMIT => state.cache.clear(),
        Ok(events) => events.iter().for_each(|e| state.cache.invalidate(&e.cache_key)),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read key events yet");
            return Err(());
        }
    }
    Ok(())
}

async fn poll(state: SharedState, mut stopped: watch::Receiver<bool>) {
    let mut seen = state.store.last_event_seq().await.unwrap_or(0);
    let mut tick = tokio::time::interval(state.config.poll_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        match state.store.events_after(seen).await {
            Ok(events) => {
                for e in events {
                    state.cache.invalidate(&e.cache_key);
                    seen = seen.max(e.seq);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read key events"),
        }
    }
}
