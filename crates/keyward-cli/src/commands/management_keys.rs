//! `keyward management-keys list|create|revoke`: the API's management keys (`GET
//! /v1/management-keys`, `POST /v1/members/me/keys`, `DELETE /v1/management-keys/{id}`).

use std::process::ExitCode;

use anyhow::Result;
use keyward_client::{ManagementKeyView, NewManagementKeyRequest};

use super::governance::print;
use crate::args::ManagementKeysCommand;
use crate::output;

fn rows(items: &[ManagementKeyView]) -> String {
    let t = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%MZ").to_string())
    };
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|k| {
            let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
            vec![k.id.clone(), k.name.clone(), k.email.clone(), format!("{}…", k.start), state.into(), t(k.expires_at)]
        })
        .collect();
    output::table(&["ID", "NAME", "MEMBER", "START", "STATE", "EXPIRES"], &rows)
}

pub async fn run(cmd: ManagementKeysCommand) -> Result<ExitCode> {
    match cmd {
        ManagementKeysCommand::List { remote } => {
            let list = super::client(&remote, true)?.list_management_keys().await?;
            print(&remote, &list, || rows(&list.items))?;
        }
        ManagementKeysCommand::Create { remote, name, expires_in, otp } => {
            let req = NewManagementKeyRequest { name, expires_in, otp };
            let k = super::client(&remote, true)?.create_management_key_with(&req).await?;
            print(&remote, &k, || {
                format!("Management key {} (role {}), shown once:\n\n  {}\n", k.id, k.role, k.management_key)
            })?;
        }
        ManagementKeysCommand::Revoke { remote, id } => {
            super::client(&remote, true)?.revoke_management_key(&id).await?;
            if remote.json {
                println!("{}", serde_json::json!({ "id": id, "revoked": true }));
            } else {
                println!("revoked {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
