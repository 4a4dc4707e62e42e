//! Key pairs for signed requests, kept on the developer's side: one `[<env>]` section per
//! environment of the config file (`api_key` / `api_secret` / `api_alg`, or `app_…` for an
//! APP pair, and the `api_host` requests go to), or a dotenv file. Files are written 0600 in
//! a 0700 folder, atomically, and an existing pair is replaced only with `--force`.
//! `KEYWARD_API_KEY`, `KEYWARD_API_SECRET` and `KEYWARD_API_HOST` override the file.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

use keyward_client::signer::{Algorithm, PrivateKey, Signer};

use crate::userconfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairKind {
    Api,
    App,
}

impl PairKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "API" => Ok(PairKind::Api),
            "APP" => Ok(PairKind::App),
            _ => bail!("--key-type must be API or APP, not {s:?}"),
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            PairKind::Api => "api",
            PairKind::App => "app",
        }
    }
}

pub fn parse_alg(s: &str) -> Result<Algorithm> {
    Algorithm::parse(s).with_context(|| format!("--alg must be ed25519 or secp256k1, not {s:?}"))
}

/// `--config`, else `KEYWARD_CONFIG`, else `~/.keyward/config.toml`.
pub fn config_path(explicit: Option<&Path>) -> Result<PathBuf> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => userconfig::path(),
    }
}

fn check_env_name(env: &str) -> Result<()> {
    // `[server]` holds what `keyward login` saved.
    if env.is_empty() || env == "server" || !env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        bail!("--env must be letters, digits, - or _ (and not \"server\"), not {env:?}");
    }
    Ok(())
}

/// Writes a new pair into the config section `env`; returns the public key (hex).
pub fn save_to_config(
    config: &Path,
    env: &str,
    kind: PairKind,
    key: &PrivateKey,
    api_host: Option<&str>,
    force: bool,
) -> Result<String> {
    check_env_name(env)?;
    let mut table = userconfig::read_from(config)?;
    let section = table.entry(env.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(section) = section else { bail!("[{env}] in {} is not a table", config.display()) };
    let p = kind.prefix();
    if section.contains_key(&format!("{p}_secret")) && !force {
        bail!(
            "{} already holds a {} pair for [{env}]; nothing was changed (use --force to replace it)",
            config.display(),
            p.to_uppercase()
        );
    }
    let public = key.public_key().to_hex();
    section.insert(format!("{p}_key"), public.clone().into());
    section.insert(format!("{p}_secret"), key.to_hex().into());
    section.insert(format!("{p}_alg"), key.algorithm().as_str().into());
    if let Some(h) = api_host {
        section.insert("api_host".into(), h.into());
    }
    userconfig::write_file(config, toml::to_string(&table)?.as_bytes())?;
    Ok(public)
}

/// Writes a new pair as a dotenv file; returns the public key (hex).
pub fn save_to_dotenv(path: &Path, key: &PrivateKey, force: bool) -> Result<String> {
    if path.exists() && !force {
        bail!("{} exists; nothing was changed (use --force to replace it)", path.display());
    }
    let public = key.public_key().to_hex();
    let body = format!(
        "KEYWARD_API_KEY={public}\nKEYWARD_API_SECRET={}\nKEYWARD_API_ALG={}\n",
        key.to_hex(),
        key.algorithm().as_str()
    );
    userconfig::write_file(path, body.as_bytes())?;
    Ok(public)
}

/// The configured pair of `env` (environment variables first) and its `api_host`.
pub fn load(config: &Path, env: &str, kind: PairKind) -> Result<(Signer, Option<String>)> {
    let table = userconfig::read_from(config)?;
    let section = table.get(env).and_then(|v| v.as_table());
    let p = kind.prefix();
    let from_file = |k: &str| section.and_then(|s| s.get(k)).and_then(|v| v.as_str()).map(str::to_string);
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let secret = var("KEYWARD_API_SECRET").or_else(|| from_file(&format!("{p}_secret"))).with_context(|| {
        format!("no key pair for [{env}] in {}: run `keyward keys generate --env {env}`", config.display())
    })?;
    let alg = var("KEYWARD_API_ALG").or_else(|| from_file(&format!("{p}_alg"))).unwrap_or_else(|| "ed25519".into());
    let signer =
        Signer::from_hex(parse_alg(&alg)?, &secret).context("the configured secret is not a valid private key")?;
    if let Some(public) = var("KEYWARD_API_KEY").or_else(|| from_file(&format!("{p}_key"))) {
        if !public.eq_ignore_ascii_case(signer.public_key_hex()) {
            bail!("the configured key and secret do not belong together");
        }
    }
    Ok((signer, var("KEYWARD_API_HOST").or_else(|| from_file("api_host"))))
}
