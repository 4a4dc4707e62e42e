//! An upstream answer's body: whole when it came with its head, else read from its
//! connection as the client takes it, the connection going back to the pool at its end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::conn::{Conn, Pool};
use super::framing::{Broken, Decoded, Framing};

/// An upstream answer's body: whole when it came with its head, else read from its
/// connection as the client takes it.
pub enum Answer {
    Whole(Option<Bytes>),
    Streaming(Box<Streaming>),
}

/// A body still to be read. It fails when nothing comes for `limit` (the connection's timer
/// is moved only when the body has to wait), and gives its connection back to the pool once
/// read to the end; dropped half-read, the connection is closed with it.
pub struct Streaming {
    /// `None` once the body has ended (or failed).
    pub(crate) conn: Option<Conn>,
    pub(crate) framing: Framing,
    pub(crate) limit: Duration,
    /// The body is waiting for the upstream, due by the connection's deadline.
    pub(crate) waiting: bool,
    pub(crate) pool: Arc<Pool>,
}

impl Streaming {
    /// The next piece the buffer holds, or the end; `None` when more must be read.
    fn take(&mut self, conn: &mut Conn) -> Result<Option<Option<Bytes>>, Broken> {
        let piece = match &mut self.framing {
            Framing::Length(0) => return Ok(Some(None)),
            Framing::Length(left) => {
                if conn.read.is_empty() {
                    return Ok(None);
                }
                let take = conn.read.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= take as u64;
                conn.read.split_to(take).freeze()
            }
            Framing::Chunked(state) => match state.next(&mut conn.read)? {
                None => return Ok(None),
                Some(Decoded::End) => return Ok(Some(None)),
                Some(Decoded::Data(data)) => data,
            },
            Framing::Close => {
                if conn.read.is_empty() {
                    return Ok(None);
                }
                conn.read.split().freeze()
            }
        };
        Ok(Some(Some(piece)))
    }

    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }

    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Broken>>> {
        let Some(mut conn) = self.conn.take() else { return Poll::Ready(None) };
        let polled = loop {
            match self.take(&mut conn) {
                Ok(Some(Some(piece))) => {
                    self.waiting = false;
                    break Poll::Ready(Some(Ok(piece)));
                }
                Ok(Some(None)) => {
                    self.pool.give_back(conn);
                    return Poll::Ready(None);
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(None) => {}
            }
            match conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) if matches!(self.framing, Framing::Close) => return Poll::Ready(None),
                Poll::Ready(Ok(0)) => return Poll::Ready(Some(Err(Broken::Closed))),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(Broken::Failed(e.to_string())))),
                Poll::Pending => {
                    if !self.waiting {
                        self.waiting = true;
                        conn.deadline.as_mut().reset(tokio::time::Instant::now() + self.limit);
                    }
                    if conn.deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(Err(Broken::Stalled)));
                    }
                    break Poll::Pending;
                }
            }
        };
        self.conn = Some(conn);
        // The last piece by length: the connection is free now, not at the next poll.
        if matches!(self.framing, Framing::Length(0)) {
            self.finish();
        }
        polled
    }
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = Broken;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Broken>>> {
        match &mut *self {
            Answer::Whole(whole) => Poll::Ready(whole.take().map(|b| Ok(Frame::data(b)))),
            Answer::Streaming(body) => body.poll_piece(cx).map(|p| p.map(|p| p.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Answer::Whole(whole) => whole.is_none(),
            Answer::Streaming(body) => body.conn.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Answer::Whole(whole) => SizeHint::with_exact(whole.as_ref().map_or(0, |b| b.len() as u64)),
            Answer::Streaming(body) => match body.framing {
                Framing::Length(left) => SizeHint::with_exact(left),
                _ => SizeHint::default(),
            },
        }
    }
}
