//! Server configuration in layers (flag > `KEYWARD_*` > config file > default), through the
//! real binary: `keyward config show`, an unknown key, `serve --config`, redaction.

use keyward_testkit::{Backend, TestDb};
use std::io::Write;

use crate::cli::{printed_management_key, storage, Serve, User};

fn file(dir: &std::path::Path, text: &str) -> String {
    let p = dir.join("keyward.toml");
    std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
    p.display().to_string()
}

/// `config show` with extra environment variables; its output parsed as TOML.
fn show(user: &User, args: &[&str], env: &[(&str, &str)]) -> (bool, toml::Table, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(["config", "show"]).args(args).env_clear().env("HOME", user.home.path());
    cmd.envs(env.iter().copied());
    let o = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let table = out.parse::<toml::Table>().unwrap_or_default();
    (o.status.success(), table, format!("{out}{err}"))
}

#[test]
fn precedence_flag_env_file_default() {
    let user = User::new();
    let dir = tempfile::tempdir().unwrap();
    let f = file(
        dir.path(),
        "listen = \"127.0.0.1:7001\"\ncache_capacity = 20\nbody_limit = 30\nsession_ttl = \"1h\"\n\
         verify_token = \"file-token-xyz\"\n\n[gateway]\nupstream = \"http://127.0.0.1:9\"\n",
    );
    let env = [("KEYWARD_CACHE_CAPACITY", "15"), ("KEYWARD_BODY_LIMIT", "40")];
    let (ok, t, out) = show(&user, &["--config", &f, "--cache-capacity", "10"], &env);
    assert!(ok, "{out}");
    assert_eq!(t["cache_capacity"].as_integer(), Some(10), "a flag beats the environment: {out}");
    assert_eq!(t["body_limit"].as_integer(), Some(40), "the environment beats the file: {out}");
    assert_eq!(t["session_ttl"].as_str(), Some("1h"), "the file beats the default: {out}");
    assert_eq!(t["flush_interval"].as_str(), Some("2s"), "what nothing sets is the default: {out}");
    assert_eq!(t["listen"].as_str(), Some("127.0.0.1:7001"), "{out}");
    assert_eq!(t["gateway"]["upstream"].as_str(), Some("http://127.0.0.1:9"), "{out}");
    assert_eq!(t["verify_token"].as_str(), Some("<redacted>"), "{out}");
    assert!(!out.contains("file-token-xyz"), "a secret is printed: {out}");

    // KEYWARD_SERVER_CONFIG names the file too; a database password never shows.
    let env = [("KEYWARD_SERVER_CONFIG", f.as_str()), ("KEYWARD_DATABASE_URL", "postgres://kw:pw-123456@db/kw")];
    let (ok, t, out) = show(&user, &[], &env);
    assert!(ok, "{out}");
    assert_eq!(t["cache_capacity"].as_integer(), Some(20), "{out}");
    assert!(!out.contains("pw-123456"), "{out}");
    assert!(t["database_url"].as_str().is_some_and(|u| u.contains("<redacted>")), "{out}");
}

/// What credits do while Redis is away: refused unless set otherwise, in every layer.
#[test]
fn credits_on_error_denies_by_default_in_layers() {
    let user = User::new();
    let dir = tempfile::tempdir().unwrap();
    let (ok, t, out) = show(&user, &[], &[]);
    assert!(ok, "{out}");
    assert_eq!(t["credits_on_error"].as_str(), Some("deny"), "{out}");
    assert_eq!(t["ratelimit_on_error"].as_str(), Some("allow"), "{out}");
    let f = file(dir.path(), "credits_on_error = \"allow\"\n");
    let (_, t, out) = show(&user, &["--config", &f], &[]);
    assert_eq!(t["credits_on_error"].as_str(), Some("allow"), "the file: {out}");
    let env = [("KEYWARD_CREDITS_ON_ERROR", "deny")];
    let (_, t, out) = show(&user, &["--config", &f], &env);
    assert_eq!(t["credits_on_error"].as_str(), Some("deny"), "the environment beats the file: {out}");
    let (_, t, out) = show(&user, &["--config", &f, "--credits-on-error", "allow"], &env);
    assert_eq!(t["credits_on_error"].as_str(), Some("allow"), "a flag beats the environment: {out}");
    let (ok, _, out) = show(&user, &["--credits-on-error", "local"], &[]);
    assert!(!ok && out.contains("credits_on_error"), "{out}");
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let user = User::new();
    let dir = tempfile::tempdir().unwrap();
    for (text, named) in [
        ("cache_capasity = 1\n", "cache_capasity"),
        ("[gateway]\nupstreem = \"http://x\"\n", "upstreem"),
        ("flush_interval = \"soon\"\n", "soon"),
        ("trusted_proxies = [\"nonsense\"]\n", "trusted_proxies"),
        ("log_format = \"yaml\"\n", "log_format"),
        ("usage_minutes_kept = \"10m\"\n", "usage_minutes_kept"),
        ("[webhooks]\nretry_schedule = \"soon\"\n", "webhook_retry_schedule"),
        ("[webhooks]\nretries = 3\n", "retries"),
        ("credits_on_error = \"maybe\"\n", "credits_on_error"),
        ("database_pool_size = 0\n", "database_pool_size"),
    ] {
        let f = file(dir.path(), text);
        let (ok, _, out) = show(&user, &["--config", &f], &[]);
        assert!(!ok, "{text:?} was accepted: {out}");
        assert!(out.contains(named), "the error does not name {named:?}: {out}");
        // `serve` refuses it the same way, before opening any database.
        let data = dir.path().join("data").display().to_string();
        let o = user.run(&["serve", "--config", &f, "--data-dir", &data]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains(named), "{o:?}");
        assert!(!dir.path().join("data").exists(), "serve touched the data dir");
    }
}

#[test]
fn secrets_stay_out_of_help() {
    let user = User::new();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(["serve", "--help"]).env("KEYWARD_VERIFY_TOKEN", "help-token-abc").env("HOME", user.home.path());
    cmd.env("KEYWARD_DATABASE_URL", "postgres://kw:help-pw-xyz@db/kw");
    let o = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("--verify-token") && text.contains("--config"), "{text}");
    assert!(!text.contains("help-token-abc") && !text.contains("help-pw-xyz"), "{text}");
}

on_both_backends!(serve_runs_with_the_file, json_logs_carry_the_request_id);

/// `serve` takes its settings from the file: a body limit, a leak-report limit and a
/// database pool's size set only there are in force.
async fn serve_runs_with_the_file(b: Backend) {
    let db = TestDb::new(&b).await;
    let data = db.dir.path().join("data");
    let f = file(
        db.dir.path(),
        "body_limit = 200\nlisten = \"127.0.0.1:1\"\nleak_report_limit = \"2/1h\"\ndatabase_pool_size = 2\n",
    );
    let mut args = storage(&db, &data);
    args.extend(["--config".to_string(), f]);
    // The `--listen 127.0.0.1:0` flag Serve adds beats the file's listen.
    let s = Serve::spawn(&args, &[]);
    let mk = printed_management_key(&s.log());
    let http = reqwest::Client::new();
    let big = serde_json::json!({"name": "x".repeat(300)});
    let r = http.post(format!("{}/v1/keys", s.url())).bearer_auth(&mk).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 413, "the file's body_limit is not in force");
    let small = serde_json::json!({"name": "ok"});
    let r = http.post(format!("{}/v1/keys", s.url())).bearer_auth(&mk).json(&small).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let mut answers = Vec::new();
    for _ in 0..3 {
        let r = http.post(format!("{}/v1/leaks", s.url())).json(&serde_json::json!({"key": "nothing"})).send();
        answers.push(r.await.unwrap().status().as_u16());
    }
    assert_eq!(answers, [202, 202, 429], "the file's leak_report_limit is not in force");
    // Many management calls at once share the pool's two connections (PostgreSQL's change
    // listener holds one more); each is answered.
    let calls = (0..30).map(|_| http.get(format!("{}/v1/keys", s.url())).bearer_auth(&mk).send());
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    if db.is_postgres() {
        let open = db.sessions().await;
        assert!(open <= 3, "the file's database_pool_size is not in force: {open} sessions");
    }
    drop(s);
    db.drop_db().await;
}

/// `--log-format json`: every log line is a JSON object, and a request's lines name its id.
async fn json_logs_carry_the_request_id(b: Backend) {
    let db = TestDb::new(&b).await;
    let data = db.dir.path().join("data");
    let mut args = storage(&db, &data);
    args.extend(["--log-format".to_string(), "json".to_string()]);
    let s = Serve::spawn(&args, &[("RUST_LOG", "info,tower_http=debug")]);
    let r = reqwest::Client::new()
        .get(format!("{}/healthz", s.url()))
        .header("x-request-id", "json-log-7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started = std::time::Instant::now();
    loop {
        let log = s.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
        if lines.iter().any(|l| l.contains("json-log-7")) {
            for l in &lines {
                serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            }
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "no JSON line names the request id: {log}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(s);
    db.drop_db().await;
}

/// `serve`'s gRPC ext_authz listener: off unless set; flag > environment > `[ext_authz]`.
#[test]
fn ext_authz_listen_in_layers() {
    let user = User::new();
    let dir = tempfile::tempdir().unwrap();
    let (ok, t, out) = show(&user, &[], &[]);
    assert!(ok && t.get("ext_authz").is_none(), "off by default: {out}");
    let f = file(dir.path(), "[ext_authz]\nlisten = \"127.0.0.1:7101\"\n");
    let (ok, t, out) = show(&user, &["--config", &f], &[]);
    assert!(ok, "{out}");
    assert_eq!(t["ext_authz"]["listen"].as_str(), Some("127.0.0.1:7101"), "the file: {out}");
    let env = [("KEYWARD_EXT_AUTHZ_LISTEN", "127.0.0.1:7102")];
    let (_, t, out) = show(&user, &["--config", &f], &env);
    assert_eq!(t["ext_authz"]["listen"].as_str(), Some("127.0.0.1:7102"), "the environment beats the file: {out}");
    let (_, t, out) = show(&user, &["--config", &f, "--ext-authz-listen", "127.0.0.1:7103"], &env);
    assert_eq!(t["ext_authz"]["listen"].as_str(), Some("127.0.0.1:7103"), "a flag beats the environment: {out}");
    let (ok, _, out) = show(&user, &["--ext-authz-listen", "nowhere"], &[]);
    assert!(!ok && out.contains("ext-authz-listen"), "{out}");
    let f = file(dir.path(), "[ext_authz]\nlisen = \"127.0.0.1:7101\"\n");
    let (ok, _, out) = show(&user, &["--config", &f], &[]);
    assert!(!ok && out.contains("lisen"), "{out}");
}

/// The per-address limit of `POST /v1/leaks`: 30/1m unless set; flag > environment > file;
/// a value that is not N/WINDOW is refused naming the setting.
#[test]
fn leak_report_limit_in_layers() {
    let user = User::new();
    let dir = tempfile::tempdir().unwrap();
    let (ok, t, out) = show(&user, &[], &[]);
    assert!(ok, "{out}");
    assert_eq!(t["leak_report_limit"].as_str(), Some("30/1m"), "the default: {out}");
    let f = file(dir.path(), "leak_report_limit = \"10/1h\"\n");
    let (_, t, out) = show(&user, &["--config", &f], &[]);
    assert_eq!(t["leak_report_limit"].as_str(), Some("10/1h"), "the file: {out}");
    let env = [("KEYWARD_LEAK_REPORT_LIMIT", "20/30s")];
    let (_, t, out) = show(&user, &["--config", &f], &env);
    assert_eq!(t["leak_report_limit"].as_str(), Some("20/30s"), "the environment beats the file: {out}");
    let (_, t, out) = show(&user, &["--config", &f, "--leak-report-limit", "5/1m"], &env);
    assert_eq!(t["leak_report_limit"].as_str(), Some("5/1m"), "a flag beats the environment: {out}");
    for bad in ["0/1m", "30", "30/100ms", "many/1m"] {
        let (ok, _, out) = show(&user, &["--leak-report-limit", bad], &[]);
        assert!(!ok && out.contains("leak_report_limit"), "{bad}: {out}");
        let (ok, _, out) = show(&user, &[], &[("KEYWARD_LEAK_REPORT_LIMIT", bad)]);
        assert!(!ok && out.contains("leak_report_limit"), "{bad}: {out}");
    }
    let f = file(dir.path(), "leak_report_limit = 30\n");
    let (ok, _, out) = show(&user, &["--config", &f], &[]);
    assert!(!ok && out.contains("leak_report_limit"), "{out}");
}
