//! Service accounts: each with its role and its keys; creating one, disabling and enabling
//! (a disabled account's keys all answer `DISABLED`). Keys for an account are made with
//! `POST /v1/service-accounts/{id}/keys` (the CLI, the API).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use keyward_core::wire::keys::KeyList;
use keyward_core::wire::roles::{ServiceAccountList, ServiceAccountView};
use serde_json::json;

use super::back_to;
use crate::backend::{query, seg};
use crate::error::Fail;
use crate::form::Form;
use crate::session::Ctx;
use crate::view::{render, status_label, time, Chrome};

/// Keys read to find the accounts' keys: the key list has no owner filter, so the console
/// reads at most this many pages of 200 (a workspace with more says so on the page).
const KEY_PAGES: usize = 10;

pub(crate) struct KeyRow {
    id: String,
    name: String,
    start: String,
    status: &'static str,
}

pub(crate) struct Row {
    a: ServiceAccountView,
    created: String,
    keys: Vec<KeyRow>,
}

#[derive(Template)]
#[template(path = "service_accounts.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<Row>,
    /// Role names a new account may be given.
    roles: Vec<String>,
    /// The key list was longer than what was read.
    partial: bool,
}

pub(crate) async fn list(ctx: Ctx) -> Result<Response, Fail> {
    let accounts: ServiceAccountList = ctx.get("/v1/service-accounts").await?;
    let mut by_owner: BTreeMap<String, Vec<KeyRow>> = BTreeMap::new();
    let mut cursor = String::new();
    let mut partial = false;
    if !accounts.items.is_empty() {
        for n in 0..=KEY_PAGES {
            if n == KEY_PAGES {
                partial = true;
                break;
            }
            let page: KeyList = ctx.get(&query("/v1/keys", &[("limit", "200"), ("cursor", &cursor)])).await?;
            for k in page.items {
                if let Some(o) = k.owner.as_ref().filter(|o| o.kind == "service_account") {
                    by_owner.entry(o.id.clone()).or_default().push(KeyRow {
                        status: status_label(k.status.as_str()),
                        id: k.id,
                        name: k.name,
                        start: k.start,
                    });
                }
            }
            match page.next_cursor {
                Some(c) => cursor = c,
                None => break,
            }
        }
    }
    let rows = accounts
        .items
        .into_iter()
        .map(|a| Row { created: time(&a.created_at), keys: by_owner.remove(&a.id).unwrap_or_default(), a })
        .collect();
    let roles = if ctx.may().manage_roles {
        let r: keyward_core::wire::roles::RoleList = ctx.get("/v1/roles").await?;
        r.items.into_iter().map(|r| r.name).collect()
    } else {
        Vec::new()
    };
    render(&ListPage { c: Chrome::new(&ctx, "service-accounts"), rows, roles, partial })
}

pub(crate) async fn create(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let body = json!({ "name": form.get("name"), "role": form.get("role"), "description": form.opt("description") });
    let _: ServiceAccountView = ctx.send(Method::POST, "/v1/service-accounts", &body).await?;
    Ok(back_to("/console/service-accounts"))
}

pub(crate) async fn set_enabled(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let disabled = match form.get("enabled") {
        "true" => false,
        "false" => true,
        _ => return Err(Fail::invalid("enabled", "enabled must be true or false")),
    };
    let _: ServiceAccountView = ctx
        .send(Method::PATCH, &format!("/v1/service-accounts/{}", seg(&id)), &json!({ "disabled": disabled }))
        .await?;
    Ok(back_to("/console/service-accounts"))
}
