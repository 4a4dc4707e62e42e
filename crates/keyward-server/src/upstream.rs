//! The gateway's HTTP client to its one upstream: HTTP/1 connections made with hyper's
//! connection API and kept in a small pool per serving thread. A connection has no task of
//! its own: the request that uses it drives it (sending, then reading the answer's head and
//! body), so its reads and writes happen in the serving thread's one task for the client's
//! connection, with no wake-up of another task between them, and no pool key, checkout future
//! or spawned task stands between a request and its connection. A connection goes back to the
//! pool when its answer's body has been read to the end (an answer dropped half-read closes
//! it). `https://` upstreams are reached with rustls, trusting the public roots and the
//! configured CA; redirects are passed back, never followed.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http::HeaderValue;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

type Sender = SendRequest<Full<Bytes>>;

/// A connection's own work (hyper's `Connection`), whatever its stream.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// One upstream connection: where requests go in, and the work that moves them, done by
/// whoever uses the connection.
struct Conn {
    sender: Sender,
    /// `None` once the connection has ended.
    driver: Option<Driver>,
    /// When what the connection waits for (an answer's head, then each frame of its body)
    /// is late. One timer for the connection's life, moved for each wait: tokio moves a
    /// pending timer later without touching its wheel, where a new timer per request was
    /// made, registered and dropped (and `timeout` moved the whole exchange future).
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Conn {
    /// Does the connection's pending work (writing, reading, noticing its end). Once it has
    /// ended it is dropped: requests it did not send and answers it did not finish then get
    /// their errors.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(driver) = &mut self.driver {
            if let Poll::Ready(ended) = driver.as_mut().poll(cx) {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
                self.driver = None;
            }
        }
    }

    /// Ready for a request by `deadline`; `Ok(false)` if it ended (the upstream closed it
    /// while idle).
    async fn ready(&mut self, deadline: tokio::time::Instant) -> Result<bool, Failure> {
        self.deadline.as_mut().reset(deadline);
        std::future::poll_fn(|cx| {
            self.drive(cx);
            match self.sender.poll_ready(cx) {
                Poll::Ready(r) => return Poll::Ready(Ok(r.is_ok() && self.driver.is_some())),
                Poll::Pending if self.driver.is_none() => return Poll::Ready(Ok(false)),
                Poll::Pending => {}
            }
            ready!(self.deadline.as_mut().poll(cx));
            Poll::Ready(Err(Failure::TimedOut))
        })
        .await
    }

    /// Sends `req` and drives the connection until the answer's head is read, by the
    /// deadline [`Conn::ready`] or [`handshake`] set.
    async fn send(&mut self, req: http::Request<Full<Bytes>>) -> Result<http::Response<Incoming>, Unanswered> {
        let mut answer = std::pin::pin!(self.sender.try_send_request(req));
        std::future::poll_fn(|cx| {
            self.drive(cx);
            if let Poll::Ready(r) = answer.as_mut().poll(cx) {
                return Poll::Ready(r.map_err(|e| Unanswered::Failed(Box::new(e))));
            }
            ready!(self.deadline.as_mut().poll(cx));
            Poll::Ready(Err(Unanswered::Late))
        })
        .await
    }
}

type TrySend = hyper::client::conn::TrySendError<http::Request<Full<Bytes>>>;

/// Why a sent request has no answer.
enum Unanswered {
    /// Boxed: the request handed back is large, and failures are rare.
    Failed(Box<TrySend>),
    Late,
}

/// Idle connections kept per serving thread; more are closed when their answer ends.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused (the upstream may be
/// about to close it: nginx's default is 75 s).
const IDLE_FOR: Duration = Duration::from_secs(60);

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

/// Idle connections, per thread that returned them.
#[derive(Default)]
struct Pool {
    idle: thread_local::ThreadLocal<RefCell<Vec<(Conn, Instant)>>>,
}

impl Pool {
    /// The most recently returned connection that is still open and fresh.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.get_or_default().borrow_mut();
        while let Some((conn, since)) = idle.pop() {
            if conn.driver.is_some() && since.elapsed() < IDLE_FOR {
                return Some(conn);
            }
        }
        None
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.get_or_default().borrow_mut();
        if idle.len() < MAX_IDLE && conn.driver.is_some() {
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

impl Upstream {
    /// The upstream at `uri` (`http` or `https`, with an authority; its path is the caller's
    /// business). Fails if `ca_pem` holds no readable certificate.
    pub fn new(uri: &http::Uri, timeout: Duration, ca_pem: Option<&[u8]>) -> std::io::Result<Upstream> {
        let bad = || std::io::Error::other(format!("the upstream {uri} is not an http(s) URL"));
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

    /// Sends `req` (origin-form URI; connecting included, within the timeout); the answer's
    /// body fails if the upstream then stays silent for the timeout.
    pub async fn send(&self, mut req: http::Request<Full<Bytes>>) -> Result<http::Response<Answer>, Failure> {
        req.headers_mut().insert(http::header::HOST, self.host_header.clone());
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (resp, conn) = self.exchange(req, deadline).await?;
        let pool = Arc::clone(&self.pool);
        Ok(resp.map(|body| Answer { inner: body, limit: self.timeout, waiting: false, conn: Some(conn), pool }))
    }

    async fn exchange(
        &self,
        mut req: http::Request<Full<Bytes>>,
        deadline: tokio::time::Instant,
    ) -> Result<(http::Response<Incoming>, Conn), Failure> {
        // Idle connections first. One the upstream closed meanwhile hands the request back
        // unsent, and it goes on to the next; once sent, a failure is the answer (the
        // request may have had effects).
        while let Some(mut conn) = self.pool.checkout() {
            if !conn.ready(deadline).await? {
                continue;
            }
            match conn.send(req).await {
                Ok(resp) => return Ok((resp, conn)),
                Err(Unanswered::Late) => return Err(Failure::TimedOut),
                Err(Unanswered::Failed(mut e)) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(unreachable(e.into_error())),
                },
            }
        }
        // Boxed: connecting is the rare way, and its future would weigh on every request's.
        let mut conn = match tokio::time::timeout_at(deadline, Box::pin(self.connect(deadline))).await {
            Ok(conn) => conn?,
            Err(_) => return Err(Failure::TimedOut),
        };
        match conn.send(req).await {
            Ok(resp) => Ok((resp, conn)),
            Err(Unanswered::Late) => Err(Failure::TimedOut),
            Err(Unanswered::Failed(e)) => Err(unreachable(e.into_error())),
        }
    }

    async fn connect(&self, deadline: tokio::time::Instant) -> Result<Conn, Failure> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(unreachable)?;
        tcp.set_nodelay(true).map_err(unreachable)?;
        match &self.tls {
            None => handshake(TokioIo::new(tcp), deadline).await,
            Some((tls, name)) => {
                let stream = tls.connect(name.clone(), tcp).await.map_err(unreachable)?;
                handshake(TokioIo::new(stream), deadline).await
            }
        }
    }
}

/// HTTP/1 over `io`, its first request due by `deadline`; the connection's work is done by
/// the requests that use it.
async fn handshake<T>(io: T, deadline: tokio::time::Instant) -> Result<Conn, Failure>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // Written flattened, as the server writes (connections.rs): one buffer per request.
    let (sender, driver) =
        hyper::client::conn::http1::Builder::new().writev(false).handshake(io).await.map_err(unreachable)?;
    Ok(Conn { sender, driver: Some(Box::pin(driver)), deadline: Box::pin(tokio::time::sleep_until(deadline)) })
}

fn tls_config(ca_pem: Option<&[u8]>) -> std::io::Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(pem) = ca_pem {
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| std::io::Error::other(format!("the upstream CA certificate: {e}")))?;
        if certs.is_empty() {
            return Err(std::io::Error::other("the upstream CA file holds no certificate"));
        }
        for cert in certs {
            roots.add(cert).map_err(std::io::Error::other)?;
        }
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// The upstream stopped sending its answer's body.
#[derive(Debug, thiserror::Error)]
#[error("the upstream stopped sending")]
pub struct Stalled;

/// An upstream answer's body, read by driving its connection. It fails when no frame comes
/// for `limit` (the connection's timer is moved only when the body has to wait: a small
/// answer that arrived with its headers never moves it), and gives its connection back to
/// the pool once read to the end.
pub struct Answer {
    inner: Incoming,
    limit: Duration,
    /// The body is waiting for a frame, due by the connection's deadline.
    waiting: bool,
    conn: Option<Conn>,
    pool: Arc<Pool>,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        // The body's frames come from the connection's reads; a frame taken makes room for
        // the next read, so the connection is driven again after a wait.
        let mut polled = Poll::Pending;
        for _ in 0..2 {
            if let Some(conn) = &mut this.conn {
                conn.drive(cx);
            }
            polled = Pin::new(&mut this.inner).poll_frame(cx);
            if polled.is_ready() {
                break;
            }
        }
        match polled {
            Poll::Ready(frame) => {
                this.waiting = false;
                match &frame {
                    Some(Err(_)) => this.conn = None,
                    None => this.give_back(),
                    Some(Ok(_)) if this.inner.is_end_stream() => this.give_back(),
                    Some(Ok(_)) => {}
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                // Without its connection (ended, or given back) nothing would ever wake it.
                if let Some(conn) = &mut this.conn {
                    if !this.waiting {
                        this.waiting = true;
                        conn.deadline.as_mut().reset(tokio::time::Instant::now() + this.limit);
                    }
                    ready!(conn.deadline.as_mut().poll(cx));
                }
                this.conn = None;
                Poll::Ready(Some(Err(Box::new(Stalled))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Answer {
    fn give_back(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

impl Drop for Answer {
    /// An empty answer (a 204, a HEAD) may be dropped without being read: its connection
    /// is free all the same. One dropped half-read is closed with it.
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}
