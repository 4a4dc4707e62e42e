//! Erasing deleted workspaces in the background: started by `DELETE /v1/workspaces/{id}`
//! (which answers at once) and by every sweep, so an erasure a stopped node left unfinished
//! is finished by the next. One at a time on a node; two nodes erasing the same workspace
//! only repeat each other's deletes.
//!
//! An erasure waits [`grace`] after the deletion: every node hears of it within a second and
//! from then on counts nothing for its keys (they are not found), and what a node counted
//! before (usage, last-used addresses, in memory) is written by its next flush — before the
//! erasure, not after it.

use std::time::Duration;

use crate::config::ServerConfig;
use crate::state::SharedState;

/// How long after a deletion its erasure begins.
pub(crate) fn grace(config: &ServerConfig) -> Duration {
    config.flush_interval * 2 + Duration::from_secs(2)
}

/// The deletion route's erasure of workspace `id`, after the grace.
pub(crate) async fn erase_after_grace(state: SharedState, id: String) {
    tokio::time::sleep(grace(&state.config)).await;
    let _one_at_a_time = state.erasures.lock().await;
    erase(&state, &id).await;
}

/// Erases every workspace deleted more than the grace ago whose data is still there.
pub(crate) async fn erase_deleted(state: SharedState) {
    let _one_at_a_time = state.erasures.lock().await;
    let before = state.clock.now() - chrono::Duration::from_std(grace(&state.config)).unwrap_or_default();
    let pending = match state.store.workspaces_to_erase(before).await {
        Ok(p) => p,
        Err(e) => return tracing::warn!(error = %e, "cannot list deleted workspaces to erase; will retry"),
    };
    for id in pending {
        erase(&state, &id).await;
    }
}

async fn erase(state: &SharedState, id: &str) {
    let now = state.clock.now();
    let log_id = keyward_core::ids::new_id("opl", now, state.random.as_ref());
    match state.store.erase_workspace(id, &log_id, now).await {
        Ok(rows) => tracing::info!(workspace = %id, rows, "deleted workspace erased; its audit checkpoint kept"),
        Err(e) => {
            tracing::warn!(error = %e, workspace = %id, "could not finish erasing a deleted workspace; will retry")
        }
    }
}
