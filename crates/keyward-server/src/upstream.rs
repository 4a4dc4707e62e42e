//! The gateway's HTTP client to its upstream: hyper's pooled HTTP/1 client (never following
//! redirects), one per serving thread, so a request and the upstream connection it uses live
//! on the same thread (a shared pool handed connections between threads, and each hand-over
//! was a wake-up of the other thread). `https://` upstreams are reached with rustls, trusting
//! the public roots and the configured CA.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls;

type Pooled = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Clients to one upstream, one per thread that uses them.
pub struct Upstream {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    clients: thread_local::ThreadLocal<Pooled>,
}

/// Why the upstream gave no answer.
#[derive(Debug)]
pub enum Failure {
    Unreachable(String),
    TimedOut,
}

impl Upstream {
    /// Fails if `ca_pem` holds no readable certificate.
    pub fn new(timeout: Duration, ca_pem: Option<&[u8]>) -> std::io::Result<Upstream> {
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
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Upstream { tls: Arc::new(tls), timeout, clients: thread_local::ThreadLocal::new() })
    }

    fn client(&self) -> &Pooled {
        self.clients.get_or(|| {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*self.tls).clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(https)
        })
    }

    /// Sends `req` (connecting included, within the timeout); the answer's body fails if the
    /// upstream then stays silent for the timeout.
    pub async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<IdleTimeout<hyper::body::Incoming>>, Failure> {
        match tokio::time::timeout(self.timeout, self.client().request(req)).await {
            Ok(Ok(resp)) => Ok(resp.map(|body| IdleTimeout::new(body, self.timeout))),
            Ok(Err(e)) => Err(Failure::Unreachable(format!("{e:?}"))),
            Err(_) => Err(Failure::TimedOut),
        }
    }
}

pin_project_lite::pin_project! {
    /// A body that fails when no frame comes for `limit`. The timer is armed only while the
    /// body is waiting: a small answer that arrived with its headers sets none.
    pub struct IdleTimeout<B> {
        #[pin]
        inner: B,
        limit: Duration,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<B> IdleTimeout<B> {
    fn new(inner: B, limit: Duration) -> Self {
        IdleTimeout { inner, limit, timer: None }
    }
}

/// The upstream stopped sending its answer's body.
#[derive(Debug, thiserror::Error)]
#[error("the upstream stopped sending")]
pub struct Stalled;

impl<B> HttpBody for IdleTimeout<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let limit = *this.limit;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(timer.as_mut().poll(cx));
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
