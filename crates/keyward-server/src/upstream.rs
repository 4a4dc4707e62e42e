//! The gateway's HTTP client to its one upstream: HTTP/1 connections made with hyper's
//! connection API and kept in a small pool per serving thread, so a request and the
//! upstream connection it uses live on the same thread and no pool key, checkout future or
//! spawned task stands between them. A connection goes back to the pool when its answer's
//! body has been read to the end (an answer dropped half-read closes it). `https://`
//! upstreams are reached with rustls, trusting the public roots and the configured CA;
//! redirects are passed back, never followed.

use std::cell::RefCell;
use std::future::Future as _;
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
    idle: thread_local::ThreadLocal<RefCell<Vec<(Sender, Instant)>>>,
}

impl Pool {
    /// The most recently returned connection that is still open and fresh.
    fn checkout(&self) -> Option<Sender> {
        let mut idle = self.idle.get_or_default().borrow_mut();
        while let Some((sender, since)) = idle.pop() {
            if !sender.is_closed() && since.elapsed() < IDLE_FOR {
                return Some(sender);
            }
        }
        None
    }

    fn give_back(&self, sender: Sender) {
        let mut idle = self.idle.get_or_default().borrow_mut();
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push((sender, Instant::now()));
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
        match tokio::time::timeout(self.timeout, self.exchange(req)).await {
            Ok(Ok((resp, sender))) => {
                let pool = Arc::clone(&self.pool);
                Ok(resp.map(|body| Answer {
                    inner: body,
                    limit: self.timeout,
                    timer: None,
                    sender: Some(sender),
                    pool,
                }))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Failure::TimedOut),
        }
    }

    async fn exchange(
        &self,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<(http::Response<Incoming>, Sender), Failure> {
        // Idle connections first. One the upstream closed meanwhile hands the request back
        // unsent, and it goes on to the next; once sent, a failure is the answer (the
        // request may have had effects).
        while let Some(mut sender) = self.pool.checkout() {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(unreachable(e.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        let resp = sender.send_request(req).await.map_err(unreachable)?;
        Ok((resp, sender))
    }

    async fn connect(&self) -> Result<Sender, Failure> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(unreachable)?;
        tcp.set_nodelay(true).map_err(unreachable)?;
        match &self.tls {
            None => handshake(TokioIo::new(tcp)).await,
            Some((tls, name)) => {
                let stream = tls.connect(name.clone(), tcp).await.map_err(unreachable)?;
                handshake(TokioIo::new(stream)).await
            }
        }
    }
}

/// HTTP/1 over `io`; the connection runs as a task of the thread that made it.
async fn handshake<T>(io: T) -> Result<Sender, Failure>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(unreachable)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    Ok(sender)
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

/// An upstream answer's body. It fails when no frame comes for `limit` (the timer is armed
/// only while the body is waiting: a small answer that arrived with its headers sets none),
/// and gives its connection back to the pool once read to the end.
pub struct Answer {
    inner: Incoming,
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    sender: Option<Sender>,
    pool: Arc<Pool>,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                match &frame {
                    Some(Err(_)) => this.sender = None,
                    None => this.give_back(),
                    Some(Ok(_)) if this.inner.is_end_stream() => this.give_back(),
                    Some(Ok(_)) => {}
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let limit = this.limit;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(timer.as_mut().poll(cx));
                this.sender = None;
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
        if let Some(sender) = self.sender.take() {
            self.pool.give_back(sender);
        }
    }
}

impl Drop for Answer {
    /// An empty answer (a 204, a HEAD) may be dropped without being read: its connection
    /// is free all the same. One dropped half-read goes with the sender: hyper closes it.
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}
