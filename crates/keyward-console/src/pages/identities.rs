//! Identities: a read-only list (external id, shared limits and credits), each linking to
//! its keys. Changes go through the API and the CLI (`keyward identities …`).

use askama::Template;
use axum::extract::Query;
use axum::response::Response;
use keyward_core::wire::identities::IdentityList;
use serde::Deserialize;

use crate::backend::query;
use crate::error::Fail;
use crate::session::Ctx;
use crate::view::{render, time, Chrome};

#[derive(Deserialize, Default)]
pub(crate) struct Filter {
    #[serde(default)]
    external_id: String,
    #[serde(default)]
    cursor: String,
}

pub(crate) struct Row {
    id: String,
    external_id: String,
    limits: String,
    credits: String,
    created: String,
    /// The key list filtered by this identity.
    keys: String,
}

#[derive(Template)]
#[template(path = "identities.html")]
struct ListPage {
    c: Chrome,
    f: Filter,
    rows: Vec<Row>,
    next: Option<String>,
}

pub(crate) async fn list(ctx: Ctx, Query(f): Query<Filter>) -> Result<Response, Fail> {
    let path = query("/v1/identities", &[("external_id", &f.external_id), ("cursor", &f.cursor), ("limit", "25")]);
    let page: IdentityList = ctx.get(&path).await?;
    let rows = page
        .items
        .iter()
        .map(|i| Row {
            id: i.id.clone(),
            external_id: i.external_id.clone(),
            limits: if i.ratelimits.is_empty() {
                "none".into()
            } else {
                i.ratelimits
                    .iter()
                    .map(|l| format!("{}: {} per {}", l.name, l.limit, l.duration))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            credits: i.credits.as_ref().map_or_else(|| "—".into(), |c| c.remaining.to_string()),
            created: time(&i.created_at),
            keys: query("/console/keys", &[("external_id", &i.external_id)]),
        })
        .collect();
    let next =
        page.next_cursor.map(|c| query("/console/identities", &[("external_id", &f.external_id), ("cursor", &c)]));
    render(&ListPage { c: Chrome::new(&ctx, "identities"), f, rows, next })
}
