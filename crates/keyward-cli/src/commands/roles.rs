//! `keyward roles …` and `keyward service-accounts …`.

use anyhow::Result;
use std::process::ExitCode;

use keyward_client::{
    CreateRoleRequest, CreateServiceAccountRequest, RoleView, ServiceAccountView, UpdateRoleRequest,
    UpdateServiceAccountRequest,
};

use super::governance::print;
use crate::args::{RolesCommand, ServiceAccountsCommand};
use crate::output;

fn role_line(r: &RoleView) -> String {
    let perms = match &r.permissions {
        Some(p) if p.is_empty() => "-".to_string(),
        Some(p) => p.join(","),
        None => "(not set)".to_string(),
    };
    let kind = if r.member_role { "member role" } else { "role" };
    let pending = r.approval_id.as_deref().map(|a| format!("  pending {a}")).unwrap_or_default();
    format!("{:<16} {:<12} keys {:<5} {perms}{pending}", r.name, kind, r.keys)
}

fn account_line(a: &ServiceAccountView) -> String {
    let state = if a.disabled { "disabled" } else { "active" };
    format!("{}  {:<20} role {:<12} {state:<8} keys {}", a.id, a.name, a.role, a.keys)
}

pub async fn roles(cmd: RolesCommand) -> Result<ExitCode> {
    match cmd {
        RolesCommand::List { remote } => {
            let list = super::client(&remote, true)?.list_roles().await?;
            print(&remote, &list, || list.items.iter().map(role_line).collect::<Vec<_>>().join("\n"))?;
        }
        RolesCommand::Show { remote, name } => {
            let r = super::client(&remote, true)?.get_role(&name).await?;
            print(&remote, &r, || role_line(&r))?;
        }
        RolesCommand::Create { remote, name, permissions, description } => {
            let req = CreateRoleRequest { name, description, permissions };
            let r = super::client(&remote, true)?.create_role(&req).await?;
            print(&remote, &r, || role_line(&r))?;
        }
        RolesCommand::Update { remote, name, permissions, description } => {
            let req = UpdateRoleRequest { description, permissions };
            let r = super::client(&remote, true)?.update_role(&name, &req).await?;
            print(&remote, &r, || match &r.approval_id {
                Some(a) => format!("{}\nthe change waits on approval request {a}", role_line(&r)),
                None => role_line(&r),
            })?;
        }
        RolesCommand::Delete { remote, name, force } => {
            super::client(&remote, true)?.delete_role(&name, force).await?;
            if !remote.json {
                println!("deleted role {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn service_accounts(cmd: ServiceAccountsCommand) -> Result<ExitCode> {
    use ServiceAccountsCommand as S;
    let set = |disabled| UpdateServiceAccountRequest { disabled: Some(disabled), ..Default::default() };
    match cmd {
        S::List { remote } => {
            let list = super::client(&remote, true)?.list_service_accounts().await?;
            print(&remote, &list, || list.items.iter().map(account_line).collect::<Vec<_>>().join("\n"))?;
        }
        S::Show { remote, id } => {
            let a = super::client(&remote, true)?.get_service_account(&id).await?;
            print(&remote, &a, || account_line(&a))?;
        }
        S::Create { remote, name, role, description } => {
            let req = CreateServiceAccountRequest { name, role, description };
            let a = super::client(&remote, true)?.create_service_account(&req).await?;
            print(&remote, &a, || account_line(&a))?;
        }
        S::Update { remote, id, name, role, description } => {
            let req = UpdateServiceAccountRequest { name, role, description, disabled: None };
            let a = super::client(&remote, true)?.update_service_account(&id, &req).await?;
            print(&remote, &a, || account_line(&a))?;
        }
        S::Disable { remote, id } => {
            let a = super::client(&remote, true)?.update_service_account(&id, &set(true)).await?;
            print(&remote, &a, || account_line(&a))?;
        }
        S::Enable { remote, id } => {
            let a = super::client(&remote, true)?.update_service_account(&id, &set(false)).await?;
            print(&remote, &a, || account_line(&a))?;
        }
        S::Delete { remote, id } => {
            super::client(&remote, true)?.delete_service_account(&id).await?;
            if !remote.json {
                println!("deleted service account {id}; its keys are revoked");
            }
        }
        S::CreateKey { remote, id, fields, environment, expires_in } => {
            let req = super::keys::create_request(&fields, Some(environment), None, expires_in)?;
            let k = super::client(&remote, true)?.create_service_account_key(&id, &req, None).await?;
            output::print_key(remote.json, &k)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
