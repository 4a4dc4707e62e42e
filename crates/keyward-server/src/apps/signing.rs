//! Each workspace's Ed25519 keys signing its access tokens: made (and stored sealed) on first
//! use, rotated on request, published at `/.well-known/jwks.json` until the last token a
//! retired key signed has expired.

use keyward_core::ids;
use keyward_core::pepper::hex_encode;
use keyward_core::signing::{Algorithm, PublicKey, SecretKey};
use keyward_core::wire::apps::ACCESS_TOKEN_SECONDS;
use keyward_core::wire::jwt::{Jwk, JwkSet};
use keyward_store::{AuditRecord, SigningKeyRow};

use crate::apps::cache::MAX_KIDS;
use crate::error::ApiError;
use crate::state::AppState;

fn open(state: &AppState, row: &SigningKeyRow) -> Result<SecretKey, ApiError> {
    crate::manage::seal::open_token_key(&state.pepper, &row.kid, &row.sealed)
        .and_then(|seed| SecretKey::from_hex(Algorithm::Ed25519, &hex_encode(&seed)))
        .ok_or_else(|| ApiError::Internal("a token-signing key cannot be opened with this pepper".into()))
}

fn new_row(state: &AppState, workspace_id: &str) -> Result<(SigningKeyRow, SecretKey), ApiError> {
    let now = state.clock.now();
    let key = SecretKey::generate(Algorithm::Ed25519, state.random.as_ref());
    let kid = ids::new_id("tsk", now, state.random.as_ref());
    let seed: [u8; 32] = keyward_core::pepper::hex_decode(&key.to_hex())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::Internal("a new signing key has no seed".into()))?;
    let sealed = crate::manage::seal::seal_token_key(&state.pepper, state.random.as_ref(), &kid, &seed)
        .ok_or_else(|| ApiError::Internal("could not seal a signing key".into()))?;
    let row = SigningKeyRow {
        kid,
        workspace_id: workspace_id.to_string(),
        sealed,
        public_key: key.public_key().to_hex(),
        created_at: now,
        retired_at: None,
    };
    Ok((row, key))
}

/// The workspace's current signing key and its `kid`, made on first use. Two nodes making
/// one at once each store theirs: both are published, either signs.
pub(crate) async fn current(state: &AppState, workspace_id: &str) -> Result<(String, SecretKey), ApiError> {
    if let Some(row) = state.store.current_signing_key(workspace_id).await? {
        return Ok((row.kid.clone(), open(state, &row)?));
    }
    let (row, key) = new_row(state, workspace_id)?;
    state.store.put_signing_key(&row, false, None).await?;
    Ok((row.kid, key))
}

/// A new signing key for the workspace; the ones before it sign no more, and stay
/// published until their last token has expired. Answers the new `kid`.
pub(crate) async fn rotate(state: &AppState, workspace_id: &str, audit: &AuditRecord) -> Result<String, ApiError> {
    let (row, _) = new_row(state, workspace_id)?;
    state.store.put_signing_key(&row, true, Some(audit)).await?;
    Ok(row.kid)
}

/// Every key a live token may be signed with, as a JWK Set.
pub(crate) async fn jwks(state: &AppState) -> Result<JwkSet, ApiError> {
    let oldest = state.clock.now() - chrono::Duration::seconds(ACCESS_TOKEN_SECONDS);
    let rows = state.store.published_signing_keys(oldest).await?;
    let keys = rows
        .iter()
        .filter_map(|r| PublicKey::parse(Algorithm::Ed25519, &r.public_key).ok().map(|k| Jwk::of(&k, &r.kid)))
        .collect();
    Ok(JwkSet { keys })
}

/// A signing key as a node holds it: its workspace and its public half (`None`: a stored
/// public key that does not parse).
pub(crate) fn held_key(workspace: String, public_hex: &str) -> Option<std::sync::Arc<(Box<str>, PublicKey)>> {
    let k = PublicKey::parse(Algorithm::Ed25519, public_hex).ok()?;
    Some(std::sync::Arc::new((workspace.into_boxed_str(), k)))
}

/// Reads every token-signing key's public half (the newest [`MAX_KIDS`]) into this node's
/// memory: a token signed by any of them is then checked without a storage read of its key,
/// whatever made-up `kid`s have spent of the lookup budget.
pub(crate) async fn hold_all(state: &AppState) -> Result<usize, keyward_store::StoreError> {
    let rows = state.store.newest_signing_public_keys(MAX_KIDS as i64).await?;
    let keys: Vec<_> = rows
        .into_iter()
        .filter_map(|(kid, workspace, public)| Some((kid.into_boxed_str(), held_key(workspace, &public)?)))
        .collect();
    let n = keys.len();
    state.app_tokens.load_keys(keys);
    Ok(n)
}
