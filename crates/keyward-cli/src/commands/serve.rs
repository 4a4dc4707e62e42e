use anyhow::{Context, Result};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::{OsRandom, SystemClock};
use keyward_server::bootstrap::{initialise, InitError, InitOptions};
use keyward_server::{ServerConfig, Services};
use keyward_store::Store;

use crate::args::{GatewayArgs, ServeArgs, ServerFlags};
use crate::datadir;

pub async fn run(a: ServeArgs) -> Result<ExitCode> {
    init_logging();
    let url = datadir::database_url(&a.storage)?;
    let store = Store::connect(&url).await.context("cannot open the database")?;
    let pepper = if store.is_initialised().await? {
        datadir::require_pepper(&a.storage.data_dir)?
    } else {
        let pepper = datadir::load_or_create_pepper(&a.storage.data_dir)?;
        match initialise(&store, &pepper, &SystemClock, &OsRandom, &InitOptions::default()).await {
            Ok(out) => {
                // The one time this key is ever shown; stderr keeps it out of piped stdout.
                eprintln!(
                    "Initialised {} (workspace {}).\nOwner management key (shown once, store it now):\n\n  {}\n",
                    super::init::where_(&a.storage),
                    out.workspace_id,
                    out.management_key
                );
            }
            // Another node initialised it a moment ago: its pepper must be shared with us.
            Err(InitError::AlreadyInitialised) => {}
            Err(e) => return Err(e.into()),
        }
        pepper
    };
    let config = server_config(a.listen, &a.server)?;
    let services = Services { store, pepper, clock: Arc::new(SystemClock), random: Arc::new(OsRandom) };
    keyward_server::run(services, config, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The server settings from the flags `serve` and `gateway` share.
pub(super) fn server_config(listen: std::net::SocketAddr, f: &ServerFlags) -> Result<ServerConfig> {
    let mut config = ServerConfig {
        listen,
        verify_token: f.verify_token.clone(),
        cache_capacity: f.cache_capacity,
        flush_interval: Duration::from_secs(f.flush_interval.max(1)),
        body_limit: f.body_limit,
        signature_window: Duration::from_secs(f.signature_window.max(1)),
        ..ServerConfig::default()
    };
    if !f.trusted_proxies.is_empty() {
        config.trusted_proxies = f
            .trusted_proxies
            .iter()
            .map(|s| {
                keyward_core::ip::parse_entry(s).with_context(|| format!("--trusted-proxy {s:?} is not an IP or CIDR"))
            })
            .collect::<Result<_>>()?;
    }
    Ok(config)
}

/// `keyward gateway`: the proxy over an initialised database.
pub async fn gateway(a: GatewayArgs) -> Result<ExitCode> {
    init_logging();
    let rules = match &a.rules {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            keyward_server::gateway::parse_rules(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => Vec::new(),
    };
    if !(a.upstream.starts_with("http://") || a.upstream.starts_with("https://")) {
        anyhow::bail!("--upstream must be an http:// or https:// URL");
    }
    let url = datadir::database_url(&a.storage)?;
    let store = Store::connect(&url).await.context("cannot open the database")?;
    if !store.is_initialised().await? {
        anyhow::bail!("the database is not initialised: run `keyward init` (or `keyward serve`) first");
    }
    let pepper = datadir::require_pepper(&a.storage.data_dir)?;
    let config = server_config(a.listen, &a.server)?;
    let services = Services { store, pepper, clock: Arc::new(SystemClock), random: Arc::new(OsRandom) };
    let gw = keyward_server::gateway::GatewayConfig { upstream: a.upstream, max_body: a.max_body, rules };
    let server = keyward_server::start_gateway(services, config, gw).await?;
    keyward_server::serve_until(server, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
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
