//! `keyward verify-tokens list|create|revoke`: tokens that bind verification to the
//! workspace (`/v1/verify-tokens`).

use std::process::ExitCode;

use anyhow::Result;
use keyward_client::{NewVerifyTokenRequest, VerifyTokenView};

use super::governance::print;
use crate::args::VerifyTokensCommand;
use crate::output;

fn rows(items: &[VerifyTokenView]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|t| {
            let state = t
                .revoked_at
                .map_or_else(|| "active".to_string(), |r| format!("revoked {}", r.format("%Y-%m-%d %H:%MZ")));
            vec![
                t.id.clone(),
                t.name.clone(),
                format!("{}…", t.start),
                state,
                t.created_at.format("%Y-%m-%d %H:%MZ").to_string(),
            ]
        })
        .collect();
    output::table(&["ID", "NAME", "START", "STATE", "CREATED"], &rows)
}

pub async fn run(cmd: VerifyTokensCommand) -> Result<ExitCode> {
    match cmd {
        VerifyTokensCommand::List { remote } => {
            let list = super::client(&remote, true)?.list_verify_tokens().await?;
            print(&remote, &list, || rows(&list.items))?;
        }
        VerifyTokensCommand::Create { remote, name } => {
            let t = super::client(&remote, true)?.create_verify_token(&NewVerifyTokenRequest { name }).await?;
            print(&remote, &t, || {
                format!(
                    "Verify token {} for workspace {}, shown once:\n\n  {}\n",
                    t.id,
                    t.workspace_id,
                    t.token.as_deref().unwrap_or("")
                )
            })?;
        }
        VerifyTokensCommand::Revoke { remote, id } => {
            let t = super::client(&remote, true)?.revoke_verify_token(&id).await?;
            print(&remote, &t, || format!("revoked {}", t.id))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
