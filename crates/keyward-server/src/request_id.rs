//! Every request gets an id: the caller's `X-Request-Id` when it sent a usable one, else one
//! made here (this node's id and a counter: unique across nodes, no randomness per request).
//! It is echoed in the answer, named in the request's log span and recorded in audit events.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};

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
}

impl MakeRequestId for Ids {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Relaxed);
        HeaderValue::from_str(&format!("{}{n:x}", self.prefix)).ok().map(RequestId::new)
    }
}

/// A caller's id is kept when it is short printable ASCII; otherwise one is made.
pub fn usable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

/// The layers, outermost first: drop an unusable caller id, set one, echo it, and open the
/// request's log span naming it (at debug level for the verification routes, whose cost
/// per request is kept to the minimum; info for the rest).
pub fn layer<S>(router: axum::Router<S>, ids: Ids) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    use axum::body::Body;
    let span = |req: &Request<Body>| {
        let id = req.headers().get(HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let path = req.uri().path();
        if matches!(path, "/v1/keys/verify" | "/v1/auth" | "/v1/requests/verify") {
            tracing::debug_span!("request", method = %req.method(), path, request_id = id)
        } else {
            tracing::info_span!("request", method = %req.method(), path, request_id = id)
        }
    };
    router
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(span))
        .layer(PropagateRequestIdLayer::new(HEADER))
        .layer(SetRequestIdLayer::new(HEADER, ids))
        .layer(tower::util::MapRequestLayer::new(|mut req: Request<Body>| {
            if req.headers().get(HEADER).is_some_and(|v| !usable(v)) {
                req.headers_mut().remove(HEADER);
            }
            req
        }))
}
