//! `keyward init`: the first workspace, its owner, the owner's management key and the first
//! operator token; `keyward workspaces create` and `keyward operator-tokens create` (on the
//! database, like `init`).

use keyward_core::operator_action::OperatorAction;
use keyward_core::pepper::Pepper;
use keyward_core::wire::keys::InitOutcome;
use keyward_core::{ids, keyformat, Clock, Random};
use keyward_store::{NewManagementKey, NewOperatorToken, NewWorkspace, OperatorRecord, Store, StoreError};

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
    keyward_core::validate::prefix(&opts.prefix).map_err(|e| InitError::Invalid(e.to_string()))?;
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
    let added = if first {
        let (op, secret) = new_operator_token("first operator token", now, pepper, rng)?;
        let rec = OperatorRecord::by_cli(ids::new_id("opl", now, rng), OperatorAction::OperatorTokenCreate)
            .with_changes(serde_json::json!({"token_id": op.id, "name": op.name, "start": op.start}));
        store.init_workspace(&ws, &mk, &op, &rec).await.map(|()| Some(secret))
    } else {
        store.create_workspace(&ws, &mk).await.map(|()| None)
    };
    match added {
        Ok(operator_token) => Ok(InitOutcome {
            workspace_id: ws.id,
            member_id: ws.owner_id,
            management_key: token,
            prefix: ws.prefix,
            operator_token,
        }),
        Err(StoreError::AlreadyInitialised) => Err(InitError::AlreadyInitialised),
        Err(e) => Err(InitError::Store(e)),
    }
}

/// A new operator token: its record (the HMAC, never the secret) and the secret, shown once.
fn new_operator_token(
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
    pepper: &Pepper,
    rng: &dyn Random,
) -> Result<(NewOperatorToken, String), InitError> {
    let secret = keyformat::generate_operator_token(rng);
    let start = keyformat::parse(&secret)
        .map(|p| p.start.to_string())
        .ok_or_else(|| InitError::Invalid("generated operator token failed to parse".into()))?;
    let t = NewOperatorToken {
        id: ids::new_id("op", now, rng),
        name: name.to_string(),
        hash: pepper.hash(&secret),
        start,
        created_at: now,
    };
    Ok((t, secret))
}

/// `keyward operator-tokens create`: one more operator token, on the database; the secret
/// is returned once.
pub async fn create_operator_token(
    store: &Store,
    pepper: &Pepper,
    clock: &dyn Clock,
    rng: &dyn Random,
    name: &str,
) -> Result<(keyward_store::OperatorToken, String), InitError> {
    let name = keyward_core::validate::name(name).map_err(|e| InitError::Invalid(e.to_string()))?;
    let now = clock.now();
    let (t, secret) = new_operator_token(&name, now, pepper, rng)?;
    let rec = OperatorRecord::by_cli(ids::new_id("opl", now, rng), OperatorAction::OperatorTokenCreate)
        .with_changes(serde_json::json!({"token_id": t.id, "name": t.name, "start": t.start}));
    store.create_operator_token(&t, &rec).await.map_err(InitError::Store)?;
    let listed = keyward_store::OperatorToken {
        id: t.id,
        name: t.name,
        start: t.start,
        created_at: t.created_at,
        revoked_at: None,
    };
    Ok((listed, secret))
}

/// `keyward operator-tokens revoke`: `None` when there is no live token with this id.
pub async fn revoke_operator_token(
    store: &Store,
    clock: &dyn Clock,
    rng: &dyn Random,
    id: &str,
) -> Result<Option<keyward_store::OperatorToken>, InitError> {
    let now = clock.now();
    let rec = OperatorRecord::by_cli(ids::new_id("opl", now, rng), OperatorAction::OperatorTokenRevoke)
        .with_changes(serde_json::json!({"token_id": id}));
    store.revoke_operator_token(id, now, &rec).await.map_err(InitError::Store)
}
