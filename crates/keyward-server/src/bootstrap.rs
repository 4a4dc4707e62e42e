//! `keyward init`: the first workspace, its owner and the owner's management key.

use keyward_core::pepper::Pepper;
use keyward_core::wire::keys::InitOutcome;
use keyward_core::{ids, keyformat, Clock, Random};
use keyward_store::{NewManagementKey, NewWorkspace, Store, StoreError};

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub workspace_name: String,
    pub prefix: String,
    pub owner_email: String,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions { workspace_name: "default".into(), prefix: "kw".into(), owner_email: "owner@localhost".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0}")]
    Invalid(String),
    #[error("this database is already initialised; nothing was changed")]
    AlreadyInitialised,
    #[error(transparent)]
    Store(StoreError),
}

/// `keyward init`: the first workspace; refused when the database already has one.
pub async fn initialise(
    store: &Store,
    pepper: &Pepper,
    clock: &dyn Clock,
    rng: &dyn Random,
    opts: &InitOptions,
) -> Result<InitOutcome, InitError> {
    add_workspace(store, pepper, clock, rng, opts, true).await
}

/// `keyward workspaces create`: one more tenant, with its own owner and management key.
pub async fn create_workspace(
    store: &Store,
    pepper: &Pepper,
    clock: &dyn Clock,
    rng: &dyn Random,
    opts: &InitOptions,
) -> Result<InitOutcome, InitError> {
    add_workspace(store, pepper, clock, rng, opts, false).await
}

async fn add_workspace(
    store: &Store,
    pepper: &Pepper,
    clock: &dyn Clock,
    rng: &dyn Random,
    opts: &InitOptions,
    first: bool,
) -> Result<InitOutcome, InitError> {
    // The workspace's first audit event is keyed with the pepper.
    store.key_audit(pepper);
    if !keyformat::valid_prefix(&opts.prefix) {
        return Err(InitError::Invalid(format!(
            "prefix {:?} must be 1-16 lowercase letters or digits, starting with a letter",
            opts.prefix
        )));
    }
    let name = opts.workspace_name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(InitError::Invalid("workspace name must be 1-64 characters".into()));
    }
    if let Some(why) = keyward_core::text::refusal(name) {
        return Err(InitError::Invalid(format!("workspace name {why}")));
    }
    // Kept as logins look it up (lower case, trimmed), or an owner typed with capitals could
    // never log in.
    let owner_email = keyward_core::validate::email(&opts.owner_email)
        .map_err(|_| InitError::Invalid(format!("{:?} is not an email address", opts.owner_email)))?;
    let now = clock.now();
    let token = keyformat::generate_management(&opts.prefix, rng);
    let start = keyformat::parse(&token)
        .map(|p| p.start.to_string())
        .ok_or_else(|| InitError::Invalid("generated key failed to parse".into()))?;
    let ws = NewWorkspace {
        id: ids::new_id("ws", now, rng),
        name: name.to_string(),
        prefix: opts.prefix.clone(),
        owner_id: ids::new_id("mem", now, rng),
        owner_email,
        created_at: now,
    };
    let mk = NewManagementKey {
        id: ids::new_id("mk", now, rng),
        hash: pepper.hash(&token),
        start,
        name: "first owner key".into(),
    };
    let added = if first { store.init_workspace(&ws, &mk).await } else { store.create_workspace(&ws, &mk).await };
    match added {
        Ok(()) => {
            Ok(InitOutcome { workspace_id: ws.id, member_id: ws.owner_id, management_key: token, prefix: ws.prefix })
        }
        Err(StoreError::AlreadyInitialised) => Err(InitError::AlreadyInitialised),
        Err(e) => Err(InitError::Store(e)),
    }
}
