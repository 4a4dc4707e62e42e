//! Roles: the list (member roles first, then the workspace's own), creating one, editing a
//! role's permissions and description, deleting one (with `force` when keys still hold it).

use askama::Template;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use keyward_core::wire::roles::{RoleList, RoleView};
use serde_json::{json, Map, Value};

use super::back_to;
use crate::backend::{query, seg};
use crate::error::Fail;
use crate::form::Form;
use crate::session::Ctx;
use crate::view::{render, time_opt, Chrome};

pub(crate) struct Row {
    r: RoleView,
    permissions: String,
    updated: String,
    href: String,
}

fn permissions_of(r: &RoleView) -> String {
    match &r.permissions {
        None => "everything its member role allows (not set)".into(),
        Some(p) if p.is_empty() => "none".into(),
        Some(p) => p.join(", "),
    }
}

#[derive(Template)]
#[template(path = "roles.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<Row>,
}

pub(crate) async fn list(ctx: Ctx) -> Result<Response, Fail> {
    let page: RoleList = ctx.get("/v1/roles").await?;
    let rows = page
        .items
        .into_iter()
        .map(|r| Row {
            permissions: permissions_of(&r),
            updated: time_opt(&r.updated_at, "—"),
            href: format!("/console/roles/{}", seg(&r.name)),
            r,
        })
        .collect();
    render(&ListPage { c: Chrome::new(&ctx, "roles"), rows })
}

pub(crate) async fn create(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let body = json!({
        "name": form.get("name"),
        "description": form.opt("description"),
        "permissions": form.list("permissions"),
    });
    let r: RoleView = ctx.send(Method::POST, "/v1/roles", &body).await?;
    Ok(back_to(&format!("/console/roles/{}", seg(&r.name))))
}

#[derive(Template)]
#[template(path = "role_edit.html")]
struct EditPage {
    c: Chrome,
    r: RoleView,
    /// The permissions, one a line, for the text area.
    lines: String,
    summary: String,
}

pub(crate) async fn edit_page(ctx: Ctx, Path(name): Path<String>) -> Result<Response, Fail> {
    let r: RoleView = ctx.get(&format!("/v1/roles/{}", seg(&name))).await?;
    let lines = r.permissions.as_deref().unwrap_or_default().join("\n");
    let summary = permissions_of(&r);
    render(&EditPage { c: Chrome::new(&ctx, "roles"), r, lines, summary })
}

pub(crate) async fn update(ctx: Ctx, Path(name): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let mut b = Map::new();
    b.insert("permissions".into(), json!(form.list("permissions")));
    b.insert("description".into(), json!(form.get("description")));
    let _: RoleView = ctx.send(Method::PATCH, &format!("/v1/roles/{}", seg(&name)), &Value::Object(b)).await?;
    Ok(back_to(&format!("/console/roles/{}", seg(&name))))
}

pub(crate) async fn delete(ctx: Ctx, Path(name): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let force = if form.checked("force") { "true" } else { "" };
    ctx.call(Method::DELETE, &query(&format!("/v1/roles/{}", seg(&name)), &[("force", force)])).await?;
    Ok(back_to("/console/roles"))
}
