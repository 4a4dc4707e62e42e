//! The client the gateway holds: where its one upstream is, connecting to it (TLS trusting
//! the public roots and the configured CA), sending a request and taking its answer.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::body::{Answer, Streaming};
use super::conn::{Conn, Outgoing, Pool, Stream};
use super::failure::{unreachable, Failure};
use super::framing::Framing;
use super::head::Head;

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
    pub(super) pool: Arc<Pool>,
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
