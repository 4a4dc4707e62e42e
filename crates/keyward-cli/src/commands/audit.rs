//! `keyward audit list|export` over the API; `keyward audit verify|head` against the
//! database itself, so an operator can check the log without trusting the server.

use anyhow::Result;
use std::process::ExitCode;

use keyward_client::{AuditEvent, ChainCheck, ListAudit};
use keyward_store::Store;

use crate::args::AuditCommand;
use crate::datadir::{self, StorageArgs};

fn line(e: &AuditEvent) -> String {
    let actor = e.actor.name.as_deref().or(e.actor.id.as_deref()).unwrap_or(&e.actor.kind);
    let target = e.target.name.as_deref().or(e.target.id.as_deref()).unwrap_or("-");
    format!(
        "{:>6}  {}  {:<24} {:<28} {} {}",
        e.seq,
        e.time.format("%Y-%m-%d %H:%M:%SZ"),
        e.action,
        actor,
        e.target.kind,
        target
    )
}

async fn open(storage: &StorageArgs) -> Result<Store> {
    Ok(Store::connect(&datadir::database_url(storage)?).await?)
}

async fn workspaces(store: &Store, only: Option<String>) -> Result<Vec<String>> {
    Ok(match only {
        Some(w) => vec![w],
        None => store.workspace_ids().await?,
    })
}

pub async fn run(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::List { remote, action, actor, target, since, limit, cursor } => {
            let c = super::client(&remote, true)?;
            let f = ListAudit { action, actor, target, since, until: None, limit, cursor };
            let page = c.list_audit(&f).await?;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                page.items.iter().for_each(|e| println!("{}", line(e)));
                if let Some(n) = page.next_cursor {
                    println!("\nmore: --cursor {n}");
                }
            }
        }
        AuditCommand::Export { remote, since, until } => {
            let c = super::client(&remote, true)?;
            print!("{}", c.export_audit(since.as_deref(), until.as_deref()).await?);
        }
        AuditCommand::Verify { storage, workspace } => {
            let store = open(&storage).await?;
            let mut intact = true;
            for ws in workspaces(&store, workspace).await? {
                match store.verify_audit(&ws).await? {
                    ChainCheck::Intact { events, head, .. } => println!("{ws}: intact, {events} events, head {head}"),
                    ChainCheck::Broken { broken_at, reason, .. } => {
                        intact = false;
                        println!("{ws}: BROKEN at seq {broken_at}: {reason}");
                    }
                }
            }
            return Ok(if intact { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        AuditCommand::Head { storage, workspace } => {
            let store = open(&storage).await?;
            for ws in workspaces(&store, workspace).await? {
                let (seq, hash) = store.audit_head(&ws).await?;
                println!("{ws} {seq} {hash}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
