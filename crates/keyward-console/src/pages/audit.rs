//! The audit log: filters (action, actor, target, time range), pages, NDJSON export; each
//! event's changes read as `field: old → new` (`audit_changes.rs`).

use askama::Template;
use axum::extract::Query;
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;
use keyward_core::audit::AuditEvent;
use serde::Deserialize;

use super::audit_changes::{changes_of, Change};
use super::Page;
use crate::backend::query;
use crate::error::Fail;
use crate::session::Ctx;
use crate::view::{time, Chrome};

#[derive(Deserialize, Default)]
pub(crate) struct Filter {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    cursor: String,
}

pub(crate) struct Row {
    seq: i64,
    time: String,
    actor: String,
    action: String,
    target: String,
    ip: String,
    changes: Vec<Change>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: Chrome,
    f: Filter,
    rows: Vec<Row>,
    next: Option<String>,
    export: String,
}

/// `2026-01-02` or a full RFC 3339 time, as the API wants it.
fn when(raw: &str, end_of_day: bool) -> String {
    match chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        Ok(d) => {
            let t = if end_of_day { d.and_hms_opt(23, 59, 59) } else { d.and_hms_opt(0, 0, 0) };
            t.map(|t| t.and_utc().to_rfc3339()).unwrap_or_default()
        }
        Err(_) => raw.to_string(),
    }
}

pub(crate) async fn list(ctx: Ctx, Query(f): Query<Filter>) -> Result<Response, Fail> {
    let (since, until) = (when(&f.since, false), when(&f.until, true));
    let path = query(
        "/v1/audit",
        &[
            ("action", &f.action),
            ("actor", &f.actor),
            ("target", &f.target),
            ("since", &since),
            ("until", &until),
            ("cursor", &f.cursor),
            ("limit", "50"),
        ],
    );
    let page: Page<AuditEvent> = ctx.get(&path).await?;
    let rows = page
        .items
        .iter()
        .map(|e| Row {
            seq: e.seq,
            time: time(&e.time),
            actor: e.actor.name.clone().or_else(|| e.actor.id.clone()).unwrap_or_else(|| e.actor.kind.clone()),
            action: e.action.clone(),
            target: [Some(e.target.kind.clone()), e.target.name.clone().or_else(|| e.target.id.clone())]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
            ip: e.ip.clone().unwrap_or_default(),
            changes: changes_of(&e.changes),
        })
        .collect();
    let keep = |cursor: &str| {
        query(
            "/console/audit",
            &[
                ("action", &f.action),
                ("actor", &f.actor),
                ("target", &f.target),
                ("since", &f.since),
                ("until", &f.until),
                ("cursor", cursor),
            ],
        )
    };
    let next = page.next_cursor.as_deref().map(keep);
    let export = query("/console/audit/export", &[("since", &f.since), ("until", &f.until)]);
    crate::view::render(&AuditPage { c: Chrome::new(&ctx, "audit"), f, rows, next, export })
}

/// Streams the API's NDJSON export as a download.
pub(crate) async fn export(ctx: Ctx, Query(f): Query<Filter>) -> Result<Response, Fail> {
    let path = query("/v1/audit/export", &[("since", &when(&f.since, false)), ("until", &when(&f.until, true))]);
    let mut resp = ctx.call(Method::GET, &path).await?;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    resp.headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"keyward-audit.ndjson\""));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_become_whole_days() {
        assert_eq!(super::when("2026-01-02", false), "2026-01-02T00:00:00+00:00");
        assert_eq!(super::when("2026-01-02", true), "2026-01-02T23:59:59+00:00");
        assert_eq!(super::when("2026-01-02T03:04:05Z", true), "2026-01-02T03:04:05Z");
    }
}
