//! The console's cookies: their names, how they are read and set. Every one is scoped to
//! `/console`, `HttpOnly` and `SameSite=Strict`, and `Secure` under TLS.

use axum::http::{header, HeaderMap};

pub(crate) const SESSION: &str = "kw_session";
pub(crate) const PRE: &str = "kw_pre";
pub(crate) const REVEAL: &str = "kw_reveal";

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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

/// A `Set-Cookie` value scoped to the console.
pub(crate) fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u32>) -> String {
    let mut c = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

pub(crate) fn clear_session_cookie() -> String {
    format!("{SESSION}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

pub(crate) fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}
