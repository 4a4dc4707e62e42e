//! The user's CLI config, `~/.keyward/config.toml` (or `KEYWARD_CONFIG`). `keyward login`
//! keeps the server and management key in its `[server]` table; other tables are preserved.
//! Written atomically (temp file + rename), file 0600 in a 0700 folder.

use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

pub fn path() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("KEYWARD_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; set KEYWARD_CONFIG")?;
    Ok(PathBuf::from(home).join(".keyward").join("config.toml"))
}

fn read() -> Result<toml::Table> {
    read_from(&path()?)
}

/// A TOML config file's table; empty when the file does not exist.
pub fn read_from(p: &std::path::Path) -> Result<toml::Table> {
    match fs::read_to_string(p) {
        Ok(s) => s.parse::<toml::Table>().with_context(|| format!("{} is not valid TOML", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(toml::Table::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

fn write(table: &toml::Table) -> Result<()> {
    write_file(&path()?, toml::to_string(table)?.as_bytes())
}

/// Writes a private file atomically: 0600 in a 0700 folder, temp file then rename, so a
/// reader never sees half a file and a crash never leaves one.
pub fn write_file(p: &std::path::Path, contents: &[u8]) -> Result<()> {
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    fs::rename(&tmp, p).with_context(|| format!("cannot write {}", p.display()))?;
    Ok(())
}

pub fn save_login(server: &str, token: &str) -> Result<PathBuf> {
    let mut t = read()?;
    let mut s = toml::Table::new();
    s.insert("url".into(), toml::Value::String(server.to_string()));
    s.insert("token".into(), toml::Value::String(token.to_string()));
    t.insert("server".into(), toml::Value::Table(s));
    write(&t)?;
    path()
}

/// Forgets the saved token (keeps the server address).
pub fn clear_login() -> Result<()> {
    let mut t = read()?;
    if let Some(s) = t.get_mut("server").and_then(|v| v.as_table_mut()) {
        s.remove("token");
        write(&t)?;
    }
    Ok(())
}

/// `(url, token)` saved by `keyward login`, if any.
pub fn load_login() -> Result<(Option<String>, Option<String>)> {
    let t = read()?;
    let s = t.get("server").and_then(|v| v.as_table());
    let get = |k: &str| s.and_then(|s| s.get(k)).and_then(|v| v.as_str()).map(str::to_string);
    Ok((get("url"), get("token")))
}
