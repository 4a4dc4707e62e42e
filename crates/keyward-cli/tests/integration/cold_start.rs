//! A node whose cache is cold, under load: concurrent misses for one key make one storage read
//! (and share its failure), and made-up keys stay within the lookup budget while the node is
//! still loading the set of keys that exist. Storage is made slow by holding a PostgreSQL lock
//! on `api_keys` (reads of it wait), so these run on PostgreSQL only. A new node reads the
//! recently used keys into its cache at start (both backends).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use keyward_core::keyformat::generate_secret;
use keyward_core::OsRandom;
use keyward_server::ServerConfig;
use keyward_testkit::{Backend, TestServer};
use serde_json::{json, Value};
use sqlx::{Connection, Executor};

use crate::verify_floods::metrics;

on_both_backends!(
    concurrent_misses_for_one_key_make_one_storage_read,
    a_failed_read_answers_every_request_that_waited_on_it,
    made_up_keys_stay_within_the_budget_while_the_known_set_loads,
    a_new_node_is_warmed_with_the_recently_used_keys,
    first_uses_of_an_imported_key_at_once_share_one_read,
    storage_failing_under_the_start_reads_leaves_a_node_that_serves,
);

fn secret_reads(m: &HashMap<String, f64>) -> f64 {
    m["keyward_verify_storage_reads_total{credential=\"secret_key\"}"]
}

/// Holds `ACCESS EXCLUSIVE` on `api_keys` until the returned connection rolls back: every
/// read of a key waits meanwhile.
async fn lock_keys(s: &TestServer) -> sqlx::PgConnection {
    let mut c = sqlx::PgConnection::connect(&s.db.url).await.unwrap();
    c.execute("BEGIN").await.unwrap();
    c.execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE").await.unwrap();
    c
}

async fn unlock(mut c: sqlx::PgConnection) {
    c.execute("ROLLBACK").await.unwrap();
    c.close().await.ok();
}

/// `n` verifications of `key` at once on `s`: (status, body) each.
async fn verify_all(s: &TestServer, keys: Vec<String>) -> Vec<(u16, Value)> {
    let h = s.http();
    let calls = keys.into_iter().map(|k| {
        let r = h.post(s.url("/v1/keys/verify")).json(&json!({"key": k}));
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    join_all(calls).await
}

async fn wait_known_loaded(s: &TestServer) {
    let started = std::time::Instant::now();
    while metrics(s).await["keyward_known_credentials_loaded"] != 1.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the known sets never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A key created on `s` and not cached by it, with its own change event passed (an event in
/// its stripe would make later misses read for themselves).
async fn uncached_key(s: &TestServer) -> String {
    wait_known_loaded(s).await;
    let (_, secret) = s.create(json!({"name": "hot"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    secret
}

fn postgres_only(s: &TestServer, test: &str) -> bool {
    if !s.db.is_postgres() {
        keyward_testkit::skipped(&format!("sqlite::{test}"), "PostgreSQL only (a table lock makes reads wait)");
    }
    s.db.is_postgres()
}

async fn concurrent_misses_for_one_key_make_one_storage_read(b: Backend) {
    let s = TestServer::start(b).await;
    if !postgres_only(&s, "concurrent_misses_for_one_key_make_one_storage_read") {
        return s.stop().await;
    }
    let secret = uncached_key(&s).await;
    let before = secret_reads(&metrics(&s).await);
    let lock = lock_keys(&s).await;
    let calls = {
        let s = &s;
        let secret = secret.clone();
        async move { verify_all(s, vec![secret; 50]).await }
    };
    let check = async {
        // Every request has had time to arrive and miss; the first one's read waits on the lock.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let during = secret_reads(&metrics(&s).await) - before;
        unlock(lock).await;
        during
    };
    let (answers, during) = tokio::join!(calls, check);
    assert_eq!(during, 1.0, "50 concurrent misses for one key read storage {during} times");
    for (status, body) in &answers {
        assert_eq!((*status, body["code"].as_str()), (200, Some("VALID")), "{body}");
    }
    assert_eq!(secret_reads(&metrics(&s).await) - before, 1.0);
    s.stop().await;
}

async fn a_failed_read_answers_every_request_that_waited_on_it(b: Backend) {
    let s = TestServer::start(b).await;
    if !postgres_only(&s, "a_failed_read_answers_every_request_that_waited_on_it") {
        return s.stop().await;
    }
    let secret = uncached_key(&s).await;
    let before = secret_reads(&metrics(&s).await);
    let lock = lock_keys(&s).await;
    // Held past the verification's storage timeout (3 s): the read fails with 503.
    let answers = verify_all(&s, vec![secret.clone(); 50]).await;
    unlock(lock).await;
    for (status, body) in &answers {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body, &answers[0].1, "every waiter answers as the read did");
    }
    assert_eq!(secret_reads(&metrics(&s).await) - before, 1.0, "the waiters did not read again");
    // Nothing was cached from the failure: the next request reads, and the key verifies.
    assert_eq!(keyward_testkit::code(&s.verify(&secret, json!({})).await), "VALID");
    assert_eq!(secret_reads(&metrics(&s).await) - before, 2.0);
    s.stop().await;
}

async fn made_up_keys_stay_within_the_budget_while_the_known_set_loads(b: Backend) {
    let s = TestServer::start(b).await;
    if !postgres_only(&s, "made_up_keys_stay_within_the_budget_while_the_known_set_loads") {
        return s.stop().await;
    }
    let (_, real) = s.create(json!({"name": "real"})).await;
    // A node started while the keys cannot be read: its set of known keys stays loading.
    let lock = lock_keys(&s).await;
    let node = s.second_node().await;
    assert_eq!(metrics(&node).await["keyward_known_credentials_loaded"], 0.0);
    const N: usize = 400;
    let made_up: Vec<String> = (0..N).map(|_| generate_secret("kw", "live", &OsRandom)).collect();
    let calls = verify_all(&node, made_up);
    let check = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let during = secret_reads(&metrics(&node).await);
        unlock(lock).await;
        during
    };
    let (answers, during) = tokio::join!(calls, check);
    // The manual clock stands still: one second's budget for the whole test.
    let limit = keyward_server::LOOKUPS_PER_SECOND as f64;
    assert!(during <= limit, "{during} storage reads for {N} made-up keys while the set loaded");
    // Not found, or 503 where the lookup could not finish in time (a budgeted read queued on
    // the pool behind the lock): never an answer from a read past the budget.
    for (status, body) in &answers {
        let answered = (*status, body["code"].as_str(), body["error"]["code"].as_str());
        assert!(matches!(answered, (200, Some("NOT_FOUND"), _) | (503, _, Some("unavailable"))), "{body}");
    }
    let total = secret_reads(&metrics(&node).await);
    assert!(total <= limit, "{total} storage reads for {N} made-up keys");
    // The real key is in the set once it is loaded, and verifies past the spent budget.
    wait_known_loaded(&node).await;
    assert_eq!(keyward_testkit::code(&node.verify(&real, json!({})).await), "VALID");
    node.stop().await;
    s.stop().await;
}

/// A node started on a database whose keys were used reads the most recently used ones into
/// its cache in one read: their first verifications read nothing, a key never used is read
/// as before, and a change after the warm read still reaches the warmed entry.
async fn a_new_node_is_warmed_with_the_recently_used_keys(b: Backend) {
    let s = TestServer::start(b).await;
    let (used_id, used) = s.create(json!({"name": "used"})).await;
    let (other_id, other) = s.create(json!({"name": "used too"})).await;
    let (_, idle) = s.create(json!({"name": "idle"})).await;
    for k in [&used, &other] {
        assert_eq!(keyward_testkit::code(&s.verify(k, json!({})).await), "VALID");
    }
    let started = std::time::Instant::now();
    for id in [&used_id, &other_id] {
        while s.store.get_key(&s.workspace_id, id).await.unwrap().unwrap().last_used_at.is_none() {
            assert!(started.elapsed() < Duration::from_secs(10), "last-used marks never written");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let node = s.second_node().await;
    let started = std::time::Instant::now();
    while metrics(&node).await["keyward_cache_warmed_keys"] != 2.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the cache was never warmed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(secret_reads(&metrics(&node).await), 0.0);
    assert_eq!(keyward_testkit::code(&node.verify(&used, json!({})).await), "VALID");
    assert_eq!(secret_reads(&metrics(&node).await), 0.0, "a warmed key is answered from the cache");
    assert_eq!(keyward_testkit::code(&node.verify(&idle, json!({})).await), "VALID");
    assert_eq!(secret_reads(&metrics(&node).await), 1.0, "a key never used is read when asked for");
    // `--warm-keys 1` reads only one of the two used keys; `--warm-keys 0` none (the count
    // is set once, when the warm read ends); a window longer than a date can reach back is
    // every key's.
    for (most, within) in [(1, chrono::Duration::days(1)), (0, chrono::Duration::days(1)), (1, chrono::TimeDelta::MAX)]
    {
        let config = ServerConfig { warm: (most, within), ..keyward_testkit::test_config() };
        let small = s.second_node_with(config).await;
        wait_known_loaded(&small).await;
        let started = std::time::Instant::now();
        while most > 0 && metrics(&small).await["keyward_cache_warmed_keys"] == 0.0 {
            assert!(started.elapsed() < Duration::from_secs(10), "the cache was never warmed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(metrics(&small).await["keyward_cache_warmed_keys"], most as f64, "--warm-keys {most}");
        small.stop().await;
    }
    // Revoked on the first node: the change event drops the warmed entry on this one.
    let (st, body) = s.call(reqwest::Method::POST, &format!("/v1/keys/{other_id}/revoke"), None).await;
    assert!(st < 300, "{st} {body}");
    let started = std::time::Instant::now();
    while keyward_testkit::code(&node.verify(&other, json!({})).await) != "REVOKED" {
        assert!(started.elapsed() < Duration::from_secs(10), "the warmed entry outlived its key's revocation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.stop().await;
    s.stop().await;
}

/// Fifty first uses of one imported key at once (held together behind the table lock, in the
/// one shared read of its HMAC, which finds nothing) look it up by its plain hash once, and
/// every one is answered `VALID`: none is lost to the re-keying the first made meanwhile.
async fn first_uses_of_an_imported_key_at_once_share_one_read(b: Backend) {
    let s = TestServer::start(b).await;
    if !postgres_only(&s, "first_uses_of_an_imported_key_at_once_share_one_read") {
        return s.stop().await;
    }
    let secret = "legacy-5b2d0c8e-1f4a-4e7b-9c3d-6a8f0e2b4d71";
    let plain = keyward_core::pepper::hex_encode(&keyward_core::import::plain_hash(secret));
    let body = json!([{"hash": {"variant": "sha256_hex", "value": plain}, "name": "imported"}]);
    let (st, v) = s.call(reqwest::Method::POST, "/v1/keys/import", Some(body)).await;
    assert_eq!(st, 201, "{v}");
    wait_known_loaded(&s).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = secret_reads(&metrics(&s).await);
    let lock = lock_keys(&s).await;
    let calls = verify_all(&s, vec![secret.to_string(); 50]);
    let release = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        unlock(lock).await;
    };
    let (answers, ()) = tokio::join!(calls, release);
    for (status, body) in &answers {
        assert_eq!((*status, body["code"].as_str()), (200, Some("VALID")), "{body}");
    }
    // One read of the HMAC and one of the plain hash (51 when each request read for itself);
    // on a loaded machine a request scheduled late may miss once more, after the re-keying's
    // change event dropped the entry the read filled.
    let reads = secret_reads(&metrics(&s).await) - before;
    assert!((2.0..=4.0).contains(&reads), "{reads} reads for 50 first uses");
    s.stop().await;
}

/// The reads a node makes at start — the set of existing keys and the warm read of the
/// recently used ones — cut off by the database (their backends terminated while a table
/// lock holds them): the set is read again until it loads, the warm read gives up, and the
/// node answers every key, reading them as requests come.
async fn storage_failing_under_the_start_reads_leaves_a_node_that_serves(b: Backend) {
    let s = TestServer::start(b).await;
    if !postgres_only(&s, "storage_failing_under_the_start_reads_leaves_a_node_that_serves") {
        return s.stop().await;
    }
    let (used_id, used) = s.create(json!({"name": "used"})).await;
    assert_eq!(keyward_testkit::code(&s.verify(&used, json!({})).await), "VALID");
    let started = std::time::Instant::now();
    while s.store.get_key(&s.workspace_id, &used_id).await.unwrap().unwrap().last_used_at.is_none() {
        assert!(started.elapsed() < Duration::from_secs(10), "last-used marks never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lock = lock_keys(&s).await;
    let node = s.second_node().await;
    let mut admin = sqlx::PgConnection::connect(&s.db.url).await.unwrap();
    let started = std::time::Instant::now();
    let (mut set_cut, mut warm_cut) = (false, false);
    while !(set_cut && warm_cut) {
        assert!(started.elapsed() < Duration::from_secs(10), "the start reads never reached the database");
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Which reads were cut: `true` for the warm read.
        let cut: Vec<(bool, bool)> = sqlx::query_as(
            "SELECT warm, pg_terminate_backend(pid) FROM (SELECT pid, query LIKE '%ORDER BY last_used_at DESC%' AS warm \
             FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' \
             AND (query LIKE 'SELECT hash FROM api_keys WHERE hash IS NOT NULL%' \
             OR query LIKE 'SELECT id, workspace_id%ORDER BY last_used_at DESC%') OFFSET 0) AS reads",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        for (warm, _) in cut {
            if warm {
                warm_cut = true
            } else {
                set_cut = true
            }
        }
    }
    unlock(lock).await;
    admin.close().await.ok();
    let started = std::time::Instant::now();
    while metrics(&node).await["keyward_known_credentials_loaded"] != 1.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the set of keys was not read again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metrics(&node).await["keyward_cache_warmed_keys"], 0.0, "the warm read gave up");
    assert_eq!(keyward_testkit::code(&node.verify(&used, json!({})).await), "VALID");
    assert_eq!(secret_reads(&metrics(&node).await), 1.0, "read when asked for");
    node.stop().await;
    s.stop().await;
}
