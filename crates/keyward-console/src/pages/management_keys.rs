//! Management keys: the list (owners and admins see every member's, others their own),
//! minting one for yourself (shown once; with MFA it takes a fresh code), revoking.

use askama::Template;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use keyward_core::wire::governance::{ManagementKeyList, ManagementKeyView, NewManagementKeyView};
use serde_json::json;

use super::{back_to, reveal_once, Reveal};
use crate::backend::seg;
use crate::error::Fail;
use crate::form::Form;
use crate::session::Ctx;
use crate::view::{render, time, time_opt, Chrome};

pub(crate) struct Row {
    k: ManagementKeyView,
    created: String,
    expires: String,
    revoked: Option<String>,
    mine: bool,
}

#[derive(Template)]
#[template(path = "management_keys.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<Row>,
    mfa: bool,
}

pub(crate) async fn list(ctx: Ctx) -> Result<Response, Fail> {
    let page: ManagementKeyList = ctx.get("/v1/management-keys").await?;
    let rows = page
        .items
        .into_iter()
        .map(|k| Row {
            created: time(&k.created_at),
            expires: time_opt(&k.expires_at, "never"),
            revoked: k.revoked_at.as_ref().map(time),
            mine: k.member_id == ctx.me.id,
            k,
        })
        .collect();
    render(&ListPage { c: Chrome::new(&ctx, "management-keys"), rows, mfa: ctx.me.mfa_enabled })
}

pub(crate) async fn create(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let body = json!({ "name": form.opt("name"), "expires_in": form.opt("expires_in"), "otp": form.opt("otp") });
    let k: NewManagementKeyView = ctx.send(Method::POST, "/v1/members/me/keys", &body).await?;
    reveal_once(
        &ctx,
        &Reveal {
            title: format!("Management key “{}” created", k.name),
            what: "Management key".into(),
            lines: vec![k.management_key],
            note: format!(
                "It acts as you (role {}) until {}. Keep it in your secret store: it is shown only once.",
                k.role,
                time_opt(&k.expires_at, "it is revoked")
            ),
            next: "/console/management-keys".into(),
        },
    )
}

pub(crate) async fn revoke(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    ctx.call(Method::DELETE, &format!("/v1/management-keys/{}", seg(&id))).await?;
    Ok(back_to("/console/management-keys"))
}
