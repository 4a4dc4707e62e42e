//! The console's one way to do anything: a call to the management API through its router,
//! in this process, as the signed-in member (their session token as the bearer credential).
//! The caller's address, user agent and request id travel with it, so the audit trail
//! records the person at the browser exactly as it would record an API client.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method, Request};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use tower::ServiceExt;

use crate::error::Fail;
use crate::Console;

/// Sealing and randomness, given by the server (the console has no keys of its own).
pub trait Secrets: Send + Sync {
    /// Encrypts `body` so that only [`Secrets::open`] with the same `context` reads it.
    fn seal(&self, context: &str, body: &[u8]) -> Option<String>;
    fn open(&self, context: &str, sealed: &str) -> Option<Vec<u8>>;
    /// A fresh unguessable token (URL-safe characters).
    fn token(&self) -> String;
    /// A fresh id that [`Secrets::consume`] accepts once, within `ttl`.
    fn one_time(&self, ttl: std::time::Duration) -> String;
    /// Whether `id` (from [`Secrets::one_time`]) is still good; it is used up by asking.
    fn consume(&self, id: &str) -> bool;
}

/// What of the browser's request the API should see as its own.
#[derive(Clone)]
pub(crate) struct Meta {
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

const PASSED_ON: [HeaderName; 4] = [
    header::USER_AGENT,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-request-id"),
];

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let headers = PASSED_ON.iter().filter_map(|n| parts.headers.get(n).map(|v| (n.clone(), v.clone()))).collect();
        Ok(Meta { peer: parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned(), headers })
    }
}

impl Meta {
    /// The browser's address and the headers passed on, for a single sign-on step.
    pub(crate) fn browser_parts(&self) -> (Option<SocketAddr>, axum::http::HeaderMap) {
        let headers = self.headers.iter().cloned().collect();
        (self.peer.map(|ConnectInfo(p)| p), headers)
    }
}

/// Largest API answer the console reads into memory (lists are paged far below this).
const MAX_ANSWER: usize = 8 << 20;

impl Console {
    /// Sends one API request; a refusal comes back as [`Fail::Api`] with the API's message.
    pub(crate) async fn raw(
        &self,
        meta: &Meta,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, Fail> {
        let mut req = Request::builder().method(method).uri(path);
        for (n, v) in &meta.headers {
            req = req.header(n, v);
        }
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b)
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).map_err(|e| Fail::Internal(format!("building an API request: {e}")))?;
        if let Some(peer) = &meta.peer {
            req.extensions_mut().insert(*peer);
        }
        let Ok(resp) = self.api.clone().oneshot(req).await;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(refusal(resp).await)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        meta: &Meta,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, Fail> {
        let resp = self.raw(meta, token, method, path, body).await?;
        let bytes = read(resp).await?;
        let bytes = if bytes.is_empty() { Bytes::from_static(b"null") } else { bytes };
        serde_json::from_slice(&bytes).map_err(|e| Fail::Internal(format!("reading the API's answer to {path}: {e}")))
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        meta: &Meta,
        token: Option<&str>,
        path: &str,
    ) -> Result<T, Fail> {
        self.json(meta, token, Method::GET, path, None).await
    }

    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        meta: &Meta,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Fail> {
        let body = serde_json::to_vec(body).map_err(|e| Fail::Internal(format!("encoding a request: {e}")))?;
        self.json(meta, token, method, path, Some(body)).await
    }
}

pub(crate) async fn read(resp: Response) -> Result<Bytes, Fail> {
    axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
        .await
        .map_err(|e| Fail::Internal(format!("reading an API answer: {e}")))
}

/// Query strings built from user input, percent-encoded.
pub(crate) fn query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{q}")
    }
}

/// A path segment from user input (an id), percent-encoded.
pub(crate) fn seg(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorFields,
}

#[derive(Deserialize)]
struct ErrorFields {
    code: String,
    message: String,
    field: Option<String>,
}

/// The API's refusal as a [`Fail`], with its message and field.
pub(crate) async fn refusal(resp: Response) -> Fail {
    let status = resp.status();
    let retry_after = resp.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = read(resp).await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(b) => Fail::Api { status, code: b.error.code, message: b.error.message, field: b.error.field, retry_after },
        Err(_) => Fail::Api {
            status,
            code: "internal".into(),
            message: format!("the server answered {status}"),
            field: None,
            retry_after,
        },
    }
}
