//! One upstream connection, plain or TLS, with its reused read buffer and its one deadline
//! timer: writing a request, reading its answer's head; idle ones pooled per serving thread.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::failure::{unreachable, Failure};
use super::head::{parse, Head, Parsed};

/// Idle connections kept per serving thread; more are closed when their answer ends.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused (the upstream may be
/// about to close it: nginx's default is 75 s).
const IDLE_FOR: Duration = Duration::from_secs(60);
/// A request body up to this size is sent in the same write as its head.
const JOINED_BODY: usize = 16 * 1024;
/// Room made in the read buffer when it runs short.
const READ_ROOM: usize = 16 * 1024;

/// A connection's byte stream, plain or TLS.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One upstream connection.
pub(crate) struct Conn {
    io: Stream,
    /// What was read and not yet handed on; kept (and its memory reused) across answers.
    pub read: BytesMut,
    /// The request head being written; kept across requests.
    write: Vec<u8>,
    /// When what the connection waits for (writing, the answer's head, then each piece of
    /// its body) is late. One timer for the connection's life, moved for each wait: tokio
    /// moves a pending timer later without touching its wheel.
    pub deadline: Pin<Box<Sleep>>,
    /// The upstream keeps the connection open after the current answer.
    pub reusable: bool,
}

impl Conn {
    pub(crate) fn new(io: Stream, deadline: tokio::time::Instant) -> Conn {
        Conn {
            io,
            read: BytesMut::with_capacity(8192),
            write: Vec::with_capacity(1024),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            reusable: true,
        }
    }

    /// Reads what has come into the read buffer; `Ok(0)` when the upstream has closed.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < 1024 {
            // Takes the buffer's own memory back when the answers cut from it are gone.
            self.read.reserve(READ_ROOM);
        }
        let read = self.io.read_buf(&mut self.read);
        std::pin::pin!(read).poll(cx)
    }

    /// An idle connection (pooled with nothing left to read) can take a request: nothing
    /// came on it while it sat in the pool, not even its end. (A read ready only after the
    /// upstream spoke costs no system call.)
    pub(crate) fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.poll_fill(&mut cx).is_pending()
    }

    /// Reads more by the deadline; `Ok(0)` when the upstream has closed.
    pub(crate) async fn fill(&mut self) -> Result<usize, Failure> {
        poll_fn(|cx| {
            if let Poll::Ready(r) = self.poll_fill(cx) {
                return Poll::Ready(r.map_err(unreachable));
            }
            ready!(self.deadline.as_mut().poll(cx));
            Poll::Ready(Err(Failure::TimedOut))
        })
        .await
    }

    /// Writes the request: its head (with the upstream's `Host` and the body's length) and
    /// body, in one write when the body is small.
    pub(crate) async fn write_request(&mut self, req: &Outgoing<'_>, host: &HeaderValue) -> Result<(), Failure> {
        let w = &mut self.write;
        w.clear();
        w.extend_from_slice(req.method.as_str().as_bytes());
        w.push(b' ');
        w.extend_from_slice(req.target.as_bytes());
        w.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        w.extend_from_slice(host.as_bytes());
        w.extend_from_slice(b"\r\n");
        for (name, value) in req.headers {
            if name == http::header::HOST {
                continue;
            }
            w.extend_from_slice(name.as_str().as_bytes());
            w.extend_from_slice(b": ");
            w.extend_from_slice(value.as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        for (name, value) in req.added {
            w.extend_from_slice(name.as_bytes());
            w.extend_from_slice(b": ");
            // As `HeaderValue::from_bytes` would refuse it, a value that could split the
            // head goes empty (none of ours should).
            if is_header_value(value) {
                w.extend_from_slice(value);
            }
            w.extend_from_slice(b"\r\n");
        }
        let bodiless =
            matches!(*req.method, Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE);
        if !req.body.is_empty() || !bodiless {
            w.extend_from_slice(b"content-length: ");
            w.extend_from_slice(itoa::Buffer::new().format(req.body.len()).as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"\r\n");
        if req.body.len() <= JOINED_BODY {
            w.extend_from_slice(&req.body);
            write_all(&mut self.io, &mut self.deadline, &self.write).await
        } else {
            write_all(&mut self.io, &mut self.deadline, &self.write).await?;
            write_all(&mut self.io, &mut self.deadline, &req.body).await
        }
    }

    /// Reads the answer's head (skipping interim 1xx answers) by the deadline.
    pub(crate) async fn read_head(&mut self, head_request: bool) -> Result<Head, Failure> {
        loop {
            while !self.read.is_empty() {
                match parse(&mut self.read, head_request, &mut self.reusable)? {
                    Parsed::Head(head) => return Ok(head),
                    Parsed::Interim => {}
                    Parsed::Partial => break,
                }
            }
            if self.fill().await? == 0 {
                return Err(unreachable("the upstream closed the connection before answering"));
            }
        }
    }
}

/// A request as the gateway sends it on: `target` in origin form, `headers` without
/// hop-by-hop ones (a `Host` among them is replaced by the upstream's), then `added` (names
/// lowercase and valid, none among `headers`).
pub struct Outgoing<'a> {
    pub method: &'a Method,
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    pub added: &'a [(&'a str, &'a [u8])],
    pub body: Bytes,
}

/// Bytes `HeaderValue::from_bytes` takes: visible ASCII, space, tab and obs-text, no
/// control character (a CR or LF would end the header).
fn is_header_value(v: &[u8]) -> bool {
    v.iter().all(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

/// Writes all of `bytes` by the deadline.
async fn write_all(io: &mut Stream, deadline: &mut Pin<Box<Sleep>>, bytes: &[u8]) -> Result<(), Failure> {
    let mut done = 0;
    poll_fn(|cx| {
        while done < bytes.len() {
            match Pin::new(&mut *io).poll_write(cx, &bytes[done..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(unreachable("the upstream closed the connection"))),
                Poll::Ready(Ok(n)) => done += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(unreachable(e))),
                Poll::Pending => {
                    ready!(deadline.as_mut().poll(cx));
                    return Poll::Ready(Err(Failure::TimedOut));
                }
            }
        }
        match Pin::new(&mut *io).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r.map_err(unreachable)),
            Poll::Pending => {
                ready!(deadline.as_mut().poll(cx));
                Poll::Ready(Err(Failure::TimedOut))
            }
        }
    })
    .await
}

/// Idle connections, per thread that returned them.
#[derive(Default)]
pub(crate) struct Pool {
    pub(super) idle: thread_local::ThreadLocal<RefCell<Vec<(Conn, Instant)>>>,
}

impl Pool {
    /// The most recently returned connection that is still open and fresh.
    pub(crate) fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.get_or_default().borrow_mut();
        while let Some((mut conn, since)) = idle.pop() {
            if since.elapsed() < IDLE_FOR && conn.still_open() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps a connection whose answer was read to its end, if the upstream keeps it too.
    pub(crate) fn give_back(&self, conn: Conn) {
        if !conn.reusable || !conn.read.is_empty() {
            return;
        }
        let mut idle = self.idle.get_or_default().borrow_mut();
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_judged_as_http_judges_them() {
        for b in 0..=u8::MAX {
            let v = [b'a', b, b'z'];
            assert_eq!(is_header_value(&v), HeaderValue::from_bytes(&v).is_ok(), "byte {b:#04x}");
        }
        assert!(is_header_value(b"") && is_header_value(b"role:a, role:b"));
    }
}
