//! Keeps this node's verification cache in step with changes made by other nodes.
//! PostgreSQL: LISTEN/NOTIFY (push). SQLite: several processes may share one file, so the
//! `key_events` table is read every `poll_interval`.

use std::time::Duration;
use tokio::sync::watch;

use keyward_store::Backend;

use crate::state::SharedState;

pub async fn run(state: SharedState, stopped: watch::Receiver<bool>) {
    match state.store.backend() {
        Backend::Postgres => listen(state, stopped).await,
        Backend::Sqlite => poll(state, stopped).await,
    }
}

async fn listen(state: SharedState, mut stopped: watch::Receiver<bool>) {
    loop {
        let mut sub = match state.store.subscribe().await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for key changes; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stopped.wait_for(|s| *s) => return,
                }
            }
        };
        // Anything cached before the subscription started may have missed a notification.
        state.cache.clear();
        loop {
            tokio::select! {
                msg = sub.next() => match msg {
                    Ok(Some(key)) => state.cache.invalidate(&key),
                    Ok(None) => {
                        // Connection lost: notifications may be gone, so trust nothing cached.
                        state.cache.clear();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the key-change listener; reconnecting");
                        state.cache.clear();
                        break;
                    }
                },
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    }
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
