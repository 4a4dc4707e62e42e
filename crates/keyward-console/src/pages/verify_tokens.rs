//! Verify tokens: what a verifying service sends as `Keyward-Verify-Token` so that only this
//! workspace's keys verify for it. The list, minting one (shown once), revoking.

use askama::Template;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use keyward_core::wire::keys::{VerifyTokenList, VerifyTokenView};
use serde_json::json;

use super::{back_to, reveal_once, Reveal};
use crate::backend::seg;
use crate::error::Fail;
use crate::form::Form;
use crate::session::Ctx;
use crate::view::{render, time, Chrome};

pub(crate) struct Row {
    t: VerifyTokenView,
    created: String,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "verify_tokens.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<Row>,
}

pub(crate) async fn list(ctx: Ctx) -> Result<Response, Fail> {
    let page: VerifyTokenList = ctx.get("/v1/verify-tokens").await?;
    let rows = page
        .items
        .into_iter()
        .map(|t| Row { created: time(&t.created_at), revoked: t.revoked_at.as_ref().map(time), t })
        .collect();
    render(&ListPage { c: Chrome::new(&ctx, "verify-tokens"), rows })
}

pub(crate) async fn create(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let t: VerifyTokenView = ctx.send(Method::POST, "/v1/verify-tokens", &json!({ "name": form.opt("name") })).await?;
    let token = t.token.ok_or_else(|| Fail::Internal("the API answered a new verify token without it".into()))?;
    reveal_once(
        &ctx,
        &Reveal {
            title: format!("Verify token “{}” created", t.name),
            what: "Verify token".into(),
            lines: vec![token],
            note: "Your verifying service sends it as the Keyward-Verify-Token header. It is shown only once.".into(),
            next: "/console/verify-tokens".into(),
        },
    )
}

pub(crate) async fn revoke(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    ctx.call(Method::DELETE, &format!("/v1/verify-tokens/{}", seg(&id))).await?;
    Ok(back_to("/console/verify-tokens"))
}
