//! `keyward audit list|export` over the API; `keyward audit verify|head` against the
//! database itself, with the pepper (the chain is keyed with it), so an operator can check
//! the log without trusting the server; `--signed` / `--anchor` take and check a signed head
//! kept away from the database.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::ExitCode;

use keyward_client::{AuditEvent, ChainCheck, ListAudit};
use keyward_core::audit_anchor::{Anchor, AnchorKey};
use keyward_core::pepper::Pepper;
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

/// The database with the pepper its audit chains are keyed with. Opening it completes an
/// upgrade from unkeyed chains, as `serve` does (migrations run on connect the same way).
async fn open_keyed(storage: &StorageArgs) -> Result<(Store, Pepper)> {
    let store = open(storage).await?;
    let Some(pepper) = datadir::load_pepper(&storage.data_dir)? else {
        bail!(
            "the audit chain is keyed with the pepper: put the pepper file in {} or set KEYWARD_PEPPER",
            storage.data_dir.display()
        )
    };
    store.key_audit(&pepper);
    for (ws, seq) in store.key_audit_chains(chrono::Utc::now()).await? {
        eprintln!("{ws}: the chain was unkeyed; switched to keyed hashes at seq {seq}");
    }
    Ok((store, pepper))
}

/// Checks `anchor` against its workspace's chain; `Err` says why the chain no longer holds it.
async fn check_anchor(store: &Store, pepper: &Pepper, anchor: &Anchor) -> Result<String, String> {
    let ws = &anchor.workspace_id;
    anchor.check(&AnchorKey::for_workspace(pepper, ws)).map_err(|e| e.to_string())?;
    let failed = |e: keyward_store::StoreError| e.to_string();
    if anchor.seq == 0 {
        return Ok("anchored an empty chain".into());
    }
    if let Some((cp, cp_hash)) = store.audit_checkpoint(ws).await.map_err(failed)? {
        if anchor.seq < cp || (anchor.seq == cp && cp_hash == anchor.hash) {
            // Retention deleted it, and a keyed audit.prune event (checked with the chain) says so.
            return Ok(format!(
                "the anchored seq {} was pruned by retention (the chain starts after seq {cp})",
                anchor.seq
            ));
        }
        if anchor.seq == cp {
            return Err(format!("the chain's checkpoint at seq {cp} does not have the anchored hash"));
        }
    }
    let (head, _) = store.audit_head(ws).await.map_err(failed)?;
    match store.audit_event(ws, anchor.seq).await.map_err(failed)? {
        None if head < anchor.seq => Err(format!(
            "the chain ends at seq {head}, before the anchored seq {}: events after it were deleted",
            anchor.seq
        )),
        None => Err(format!("the anchored event (seq {}) is missing from the chain", anchor.seq)),
        Some(e) if e.hash != anchor.hash => {
            Err(format!("the event at seq {} does not have the anchored hash: the chain was rewritten", anchor.seq))
        }
        Some(_) => Ok(format!("holds the anchored head (seq {})", anchor.seq)),
    }
}

fn read_anchor(path: &Path) -> Result<Anchor> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Anchor::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
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
        AuditCommand::Verify { storage, workspace, anchor } => {
            let anchor = anchor.as_deref().map(read_anchor).transpose()?;
            if let (Some(a), Some(w)) = (&anchor, &workspace) {
                if &a.workspace_id != w {
                    bail!("the anchor is of workspace {}, not {w}", a.workspace_id);
                }
            }
            let (store, pepper) = open_keyed(&storage).await?;
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
            if let Some(a) = &anchor {
                match check_anchor(&store, &pepper, a).await {
                    Ok(what) => println!("{}: anchor ok: {what}", a.workspace_id),
                    Err(why) => {
                        intact = false;
                        println!("{}: ANCHOR NOT HELD: {why}", a.workspace_id);
                    }
                }
            }
            return Ok(if intact { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        AuditCommand::Head { storage, workspace, signed: false } => {
            let store = open(&storage).await?;
            for ws in workspaces(&store, workspace).await? {
                let (seq, hash) = store.audit_head(&ws).await?;
                println!("{ws} {seq} {hash}");
            }
        }
        AuditCommand::Head { storage, workspace, signed: true } => {
            let (store, pepper) = open_keyed(&storage).await?;
            let ws = match workspaces(&store, workspace).await?.as_slice() {
                [one] => one.clone(),
                _ => bail!("--signed anchors one workspace's chain: name it with --workspace"),
            };
            let (seq, hash) = store.audit_head(&ws).await?;
            let time = store.audit_event(&ws, seq).await?.map(|e| e.time);
            let anchor =
                Anchor::sign(&AnchorKey::for_workspace(&pepper, &ws), &ws, seq, &hash, time, chrono::Utc::now());
            println!("{}", serde_json::to_string_pretty(&anchor)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
