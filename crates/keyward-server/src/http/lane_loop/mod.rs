//! The fast lane's own HTTP/1 connection loop: it reads a connection's requests, answers those
//! the lane takes whole ([`head`] says which: `POST /v1/keys/verify` in its plainest form, or a
//! bodiless request to the gateway) and writes the answers as hyper would ([`answer`]). At the first request it does not take, it
//! hands the connection, with the bytes it has read, to hyper ([`rewind`]), which serves it
//! from there on. Written for the verify path's speed: hyper's server built a `HeaderMap`,
//! armed a header-read timer and took a fresh read buffer for every request, about a tenth of
//! a verification's CPU (docs/BENCHMARKS.md). Here one buffer serves the connection, only the
//! headers the lane reads are kept, and one timer per connection is moved only when it fires
//! (its deadline is checked then). The differential tests hold it to hyper's answers.
//!
//! Kept from hyper: the header-read timeout (idle keep-alive connections too), the body-read
//! timeout and its 400, `Connection: close`, pipelined requests in order, and a stop that ends
//! idle connections at once and busy ones after their answer.

mod answer;
mod head;
pub mod rewind;

#[cfg(test)]
mod differential_gateway_tests;
#[cfg(test)]
mod differential_tests;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, Method, Uri};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::http::connections::Lane;
use head::Parsed;
pub use rewind::Rewind;

/// The most one request (head and body) may take of the buffer; a larger one goes to hyper.
pub(crate) const MAX_HOLD: usize = 64 * 1024;
/// The buffer a connection starts with (it grows up to [`MAX_HOLD`] for a large request).
const FIRST: usize = 4 * 1024;

/// A whole request the lane answers: the headers it reads, and its body (or why it is not
/// there: the body-read timeout).
pub struct Whole<'a> {
    /// The method and target, for a lane that reads every header
    /// ([`crate::http::connections::Reads::All`]).
    pub request: Option<(Method, Uri)>,
    pub headers: HeaderMap,
    pub body: Result<&'a [u8], ApiError>,
    pub peer: SocketAddr,
}

/// How the loop ended.
pub(crate) enum Ended<IO> {
    /// The connection is done (closed by either side, timed out, or the server stopping).
    Closed,
    /// A request the lane does not take: hyper serves the connection from here.
    Handed(Rewind<IO>),
}

/// Serves `io`'s requests until one is not the lane's. `stop` ends when the server stops.
pub(crate) async fn serve<IO, L>(
    mut io: IO,
    lane: &L,
    peer: SocketAddr,
    header_timeout: Duration,
    stop: impl Future<Output = ()>,
) -> Ended<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    L: Lane,
{
    let mut buf = Buffer { bytes: vec![0; FIRST], end: 0 };
    let mut out = Vec::new();
    let stop = std::pin::pin!(stop);
    let mut wait = Wait { timer: Box::pin(tokio::time::sleep(header_timeout)), stop, stopped: false };
    loop {
        let head_by = Instant::now() + header_timeout;
        let taken = loop {
            match head::read(buf.filled(), lane) {
                Parsed::Taken(t) => break t,
                Parsed::Other => return Ended::Handed(buf.hand_over(io)),
                Parsed::Partial if buf.end == MAX_HOLD => return Ended::Handed(buf.hand_over(io)),
                Parsed::Partial => {}
            }
            let idle = buf.end == 0;
            match wait.fill(&mut io, &mut buf, head_by, idle).await {
                Fill::Read => {}
                Fill::Closed | Fill::TimedOut | Fill::Stopped => return Ended::Closed,
            }
        };
        let need = taken.head_len + taken.body_len;
        let mut timed_out = false;
        if buf.end < need {
            buf.room_for(need);
            let body_by = Instant::now() + lane.body_timeout();
            while buf.end < need {
                match wait.fill(&mut io, &mut buf, body_by, false).await {
                    Fill::Read => {}
                    Fill::TimedOut => {
                        timed_out = true;
                        break;
                    }
                    Fill::Closed | Fill::Stopped => return Ended::Closed,
                }
            }
        }
        let body = match timed_out {
            false => Ok(&buf.filled()[taken.head_len..need]),
            true => Err(crate::http::pipeline::timed_out()),
        };
        let resp = lane.answer_whole(Whole { request: taken.request, headers: taken.headers, body, peer }).await;
        // `connection: close` answers the caller's; a body not read whole leaves the
        // connection unusable, so it is closed after the answer too (as hyper does, unsaid).
        if !answer::send(resp, taken.close, &mut out, &mut io).await {
            return Ended::Closed;
        }
        if taken.close || timed_out {
            let _ = io.shutdown().await;
            return Ended::Closed;
        }
        buf.consume(need);
    }
}

/// The connection's read buffer: `bytes[..end]` read, not yet answered.
struct Buffer {
    bytes: Vec<u8>,
    end: usize,
}

impl Buffer {
    fn filled(&self) -> &[u8] {
        &self.bytes[..self.end]
    }

    /// Room for a request of `len` bytes (at most [`MAX_HOLD`], as `head::read` ensures).
    fn room_for(&mut self, len: usize) {
        if self.bytes.len() < len {
            self.bytes.resize(len.min(MAX_HOLD), 0);
        }
    }

    /// The space to read into, grown (up to [`MAX_HOLD`]) when full.
    fn spare(&mut self) -> &mut [u8] {
        if self.end == self.bytes.len() {
            self.bytes.resize((self.bytes.len() * 2).min(MAX_HOLD), 0);
        }
        &mut self.bytes[self.end..]
    }

    /// Drops the first `n` bytes (an answered request), keeping what follows (pipelined).
    fn consume(&mut self, n: usize) {
        self.bytes.copy_within(n..self.end, 0);
        self.end -= n;
    }

    fn hand_over<IO>(mut self, io: IO) -> Rewind<IO> {
        self.bytes.truncate(self.end);
        Rewind::new(io, self.bytes)
    }
}

/// What a wait for bytes came to.
enum Fill {
    Read,
    /// End of stream, or the connection failed.
    Closed,
    TimedOut,
    Stopped,
}

/// The connection's one timer and the server's stop.
struct Wait<'s, F> {
    /// Fires no later than the deadline of the current wait; when it fires early (a deadline
    /// moved on since it was set), it is moved to the current one. So a request that comes in
    /// time costs no timer work at all.
    timer: Pin<Box<Sleep>>,
    stop: Pin<&'s mut F>,
    stopped: bool,
}

impl<F: Future<Output = ()>> Wait<'_, F> {
    /// Reads once into `buf`, or ends at `by` (or, when `idle`, at the server's stop).
    async fn fill<IO: AsyncRead + Unpin>(&mut self, io: &mut IO, buf: &mut Buffer, by: Instant, idle: bool) -> Fill {
        std::future::poll_fn(|cx| {
            let mut read = ReadBuf::new(buf.spare());
            match Pin::new(&mut *io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Fill::Closed),
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    buf.end += n;
                    return Poll::Ready(Fill::Read);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Fill::Closed),
                Poll::Pending => {}
            }
            if idle && self.stopping(cx) {
                return Poll::Ready(Fill::Stopped);
            }
            match self.expired(by, cx) {
                true => Poll::Ready(Fill::TimedOut),
                false => Poll::Pending,
            }
        })
        .await
    }

    fn stopping(&mut self, cx: &mut Context<'_>) -> bool {
        // Polled only until it has ended once.
        self.stopped = self.stopped || self.stop.as_mut().poll(cx).is_ready();
        self.stopped
    }

    fn expired(&mut self, by: Instant, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.deadline() > by {
                self.timer.as_mut().reset(by);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if Instant::now() >= by {
                return true;
            }
            // Fired for an earlier deadline: on to this one.
            self.timer.as_mut().reset(by);
        }
    }
}
