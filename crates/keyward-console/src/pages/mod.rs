//! One file per area of the console; each handler calls the API and renders a template.

pub(crate) mod account;
pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod keys;
pub(crate) mod members;
pub(crate) mod policies;
pub(crate) mod usage;
pub(crate) mod webhooks;

use askama::Template;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use crate::cookies;
use crate::error::Fail;
use crate::session::Ctx;
use crate::view::{render, Chrome};

/// A list page of the API.
#[derive(Deserialize)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

pub(crate) async fn home(headers: HeaderMap) -> Redirect {
    if cookies::cookie(&headers, cookies::SESSION).is_some() {
        Redirect::to("/console/keys")
    } else {
        Redirect::to("/console/login")
    }
}

pub(crate) async fn not_found() -> Fail {
    Fail::refusal(axum::http::StatusCode::NOT_FOUND, "not_found", "There is no such page in the console.")
}

/// Something shown once: a new key's secret, a webhook secret, a setup token, recovery
/// codes. It travels from the form's answer to the page that shows it in a cookie sealed
/// for this session alone (never in a URL, never stored by the server), and that page
/// clears it, so a reload shows it is gone.
#[derive(Serialize, Deserialize)]
pub(crate) struct Reveal {
    pub title: String,
    /// What the value is ("secret key").
    pub what: String,
    pub lines: Vec<String>,
    pub note: String,
    pub next: String,
}

/// Answers a form with a redirect to the one-time reveal of `r`.
pub(crate) fn reveal_once(ctx: &Ctx, r: &Reveal) -> Result<Response, Fail> {
    let body = serde_json::to_vec(r).map_err(|e| Fail::Internal(format!("encoding a reveal: {e}")))?;
    let sealed = ctx.seal(&body).ok_or_else(|| Fail::Internal("sealing a reveal failed".into()))?;
    let cookie = cookies::set_cookie(cookies::REVEAL, &sealed, ctx.con.secure, Some(300));
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/console/reveal")).into_response())
}

#[derive(Template)]
#[template(path = "reveal.html")]
struct RevealPage {
    c: Chrome,
    r: Option<Reveal>,
}

pub(crate) async fn reveal(ctx: Ctx, headers: HeaderMap) -> Result<Response, Fail> {
    let r = cookies::cookie(&headers, cookies::REVEAL)
        .and_then(|sealed| ctx.open(sealed))
        .and_then(|raw| serde_json::from_slice::<Reveal>(&raw).ok());
    let mut resp = render(&RevealPage { c: Chrome::new(&ctx, ""), r })?;
    if let Ok(v) = cookies::clear_cookie(cookies::REVEAL).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Where a form goes after it worked.
pub(crate) fn back_to(path: &str) -> Response {
    Redirect::to(path).into_response()
}
