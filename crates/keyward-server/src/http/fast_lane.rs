//! `POST /v1/keys/verify` (and every request of the gateway) answered straight from the
//! connection, without the router and its middleware stack. The router's way costs a route match, a request extension, several
//! nested service futures and a body-timeout timer armed per request; together about a sixth
//! of the verify path's CPU (docs/BENCHMARKS.md). The lane keeps every behaviour of that way:
//! the request id (taken or made, echoed, in the log span), the body bounded in size and time,
//! panics answered 500, and the very same handler code
//! ([`crate::routes::verify::verify_key_with`]) and error answers.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, Response};
use axum::response::IntoResponse;
use futures_util::FutureExt;
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument;

use keyward_core::wire::verify::VerifyKeyRequest;

use crate::error::ApiError;
use crate::extract::parse_json;
use crate::gateway::Gateway;
use crate::http::request_id::{Ids, HEADER};
use crate::routes::verify::{verify_key_with, VerifyKeyArgs};
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

    /// Does the lane answer this request? (In front of the API, anything else goes to the
    /// router; the gateway's lane takes everything.)
    pub fn takes<B>(&self, req: &Request<B>) -> bool {
        match self.serves {
            Serves::Verify => req.method() == Method::POST && req.uri().path() == "/v1/keys/verify",
            Serves::Gateway(_) => true,
        }
    }

    pub async fn answer(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let id = self.ids.of(req.headers());
        let span = crate::http::request_id::span_of(&req, id.as_ref(), true);
        let handled = AssertUnwindSafe(self.handle(req, peer)).catch_unwind().instrument(span).await;
        let mut resp = match handled {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => e.into_response(),
            Err(_) => ApiError::Internal("handler panicked".into()).into_response(),
        };
        if let Some(id) = id {
            resp.headers_mut().insert(HEADER, id);
        }
        resp
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let timeout = self.state.config.body_read_timeout;
        match &self.serves {
            Serves::Verify => {
                let too_large = || ApiError::PayloadTooLarge("request body is too large".into());
                let body = within(timeout, read_body(body, self.state.config.body_limit, too_large)).await?;
                // The borrowing parse is the quick way; what it refuses, the wire type's parser
                // words (naming the field), exactly as the route does.
                match serde_json::from_slice::<VerifyKeyArgs>(&body) {
                    Ok(args) => verify_key_with(&self.state, &parts.headers, &args).await,
                    Err(_) => {
                        let req: VerifyKeyRequest = parse_json(&body)?;
                        verify_key_with(&self.state, &parts.headers, &VerifyKeyArgs::from(&req)).await
                    }
                }
            }
            Serves::Gateway(gw) => {
                // Read only when the gateway asks for it: after a secret key was accepted, or
                // for a signed request's signature.
                let body = within(timeout, read_body(body, gw.max_body(), || gw.too_large()));
                // Boxed: with the upstream client's future inside, it is the largest part of
                // the lane's future, which is moved a few times before its first poll.
                Box::pin(gw.forward(peer, parts, body)).await
            }
        }
    }
}

/// `read`, or the router's body-timeout refusal (400) once the body has kept us waiting for
/// `timeout`. The timer is armed only at the second wait: the first is hyper being asked
/// for the body (it reads it only once its reader polls), and a verify request's few
/// hundred bytes almost always come with its headers, so most requests never arm one.
async fn within(timeout: Duration, read: impl Future<Output = Result<Bytes, ApiError>>) -> Result<Bytes, ApiError> {
    let mut read = pin!(read);
    let mut waits = 0u8;
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = read.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        waits = waits.saturating_add(1);
        if waits < 2 {
            return Poll::Pending;
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(ApiError::Invalid {
                field: None,
                message: "Failed to buffer the request body: data was not received within the designated timeout"
                    .into(),
            })),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The whole body, at most `limit` bytes (413 past it, or at once when its length says so).
/// A body in one piece (the usual case) is kept as hyper read it, without a copy.
async fn read_body(mut body: Incoming, limit: usize, too_large: impl Fn() -> ApiError) -> Result<Bytes, ApiError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let mut whole = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::Invalid {
            field: None,
            message: format!("Failed to buffer the request body: {e}"),
        })?;
        let Ok(data) = frame.into_data() else { continue };
        let len = joined.as_ref().map_or(whole.len(), Vec::len) + data.len();
        if len > limit {
            return Err(too_large());
        }
        match &mut joined {
            Some(v) => v.extend_from_slice(&data),
            None if whole.is_empty() => whole = data,
            None => {
                let mut v = Vec::with_capacity(len);
                v.extend_from_slice(&whole);
                v.extend_from_slice(&data);
                joined = Some(v);
            }
        }
    }
    Ok(joined.map_or(whole, Bytes::from))
}
