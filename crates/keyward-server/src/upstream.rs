//! The gateway's HTTP/1 client to its one upstream, written for proxying: a request goes out
//! as one buffer (its head written straight from the gateway's rewritten headers), an
//! answer's head is parsed with `httparse` into the `HeaderMap` the server sends on, without
//! the hop-by-hop headers, and its body is taken from the connection's read buffer. A small
//! answer that came with its head is handed over whole and its connection goes back to the
//! pool at once; a longer one (by length, chunked, or until the upstream closes) is read by
//! the answer's body as the client takes it. One read buffer per connection is reused for
//! every answer, and one deadline timer per connection is moved for each wait: a general
//! client's per-message buffer, dispatch task and timers were half of the gateway's own CPU
//! (docs/BENCHMARKS.md, sixth step).
//!
//! Connections are kept in a small pool per serving thread and used by the request that took
//! them, in the serving thread's one task for the client's connection. `https://` upstreams
//! are reached with rustls, trusting the public roots and the configured CA; redirects are
//! passed back, never followed.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_rustls::rustls;

/// Idle connections kept per serving thread; more are closed when their answer ends.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused (the upstream may be
/// about to close it: nginx's default is 75 s).
const IDLE_FOR: Duration = Duration::from_secs(60);
/// An answer's head (status line and headers) larger than this is refused (502).
const MAX_HEAD: usize = 64 * 1024;
/// Headers in an answer's head, at most (hyper's default too).
const MAX_HEADERS: usize = 100;
/// A request body up to this size is sent in the same write as its head.
const JOINED_BODY: usize = 16 * 1024;
/// Room made in the read buffer when it runs short.
const READ_ROOM: usize = 16 * 1024;
/// A chunk-size line or a trailer line longer than this is refused.
const MAX_LINE: usize = 4096;

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1). `Host` and
/// `Content-Length` are hop-by-hop for the gateway too, but each is set anew rather than
/// removed.
pub(crate) fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// A connection's byte stream, plain or TLS.
enum Stream {
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
struct Conn {
    io: Stream,
    /// What was read and not yet handed on; kept (and its memory reused) across answers.
    read: BytesMut,
    /// The request head being written; kept across requests.
    write: Vec<u8>,
    /// When what the connection waits for (writing, the answer's head, then each piece of
    /// its body) is late. One timer for the connection's life, moved for each wait: tokio
    /// moves a pending timer later without touching its wheel.
    deadline: Pin<Box<Sleep>>,
    /// The upstream keeps the connection open after the current answer.
    reusable: bool,
}

impl Conn {
    fn new(io: Stream, deadline: tokio::time::Instant) -> Conn {
        Conn {
            io,
            read: BytesMut::with_capacity(8192),
            write: Vec::with_capacity(1024),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            reusable: true,
        }
    }

    /// Reads what has come into the read buffer; `Ok(0)` when the upstream has closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
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
    fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.poll_fill(&mut cx).is_pending()
    }

    /// Reads more by the deadline; `Ok(0)` when the upstream has closed.
    async fn fill(&mut self) -> Result<usize, Failure> {
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
    async fn write_request(&mut self, req: &Outgoing<'_>, host: &HeaderValue) -> Result<(), Failure> {
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
    async fn read_head(&mut self, head_request: bool) -> Result<Head, Failure> {
        loop {
            while !self.read.is_empty() {
                match self.parse_head(head_request)? {
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

    /// The answer's head if the buffer holds all of it; an interim answer is dropped.
    fn parse_head(&mut self, head_request: bool) -> Result<Parsed, Failure> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        let len = match parsed.parse(&self.read) {
            Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
            Ok(httparse::Status::Partial) if self.read.len() <= MAX_HEAD => return Ok(Parsed::Partial),
            Ok(_) => return Err(unreachable("the upstream's answer head is too large")),
            Err(e) => return Err(unreachable(format!("the upstream's answer is not HTTP/1: {e}"))),
        };
        let code = parsed.code.unwrap_or(0);
        if (100..200).contains(&code) {
            if code == 101 {
                return Err(unreachable("the upstream switched protocols unasked"));
            }
            self.read.advance(len);
            return Ok(Parsed::Interim);
        }
        let status = StatusCode::from_u16(code).map_err(unreachable)?;

        // Framing first (RFC 9112 §6.3), and where each header's bytes are, so the values can
        // be cut from the head without a copy once it is frozen.
        let base = self.read.as_ptr() as usize;
        let (mut length, mut chunked, mut encoded, mut close, mut keep_alive, mut named) =
            (None::<u64>, false, false, false, false, false);
        let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
        let count = parsed.headers.len();
        for (h, span) in parsed.headers.iter().zip(spans.iter_mut()) {
            let at = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
            *span = (at(h.name.as_bytes()), h.name.len() as u32, at(h.value), h.value.len() as u32);
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .map(str::trim)
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| unreachable("the upstream's answer has an invalid Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(unreachable("the upstream's answer has conflicting Content-Lengths"));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                encoded = true;
                chunked = tokens(h.value).last().is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"connection") {
                for t in tokens(h.value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive = true;
                    } else {
                        named = true;
                    }
                }
            }
        }
        // HTTP/1.0 keeps a connection only when it says so.
        self.reusable = !close && (parsed.version == Some(1) || keep_alive);
        let framing = if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Length(0)
        } else if encoded && parsed.version == Some(0) {
            // HTTP/1.0 has no transfer codings: its framing is faulty (RFC 9112 §6.1), and a
            // `Connection: keep-alive` beside it must not keep the connection.
            return Err(unreachable("the upstream's HTTP/1.0 answer has a Transfer-Encoding"));
        } else if encoded && chunked {
            Framing::Chunked(Chunked::Size)
        } else if encoded {
            Framing::Close
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::Close
        };
        // An answer with both a Transfer-Encoding and a length may have been framed one way by
        // the upstream and another by something on the way: after it, the connection is not
        // trusted with another answer (RFC 9112 §6.3).
        if matches!(framing, Framing::Close) || (encoded && length.is_some()) {
            self.reusable = false;
        }

        let head = self.read.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(count);
        let connection_names: Vec<&[u8]> = if named {
            spans[..count]
                .iter()
                .filter(|s| head[s.0 as usize..][..s.1 as usize].eq_ignore_ascii_case(b"connection"))
                .flat_map(|s| tokens(&head[s.2 as usize..][..s.3 as usize]))
                .collect()
        } else {
            Vec::new()
        };
        for &(name_at, name_len, value_at, value_len) in &spans[..count] {
            let raw = &head[name_at as usize..][..name_len as usize];
            let name = HeaderName::from_bytes(raw).map_err(unreachable)?;
            if hop_by_hop(name.as_str())
                || (name == http::header::CONTENT_LENGTH && !matches!(framing, Framing::Length(_)))
                || connection_names.iter().any(|n| n.eq_ignore_ascii_case(raw))
            {
                continue;
            }
            let value = head.slice(value_at as usize..(value_at + value_len) as usize);
            let value = HeaderValue::from_maybe_shared(value).map_err(unreachable)?;
            if name == http::header::CONTENT_LENGTH {
                // Repeated with the same value: said once.
                headers.insert(name, value);
            } else {
                headers.append(name, value);
            }
        }
        Ok(Parsed::Head(Head { status, headers, framing }))
    }
}

/// The comma-separated tokens of a header value, trimmed, empty ones left out.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty())
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

/// What the read buffer's start holds.
enum Parsed {
    Partial,
    /// A 1xx answer, taken out of the buffer.
    Interim,
    Head(Head),
}

/// An answer's head, as the gateway passes it on.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
}

/// How the answer's body ends.
enum Framing {
    /// After this many more bytes.
    Length(u64),
    Chunked(Chunked),
    /// When the upstream closes the connection.
    Close,
}

/// Where a chunked body's decoder is (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Within a chunk's data, this much left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines (checked, then dropped) up to an empty line.
    Trailers,
    Done,
}

/// What a chunked body's decoder took from the buffer.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    Data(Bytes),
    End,
}

impl Chunked {
    /// The next piece of data, the end, or `None` when the buffer holds too little.
    fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Broken> {
        let bad = |what: &str| Broken::Failed(format!("the upstream's chunked answer has {what}"));
        loop {
            match *self {
                Chunked::Size => {
                    let Some(eol) = line_end(buf, MAX_LINE).map_err(|()| bad("a bad chunk-size line"))? else {
                        return Ok(None);
                    };
                    let line = &buf[..eol];
                    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                    // After the size, only whitespace before an extension or the line's end.
                    let lws = line[digits..].iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
                    let rest = &line[digits + lws..];
                    if digits == 0 || digits > 15 || !matches!(rest.first(), None | Some(b';')) {
                        return Err(bad("a bad chunk size"));
                    }
                    let size = line[..digits]
                        .iter()
                        .fold(0u64, |n, b| n << 4 | u64::from((*b as char).to_digit(16).unwrap_or(0)));
                    buf.advance(eol + 2);
                    *self = if size == 0 { Chunked::Trailers } else { Chunked::Data(size) };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    *self = if left == 0 { Chunked::DataEnd } else { Chunked::Data(left) };
                    return Ok(Some(Decoded::Data(data)));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(bad("a chunk longer than its size"));
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    let Some(eol) = line_end(buf, MAX_LINE).map_err(|()| bad("a bad trailer"))? else {
                        return Ok(None);
                    };
                    if eol > 0 && !field_line(&buf[..eol]) {
                        return Err(bad("a bad trailer"));
                    }
                    buf.advance(eol + 2);
                    if eol == 0 {
                        *self = Chunked::Done;
                        return Ok(Some(Decoded::End));
                    }
                }
                Chunked::Done => return Ok(Some(Decoded::End)),
            }
        }
    }
}

/// A trailer line is a field line, `name: value`, as a head's would be (RFC 9112 §5): a
/// folded line or one without a name is refused, as `httparse` refuses them in the head.
fn field_line(line: &[u8]) -> bool {
    let name = line.iter().take_while(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b)).count();
    name > 0
        && line.get(name) == Some(&b':')
        && line[name + 1..].iter().all(|b| *b == b'\t' || (*b >= b' ' && *b != 0x7f))
}

/// Where the buffer's first line ends (at its CRLF); `Ok(None)` while it may still come,
/// an error for a bare LF, a bare CR (RFC 9112 §2.2) or a line longer than `max`.
fn line_end(buf: &[u8], max: usize) -> Result<Option<usize>, ()> {
    match buf.iter().take(max + 2).position(|b| *b == b'\n') {
        Some(0) => Err(()),
        Some(lf) if buf[lf - 1] == b'\r' && !buf[..lf - 1].contains(&b'\r') => Ok(Some(lf - 1)),
        Some(_) => Err(()),
        None if buf.len() >= max + 2 => Err(()),
        None => Ok(None),
    }
}

/// Idle connections, per thread that returned them.
#[derive(Default)]
struct Pool {
    idle: thread_local::ThreadLocal<RefCell<Vec<(Conn, Instant)>>>,
}

impl Pool {
    /// The most recently returned connection that is still open and fresh.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.get_or_default().borrow_mut();
        while let Some((mut conn, since)) = idle.pop() {
            if since.elapsed() < IDLE_FOR && conn.still_open() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps a connection whose answer was read to its end, if the upstream keeps it too.
    fn give_back(&self, conn: Conn) {
        if !conn.reusable || !conn.read.is_empty() {
            return;
        }
        let mut idle = self.idle.get_or_default().borrow_mut();
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }
}

/// Why the upstream gave no answer.
#[derive(Debug)]
pub enum Failure {
    Unreachable(String),
    TimedOut,
}

fn unreachable(e: impl std::fmt::Display) -> Failure {
    Failure::Unreachable(e.to_string())
}

/// A request as the gateway sends it on: `target` in origin form, `headers` without
/// hop-by-hop ones (a `Host` among them is replaced by the upstream's).
pub struct Outgoing<'a> {
    pub method: &'a Method,
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

/// Where the upstream is, and the connections to it.
pub struct Upstream {
    /// Connect to (the URL's host without IPv6 brackets) and port.
    host: String,
    port: u16,
    /// The `Host` header every request carries.
    host_header: HeaderValue,
    /// `Some` for an `https://` upstream.
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    timeout: Duration,
    pool: Arc<Pool>,
}

impl Upstream {
    /// The upstream at `uri` (`http` or `https`, with an authority; its path is the caller's
    /// business). Fails if `ca_pem` holds no readable certificate.
    pub fn new(uri: &http::Uri, timeout: Duration, ca_pem: Option<&[u8]>) -> io::Result<Upstream> {
        let bad = || io::Error::other(format!("the upstream {uri} is not an http(s) URL"));
        let authority = uri.authority().ok_or_else(bad)?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad()),
        };
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host_header = HeaderValue::from_str(authority.as_str()).map_err(|_| bad())?;
        let tls = if https {
            let name = ServerName::try_from(host.clone()).map_err(|_| bad())?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(tls_config(ca_pem)?)), name))
        } else {
            None
        };
        Ok(Upstream { host, port, host_header, tls, timeout, pool: Arc::default() })
    }

    /// Sends `req` and reads its answer's head, connecting if no idle connection is left,
    /// all within the timeout; the answer's body fails if the upstream then stays silent for
    /// the timeout. A request goes out once: an idle connection the upstream closed is
    /// noticed before it is used, and a failure after sending is the answer (the request may
    /// have had effects).
    pub async fn send(&self, req: Outgoing<'_>) -> Result<http::Response<Answer>, Failure> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut conn = match self.pool.checkout() {
            Some(mut conn) => {
                conn.deadline.as_mut().reset(deadline);
                conn
            }
            // Boxed: connecting is the rare way, and its future would weigh on every request's.
            None => match tokio::time::timeout_at(deadline, Box::pin(self.connect(deadline))).await {
                Ok(conn) => conn?,
                Err(_) => return Err(Failure::TimedOut),
            },
        };
        conn.write_request(&req, &self.host_header).await?;
        let Head { status, headers, framing } = conn.read_head(*req.method == Method::HEAD).await?;
        let body = match framing {
            Framing::Length(n) if n <= conn.read.len() as u64 => {
                let whole = conn.read.split_to(n as usize).freeze();
                self.pool.give_back(conn);
                Answer::Whole(Some(whole).filter(|b| !b.is_empty()))
            }
            framing => Answer::Streaming(Box::new(Streaming {
                conn: Some(conn),
                framing,
                limit: self.timeout,
                waiting: false,
                pool: Arc::clone(&self.pool),
            })),
        };
        let mut resp = http::Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Ok(resp)
    }

    async fn connect(&self, deadline: tokio::time::Instant) -> Result<Conn, Failure> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(unreachable)?;
        tcp.set_nodelay(true).map_err(unreachable)?;
        let io = match &self.tls {
            None => Stream::Plain(tcp),
            Some((tls, name)) => Stream::Tls(Box::new(tls.connect(name.clone(), tcp).await.map_err(unreachable)?)),
        };
        Ok(Conn::new(io, deadline))
    }
}

fn tls_config(ca_pem: Option<&[u8]>) -> io::Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(pem) = ca_pem {
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io::Error::other(format!("the upstream CA certificate: {e}")))?;
        if certs.is_empty() {
            return Err(io::Error::other("the upstream CA file holds no certificate"));
        }
        for cert in certs {
            roots.add(cert).map_err(io::Error::other)?;
        }
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// The upstream stopped sending its answer's body, or sent a broken one.
#[derive(Debug, thiserror::Error)]
pub enum Broken {
    #[error("the upstream stopped sending")]
    Stalled,
    #[error("the upstream closed the connection before the answer's end")]
    Closed,
    #[error("{0}")]
    Failed(String),
}

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
    conn: Option<Conn>,
    framing: Framing,
    limit: Duration,
    /// The body is waiting for the upstream, due by the connection's deadline.
    waiting: bool,
    pool: Arc<Pool>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(wire: &[u8], piece: usize) -> Result<Vec<u8>, Broken> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in wire.chunks(piece) {
            buf.extend_from_slice(part);
            while let Some(d) = state.next(&mut buf)? {
                match d {
                    Decoded::Data(b) => out.extend_from_slice(&b),
                    Decoded::End => {
                        assert!(buf.is_empty(), "nothing after the end");
                        return Ok(out);
                    }
                }
            }
        }
        Err(Broken::Failed("unfinished".into()))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_pieces() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\nA \r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        for piece in 1..wire.len() {
            let out = decode_in_pieces(wire, piece).unwrap_or_else(|_| panic!("pieces of {piece}"));
            assert_eq!(out, b"hello 0123456789", "pieces of {piece}");
        }
        for broken in [
            &b"5\r\nhello!\r\n0\r\n\r\n"[..],
            b"x\r\n",
            b"5\nhello\r\n",
            b"1234567890123456\r\n",
            b"5x\r\nhello\r\n0\r\n\r\n",
            // Found by the differential test: text after the size that is no extension.
            b"5 junk\r\nhello\r\n0\r\n\r\n",
            b"0\t x\r\n\r\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
            b"0\r\nx-folded: a\r\n b\r\n\r\n",
            b"0\r\nHTTP/1.1 200 OK\r\n\r\n",
            b"0\r\n: nameless\r\n\r\n",
        ] {
            let mut state = Chunked::Size;
            let mut buf = BytesMut::from(broken);
            let mut result = Ok(None);
            for _ in 0..4 {
                result = state.next(&mut buf);
                if !matches!(result, Ok(Some(Decoded::Data(_)))) {
                    break;
                }
            }
            assert!(result.is_err(), "{:?}", String::from_utf8_lossy(broken));
        }
        let long = [b'1'; MAX_LINE + 3];
        assert!(Chunked::Size.next(&mut BytesMut::from(&long[..])).is_err());
    }
}

#[cfg(test)]
#[path = "gateway/upstream/differential_tests.rs"]
mod differential_tests;
