//! Webhook endpoints: the list, adding one (its secret shown once), an endpoint's page with
//! its deliveries and their attempts; test, disable / enable, rotate the secret, delete,
//! retry a delivery.

use askama::Template;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use keyward_core::wire::webhooks::{DeliveryList, WebhookList, WebhookView};
use serde_json::{json, Value};

use super::{back_to, reveal_once, Reveal};
use crate::backend::seg;
use crate::error::Fail;
use crate::form::{split_list, Form};
use crate::session::Ctx;
use crate::view::{pretty, status_tone, time, time_opt, Chrome};

#[derive(Template)]
#[template(path = "webhooks.html")]
struct ListPage {
    c: Chrome,
    hooks: Vec<WebhookView>,
    manage: bool,
}

pub(crate) async fn list(ctx: Ctx) -> Result<Response, Fail> {
    let page: WebhookList = ctx.get("/v1/webhooks").await?;
    let manage = ctx.may().manage_policies;
    crate::view::render(&ListPage { c: Chrome::new(&ctx, "webhooks"), hooks: page.items, manage })
}

pub(crate) async fn create(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let mut events = split_list(form.get("events"));
    if events.is_empty() {
        events.push("*".into());
    }
    let body = json!({ "url": form.get("url"), "events": events, "description": form.opt("description") });
    let hook: WebhookView = ctx.send(Method::POST, "/v1/webhooks", &body).await?;
    secret_once(&ctx, hook, "Endpoint added")
}

fn secret_once(ctx: &Ctx, hook: WebhookView, title: &str) -> Result<Response, Fail> {
    let next = format!("/console/webhooks/{}", seg(&hook.id));
    let Some(secret) = hook.secret else { return Ok(back_to(&next)) };
    reveal_once(
        ctx,
        &Reveal {
            title: format!("{title}: {}", hook.url),
            what: "Signing secret".into(),
            lines: vec![secret],
            note: "Your receiver checks each delivery's webhook-signature with it (Standard Webhooks). It is shown only once.".into(),
            next,
        },
    )
}

pub(crate) struct DeliveryRow {
    id: String,
    kind: String,
    status: String,
    tone: &'static str,
    attempts: u32,
    last: String,
    created: String,
    next: String,
    payload: String,
    log: Vec<String>,
    retry: bool,
}

#[derive(Template)]
#[template(path = "webhook_detail.html")]
struct DetailPage {
    c: Chrome,
    w: WebhookView,
    created: String,
    deliveries: Vec<DeliveryRow>,
    manage: bool,
}

pub(crate) async fn detail(ctx: Ctx, Path(id): Path<String>) -> Result<Response, Fail> {
    let w: WebhookView = ctx.get(&format!("/v1/webhooks/{}", seg(&id))).await?;
    let list: DeliveryList = ctx.get(&format!("/v1/webhooks/{}/deliveries?limit=50", seg(&id))).await?;
    let manage = ctx.may().manage_policies;
    let deliveries = list
        .items
        .into_iter()
        .map(|d| DeliveryRow {
            tone: status_tone(&d.status),
            retry: manage && d.status != "pending",
            last: match (d.last_status, &d.last_error) {
                (Some(s), _) => s.to_string(),
                (None, Some(e)) => e.clone(),
                _ => String::new(),
            },
            created: time(&d.created_at),
            next: time_opt(&d.next_attempt_at, ""),
            payload: pretty(&d.payload),
            log: d
                .attempt_log
                .iter()
                .map(|a| {
                    let what = a.status.map(|s| s.to_string()).or_else(|| a.error.clone()).unwrap_or_default();
                    format!("{} — {what} in {} ms", time(&a.time), a.duration_ms)
                })
                .collect(),
            id: d.id,
            kind: d.kind,
            status: d.status,
            attempts: d.attempts,
        })
        .collect();
    let created = time(&w.created_at);
    crate::view::render(&DetailPage { c: Chrome::new(&ctx, "webhooks"), w, created, deliveries, manage })
}

pub(crate) async fn act(ctx: Ctx, Path((id, action)): Path<(String, String)>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let base = format!("/v1/webhooks/{}", seg(&id));
    let page = format!("/console/webhooks/{}", seg(&id));
    match action.as_str() {
        "test" => {
            let _: Value = ctx.send(Method::POST, &format!("{base}/test"), &json!({})).await?;
        }
        "enable" | "disable" => {
            let _: WebhookView = ctx.send(Method::PATCH, &base, &json!({ "disabled": action == "disable" })).await?;
        }
        "rotate-secret" => {
            let hook: WebhookView = ctx.send(Method::POST, &format!("{base}/rotate-secret"), &json!({})).await?;
            return secret_once(&ctx, hook, "Secret rotated");
        }
        "delete" => {
            ctx.call(Method::DELETE, &base).await?;
            return Ok(back_to("/console/webhooks"));
        }
        _ => return Err(Fail::invalid("action", "test, enable, disable, rotate-secret or delete")),
    }
    Ok(back_to(&page))
}

pub(crate) async fn retry(
    ctx: Ctx,
    Path((id, delivery)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let path = format!("/v1/webhooks/{}/deliveries/{}/retry", seg(&id), seg(&delivery));
    let _: Value = ctx.send(Method::POST, &path, &json!({})).await?;
    Ok(back_to(&format!("/console/webhooks/{}", seg(&id))))
}
