//! Key pairs and signed requests: `keys generate|validate|register` and `request`.

use anyhow::{bail, Context, Result};
use std::process::ExitCode;

use keyward_client::signer::{PrivateKey, PublicKey};
use keyward_client::CreateKeyRequest;
use keyward_core::OsRandom;

use crate::args::{PairArgs, PairCommand, RegisterFlags, Remote, RequestArgs};
use crate::keypairs::{self, PairKind};

/// `keyward keys generate|validate|register`.
pub async fn run(cmd: PairCommand) -> Result<ExitCode> {
    match cmd {
        PairCommand::Generate { pair, alg, force, file, api_host } => {
            generate(pair, &alg, force, file.as_deref(), api_host.as_deref())
        }
        PairCommand::Validate { alg, secret, pubkey } => validate(&alg, &secret, &pubkey),
        PairCommand::Register { remote, pair, flags } => register(remote, pair, flags).await,
    }
}

pub fn generate(
    pair: PairArgs,
    alg: &str,
    force: bool,
    file: Option<&std::path::Path>,
    api_host: Option<&str>,
) -> Result<ExitCode> {
    let alg = keypairs::parse_alg(alg)?;
    let kind = PairKind::parse(&pair.key_type)?;
    let key = PrivateKey::generate(alg, &OsRandom);
    let (public, place) = match file {
        Some(f) => (keypairs::save_to_dotenv(f, &key, force)?, f.display().to_string()),
        None => {
            let config = keypairs::config_path(pair.config.as_deref())?;
            let public = keypairs::save_to_config(&config, &pair.env, kind, &key, api_host, force)?;
            (public, format!("[{}] of {}", pair.env, config.display()))
        }
    };
    eprintln!(
        "Saved a new {} {} pair in {place}. Register the public key:",
        alg.as_str(),
        pair.key_type.to_uppercase()
    );
    println!("{public}");
    Ok(ExitCode::SUCCESS)
}

pub fn validate(alg: &str, secret: &str, pubkey: &str) -> Result<ExitCode> {
    let alg = keypairs::parse_alg(alg)?;
    let key = PrivateKey::from_hex(alg, secret).context("--secret is not a valid private key (64 hex characters)")?;
    let given = PublicKey::parse(alg, pubkey.trim()).map_err(|e| anyhow::anyhow!("--pubkey: {e}"))?;
    if key.public_key().to_hex() == given.to_hex() {
        println!("ok: the keys belong together");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("mismatch: this public key is not the private key's");
        Ok(ExitCode::from(1))
    }
}

/// Registers the pair's public key with every setting `keys create` takes (the same
/// request builder, so a flag added there cannot be dropped here).
pub async fn register(remote: Remote, pair: PairArgs, r: RegisterFlags) -> Result<ExitCode> {
    let config = keypairs::config_path(pair.config.as_deref())?;
    let (signer, _) = keypairs::load(&config, &pair.env, PairKind::parse(&pair.key_type)?)?;
    let environment = r.environment.or_else(|| ["test", "live"].contains(&pair.env.as_str()).then(|| pair.env.clone()));
    let mut fields = r.fields;
    fields.name = Some(fields.name.unwrap_or_else(|| format!("{}-{}", pair.env, pair.key_type.to_lowercase())));
    let req = CreateKeyRequest {
        public_key: Some(signer.public_key_hex().to_string()),
        algorithm: Some(signer.algorithm().as_str().to_string()),
        ..super::keys::create_request(&fields, environment, r.key_type, r.expires_in)?
    };
    let k = super::client(&remote, true)?.create_key(&req, r.idempotency_key.as_deref()).await?;
    crate::output::print_key(remote.json, &k)?;
    Ok(ExitCode::SUCCESS)
}

/// `K=V` pairs as a query string, form-encoded, in the order given.
fn query_string(pairs: &[String]) -> Result<String> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else { bail!("--query takes K=V, not {p:?}") };
        q.append_pair(k, v);
    }
    Ok(q.finish())
}

pub async fn request(a: RequestArgs) -> Result<ExitCode> {
    let config = keypairs::config_path(a.pair.config.as_deref())?;
    let (signer, host) = keypairs::load(&config, &a.pair.env, PairKind::parse(&a.pair.key_type)?)?;
    let host = host.with_context(|| {
        format!("no api_host for [{}]: set it in {} or KEYWARD_API_HOST", a.pair.env, config.display())
    })?;
    if !a.path.starts_with('/') {
        bail!("PATH must start with /");
    }
    if let Some(d) = &a.data {
        serde_json::from_str::<serde_json::Value>(d).context("--data must be JSON")?;
    }
    let method = a.method.to_ascii_uppercase();
    let query = query_string(&a.query)?;
    let body = a.data.unwrap_or_default();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let url = format!("{}{}{}{}", host.trim_end_matches('/'), a.path, if query.is_empty() { "" } else { "?" }, query);
    let m = reqwest::Method::from_bytes(method.as_bytes()).context("not an HTTP method")?;
    let mut rb = reqwest::Client::new().request(m, &url);
    for (name, value) in signer.headers(&method, &a.path, &query, body.as_bytes(), now_ms) {
        rb = rb.header(name, value);
    }
    if !body.is_empty() {
        rb = rb.header("content-type", "application/json").body(body);
    }
    let r = rb.send().await.with_context(|| format!("cannot reach {host}"))?;
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    println!("HTTP {}\n{text}", status.as_u16());
    Ok(if status.is_success() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
