//! Webhooks and per-key callbacks: where deliveries may go (`destination`), the worker that
//! sends them (`delivery`), and each workspace's callback signing key.

pub mod delivery;
pub mod destination;

use keyward_core::webhook_signature::CallbackKey;

use crate::error::ApiError;
use crate::state::SharedState;

/// The workspace's Ed25519 callback key, made (and stored sealed) on first use; when two
/// nodes make one at once, the first stored wins and both use it.
pub async fn signing_key(state: &SharedState, workspace_id: &str) -> Result<CallbackKey, ApiError> {
    let open = |sealed: &str| {
        crate::manage::seal::open_signing_key(&state.pepper, workspace_id, sealed)
            .map(|seed| CallbackKey::from_seed(&seed))
            .ok_or_else(|| ApiError::Internal("the callback signing key cannot be opened with this pepper".into()))
    };
    if let Some((sealed, _)) = state.store.webhook_signing_key(workspace_id).await? {
        return open(&sealed);
    }
    let seed = CallbackKey::new_seed(state.random.as_ref());
    let public = CallbackKey::from_seed(&seed).public_key();
    let sealed = crate::manage::seal::seal_signing_key(&state.pepper, state.random.as_ref(), workspace_id, &seed)
        .ok_or_else(|| ApiError::Internal("could not seal a signing key".into()))?;
    let (kept, _) = state.store.put_webhook_signing_key(workspace_id, &sealed, &public, state.clock.now()).await?;
    open(&kept)
}
