//! Limits, credits, replay memory and login throttles shared by every node through Redis:
//! two nodes under 900 verifications from 32 tasks allow `limit` exactly once in total and
//! grant exactly the credits (never below zero, the database's count 0 after the flush), a
//! replayed signature on a second node is `REPLAYED`, failed logins count across nodes; and a Redis the test starts itself, stopped mid-test: `allow` or `deny` as
//! configured, a metric and a log line, then recovery by itself; stalled (SIGSTOP): credits
//! refused by default, nothing answered without Redis charged when it wakes; restarted empty:
//! credits go on from the count written to the database.

use std::time::Duration;

use keyward_core::signing::Algorithm;
use keyward_server::ServerConfig;
use keyward_testkit::{redis_url, test_config, Backend, OwnRedis, TestServer};
use serde_json::json;

use crate::signed_requests::{check, register, signed};

on_both_backends!(
    two_nodes_share_limits_and_credits,
    replays_and_logins_across_nodes,
    redis_goes_away_and_comes_back,
    a_stalled_redis_neither_frees_nor_charges_credits,
    credits_go_on_from_the_written_count_after_redis_loses_them,
    the_stored_counts_keep_their_form,
    concurrent_exact_checks_share_script_runs,
);

pub(crate) fn with_redis(url: &str) -> ServerConfig {
    ServerConfig { redis_url: Some(keyward_core::secret::Secret::new(url)), ..test_config() }
}

async fn two_nodes_share_limits_and_credits(b: Backend) {
    let Some(url) = redis_url("two_nodes_share_limits_and_credits") else { return };
    let a = TestServer::start_with(b, with_redis(&url)).await;
    let c = a.second_node_with(with_redis(&url)).await;
    // 900 verifications from 32 tasks at once, split across the two nodes, against a limit of
    // 300 a minute: exactly 300. (Both nodes count by one manual clock, so no token comes
    // back during the run; on a real clock one does every 200 ms, which the limit allows.)
    let (_, key) = a.create(json!({"name": "shared", "ratelimits": [{"limit": 300, "duration": "1m"}]})).await;
    let answers = at_once(&[&a, &c], &key, 900, 32).await;
    let valid: Vec<&serde_json::Value> = answers.iter().filter(|v| v["code"] == "VALID").collect();
    assert_eq!(valid.len(), 300, "two nodes allow the limit once in total, not twice");
    assert!(answers.iter().all(|v| v["code"] == "VALID" || v["code"] == "RATE_LIMITED"));
    let mut left: Vec<i64> = valid.iter().map(|v| v["ratelimit"]["remaining"].as_i64().unwrap()).collect();
    left.sort_unstable();
    assert_eq!(left, (0..300).collect::<Vec<_>>(), "each allowed use counted once, none twice");

    // Credits the same way: exactly the credits, each granted once, never below zero.
    let (id, key) = a.create(json!({"name": "prepaid", "credits": {"remaining": 300}})).await;
    let answers = at_once(&[&a, &c], &key, 900, 32).await;
    let mut left = Vec::new();
    for v in &answers {
        assert!(v["credits"]["remaining"].as_i64().unwrap() >= 0);
        match v["code"].as_str().unwrap() {
            "VALID" => left.push(v["credits"]["remaining"].as_i64().unwrap()),
            "USAGE_EXCEEDED" => {}
            other => panic!("unexpected {other}: {v}"),
        }
    }
    left.sort_unstable();
    assert_eq!(left, (0..300).collect::<Vec<_>>(), "300 credits, 300 granted, each once");
    // Written back to the database by the nodes that spent them (each flushes on its own
    // clock), and once written 0 stays 0 whichever node writes last.
    crate::redis_cluster::written_back(&a, &id, 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, v) = a.call(reqwest::Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(v["credits"]["remaining"], 0, "no node wrote back an older count: {v}");
    c.stop().await;
    a.stop().await;
}

/// The exact checks of concurrent requests go to Redis together (`limits/redis_batch.rs`):
/// 600 verifications from 64 tasks at once, of two keys, take fewer script runs than checks,
/// and each key's limit still allows exactly its count, each remaining count once.
async fn concurrent_exact_checks_share_script_runs(b: Backend) {
    let Some(url) = redis_url("concurrent_exact_checks_share_script_runs") else { return };
    let a = TestServer::start_with(b, with_redis(&url)).await;
    let limited = json!({"name": "gathered", "ratelimits": [{"limit": 100, "duration": "1m"}]});
    let (_, one) = a.create(limited.clone()).await;
    let (_, two) = a.create(limited).await;
    let before = crate::fast_limits::metric(&a, BATCHES).await;
    let node = [&a];
    let (first, second) = tokio::join!(at_once(&node, &one, 300, 32), at_once(&node, &two, 300, 32));
    for answers in [first, second] {
        let mut left: Vec<i64> = answers
            .iter()
            .filter(|v| v["code"] == "VALID")
            .map(|v| v["ratelimit"]["remaining"].as_i64().unwrap())
            .collect();
        left.sort_unstable();
        assert_eq!(left, (0..100).collect::<Vec<_>>(), "each key's limit exactly, each count once");
        assert!(answers.iter().all(|v| v["code"] == "VALID" || v["code"] == "RATE_LIMITED"));
    }
    let checks = crate::fast_limits::metric(&a, crate::fast_limits::EXACT_RUNS).await;
    let runs = crate::fast_limits::metric(&a, BATCHES).await - before;
    assert_eq!(checks, 600, "one exact check per verification");
    assert!(runs < checks, "checks that arrive together share a run: {runs} runs for {checks} checks");
    a.stop().await;
}

const BATCHES: &str = "keyward_redis_exact_batches_total";

/// `n` verifications of `key` from `tasks` tasks at once, each with a client of its own and
/// going to the nodes in turn; every answer.
async fn at_once(nodes: &[&TestServer], key: &str, n: usize, tasks: usize) -> Vec<serde_json::Value> {
    let urls: Vec<String> = nodes.iter().map(|s| s.url("/v1/keys/verify")).collect();
    let mut running = Vec::new();
    for t in 0..tasks {
        let (urls, key) = (urls.clone(), key.to_string());
        running.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut out = Vec::new();
            for i in (t..n).step_by(tasks) {
                let r = http.post(&urls[i % urls.len()]).json(&json!({"key": key})).send().await.unwrap();
                assert_eq!(r.status(), 200);
                out.push(r.json::<serde_json::Value>().await.unwrap());
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in running {
        all.extend(t.await.unwrap());
    }
    all
}

async fn replays_and_logins_across_nodes(b: Backend) {
    let Some(url) = redis_url("replays_and_logins_across_nodes") else { return };
    let throttled = ServerConfig { ip_lockout: (2, Duration::from_secs(60)), ..with_redis(&url) };
    let a = TestServer::start_with(b, throttled.clone()).await;
    let c = a.second_node_with(throttled).await;
    let (_, sk, _) = register(&a, Algorithm::Ed25519, json!({})).await;
    let req = signed(&a, &sk, "POST", "/v2/orders", "", "{}");
    assert_eq!(check(&a, &req).await["code"], "VALID");
    assert_eq!(check(&c, &req).await["code"], "REPLAYED", "the second node knows the first one saw it");
    // Failed logins from one address count on every node (an address of this test's own).
    let ip = format!("198.51.100.{}", rand::random::<u8>());
    let login = |node: &TestServer| {
        node.http()
            .post(node.url("/v1/sessions"))
            .header("x-forwarded-for", ip.clone())
            .json(&json!({"email": "nobody@example.com", "password": "not the password"}))
            .send()
    };
    assert_eq!(login(&a).await.unwrap().status(), 401);
    assert_eq!(login(&c).await.unwrap().status(), 401);
    let r = login(&a).await.unwrap();
    assert_eq!(r.status(), 429, "two failures on two nodes block the address");
    assert!(r.headers().contains_key("retry-after"));
    c.stop().await;
    a.stop().await;
}

async fn redis_goes_away_and_comes_back(b: Backend) {
    let Some(mut redis) = OwnRedis::start("redis_goes_away_and_comes_back").await else { return };
    let allow = TestServer::start_with(b, with_redis(&redis.url())).await;
    let deny = allow
        .second_node_with(ServerConfig {
            ratelimit_on_error: keyward_server::limits::redis::OnError::Deny,
            ..with_redis(&redis.url())
        })
        .await;
    let (_, key) = allow.create(json!({"name": "r", "ratelimits": [{"limit": 1, "duration": "1h"}]})).await;
    // A fast limit with credits: its limit from a lease, its credits from a run of their own.
    let (_, prepaid) = allow
        .create(json!({"name": "p", "credits": {"remaining": 10},
                       "ratelimits": [{"limit": 1000, "duration": "1h", "mode": "fast"}]}))
        .await;
    assert_eq!(allow.verify(&prepaid, json!({})).await["credits"]["remaining"], 9);
    assert_eq!(allow.verify(&key, json!({})).await["code"], "VALID");
    assert_eq!(deny.verify(&key, json!({})).await["code"], "RATE_LIMITED", "counted in Redis");
    assert_eq!(redis_health(&allow).await, "ok");
    // A flood of health checks sends Redis one `PING` at a time, not one each.
    let pings = || {
        let stats = keyward_testkit::redis_topologies::cli(redis.port, &["INFO", "commandstats"]);
        stats
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
            .and_then(|r| r.split(',').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = pings();
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let r = allow.http().get(allow.url("/healthz"));
            tokio::spawn(async move { r.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    let sent = pings() - before;
    assert!((1..20).contains(&sent), "{sent} PINGs for 40 concurrent health checks");
    redis.stop();
    assert_eq!(redis_health(&allow).await, "unavailable", "/healthz says so, still 200");
    // Verification goes on: allow answers as if there were room, deny refuses.
    let v = allow.verify(&key, json!({})).await;
    assert_eq!(v["code"], "VALID", "{v}");
    assert_eq!(deny.verify(&key, json!({})).await["code"], "RATE_LIMITED");
    // Its lease still holds tokens, but its credits cannot be known: refused as
    // `--credits-on-error deny` says (the default), with no count, never a 5xx.
    let v = allow.verify(&prepaid, json!({})).await;
    assert_eq!(v["code"], "RATE_LIMITED", "{v}");
    assert!(v.get("credits").is_none(), "{v}");
    let metrics = allow.http().get(allow.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("keyward_redis_errors_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(errors >= 1, "{metrics}");
    // Redis comes back (empty): the nodes reconnect by themselves and count in it again
    // (`allow` refuses only when Redis says so). Each serving thread's connection comes back
    // on its own, so answers without Redis (no counts in them) may come between; but the
    // emptied Redis allows the limit's one use exactly once.
    assert!(redis.restart().await);
    let started = std::time::Instant::now();
    let mut counted = 0;
    loop {
        let v = allow.verify(&key, json!({})).await;
        if v["code"] == "RATE_LIMITED" {
            assert!(v["ratelimit"].is_object(), "Redis's answer: {v}");
            break;
        }
        assert_eq!(v["code"], "VALID", "{v}");
        if v["ratelimit"].is_object() {
            counted += 1;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted, 1, "the emptied Redis allows its one use once");
    // Its credits go on from the database once Redis is back.
    let v = answered_by_redis(&allow, &prepaid, json!({})).await;
    assert_eq!(v["code"], "VALID", "{v}");
    redis_health_becomes(&deny, "ok").await;
    deny.stop().await;
    allow.stop().await;
}

/// What `/healthz` says of Redis; it answers 200 either way while the database is there.
pub(crate) async fn redis_health(node: &TestServer) -> String {
    let r = node.http().get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    v["redis"].as_str().unwrap_or_default().to_string()
}

/// Polls `/healthz` until it says `want` of Redis (`degraded` lasts 5 s after the last check
/// answered without it): healed without a restart.
pub(crate) async fn redis_health_becomes(node: &TestServer, want: &str) {
    let started = std::time::Instant::now();
    loop {
        let now = redis_health(node).await;
        if now == want {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "/healthz still says {now:?} of Redis, not {want:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A verification answered by Redis carries the counts; one answered without it does not.
async fn verify_all(node: &TestServer, key: &str, n: usize) -> Vec<serde_json::Value> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (http, url, key) = (node.http(), node.url("/v1/keys/verify"), key.to_string());
        tasks.push(tokio::spawn(async move {
            http.post(url).json(&json!({"key": key})).send().await.unwrap().json::<serde_json::Value>().await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn a_stalled_redis_neither_frees_nor_charges_credits(b: Backend) {
    let Some(redis) = OwnRedis::start("a_stalled_redis_neither_frees_nor_charges_credits").await else { return };
    // The defaults (limits fail open, credits closed), and the other way round.
    let a = TestServer::start_with(b, with_redis(&redis.url())).await;
    let other = ServerConfig {
        ratelimit_on_error: keyward_server::limits::redis::OnError::Deny,
        credits_on_error: keyward_server::limits::redis::OnError::Allow,
        ..with_redis(&redis.url())
    };
    let c = a.second_node_with(other).await;
    let (_, spent) = a.create(json!({"name": "spent", "credits": {"remaining": 1}})).await;
    let (_, prepaid) = a.create(json!({"name": "prepaid", "credits": {"remaining": 10}})).await;
    let (_, limited) = a.create(json!({"name": "limited", "ratelimits": [{"limit": 100, "duration": "1h"}]})).await;
    assert_eq!(a.verify(&spent, json!({})).await["credits"]["remaining"], 0);
    assert_eq!(a.verify(&spent, json!({})).await["code"], "USAGE_EXCEEDED");
    assert_eq!(a.verify(&prepaid, json!({"cost": 3})).await["credits"]["remaining"], 7);

    redis.freeze();
    assert_eq!(redis_health(&a).await, "unavailable", "a stalled Redis shows in /healthz");
    // Spent credits do not come back while Redis cannot say so: a temporary refusal.
    let v = a.verify(&spent, json!({})).await;
    assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(false), Some("RATE_LIMITED")), "{v}");
    assert!(v.get("credits").is_none(), "no count without Redis: {v}");
    let fa = a.http().get(a.url("/v1/auth")).header("x-api-key", spent.clone()).send().await.unwrap();
    assert_eq!((fa.status().as_u16(), fa.headers()["retry-after"].to_str().unwrap()), (429, "1"));
    // Rate limits still fail open by default; each setting on its own.
    assert_eq!(a.verify(&limited, json!({})).await["code"], "VALID");
    assert_eq!(c.verify(&limited, json!({})).await["code"], "RATE_LIMITED");
    // Answered without Redis, as each node is configured, while the scripts queue in Redis.
    for v in verify_all(&a, &prepaid, 6).await {
        assert_eq!(v["code"], "RATE_LIMITED", "{v}");
        assert!(v.get("credits").is_none(), "{v}");
    }
    for v in verify_all(&c, &prepaid, 6).await {
        assert_eq!(v["code"], "VALID", "{v}");
        assert!(v.get("credits").is_none(), "{v}");
    }
    redis.thaw();

    // Redis runs the queued checks on waking; none of them may count. Each node's connection
    // runs in order, so a look through both nodes comes after everything they queued.
    answered_by_redis(&a, &prepaid, json!({"cost": 0})).await;
    let v = c.verify(&prepaid, json!({"cost": 0})).await;
    assert_eq!(v["credits"]["remaining"], 7, "exactly what Redis granted was spent: {v}");
    let v = a.verify(&limited, json!({"cost": 0})).await;
    assert_eq!(v["ratelimit"]["remaining"], 100, "no use answered without Redis was counted: {v}");
    assert_eq!(a.verify(&prepaid, json!({})).await["credits"]["remaining"], 6);
    redis_health_becomes(&c, "ok").await;
    c.stop().await;
    a.stop().await;
}

/// The first answer to come from Redis (with the count); until then credits are refused.
async fn answered_by_redis(node: &TestServer, key: &str, body: serde_json::Value) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let v = node.verify(key, body.clone()).await;
        if v.get("credits").is_some() {
            return v;
        }
        assert_eq!(v["code"], "RATE_LIMITED", "credits are refused until Redis answers: {v}");
        assert!(started.elapsed() < Duration::from_secs(10), "Redis not used again: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn credits_go_on_from_the_written_count_after_redis_loses_them(b: Backend) {
    let Some(mut redis) = OwnRedis::start("credits_go_on_from_the_written_count_after_redis_loses_them").await else {
        return;
    };
    let a = TestServer::start_with(b, with_redis(&redis.url())).await;
    let (id, key) = a.create(json!({"name": "prepaid", "credits": {"remaining": 1000}})).await;
    // A node started after the key was created caches it as created (1,000) and keeps that
    // record (no change event is to come) while the key is spent elsewhere.
    let c = a.second_node_with(with_redis(&redis.url())).await;
    assert_eq!(c.verify(&key, json!({"cost": 0})).await["credits"]["remaining"], 1000);
    assert_eq!(a.verify(&key, json!({"cost": 500})).await["credits"]["remaining"], 500);
    let mut v = serde_json::Value::Null;
    for _ in 0..100 {
        v = a.call(reqwest::Method::GET, &format!("/v1/keys/{id}"), None).await.1;
        if v["credits"]["remaining"] == 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(v["credits"]["remaining"], 500, "written back: {v}");

    // Redis restarts empty; the count goes on from the written 500, on either node (each
    // node's first check finds its connection gone, is refused and has it remade).
    redis.stop();
    assert!(redis.restart().await);
    let v = answered_by_redis(&c, &key, json!({})).await;
    assert_eq!((v["code"].as_str(), v["credits"]["remaining"].as_i64()), (Some("VALID"), Some(499)), "{v}");
    let v = answered_by_redis(&a, &key, json!({"cost": 499})).await;
    assert_eq!((v["code"].as_str(), v["credits"]["remaining"].as_i64()), (Some("VALID"), Some(0)), "{v}");
    assert_eq!(c.verify(&key, json!({})).await["code"], "USAGE_EXCEEDED", "1,000 credits, 1,000 granted");
    c.stop().await;
    a.stop().await;
}

/// A hash's fields and values, read with `redis-cli HGETALL`.
fn hash(redis: &OwnRedis, name: &str) -> std::collections::HashMap<String, String> {
    let out = keyward_testkit::redis_topologies::cli(redis.port, &["HGETALL", name]);
    let lines: Vec<&str> = out.lines().collect();
    lines.chunks(2).filter_map(|p| Some((p.first()?.to_string(), p.get(1)?.to_string()))).collect()
}

fn integer_text(v: Option<&String>) -> bool {
    v.is_some_and(|v| !v.is_empty() && v.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()))
}

/// What a check leaves in Redis keeps its form (the lease script of `limits/lease.rs`, and
/// nodes of the previous version during a rolling upgrade, read the same hashes): the
/// limits' TATs under `l<n>` and `r:<name>:<limit>:<ms>` beside `fp`, the credits'
/// `remaining`, `period` and `set_at`, every number an integer as text; a refused check
/// writes no credits, and a hash whose limits changed starts again.
async fn the_stored_counts_keep_their_form(b: Backend) {
    let Some(redis) = OwnRedis::start("the_stored_counts_keep_their_form").await else { return };
    let a = TestServer::start_with(b, with_redis(&redis.url())).await;
    let body = json!({"name": "both", "ratelimits": [{"limit": 10, "duration": "1m"}], "credits": {"remaining": 100}});
    let (id, key) = a.create(body).await;
    let v = a.verify(&key, json!({})).await;
    assert_eq!((v["ratelimit"]["remaining"].as_i64(), v["credits"]["remaining"].as_i64()), (Some(9), Some(99)), "{v}");
    let rl = hash(&redis, &format!("kw:rl:{id}"));
    assert_eq!(rl.len(), 2, "{rl:?}");
    assert!(integer_text(rl.get("fp")) && integer_text(rl.get("l1")), "{rl:?}");
    let cr = hash(&redis, &format!("kw:cr:{id}"));
    assert_eq!(cr.get("remaining").map(String::as_str), Some("99"), "{cr:?}");
    assert!(cr.len() == 3 && integer_text(cr.get("period")) && integer_text(cr.get("set_at")), "{cr:?}");
    let ttl: i64 =
        keyward_testkit::redis_topologies::cli(redis.port, &["PTTL", &format!("kw:rl:{id}")]).parse().unwrap();
    assert!(ttl > 60_000 && ttl <= 61_000, "the longest window and a second: {ttl}");
    // A `fast` limit's lease writes the same hash and gives it the same lifetime.
    let (fast_id, fast) =
        a.create(json!({"name": "fast", "ratelimits": [{"limit": 1000, "duration": "1m", "mode": "fast"}]})).await;
    assert_eq!(a.verify(&fast, json!({})).await["code"], "VALID");
    let ttl: i64 =
        keyward_testkit::redis_topologies::cli(redis.port, &["PTTL", &format!("kw:rl:{fast_id}")]).parse().unwrap();
    assert!(ttl > 60_000 && ttl <= 61_000, "a leased limit's window and a second: {ttl}");

    // A limit the request makes has its own field; once it refuses, nothing is spent.
    let made = json!({"ratelimits": [{"name": "burst", "limit": 1, "duration": 60_000}]});
    assert_eq!(a.verify(&key, made.clone()).await["credits"]["remaining"], 98);
    let rl = hash(&redis, &format!("kw:rl:{id}"));
    assert!(integer_text(rl.get("r:burst:1:60000")), "{rl:?}");
    let v = a.verify(&key, made).await;
    assert_eq!((v["code"].as_str(), v["credits"]["remaining"].as_i64()), (Some("RATE_LIMITED"), Some(98)), "{v}");
    assert_eq!(hash(&redis, &format!("kw:rl:{id}")), rl, "a refused check moves no limit");
    assert_eq!(hash(&redis, &format!("kw:cr:{id}")).get("remaining").map(String::as_str), Some("98"));

    // New limits: the hash starts again under the new fingerprint.
    let patch = json!({"ratelimits": [{"limit": 5, "duration": "1h"}]});
    let (st, _) = a.call(reqwest::Method::PATCH, &format!("/v1/keys/{id}"), Some(patch)).await;
    assert_eq!(st, 200);
    let v = a.verify(&key, json!({})).await;
    assert_eq!((v["ratelimit"]["remaining"].as_i64(), v["credits"]["remaining"].as_i64()), (Some(4), Some(97)), "{v}");
    let after = hash(&redis, &format!("kw:rl:{id}"));
    assert_eq!(after.len(), 2, "the old fields are gone: {after:?}");
    assert!(after.get("fp") != rl.get("fp") && integer_text(after.get("l1")), "{after:?}");
    a.stop().await;
}

/// A limit a request made with a long window keeps its count when later checks of the key
/// hold only shorter ones: they never shorten the hash's lifetime (they once set it to their
/// own longest window, and the long limit's count was lost with the hash a minute early).
#[tokio::test]
async fn a_longer_window_a_request_made_outlives_shorter_checks() {
    let Some(redis) = OwnRedis::start("a_longer_window_a_request_made_outlives_shorter_checks").await else { return };
    let a = TestServer::start_with(Backend::Sqlite, with_redis(&redis.url())).await;
    let (id, key) = a.create(json!({"name": "short", "ratelimits": [{"limit": 10, "duration": "1s"}]})).await;
    let pttl = || -> i64 {
        keyward_testkit::redis_topologies::cli(redis.port, &["PTTL", &format!("kw:rl:{id}")]).parse().unwrap()
    };
    let daily = json!({"ratelimits": [{"name": "daily", "limit": 1, "duration": 86_400_000}]});
    assert_eq!(a.verify(&key, daily.clone()).await["code"], "VALID");
    assert!(pttl() > 86_000_000, "the day's window and a second: {}", pttl());
    // Checks of the key's own 1 s limit alone, allowed and written.
    for _ in 0..3 {
        assert_eq!(a.verify(&key, json!({})).await["code"], "VALID");
    }
    assert!(pttl() > 86_000_000, "still the day's: {}", pttl());
    assert_eq!(a.verify(&key, daily).await["code"], "RATE_LIMITED");
    // A hash started again (its limits changed) takes the new check's lifetime.
    let patch = json!({"ratelimits": [{"limit": 10, "duration": "2s"}]});
    assert_eq!(a.call(reqwest::Method::PATCH, &format!("/v1/keys/{id}"), Some(patch)).await.0, 200);
    assert_eq!(a.verify(&key, json!({})).await["code"], "VALID");
    assert!((1_000..=3_000).contains(&pttl()), "its own 2 s and a second: {}", pttl());
    a.stop().await;
}

/// Two `keyward serve` processes on one data dir, sharing the machine's Redis: a limit of 4
/// allows 4 in total across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_one_limit() {
    let Some(url) = redis_url("two_server_processes_share_one_limit") else { return };
    let dir = tempfile::tempdir().unwrap();
    let args = vec!["--data-dir".to_string(), dir.path().join("data").display().to_string(), "--redis-url".into(), url];
    let one = crate::cli::Serve::spawn(&args, &[]);
    let log = one.log();
    let mk = log.split_whitespace().find(|w| w.contains("_mk_")).expect("the owner's management key").to_string();
    let two = crate::cli::Serve::spawn(&args, &[]);
    let http = reqwest::Client::new();
    let key: serde_json::Value = http
        .post(format!("{}/v1/keys", one.url()))
        .bearer_auth(&mk)
        .json(&json!({"name": "two-processes", "ratelimits": [{"limit": 4, "duration": "1m"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = key["secret"].as_str().unwrap();
    let mut valid = 0;
    for i in 0..8 {
        let base = if i % 2 == 0 { one.url() } else { two.url() };
        let v: serde_json::Value = http
            .post(format!("{base}/v1/keys/verify"))
            .json(&json!({"key": secret}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["code"] == "VALID" {
            valid += 1;
        }
    }
    assert_eq!(valid, 4, "two processes allow the limit once in total");
}
