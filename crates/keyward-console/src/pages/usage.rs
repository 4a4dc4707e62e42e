//! The workspace's usage over the last 24 hours (chart, codes, busiest keys; in the header's
//! environment when one is chosen) and its alerts, which owners, admins and managers
//! acknowledge.

use askama::Template;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use keyward_core::wire::usage::{AlertList, AlertView, WorkspaceUsage};
use serde_json::{json, Value};

use super::back_to;
use crate::backend::{query, seg};
use crate::error::Fail;
use crate::form::Form;
use crate::session::Ctx;
use crate::view::{time, Chrome};

pub(crate) struct AlertRow {
    a: AlertView,
    created: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    c: Chrome,
    u: WorkspaceUsage,
    chart: String,
    by_code: Vec<(String, u64)>,
    alerts: Option<Vec<AlertRow>>,
}

pub(crate) async fn page(ctx: Ctx) -> Result<Response, Fail> {
    let u: WorkspaceUsage = ctx.get(&query("/v1/usage", &[("environment", ctx.env)])).await?;
    let alerts = if ctx.may().read_audit {
        let list: AlertList = ctx.get("/v1/alerts?limit=50").await?;
        Some(
            list.items
                .into_iter()
                .map(|a| AlertRow { created: time(&a.created_at), detail: a.detail.to_string(), a })
                .collect(),
        )
    } else {
        None
    };
    let chart = crate::chart::bars(&u.buckets, "Verifications in this workspace, last 24 hours");
    let by_code = u.by_code.iter().map(|(k, v)| (k.clone(), *v)).collect();
    crate::view::render(&UsagePage { c: Chrome::new(&ctx, "usage"), u, chart, by_code, alerts })
}

pub(crate) async fn acknowledge(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let _: Value = ctx.send(Method::POST, &format!("/v1/alerts/{}/acknowledge", seg(&id)), &json!({})).await?;
    Ok(back_to("/console/usage"))
}
