//! The header's test/live switch: which environment's keys and usage the pages show,
//! remembered in a cookie (`kw_env`) until switched again. Like Stripe's, it filters what is
//! shown; it changes nothing on the server.

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

use crate::cookies::{clear_cookie, set_cookie, ENV};
use crate::error::Fail;
use crate::form::Form;
use crate::session::Ctx;

/// How long the switch is remembered (a year).
const REMEMBERED: u32 = 365 * 24 * 3600;

/// Where the switch may send the browser back to: a console page, in characters that need no
/// escaping in a `Location` header (never another site).
fn back_to(next: &str) -> &str {
    let safe = next.starts_with("/console/")
        && !next.contains("//")
        && next.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-.~?=&%+:".contains(&b));
    if safe {
        next
    } else {
        "/console/keys"
    }
}

pub(crate) async fn switch(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let secure = ctx.con.secure;
    let cookie = match form.get("environment") {
        e @ ("test" | "live") => set_cookie(ENV, e, secure, Some(REMEMBERED)),
        "all" => clear_cookie(ENV, secure),
        _ => return Err(Fail::invalid("environment", "environment must be test, live or all")),
    };
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(back_to(form.get("next")))).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_switch_returns_only_to_console_pages() {
        assert_eq!(
            super::back_to("/console/keys?status=active&cursor=key_01"),
            "/console/keys?status=active&cursor=key_01"
        );
        for bad in
            ["https://evil.example/", "//evil.example/console/", "/console//evil", "/console/a\r\nX: y", "/v1/keys", ""]
        {
            assert_eq!(super::back_to(bad), "/console/keys", "{bad:?}");
        }
    }
}
