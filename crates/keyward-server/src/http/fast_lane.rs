//! `POST /v1/keys/verify` (and every request of the gateway) answered straight from the
//! connection, without the router and its middleware stack. The router's way costs a route match, a request extension, several
//! nested service futures and a body-timeout timer armed per request; together about a sixth
//! of the verify path's CPU (docs/BENCHMARKS.md). The lane keeps every behaviour of that way:
//! the request id (taken or made, echoed, in the log span), the body bounded in size and time
//! and panics answered 500, through the same functions (`request_id`, `pipeline`), and the
//! route's own handler (`verify::key`).

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response};
use axum::response::IntoResponse;
use futures_util::FutureExt;
use hyper::body::Incoming;
use tracing::Instrument;

use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::http::connections::{Lane, Reads};
use crate::http::lane_loop::Whole;
use crate::http::pipeline::{panicked, read_body, within};
use crate::http::request_id::{span_for, span_of, Ids, HEADER};
use crate::state::SharedState;

pub struct FastLane {
    state: SharedState,
    ids: Ids,
    serves: Serves,
}

/// What the lane answers.
enum Serves {
    /// `POST /v1/keys/verify` (the API's other routes go to the router).
    Verify,
    /// Every request, proxied.
    Gateway(Arc<Gateway>),
}

impl FastLane {
    /// `ids` must be the router's own, so ids stay unique across both ways.
    pub fn for_verify(state: SharedState, ids: Ids) -> Self {
        FastLane { state, ids, serves: Serves::Verify }
    }

    pub(crate) fn for_gateway(state: SharedState, ids: Ids, gateway: Arc<Gateway>) -> Self {
        FastLane { state, ids, serves: Serves::Gateway(gateway) }
    }

    /// The request's id (the router's `Ids`), its span (as the router names it) and a panic
    /// answered as the router's panic layer answers it, around the handler.
    async fn answer(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let id = self.ids.of(req.headers());
        let span = span_of(&req, id.as_ref(), true);
        finish(id, AssertUnwindSafe(self.handle(req, peer)).catch_unwind().instrument(span).await)
    }

    /// The same around the handler, for a whole request read by the own loop: verification,
    /// or a bodiless request the gateway passes on.
    async fn answer_whole(&self, req: Whole<'_>) -> Response<Body> {
        let id = self.ids.of(&req.headers);
        match (&self.serves, req.request) {
            (Serves::Verify, _) => {
                let span = span_for(Method::POST.as_str(), VERIFY_PATH, id.as_ref(), true);
                let handle = async { crate::verify::key::verify_key_body(&self.state, &req.headers, req.body?).await };
                finish(id, AssertUnwindSafe(handle).catch_unwind().instrument(span).await)
            }
            (Serves::Gateway(gw), Some((method, uri))) => {
                let span = span_for(method.as_str(), uri.path(), id.as_ref(), true);
                let (mut parts, ()) = Request::new(()).into_parts();
                (parts.method, parts.uri, parts.headers) = (method, uri, req.headers);
                // Taken only without a body (`body_limit` 0): nothing to wait for or hold.
                let body = std::future::ready(Ok(axum::body::Bytes::new()));
                let handle = Box::pin(gw.forward(req.peer, parts, body));
                finish(id, AssertUnwindSafe(handle).catch_unwind().instrument(span).await)
            }
            // Not reached: the gateway reads every header (`Reads::All`), so the loop always
            // hands it the method and target.
            (Serves::Gateway(_), None) => {
                finish(id, Ok(Err(ApiError::Internal("a gateway request without its method and target".into()))))
            }
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        match &self.serves {
            // The route's own handler, as the router runs it.
            Serves::Verify => crate::verify::key::verify_key(&self.state, &parts.headers, body).await,
            Serves::Gateway(gw) => {
                // Read only when the gateway asks for it: after a secret key was accepted, or
                // for a signed request's signature.
                let timeout = self.state.config.body_read_timeout;
                let body = within(timeout, read_body(body, gw.max_body(), || gw.too_large()));
                // Boxed: with the upstream client's future inside, it is the largest part of
                // the lane's future, which is moved a few times before its first poll.
                Box::pin(gw.forward(peer, parts, body)).await
            }
        }
    }
}

/// The answer, or the refusal or the panic's answer, with the request's id.
fn finish(id: Option<HeaderValue>, handled: std::thread::Result<Result<Response<Body>, ApiError>>) -> Response<Body> {
    let mut resp = match handled {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => e.into_response(),
        Err(_) => panicked(),
    };
    if let Some(id) = id {
        resp.headers_mut().insert(HEADER, id);
    }
    resp
}

const VERIFY_PATH: &str = "/v1/keys/verify";

impl Lane for FastLane {
    /// In front of the API, `POST /v1/keys/verify` only; the gateway's lane takes everything.
    fn takes(&self, req: &Request<Incoming>) -> bool {
        match self.serves {
            Serves::Verify => req.method() == Method::POST && req.uri().path() == VERIFY_PATH,
            Serves::Gateway(_) => true,
        }
    }

    fn answer(&self, req: Request<Incoming>, peer: SocketAddr) -> impl Future<Output = Response<Body>> + Send {
        FastLane::answer(self, req, peer)
    }

    fn own_loop(&self) -> bool {
        true
    }

    /// Verification: the exact path, no query (which hyper's URI rules might refuse). The
    /// gateway: every method but `HEAD` (its answer's length without a body) and `CONNECT`,
    /// on an origin-form target.
    fn takes_whole(&self, method: &str, path: &str) -> bool {
        match self.serves {
            Serves::Verify => method == "POST" && path == VERIFY_PATH,
            Serves::Gateway(_) => method != "HEAD" && method != "CONNECT" && path.starts_with('/'),
        }
    }

    fn reads(&self) -> Reads<'_> {
        match self.serves {
            Serves::Verify => Reads::Only(&crate::verify::key::READS),
            Serves::Gateway(_) => Reads::All,
        }
    }

    /// The gateway's own loop takes bodiless requests only: the gateway reads a body only
    /// once the key is accepted, and hyper's way keeps that.
    fn body_limit(&self) -> usize {
        match self.serves {
            Serves::Verify => self.state.config.body_limit,
            Serves::Gateway(_) => 0,
        }
    }

    fn body_timeout(&self) -> Duration {
        self.state.config.body_read_timeout
    }

    fn answer_whole(&self, req: Whole<'_>) -> impl Future<Output = Response<Body>> + Send {
        FastLane::answer_whole(self, req)
    }
}
