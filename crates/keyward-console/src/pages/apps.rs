//! Apps (docs/APPS.md): the developer's **Apps** page (register one with an APP public key,
//! its keys, where it is installed, a new key, delete) and the organisation's **Installed
//! apps** page (install one after a consent screen listing what it asks for, uninstall).

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use keyward_core::wire::apps::{AppList, AppListing, AppView, InstallationList, InstallationView};
use serde::Deserialize;
use serde_json::json;

use super::back_to;
use crate::backend::seg;
use crate::error::Fail;
use crate::form::Form;
use crate::session::Ctx;
use crate::view::{render, time, Chrome};

pub(crate) struct AppRow {
    a: AppView,
    created: String,
    installations: Vec<InstallationView>,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    c: Chrome,
    rows: Vec<AppRow>,
}

pub(crate) async fn list(ctx: Ctx) -> Result<Response, Fail> {
    let page: AppList = ctx.get("/v1/apps").await?;
    let mut rows = Vec::with_capacity(page.items.len());
    for a in page.items {
        let inst: InstallationList = ctx.get(&format!("/v1/apps/{}/installations", seg(&a.id))).await?;
        rows.push(AppRow { created: time(&a.created_at), installations: inst.items, a });
    }
    render(&AppsPage { c: Chrome::new(&ctx, "apps"), rows })
}

pub(crate) async fn create(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let body = json!({
        "name": form.get("name"),
        "description": form.opt("description"),
        "public_key": form.get("public_key"),
        "algorithm": form.opt("algorithm"),
        "permissions": form.list("permissions"),
        "scopes": form.list("scopes"),
        "homepage_url": form.opt("homepage_url"),
    });
    let _: AppView = ctx.send(Method::POST, "/v1/apps", &body).await?;
    Ok(back_to("/console/apps"))
}

pub(crate) async fn rotate_key(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let body = json!({"public_key": form.get("public_key"), "algorithm": form.opt("algorithm"), "overlap": form.opt("overlap")});
    let _: AppView = ctx.send(Method::POST, &format!("/v1/apps/{}/keys", seg(&id)), &body).await?;
    Ok(back_to("/console/apps"))
}

pub(crate) async fn delete(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    ctx.call(Method::DELETE, &format!("/v1/apps/{}", seg(&id))).await?;
    Ok(back_to("/console/apps"))
}

pub(crate) struct InstalledRow {
    i: InstallationView,
    created: String,
}

#[derive(Template)]
#[template(path = "installed_apps.html")]
struct InstalledPage {
    c: Chrome,
    rows: Vec<InstalledRow>,
}

pub(crate) async fn installed(ctx: Ctx) -> Result<Response, Fail> {
    let page: InstallationList = ctx.get("/v1/installations").await?;
    let rows = page.items.into_iter().map(|i| InstalledRow { created: time(&i.created_at), i }).collect();
    render(&InstalledPage { c: Chrome::new(&ctx, "installed-apps"), rows })
}

#[derive(Deserialize)]
pub(crate) struct Asked {
    #[serde(default)]
    app_id: String,
}

#[derive(Template)]
#[template(path = "app_consent.html")]
struct ConsentPage {
    c: Chrome,
    app: AppListing,
}

/// What the app asks for, each ticked to grant (untick to grant less).
pub(crate) async fn consent(ctx: Ctx, Query(q): Query<Asked>) -> Result<Response, Fail> {
    let app: AppListing = ctx.get(&format!("/v1/apps/{}/listing", seg(q.app_id.trim()))).await?;
    render(&ConsentPage { c: Chrome::new(&ctx, "installed-apps"), app })
}

pub(crate) async fn install(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let body = json!({
        "app_id": form.get("app_id"),
        "permissions": form.all("permission"),
        "scopes": form.all("scope"),
        "environment": form.opt("environment"),
    });
    let _: InstallationView = ctx.send(Method::POST, "/v1/installations", &body).await?;
    Ok(back_to("/console/installed-apps"))
}

pub(crate) async fn uninstall(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    ctx.call(Method::DELETE, &format!("/v1/installations/{}", seg(&id))).await?;
    Ok(back_to("/console/installed-apps"))
}
