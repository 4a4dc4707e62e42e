//! Limits, credits, replay memory and login throttles shared by every node through Redis:
//! two nodes allow `limit` in total, credits spent at once from two nodes never go below
//! zero, a replayed signature on a second node is `REPLAYED`, failed logins count across
//! nodes; and a Redis the test starts itself, stopped mid-test: `allow` or `deny` as
//! configured, a metric and a log line, then recovery by itself.

use std::time::Duration;

use keyward_core::signing::Algorithm;
use keyward_server::ServerConfig;
use keyward_testkit::{redis_url, test_config, Backend, OwnRedis, TestServer};
use serde_json::json;

use crate::signed_requests::{check, register, signed};

on_both_backends!(two_nodes_share_limits_and_credits, replays_and_logins_across_nodes, redis_goes_away_and_comes_back);

fn with_redis(url: &str) -> ServerConfig {
    ServerConfig { redis_url: Some(keyward_core::secret::Secret::new(url)), ..test_config() }
}

async fn two_nodes_share_limits_and_credits(b: Backend) {
    let Some(url) = redis_url("two_nodes_share_limits_and_credits") else { return };
    let a = TestServer::start_with(b, with_redis(&url)).await;
    let c = a.second_node_with(with_redis(&url)).await;
    let (_, key) = a.create(json!({"name": "shared", "ratelimits": [{"limit": 5, "duration": "1m"}]})).await;
    let mut valid = 0;
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &c };
        let v = node.verify(&key, json!({})).await;
        if v["code"] == "VALID" {
            valid += 1;
        } else {
            assert_eq!(v["code"], "RATE_LIMITED", "{v}");
        }
    }
    assert_eq!(valid, 5, "two nodes allow the limit once in total, not twice");

    // Credits spent at once from both nodes: exactly the credits, never below zero.
    let (id, key) = a.create(json!({"name": "prepaid", "credits": {"remaining": 20}})).await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (http, base) = if i % 2 == 0 { (a.http(), a.base.clone()) } else { (c.http(), c.base.clone()) };
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let r = http.post(format!("{base}/v1/keys/verify")).json(&json!({"key": key})).send().await.unwrap();
            r.json::<serde_json::Value>().await.unwrap()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let v = t.await.unwrap();
        assert!(v["credits"]["remaining"].as_i64().unwrap() >= 0);
        match v["code"].as_str().unwrap() {
            "VALID" => ok += 1,
            "USAGE_EXCEEDED" => {}
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(ok, 20);
    // Written back to the database by the nodes that spent them (each flushes on its own
    // clock), and once written 0 stays 0 whichever node writes last.
    let mut v = serde_json::Value::Null;
    for _ in 0..100 {
        v = a.call(reqwest::Method::GET, &format!("/v1/keys/{id}"), None).await.1;
        if v["credits"]["remaining"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(v["credits"]["remaining"], 0, "{v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, v) = a.call(reqwest::Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(v["credits"]["remaining"], 0, "no node wrote back an older count: {v}");
    c.stop().await;
    a.stop().await;
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
            ratelimit_on_error: keyward_server::redis::OnError::Deny,
            ..with_redis(&redis.url())
        })
        .await;
    let (_, key) = allow.create(json!({"name": "r", "ratelimits": [{"limit": 1, "duration": "1h"}]})).await;
    assert_eq!(allow.verify(&key, json!({})).await["code"], "VALID");
    assert_eq!(deny.verify(&key, json!({})).await["code"], "RATE_LIMITED", "counted in Redis");
    redis.stop();
    // Verification goes on: allow answers as if there were room, deny refuses.
    let v = allow.verify(&key, json!({})).await;
    assert_eq!(v["code"], "VALID", "{v}");
    assert_eq!(deny.verify(&key, json!({})).await["code"], "RATE_LIMITED");
    let metrics = allow.http().get(allow.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("keyward_redis_errors_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(errors >= 1, "{metrics}");
    // Redis comes back (empty): the nodes reconnect by themselves and count in it again.
    assert!(redis.restart().await);
    let started = std::time::Instant::now();
    loop {
        let first = allow.verify(&key, json!({})).await["code"].clone();
        let second = allow.verify(&key, json!({})).await["code"].clone();
        if second == "RATE_LIMITED" {
            assert_eq!(first, "VALID");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery: {first} {second}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    deny.stop().await;
    allow.stop().await;
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
