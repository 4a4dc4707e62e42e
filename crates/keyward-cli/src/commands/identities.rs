//! `keyward identities create|list|get|update|delete`.

use std::process::ExitCode;

use anyhow::Result;
use keyward_client::{CreateIdentityRequest, IdentityView, ListIdentities, UpdateIdentityRequest};

use crate::args::{IdentitiesCommand, IdentityFields, Remote};
use crate::commands::keys::{credits_of, meta, ratelimits};
use crate::output;

fn show(remote: &Remote, i: &IdentityView) -> Result<()> {
    if remote.json {
        println!("{}", serde_json::to_string_pretty(i)?);
    } else {
        println!("{}", output::identity_rows(std::slice::from_ref(i)));
    }
    Ok(())
}

fn credits(f: &IdentityFields) -> Result<Option<keyward_core::wire::keys::CreditsSpec>> {
    credits_of(f.credits, f.refill.as_deref())
}

pub async fn run(cmd: IdentitiesCommand) -> Result<ExitCode> {
    match cmd {
        IdentitiesCommand::Create { remote, external_id, fields } => {
            let req = CreateIdentityRequest {
                external_id,
                meta: meta(&fields.meta)?,
                ratelimits: ratelimits(&fields.ratelimits)?,
                credits: credits(&fields)?,
            };
            let i = super::client(&remote, true)?.create_identity(&req).await?;
            show(&remote, &i)?;
        }
        IdentitiesCommand::List { remote, external_id, limit, cursor } => {
            let page =
                super::client(&remote, true)?.list_identities(&ListIdentities { external_id, limit, cursor }).await?;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                println!("{}", output::identity_rows(&page.items));
                if let Some(n) = page.next_cursor {
                    println!("\nmore: --cursor {n}");
                }
            }
        }
        IdentitiesCommand::Get { remote, id } => {
            let i = super::client(&remote, true)?.get_identity(&id).await?;
            show(&remote, &i)?;
        }
        IdentitiesCommand::Update { remote, id, fields, no_credits } => {
            let req = UpdateIdentityRequest {
                meta: meta(&fields.meta)?,
                ratelimits: ratelimits(&fields.ratelimits)?,
                credits: if no_credits { Some(None) } else { credits(&fields)?.map(Some) },
            };
            let i = super::client(&remote, true)?.update_identity(&id, &req).await?;
            show(&remote, &i)?;
        }
        IdentitiesCommand::Delete { remote, id } => {
            let i = super::client(&remote, true)?.delete_identity(&id).await?;
            show(&remote, &i)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
