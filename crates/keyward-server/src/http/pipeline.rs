//! What a request passes besides its handler, on either way in (the router's layers or the
//! fast lane): the body read within its size and time bounds, and the answer to a panic.
//! One definition of each, so both ways answer alike.

use std::fmt::Display;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use http_body::Body;
use http_body_util::BodyExt;

use crate::error::ApiError;

/// The refusal of a body past the limit (413).
pub fn too_large() -> ApiError {
    ApiError::PayloadTooLarge("request body is too large".into())
}

/// The refusal of a body that could not be read (400), worded as axum words its own.
pub fn unreadable(e: impl Display) -> ApiError {
    ApiError::Invalid { field: None, message: format!("Failed to buffer the request body: {e}") }
}

/// What the body-timeout layer's error says (tower-http's `TimeoutError`).
const TIMED_OUT: &str = "data was not received within the designated timeout";

/// The refusal of a body that did not come within the body-read timeout (400).
pub fn timed_out() -> ApiError {
    unreadable(TIMED_OUT)
}

/// The answer to a handler that panicked.
pub fn panicked() -> Response {
    ApiError::Internal("handler panicked".into()).into_response()
}

/// `read`, or the body-timeout refusal (400) once the body has kept us waiting for
/// `timeout`. The timer is armed only at the second wait: the first is hyper being asked
/// for the body (it reads it only once its reader polls), and a verify request's few
/// hundred bytes almost always come with its headers, so most requests never arm one.
pub async fn within(timeout: Duration, read: impl Future<Output = Result<Bytes, ApiError>>) -> Result<Bytes, ApiError> {
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
            Poll::Ready(()) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The whole body, at most `limit` bytes (413 past it, or at once when its length says so).
/// A body in one piece (the usual case) is kept as hyper read it, without a copy.
pub async fn read_body<B>(body: B, limit: usize, too_large: impl Fn() -> ApiError) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Display,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let mut body = pin!(body);
    let mut whole = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(unreadable)?.into_data() else { continue };
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
