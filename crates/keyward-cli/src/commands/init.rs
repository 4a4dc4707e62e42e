use anyhow::{bail, Result};
use serde_json::json;
use std::process::ExitCode;

use keyward_core::{OsRandom, SystemClock};
use keyward_server::bootstrap::{initialise, InitError, InitOptions};
use keyward_store::Store;

use crate::args::{InitArgs, StorageArgs};
use crate::datadir;

pub async fn run(a: InitArgs) -> Result<ExitCode> {
    let url = datadir::database_url(&a.storage)?;
    let store = Store::connect(&url).await?;
    // Check before touching the pepper file: a refused init changes nothing.
    if store.is_initialised().await? {
        bail!("{} is already initialised; nothing was changed", where_(&a.storage));
    }
    let pepper = datadir::load_or_create_pepper(&a.storage.data_dir)?;
    let opts = InitOptions { workspace_name: a.workspace, prefix: a.prefix, owner_email: a.owner_email };
    let out = match initialise(&store, &pepper, &SystemClock, &OsRandom, &opts).await {
        Ok(o) => o,
        Err(InitError::AlreadyInitialised) => {
            bail!("{} is already initialised; nothing was changed", where_(&a.storage))
        }
        Err(e) => return Err(e.into()),
    };
    store.close().await;
    if a.json {
        println!(
            "{}",
            json!({
                "workspace_id": out.workspace_id,
                "member_id": out.member_id,
                "management_key": out.management_key,
                "prefix": out.prefix,
                "operator_token": out.operator_token,
            })
        );
    } else {
        println!("Initialised workspace {} in {}.", out.workspace_id, where_(&a.storage));
        println!("Owner management key (shown once, store it now):\n\n  {}\n", out.management_key);
        if let Some(op) = &out.operator_token {
            println!("Operator token (shown once; manages workspaces, docs/OPERATORS.md):\n\n  {op}\n");
        }
        println!("Next: keyward serve, then keyward login --server http://127.0.0.1:5399 --token <key>");
        println!("{}", first_login(&opts.owner_email, None));
    }
    Ok(ExitCode::SUCCESS)
}

/// `keyward workspaces create`: another tenant in an existing (or new) data dir or database.
pub async fn create_workspace(storage: StorageArgs, opts: InitOptions, json_out: bool) -> Result<ExitCode> {
    let url = datadir::database_url(&storage)?;
    let store = Store::connect(&url).await?;
    // The pepper of an initialised database must be the one its keys were hashed with.
    let pepper = if store.is_initialised().await? {
        datadir::require_pepper(&storage.data_dir)?
    } else {
        datadir::load_or_create_pepper(&storage.data_dir)?
    };
    let out = keyward_server::bootstrap::create_workspace(&store, &pepper, &SystemClock, &OsRandom, &opts).await?;
    store.close().await;
    if json_out {
        println!(
            "{}",
            json!({"workspace_id": out.workspace_id, "member_id": out.member_id,
                   "management_key": out.management_key, "prefix": out.prefix})
        );
    } else {
        println!("Created workspace {} in {}.", out.workspace_id, where_(&storage));
        println!("Owner management key (shown once, store it now):\n\n  {}\n", out.management_key);
    }
    Ok(ExitCode::SUCCESS)
}

/// How the owner reaches the console the first time: its URL and the email to sign in with,
/// after setting a password. `server` is the address `serve` bound (`http://host:port`);
/// `init`, which serves nothing, names the default one.
pub fn first_login(owner_email: &str, server: Option<&str>) -> String {
    let email = keyward_core::validate::email(owner_email).unwrap_or_else(|_| owner_email.to_string());
    let (server, default) = match server {
        Some(s) => (s, ""),
        None => ("http://127.0.0.1:5399", " (by default)"),
    };
    format!(
        "Console: {server}/console{default} — sign in as {email} after setting a password: \
         keyward login --server {server} --token <key>, then keyward members password"
    )
}

pub fn where_(s: &crate::args::StorageArgs) -> String {
    match &s.database_url {
        Some(_) => "the database".into(),
        None => s.data_dir.display().to_string(),
    }
}
