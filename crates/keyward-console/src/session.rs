//! Who is at the browser: the session cookie (an `HttpOnly`, `SameSite=Strict` cookie
//! holding the API session token, `Secure` and `__Host-` under TLS: `cookies.rs`) and the CSRF token every form
//! carries. The CSRF token is a hash of the session token: a page of this console can show
//! it, another site can neither read the cookie nor compute it. Before sign-in, a random
//! pre-session cookie plays the same part for the login and setup forms.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keyward_core::roles::RoleMatrix;
use keyward_core::roles::{Action, Grant, Role};
use keyward_core::wire::governance::MemberView;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::backend::Meta;
use crate::cookies::{cookie, set_cookie, ENV, PRE, SESSION};
use crate::error::Fail;
use crate::form::Form;
use crate::Console;

fn csrf_of(value: &str) -> String {
    let digest = Sha256::new().chain_update(b"keyward-console-csrf\0").chain_update(value.as_bytes()).finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn check_csrf(expected: &str, form: &Form) -> Result<(), Fail> {
    let sent = form.get("csrf");
    if !sent.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Fail::Csrf)
    }
}

/// What a member's role lets the console offer. The API refuses the rest anyway.
#[derive(Clone, Copy, Default)]
pub(crate) struct May {
    pub create_keys: bool,
    pub manage_members: bool,
    pub manage_policies: bool,
    /// Roles and service accounts.
    pub manage_roles: bool,
    pub read_audit: bool,
    /// Apps: registering them and installing others'.
    pub manage_apps: bool,
}

impl May {
    pub(crate) fn of(role: Role) -> May {
        let yes = |a| role.allows(a) != Grant::No;
        May {
            create_keys: yes(Action::CreateKey),
            manage_members: yes(Action::ManageMembers),
            manage_policies: yes(Action::ManagePolicies),
            manage_roles: yes(Action::ManageRoles),
            read_audit: yes(Action::ReadAudit),
            manage_apps: yes(Action::ManageApps),
        }
    }

    /// Whether `action` is offered on a key created by `created_by`.
    pub(crate) fn on_key(role: Role, action: Action, me: &str, created_by: Option<&str>) -> bool {
        match role.allows(action) {
            Grant::Yes => true,
            Grant::OwnKeysOnly => created_by == Some(me),
            Grant::No => false,
        }
    }
}

/// A signed-in member.
pub(crate) struct Ctx {
    pub con: Console,
    pub meta: Meta,
    pub token: String,
    pub me: MemberView,
    pub csrf: String,
    /// The environment the header's switch shows: `test`, `live`, or `""` for both.
    pub env: &'static str,
    /// This page's path and query, for forms that come back here.
    pub here: String,
}

impl FromRequestParts<Console> for Ctx {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, con: &Console) -> Result<Self, Self::Rejection> {
        let Ok(meta) = Meta::from_request_parts(parts, con).await;
        let token = cookie(&parts.headers, SESSION, con.secure).ok_or(Fail::SignIn)?.to_string();
        let me: MemberView = con.get(&meta, Some(&token), "/v1/members/me").await?;
        let env = match cookie(&parts.headers, ENV, con.secure) {
            Some("test") => "test",
            Some("live") => "live",
            _ => "",
        };
        // Nested at /console, the router sees the path without it.
        let here = format!("/console{}", parts.uri.path_and_query().map_or("/keys", |p| p.as_str()));
        Ok(Ctx { con: con.clone(), meta, csrf: csrf_of(&token), token, me, env, here })
    }
}

impl Ctx {
    pub(crate) fn may(&self) -> May {
        May::of(self.me.role)
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub(crate) fn check(&self, form: &Form) -> Result<(), Fail> {
        check_csrf(&self.csrf, form)
    }

    pub(crate) async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Fail> {
        self.con.get(&self.meta, Some(&self.token), path).await
    }

    pub(crate) async fn send<T: serde::de::DeserializeOwned>(
        &self,
        method: axum::http::Method,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, Fail> {
        self.con.send(&self.meta, Some(&self.token), method, path, body).await
    }

    /// A request without a body (deletes, the audit export), as this member; the answer as
    /// it came.
    pub(crate) async fn call(&self, method: axum::http::Method, path: &str) -> Result<axum::response::Response, Fail> {
        self.con.raw(&self.meta, Some(&self.token), method, path, None).await
    }

    /// Seals a one-time reveal for this session only.
    pub(crate) fn seal(&self, body: &[u8]) -> Option<String> {
        self.con.secrets.seal(&self.token, body)
    }

    pub(crate) fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        self.con.secrets.open(&self.token, sealed)
    }
}

/// A visitor before sign-in (login and setup pages).
pub(crate) struct Anon {
    pub con: Console,
    pub meta: Meta,
    /// The pre-session cookie's value; `fresh` when this answer must set it.
    pre: String,
    fresh: bool,
}

impl FromRequestParts<Console> for Anon {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, con: &Console) -> Result<Self, Self::Rejection> {
        let Ok(meta) = Meta::from_request_parts(parts, con).await;
        let (pre, fresh) = match cookie(&parts.headers, PRE, con.secure) {
            Some(v) => (v.to_string(), false),
            None => (con.secrets.token(), true),
        };
        Ok(Anon { con: con.clone(), meta, pre, fresh })
    }
}

impl Anon {
    pub(crate) fn csrf(&self) -> String {
        csrf_of(&self.pre)
    }

    /// A form posted before sign-in must come with the pre-session cookie it was made for.
    pub(crate) fn check(&self, form: &Form) -> Result<(), Fail> {
        if self.fresh {
            return Err(Fail::Csrf);
        }
        check_csrf(&self.csrf(), form)
    }

    /// The `Set-Cookie` this answer needs, if any.
    pub(crate) fn pre_cookie(&self) -> Option<String> {
        self.fresh.then(|| set_cookie(PRE, &self.pre, self.con.secure, None))
    }

    pub(crate) fn secure(&self) -> bool {
        self.con.secure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderMap};

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; kw_session=tok; b=".parse().unwrap());
        assert_eq!(cookie(&h, SESSION, false), Some("tok"));
        assert_eq!(cookie(&h, SESSION, true), None);
        assert_eq!(cookie(&h, "b", false), None);
        assert_eq!(cookie(&h, "c", false), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_are_checked() {
        let (a, b) = (csrf_of("session-a"), csrf_of("session-b"));
        assert_ne!(a, b);
        let form = |v: &str| Form(vec![("csrf".into(), v.into())]);
        assert!(check_csrf(&a, &form(&a)).is_ok());
        assert!(check_csrf(&a, &form(&b)).is_err());
        assert!(check_csrf(&a, &form("")).is_err());
        assert!(check_csrf(&a, &Form(vec![])).is_err());
    }

    #[test]
    fn session_cookie_flags() {
        let c = set_cookie(SESSION, "t", true, None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie(SESSION, "t", false, None).contains("Secure"));
    }

    #[test]
    fn what_is_offered_follows_the_role_matrix() {
        assert!(!May::of(Role::Viewer).create_keys);
        assert!(May::of(Role::Developer).create_keys);
        assert!(!May::of(Role::Developer).manage_members);
        assert!(May::of(Role::Admin).manage_members);
        assert!(May::on_key(Role::Developer, Action::RevokeKey, "m1", Some("m1")));
        assert!(!May::on_key(Role::Developer, Action::RevokeKey, "m1", Some("m2")));
    }
}
