//! Assembling and running a server: router, middleware, background tasks, shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use keyward_core::pepper::Pepper;
use keyward_core::{Clock, Random};
use keyward_store::Store;

use crate::cache::invalidation;
use crate::cache::KeyCache;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::http::connections::Front;
use crate::http::fast_lane::FastLane;
use crate::http::request_id::Ids;
use crate::routes;
use crate::state::{AppState, SharedState};
use crate::usage::UsageBuffer;

/// What a server is built from; time and randomness are injectable for tests.
pub struct Services {
    pub store: Store,
    pub pepper: Pepper,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

/// The shared state of a server. Fails (at startup, never later) if the OpenAPI document
/// cannot be rendered.
pub fn state(
    services: Services,
    config: ServerConfig,
    shared: Option<crate::limits::redis::Shared>,
) -> std::io::Result<SharedState> {
    let openapi = routes::openapi().to_json().map_err(std::io::Error::other)?.into();
    services.store.key_audit(&services.pepper);
    Ok(Arc::new(AppState {
        openapi,
        connections: Arc::default(),
        argon: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)),
        role_changes: tokio::sync::Mutex::new(()),
        standings: crate::cache::standings::Standings::default(),
        standing_changes: tokio::sync::Mutex::new(()),
        erasures: tokio::sync::Mutex::new(()),
        metrics: crate::metrics::Metrics::default(),
        node_id: keyward_core::ids::new_id("node", services.clock.now(), services.random.as_ref()),
        cache: KeyCache::new(config.cache_capacity),
        app_tokens: crate::apps::cache::TokenCache::new(config.cache_capacity),
        usage: UsageBuffer::default(),
        limits: crate::limits::local::LocalLimits::default(),
        leases: crate::limits::lease::Leases::default(),
        service_limits: crate::limits::service::ServiceLimits::default(),
        shared,
        replays: crate::verify::replay::ReplayGuard::new(config.signature_window, config.cache_capacity),
        logins: crate::manage::limiter::LoginLimiter::new(config.ip_lockout.0, config.ip_lockout.1),
        leak_reports: crate::manage::limiter::LoginLimiter::new(config.leak_report_limit.0, config.leak_report_limit.1),
        token_issues: crate::manage::limiter::WindowCounter::new(
            config.oauth_token_limit.0,
            config.oauth_token_limit.1,
        ),
        scanning_keys: crate::leaks::signing_keys::SigningKeys::new(
            &config.secret_scanning_keys_url,
            config.webhook_timeout,
        )?,
        oidc: match (&config.oidc, &config.public_url) {
            (Some(oidc), Some(public_url)) => Some(crate::oidc::provider::Provider::new(oidc, public_url)?),
            (Some(_), None) => {
                return Err(std::io::Error::other("single sign-on (oidc_issuer) needs public_url for its redirect URI"))
            }
            (None, _) => None,
        },
        store: services.store,
        pepper: services.pepper,
        clock: services.clock,
        random: services.random,
        config,
    }))
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    crate::http::pipeline::panicked()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

pub fn router(state: SharedState) -> Router {
    let ids = Ids::new(&state.node_id);
    router_with(state, ids)
}

fn router_with(state: SharedState, ids: Ids) -> Router {
    let limit = state.config.body_limit;
    let body_timeout = state.config.body_read_timeout;
    let (router, _doc) = routes::api().split_for_parts();
    let api = router.fallback(not_found).method_not_allowed_fallback(method_not_allowed).with_state(state.clone());
    let console = crate::console::router(&state, api.clone());
    let unkey = crate::unkey::router(&state, api.clone());
    // `/` is where a person lands first: the console (its own page sends them on to sign in).
    let root = axum::routing::get(|| async { axum::response::Redirect::to("/console") });
    wrapped(api.route("/", root).nest("/console", console).nest("/v2", unkey), ids, body_timeout, limit)
}

/// The API's router, with the fast lane in front for `POST /v1/keys/verify` (sharing the
/// router's request ids).
fn front(state: SharedState) -> Front<FastLane> {
    let ids = Ids::new(&state.node_id);
    let lane = FastLane::for_verify(state.clone(), ids.clone());
    Front::Split(Arc::new(lane), router_with(state, ids))
}

/// The middleware every request to the router passes (the fast lane does the same itself),
/// outermost first: its id, its log span, panics caught, the body read bounded in time and
/// size. Wrapped around the
/// whole router once, not around each route: a layer added with `Router::layer` is added to
/// every route, each boxing its future again, and moving those nested futures was 4 % of the
/// verify path's CPU.
fn wrapped(router: Router, ids: Ids, body_timeout: Duration, body_limit: usize) -> Router {
    let stack = tower::ServiceBuilder::new()
        .layer(crate::http::request_id::RequestIdLayer::new(ids))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(crate::http::request_id::span))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(router);
    Router::new().fallback_service(stack)
}

/// A server running in this process (tests, or the binary's `serve`).
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where the gRPC ext_authz service listens (with `ext_authz_listen`).
    pub ext_authz_addr: Option<SocketAddr>,
    pub state: SharedState,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
    /// The serving threads: stopped last, after the last flush (storage connections a
    /// request opened live on their runtimes).
    workers: crate::http::workers::Workers,
}

impl RunningServer {
    /// Stops accepting, finishes requests in flight, stops background tasks and writes
    /// pending last-used marks.
    /// A task stuck on a storage connection that went silent (packets dropped, no reset) is
    /// abandoned after [`STOP_WITHIN`], and so is the last flush: a stop never hangs.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        let served = self.http.await.map_err(std::io::Error::other)?;
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(STOP_WITHIN, t).await.is_err() {
                tracing::warn!("a background task did not stop in time (storage not answering); abandoned");
                abort.abort();
            }
        }
        // The last counts and marks: a graceful stop loses none.
        if tokio::time::timeout(STOP_WITHIN, flush(&self.state)).await.is_err() {
            tracing::warn!(
                "storage did not answer the last flush in time; usage counts and last-used marks not written"
            );
        }
        drop(self.workers);
        served
    }
}

/// How long a stop waits for each background task, and for the last flush.
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// Binds and starts serving the API with background tasks.
pub async fn start(services: Services, config: ServerConfig) -> std::io::Result<RunningServer> {
    start_with(services, config, |s| Ok(front(s))).await
}

/// Binds and starts the gateway (a reverse proxy to `gateway.upstream`) with the same
/// background tasks: cache invalidation, last-used marks.
pub async fn start_gateway(
    services: Services,
    config: ServerConfig,
    gateway: crate::gateway::GatewayConfig,
) -> std::io::Result<RunningServer> {
    start_with(services, config, move |state| {
        let gw = crate::gateway::gateway(state.clone(), gateway)?;
        let ids = Ids::new(&state.node_id);
        Ok(Front::Lane(Arc::new(FastLane::for_gateway(state, ids, gw))))
    })
    .await
}

/// Binds `addr`; a failure names the address ("address in use" alone does not say which).
pub(crate) async fn bind_named(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

async fn start_with(
    services: Services,
    config: ServerConfig,
    make: impl FnOnce(SharedState) -> std::io::Result<Front<FastLane>>,
) -> std::io::Result<RunningServer> {
    let listener = bind_named(config.listen).await?;
    let addr = listener.local_addr()?;
    let ext_authz = match config.ext_authz_listen {
        Some(a) => Some(crate::ext_authz::bind(a).await?),
        None => None,
    };
    let shared = match &config.redis_url {
        Some(url) => {
            let time = services.clock.clone();
            Some(
                crate::limits::redis::Shared::connect(
                    url.expose(),
                    config.ratelimit_on_error,
                    config.credits_on_error,
                    time,
                )
                .await?,
            )
        }
        None => None,
    };
    let state = state(services, config, shared)?;
    key_audit_chains(&state).await;
    // Before the first verification: a suspended workspace's keys never answer VALID here.
    state.reload_standings().await.map_err(std::io::Error::other)?;
    let (stop, stopped) = watch::channel(false);
    let app = make(state.clone())?;
    let tls = state.config.tls.as_ref().map(crate::http::tls::acceptor).transpose()?;
    let workers = crate::http::workers::Workers::start(state.config.http_threads)?;
    let http = tokio::spawn(crate::http::connections::serve(
        listener,
        app,
        crate::http::connections::Bounds {
            header_read_timeout: state.config.header_read_timeout,
            max_connections: state.config.max_connections,
        },
        state.connections.clone(),
        stopped.clone(),
        tls,
        workers.dispatcher(),
    ));
    let ext_authz_addr = ext_authz.as_ref().map(|(_, a)| *a);
    let mut tasks = Vec::new();
    if let Some((listener, a)) = ext_authz {
        tracing::info!(addr = %a, "ext_authz (gRPC) listening");
        tasks.push(tokio::spawn(crate::ext_authz::serve(state.clone(), listener, stopped.clone())));
    }
    tasks.extend([
        tokio::spawn(flusher(state.clone(), stopped.clone())),
        tokio::spawn(crate::limits::lease::run(state.clone(), stopped.clone())),
        tokio::spawn(invalidation::run(state.clone(), stopped.clone())),
        tokio::spawn(pruner(state.clone(), stopped.clone())),
        tokio::spawn(crate::cache::backstop::run(state.clone(), stopped.clone())),
        tokio::spawn(crate::cache::backstop::fill_known(state.clone(), stopped.clone())),
        tokio::spawn(crate::webhooks::delivery::run(state.clone(), stopped.clone())),
        tokio::spawn(crate::usage::rollup::run(state.clone(), stopped.clone())),
        tokio::spawn(sweeper(state.clone(), stopped)),
    ]);
    Ok(RunningServer { addr, ext_authz_addr, state, stop, http, tasks, workers })
}

/// Switches audit chains written before they were keyed, so an upgraded database verifies
/// at once. Each switch is logged: it should happen once per workspace, at the upgrade — one
/// seen later means someone made a chain look unswitched (an anchor taken before shows it).
async fn key_audit_chains(state: &SharedState) {
    match state.store.key_audit_chains(state.clock.now()).await {
        Ok(switched) => switched.iter().for_each(|(ws, seq)| {
            tracing::warn!(workspace = %ws, seq, "audit chain switched from plain SHA-256 to keyed hashes");
        }),
        // The next append to such a chain switches it instead.
        Err(e) => tracing::warn!(error = %e, "could not switch unkeyed audit chains yet"),
    }
}

/// Runs until `shutdown` completes (e.g. SIGTERM), then stops gracefully.
pub async fn run(services: Services, config: ServerConfig, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let server = start(services, config).await?;
    serve_until(server, shutdown).await
}

/// Runs a started server (API or gateway) until `shutdown`, then stops it gracefully.
pub async fn serve_until(server: RunningServer, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    tracing::info!(addr = %server.addr, "keyward listening");
    shutdown.await;
    tracing::info!("shutting down");
    server.stop().await
}

/// Writes the counts and last-used marks gathered since the last flush; addresses new to a
/// key go on to the `new_ip` rule.
async fn flush(state: &SharedState) {
    flush_credits(state).await;
    state.limits.prune(state.clock.now());
    let started = std::time::Instant::now();
    let result = state.usage.flush(&state.store).await;
    state.metrics.flushed(started.elapsed(), result.is_ok());
    match result {
        Ok((_, new)) if !new.is_empty() => crate::usage::rollup::new_addresses(state, new).await,
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not write usage counts and last-used marks; will retry"),
    }
}

/// Writes this node's credit counts (its own and those it saw in Redis): the periodic flush,
/// and `/v2/keys.updateCredits` before it adds to or takes from the written count.
pub(crate) async fn flush_credits(state: &SharedState) {
    let mut credits = state.limits.take_credit_writes();
    let local = credits.len();
    if let Some(shared) = &state.shared {
        credits.extend(shared.take_credit_writes());
    }
    if !credits.is_empty() {
        if let Err(e) = state.store.save_credits(&credits).await {
            tracing::warn!(error = %e, "could not write credit counts; will retry");
            let seen_in_redis = credits.split_off(local);
            state.limits.put_back(credits);
            if let Some(shared) = &state.shared {
                shared.put_back(seen_in_redis);
            }
        }
    }
}

async fn flusher(state: SharedState, mut stopped: watch::Receiver<bool>) {
    // The first flush one period after start, not at once: a task first polled late (a busy
    // machine) would otherwise write the marks of requests already served, early.
    let period = state.config.flush_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        flush(&state).await;
    }
}

async fn pruner(state: SharedState, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let now = state.clock.now();
        let _ = state.store.prune_events(now - invalidation::EVENT_RETENTION).await;
        let _ = state.store.prune_idempotency(now - chrono::Duration::hours(24)).await;
        let _ = state.store.prune_deliveries(now - DELIVERY_LOG_RETENTION).await;
        // Assertion ids past their `exp`, tokens long expired.
        let _ = state.store.sweep_app_tokens(now).await;
    }
}

/// How long finished webhook deliveries (and their attempts) stay listed.
const DELIVERY_LOG_RETENTION: chrono::Duration = chrono::Duration::days(30);

/// How far back a passed expiry is still told as `key.expired` (a node down longer than this
/// does not flood receivers with old expiries when it returns).
const EXPIRED_LOOK_BACK: chrono::Duration = chrono::Duration::days(7);

/// Closes approval requests whose time is up (undoing their pending key states), tells of
/// coming and passed key expiries, and drops ended sessions. Requests are also expired when
/// they are read or acted on.
async fn sweeper(state: SharedState, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(state.config.sweep_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let now = state.clock.now();
        match state.store.expire_approvals(None, now).await {
            Ok(changed) => changed.iter().for_each(|k| state.forget(k)),
            Err(e) => tracing::warn!(error = %e, "could not expire approval requests; will retry"),
        }
        if let Err(e) = state.store.announce_expiries(now, EXPIRED_LOOK_BACK).await {
            tracing::warn!(error = %e, "could not announce key expiries; will retry");
        }
        let _ = state.store.purge_sessions(now).await;
        // A deleted workspace's erasure a stopped node left unfinished.
        crate::manage::erasure::erase_deleted(state.clone()).await;
        if let Some(days) = state.config.audit_retention_days {
            match state.store.prune_audit(now - chrono::Duration::days(i64::from(days)), now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned audit events past retention; the chain keeps a checkpoint"),
                Err(e) => tracing::warn!(error = %e, "could not prune audit events; will retry"),
            }
        }
    }
}
