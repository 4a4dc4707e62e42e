use anyhow::{Context, Result};
use std::process::ExitCode;
use std::sync::Arc;

use keyward_core::{OsRandom, SystemClock};
use keyward_server::bootstrap::{initialise, InitError, InitOptions};
use keyward_server::{ServerConfig, Services};
use keyward_store::Store;

use crate::args::{GatewayArgs, ServeArgs, StorageArgs};
use crate::datadir;
use crate::settings::{ConfigFile, GatewaySettings, ServerSettings, Span, GATEWAY_LISTEN};

/// The API's effective settings: flags and environment over the config file.
fn serve_settings(a: &ServeArgs) -> Result<(StorageArgs, ServerConfig, bool)> {
    let file = ConfigFile::from_arg(a.config.path.as_deref())?;
    let settings = a.server.clone().or(file.server);
    let listen = a.listen.or(file.listen).unwrap_or(ServerConfig::default().listen);
    let mut config = settings.resolve(listen)?;
    config.ext_authz_listen = a.ext_authz_listen.or(file.ext_authz.listen);
    Ok((settings.storage(), config, settings.json_logs()?))
}

pub async fn run(a: ServeArgs) -> Result<ExitCode> {
    let (storage, mut config, json) = serve_settings(&a)?;
    init_logging(json);
    fit_connections_to_descriptors(&mut config);
    let url = datadir::database_url(&storage)?;
    let store = Store::connect_pooled(&url, storage.pool_size).await.context("cannot open the database")?;
    // Whom the console's first sign-in is for, said once the address is bound.
    let mut first_owner = None;
    let pepper = if store.is_initialised().await? {
        datadir::require_pepper(&storage.data_dir)?
    } else {
        let pepper = datadir::load_or_create_pepper(&storage.data_dir)?;
        match initialise(&store, &pepper, &SystemClock, &OsRandom, &InitOptions::default()).await {
            Ok(out) => {
                // The one time this key is ever shown; stderr keeps it out of piped stdout.
                eprintln!(
                    "Initialised {} (workspace {}).\nOwner management key (shown once, store it now):\n\n  {}\n",
                    super::init::where_(&storage),
                    out.workspace_id,
                    out.management_key
                );
                first_owner = Some(InitOptions::default().owner_email);
                if let Some(op) = &out.operator_token {
                    eprintln!("Operator token (shown once; manages workspaces, docs/OPERATORS.md):\n\n  {op}\n");
                }
            }
            // Another node initialised it a moment ago: its pepper must be shared with us.
            Err(InitError::AlreadyInitialised) => {}
            Err(e) => return Err(e.into()),
        }
        pepper
    };
    let services = Services { store, pepper, clock: Arc::new(SystemClock), random: Arc::new(OsRandom) };
    let tls = config.tls.is_some();
    let server = keyward_server::start(services, config).await?;
    // Said once bound, so the address is the real one (port 0 included).
    let console = console_url(server.addr, tls);
    match first_owner {
        Some(email) => {
            let base = console.trim_end_matches("/console");
            eprintln!("{}", super::init::first_login(&email, Some(base)));
        }
        None => eprintln!("Console: {console}"),
    }
    keyward_server::serve_until(server, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Where a browser on this machine reaches the console of a server bound to `addr` (an
/// unspecified address such as 0.0.0.0 answers on the loopback too).
pub fn console_url(addr: std::net::SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("{scheme}://{host}:{}/console", addr.port())
}

/// `keyward config show`: what `serve` with the same flags, environment and file would run
/// with, as a config file; secrets redacted.
pub fn show_config(a: ServeArgs) -> Result<ExitCode> {
    let file = ConfigFile::from_arg(a.config.path.as_deref())?;
    let settings = a.server.clone().or(file.server).or(ServerSettings::defaults());
    let listen = a.listen.or(file.listen).unwrap_or(ServerConfig::default().listen);
    // Resolving checks every value, as `serve` would.
    settings.resolve(listen)?;
    let mut out = toml::Table::new();
    out.insert("listen".into(), toml::Value::String(listen.to_string()));
    if let toml::Value::Table(t) = toml::Value::try_from(&settings)? {
        out.extend(t);
    }
    let defaults = keyward_server::gateway::GatewayConfig::new("", Vec::new());
    let gateway = file.gateway.or(GatewaySettings {
        listen: GATEWAY_LISTEN.parse().ok(),
        max_body: Some(defaults.max_body),
        upstream_timeout: Some(Span(defaults.upstream_timeout)),
        allow_path_parameters: Some(defaults.allow_path_parameters),
        ..Default::default()
    });
    out.insert("gateway".into(), toml::Value::try_from(&gateway)?);
    // Off unless set: shown only when it is.
    if let Some(listen) = a.ext_authz_listen.or(file.ext_authz.listen) {
        let section = crate::settings::ExtAuthzSection { listen: Some(listen) };
        out.insert("ext_authz".into(), toml::Value::try_from(&section)?);
    }
    if let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) {
        let tls = crate::settings::TlsSection { cert: Some(cert.clone()), key: Some(key.clone()) };
        out.insert("tls".into(), toml::Value::try_from(&tls)?);
    }
    // Off unless set; the client secret redacted.
    if let Some(oidc) = crate::settings::OidcSection::of(&settings) {
        out.insert("oidc".into(), toml::Value::try_from(&oidc)?);
    }
    print!("{}", toml::to_string(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// `keyward gateway`: the proxy over an initialised database.
pub async fn gateway(a: GatewayArgs) -> Result<ExitCode> {
    let file = ConfigFile::from_arg(a.config.path.as_deref())?;
    let settings = a.server.clone().or(file.server);
    init_logging(settings.json_logs()?);
    let gw = a.gateway.clone().or(file.gateway);
    let Some(upstream) = gw.upstream else {
        anyhow::bail!("--upstream (KEYWARD_UPSTREAM, or upstream under [gateway]) is required");
    };
    let rules = match &gw.rules {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            keyward_server::gateway::parse_rules(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => Vec::new(),
    };
    if !(upstream.starts_with("http://") || upstream.starts_with("https://")) {
        anyhow::bail!("--upstream must be an http:// or https:// URL");
    }
    let listen = match gw.listen {
        Some(l) => l,
        None => GATEWAY_LISTEN.parse().context("default gateway address")?,
    };
    let storage = settings.storage();
    let mut config = settings.resolve(listen)?;
    fit_connections_to_descriptors(&mut config);
    let url = datadir::database_url(&storage)?;
    let store = Store::connect_pooled(&url, storage.pool_size).await.context("cannot open the database")?;
    if !store.is_initialised().await? {
        anyhow::bail!("the database is not initialised: run `keyward init` (or `keyward serve`) first");
    }
    let pepper = datadir::require_pepper(&storage.data_dir)?;
    let services = Services { store, pepper, clock: Arc::new(SystemClock), random: Arc::new(OsRandom) };
    let (max_body, upstream_timeout, workspace) = (gw.max_body, gw.upstream_timeout, gw.workspace);
    let allow_path_parameters = gw.allow_path_parameters.unwrap_or(false);
    let environment = gw.environment;
    let ca_pem = match &gw.ca_cert {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?),
        None => None,
    };
    let mut gw = keyward_server::gateway::GatewayConfig::new(upstream, rules);
    gw.workspace = workspace;
    gw.environment = environment;
    gw.ca_pem = ca_pem;
    gw.allow_path_parameters = allow_path_parameters;
    if let Some(m) = max_body {
        gw.max_body = m;
    }
    if let Some(Span(t)) = upstream_timeout {
        if t.is_zero() {
            anyhow::bail!("upstream_timeout must be more than 0");
        }
        gw.upstream_timeout = t;
    }
    let server = keyward_server::start_gateway(services, config, gw).await?;
    keyward_server::serve_until(server, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Raises the open-file soft limit to the hard limit (a common default of 1,024 would stop
/// every request at a thousand idle sockets), and keeps `max_connections` under it, with room
/// for the database pool, the listener and log files.
fn fit_connections_to_descriptors(config: &mut ServerConfig) {
    const RESERVED: u64 = 128;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let room = usize::try_from(limit.saturating_sub(RESERVED)).unwrap_or(usize::MAX).max(1);
            if config.max_connections > room {
                tracing::warn!(
                    max_connections = config.max_connections,
                    open_files = limit,
                    "the open-file limit allows fewer connections; lowering max_connections to {room}"
                );
                config.max_connections = room;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { fmt.json().with_current_span(true).try_init() } else { fmt.with_ansi(ansi).try_init() };
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
