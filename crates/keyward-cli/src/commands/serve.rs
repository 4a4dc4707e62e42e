use anyhow::{Context, Result};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::{OsRandom, SystemClock};
use keyward_server::bootstrap::{initialise, InitError, InitOptions};
use keyward_server::{ServerConfig, Services};
use keyward_store::Store;

use crate::args::ServeArgs;
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
    let mut config = ServerConfig {
        listen: a.listen,
        verify_token: a.verify_token,
        cache_capacity: a.cache_capacity,
        flush_interval: Duration::from_secs(a.flush_interval.max(1)),
        body_limit: a.body_limit,
        signature_window: Duration::from_secs(a.signature_window.max(1)),
        ..ServerConfig::default()
    };
    if !a.trusted_proxies.is_empty() {
        config.trusted_proxies = a
            .trusted_proxies
            .iter()
            .map(|s| {
                keyward_core::ip::parse_entry(s).with_context(|| format!("--trusted-proxy {s:?} is not an IP or CIDR"))
            })
            .collect::<Result<_>>()?;
    }
    let services = Services { store, pepper, clock: Arc::new(SystemClock), random: Arc::new(OsRandom) };
    keyward_server::run(services, config, shutdown_signal()).await?;
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
