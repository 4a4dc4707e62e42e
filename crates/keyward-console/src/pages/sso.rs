//! Single sign-on's pages. "Sign in with SSO" sends the browser to the provider with the
//! sealed flow in a cookie; the way back (`/console/oidc/callback`) hands the flow, `state`
//! and `code` to the server, then signs the member in, or asks — on the sign-in page's
//! second step — for the workspace or the one-time code, or refuses with a page that says
//! why and sets no session. Nothing of the flow stays on a node: any node sharing the
//! pepper takes the browser back.

use askama::Template;
use axum::extract::RawQuery;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::account::LoginPage;
use crate::backend::refusal;
use crate::cookies::{self, SSO_FLOW, SSO_PROOF};
use crate::error::Fail;
use crate::form::Form;
use crate::session::Anon;
use crate::sso::{Browser, Sso};
use crate::view::render;

/// How long the browser keeps the flow and the proof (the server's seals end then too).
const COOKIE_AGE: u32 = 600;

fn sso(anon: &Anon) -> Result<std::sync::Arc<dyn Sso>, Fail> {
    anon.con.sso.clone().ok_or_else(|| {
        Fail::refusal(StatusCode::NOT_FOUND, "not_found", "Single sign-on is not configured on this server.")
    })
}

/// `GET /console/oidc/start`: to the provider. A link, not a form: the console's
/// `form-action 'self'` would stop a form's redirect to another site.
pub(crate) async fn start(anon: Anon) -> Result<Response, Fail> {
    match sso(&anon)?.start().await {
        Ok(s) => {
            let cookie = cookies::set_flow_cookie(&s.flow, anon.secure(), COOKIE_AGE);
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&s.url)).into_response())
        }
        // The provider is away: the sign-in page as ever, saying so; passwords still work.
        Err(resp) => {
            let fail = refusal(resp).await;
            if !matches!(fail, Fail::Api { .. }) {
                return Err(fail);
            }
            let mut resp = render(&LoginPage::new(&anon, Some(fail.sentence())))?;
            *resp.status_mut() = fail.status();
            Ok(with_cookies(resp, anon.pre_cookie().into_iter()))
        }
    }
}

/// What the provider sends back.
#[derive(Default)]
struct Back {
    code: String,
    state: String,
    error: Option<String>,
    error_description: Option<String>,
}

impl Back {
    fn parse(query: Option<&str>) -> Back {
        let mut b = Back::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*k {
                "code" => b.code = v.into_owned(),
                "state" => b.state = v.into_owned(),
                "error" => b.error = Some(v.into_owned()),
                "error_description" => b.error_description = Some(v.into_owned()),
                _ => {}
            }
        }
        b
    }
}

/// `GET /console/oidc/callback`: the provider's answer. The flow cookie is used up here,
/// whatever happens.
pub(crate) async fn callback(anon: Anon, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response, Fail> {
    let sso = sso(&anon)?;
    let secure = anon.secure();
    let back = Back::parse(query.as_deref());
    if let Some(error) = back.error {
        // The provider's own words are shown as text, cut short.
        let mut why: String = back.error_description.unwrap_or(error).chars().take(200).collect();
        why = format!("The sign-in provider did not sign you in: {why}.");
        return Ok(refused(&Fail::refusal(StatusCode::FORBIDDEN, "forbidden", &why), secure));
    }
    let Some(flow) = cookies::cookie(&headers, SSO_FLOW, secure) else {
        let fail = Fail::invalid("state", "this sign-in has ended or was started in another browser; start again");
        return Ok(refused(&fail, secure));
    };
    match sso.finish(flow, &back.state, &back.code).await {
        Ok(p) => proceed(&anon, sso.as_ref(), &p.proof, &p.email, Step::default(), true).await,
        Err(resp) => Ok(refused(&refusal(resp).await, secure)),
    }
}

/// `POST /console/oidc/continue`: the second step's form (workspace, one-time code).
pub(crate) async fn resume(anon: Anon, headers: HeaderMap, form: Form) -> Result<Response, Fail> {
    anon.check(&form)?;
    let sso = sso(&anon)?;
    let proof = cookies::cookie(&headers, SSO_PROOF, anon.secure()).map(str::to_string);
    let Some((proof, email)) = proof.and_then(|p| sso.proven(&p).map(|e| (p, e))) else {
        let fail = Fail::invalid("state", "this sign-in has ended; start again");
        return Ok(refused(&fail, anon.secure()));
    };
    let step = Step { workspace_id: form.opt("workspace_id"), otp: form.opt("otp") };
    proceed(&anon, sso.as_ref(), &proof, &email, step, false).await
}

/// What the second step's form gave.
#[derive(Default)]
struct Step {
    workspace_id: Option<String>,
    otp: Option<String>,
}

/// Signs the member in with the proof, or asks for what is missing, or refuses.
/// `from_provider`: this answers the provider's redirect, a navigation that began on
/// another site, with which the browser would not send the `SameSite=Strict` session
/// cookie through a redirect: a page of this site sends it on instead.
async fn proceed(
    anon: &Anon,
    sso: &dyn Sso,
    proof: &str,
    email: &str,
    step: Step,
    from_provider: bool,
) -> Result<Response, Fail> {
    let secure = anon.secure();
    let (peer, headers) = anon.meta.browser_parts();
    let answer = sso
        .sign_in(proof, step.workspace_id.as_deref(), step.otp.as_deref(), Browser { peer, headers: &headers })
        .await;
    let fail = match answer {
        Ok(token) => {
            let cookies = [
                cookies::set_cookie(cookies::SESSION, &token, secure, None),
                cookies::clear_cookie(SSO_FLOW, secure),
                cookies::clear_cookie(SSO_PROOF, secure),
            ];
            let resp = if from_provider { render(&SignedIn)? } else { Redirect::to("/console/keys").into_response() };
            return Ok(with_cookies(resp, cookies.into_iter()));
        }
        Err(resp) => refusal(resp).await,
    };
    let mfa = fail.is_code("mfa_required") && fail.status() == StatusCode::UNAUTHORIZED;
    let workspace = matches!(&fail, Fail::Api { field: Some(f), .. } if f == "workspace_id");
    if !(mfa || workspace) {
        return Ok(refused(&fail, secure));
    }
    // One more step: the proof goes on in its own cookie (the flow is used up).
    let page = LoginPage {
        workspace_id: step.workspace_id.clone().unwrap_or_default(),
        ask_otp: mfa,
        ask_workspace: workspace,
        notice: (mfa && step.otp.is_none()).then_some("This account uses a one-time code: enter it to sign in."),
        sso_email: Some(email.to_string()),
        ..LoginPage::new(anon, (workspace || step.otp.is_some()).then(|| fail.sentence()))
    };
    let mut resp = render(&page)?;
    if !from_provider {
        *resp.status_mut() = fail.status();
    }
    let cookies =
        [cookies::set_cookie(SSO_PROOF, proof, secure, Some(COOKIE_AGE)), cookies::clear_cookie(SSO_FLOW, secure)];
    Ok(with_cookies(resp, cookies.into_iter().chain(anon.pre_cookie())))
}

/// The member is signed in; the page sends the browser on to the console.
#[derive(Template)]
#[template(path = "signed_in.html")]
struct SignedIn;

#[derive(Template)]
#[template(path = "sso_refused.html")]
struct Refused {
    message: String,
}

/// A refused single sign-on: a page that says why, the flow and proof cleared, no session.
fn refused(fail: &Fail, secure: bool) -> Response {
    if let Fail::Internal(detail) = fail {
        tracing::error!(detail, "console: single sign-on failed");
    }
    let status = fail.status();
    let resp = match (Refused { message: fail.sentence() }).render() {
        Ok(html) => (status, axum::response::Html(html)).into_response(),
        Err(_) => status.into_response(),
    };
    let cookies = [cookies::clear_cookie(SSO_FLOW, secure), cookies::clear_cookie(SSO_PROOF, secure)];
    with_cookies(resp, cookies.into_iter())
}

/// Appends each `Set-Cookie` (appended: a response keeps every one).
fn with_cookies(mut resp: Response, cookies: impl Iterator<Item = String>) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_providers_answer_is_read_from_the_query() {
        let b = Back::parse(Some("code=a%2Fb&state=s1&iss=x"));
        assert_eq!((b.code.as_str(), b.state.as_str(), b.error), ("a/b", "s1", None));
        let b = Back::parse(Some("error=access_denied&error_description=User+said+no&state=s"));
        assert_eq!(b.error.as_deref(), Some("access_denied"));
        assert_eq!(b.error_description.as_deref(), Some("User said no"));
        assert!(Back::parse(None).code.is_empty());
    }
}
