//! Members: the list, invitations (the setup token shown once), role changes, removal.

use askama::Template;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use keyward_core::roles::{Role, ALL_ROLES};
use keyward_core::wire::governance::{Invitation, MemberList, MemberView};
use serde_json::json;

use super::{back_to, reveal_once, Reveal};
use crate::backend::seg;
use crate::error::Fail;
use crate::form::Form;
use crate::session::Ctx;
use crate::view::{time, Chrome};

pub(crate) struct Row {
    m: MemberView,
    joined: String,
    /// Roles this member may be given by the signed-in member.
    roles: Vec<(&'static str, bool)>,
    me: bool,
}

#[derive(Template)]
#[template(path = "members.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<Row>,
    grantable: Vec<&'static str>,
}

fn grantable(mine: Role) -> Vec<&'static str> {
    ALL_ROLES.into_iter().filter(|r| mine.may_grant(*r)).map(Role::as_str).collect()
}

pub(crate) async fn list(ctx: Ctx) -> Result<Response, Fail> {
    let page: MemberList = ctx.get("/v1/members?limit=200").await?;
    let mine = ctx.me.role;
    let rows = page
        .items
        .into_iter()
        .map(|m| Row {
            joined: time(&m.created_at),
            roles: grantable(mine).into_iter().map(|r| (r, r == m.role.as_str())).collect(),
            me: m.id == ctx.me.id,
            m,
        })
        .collect();
    crate::view::render(&ListPage { c: Chrome::new(&ctx, "members"), rows, grantable: grantable(mine) })
}

pub(crate) async fn invite(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let body = json!({ "email": form.get("email"), "role": form.get("role") });
    let inv: Invitation = ctx.send(Method::POST, "/v1/members", &body).await?;
    let pending = inv.member.approval_id.is_some();
    reveal_once(
        &ctx,
        &Reveal {
            title: format!("{} invited as {}", inv.member.email, inv.member.role),
            what: "Setup token".into(),
            lines: vec![inv.setup_token],
            note: format!(
                "Give it to {} privately. They open /console/setup, paste it and choose a password before {}.{}",
                inv.member.email,
                time(&inv.setup_expires_at),
                if pending { " The invitation waits for approval first." } else { "" }
            ),
            next: "/console/members".into(),
        },
    )
}

pub(crate) async fn change_role(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let _: MemberView =
        ctx.send(Method::PATCH, &format!("/v1/members/{}", seg(&id)), &json!({ "role": form.get("role") })).await?;
    Ok(back_to("/console/members"))
}

pub(crate) async fn remove(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    ctx.call(Method::DELETE, &format!("/v1/members/{}", seg(&id))).await?;
    Ok(back_to("/console/members"))
}
