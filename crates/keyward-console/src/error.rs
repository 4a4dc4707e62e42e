//! The console's one error type and how each failure reads in the browser: the API's own
//! message (it names the field), a sign-in page when the session is gone, a plain page for
//! a refused form, and no internal detail ever.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

#[derive(Debug)]
pub(crate) enum Fail {
    /// The API refused: its status, code, message and the field at fault.
    Api {
        status: StatusCode,
        code: String,
        message: String,
        field: Option<String>,
        retry_after: Option<String>,
    },
    /// No session, or it ended: sign in again.
    SignIn,
    /// A form without its CSRF token, or with another session's.
    Csrf,
    Internal(String),
}

impl Fail {
    /// Bad input (the console's own checks), worded like the API's.
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Fail {
        Fail::Api {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request".into(),
            message: message.into(),
            field: Some(field.into()),
            retry_after: None,
        }
    }

    /// A refusal of the console's own (a page a role is not offered, no such page).
    pub(crate) fn refusal(status: StatusCode, code: &str, message: &str) -> Fail {
        Fail::Api { status, code: code.into(), message: message.into(), field: None, retry_after: None }
    }

    /// The session is gone (a 401 that is not asking for a one-time code): sign in again.
    pub(crate) fn ends_session(&self) -> bool {
        match self {
            Fail::SignIn => true,
            Fail::Api { status, .. } => *status == StatusCode::UNAUTHORIZED && !self.is_code("mfa_required"),
            _ => false,
        }
    }

    pub(crate) fn is_code(&self, wanted: &str) -> bool {
        matches!(self, Fail::Api { code, .. } if code == wanted)
    }

    /// One sentence for a banner above a form.
    pub(crate) fn sentence(&self) -> String {
        match self {
            Fail::Api { message, field: Some(f), .. } => format!("{message} (field: {f})"),
            Fail::Api { message, retry_after: Some(r), .. } => format!("{message} (retry after {r} s)"),
            Fail::Api { message, .. } => message.clone(),
            Fail::SignIn => "Your session has ended; sign in again.".into(),
            Fail::Csrf => CSRF_MESSAGE.into(),
            Fail::Internal(_) => "Something went wrong on the server. Try again.".into(),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Fail::Api { status, .. } => *status,
            Fail::SignIn => StatusCode::UNAUTHORIZED,
            Fail::Csrf => StatusCode::FORBIDDEN,
            Fail::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A refused form's error on the page that shows the form again: the sentence for the
/// banner, and the API's message beside the input of the field it named.
#[derive(Default)]
pub(crate) struct Problem {
    banner: Option<String>,
    /// The field the API named, without its index or sub-field (`ratelimits[0].limit` →
    /// `ratelimits`).
    field: Option<String>,
    message: String,
}

impl Problem {
    pub(crate) fn of(f: &Fail) -> Problem {
        match f {
            Fail::Api { message, field: Some(field), .. } => Problem {
                banner: Some(f.sentence()),
                field: field.split(['[', '.']).next().map(str::to_string),
                message: message.clone(),
            },
            _ => Problem { banner: Some(f.sentence()), field: None, message: String::new() },
        }
    }

    pub(crate) fn banner(&self) -> Option<&str> {
        self.banner.as_deref()
    }

    /// The message to show beside an input standing for any of `fields` (space-separated
    /// API field names), when the refusal named one of them.
    pub(crate) fn at(&self, fields: &str) -> Option<&str> {
        let f = self.field.as_deref()?;
        fields.split(' ').any(|n| n == f).then_some(self.message.as_str())
    }
}

const CSRF_MESSAGE: &str =
    "This form was refused: its security token is missing or does not belong to your session. Reload the page and try again.";

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    title: &'static str,
    message: String,
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            _ if self.ends_session() => {
                return (crate::cookies::clear_session_cookies(), Redirect::to("/console/login")).into_response();
            }
            Fail::Internal(detail) => tracing::error!(detail, "console: internal error"),
            _ => {}
        }
        let title = match status.as_u16() {
            400 => "That input was not accepted",
            403 => "Not allowed",
            404 => "Not found",
            409 => "Conflict",
            429 => "Too many attempts",
            s if s >= 500 => "Server error",
            _ => "Something went wrong",
        };
        let page = ErrorPage { status: status.as_u16(), title, message: self.sentence() };
        match page.render() {
            Ok(html) => (status, axum::response::Html(html)).into_response(),
            Err(_) => status.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_sits_beside_the_field_it_names() {
        let p = Problem::of(&Fail::invalid("ratelimits[1].duration", "a limit's duration is 1s to 30d"));
        assert_eq!(p.at("ratelimits"), Some("a limit's duration is 1s to 30d"));
        assert_eq!(p.at("expires_at expires_in ratelimits"), Some("a limit's duration is 1s to 30d"));
        assert_eq!(p.at("credits"), None);
        assert!(p.banner().is_some_and(|b| b.contains("field: ratelimits[1].duration")));
        let none = Problem::default();
        assert_eq!((none.at("name"), none.banner()), (None, None));
    }
}
