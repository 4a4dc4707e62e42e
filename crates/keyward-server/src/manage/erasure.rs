//! Erasing deleted workspaces in the background: started by `DELETE /v1/workspaces/{id}`
//! (which answers at once) and by every sweep, so an erasure a stopped node left unfinished
//! is finished by the next. One at a time on a node; two nodes erasing the same workspace
//! only repeat each other's deletes.

use crate::state::SharedState;

/// Erases every deleted workspace whose data is still there.
pub(crate) async fn erase_deleted(state: SharedState) {
    let _one_at_a_time = state.erasures.lock().await;
    let pending = match state.store.workspaces_to_erase().await {
        Ok(p) => p,
        Err(e) => return tracing::warn!(error = %e, "cannot list deleted workspaces to erase; will retry"),
    };
    for id in pending {
        let now = state.clock.now();
        let log_id = keyward_core::ids::new_id("opl", now, state.random.as_ref());
        match state.store.erase_workspace(&id, &log_id, now).await {
            Ok(rows) => tracing::info!(workspace = %id, rows, "deleted workspace erased; its audit checkpoint kept"),
            Err(e) => {
                tracing::warn!(error = %e, workspace = %id, "could not finish erasing a deleted workspace; will retry")
            }
        }
    }
}
