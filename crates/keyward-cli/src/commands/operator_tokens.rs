//! `keyward operator-tokens create|list|revoke`: the operators' credentials, managed on the
//! database itself (like `init` and `workspaces create`), so whoever holds the data dir or
//! the database URL and the pepper is the one who makes operators.

use anyhow::{bail, Result};
use serde_json::json;
use std::process::ExitCode;

use keyward_core::{OsRandom, SystemClock};
use keyward_store::{OperatorToken, Store};

use crate::args::{OperatorTokensCommand, StorageArgs};
use crate::{datadir, output};

pub async fn run(c: OperatorTokensCommand) -> Result<ExitCode> {
    match c {
        OperatorTokensCommand::Create { storage, name, json } => {
            let store = open(&storage).await?;
            let pepper = datadir::require_pepper(&storage.data_dir)?;
            let made =
                keyward_server::bootstrap::create_operator_token(&store, &pepper, &SystemClock, &OsRandom, &name).await;
            store.close().await;
            let (t, secret) = made?;
            if json {
                println!("{}", json!({"id": t.id, "name": t.name, "start": t.start, "token": secret}));
            } else {
                println!("Created operator token {} ({}).", t.id, t.name);
                println!("Operator token (shown once, store it now):\n\n  {secret}\n");
            }
        }
        OperatorTokensCommand::List { storage, json } => {
            let store = open(&storage).await?;
            let tokens = store.list_operator_tokens().await;
            store.close().await;
            let tokens = tokens?;
            if json {
                let items: Vec<_> = tokens.iter().map(listed).collect();
                println!("{}", serde_json::to_string_pretty(&json!({"items": items}))?);
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        let status = if t.revoked_at.is_some() { "revoked" } else { "active" };
                        vec![t.id.clone(), t.name.clone(), t.start.clone(), status.into(), t.created_at.to_rfc3339()]
                    })
                    .collect();
                println!("{}", output::table(&["ID", "NAME", "START", "STATUS", "CREATED"], &rows));
            }
        }
        OperatorTokensCommand::Revoke { storage, id, json } => {
            let store = open(&storage).await?;
            let revoked = keyward_server::bootstrap::revoke_operator_token(&store, &SystemClock, &OsRandom, &id).await;
            store.close().await;
            let Some(t) = revoked? else { bail!("no live operator token with id {id:?}") };
            if json {
                println!("{}", serde_json::to_string_pretty(&listed(&t))?);
            } else {
                println!("Revoked operator token {} ({}).", t.id, t.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An initialised database: operator tokens sit above its workspaces.
async fn open(storage: &StorageArgs) -> Result<Store> {
    let store = Store::connect(&datadir::database_url(storage)?).await?;
    if !store.is_initialised().await? {
        store.close().await;
        bail!("{} is not initialised: run `keyward init` first", super::init::where_(storage));
    }
    Ok(store)
}

fn listed(t: &OperatorToken) -> serde_json::Value {
    json!({"id": t.id, "name": t.name, "start": t.start, "created_at": t.created_at, "revoked_at": t.revoked_at})
}
