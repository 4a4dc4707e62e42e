//! Signing in and out, an invited member's setup, and one's own account: password, MFA
//! enrolment (QR code drawn on the server, recovery codes shown once), log out everywhere.

use askama::Template;
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::wire::governance::{RecoveryCodes, SessionView, TotpEnrolment};
use serde_json::json;

use super::{back_to, reveal_once, Reveal};
use crate::cookies;
use crate::error::Fail;
use crate::form::Form;
use crate::session::{Anon, Ctx};
use crate::view::{render, render_with_cookie, Chrome};

/// The sign-in page: the password form (and the single sign-on button when it is
/// configured), or single sign-on's second step — the workspace, the one-time code — once
/// the provider verified `sso_email`.
#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    pub csrf: String,
    pub email: String,
    pub workspace_id: String,
    pub ask_otp: bool,
    pub error: Option<String>,
    pub notice: Option<&'static str>,
    /// Offer "Sign in with SSO".
    pub sso: bool,
    pub sso_email: Option<String>,
    pub ask_workspace: bool,
}

impl LoginPage {
    /// The password form, with `error` over it.
    pub(crate) fn new(anon: &Anon, error: Option<String>) -> LoginPage {
        LoginPage {
            csrf: anon.csrf(),
            email: String::new(),
            workspace_id: String::new(),
            ask_otp: false,
            error,
            notice: None,
            sso: anon.con.sso.is_some(),
            sso_email: None,
            ask_workspace: false,
        }
    }
}

pub(crate) async fn login_page(anon: Anon, headers: HeaderMap) -> Result<Response, Fail> {
    // Already signed in: straight to the keys.
    if cookies::cookie(&headers, cookies::SESSION, anon.secure()).is_some() {
        return Ok(Redirect::to("/console/keys").into_response());
    }
    render_with_cookie(&LoginPage::new(&anon, None), anon.pre_cookie())
}

pub(crate) async fn login(anon: Anon, form: Form) -> Result<Response, Fail> {
    anon.check(&form)?;
    let mut body = json!({ "email": form.get("email"), "password": form.get("password") });
    if let Some(otp) = form.opt("otp") {
        body["otp"] = json!(otp);
    }
    if let Some(ws) = form.opt("workspace_id") {
        body["workspace_id"] = json!(ws);
    }
    let answer: Result<SessionView, Fail> = anon.con.send(&anon.meta, None, Method::POST, "/v1/sessions", &body).await;
    match answer {
        Ok(s) => {
            let cookie = cookies::set_cookie(cookies::SESSION, &s.token, anon.secure(), None);
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/console/keys")).into_response())
        }
        Err(e @ Fail::Api { .. }) => {
            let mfa = e.is_code("mfa_required");
            let status = e.status();
            let error = match (mfa, form.opt("otp").is_some()) {
                (true, false) => None,
                _ if e.status().as_u16() == 429 => Some(format!("Locked out: {}", e.sentence())),
                _ => Some(e.sentence()),
            };
            let page = LoginPage {
                email: form.get("email").into(),
                workspace_id: form.get("workspace_id").into(),
                ask_otp: mfa || form.opt("otp").is_some(),
                notice: (mfa && error.is_none()).then_some("This account uses a one-time code: enter it to sign in."),
                ..LoginPage::new(&anon, error)
            };
            let mut resp = render(&page)?;
            *resp.status_mut() = status;
            Ok(resp)
        }
        Err(e) => Err(e),
    }
}

pub(crate) async fn logout(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    ctx.call(Method::DELETE, "/v1/sessions/current").await?;
    Ok(signed_out(&ctx))
}

pub(crate) async fn logout_everywhere(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    ctx.call(Method::DELETE, "/v1/sessions").await?;
    Ok(signed_out(&ctx))
}

fn signed_out(ctx: &Ctx) -> Response {
    let cookie = cookies::clear_cookie(cookies::SESSION, ctx.con.secure);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console/login")).into_response()
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    csrf: String,
    error: Option<String>,
    done: bool,
}

pub(crate) async fn setup_page(anon: Anon) -> Result<Response, Fail> {
    render_with_cookie(&SetupPage { csrf: anon.csrf(), error: None, done: false }, anon.pre_cookie())
}

pub(crate) async fn setup(anon: Anon, form: Form) -> Result<Response, Fail> {
    anon.check(&form)?;
    if form.get("password") != form.get("password_again") {
        let page = SetupPage {
            csrf: anon.csrf(),
            error: Some("The two passwords differ (field: password_again)".into()),
            done: false,
        };
        let mut resp = render(&page)?;
        *resp.status_mut() = axum::http::StatusCode::BAD_REQUEST;
        return Ok(resp);
    }
    let body = json!({ "setup_token": form.get("setup_token"), "password": form.get("password") });
    let answer: Result<serde_json::Value, Fail> =
        anon.con.send(&anon.meta, None, Method::POST, "/v1/members/setup", &body).await;
    match answer {
        Ok(_) => render(&SetupPage { csrf: anon.csrf(), error: None, done: true }),
        Err(e @ Fail::Api { .. }) => {
            let status = e.status();
            let mut resp = render(&SetupPage { csrf: anon.csrf(), error: Some(e.sentence()), done: false })?;
            *resp.status_mut() = status;
            Ok(resp)
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    c: Chrome,
    mfa_enabled: bool,
    member_id: String,
    /// An enrolment under way: the QR code and the secret to type in.
    enrol: Option<(String, String)>,
    error: Option<String>,
}

pub(crate) async fn page(ctx: Ctx) -> Result<Response, Fail> {
    account(&ctx, None, None)
}

fn account(ctx: &Ctx, enrol: Option<(String, String)>, error: Option<String>) -> Result<Response, Fail> {
    render(&AccountPage {
        c: Chrome::new(ctx, "account"),
        mfa_enabled: ctx.me.mfa_enabled,
        member_id: ctx.me.id.clone(),
        enrol,
        error,
    })
}

pub(crate) async fn password(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    if form.get("password") != form.get("password_again") {
        return Err(Fail::invalid("password_again", "the two new passwords differ"));
    }
    let body = json!({ "password": form.get("password"), "current_password": form.get("current_password") });
    let _: serde_json::Value = ctx.send(Method::POST, "/v1/members/me/password", &body).await?;
    Ok(back_to("/console/account"))
}

/// The QR code of an `otpauth://` URI as inline SVG.
fn qr_svg(uri: &str) -> Result<String, Fail> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| Fail::Internal(format!("QR code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build();
    // Drop the XML declaration; label the picture for screen readers.
    let start = svg.find("<svg").unwrap_or(0);
    Ok(svg[start..].replacen("<svg", r#"<svg role="img" aria-label="QR code for your authenticator app""#, 1))
}

pub(crate) async fn mfa_start(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let e: TotpEnrolment = ctx.send(Method::POST, "/v1/members/me/mfa/totp", &json!({})).await?;
    let qr = qr_svg(&e.otpauth_uri)?;
    account(&ctx, Some((qr, e.secret)), None)
}

pub(crate) async fn mfa_confirm(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let codes: RecoveryCodes =
        ctx.send(Method::POST, "/v1/members/me/mfa/totp/confirm", &json!({ "otp": form.get("otp") })).await?;
    reveal_once(
        &ctx,
        &Reveal {
            title: "Two-step sign-in is on".into(),
            what: "Recovery codes".into(),
            lines: codes.recovery_codes,
            note: "Each code signs you in once if you lose your authenticator. Store them somewhere safe: they are shown only once.".into(),
            next: "/console/account".into(),
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn qr_codes_are_svg_without_script() {
        let svg = super::qr_svg("otpauth://totp/Keyward:a@example.com?secret=JBSWY3DPEHPK3PXP&issuer=Keyward").unwrap();
        assert!(svg.starts_with("<svg role=\"img\""));
        assert!(!svg.contains("<script"));
        assert!(svg.contains("<path") || svg.contains("<rect"));
    }
}
