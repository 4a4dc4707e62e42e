//! One file per area of the console; each handler calls the API and renders a template.

pub(crate) mod account;
pub(crate) mod approvals;
pub(crate) mod apps;
pub(crate) mod audit;
mod audit_changes;
pub(crate) mod environment;
pub(crate) mod identities;
pub(crate) mod key_detail;
mod key_fields;
pub(crate) mod keys;
pub(crate) mod management_keys;
pub(crate) mod members;
pub(crate) mod policies;
pub(crate) mod roles;
pub(crate) mod service_accounts;
pub(crate) mod sso;
pub(crate) mod usage;
pub(crate) mod verify_tokens;
pub(crate) mod webhooks;

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use crate::cookies;
use crate::error::Fail;
use crate::session::Ctx;
use crate::view::{render, Chrome};
use crate::Console;

/// A list page of the API.
#[derive(Deserialize)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

pub(crate) async fn home(State(con): State<Console>, headers: HeaderMap) -> Redirect {
    if cookies::cookie(&headers, cookies::SESSION, con.secure).is_some() {
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
/// clears it, so a reload shows it is gone. The sealed cookie also carries a one-time id
/// the server remembers as used once shown: a copy of the cookie replayed shows nothing.
#[derive(Serialize, Deserialize)]
pub(crate) struct Reveal {
    pub title: String,
    /// What the value is ("secret key").
    pub what: String,
    pub lines: Vec<String>,
    pub note: String,
    pub next: String,
}

/// How long a reveal waits to be shown.
const REVEAL_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// What the reveal cookie seals: the reveal and its one-time id.
#[derive(Serialize, Deserialize)]
struct Sealed<R> {
    once: String,
    reveal: R,
}

/// Answers a form with a redirect to the one-time reveal of `r`.
pub(crate) fn reveal_once(ctx: &Ctx, r: &Reveal) -> Result<Response, Fail> {
    let sealed = Sealed { once: ctx.con.secrets.one_time(REVEAL_TTL), reveal: r };
    let body = serde_json::to_vec(&sealed).map_err(|e| Fail::Internal(format!("encoding a reveal: {e}")))?;
    let sealed = ctx.seal(&body).ok_or_else(|| Fail::Internal("sealing a reveal failed".into()))?;
    let age = u32::try_from(REVEAL_TTL.as_secs()).unwrap_or(300);
    let cookie = cookies::set_cookie(cookies::REVEAL, &sealed, ctx.con.secure, Some(age));
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/console/reveal")).into_response())
}

#[derive(Template)]
#[template(path = "reveal.html")]
struct RevealPage {
    c: Chrome,
    r: Option<Reveal>,
}

pub(crate) async fn reveal(ctx: Ctx, headers: HeaderMap) -> Result<Response, Fail> {
    let r = cookies::cookie(&headers, cookies::REVEAL, ctx.con.secure)
        .and_then(|sealed| ctx.open(sealed))
        .and_then(|raw| serde_json::from_slice::<Sealed<Reveal>>(&raw).ok())
        .filter(|s| ctx.con.secrets.consume(&s.once))
        .map(|s| s.reveal);
    let mut resp = render(&RevealPage { c: Chrome::new(&ctx, ""), r })?;
    if let Ok(v) = cookies::clear_cookie(cookies::REVEAL, ctx.con.secure).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Where a form goes after it worked.
pub(crate) fn back_to(path: &str) -> Response {
    Redirect::to(path).into_response()
}
