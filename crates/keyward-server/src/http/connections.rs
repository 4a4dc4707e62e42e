//! Accepting connections with bounds: a connection that sends its headers too slowly (or
//! nothing at all, idle between requests) is closed after `header_read_timeout`; one past
//! `max_connections` is refused with a log line and counted, so a flood of idle sockets cannot
//! take every file descriptor and stop every request without a word.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, Request, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::http::lane_loop::{self, Ended, Rewind, Whole};
use crate::http::workers::{Dispatcher, Job};
use crate::metrics::ConnectionStats;

/// How long a stopping server waits for requests in flight.
const DRAIN_WITHIN: Duration = Duration::from_secs(30);

/// A connection counted open, and its slot, until its task ends (or is dropped).
struct Open {
    stats: Arc<ConnectionStats>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What answers requests straight from the connection, without the router and its layers
/// (the fast lane). Generic, not boxed: its answer's future is the connection's own.
pub trait Lane: Send + Sync + 'static {
    /// Does the lane answer this request? (In front of the router, what it does not take
    /// goes to the router.)
    fn takes(&self, req: &Request<Incoming>) -> bool;

    fn answer(&self, req: Request<Incoming>, peer: SocketAddr) -> impl Future<Output = Response<Body>> + Send;

    /// Are connections read by the lane's own loop (`lane_loop`) until their first request it
    /// does not take whole? (Then hyper serves them.)
    fn own_loop(&self) -> bool;

    /// Does the own loop answer `method` `path` (the request target, query included)?
    fn takes_whole(&self, method: &str, path: &str) -> bool;

    /// The headers [`Lane::answer_whole`] reads; the own loop keeps no others.
    fn reads(&self) -> Reads<'_>;

    /// The largest body the lane reads, and how long it waits for one.
    fn body_limit(&self) -> usize;
    fn body_timeout(&self) -> Duration;

    /// The answer to a whole request the own loop read.
    fn answer_whole(&self, req: Whole<'_>) -> impl Future<Output = Response<Body>> + Send;
}

/// The headers a lane's whole requests keep.
pub enum Reads<'a> {
    /// These (the request's method and target are not needed either).
    Only(&'a [HeaderName]),
    /// Every one, with the method and the target as a URI (the gateway passes them on).
    All,
}

/// No lane: a front of the router alone.
pub enum NoLane {}

// No `NoLane` exists, so none of this runs; each empty match says so to the compiler.
#[allow(unreachable_code)]
impl Lane for NoLane {
    fn takes(&self, _: &Request<Incoming>) -> bool {
        match *self {}
    }

    fn answer(&self, _: Request<Incoming>, _: SocketAddr) -> impl Future<Output = Response<Body>> + Send {
        std::future::ready(match *self {})
    }

    fn own_loop(&self) -> bool {
        match *self {}
    }

    fn takes_whole(&self, _: &str, _: &str) -> bool {
        match *self {}
    }

    fn reads(&self) -> Reads<'_> {
        match *self {}
    }

    fn body_limit(&self) -> usize {
        match *self {}
    }

    fn body_timeout(&self) -> Duration {
        match *self {}
    }

    fn answer_whole(&self, _: Whole<'_>) -> impl Future<Output = Response<Body>> + Send {
        std::future::ready(match *self {})
    }
}

/// What answers a connection's requests.
pub enum Front<L: Lane = NoLane> {
    /// Every request to the router.
    Router(Router),
    /// The requests the lane takes to it, the rest to the router (the API).
    Split(Arc<L>, Router),
    /// Every request to the lane (the gateway).
    Lane(Arc<L>),
}

// By hand: a derived `Clone` would ask `L: Clone`, which an `Arc<L>` does not need.
impl<L: Lane> Clone for Front<L> {
    fn clone(&self) -> Self {
        match self {
            Front::Router(app) => Front::Router(app.clone()),
            Front::Split(lane, app) => Front::Split(lane.clone(), app.clone()),
            Front::Lane(lane) => Front::Lane(lane.clone()),
        }
    }
}

impl From<Router> for Front {
    fn from(app: Router) -> Self {
        Front::Router(app)
    }
}

/// How connections are bounded (from the server's settings).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Accepts on `listener` until `stopped`, serving each connection on one of the `workers`'
/// threads, then drains the connections.
pub async fn serve<L: Lane>(
    listener: TcpListener,
    front: Front<L>,
    Bounds { header_read_timeout, max_connections }: Bounds,
    stats: Arc<ConnectionStats>,
    mut stopped: watch::Receiver<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    workers: Dispatcher,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Written flattened: an answer's head and body go out as one buffer (one `send`), which
    // costs less than hyper's queue of parts for the small answers this server gives; a large
    // proxied body is copied once more (docs/BENCHMARKS.md, fifth step).
    builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout).keep_alive(true).writev(false);
    let mut last_refusal_logged: Option<std::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => Some(a),
            _ = async { let _ = stopped.wait_for(|s| *s).await; } => None,
        };
        let (stream, peer) = match accepted {
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                // Out of file descriptors (EMFILE) and the like: say so, and let some close.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            None => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            if last_refusal_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                last_refusal_logged = Some(std::time::Instant::now());
                tracing::warn!(
                    max_connections,
                    refused = stats.refused.load(Ordering::Relaxed),
                    "connection limit reached; refusing new connections"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The connection moves to a serving thread, whose runtime registers it anew.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "cannot hand a connection over");
                continue;
            }
        };
        let (front, builder, tls, watcher, stats, stopped) =
            (front.clone(), builder.clone(), tls.clone(), graceful.watcher(), stats.clone(), stopped.clone());
        stats.open.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move || {
            Box::pin(async move {
                let _open = Open { stats, _slot: slot };
                let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { return };
                let conn = Conn { front, builder, watcher, peer, header_read_timeout, stopped };
                match tls {
                    None => conn.serve(stream).await,
                    // The handshake is bounded like the headers that follow it.
                    Some(acceptor) => match tokio::time::timeout(header_read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => conn.serve(tls_stream).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    },
                }
            })
        });
        if !workers.run(job) {
            tracing::warn!("no serving thread is left; stopping");
            break;
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_WITHIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {DRAIN_WITHIN:?}; closing them");
    }
    Ok(())
}

/// One accepted connection and what serves it.
struct Conn<L: Lane> {
    front: Front<L>,
    builder: hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    peer: SocketAddr,
    header_read_timeout: Duration,
    stopped: watch::Receiver<bool>,
}

impl<L: Lane> Conn<L> {
    /// The lane's own loop first, where the lane has one; hyper from the first request it
    /// does not take (or from the start). The watcher is held throughout, so a stopping
    /// server waits for the connection either way.
    async fn serve<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, io: IO) {
        let Conn { front, builder, watcher, peer, header_read_timeout, mut stopped } = self;
        let io = match &front {
            Front::Split(lane, _) | Front::Lane(lane) if lane.own_loop() => {
                let stop = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                match lane_loop::serve(io, &**lane, peer, header_read_timeout, stop).await {
                    Ended::Closed => return,
                    Ended::Handed(io) => io,
                }
            }
            _ => Rewind::new(io, Vec::new()),
        };
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let front = front.clone();
            async move {
                let app = match &front {
                    Front::Lane(lane) => return Ok::<_, Infallible>(lane.answer(req, peer).await),
                    Front::Split(lane, _) if lane.takes(&req) => return Ok(lane.answer(req, peer).await),
                    Front::Split(_, app) | Front::Router(app) => app.clone(),
                };
                req.extensions_mut().insert(ConnectInfo(peer));
                // Boxed: the router's future is large, and moving it with every
                // request's future (the lane's too) was a measurable share of the CPU.
                Ok(Box::pin(app.oneshot(req)).await.unwrap_or_else(|never| match never {}))
            }
        });
        if let Err(e) = watcher.watch(builder.serve_connection(TokioIo::new(io), service)).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}
