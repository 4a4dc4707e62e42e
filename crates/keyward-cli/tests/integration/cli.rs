//! The `keyward` binary as users run it: `init`, `serve` (auto-init, SIGTERM), `login`,
//! `keys …` and `verify`, with two server processes sharing one database.

use keyward_testkit::{Backend, TestDb};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

on_both_backends!(
    init_prints_once_and_refuses_to_reinit,
    serve_and_cli_end_to_end,
    two_serve_processes_share_revocations
);

const BIN: &str = env!("CARGO_BIN_EXE_keyward");

/// Storage flags for a backend: the data dir always holds the pepper file.
pub(crate) fn storage(db: &TestDb, data_dir: &Path) -> Vec<String> {
    let mut a = vec!["--data-dir".to_string(), data_dir.display().to_string()];
    if db.is_postgres() {
        a.extend(["--database-url".to_string(), db.url.clone()]);
    }
    a
}

/// A user's environment: its own HOME, so `login` never touches the real one.
pub(crate) struct User {
    pub(crate) home: tempfile::TempDir,
}

impl User {
    pub(crate) fn new() -> User {
        User { home: tempfile::tempdir().unwrap() }
    }

    fn config(&self) -> PathBuf {
        self.home.path().join(".keyward").join("config.toml")
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("run keyward")
    }

    /// Runs and expects success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "keyward {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("keyward {args:?} printed no JSON ({e}): {out}"))
    }
}

/// A `keyward serve` process on an ephemeral port; its stderr is collected.
pub(crate) struct Serve {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Serve {
    pub(crate) fn spawn(args: &[String], env: &[(&str, &str)]) -> Serve {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("KEYWARD_PEPPER")
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keyward serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("keyward listening") {
                    // `addr=…` in text logs, `"addr":"…"` in JSON ones.
                    let addr = line.split("addr=").nth(1).map(|a| a.trim().to_string()).or_else(|| {
                        line.split("\"addr\":\"").nth(1).and_then(|a| a.split('"').next()).map(str::to_string)
                    });
                    if let Some(addr) = addr {
                        let _ = tx.send(addr);
                    }
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("serve did not start: {}", log.lock().unwrap())
        });
        Serve { child, addr, log }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `kill -9`: no shutdown, no flush; waits until the process is gone.
    pub(crate) fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status (within 30 s).
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let started = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (st, self.log());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("serve ignored SIGTERM: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The management key `serve` prints on its first start (the line after the notice).
pub(crate) fn printed_management_key(log: &str) -> String {
    log.lines()
        .map(str::trim)
        .find(|l| l.contains("_mk_") && !l.contains(' '))
        .unwrap_or_else(|| panic!("no management key printed: {log}"))
        .to_string()
}

fn occurrences(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

async fn init_prints_once_and_refuses_to_reinit(b: Backend) {
    let db = TestDb::new(&b).await;
    let data = db.dir.path().join("data");
    let user = User::new();
    let st = storage(&db, &data);
    let mut args: Vec<&str> = vec!["init", "--workspace", "acme", "--prefix", "acme", "--json"];
    args.extend(st.iter().map(String::as_str));
    let v = user.json(&args);
    let mk = v["management_key"].as_str().unwrap().to_string();
    assert!(mk.starts_with("acme_mk_"), "{mk}");
    assert!(v["workspace_id"].as_str().unwrap().starts_with("ws_"), "{v}");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("pepper")), 0o600);
    let pepper = std::fs::read(data.join("pepper")).unwrap();

    // A second init fails, says why, and changes nothing: the pepper and the first key stay.
    let o = user.run(&args);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already initialised"), "{o:?}");
    assert!(o.stdout.is_empty(), "nothing is printed on stdout when refused");
    assert_eq!(std::fs::read(data.join("pepper")).unwrap(), pepper);

    // Without --json, init says where the console is and whom to sign in as.
    let other = db.dir.path().join("other");
    let o = user.run(&["init", "--data-dir", other.to_str().unwrap(), "--owner-email", "Ops@Example.com"]);
    assert!(o.status.success(), "{o:?}");
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("Console: http://127.0.0.1:5399/console"), "{said}");
    assert!(said.contains("sign in as ops@example.com") && said.contains("keyward members password"), "{said}");

    let s = Serve::spawn(&st, &[]);
    assert!(!s.log().contains("_mk_"), "an initialised data dir prints no new management key");
    // serve names the console's URL at the address it bound.
    assert!(s.log().contains(&format!("Console: {}/console", s.url())), "{}", s.log());
    let r = reqwest::Client::new().get(format!("{}/v1/keys", s.url())).bearer_auth(&mk).send().await.unwrap();
    assert_eq!(r.status(), 200, "the first init's key still works");
    let created = user.json(&["keys", "create", "--server", &s.url(), "--token", &mk, "--name", "p", "--json"]);
    assert!(created["secret"].as_str().unwrap().starts_with("acme_test_sk_"), "the prefix from init is used");
    let (status, _) = s.terminate();
    assert!(status.success());
    db.drop_db().await;
}

async fn serve_and_cli_end_to_end(b: Backend) {
    let db = TestDb::new(&b).await;
    let data = db.dir.path().join("data");
    let st = storage(&db, &data);
    // Last-used marks stay in memory for this run: only the SIGTERM flush can write them.
    let s = Serve::spawn(&st, &[("KEYWARD_FLUSH_INTERVAL", "3600")]);
    let mk = printed_management_key(&s.log());
    assert_eq!(mode(&data.join("pepper")), 0o600);
    let user = User::new();
    let url = s.url();

    // A second serve on the same address names the address it could not bind.
    let taken = url.trim_start_matches("http://").to_string();
    let mut again: Vec<&str> = vec!["serve", "--listen", &taken];
    again.extend(st.iter().map(String::as_str));
    let o = user.run(&again);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("cannot listen on {taken}")), "{o:?}");

    // The first start names the console and the owner to sign in as, at the address it
    // bound (port 0 picked another than the default).
    let line = s.log().lines().find(|l| l.contains("sign in as owner@localhost")).map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("no first sign-in line: {}", s.log()));
    assert!(line.starts_with(&format!("Console: {url}/console")), "{line}");
    assert!(line.contains(&format!("keyward login --server {url} ")) && !s.log().contains(":5399"), "{line}");

    // A wrong token is refused and nothing is saved.
    let o = user.run(&["login", "--server", &url, "--token", "kw_mk_wrong"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("answered, and refused this token"), "{o:?}");
    assert!(!user.config().exists());
    // A URL without a scheme, and no server at all, each say so.
    let bare = url.trim_start_matches("http://");
    let o = user.run(&["login", "--server", bare, "--token", &mk]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("has no scheme: write http://{bare}")), "{o:?}");
    let o = user.run(&["login", "--server", "http://127.0.0.1:1", "--token", &mk]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot reach a Keyward server at http://127.0.0.1:1"),
        "{o:?}"
    );
    assert!(!user.config().exists());
    user.ok(&["login", "--server", &url, "--token", &mk]);
    assert_eq!(mode(&user.config()), 0o600);
    assert_eq!(mode(user.config().parent().unwrap()), 0o700);

    let created = user.json(&[
        "keys",
        "create",
        "--name",
        "billing",
        "--env",
        "live",
        "--permission",
        "wallet.read,tx.create",
        "--scope",
        "wallet:*",
        "--json",
    ]);
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("kw_live_sk_"));
    // `--permissions` is accepted for `--permission`.
    let aliased = user.json(&["keys", "create", "--name", "aliased", "--permissions", "a.read,b.write", "--json"]);
    assert_eq!(aliased["permissions"], serde_json::json!(["a.read", "b.write"]), "{aliased}");
    let table = user.ok(&["keys", "create", "--name", "other"]);
    assert!(table.contains("shown once"), "{table}");
    let other_secret = table.lines().map(str::trim).find(|l| l.starts_with("kw_test_sk_")).unwrap().to_string();

    let list = user.ok(&["keys", "list"]);
    assert!(list.contains(&id) && list.contains("billing") && list.contains("other"), "{list}");
    assert!(!list.contains(&secret));
    let page = user.json(&["keys", "list", "--env", "live", "--json"]);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], id.as_str());
    let shown = user.json(&["keys", "show", &id, "--json"]);
    assert_eq!(shown["name"], "billing");
    assert!(shown.get("secret").is_none_or(|s| s.is_null()), "the secret is never shown again");
    let updated = user.json(&["keys", "update", &id, "--name", "billing-v2", "--json"]);
    assert_eq!(updated["name"], "billing-v2");

    // verify: exit 0 when valid, 1 when not.
    assert!(user.run(&["verify", &secret]).status.success());
    let o = user.run(&["verify", &secret, "--permissions", "wallet.read AND tx.create", "--scope", "wallet:w_1"]);
    assert!(o.status.success(), "{o:?}");
    let o = user.run(&["verify", &secret, "--permissions", "wallet.write"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("INSUFFICIENT_PERMISSIONS"));
    let v = user.run(&["verify", "kw_live_sk_nonsense", "--json"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stdout).contains("MALFORMED"));
    assert!(user.run(&["verify", &secret, "--tag", "path=/orders", "--tag", "tier=gold"]).status.success());
    let o = user.run(&["verify", &secret, "--tag", &"x".repeat(65)]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("tags[0]"), "{o:?}");

    // Rate limiting as a service: two a minute, the third refused (exit 1); an override.
    let limit = ["ratelimit", "limit", "--namespace", "sms", "--identifier", "+15550100", "--limit", "2"];
    for _ in 0..2 {
        let o = user.run(&[&limit[..], &["--duration", "1m"]].concat());
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("allowed"), "{o:?}");
    }
    let o = user.run(&[&limit[..], &["--duration", "1m", "--json"]].concat());
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let refused: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((refused["success"].as_bool(), refused["remaining"].as_u64()), (Some(false), Some(0)));
    let set = ["ratelimit", "overrides", "set", "--namespace", "sms", "--identifier", "+1555*", "--limit", "5"];
    let o = user.json(&[&set[..], &["--duration", "1m", "--json"]].concat());
    let override_id = o["id"].as_str().unwrap().to_string();
    let listed = user.ok(&["ratelimit", "overrides", "list", "--namespace", "sms"]);
    assert!(listed.contains(&override_id) && listed.contains("+1555*"), "{listed}");
    assert!(user.run(&[&limit[..], &["--duration", "1m"]].concat()).status.success(), "the override's room");
    user.ok(&["ratelimit", "overrides", "delete", &override_id]);
    assert!(!user.ok(&["ratelimit", "overrides", "list"]).contains(&override_id));
    let o = user.run(&[
        "ratelimit",
        "limit",
        "--namespace",
        "sms",
        "--identifier",
        "x",
        "--limit",
        "1",
        "--duration",
        "soon",
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--duration"), "{o:?}");

    let rotated = user.json(&["keys", "rotate", &id, "--json"]);
    let new_id = rotated["id"].as_str().unwrap().to_string();
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    assert_eq!(rotated["name"], "billing-v2", "settings carry over");
    assert_eq!(user.run(&["verify", &secret]).status.code(), Some(1), "no grace: the old key stops at once");
    assert!(user.run(&["verify", &new_secret]).status.success());
    let revoked = user.json(&["keys", "revoke", &new_id, "--json"]);
    assert_eq!(revoked["status"], "revoked");
    let o = user.run(&["verify", &new_secret]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("REVOKED"));
    assert!(user.run(&["verify", &other_secret]).status.success());

    // SIGTERM: a clean exit that writes the pending last-used marks.
    let (status, log) = s.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("shutting down"));
    let s = Serve::spawn(&st, &[]);
    let user2 = User::new();
    let other = user2.json(&["keys", "list", "--server", &s.url(), "--token", &mk, "--q", "other", "--json"]);
    assert!(other["items"][0]["last_used_at"].is_string(), "usage was flushed at shutdown: {other}");
    let (_, log2) = s.terminate();

    // No API secret in the logs (debug level) or the data dir; the management key only in
    // its one-time notice.
    let logs = format!("{log}\n{log2}");
    for sec in [&secret, &new_secret, &other_secret] {
        assert_eq!(occurrences(&logs, &sec[sec.len() - 49..]), 0, "a secret reached the log");
    }
    assert_eq!(occurrences(&logs, &mk), 1, "the management key is printed once: {logs}");
    for (p, bytes) in keyward_testkit::files_under(&data) {
        for sec in [&secret, &new_secret, &other_secret, &mk] {
            assert!(!keyward_testkit::contains(&bytes, &sec[sec.len() - 40..]), "a secret is in {}", p.display());
        }
    }
    db.drop_db().await;
}

/// The verification code a node gives for `key`, through `keyward verify`.
fn verify_code(user: &User, url: &str, key: &str) -> String {
    let v = user.run(&["verify", key, "--server", url, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    v["code"].as_str().unwrap().to_string()
}

async fn two_serve_processes_share_revocations(b: Backend) {
    let db = TestDb::new(&b).await;
    let data_a = db.dir.path().join("a");
    let a = Serve::spawn(&storage(&db, &data_a), &[]);
    let mk = printed_management_key(&a.log());
    // On PostgreSQL the second node has its own data dir and gets the pepper from the
    // environment; on SQLite both share one data dir.
    let pepper = std::fs::read_to_string(data_a.join("pepper")).unwrap();
    let data_b = if db.is_postgres() { db.dir.path().join("b") } else { data_a.clone() };
    let b_node = Serve::spawn(&storage(&db, &data_b), &[("KEYWARD_PEPPER", pepper.trim())]);
    assert!(!b_node.log().contains("_mk_"), "the second node does not initialise again");

    let user = User::new();
    let (url_a, mk) = (a.url(), mk.as_str());
    let mgmt = |args: &[&str]| {
        let mut v: Vec<&str> = args.to_vec();
        v.extend(["--server", &url_a, "--token", mk, "--json"]);
        user.json(&v)
    };
    let k1 = mgmt(&["keys", "create", "--name", "one"]);
    let k2 = mgmt(&["keys", "create", "--name", "two"]);
    let (s1, s2) = (k1["secret"].as_str().unwrap(), k2["secret"].as_str().unwrap());
    // Node B has both cached as valid.
    assert_eq!(verify_code(&user, &b_node.url(), s1), "VALID");
    assert_eq!(verify_code(&user, &b_node.url(), s2), "VALID");

    mgmt(&["keys", "revoke", k1["id"].as_str().unwrap()]);
    mgmt(&["keys", "rotate", k2["id"].as_str().unwrap()]);
    let done = Instant::now();
    // The contract: in force on every node within 1 s of the call's answer.
    std::thread::sleep(Duration::from_secs(1).saturating_sub(done.elapsed()));
    assert_eq!(verify_code(&user, &b_node.url(), s1), "REVOKED");
    assert_eq!(verify_code(&user, &b_node.url(), s2), "REVOKED");
    let (sa, _) = a.terminate();
    let (sb, _) = b_node.terminate();
    assert!(sa.success() && sb.success());
    db.drop_db().await;
}
