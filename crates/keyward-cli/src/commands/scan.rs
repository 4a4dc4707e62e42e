//! `keyward scan`: Keyward keys in files and folders, or in every blob of a git history.
//! The search is `keyward_core::keyscan` (one SIMD pass for the kind markers, then the one
//! key format and checksum, through a window of bounded size); this file walks, reads,
//! prints and reports.
//! Exit status: 1 when a key was found, 0 when none, 2 on errors (errors win).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use keyward_core::keyformat::TokenKind;
use keyward_core::keyscan::{Found, Scanner};
use serde::Serialize;

use crate::args::ScanArgs;

/// A gitleaks rule for Keyward keys. gitleaks cannot check the checksum, so it may flag a
/// look-alike that `keyward scan` would not.
const GITLEAKS: &str = r#"# Keyward keys: secret keys (<prefix>_<env>_sk_…), management keys (_mk_), verify
# tokens (_vt_), session tokens (_st_) and operator tokens (kw_op_…). The last 6 characters
# are a CRC32 of the 43 before them, which gitleaks cannot check: `keyward scan` does, and
# ignores look-alikes.
[[rules]]
id = "keyward-key"
description = "Keyward API key"
regex = '''\b[a-z][a-z0-9]{0,15}_(?:[a-z0-9]{1,16}_sk|mk|vt|st|op)_[A-Za-z0-9]{49}\b'''
keywords = ["_sk_", "_mk_", "_vt_", "_st_", "_op_"]
"#;

/// One key found. `key` is kept for `--report` and never printed.
#[derive(Debug, Serialize)]
struct Finding {
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    path: String,
    line: usize,
    kind: &'static str,
    prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
    /// The key's start (prefix, kind and 4 characters), as the API shows it.
    start: String,
    #[serde(skip)]
    key: String,
}

fn kind_name(k: TokenKind) -> &'static str {
    match k {
        TokenKind::Secret => "secret_key",
        TokenKind::Management => "management_key",
        TokenKind::Session => "session_token",
        TokenKind::Verify => "verify_token",
        TokenKind::Operator => "operator_token",
    }
}

/// The window each file or blob is read through: a file of any size costs this much.
const WINDOW: usize = 4 << 20;

fn finding(f: &Found<'_>, line: usize, path: &str, commit: Option<&str>) -> Finding {
    Finding {
        commit: commit.map(str::to_string),
        path: path.to_string(),
        line,
        kind: kind_name(f.parsed.kind),
        prefix: f.parsed.prefix.to_string(),
        environment: f.parsed.environment.map(str::to_string),
        start: f.parsed.start.to_string(),
        key: f.token.to_string(),
    }
}

/// The findings of one stream, read through `buf` (the thread's window), with 1-based line
/// numbers; what was found before a read error is kept with the error.
fn findings(
    buf: &mut Vec<u8>,
    mut from: impl Read,
    path: &str,
    commit: Option<&str>,
) -> (Vec<Finding>, Option<std::io::Error>) {
    let mut out = Vec::new();
    let read = |b: &mut [u8]| loop {
        match from.read(b) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    };
    let r = Scanner.find_streamed(buf, WINDOW, read, |line, f| out.push(finding(&f, line, path, commit)));
    (out, r.err())
}

pub async fn run(a: ScanArgs) -> Result<ExitCode> {
    if a.gitleaks_config {
        print!("{GITLEAKS}");
        return Ok(ExitCode::SUCCESS);
    }
    let ScanArgs { paths, git, json, report, .. } = a;
    let (found, errors) = tokio::task::spawn_blocking(move || {
        let paths = if paths.is_empty() { vec![PathBuf::from(".")] } else { paths };
        if git {
            let mut all = Vec::new();
            let mut errors = Vec::new();
            for repo in &paths {
                match scan_git(repo) {
                    Ok(f) => all.extend(f),
                    Err(e) => errors.push(format!("{}: {e:#}", repo.display())),
                }
            }
            (all, errors)
        } else {
            scan_paths(&paths)
        }
    })
    .await?;
    for e in &errors {
        eprintln!("error: {e}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        for f in &found {
            let place = match &f.commit {
                Some(c) => format!("{c}:{}:{}", f.path, f.line),
                None => format!("{}:{}", f.path, f.line),
            };
            println!("{place}: {} {}…", f.kind, f.start);
        }
        if !found.is_empty() {
            eprintln!("{} Keyward key(s) found", found.len());
        }
    }
    let mut failed = !errors.is_empty();
    if let Some(server) = report {
        if let Err(e) = send_reports(&server, &found).await {
            eprintln!("error: {e:#}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::from(2)
    } else if found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every file under `paths` (symbolic links not followed, `.git` folders skipped: `--git`
/// reads history), read on as many threads as there are cores.
fn scan_paths(paths: &[PathBuf]) -> (Vec<Finding>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) => {
                errors.push(format!("{}: {e}", p.display()));
                continue;
            }
        };
        if meta.is_dir() {
            if p.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            match std::fs::read_dir(&p) {
                Ok(rd) => stack.extend(rd.filter_map(|e| e.ok().map(|e| e.path()))),
                Err(e) => errors.push(format!("{}: {e}", p.display())),
            }
        } else if meta.is_file() {
            files.push(p);
        }
    }
    let next = AtomicUsize::new(0);
    let out = Mutex::new((Vec::new(), errors));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(16);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let (found, error) = match std::fs::File::open(path) {
                        Ok(f) => findings(&mut buf, f, &path.display().to_string(), None),
                        Err(e) => (Vec::new(), Some(e)),
                    };
                    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                    o.0.extend(found);
                    if let Some(e) = error {
                        o.1.push(format!("{}: {e}", path.display()));
                    }
                }
            });
        }
    });
    let (mut found, errors) = out.into_inner().unwrap_or_else(|p| p.into_inner());
    found.sort_by(|a: &Finding, b: &Finding| (&a.path, a.line).cmp(&(&b.path, b.line)));
    (found, errors)
}

/// Every blob in the history of `repo` (all refs), each read once, named by the oldest
/// commit that brought it in and its path there.
fn scan_git(repo: &Path) -> Result<Vec<Finding>> {
    let log = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "core.quotePath=false",
            "log",
            "--all",
            "--no-renames",
            "--raw",
            "--no-abbrev",
            "--format=commit %H",
        ])
        .stderr(Stdio::piped())
        .output()
        .context("cannot run git (is it on PATH?)")?;
    if !log.status.success() {
        return Err(anyhow!("git log failed: {}", String::from_utf8_lossy(&log.stderr).trim()));
    }
    // blob -> (commit, path); a later line is an older commit, which overwrites.
    let mut blobs: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut commit = String::new();
    for line in String::from_utf8_lossy(&log.stdout).lines() {
        if let Some(c) = line.strip_prefix("commit ") {
            commit = c.chars().take(12).collect();
        } else if let Some(raw) = line.strip_prefix(':') {
            let Some((meta, path)) = raw.split_once('\t') else { continue };
            let Some(new) = meta.split_whitespace().nth(3) else { continue };
            if new.bytes().all(|b| b == b'0') {
                continue; // a deletion
            }
            blobs.insert(new.to_string(), (commit.clone(), path.to_string()));
        }
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run git cat-file")?;
    let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("git cat-file has no stdin"))?;
    let ids: Vec<String> = blobs.keys().cloned().collect();
    // Written from a thread of its own: git answers while it reads, and both pipes are bounded.
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        for id in ids {
            writeln!(stdin, "{id}")?;
        }
        Ok(())
    });
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("git cat-file has no stdout"))?;
    let mut reader = BufReader::new(stdout);
    let mut found = Vec::new();
    let mut header = String::new();
    let mut buf = Vec::new();
    loop {
        header.clear();
        if reader.read_line(&mut header)? == 0 {
            break;
        }
        let mut parts = header.split_whitespace();
        let (Some(id), Some(kind), Some(size)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let size: u64 = size.parse().context("git cat-file: bad size")?;
        // The content, read through the window (a blob of any size costs that), then its
        // closing newline.
        let mut content = (&mut reader).take(size);
        match blobs.get(id).filter(|_| kind == "blob") {
            Some((commit, path)) => {
                let (f, error) = findings(&mut buf, &mut content, path, Some(commit));
                if let Some(e) = error {
                    return Err(e).context("git cat-file");
                }
                found.extend(f);
            }
            None => {
                std::io::copy(&mut content, &mut std::io::sink())?;
            }
        }
        if content.limit() > 0 {
            return Err(anyhow!("git cat-file: a blob ended early"));
        }
        reader.read_exact(&mut [0u8; 1])?;
    }
    writer.join().map_err(|_| anyhow!("the git writer panicked"))??;
    let status = child.wait()?;
    if !status.success() {
        return Err(anyhow!("git cat-file failed"));
    }
    found.sort_by(|a, b| (&a.commit, &a.path, a.line).cmp(&(&b.commit, &b.path, b.line)));
    Ok(found)
}

/// Sends each distinct key to `server`'s `POST /v1/leaks`, with where it was found.
async fn send_reports(server: &str, found: &[Finding]) -> Result<()> {
    let url = if server.trim_end_matches('/').ends_with("/v1/leaks") {
        server.to_string()
    } else {
        format!("{}/v1/leaks", server.trim_end_matches('/'))
    };
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let mut sent = HashSet::new();
    for f in found {
        if !sent.insert(f.key.as_str()) {
            continue;
        }
        let place = match &f.commit {
            Some(c) => format!("git:{c}:{}:{}", f.path, f.line),
            None => format!("file:{}:{}", f.path, f.line),
        };
        let r = client
            .post(&url)
            .json(&serde_json::json!({"key": f.key, "url": place}))
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        if r.status() != reqwest::StatusCode::ACCEPTED {
            return Err(anyhow!("{url} answered {} for {}…", r.status(), f.start));
        }
    }
    eprintln!("{} key(s) reported to {url}", sent.len());
    Ok(())
}
