//! The user's CLI config, `~/.keyward/config.toml` (or `KEYWARD_CONFIG`). `keyward login`
//! keeps the server and management key in its `[server]` table; other tables are preserved.
//! Written atomically (temp file + rename), file 0600 in a 0700 folder. Read, it is checked:
//! a key the CLI does not know (a typo) is named in a warning, and a credential in a file
//! others may read is warned about — warnings, so a newer file still works with this CLI.

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

/// The keys of `[server]`, and of an environment's section (`keyward keys generate`).
const SERVER_KEYS: [&str; 2] = ["url", "token"];
const PAIR_KEYS: [&str; 7] = ["api_key", "api_secret", "api_alg", "app_key", "app_secret", "app_alg", "api_host"];

/// What in the file the CLI does not know, one sentence each.
pub fn unknown_keys(t: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    for (name, v) in t {
        match (name.as_str(), v) {
            ("server", toml::Value::Table(s)) => out.extend(
                s.keys()
                    .filter(|k| !SERVER_KEYS.contains(&k.as_str()))
                    .map(|k| format!("unknown key `server.{k}` (known: {})", SERVER_KEYS.join(", "))),
            ),
            (_, toml::Value::Table(s)) => out.extend(
                s.keys()
                    .filter(|k| !PAIR_KEYS.contains(&k.as_str()))
                    .map(|k| format!("unknown key `{name}.{k}` (known: {})", PAIR_KEYS.join(", "))),
            ),
            _ => out.push(format!("unknown key `{name}` (settings go in [server] or an environment's section)")),
        }
    }
    out
}

/// Whether the file holds a credential: a saved token or a key pair's private key.
fn holds_credential(t: &toml::Table) -> bool {
    t.values().filter_map(toml::Value::as_table).any(|s| s.keys().any(|k| k == "token" || k.ends_with("_secret")))
}

/// Warns once per file and process about what [`unknown_keys`] finds and about a credential
/// that group or others may read (mode bits `0o077`).
fn warn_about(p: &std::path::Path, t: &toml::Table, mode: u32) {
    static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut warned) = WARNED.lock() else { return };
    if warned.iter().any(|w| w == p) {
        return;
    }
    warned.push(p.to_path_buf());
    for w in unknown_keys(t) {
        eprintln!("warning: {}: {w}", p.display());
    }
    if mode & 0o077 != 0 && holds_credential(t) {
        eprintln!(
            "warning: {} holds a credential and is readable by others (mode {:o}): run chmod 600 {}",
            p.display(),
            mode & 0o777,
            p.display()
        );
    }
}

/// A TOML config file's table; empty when the file does not exist.
pub fn read_from(p: &std::path::Path) -> Result<toml::Table> {
    match fs::read_to_string(p) {
        Ok(s) => {
            let t = s.parse::<toml::Table>().with_context(|| format!("{} is not valid TOML", p.display()))?;
            let mode = fs::metadata(p).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions())).unwrap_or(0);
            warn_about(p, &t, mode);
            Ok(t)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let t: toml::Table =
            "color = 1\n[server]\nurl = \"x\"\ntokn = \"y\"\n[live]\napi_key = \"k\"\napi_hots = \"h\"\n"
                .parse()
                .unwrap();
        let w = unknown_keys(&t);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w.iter().any(|l| l.contains("`server.tokn`")) && w.iter().any(|l| l.contains("`live.api_hots`")));
        assert!(w.iter().any(|l| l.starts_with("unknown key `color`")));
        assert!(!holds_credential(&t));
        let login: toml::Table = "[server]\nurl = \"x\"\ntoken = \"t\"\n".parse().unwrap();
        assert!(unknown_keys(&login).is_empty() && holds_credential(&login));
    }
}
