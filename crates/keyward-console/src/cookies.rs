//! The console's cookies: their names, how they are read and set. Every one is `HttpOnly`
//! and `SameSite=Strict` but the single sign-on flow's, which is `Lax`: it must come back
//! with the provider's redirect, a navigation from another site. Under TLS each is `Secure` and named with the `__Host-` prefix,
//! which the browser accepts only from a secure origin, for `Path=/` and without `Domain`:
//! no sibling subdomain and no plain-HTTP page on the host can set or shadow it. Over plain
//! HTTP (browsers refuse `Secure` cookies there, except on localhost, so `__Host-` cannot
//! be used) they keep their plain names, scoped to `/console`.

use axum::http::{header, HeaderMap};

pub(crate) const SESSION: &str = "kw_session";
pub(crate) const PRE: &str = "kw_pre";
pub(crate) const REVEAL: &str = "kw_reveal";
/// A single sign-on under way: the sealed state, nonce and PKCE verifier.
pub(crate) const SSO_FLOW: &str = "kw_oidc";
/// The sealed proof of an email the provider verified, until the second step is done.
pub(crate) const SSO_PROOF: &str = "kw_sso";
/// The environment the header's switch shows (`test` or `live`; absent: both).
pub(crate) const ENV: &str = "kw_env";

const HOST_PREFIX: &str = "__Host-";

/// The name a cookie is sent under.
pub(crate) fn name(base: &str, secure: bool) -> String {
    if secure {
        format!("{HOST_PREFIX}{base}")
    } else {
        base.to_string()
    }
}

/// The cookie named `base` (under its TLS or plain-HTTP name), if the browser sent one.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, base: &str, secure: bool) -> Option<&'a str> {
    let name = name(base, secure);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value for the console's cookie `base`.
pub(crate) fn set_cookie(base: &str, value: &str, secure: bool, max_age: Option<u32>) -> String {
    set_cookie_with(base, value, secure, max_age, "Strict")
}

/// The single sign-on flow's cookie: `SameSite=Lax`, sent with the top-level navigation
/// back from the provider (a `Strict` one would not be), never with another site's
/// subrequests or forms.
pub(crate) fn set_flow_cookie(value: &str, secure: bool, max_age: u32) -> String {
    set_cookie_with(SSO_FLOW, value, secure, Some(max_age), "Lax")
}

fn set_cookie_with(base: &str, value: &str, secure: bool, max_age: Option<u32>, same_site: &str) -> String {
    let path = if secure { "/" } else { "/console" };
    let mut c = format!("{}={value}; Path={path}; HttpOnly; SameSite={same_site}", name(base, secure));
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

pub(crate) fn clear_cookie(base: &str, secure: bool) -> String {
    set_cookie(base, "", secure, Some(0))
}

/// Clears the session cookie under both its names (where the caller cannot tell which).
/// Appended, not inserted: a header array would keep only the last `Set-Cookie`, leaving the
/// plain cookie in place and the browser looping between sign-in and the keys.
pub(crate) fn clear_session_cookies() -> axum::response::AppendHeaders<[(header::HeaderName, String); 2]> {
    axum::response::AppendHeaders([
        (header::SET_COOKIE, clear_cookie(SESSION, false)),
        (header::SET_COOKIE, clear_cookie(SESSION, true)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_tls_cookies_take_the_host_prefix() {
        let c = set_cookie(SESSION, "t", true, None);
        assert_eq!(c, "__Host-kw_session=t; Path=/; HttpOnly; SameSite=Strict; Secure");
        assert!(!c.contains("Domain"));
        let c = set_cookie(SESSION, "t", false, Some(5));
        assert_eq!(c, "kw_session=t; Path=/console; HttpOnly; SameSite=Strict; Max-Age=5");
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "kw_session=plain; __Host-kw_session=host".parse().unwrap());
        assert_eq!(cookie(&h, SESSION, true), Some("host"));
        assert_eq!(cookie(&h, SESSION, false), Some("plain"));
    }

    #[test]
    fn only_the_flow_cookie_is_lax() {
        assert_eq!(
            set_flow_cookie("f", true, 600),
            "__Host-kw_oidc=f; Path=/; HttpOnly; SameSite=Lax; Max-Age=600; Secure"
        );
        assert!(set_cookie(SSO_PROOF, "p", false, Some(600)).contains("SameSite=Strict"));
    }
}
