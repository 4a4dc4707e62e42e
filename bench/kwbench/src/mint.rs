//! Keys made offline for `bench/coldstart.sh`: secrets of a key's shape, and (given the
//! server's pepper) the rows that store them — id, HMAC and display hint, tab-separated for
//! PostgreSQL's `COPY` — so a million keys reach the database in one statement instead of a
//! million API calls. Without `--rows-out` the secrets are made up: no key has them.

use std::io::{BufWriter, Write};

use anyhow::{bail, Context, Result};
use keyward_core::keyformat;
use keyward_core::pepper::{hex_encode, Pepper};
use keyward_core::OsRandom;

#[derive(clap::Args)]
pub struct Args {
    /// The part of a secret before `_sk_`: prefix and environment, e.g. `kw_live`.
    #[arg(long)]
    stem: String,
    #[arg(long)]
    count: usize,
    /// The first `keep` secrets (all by default), one per line.
    #[arg(long)]
    secrets_out: std::path::PathBuf,
    #[arg(long)]
    keep: Option<usize>,
    /// `id<TAB>hash<TAB>start` of every key, for `COPY`; needs the pepper.
    #[arg(long)]
    rows_out: Option<std::path::PathBuf>,
    /// The server's pepper (64 hex characters; `KEYWARD_PEPPER`).
    #[arg(long, env = "KEYWARD_PEPPER", hide_env_values = true)]
    pepper: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let Some((prefix, environment)) = a.stem.rsplit_once('_') else { bail!("--stem is PREFIX_ENVIRONMENT") };
    let pepper = match (&a.rows_out, &a.pepper) {
        (Some(_), Some(p)) => Some(Pepper::from_hex(p).context("the pepper is 64 hex characters")?),
        (Some(_), None) => bail!("--rows-out needs the pepper (--pepper or KEYWARD_PEPPER)"),
        (None, _) => None,
    };
    let mut secrets = BufWriter::new(std::fs::File::create(&a.secrets_out)?);
    let mut rows = a.rows_out.as_ref().map(std::fs::File::create).transpose()?.map(BufWriter::new);
    let keep = a.keep.unwrap_or(a.count);
    let now = chrono::Utc::now();
    for i in 0..a.count {
        let secret = keyformat::generate_secret(prefix, environment, &OsRandom);
        if i < keep {
            writeln!(secrets, "{secret}")?;
        }
        if let (Some(rows), Some(pepper)) = (rows.as_mut(), &pepper) {
            let start = keyformat::parse(&secret).map(|p| p.start).context("a made key parses")?;
            let id = keyward_core::ids::new_id("key", now, &OsRandom);
            writeln!(rows, "{id}\t{}\t{start}", hex_encode(&pepper.hash_bytes(&secret)))?;
        }
    }
    secrets.flush()?;
    if let Some(mut r) = rows {
        r.flush()?;
    }
    Ok(())
}
