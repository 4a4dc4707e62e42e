//! `fast` limits (docs/RATELIMITS.md): nodes sharing Redis take leases of a limit's tokens
//! and answer most checks without Redis. Two nodes under a burst never allow more than the
//! limit and at most one lease (k = 1 % of the limit) fewer; unused tokens come back after a
//! lease's life; most checks take no Redis run; exact limits are as before; a bad mode is a
//! 400 naming it.

use std::time::Duration;

use keyward_server::limits::redis::OnError;
use keyward_server::ServerConfig;
use keyward_testkit::{redis_url, Backend, TestServer};
use reqwest::Method;
use serde_json::json;

use crate::shared_limits::with_redis;

on_both_backends!(
    two_nodes_lease_a_fast_limit_never_past_it,
    fast_limits_mostly_skip_redis_and_exact_ones_do_not,
    fast_limits_of_a_key_with_credits_are_leased_and_its_credits_stay_exact,
    modes_are_written_read_and_checked,
);

/// `n` verifications of `key` at once, every other one on each node; their answers' tasks.
fn burst(a: &TestServer, c: &TestServer, key: &str, n: usize) -> Vec<tokio::task::JoinHandle<serde_json::Value>> {
    (0..n)
        .map(|i| {
            let node = if i % 2 == 0 { a } else { c };
            let r = node.http().post(node.url("/v1/keys/verify")).json(&json!({"key": key}));
            tokio::spawn(async move { r.send().await.unwrap().json::<serde_json::Value>().await.unwrap() })
        })
        .collect()
}

/// A figure from a node's /metrics (0 when absent).
pub(crate) async fn metric(node: &TestServer, line: &str) -> u64 {
    let text = node.http().get(node.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line).and_then(|r| r.strip_prefix(' ')))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

pub(crate) const EXACT_RUNS: &str = "keyward_redis_limit_runs_total{kind=\"exact\"}";
pub(crate) const LEASE_RUNS: &str = "keyward_redis_limit_runs_total{kind=\"lease\"}";
pub(crate) const HELD: &str = "keyward_redis_lease_tokens_held";
pub(crate) const ERRORS: &str = "keyward_redis_errors_total";

async fn two_nodes_lease_a_fast_limit_never_past_it(b: Backend) {
    let Some(url) = redis_url("two_nodes_lease_a_fast_limit_never_past_it") else { return };
    // A check Redis does not answer in time (a loaded machine) is refused, not allowed: the
    // upper bound holds whatever the load.
    let deny = ServerConfig { ratelimit_on_error: OnError::Deny, ..with_redis(&url) };
    let a = TestServer::start_with(b, deny.clone()).await;
    let c = a.second_node_with(deny).await;
    let (_, key) =
        a.create(json!({"name": "fast", "ratelimits": [{"limit": 300, "duration": "60s", "mode": "fast"}]})).await;
    // The servers' clock stands still: nothing refills during the test.
    let k = keyward_core::ratelimit::lease_size(300);
    assert_eq!(k, 3);
    let tasks = burst(&a, &c, &key, 900);
    let mut valid = 0u32;
    for t in tasks {
        let v = t.await.unwrap();
        match v["code"].as_str().unwrap() {
            "VALID" => valid += 1,
            "RATE_LIMITED" => {}
            other => panic!("unexpected {other}: {v}"),
        }
    }
    // The bound docs/RATELIMITS.md states: never more than the limit, at most (N − 1) × k
    // fewer (the other node's unused lease) while the leases live.
    assert!(valid <= 300, "never past the limit: {valid}");
    // The lower bound is for a Redis that answers: a run answered too late may have been
    // applied (its tokens then unused for the window), as for exact checks.
    let late = metric(&a, ERRORS).await + metric(&c, ERRORS).await;
    if late == 0 {
        assert!(valid >= 300 - k, "at most one other node's lease held back: {valid}");
    }
    // After the leases' life the unused tokens are back in Redis: the other node alone
    // then allows exactly what is left, to the limit in total.
    for node in [&a, &c] {
        let started = std::time::Instant::now();
        while metric(node, HELD).await > 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "leases not returned");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut more = 0;
    loop {
        let v = c.verify(&key, json!({})).await;
        if v["code"] != "VALID" {
            assert_eq!(v["code"], "RATE_LIMITED", "{v}");
            break;
        }
        more += 1;
        assert!(more <= 300, "past the limit");
    }
    assert!(valid + more <= 300, "past the limit: {valid} + {more}");
    if late == 0 && metric(&a, ERRORS).await + metric(&c, ERRORS).await == 0 {
        assert_eq!(valid + more, 300, "returned tokens are allowed again, and only they");
    } else {
        eprintln!("Redis did not answer every run in time ({late}): lower bounds not checked ({valid} + {more})");
    }
    c.stop().await;
    a.stop().await;
}

async fn fast_limits_mostly_skip_redis_and_exact_ones_do_not(b: Backend) {
    let Some(url) = redis_url("fast_limits_mostly_skip_redis_and_exact_ones_do_not") else { return };
    let a = TestServer::start_with(b, with_redis(&url)).await;
    let (_, fast) =
        a.create(json!({"name": "fast", "ratelimits": [{"limit": 1_000_000, "duration": "1s", "mode": "fast"}]})).await;
    let (_, exact) = a.create(json!({"name": "exact", "ratelimits": [{"limit": 1_000_000, "duration": "1s"}]})).await;
    let (exact0, lease0) = (metric(&a, EXACT_RUNS).await, metric(&a, LEASE_RUNS).await);
    for _ in 0..1000 {
        let v = a.verify(&fast, json!({})).await;
        assert_eq!(v["code"], "VALID", "{v}");
        assert!(v["ratelimit"]["remaining"].as_u64().unwrap() < 1_000_000, "{v}");
    }
    let (exact1, lease1) = (metric(&a, EXACT_RUNS).await, metric(&a, LEASE_RUNS).await);
    assert_eq!(exact1, exact0, "no exact run for a fast limit with room");
    // A lease of 1,000 lives 1 s: one run per 1,000 checks or per second, whichever first.
    assert!(lease1 - lease0 >= 1 && lease1 - lease0 < 100, "{lease0} → {lease1} lease runs for 1,000 checks");
    // An exact limit: one run per check, as before.
    for _ in 0..50 {
        assert_eq!(a.verify(&exact, json!({})).await["code"], "VALID");
    }
    assert_eq!(metric(&a, EXACT_RUNS).await - exact1, 50);
    assert_eq!(metric(&a, LEASE_RUNS).await, lease1, "no lease for an exact limit");
    // A fast limit of a key with credits is leased; the credits are a run of their own (they
    // stay exact). A request that makes a limit of its own is checked exactly.
    let (_, prepaid) = a
        .create(json!({"name": "p", "credits": {"remaining": 5},
                       "ratelimits": [{"limit": 100, "duration": "1m", "mode": "fast"}]}))
        .await;
    let v = a.verify(&prepaid, json!({})).await;
    assert_eq!((v["credits"]["remaining"].as_u64(), v["ratelimit"]["limit"].as_u64()), (Some(4), Some(100)), "{v}");
    assert_eq!(metric(&a, LEASE_RUNS).await, lease1 + 1, "its limit from a lease");
    let made = json!({"ratelimits": [{"name": "own", "limit": 2, "duration": 60_000}]});
    assert_eq!(a.verify(&fast, made.clone()).await["code"], "VALID");
    assert_eq!(a.verify(&fast, made.clone()).await["code"], "VALID");
    assert_eq!(a.verify(&fast, made).await["code"], "RATE_LIMITED");
    assert_eq!(metric(&a, EXACT_RUNS).await - exact1, 54);
    a.stop().await;
}

/// A key whose limit is fast and which has credits: two nodes lease the limit's tokens, and
/// every verification spends the credits in one exact run of its own, so 900 verifications
/// across the nodes grant the 300 credits exactly once each.
async fn fast_limits_of_a_key_with_credits_are_leased_and_its_credits_stay_exact(b: Backend) {
    let name = "fast_limits_of_a_key_with_credits_are_leased_and_its_credits_stay_exact";
    let Some(url) = redis_url(name) else { return };
    let deny = ServerConfig { ratelimit_on_error: OnError::Deny, ..with_redis(&url) };
    let a = TestServer::start_with(b, deny.clone()).await;
    let c = a.second_node_with(deny).await;
    let (_, key) = a
        .create(json!({"name": "prepaid", "credits": {"remaining": 300},
                       "ratelimits": [{"limit": 100_000, "duration": "60s", "mode": "fast"}]}))
        .await;
    let (ra, rc) = (&a, &c);
    let runs = |kind| async move { metric(ra, kind).await + metric(rc, kind).await };
    let (exact0, lease0) = (runs(EXACT_RUNS).await, runs(LEASE_RUNS).await);
    let tasks = burst(&a, &c, &key, 900);
    let mut left = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let v = t.await.unwrap();
        match v["code"].as_str().unwrap() {
            "VALID" => {
                assert!(v["ratelimit"]["remaining"].as_u64().is_some(), "the limit answered: {v}");
                left.push(v["credits"]["remaining"].as_u64().unwrap());
            }
            "USAGE_EXCEEDED" | "RATE_LIMITED" => refused += 1,
            other => panic!("unexpected {other}: {v}"),
        }
    }
    left.sort_unstable();
    assert!(left.len() <= 300, "never more than the credits: {}", left.len());
    left.dedup();
    assert_eq!(left.len() + refused, 900, "no count of credits left was answered twice");
    let late = metric(&a, ERRORS).await + metric(&c, ERRORS).await;
    if late == 0 {
        assert_eq!(left, (0..300).collect::<Vec<u64>>(), "each credit granted once");
        assert_eq!(runs(EXACT_RUNS).await - exact0, 900, "one credits run per verification");
        // What Redis holds is what is left: no lease of credits, nothing to give back.
        let v = a.verify(&key, json!({"cost": 0})).await;
        assert_eq!(v["credits"]["remaining"].as_u64(), Some(0), "{v}");
    } else {
        // A run answered too late may have been applied (credits spent, the answer a
        // refusal), as for any exact check.
        eprintln!("Redis did not answer every run in time ({late}): lower bounds not checked");
    }
    let leases = runs(LEASE_RUNS).await - lease0;
    assert!((1..100).contains(&leases), "the limit from leases (k = 1,000): {leases} lease runs");
    c.stop().await;
    a.stop().await;
}

async fn modes_are_written_read_and_checked(b: Backend) {
    let s = TestServer::start(b).await;
    let limits = json!([{"limit": 10, "duration": "1m", "mode": "fast"}, {"name": "b", "limit": 5, "duration": "1s"}]);
    let (st, v) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "k", "ratelimits": limits}))).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["ratelimits"][0]["mode"], "fast", "{v}");
    assert!(v["ratelimits"][1].get("mode").is_none(), "exact is the default, not written: {v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (_, v) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(v["ratelimits"][0]["mode"], "fast", "{v}");
    // Without Redis a fast limit counts on the node like any other.
    let key = s.create(json!({"name": "one", "ratelimits": [{"limit": 1, "duration": "1m", "mode": "fast"}]})).await.1;
    assert_eq!(s.verify(&key, json!({})).await["code"], "VALID");
    assert_eq!(s.verify(&key, json!({})).await["code"], "RATE_LIMITED");

    let bad = json!([{"limit": 1, "duration": "1m"}, {"name": "b", "limit": 1, "duration": "1m", "mode": "quick"}]);
    let (st, e) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "k", "ratelimits": bad.clone()}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("ratelimits[1].mode")), "{e}");
    let (st, e) = s.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(json!({"ratelimits": bad.clone()}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("ratelimits[1].mode")), "{e}");
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"ratelimits": [{"limit": 3, "duration": "1s", "mode": "exact"}]})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["ratelimits"][0].get("mode").is_none(), "{v}");

    // Identities take it too.
    let body = json!({"external_id": "team", "ratelimits": [{"limit": 1, "duration": "1m", "mode": "fast"}]});
    let (st, v) = s.call(Method::POST, "/v1/identities", Some(body)).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["ratelimits"][0]["mode"], "fast", "{v}");
    let body = json!({"external_id": "team2", "ratelimits": bad});
    let (st, e) = s.call(Method::POST, "/v1/identities", Some(body)).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("ratelimits[1].mode")), "{e}");
    s.stop().await;
}
