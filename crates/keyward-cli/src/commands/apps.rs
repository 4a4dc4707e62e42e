//! `keyward apps create|list|delete|installations|install|installed|uninstall|token`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use keyward_client::token_source::TokenSource;
use keyward_client::{InstallationView, NewAppRequest, NewInstallationRequest};

use crate::args::{AppsCommand, Remote};
use crate::keypairs::{self, PairKind};

fn print<T: serde::Serialize>(remote: &Remote, v: &T, line: impl FnOnce() -> String) -> Result<()> {
    if remote.json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        println!("{}", line());
    }
    Ok(())
}

fn installation_line(i: &InstallationView) -> String {
    format!(
        "{}  {}  {} ({})  {}  permissions: {}  scopes: {}",
        i.id,
        i.status,
        i.app_name,
        i.app_id,
        i.workspace_id,
        i.permissions.join(","),
        i.scopes.join(",")
    )
}

pub async fn run(cmd: AppsCommand) -> Result<ExitCode> {
    match cmd {
        AppsCommand::Create { remote, env, config, name, description, permissions, scopes, homepage_url } => {
            let path = keypairs::config_path(config.as_deref())?;
            let (signer, _) = keypairs::load(&path, &env, PairKind::App)
                .with_context(|| format!("no APP pair: run `keyward keys generate --key-type APP --env {env}`"))?;
            let req = NewAppRequest {
                name,
                description,
                public_key: signer.public_key_hex().to_string(),
                algorithm: Some(signer.algorithm().as_str().to_string()),
                permissions,
                scopes,
                homepage_url,
            };
            let app = super::client(&remote, true)?.create_app(&req).await?;
            print(&remote, &app, || format!("{}  {}  {} {}", app.id, app.name, app.algorithm, app.public_key))?;
        }
        AppsCommand::List { remote } => {
            let list = super::client(&remote, true)?.list_apps().await?;
            print(&remote, &list, || {
                list.items
                    .iter()
                    .map(|a| format!("{}  {}  permissions: {}", a.id, a.name, a.permissions.join(",")))
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
        }
        AppsCommand::Delete { remote, id } => {
            let app = super::client(&remote, true)?.delete_app(&id).await?;
            print(&remote, &app, || format!("deleted {}", app.id))?;
        }
        AppsCommand::Installations { remote, id } => {
            let list = super::client(&remote, true)?.app_installations(&id).await?;
            print(&remote, &list, || list.items.iter().map(installation_line).collect::<Vec<_>>().join("\n"))?;
        }
        AppsCommand::Install { remote, app_id, permissions, scopes, environment } => {
            let req = NewInstallationRequest { app_id, permissions, scopes, environment };
            let i = super::client(&remote, true)?.install_app(&req).await?;
            print(&remote, &i, || installation_line(&i))?;
        }
        AppsCommand::Installed { remote } => {
            let list = super::client(&remote, true)?.list_installations().await?;
            print(&remote, &list, || list.items.iter().map(installation_line).collect::<Vec<_>>().join("\n"))?;
        }
        AppsCommand::Uninstall { remote, installation_id } => {
            let i = super::client(&remote, true)?.uninstall_app(&installation_id).await?;
            print(&remote, &i, || installation_line(&i))?;
        }
        AppsCommand::Token { server, env, config, app, installation, audience } => {
            let path = keypairs::config_path(config.as_deref())?;
            let (signer, _) = keypairs::load(&path, &env, PairKind::App)?;
            let mut source = TokenSource::new(&server, app, installation, signer.private_key().clone())?;
            if let Some(a) = audience {
                source = source.audience(a);
            }
            println!("{}", source.access_token().await?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
