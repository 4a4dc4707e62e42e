//! Test harness: real servers on ephemeral ports, on SQLite and (when
//! `KEYWARD_TEST_DATABASE_URL` is set) on a fresh PostgreSQL database per test.
// The harness starts servers on a `ManualClock` set from the system's time, and names
// databases by it (the `Clock` rule in clippy.toml is for server-side crates).
#![allow(clippy::disallowed_methods)]

pub mod proxy;
pub mod redis_topologies;

pub use proxy::Blackhole;
pub use redis_topologies::{OwnCluster, OwnSentinel};

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keyward_client::Client;
use keyward_core::pepper::Pepper;
use keyward_core::{ManualClock, OsRandom};
use keyward_server::bootstrap::{initialise, InitOptions};
use keyward_server::{RunningServer, ServerConfig, Services};
use keyward_store::Store;
use sqlx::Connection;

/// Runs each named test function (taking a [`Backend`]) once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(b) = $crate::Backend::postgres(stringify!($name)) {
                        super::$name(b).await
                    }
                }
            )*
        }
    };
}

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend, or a visible "skipped" line when it is not configured.
    pub fn postgres(test: &str) -> Option<Backend> {
        match std::env::var("KEYWARD_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                skipped(&format!("postgres::{test}"), "KEYWARD_TEST_DATABASE_URL is not set");
                None
            }
        }
    }
}

/// Says that a test did not run here, and why: on the real stderr (not the captured test
/// output), so it is seen, and counted by `.ci/run`.
/// The machine's Redis for tests that share one (`KEYWARD_TEST_REDIS_URL`), or a visible
/// "skipped" line when it is not configured.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("KEYWARD_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skipped(&format!("redis::{test}"), "KEYWARD_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A `redis-server` of the test's own on a free port (for tests that stop it), stopped on drop.
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    /// `None` (with a "skipped" line) when `redis-server` is not installed.
    pub async fn start(test: &str) -> Option<OwnRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let mut r = OwnRedis { port, child: None };
        if r.restart().await {
            Some(r)
        } else {
            skipped(test, "redis-server cannot be started");
            None
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port; true once it answers.
    pub async fn restart(&mut self) -> bool {
        let spawned = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn();
        let Ok(child) = spawned else { return false };
        self.child = Some(child);
        for _ in 0..100 {
            if let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 16];
                if c.write_all(b"PING\r\n").await.is_ok()
                    && c.read(&mut buf).await.is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Stalls it (SIGSTOP): connections stay open and commands queue until [`Self::thaw`].
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Wakes a frozen one (SIGCONT): it runs what queued meanwhile.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let Some(c) = &self.child else { return };
        let sent = std::process::Command::new("kill").args([sig, &c.id().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {sig} redis-server");
    }

    /// Kills it (no goodbye to its clients).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A database for one test, removed at the end.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", keyward_core::ids::new_id("t", chrono::Utc::now(), &OsRandom).to_lowercase())
}

impl TestDb {
    pub async fn new(backend: &Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => TestDb { url: keyward_store::sqlite_url(dir.path()), dir, pg: None },
            Backend::Postgres(admin) => {
                let name = unique("kwtest");
                let mut c = sqlx::PgConnection::connect(admin).await.expect("connect to KEYWARD_TEST_DATABASE_URL");
                sqlx::Executor::execute(&mut c, format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create database");
                c.close().await.ok();
                let url = with_database(admin, &name);
                TestDb { url, dir, pg: Some((admin.clone(), name)) }
            }
        }
    }

    /// An SQLite database in `dir` (e.g. on a filesystem the test made small).
    pub fn sqlite_in(dir: tempfile::TempDir) -> TestDb {
        TestDb { url: keyward_store::sqlite_url(dir.path()), dir, pg: None }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// Runs SQL as the administrator (on the admin database), `{db}` standing for this
    /// test's database: for outages made on purpose (`ALTER DATABASE {db} …`).
    pub async fn admin(&self, sql: &str) {
        let Some((admin, name)) = &self.pg else { panic!("admin SQL needs PostgreSQL") };
        let mut c = sqlx::PgConnection::connect(admin).await.expect("connect as admin");
        sqlx::Executor::execute(&mut c, sql.replace("{db}", name).as_str()).await.expect("admin SQL");
        c.close().await.ok();
    }

    /// Runs SQL on this test's database itself, on either backend (rows changed by hand).
    pub async fn exec(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&self.url).await.expect("connect to the test database");
        sqlx::Executor::execute(&mut c, sql).await.expect("SQL");
        c.close().await.ok();
    }

    /// How many sessions are open on this test's database (PostgreSQL), the asker's not
    /// counted.
    pub async fn sessions(&self) -> i64 {
        let Some((admin, name)) = &self.pg else { panic!("sessions need PostgreSQL") };
        let mut c = sqlx::PgConnection::connect(admin).await.expect("connect as admin");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .fetch_one(&mut c)
            .await
            .expect("count sessions");
        c.close().await.ok();
        n
    }

    /// Ends every session on this test's database (so pools must connect anew).
    pub async fn terminate_sessions(&self) {
        self.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()",
        )
        .await;
    }

    pub async fn drop_db(&self) {
        if let Some((admin, name)) = &self.pg {
            if let Ok(mut c) = sqlx::PgConnection::connect(admin).await {
                let _ =
                    sqlx::Executor::execute(&mut c, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
            }
        }
    }
}

/// `postgres://u@h:p/db?x` with its database replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let head = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    format!("{head}/{db}{query}")
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub management_key: String,
    pub workspace_id: String,
    /// The operator token `init` made (the operator API, `/v1/workspaces`).
    pub operator_token: String,
    pub client: Client,
    pub clock: Arc<ManualClock>,
    pub store: Store,
    pub pepper: Pepper,
    pub server: Option<RunningServer>,
    pub db: Arc<TestDb>,
}

/// What `init` gave the first node, shared by every node of its database.
struct Credentials {
    management_key: String,
    workspace_id: String,
    operator_token: String,
}

/// Each test node's database pool: half the default, so that two tests of several nodes each
/// running at once stay well within a PostgreSQL server's 100 connections (a starved pool
/// holds up a node's change listener past what the tests allow).
const NODE_POOL: Option<u32> = Some(8);

pub fn test_config() -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        flush_interval: Duration::from_millis(100),
        poll_interval: Duration::from_millis(50),
        // Receivers in tests listen on loopback; retries wait on the manual clock.
        webhook_allow_private: true,
        webhook_poll_interval: Duration::from_millis(50),
        webhook_retry_schedule: vec![chrono::Duration::seconds(1); 3],
        rollup_interval: Duration::from_millis(100),
        ..ServerConfig::default()
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, test_config()).await
    }

    pub async fn start_with(backend: Backend, config: ServerConfig) -> TestServer {
        Self::start_on(TestDb::new(&backend).await, config).await
    }

    /// A server on a database the test prepared.
    pub async fn start_on(db: TestDb, config: ServerConfig) -> TestServer {
        let db = Arc::new(db);
        let store = Store::connect_pooled(&db.url, NODE_POOL).await.expect("store");
        let pepper = Pepper::generate(&OsRandom);
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let out = initialise(&store, &pepper, clock.as_ref(), &OsRandom, &InitOptions::default()).await.expect("init");
        let operator_token = out.operator_token.expect("init makes an operator token");
        let ids = Credentials { management_key: out.management_key, workspace_id: out.workspace_id, operator_token };
        Self::attach(db, store, pepper, clock, ids, config).await
    }

    /// Another node on the same database (its own cache, pool and listener).
    pub async fn second_node(&self) -> TestServer {
        self.node_at(&self.db.url).await
    }

    /// Another node on the same database with its own settings.
    pub async fn second_node_with(&self, config: ServerConfig) -> TestServer {
        self.node(&self.db.url, config).await
    }

    /// Another node reaching the same database at `url` (e.g. through a [`Blackhole`]).
    pub async fn node_at(&self, url: &str) -> TestServer {
        self.node(url, test_config()).await
    }

    async fn node(&self, url: &str, config: ServerConfig) -> TestServer {
        let store = Store::connect_pooled(url, NODE_POOL).await.expect("store");
        let ids = Credentials {
            management_key: self.management_key.clone(),
            workspace_id: self.workspace_id.clone(),
            operator_token: self.operator_token.clone(),
        };
        Self::attach(self.db.clone(), store, self.pepper.clone(), self.clock.clone(), ids, config).await
    }

    async fn attach(
        db: Arc<TestDb>,
        store: Store,
        pepper: Pepper,
        clock: Arc<ManualClock>,
        ids: Credentials,
        config: ServerConfig,
    ) -> TestServer {
        let Credentials { management_key, workspace_id, operator_token } = ids;
        let services =
            Services { store: store.clone(), pepper: pepper.clone(), clock: clock.clone(), random: Arc::new(OsRandom) };
        let server = keyward_server::start(services, config).await.expect("start");
        // A node serves before its change listener is connected (PostgreSQL): tests that a
        // change reaches it "within a second" measure the change, not a start slowed by load.
        if store.pushes_changes() {
            let started = std::time::Instant::now();
            while server.state.metrics.listener_connects() == 0 {
                assert!(started.elapsed() < Duration::from_secs(30), "the change listener did not connect");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let addr = server.addr;
        let base = format!("http://{addr}");
        let client = Client::new(&base, Some(management_key.clone())).expect("client");
        TestServer {
            addr,
            base,
            management_key,
            workspace_id,
            operator_token,
            client,
            clock,
            store,
            pepper,
            server: Some(server),
            db,
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.expect("clean stop");
        }
        self.store.close().await;
        if Arc::strong_count(&self.db) == 1 {
            self.db.drop_db().await;
        }
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A raw management request with the owner's management key.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.call_as(&self.management_key, method, path, body).await
    }

    /// A raw management request with any bearer credential.
    pub async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut rb = self.http().request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("send");
        let status = r.status().as_u16();
        let v = r.json().await.unwrap_or(serde_json::Value::Null);
        (status, v)
    }

    pub async fn verify(&self, key: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut body = serde_json::json!({"key": key});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let r = self.http().post(self.url("/v1/keys/verify")).json(&body).send().await.expect("send");
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }

    /// Creates a key and returns (id, secret).
    pub async fn create(&self, body: serde_json::Value) -> (String, String) {
        let (s, v) = self.call(reqwest::Method::POST, "/v1/keys", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        (v["id"].as_str().unwrap().to_string(), v["secret"].as_str().unwrap().to_string())
    }
}

/// A member with a session: invited by the owner, set up, logged in.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
    /// The TOTP secret, when the member enrolled.
    pub totp: Option<Vec<u8>>,
}

static MEMBERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl TestServer {
    /// Invites (as the owner), sets up and logs in a member; with `mfa`, enrols TOTP too.
    pub async fn member(&self, role: &str, mfa: bool) -> Member {
        self.member_as(&self.management_key.clone(), role, mfa).await
    }

    /// Like [`TestServer::member`], invited by the holder of `inviter`.
    pub async fn member_as(&self, inviter: &str, role: &str, mfa: bool) -> Member {
        let n = MEMBERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let email = format!("{role}-{n}@example.com");
        let password = format!("correct horse {n} battery");
        let (s, inv) = self
            .call_as(
                inviter,
                reqwest::Method::POST,
                "/v1/members",
                Some(serde_json::json!({"email": email, "role": role})),
            )
            .await;
        assert_eq!(s, 201, "{inv}");
        let token = inv["setup_token"].as_str().unwrap();
        let (s, v) = self
            .call_as(
                "",
                reqwest::Method::POST,
                "/v1/members/setup",
                Some(serde_json::json!({"setup_token": token, "password": password})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let token = self.login(&email, &password, None).await;
        let mut m = Member { id: inv["id"].as_str().unwrap().to_string(), email, password, token, totp: None };
        if mfa {
            m.totp = Some(self.enrol(&m.token).await);
        }
        m
    }

    /// Logs in; panics unless it works.
    pub async fn login(&self, email: &str, password: &str, otp: Option<&str>) -> String {
        let (s, v) = self.try_login(email, password, otp).await;
        assert_eq!(s, 201, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    pub async fn try_login(&self, email: &str, password: &str, otp: Option<&str>) -> (u16, serde_json::Value) {
        let mut body = serde_json::json!({"email": email, "password": password});
        if let Some(o) = otp {
            body["otp"] = o.into();
        }
        let r = self.http().post(self.url("/v1/sessions")).json(&body).send().await.expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Enrols and confirms TOTP for the holder of `token`; returns the secret.
    pub async fn enrol(&self, token: &str) -> Vec<u8> {
        let (s, e) = self.call_as(token, reqwest::Method::POST, "/v1/members/me/mfa/totp", None).await;
        assert_eq!(s, 200, "{e}");
        let secret = totp_rs::Secret::Encoded(e["secret"].as_str().unwrap().to_string()).to_bytes().unwrap();
        let otp = self.otp(&secret);
        let (s, r) = self
            .call_as(
                token,
                reqwest::Method::POST,
                "/v1/members/me/mfa/totp/confirm",
                Some(serde_json::json!({"otp": otp})),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["recovery_codes"].as_array().unwrap().len(), 10);
        // The confirming code used up this time step.
        self.clock.advance(chrono::Duration::seconds(30));
        secret
    }

    /// The current TOTP code for a secret, by the server's (manual) clock.
    pub fn otp(&self, secret: &[u8]) -> String {
        keyward_core::mfa::code_at(secret, keyward_core::Clock::now(self.clock.as_ref())).unwrap()
    }

    /// Sets the workspace policy as the owner.
    pub async fn policy(&self, patch: serde_json::Value) -> serde_json::Value {
        let (s, v) = self.call(reqwest::Method::PUT, "/v1/policies", Some(patch)).await;
        assert_eq!(s, 200, "{v}");
        v
    }
}

pub fn code(v: &serde_json::Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

/// Every file under `dir`, as bytes.
pub fn files_under(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
