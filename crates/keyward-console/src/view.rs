//! What every page's frame shows (who is signed in, the menu their role gets) and how
//! values read on a page: times, statuses as the seeds word them, rendered templates.

use askama::Template;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::error::Fail;
use crate::session::{Ctx, May};

/// The frame around a signed-in page.
pub(crate) struct Chrome {
    pub email: String,
    pub role: String,
    pub csrf: String,
    /// Which menu entry is this page.
    pub nav: &'static str,
    pub may: May,
    /// The header's environment switch: `test`, `live` or `""` (both), and where it returns.
    pub env: &'static str,
    pub here: String,
}

impl Chrome {
    pub(crate) fn new(ctx: &Ctx, nav: &'static str) -> Chrome {
        Chrome {
            email: ctx.me.email.clone(),
            role: ctx.me.role.to_string(),
            csrf: ctx.csrf.clone(),
            nav,
            may: ctx.may(),
            env: ctx.env,
            here: ctx.here.clone(),
        }
    }
}

pub(crate) fn render(t: &impl Template) -> Result<Response, Fail> {
    let html = t.render().map_err(|e| Fail::Internal(format!("rendering a page: {e}")))?;
    Ok(Html(html).into_response())
}

/// A page answer with a cookie set on it.
pub(crate) fn render_with_cookie(t: &impl Template, cookie: Option<String>) -> Result<Response, Fail> {
    let mut resp = render(t)?;
    if let Some(c) = cookie.and_then(|c| c.parse().ok()) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

pub(crate) fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub(crate) fn time_opt(t: &Option<DateTime<Utc>>, none: &str) -> String {
    t.as_ref().map_or_else(|| none.to_string(), time)
}

/// A key's status in the words of the seeds' portals.
pub(crate) fn status_label(status: &str) -> &'static str {
    match status {
        "active" => "Active",
        "revoked" => "Revoked",
        "expired" => "Expired",
        "pending_create" => "Pending approval (create)",
        "pending_update" => "Pending approval (update)",
        "pending_revoke" => "Pending approval (revoke)",
        "rejected" => "Rejected",
        _ => "Unknown",
    }
}

/// The badge's colour class; the label always says the status in words too.
pub(crate) fn status_tone(status: &str) -> &'static str {
    match status {
        "active" | "delivered" | "approved" => "ok",
        s if s.starts_with("pending") => "wait",
        "revoked" | "expired" | "rejected" | "failed" | "cancelled" => "bad",
        _ => "plain",
    }
}

/// A pretty-printed JSON value for a `<pre>`.
pub(crate) fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_statuses_read_as_the_seeds_say_them() {
        assert_eq!(status_label("pending_create"), "Pending approval (create)");
        assert_eq!(status_label("pending_update"), "Pending approval (update)");
        assert_eq!(status_label("pending_revoke"), "Pending approval (revoke)");
        assert_eq!(status_tone("pending_revoke"), "wait");
    }
}
