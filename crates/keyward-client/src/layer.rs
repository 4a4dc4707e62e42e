//! A tower layer that lets a request through only when a Keyward server accepts its
//! credential: a secret key (`X-API-Key`, `Authorization: Bearer`) or a signed request
//! (`Biz-Api-*`, checked over the raw query and body). The verified key's answer is put in the
//! request's extensions as a [`VerifyResponse`]; refusals are answered with the JSON error and
//! `X-Keyward-Code`, as the gateway does.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keyward_client::ClientError> {
//! use axum::{routing::get, Router, Extension};
//! use keyward_client::{layer::VerifyLayer, Client, VerifyResponse};
//! let keyward = Client::new("http://127.0.0.1:5399", None)?;
//! let app: Router = Router::new()
//!     .route("/v2/wallets", get(|Extension(key): Extension<VerifyResponse>| async move { key.key_id.unwrap_or_default() }))
//!     .layer(VerifyLayer::new(keyward));
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use keyward_proto::signing::{HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE};

use crate::ErrorBody;
use crate::{Client, VerifyKeyRequest, VerifyResponse, VerifySignedRequest};

type ClientIp = Arc<dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync>;

#[derive(Clone)]
pub struct VerifyLayer {
    client: Client,
    max_body: usize,
    permissions: Option<String>,
    workspace: Option<String>,
    environment: Option<String>,
    client_ip: Option<ClientIp>,
}

impl VerifyLayer {
    pub fn new(client: Client) -> Self {
        VerifyLayer {
            client,
            max_body: 1024 * 1024,
            permissions: None,
            workspace: None,
            environment: None,
            client_ip: None,
        }
    }

    /// Largest body read to check a signature (413 beyond); default 1 MiB.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Accept only keys of this workspace; another's answer `NOT_FOUND` (401). A client made
    /// `with_verify_token` with a workspace's verify token is bound to it the same way.
    pub fn workspace(mut self, workspace_id: &str) -> Self {
        self.workspace = Some(workspace_id.to_string());
        self
    }

    /// Accept only keys of this environment (`"live"` or `"test"`); another's answers
    /// `WRONG_ENVIRONMENT` (403), so a test key cannot pass where live ones are expected.
    pub fn environment(mut self, environment: &str) -> Self {
        self.environment = Some(environment.to_string());
        self
    }

    /// A permission query every request must satisfy, e.g. `wallet.read AND tx.create`.
    pub fn require(mut self, permissions: &str) -> Self {
        self.permissions = Some(permissions.to_string());
        self
    }

    /// Where the client's IP comes from (for keys with an IP allowlist), e.g. axum's
    /// `ConnectInfo<SocketAddr>` extension. Without it, keys with an allowlist are refused.
    pub fn client_ip(mut self, f: impl Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static) -> Self {
        self.client_ip = Some(Arc::new(f));
        self
    }
}

impl<S> tower::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService { inner, cfg: self.clone() }
    }
}

#[derive(Clone)]
pub struct VerifyService<S> {
    inner: S,
    cfg: VerifyLayer,
}

/// `RateLimit` and `Retry-After` from the answer's `ratelimit` block (the SDK does not know
/// the limit's window, so `RateLimit-Policy` comes only from the server's own surfaces).
fn limit_headers(v: &VerifyResponse) -> Vec<(&'static str, HeaderValue)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut out = Vec::new();
    let mut wait = 86_400;
    if let Some(r) = &v.ratelimit {
        let t = ((r.reset - now).max(0) + 999) / 1000;
        wait = t.max(1);
        if let Ok(h) = HeaderValue::from_str(&format!("\"{}\";r={};t={t}", r.name, r.remaining)) {
            out.push(("ratelimit", h));
        }
    }
    out.push(("retry-after", HeaderValue::from(wait)));
    out
}

fn refusal<RB: From<String>>(status: StatusCode, code: Option<&str>, message: &str) -> Response<RB> {
    let kind = match status {
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        _ => "unavailable",
    };
    let body = ErrorBody::new(kind, message).verification_code(code);
    // An error body of plain strings always serializes; the fallback is never taken.
    let mut r = Response::new(RB::from(serde_json::to_string(&body).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(v) = code.and_then(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().insert("x-keyward-code", v);
    }
    r
}

async fn check(cfg: &VerifyLayer, parts: &Parts, body: &Bytes) -> Result<VerifyResponse, crate::ClientError> {
    let text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let bearer = text("authorization").and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
    });
    let ip = cfg.client_ip.as_ref().and_then(|f| f(parts)).map(|ip| ip.to_string());
    if let Some(key) = text("x-api-key").or(bearer) {
        let req = VerifyKeyRequest {
            key: key.into(),
            ip: ip.map(Into::into),
            permissions: cfg.permissions.as_deref().map(Into::into),
            scope: None,
            workspace_id: cfg.workspace.as_deref().map(Into::into),
            environment: cfg.environment.as_deref().map(Into::into),
            cost: None,
            tags: None,
            ratelimits: None,
        };
        return cfg.client.verify_key(&req).await;
    }
    let headers = [HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE]
        .iter()
        .filter_map(|h| text(h).map(|v| (h.to_string(), v)))
        .collect();
    let req = VerifySignedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        body: String::from_utf8_lossy(body).into_owned(),
        headers,
        ip,
        permissions: cfg.permissions.clone(),
        scope: None,
        workspace_id: cfg.workspace.clone(),
        environment: cfg.environment.clone(),
        cost: None,
    };
    cfg.client.verify_request(&req).await
}

impl<S, B, RB> tower::Service<Request<B>> for VerifyService<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    B: http_body::Body + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
    RB: From<String> + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let cfg = self.cfg.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let bytes = match Limited::new(body, cfg.max_body).collect().await {
                Ok(c) => c.to_bytes(),
                Err(_) => {
                    let m = format!("request bodies are limited to {} bytes", cfg.max_body);
                    return Ok(refusal(StatusCode::PAYLOAD_TOO_LARGE, None, &m));
                }
            };
            match check(&cfg, &parts, &bytes).await {
                Ok(v) if v.valid => {
                    parts.extensions.insert(v);
                    inner.call(Request::from_parts(parts, B::from(bytes))).await
                }
                Ok(v) if v.code.is_limit() => {
                    let mut r = refusal(
                        StatusCode::TOO_MANY_REQUESTS,
                        Some(v.code.as_str()),
                        "rate limit reached or credits spent",
                    );
                    for (name, value) in limit_headers(&v) {
                        r.headers_mut().insert(name, value);
                    }
                    Ok(r)
                }
                Ok(v) => {
                    let status = if v.code.is_authentication_failure() {
                        StatusCode::UNAUTHORIZED
                    } else {
                        StatusCode::FORBIDDEN
                    };
                    Ok(refusal(status, Some(v.code.as_str()), "request refused by Keyward"))
                }
                Err(e) => Ok(refusal(StatusCode::SERVICE_UNAVAILABLE, None, &format!("cannot verify: {e}"))),
            }
        })
    }
}
