//! The data dir: the embedded database and the pepper file. The pepper (the key under which
//! API keys are hashed) lives outside the database: a 0600 file here, or `KEYWARD_PEPPER`
//! (64 hex characters) so several nodes can share it.

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use keyward_core::pepper::Pepper;
use keyward_core::OsRandom;

use clap::Args;

/// The data dir when none is named.
pub const DEFAULT_DATA_DIR: &str = "./keyward-data";
const PEPPER_FILE: &str = "pepper";

/// Where the database is: `--database-url`, or SQLite in the data dir.
#[derive(Debug, Args, Clone)]
pub struct StorageArgs {
    /// Where the embedded database and the pepper file live.
    #[arg(long, env = "KEYWARD_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Use PostgreSQL (postgres://…) instead of the embedded SQLite database.
    #[arg(long, env = "KEYWARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The database pool's size (`serve` and `gateway` set it; other commands need few).
    #[arg(skip)]
    pub pool_size: Option<u32>,
}
const PEPPER_ENV: &str = "KEYWARD_PEPPER";

fn ensure_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))
}

/// Restricts an existing data dir and its secrets to the owner: a dir other users can read,
/// or a pepper or database file they can, is tightened (0700 / 0600) with a warning.
pub fn secure(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tighten = |path: &Path, mode: u32| -> Result<()> {
        let Ok(meta) = fs::metadata(path) else { return Ok(()) };
        let current = meta.permissions().mode() & 0o777;
        if current & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{current:o}"), "others could read this; restricting it");
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot restrict {}", path.display()))?;
        }
        Ok(())
    };
    tighten(dir, 0o700)?;
    for f in [PEPPER_FILE, keyward_store::SQLITE_FILE, "keyward.db-wal", "keyward.db-shm"] {
        tighten(&dir.join(f), 0o600)?;
    }
    Ok(())
}

/// The database URL: `--database-url`, or SQLite inside the data dir (created if needed).
pub fn database_url(s: &StorageArgs) -> Result<String> {
    secure(&s.data_dir)?;
    if let Some(url) = &s.database_url {
        return Ok(url.clone());
    }
    ensure_dir(&s.data_dir)?;
    // Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the same mode.
    let db = s.data_dir.join(keyward_store::SQLITE_FILE);
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&db)
        .with_context(|| format!("cannot create {}", db.display()))?;
    fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", db.display()))?;
    Ok(keyward_store::sqlite_url(&s.data_dir))
}

fn pepper_path(dir: &Path) -> PathBuf {
    dir.join(PEPPER_FILE)
}

/// The pepper from the environment or the data dir; `None` when neither has one.
pub fn load_pepper(dir: &Path) -> Result<Option<Pepper>> {
    if let Ok(v) = std::env::var(PEPPER_ENV) {
        return Pepper::from_hex(&v).map(Some).with_context(|| format!("{PEPPER_ENV} must be 64 hex characters"));
    }
    let path = pepper_path(dir);
    match fs::read_to_string(&path) {
        Ok(s) => Pepper::from_hex(&s)
            .map(Some)
            .with_context(|| format!("{} is not a valid pepper file (64 hex characters)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Loads the pepper, creating a new 0600 pepper file when there is none (first start only).
pub fn load_or_create_pepper(dir: &Path) -> Result<Pepper> {
    if let Some(p) = load_pepper(dir)? {
        return Ok(p);
    }
    ensure_dir(dir)?;
    let pepper = Pepper::generate(&OsRandom);
    let path = pepper_path(dir);
    // Written whole under a private name, then linked into place: a process starting at the
    // same moment either wins the link or reads the winner's complete file, never half of it.
    let tmp = dir.join(format!(".{PEPPER_FILE}.{}.tmp", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(format!("{}\n", pepper.to_hex()).as_bytes())?;
    f.sync_all()?;
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(pepper),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load_pepper(dir)?.with_context(|| format!("{} appeared but cannot be read", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// The pepper of an initialised database: without it no existing key could be verified.
pub fn require_pepper(dir: &Path) -> Result<Pepper> {
    match load_pepper(dir)? {
        Some(p) => Ok(p),
        None => bail!(
            "the database is initialised but there is no pepper: put the pepper file in {} or set {PEPPER_ENV}",
            dir.display()
        ),
    }
}
