//! Faults an operator's worst day brings, each reproduced: a listener that dies without a
//! word, two owners demoting each other at once, a database that refuses connections or
//! turns read-only, malformed input that once reached the database, racing `init`s.

use std::time::{Duration, Instant};

use keyward_testkit::{code, Backend, Blackhole, TestDb, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    silent_listener_loss_is_found_and_caught_up,
    owners_demoting_each_other_leave_one,
    a_pending_owner_invite_is_not_an_owner,
    refused_connections_answer_503,
    read_only_database_answers_503,
    malformed_input_is_refused_before_storage,
    concurrent_deletes_answer_404_not_503,
    racing_inits_say_already_initialised,
    a_missed_event_is_caught_by_the_backstop,
    kill_9_under_load_loses_nothing_acknowledged,
    a_full_disk_answers_storage_full_and_recovers,
    failed_transactions_leave_no_connection_behind
);

fn pg_only(s: &TestServer, test: &str) -> bool {
    if !s.db.is_postgres() {
        keyward_testkit::skipped(&format!("sqlite::{test}"), "PostgreSQL only");
    }
    s.db.is_postgres()
}

/// Polls `f` every 100 ms until it holds or `within` passes; true when it held.
pub(crate) async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut f: impl FnMut() -> F,
) -> bool {
    let until = Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node behind the proxy loses all its database traffic without an error (no FIN, no
/// RST), while a revocation happens elsewhere. Within 5 s of the network healing it must
/// refuse the key: its heartbeat finds the dead listener, and it catches up by sequence.
async fn silent_listener_loss_is_found_and_caught_up(b: Backend) {
    let a = TestServer::start(b).await;
    if !pg_only(&a, "silent_listener_loss_is_found_and_caught_up") {
        return a.stop().await;
    }
    let target = {
        let u = &a.db.url;
        let rest = u.split_once('@').map(|(_, r)| r).unwrap_or(u);
        rest.split(['/', '?']).next().unwrap().parse::<std::net::SocketAddr>().unwrap()
    };
    let proxy = Blackhole::start(target).await;
    let b = a.node_at(&proxy.url_for(&a.db.url)).await;
    let (id, key) = a.create(json!({"name": "revoked while cut off"})).await;
    let (_, other) = a.create(json!({"name": "stays valid"})).await;
    // Let the creation events pass, then B caches both keys.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(code(&b.verify(&key, json!({})).await), "VALID");
    assert_eq!(code(&b.verify(&other, json!({})).await), "VALID");

    proxy.blackhole();
    let (st, _) = a.call(Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    assert_eq!(st, 200);
    // Cut off long enough for the old listener to be declared dead and reconnects to fail.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(code(&b.verify(&other, json!({})).await), "VALID", "cached keys keep verifying meanwhile");

    proxy.heal();
    // Right after healing, a pooled connection that lost bytes to the blackhole may fail (or
    // hang) one storage read: the node answers 503 within its read timeout (fail closed),
    // which is "not yet", never acceptance.
    let refused = eventually(Duration::from_secs(10), || async {
        let r = b.http().post(b.url("/v1/keys/verify")).json(&json!({"key": key})).send();
        let r = tokio::time::timeout(Duration::from_secs(8), r).await.expect("a verification hung").unwrap();
        match r.status().as_u16() {
            503 => false,
            200 => code(&r.json::<serde_json::Value>().await.unwrap()) == "REVOKED",
            other => panic!("verify answered {other}"),
        }
    })
    .await;
    assert!(refused, "the cut-off node still accepts a key revoked elsewhere, 10 s after the network healed");
    assert_eq!(code(&b.verify(&other, json!({})).await), "VALID");
    // A node whose pooled connection lost bytes to the blackhole may not finish a graceful
    // stop (a known gap, in the notes); the test must not hang CI on it.
    let _ = tokio::time::timeout(Duration::from_secs(20), b.stop()).await;
    a.stop().await;
}

async fn owners(s: &TestServer, token: &str) -> usize {
    let (st, v) = s.call_as(token, Method::GET, "/v1/members?limit=200", None).await;
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().unwrap().iter().filter(|m| m["role"] == "owner").count()
}

/// Two owners demote each other at the same moment, twenty times: each time one owner must
/// be left (the count is taken under a lock; under READ COMMITTED both would pass).
async fn owners_demoting_each_other_leave_one(b: Backend) {
    let s = TestServer::start(b).await;
    let p = s.member("owner", false).await;
    let (st, v) = s.call(Method::GET, "/v1/members/me", None).await;
    assert_eq!(st, 200, "{v}");
    // Two active owners: the first one (management key) and P.
    let mut pair = (s.management_key.clone(), v["id"].as_str().unwrap().to_string(), p.token.clone(), p.id.clone());
    for trial in 0..20 {
        let (ta, ia, tb, ib) = pair.clone();
        let demote = |token: String, id: String| {
            let s = &s;
            async move {
                s.call_as(&token, Method::PATCH, &format!("/v1/members/{id}"), Some(json!({"role": "admin"}))).await.0
            }
        };
        let (x, y) = tokio::join!(demote(ta.clone(), ib.clone()), demote(tb.clone(), ia.clone()));
        assert!(matches!((x, y), (200, 409) | (409, 200) | (200, 403) | (403, 200)), "trial {trial}: {x} {y}");
        let (keeper, keeper_id) = if x == 200 { (ta, ia) } else { (tb, ib) };
        assert_eq!(owners(&s, &keeper).await, 1, "trial {trial}: the workspace must keep one owner");
        let next = s.member_as(&keeper, "owner", false).await;
        pair = (keeper, keeper_id, next.token, next.id);
    }
    s.stop().await;
}

/// An owner invited but never set up is not an owner: the last active one cannot leave or
/// step down while only an invitation remains.
async fn a_pending_owner_invite_is_not_an_owner(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, inv) =
        s.call(Method::POST, "/v1/members", Some(json!({"email": "later@example.com", "role": "owner"}))).await;
    assert_eq!(st, 201, "{inv}");
    let (_, me) = s.call(Method::GET, "/v1/members/me", None).await;
    let me = me["id"].as_str().unwrap().to_string();
    let (st, v) = s.call(Method::PATCH, &format!("/v1/members/{me}"), Some(json!({"role": "admin"}))).await;
    assert_eq!((st, code(&v["error"])), (409, "conflict"), "{v}");
    let (st, v) = s.call(Method::DELETE, &format!("/v1/members/{me}"), None).await;
    assert_eq!(st, 409, "{v}");
    // Once the invitation is accepted, there are two owners and either may go.
    let (st, _) = s
        .call_as(
            "",
            Method::POST,
            "/v1/members/setup",
            Some(json!({"setup_token": inv["setup_token"], "password": "correct horse battery 9"})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s.call(Method::PATCH, &format!("/v1/members/{me}"), Some(json!({"role": "admin"}))).await;
    assert_eq!(st, 200, "{v}");
    s.stop().await;
}

/// `ALTER DATABASE … ALLOW_CONNECTIONS false`: management and unknown keys answer 503 (not
/// 500), cached keys keep verifying, `/healthz` says 503; all recovers when it is lifted.
async fn refused_connections_answer_503(b: Backend) {
    let s = TestServer::start(b).await;
    if !pg_only(&s, "refused_connections_answer_503") {
        return s.stop().await;
    }
    let (_, known) = s.create(json!({"name": "cached"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(code(&s.verify(&known, json!({})).await), "VALID");
    s.db.admin("ALTER DATABASE {db} ALLOW_CONNECTIONS false").await;
    s.db.terminate_sessions().await;

    let (st, v) = s.call(Method::GET, "/v1/keys", None).await;
    assert_eq!((st, code(&v["error"])), (503, "unavailable"), "{v}");
    let (st, v) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "x"}))).await;
    assert_eq!(st, 503, "{v}");
    let unknown = keyward_core::keyformat::generate_secret("kw", "test", &keyward_core::OsRandom);
    let r = s.http().get(s.url("/v1/auth")).header("X-API-Key", &unknown).send().await.unwrap();
    assert_eq!(r.status(), 503, "forward-auth with a key the node cannot look up");
    let r = s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": unknown})).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(code(&s.verify(&known, json!({})).await), "VALID");
    assert_eq!(s.http().get(s.url("/healthz")).send().await.unwrap().status(), 503);

    s.db.admin("ALTER DATABASE {db} ALLOW_CONNECTIONS true").await;
    let back = eventually(Duration::from_secs(10), || async {
        s.http().get(s.url("/healthz")).send().await.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;
    assert!(back, "the node did not recover");
    assert_eq!(s.call(Method::GET, "/v1/keys", None).await.0, 200);
    s.stop().await;
}

/// A failover to a standby, played by `default_transaction_read_only`: writes answer 503
/// and `/healthz` stops saying 200, so a load balancer moves traffic away; reads still work.
async fn read_only_database_answers_503(b: Backend) {
    let s = TestServer::start(b).await;
    if !pg_only(&s, "read_only_database_answers_503") {
        return s.stop().await;
    }
    s.db.admin("ALTER DATABASE {db} SET default_transaction_read_only = on").await;
    s.db.terminate_sessions().await;
    let (st, v) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "x"}))).await;
    assert_eq!((st, code(&v["error"])), (503, "unavailable"), "{v}");
    assert_eq!(s.http().get(s.url("/healthz")).send().await.unwrap().status(), 503);
    assert_eq!(s.call(Method::GET, "/v1/keys", None).await.0, 200, "reads still work");

    s.db.admin("ALTER DATABASE {db} RESET default_transaction_read_only").await;
    s.db.terminate_sessions().await;
    let back = eventually(Duration::from_secs(10), || async {
        s.call(Method::POST, "/v1/keys", Some(json!({"name": "after"}))).await.0 == 201
    })
    .await;
    assert!(back, "writes did not come back");
    assert_eq!(s.http().get(s.url("/healthz")).send().await.unwrap().status(), 200);
    s.stop().await;
}

/// Input that once reached the database (and answered 500) or was taken as it came.
async fn malformed_input_is_refused_before_storage(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, _) = s.create(json!({"name": "target"})).await;
    for path in ["/v1/keys/key_%00", "/v1/keys?q=%00", "/v1/members/%00", "/v1/approvals?cursor=apr_%00"] {
        let (st, v) = s.call(Method::GET, path, None).await;
        assert_eq!(st, 400, "{path}: {v}");
    }
    let raw = |method: Method, path: String, body: &'static str| {
        let s = &s;
        async move {
            let r = s
                .http()
                .request(method, s.url(&path))
                .bearer_auth(&s.management_key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(raw(Method::PATCH, format!("/v1/keys/{id}"), "{} x").await, 400, "PATCH with trailing bytes");
    assert_eq!(raw(Method::POST, format!("/v1/keys/{id}/rotate"), "{} x").await, 400, "rotate with trailing bytes");
    assert_eq!(raw(Method::PUT, "/v1/policies".into(), "{} x").await, 400, "policies with trailing bytes");
    assert_eq!(raw(Method::POST, "/v1/keys".into(), r#"{"name":"a"} {}"#).await, 400);

    for name in ["\u{200B}\u{200B}\u{200B}", "invoice\u{202E}fdp.exe", "a\u{0000}b"] {
        let (st, v) = s.call(Method::POST, "/v1/keys", Some(json!({ "name": name }))).await;
        assert_eq!((st, v["error"]["field"].as_str()), (400, Some("name")), "{name:?}: {v}");
    }
    let (st, inv) =
        s.call(Method::POST, "/v1/members", Some(json!({"email": "nul@example.com", "role": "viewer"}))).await;
    assert_eq!(st, 201);
    let (st, v) = s
        .call_as(
            "",
            Method::POST,
            "/v1/members/setup",
            Some(json!({"setup_token": inv["setup_token"], "password": "\u{0000}".repeat(16)})),
        )
        .await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("password")), "{v}");
    let (_, list) = s.call(Method::GET, "/v1/keys", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "nothing was written");
    s.stop().await;
}

/// Two deletes of one member at once: one succeeds, the other finds nothing (404) — on
/// SQLite the loser once got 503 (its read turned into a write while the other committed).
async fn concurrent_deletes_answer_404_not_503(b: Backend) {
    let s = TestServer::start(b).await;
    for trial in 0..10 {
        let m = s.member("viewer", false).await;
        let path = format!("/v1/members/{}", m.id);
        let del = || s.call(Method::DELETE, &path, None);
        let ((x, _), (y, _)): ((u16, Value), (u16, Value)) = tokio::join!(del(), del());
        let mut got = [x, y];
        got.sort();
        assert_eq!(got, [204, 404], "trial {trial}");
    }
    s.stop().await;
}

/// Two `init`s on one empty database at once: one initialises it, the other says it was
/// already initialised — no raw migration error.
async fn racing_inits_say_already_initialised(b: Backend) {
    let db = TestDb::new(&b).await;
    let data = db.dir.path().join("data");
    let args = crate::cli::storage(&db, &data);
    let run = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.arg("init").args(&args).env_remove("KEYWARD_PEPPER");
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (one, two) = (run(), run());
    let (one, two) = (one.wait_with_output().unwrap(), two.wait_with_output().unwrap());
    let wins = [&one, &two].iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "{one:?} {two:?}");
    let loser = if one.status.success() { &two } else { &one };
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(err.contains("already initialised"), "{err}");
    assert!(!err.contains("migration") && !err.contains("returned from database"), "{err}");
    if !db.is_postgres() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("keyward.db")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the SQLite file is readable by others");
    }
    db.drop_db().await;
}

/// Reads until the server closes the connection (true) or `within` passes (false); what was
/// read comes back too.
async fn closed_within(c: &mut tokio::net::TcpStream, within: Duration) -> (bool, String) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, String::from_utf8_lossy(&got).into()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (false, String::from_utf8_lossy(&got).into()),
        }
    }
}

/// Idle sockets, headers sent a byte at a time, a body shorter than its Content-Length: each
/// is closed after its timeout instead of holding a descriptor forever; past
/// `max_connections`, new connections are refused and counted, and service resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_surplus_connections_are_bounded() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let cfg = keyward_server::ServerConfig {
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
        ..keyward_testkit::test_config()
    };
    let s = TestServer::start_with(Backend::Sqlite, cfg).await;
    let bound = Duration::from_secs(10);

    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    assert!(closed_within(&mut idle, bound).await.0, "an idle connection stays open");

    let mut writer = TcpStream::connect(s.addr).await.unwrap();
    let dripping = tokio::spawn(async move {
        for b in b"GET /healthz HTTP/1.1\r\nHost: keyward\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if writer.write_all(&[*b]).await.is_err() {
                return writer;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        writer
    });
    let mut writer = dripping.await.unwrap();
    let (closed, _) = closed_within(&mut writer, bound).await;
    assert!(closed, "headers sent a byte at a time keep the connection");

    let mut short = TcpStream::connect(s.addr).await.unwrap();
    short
        .write_all(b"POST /v1/keys/verify HTTP/1.1\r\nHost: keyward\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"key\":")
        .await
        .unwrap();
    let (closed, answer) = closed_within(&mut short, bound).await;
    assert!(closed, "a body shorter than its Content-Length keeps the connection");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer}");
    s.stop().await;

    // A small connection limit and patient timeouts: idle sockets fill it.
    let cfg = keyward_server::ServerConfig {
        header_read_timeout: Duration::from_secs(60),
        max_connections: 3,
        ..keyward_testkit::test_config()
    };
    let s = TestServer::start_with(Backend::Sqlite, cfg).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut surplus = TcpStream::connect(s.addr).await.unwrap();
    assert!(closed_within(&mut surplus, bound).await.0, "a connection past the limit was kept waiting");
    drop(held);
    let served = eventually(bound, || async {
        s.http().get(s.url("/healthz")).send().await.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;
    assert!(served, "service did not resume once connections closed");
    let v: Value = s.http().get(s.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert!(v["connections"]["refused"].as_u64().unwrap() >= 1, "{v}");
    assert!(v.get("redis").is_none(), "no Redis configured, none reported: {v}");
    s.stop().await;
}

/// A change that reached storage without its event (a row changed by hand; a lost event) is
/// still noticed: the background backstop compares cached keys with storage.
async fn a_missed_event_is_caught_by_the_backstop(b: Backend) {
    use sqlx::Connection;
    let cfg = keyward_server::ServerConfig {
        cache_revalidate_interval: Duration::from_millis(300),
        ..keyward_testkit::test_config()
    };
    let s = TestServer::start_with(b, cfg).await;
    let (id, key) = s.create(json!({"name": "changed behind our back"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID");
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&s.db.url).await.unwrap();
    sqlx::query("UPDATE api_keys SET status = 'revoked', updated_at = updated_at + 1 WHERE id = $1")
        .bind(&id)
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.ok();
    let caught =
        eventually(Duration::from_secs(5), || async { code(&s.verify(&key, json!({})).await) == "REVOKED" }).await;
    assert!(caught, "a revocation without its event was never noticed");
    s.stop().await;
}

/// `kill -9` while creates and revokes are in flight, then a restart on the same database:
/// every create and revoke that was acknowledged is there, and no revoked key verifies.
async fn kill_9_under_load_loses_nothing_acknowledged(b: Backend) {
    use crate::cli::{printed_management_key, storage, Serve};
    let db = TestDb::new(&b).await;
    let data = db.dir.path().join("data");
    let args = storage(&db, &data);
    let s = Serve::spawn(&args, &[]);
    let mk = printed_management_key(&s.log());
    let url = s.url();
    let h = reqwest::Client::new();
    // Keys to revoke during the run.
    let mut to_revoke = Vec::new();
    for i in 0..40 {
        let r = h
            .post(format!("{url}/v1/keys"))
            .bearer_auth(&mk)
            .json(&json!({"name": format!("r{i}")}))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        to_revoke.push((v["id"].as_str().unwrap().to_string(), v["secret"].as_str().unwrap().to_string()));
    }
    let created = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let revoked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for w in 0..4 {
        let (h, url, mk, created) = (h.clone(), url.clone(), mk.clone(), created.clone());
        load.push(tokio::spawn(async move {
            for i in 0..300 {
                let body = json!({"name": format!("w{w}-{i}")});
                match h.post(format!("{url}/v1/keys")).bearer_auth(&mk).json(&body).send().await {
                    Ok(r) if r.status() == 201 => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        if let Some(id) = v["id"].as_str() {
                            created.lock().unwrap().push(id.to_string());
                        }
                    }
                    _ => return,
                }
            }
        }));
    }
    {
        let (h, url, mk, revoked, keys) = (h.clone(), url.clone(), mk.clone(), revoked.clone(), to_revoke.clone());
        load.push(tokio::spawn(async move {
            for (id, secret) in keys {
                match h.post(format!("{url}/v1/keys/{id}/revoke")).bearer_auth(&mk).send().await {
                    Ok(r) if r.status() == 200 => revoked.lock().unwrap().push(secret),
                    _ => return,
                }
            }
        }));
    }
    // Let the load run, then cut the process down mid-flight.
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.kill9();
    for t in load {
        let _ = t.await;
    }
    let (created, revoked) = (created.lock().unwrap().clone(), revoked.lock().unwrap().clone());
    assert!(!created.is_empty(), "no create was acknowledged before the kill");

    let s = Serve::spawn(&args, &[]);
    let url = s.url();
    for id in &created {
        let r = h.get(format!("{url}/v1/keys/{id}")).bearer_auth(&mk).send().await.unwrap();
        assert_eq!(r.status(), 200, "an acknowledged create of {id} was lost");
    }
    for secret in &revoked {
        let v: Value = h
            .post(format!("{url}/v1/keys/verify"))
            .json(&json!({"key": secret}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(code(&v), "REVOKED", "an acknowledged revoke was lost");
    }
    drop(s);
    db.drop_db().await;
}

/// A small tmpfs mounted for one test, unmounted on drop (after the server has stopped).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Writes a file until the filesystem has no space left.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            match f.write_all(&block).and_then(|_| f.flush()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // Whatever the last partial block left.
        while f.write_all(&[0u8; 512]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn retry_after(r: &reqwest::Response) -> Option<u64> {
    r.headers().get("retry-after")?.to_str().ok()?.parse().ok()
}

/// The data dir's filesystem fills up: writes answer 507 `storage_full` with `Retry-After`
/// (never 500), `/healthz` says 503 `storage_full`, cached keys keep verifying; once space is
/// freed every write works again, on every pooled connection, without a restart (a failed
/// COMMIT used to leave its connection counted inside a transaction, refusing all later
/// writes until the process restarted).
async fn a_full_disk_answers_storage_full_and_recovers(b: Backend) {
    const TEST: &str = "a_full_disk_answers_storage_full_and_recovers";
    if matches!(b, Backend::Postgres(_)) {
        // The database server's disk is not the test's to fill.
        return keyward_testkit::skipped(&format!("postgres::{TEST}"), "a full disk is made under SQLite's file");
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(dir.path()) else {
        // `failed_transactions_leave_no_connection_behind` still runs.
        return keyward_testkit::skipped(&format!("sqlite::{TEST}"), "cannot mount a tmpfs (needs root)");
    };
    let s = TestServer::start_on(TestDb::sqlite_in(dir), keyward_testkit::test_config()).await;
    let (id, key) = s.create(json!({"name": "made before the disk filled"})).await;
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID");
    let filler = disk.fill();

    // The write-ahead log may still hold a few writes; then the disk refuses them.
    let mut full = None;
    for i in 0..200 {
        let r = s
            .http()
            .post(s.url("/v1/keys"))
            .bearer_auth(&s.management_key)
            .json(&json!({"name": format!("while full {i}"), "meta": {"pad": "x".repeat(3500)}}))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            201 => continue,
            507 => {
                full = Some(r);
                break;
            }
            other => panic!("a create on a full disk answered {other}: {}", r.text().await.unwrap()),
        }
    }
    let r = full.expect("the disk never filled");
    assert_eq!(retry_after(&r), Some(30));
    let v: Value = r.json().await.unwrap();
    assert_eq!(code(&v["error"]), "storage_full", "{v}");
    assert!(!v.to_string().to_lowercase().contains("sqlite"), "{v}");
    let (st, v) = s.call(Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    assert_eq!((st, code(&v["error"])), (507, "storage_full"), "{v}");
    let r = s.http().get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(retry_after(&r), Some(30));
    assert_eq!(code(&r.json::<Value>().await.unwrap()["error"]), "storage_full");
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID", "cached keys keep verifying");
    assert_eq!(s.call(Method::GET, "/v1/keys", None).await.0, 200, "reads keep working");

    std::fs::remove_file(filler).unwrap();
    assert_eq!(s.http().get(s.url("/healthz")).send().await.unwrap().status(), 200);
    // More writes than the pool has connections, so each pooled connection takes one.
    for i in 0..20 {
        let (st, v) = s.call(Method::POST, "/v1/keys", Some(json!({"name": format!("after {i}")}))).await;
        assert_eq!(st, 201, "write {i} after space was freed: {v}");
        assert_eq!(s.http().get(s.url("/healthz")).send().await.unwrap().status(), 200);
    }
    let (st, v) = s.call(Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(code(&s.verify(&key, json!({})).await), "REVOKED");
    s.stop().await;
    drop(disk);
}

/// Transactions the database fails, injected by triggers: a statement refused inside one,
/// and one the database ends by itself (SQLite's `RAISE(ROLLBACK)`, as SQLITE_FULL does; on
/// PostgreSQL a deferred constraint failing at COMMIT). Each answers 500 for its request
/// only: every later write, on every pooled connection, works.
async fn failed_transactions_leave_no_connection_behind(b: Backend) {
    let s = TestServer::start(b).await;
    if s.db.is_postgres() {
        s.db.exec(
            "CREATE FUNCTION injected() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$",
        )
        .await;
        s.db.exec(
            "CREATE TRIGGER at_once BEFORE INSERT ON api_keys FOR EACH ROW \
             WHEN (NEW.name = 'fails at once') EXECUTE FUNCTION injected()",
        )
        .await;
        s.db.exec(
            "CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON api_keys DEFERRABLE INITIALLY DEFERRED \
             FOR EACH ROW WHEN (NEW.name = 'ends its transaction') EXECUTE FUNCTION injected()",
        )
        .await;
    } else {
        s.db.exec(
            "CREATE TRIGGER at_once BEFORE INSERT ON api_keys WHEN NEW.name = 'fails at once' \
             BEGIN SELECT RAISE(ABORT, 'injected'); END",
        )
        .await;
        s.db.exec(
            "CREATE TRIGGER at_commit BEFORE INSERT ON api_keys WHEN NEW.name = 'ends its transaction' \
             BEGIN SELECT RAISE(ROLLBACK, 'injected'); END",
        )
        .await;
    }
    for name in ["fails at once", "ends its transaction", "fails at once", "ends its transaction"] {
        let (st, v) = s.call(Method::POST, "/v1/keys", Some(json!({"name": name}))).await;
        assert_eq!((st, code(&v["error"])), (500, "internal"), "{name}: {v}");
        assert!(!v.to_string().contains("injected"), "{v}");
    }
    for i in 0..20 {
        let (st, v) = s.call(Method::POST, "/v1/keys", Some(json!({"name": format!("after {i}")}))).await;
        assert_eq!(st, 201, "write {i} after the failed transactions: {v}");
        let id = v["id"].as_str().unwrap();
        let (st, v) = s.call(Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
        assert_eq!(st, 200, "revoke {i}: {v}");
    }
    assert_eq!(s.http().get(s.url("/healthz")).send().await.unwrap().status(), 200);
    s.stop().await;
}
