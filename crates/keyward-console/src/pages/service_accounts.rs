//! Service accounts: each with its role and its newest keys (one bounded read of the keys
//! service accounts own, in the header's environment; each account links to all of its
//! keys); creating one, disabling and enabling (a disabled account's keys all answer
//! `DISABLED`). Keys for an account are made with `POST /v1/service-accounts/{id}/keys`
//! (the CLI, the API).

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

/// The service accounts' keys read for the page, newest first: one page of the key list.
const KEYS_SHOWN: &str = "200";

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
    /// The key list filtered by this account.
    all_keys: String,
}

#[derive(Template)]
#[template(path = "service_accounts.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<Row>,
    /// Role names a new account may be given.
    roles: Vec<String>,
    /// More service account keys exist than were read: each account's link lists them all.
    partial: bool,
}

pub(crate) async fn list(ctx: Ctx) -> Result<Response, Fail> {
    let accounts: ServiceAccountList = ctx.get("/v1/service-accounts").await?;
    let mut by_owner: BTreeMap<String, Vec<KeyRow>> = BTreeMap::new();
    let mut partial = false;
    if !accounts.items.is_empty() {
        let path =
            query("/v1/keys", &[("owner_type", "service_account"), ("environment", ctx.env), ("limit", KEYS_SHOWN)]);
        let page: KeyList = ctx.get(&path).await?;
        partial = page.next_cursor.is_some();
        for k in page.items {
            if let Some(o) = k.owner.as_ref() {
                by_owner.entry(o.id.clone()).or_default().push(KeyRow {
                    status: status_label(k.status.as_str()),
                    id: k.id,
                    name: k.name,
                    start: k.start,
                });
            }
        }
    }
    let rows = accounts
        .items
        .into_iter()
        .map(|a| Row {
            created: time(&a.created_at),
            keys: by_owner.remove(&a.id).unwrap_or_default(),
            all_keys: query("/console/keys", &[("owner", &a.id)]),
            a,
        })
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
