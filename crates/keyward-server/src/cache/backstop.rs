//! The cache's backstop: change events keep every node's cache right, but if one were ever
//! missed (a bug, a row changed by hand), a cached answer could stay wrong for as long as the
//! node runs. Every `cache_revalidate_interval` this background task compares each cached
//! entry with storage, in batches, and drops those that differ — keys by their own rows, the
//! roles cached keys hold by what those keys took them to grant (re-derived in place, as
//! the role's event would), verify tokens by whether they are still live, workspaces' standings
//! by storage's (`standings.rs`). It never puts a storage read
//! on the verify path: requests keep answering from the cache meanwhile. It also fills the
//! set of known key hashes at start (`known.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::watch;

use keyward_store::{KeyVersion, StoreError, PUBLIC_KEY_EVENT_PREFIX, VERIFY_TOKEN_EVENT_PREFIX};

use crate::cache::{Cached, Entry};
use crate::state::SharedState;

const BATCH: usize = 500;

pub async fn run(state: SharedState, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(state.config.cache_revalidate_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        match sweep(&state).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(stale = n, "cached entries differed from storage (a change event was missed); corrected")
            }
            Err(e) => tracing::debug!(error = %e, "cannot revalidate the cache now; will retry"),
        }
    }
}

/// Compares every cached entry with storage; returns how many were stale (and dropped).
pub async fn sweep(state: &SharedState) -> Result<usize, StoreError> {
    let (secret, public) = state.cache.snapshot();
    let mut stale = 0;
    for (entries, by_public_key) in [(&secret, false), (&public, true)] {
        for chunk in entries.chunks(BATCH) {
            let ids: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
            let stored = state.store.key_versions(&ids, by_public_key).await?;
            for (k, entry) in chunk {
                if differs(entry, stored.get(k)) {
                    let event = if by_public_key { format!("{PUBLIC_KEY_EVENT_PREFIX}{k}") } else { k.clone() };
                    state.cache.invalidate(&event);
                    stale += 1;
                }
            }
        }
    }
    stale += sweep_roles(state, secret.iter().chain(&public)).await?;
    stale += sweep_tokens(state).await?;
    // A workspace suspended, resumed or deleted without its event.
    stale += state.reload_standings().await?;
    Ok(stale)
}

/// A workspace's roles held by cached keys, each with every grant cached keys took it to have.
type HeldRoles<'a> = BTreeMap<&'a str, BTreeSet<Option<&'a Vec<String>>>>;

/// A role changed in storage without its event leaves the cached keys holding it with the
/// old authority (their own rows did not change). Each workspace's held roles are read in
/// one query and compared with what every cached key took them to grant; a role that
/// differs is re-derived as its event would have been. Returns how many roles differed.
async fn sweep_roles<'a>(state: &SharedState, entries: impl Iterator<Item = &'a Cached>) -> Result<usize, StoreError> {
    let mut held: BTreeMap<Arc<str>, HeldRoles> = BTreeMap::new();
    for (_, entry) in entries {
        if let Entry::Found(k) = entry {
            for role in k.roles() {
                let taken = k.role_defs().get(role);
                held.entry(k.workspace_id().clone()).or_default().entry(role.as_str()).or_default().insert(taken);
            }
        }
    }
    let mut stale = 0;
    for (workspace, roles) in held {
        let names: Vec<String> = roles.keys().map(|r| (*r).to_string()).collect();
        let stored = state.store.role_defs(&workspace, &names).await?;
        for (name, taken) in roles {
            if taken.iter().any(|t| *t != stored.get(name)) {
                state.rederive_role(&workspace, name).await;
                stale += 1;
            }
        }
    }
    Ok(stale)
}

/// A verify token revoked in storage without its event would keep working on this node.
async fn sweep_tokens(state: &SharedState) -> Result<usize, StoreError> {
    let cached = state.cache.snapshot_tokens();
    let mut stale = 0;
    for chunk in cached.chunks(BATCH) {
        let hashes: Vec<String> = chunk.iter().map(|(h, _)| h.clone()).collect();
        let stored = state.store.verify_token_workspaces(&hashes).await?;
        for (hash, workspace) in chunk {
            if workspace.as_deref() != stored.get(hash).map(String::as_str) {
                state.cache.invalidate(&format!("{VERIFY_TOKEN_EVENT_PREFIX}{hash}"));
                stale += 1;
            }
        }
    }
    Ok(stale)
}

fn differs(cached: &Entry, stored: Option<&KeyVersion>) -> bool {
    match (cached, stored) {
        (Entry::Missing, None) => false,
        (Entry::Found(k), Some(v)) => (k.status, k.expires_at, k.updated_at) != (v.status, v.expires_at, v.updated_at),
        _ => true,
    }
}

/// The sets of existing credentials `fill_known` loads.
#[derive(Clone, Copy)]
enum Known {
    SecretKeys,
    PublicKeys,
    VerifyTokens,
    ImportedHashes,
}

/// Reads the apps' token-signing keys (`apps::signing::hold_all`), then every stored
/// secret-key hash, public key, verify-token hash and imported plain hash into the cache's
/// known sets, in the background; retries until done.
pub async fn fill_known(state: crate::state::SharedState, mut stopped: tokio::sync::watch::Receiver<bool>) {
    // First the apps' signing keys: a few rows, and the sets below are marked loaded after.
    loop {
        match crate::apps::signing::hold_all(&state).await {
            Ok(n) => {
                tracing::debug!(keys = n, "token-signing keys loaded");
                break;
            }
            Err(e) => tracing::debug!(error = %e, "cannot load token-signing keys yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
    for kind in [Known::SecretKeys, Known::PublicKeys, Known::VerifyTokens, Known::ImportedHashes] {
        if !fill_one(&state, kind, &mut stopped).await {
            return;
        }
    }
    tracing::debug!(keys = state.cache.known.len(), "known credentials loaded");
}

/// Loads the set of imported hashes again, in the background, after this node skipped change
/// events (it may have missed imports): meanwhile a hash it does not hold is looked up
/// within the per-second budget, as while the sets load at start.
pub(crate) fn refill_imported(state: &SharedState) {
    state.cache.known_imported.mark_loading();
    let state = SharedState::clone(state);
    tokio::spawn(async move {
        // Never stopped from outside: the sender lives as long as the fill.
        let (_running, mut never) = tokio::sync::watch::channel(false);
        fill_one(&state, Known::ImportedHashes, &mut never).await;
    });
}

/// Ids added to a set under one lock while it loads.
const LOAD_BATCH: usize = 4096;

/// Fills one set in one streamed read (a table scan: a million hashes in about a second;
/// pages in hash order took several); `false` when stopped first. A read that fails part way
/// starts again from the beginning a second later: adding an id twice changes nothing.
async fn fill_one(state: &SharedState, kind: Known, stopped: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    let set = match kind {
        Known::SecretKeys => &state.cache.known,
        Known::PublicKeys => &state.cache.known_public,
        Known::VerifyTokens => &state.cache.known_tokens,
        Known::ImportedHashes => &state.cache.known_imported,
    };
    let id_of = |item: &str| match kind {
        Known::SecretKeys | Known::ImportedHashes => {
            crate::cache::key_hash(item).map(|k| crate::verify::known::prefix(&k))
        }
        Known::PublicKeys => Some(state.cache.public_id(item)),
        Known::VerifyTokens => Some(crate::cache::KeyCache::token_id(item)),
    };
    loop {
        let store = &state.store;
        let mut rows = match kind {
            Known::SecretKeys => store.key_hashes(),
            Known::PublicKeys => store.public_keys(),
            Known::VerifyTokens => store.verify_token_hashes(),
            Known::ImportedHashes => store.import_hashes(),
        };
        let mut batch = Vec::with_capacity(LOAD_BATCH);
        let failed = loop {
            let row = tokio::select! {
                r = rows.next() => r,
                _ = stopped.wait_for(|s| *s) => return false,
            };
            match row {
                Some(Ok(item)) => {
                    batch.extend(id_of(&item));
                    if batch.len() == LOAD_BATCH {
                        set.add_ids(&batch);
                        batch.clear();
                    }
                }
                Some(Err(e)) => break e,
                None => {
                    set.add_ids(&batch);
                    set.mark_filled();
                    return true;
                }
            }
        };
        set.add_ids(&batch);
        drop(rows);
        tracing::debug!(error = %failed, "cannot load known credentials yet");
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stopped.wait_for(|s| *s) => return false,
        }
    }
}
