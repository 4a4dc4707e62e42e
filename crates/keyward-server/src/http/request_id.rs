//! Every request gets an id: the caller's `X-Request-Id` when it sent a usable one, else one
//! made here (this node's id and a counter: unique across nodes, no randomness per request).
//! It is echoed in the answer, named in the request's log span and recorded in audit events.
//! One small layer does it all (no request extension, no boxed future): it sits in front of
//! the verify path.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
pub struct Ids {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl Ids {
    pub fn new(node_id: &str) -> Ids {
        // The node id's random tail is enough to tell nodes apart.
        let tail = &node_id[node_id.len().saturating_sub(10)..];
        Ids { prefix: format!("req_{}_", tail.to_ascii_lowercase()).into(), next: Arc::default() }
    }

    fn make(&self) -> Option<HeaderValue> {
        let n = self.next.fetch_add(1, Relaxed);
        // The prefix and the counter in hex, without a formatter (this is on every request).
        let mut id = Vec::with_capacity(self.prefix.len() + 16);
        id.extend_from_slice(self.prefix.as_bytes());
        let digits = (64 - (n | 1).leading_zeros()).div_ceil(4);
        for i in (0..digits).rev() {
            id.push(b"0123456789abcdef"[((n >> (i * 4)) & 0xf) as usize]);
        }
        HeaderValue::from_maybe_shared(axum::body::Bytes::from(id)).ok()
    }

    /// The request's id: the caller's when usable, else a new one put in its headers (so the
    /// handlers and the log span see it). `None` only if no id could be made.
    pub fn assign(&self, headers: &mut HeaderMap) -> Option<HeaderValue> {
        let callers = headers.get(HEADER).is_some_and(usable);
        let id = self.of(headers);
        if !callers {
            match &id {
                Some(v) => headers.insert(HEADER, v.clone()),
                None => headers.remove(HEADER),
            };
        }
        id
    }

    /// The request's id, as [`Ids::assign`] picks it, for a handler that needs it only in
    /// its answer and log span (the request's headers are left as they are).
    pub fn of(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        match headers.get(HEADER) {
            Some(v) if usable(v) => Some(v.clone()),
            _ => self.make(),
        }
    }
}

/// A caller's id is kept when it is short printable ASCII; otherwise one is made.
pub fn usable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

#[derive(Clone)]
pub struct RequestIdLayer(Ids);

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner, ids: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct RequestIdService<S> {
    inner: S,
    ids: Ids,
}

impl<S, B, R> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Echo<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = self.ids.assign(req.headers_mut());
        Echo { inner: self.inner.call(req), id }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, with the request's id added.
    pub struct Echo<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, R, E> Future for Echo<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            res.headers_mut().insert(HEADER, id);
        }
        Poll::Ready(Ok(res))
    }
}

/// The request's log span, which names the id (at debug level for the verification routes,
/// whose cost per request is kept to the minimum; info for the rest).
pub fn span<B>(req: &Request<B>) -> tracing::Span {
    let path = req.uri().path();
    let hot = matches!(path, "/v1/keys/verify" | "/v1/auth" | "/v1/requests/verify") || path.starts_with("/v1/auth/");
    span_of(req, req.headers().get(HEADER), hot)
}

/// [`span`] with the id given; `hot` for a request on the verification path (the verify
/// routes, every request the gateway proxies): its span is at debug level, so that with the
/// usual `info` filter it costs nothing.
pub fn span_of<B>(req: &Request<B>, id: Option<&HeaderValue>, hot: bool) -> tracing::Span {
    span_for(req.method().as_str(), req.uri().path(), id, hot)
}

/// [`span_of`] from the request's method and path.
pub fn span_for(method: &str, path: &str, id: Option<&HeaderValue>, hot: bool) -> tracing::Span {
    let id = id.and_then(|v| v.to_str().ok()).unwrap_or_default();
    if hot {
        tracing::debug_span!("request", method, path, request_id = id)
    } else {
        tracing::info_span!("request", method, path, request_id = id)
    }
}

impl RequestIdLayer {
    pub fn new(ids: Ids) -> Self {
        RequestIdLayer(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_ids_are_the_prefix_and_a_hex_counter() {
        let ids = Ids::new("node_0123456789ABCDEFGHIJ");
        ids.next.store(u64::MAX - 1, Relaxed);
        let made = |ids: &Ids| ids.make().unwrap().to_str().unwrap().to_string();
        assert_eq!(made(&ids), format!("req_abcdefghij_{:x}", u64::MAX - 1));
        assert_eq!(made(&ids), format!("req_abcdefghij_{:x}", u64::MAX));
        for n in [0u64, 1, 9, 10, 15, 16, 255, 256, 0xabcdef, 1 << 40] {
            ids.next.store(n, Relaxed);
            assert_eq!(made(&ids), format!("req_abcdefghij_{n:x}"));
        }
    }
}
