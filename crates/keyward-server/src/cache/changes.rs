//! What a change event does to this node's cache. A key's event drops its entry; a service
//! account's drops the keys it owns; a role's re-derives, in place, the cached keys holding
//! the role (so a busy role's keys are not all read again at once); a workspace's rate limit
//! overrides' drops the overrides held for it (`limits/service.rs`); an identity's drops its
//! cached keys (they hold its limits, credits and meta); a workspace's (its standing changed:
//! suspended, resumed, deleted) rewrites its cached keys' standing in place (`standings.rs`); an
//! app's (`app:`) drops the token decisions it touches (`apps/cache.rs`).

use std::sync::Arc;

use keyward_store::{
    parse_role_event, APP_EVENT_PREFIX, IDENTITY_EVENT_PREFIX, RATELIMIT_OVERRIDE_EVENT_PREFIX,
    SERVICE_ACCOUNT_EVENT_PREFIX, WORKSPACE_EVENT_PREFIX,
};

use crate::state::{AppState, SharedState};

/// Applies one change event. Role and workspace events need a storage read, done in the
/// background; each kind is applied one at a time.
pub fn apply(state: &SharedState, event: &str) {
    if let Some((workspace, name)) = parse_role_event(event) {
        let (state, workspace, name) = (Arc::clone(state), workspace.to_string(), name.to_string());
        tokio::spawn(async move { state.rederive_role(&workspace, &name).await });
    } else if let Some(workspace) = event.strip_prefix(WORKSPACE_EVENT_PREFIX) {
        let (state, workspace) = (Arc::clone(state), workspace.to_string());
        tokio::spawn(async move { state.restand(&workspace).await });
    } else if let Some(id) = event.strip_prefix(SERVICE_ACCOUNT_EVENT_PREFIX) {
        state.cache.evict_owner(id);
    } else if let Some(id) = event.strip_prefix(IDENTITY_EVENT_PREFIX) {
        state.cache.evict_identity(id);
    } else if let Some(app) = event.strip_prefix(APP_EVENT_PREFIX) {
        state.app_tokens.apply(app);
    } else if let Some(workspace) = event.strip_prefix(RATELIMIT_OVERRIDE_EVENT_PREFIX) {
        state.service_limits.forget_overrides(workspace);
    } else {
        state.cache.invalidate(event);
    }
}

impl AppState {
    /// Brings the cached keys holding role `name` in line with storage. Awaited by the route
    /// that changed the role, so that node answers with the new role at once.
    pub(crate) async fn rederive_role(&self, workspace: &str, name: &str) {
        let _one_at_a_time = self.role_changes.lock().await;
        // Fills that read the role before the change are thrown away.
        self.cache.bump_all();
        let touched = match self.store.get_role(workspace, name).await {
            Ok(role) => {
                let permissions = role.and_then(|r| r.permissions);
                self.cache.rederive_role(workspace, name, Ok(permissions.as_deref()))
            }
            Err(e) => {
                tracing::warn!(error = %e, role = name, "cannot read a changed role; dropping the cached keys holding it");
                self.cache.rederive_role(workspace, name, Err(()))
            }
        };
        tracing::debug!(role = name, keys = touched, "role change applied to cached keys");
    }
}
