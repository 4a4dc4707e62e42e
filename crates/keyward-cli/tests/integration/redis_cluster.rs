//! Limits and credits shared through a Redis Cluster the test starts (three masters, no
//! replicas: `redis-server --cluster-enabled yes` ×3 and `redis-cli --cluster create`) and
//! through a primary that Redis Sentinel names. Two nodes given the masters' URLs answer
//! exactly for keys on every master and for an identity's keys (its hashes share one slot); a
//! node given one master's URL finds the cluster by itself. One master killed: the keys on it
//! are answered as each node's `--ratelimit-on-error` says (never a 5xx), the others by Redis;
//! restarted empty on its port and node file, it answers again, its keys' counts started over.
//! `fast` limits lease their tokens from the cluster, from the hashes exact checks use (the
//! key's own tag, or its identity's): two nodes under a burst never allow more than the limit.
//! A Sentinel failover: answered without Redis until the sentinel names the replica, then by
//! it, the counts replicated before the primary died kept.

use std::time::{Duration, Instant};

use keyward_core::ratelimit::{lease_size, LEASE_LIFE_MS};
use keyward_server::limits::redis::OnError;
use keyward_server::ServerConfig;
use keyward_testkit::{Backend, OwnCluster, OwnSentinel, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::fast_limits::{metric, ERRORS, HELD, LEASE_RUNS};
use crate::shared_limits::with_redis;

on_both_backends!(
    a_cluster_shares_limits_and_credits_and_outlives_a_master,
    a_cluster_leases_fast_limits_never_past_them,
    a_sentinel_failover_is_followed,
);

/// The second node's settings: the other answer for each, while Redis is away.
fn denying(url: &str) -> ServerConfig {
    ServerConfig { ratelimit_on_error: OnError::Deny, credits_on_error: OnError::Allow, ..with_redis(url) }
}

async fn a_cluster_shares_limits_and_credits_and_outlives_a_master(b: Backend) {
    let Some(mut cluster) = OwnCluster::start("a_cluster_shares_limits_and_credits_and_outlives_a_master").await else {
        return;
    };
    let urls = cluster.urls();
    // Limits fail open and credits closed here (the defaults); the other way round on `c`.
    let a = TestServer::start_with(b, with_redis(&urls)).await;
    let c = a.second_node_with(denying(&urls)).await;

    // Keys limited to 3 a day, made until each master holds one (a key's hashes are made
    // by its first check); each allows 3 in all across both nodes.
    let mut on: [Option<String>; 3] = [None, None, None];
    for n in 0..60 {
        if on.iter().all(Option::is_some) {
            break;
        }
        let (id, key) =
            a.create(json!({"name": format!("k{n}"), "ratelimits": [{"limit": 3, "duration": "1d"}]})).await;
        let mut valid = 0;
        for i in 0..6 {
            let v = if i % 2 == 0 { a.verify(&key, json!({})).await } else { c.verify(&key, json!({})).await };
            assert!(v.get("ratelimit").is_some(), "answered by Redis: {v}");
            match v["code"].as_str() {
                Some("VALID") => valid += 1,
                Some("RATE_LIMITED") => {}
                _ => panic!("{v}"),
            }
        }
        assert_eq!(valid, 3, "two nodes allow the limit once in total");
        let holder = cluster.holder_of(&format!("kw:rl:{{{id}}}")).expect("the key's hash on a master");
        on[holder].get_or_insert(key);
    }
    let on: Vec<String> = on.into_iter().map(|k| k.expect("a key on every master")).collect();

    // An identity's limit and credits, shared by two keys on two nodes: its hashes and its
    // keys' share the identity's slot (a script across slots would fail: counted below).
    let ext = format!("cluster-{}", rand::random::<u32>());
    let (s, identity) = a
        .call(
            Method::POST,
            "/v1/identities",
            Some(json!({"external_id": ext, "ratelimits": [{"name": "team", "limit": 5, "duration": "1h"}],
                "credits": {"remaining": 8}})),
        )
        .await;
    assert_eq!(s, 201, "{identity}");
    let (k1_id, k1) = a.create(json!({"name": "one", "external_id": ext, "credits": {"remaining": 100}})).await;
    let (_, k2) = a.create(json!({"name": "two", "external_id": ext})).await;
    let first = spend(&[(&a, &k1), (&c, &k2)], 12).await;
    assert_eq!(valid(&first, None), 5, "two keys on two nodes share the identity's limit once: {first:?}");
    let iid = identity["id"].as_str().unwrap();
    let slot = cluster.holder_of(&format!("kw:rl:{{{iid}}}"));
    assert!(slot.is_some());
    assert_eq!(cluster.holder_of(&format!("kw:cr:{{{iid}}}")), slot);
    assert_eq!(cluster.holder_of(&format!("kw:cr:{{{iid}}}:{k1_id}")), slot, "the key's credits beside its identity's");
    a.clock.advance(chrono::Duration::hours(2));
    let second = spend(&[(&a, &k1), (&c, &k2)], 10).await;
    assert_eq!(valid(&second, None), 3, "8 credits, 5 spent: 3 more, whichever node and key: {second:?}");
    // The key's own credits (the answer shows the lower of the two counts): one per VALID of
    // it, written back from the tagged hash.
    let k1_valid = valid(&first, Some(0)) + valid(&second, Some(0));
    written_back(&a, &k1_id, 100 - k1_valid).await;

    // Prepaid credits spent at once from both nodes: exactly the credits, written back.
    let (id, prepaid) = a.create(json!({"name": "prepaid", "credits": {"remaining": 20}})).await;
    let spent = spend(&[(&a, &prepaid), (&c, &prepaid)], 40).await;
    assert_eq!(valid(&spent, None), 20, "{spent:?}");
    assert!(spent.iter().all(|(code, _)| code == "VALID" || code == "USAGE_EXCEEDED"), "{spent:?}");
    written_back(&a, &id, 0).await;

    // A node given one master's URL finds the cluster and the same counts.
    let one = a.second_node_with(with_redis(&format!("redis://127.0.0.1:{}", cluster.ports[0]))).await;
    for key in &on {
        let v = one.verify(key, json!({})).await;
        assert_eq!((v["code"].as_str(), v["ratelimit"]["remaining"].as_i64()), (Some("RATE_LIMITED"), Some(0)), "{v}");
    }
    one.stop().await;
    assert_eq!(redis_errors(&a).await + redis_errors(&c).await, 0, "every check answered by the cluster");

    // Master 0 dies: its keys are answered as each node is configured, never with a 5xx
    // (`verify` asserts 200); the other masters' keys by Redis (after at most a moment while
    // the client finds the node gone).
    cluster.stop(0);
    for _ in 0..3 {
        let v = a.verify(&on[0], json!({})).await;
        assert_eq!((v["code"].as_str(), v.get("ratelimit")), (Some("VALID"), None), "allowed without Redis: {v}");
        let v = c.verify(&on[0], json!({})).await;
        assert_eq!(
            (v["code"].as_str(), v.get("ratelimit")),
            (Some("RATE_LIMITED"), None),
            "refused without Redis: {v}"
        );
    }
    let fa = a.http().get(a.url("/v1/auth")).header("x-api-key", on[0].clone()).send().await.unwrap();
    assert_eq!(fa.status(), 200, "forward auth answers too, as configured");
    for key in &on[1..] {
        for node in [&a, &c] {
            let v = by_redis(node, key, "ratelimit").await;
            assert_eq!((v["code"].as_str(), v["ratelimit"]["remaining"].as_i64()), (Some("RATE_LIMITED"), Some(0)));
        }
    }
    assert!(redis_errors(&a).await >= 3);
    let said = crate::shared_limits::redis_health(&a).await;
    assert!(["degraded", "unavailable"].contains(&said.as_str()), "a master gone shows in /healthz: {said}");

    // Back on its port with its node file, empty (no persistence, no replica): its keys'
    // counts start over; the other masters kept theirs.
    assert!(cluster.restart(0).await && cluster.ready().await, "master 0 rejoins");
    let v = by_redis(&a, &on[0], "ratelimit").await;
    assert_eq!((v["code"].as_str(), v["ratelimit"]["remaining"].as_i64()), (Some("VALID"), Some(2)), "{v}");
    let v = by_redis(&c, &on[0], "ratelimit").await;
    assert_eq!((v["code"].as_str(), v["ratelimit"]["remaining"].as_i64()), (Some("VALID"), Some(1)), "{v}");
    assert_eq!(c.verify(&on[1], json!({})).await["code"], "RATE_LIMITED");
    crate::shared_limits::redis_health_becomes(&c, "ok").await;
    c.stop().await;
    a.stop().await;
}

/// `fast_limits.rs`'s `two_nodes_lease_a_fast_limit_never_past_it` over a cluster: a key's own
/// fast limit, then an identity's shared by two keys (one with a fast limit of its own, in its
/// identity's slot).
async fn a_cluster_leases_fast_limits_never_past_them(b: Backend) {
    let Some(cluster) = OwnCluster::start("a_cluster_leases_fast_limits_never_past_them").await else { return };
    let urls = cluster.urls();
    // A check Redis does not answer in time (a loaded machine) is refused, not allowed: the
    // upper bound holds whatever the load.
    let deny = ServerConfig { ratelimit_on_error: OnError::Deny, ..with_redis(&urls) };
    let a = TestServer::start_with(b, deny.clone()).await;
    let c = a.second_node_with(deny).await;
    // The servers' clock stands still: nothing refills during the test.
    assert_eq!(lease_size(300), 3);

    // A key's own fast limit: leased from, and returned to, its tagged hash `kw:rl:{<key>}`,
    // where the exact checks (once a lease is refused) count too.
    let (id, key) =
        a.create(json!({"name": "fast", "ratelimits": [{"limit": 300, "duration": "60s", "mode": "fast"}]})).await;
    let (leased, late) = (lease_runs(&a, &c).await, errors(&a, &c).await);
    let started = Instant::now();
    let spent = spend(&[(&a, &key), (&c, &key)], 900).await;
    let within_a_lease = started.elapsed() < Duration::from_millis(LEASE_LIFE_MS);
    assert!(lease_runs(&a, &c).await > leased, "leases taken from the cluster");
    assert!(cluster.holder_of(&format!("kw:rl:{{{id}}}")).is_some(), "the key's hash under its tag");
    assert_eq!(cluster.holder_of(&format!("kw:rl:{id}")), None, "no hash of another name");
    fast_bounds(&a, &c, &spent, &key, 300, late, within_a_lease).await;

    // An identity's fast limit, shared by two keys on two nodes; the first key's own fast
    // limit (never reached) is leased from its hash in the identity's slot.
    let ext = format!("fast-{}", rand::random::<u32>());
    let team = json!([{"name": "team", "limit": 300, "duration": "60s", "mode": "fast"}]);
    let (s, identity) =
        a.call(Method::POST, "/v1/identities", Some(json!({"external_id": ext, "ratelimits": team}))).await;
    assert_eq!(s, 201, "{identity}");
    let iid = identity["id"].as_str().unwrap();
    let own = json!([{"limit": 10_000, "duration": "60s", "mode": "fast"}]);
    let (k1_id, k1) = a.create(json!({"name": "one", "external_id": ext, "ratelimits": own})).await;
    let (_, k2) = a.create(json!({"name": "two", "external_id": ext})).await;
    let (leased, late) = (lease_runs(&a, &c).await, errors(&a, &c).await);
    let started = Instant::now();
    let spent = spend(&[(&a, &k1), (&c, &k2)], 900).await;
    let within_a_lease = started.elapsed() < Duration::from_millis(LEASE_LIFE_MS);
    assert!(lease_runs(&a, &c).await > leased, "leases taken from the cluster");
    let slot = cluster.holder_of(&format!("kw:rl:{{{iid}}}"));
    assert!(slot.is_some(), "the identity's hash under its tag");
    assert_eq!(cluster.holder_of(&format!("kw:rl:{{{iid}}}:{k1_id}")), slot, "the key's hash beside its identity's");
    for other in [format!("kw:rl:{iid}"), format!("kw:rl:{k1_id}"), format!("kw:rl:{{{k1_id}}}")] {
        assert_eq!(cluster.holder_of(&other), None, "no hash named {other}");
    }
    fast_bounds(&a, &c, &spent, &k2, 300, late, within_a_lease).await;
    c.stop().await;
    a.stop().await;
}

/// The bounds docs/RATELIMITS.md states for a fast limit of `limit` spent by `spent` on two
/// nodes: never more than the limit; while Redis answered every run (`late`: the errors
/// before), at most the other node's lease fewer — two leases' worth when the spend outlived
/// a lease (`within_a_lease` false): an expired lease's unused tokens wait for the background
/// return while a new lease is held (docs/RATELIMITS.md) —, and once the leases
/// are returned `c` alone allows exactly the rest with `key`.
async fn fast_bounds(
    a: &TestServer,
    c: &TestServer,
    spent: &[(String, usize)],
    key: &str,
    limit: u64,
    late: u64,
    within_a_lease: bool,
) {
    assert!(spent.iter().all(|(code, _)| code == "VALID" || code == "RATE_LIMITED"), "{spent:?}");
    let valid = valid(spent, None);
    let k = u64::from(lease_size(u32::try_from(limit).unwrap()));
    assert!(valid <= limit, "never past the limit: {valid}");
    // A run answered too late may have been applied (its tokens then unused for the
    // window), as for exact checks: the lower bounds are for a Redis that answers.
    let answered = errors(a, c).await == late;
    if answered {
        let held_back = if within_a_lease { k } else { 2 * k };
        assert!(valid >= limit - held_back, "at most {held_back} held back in the other node's leases: {valid}");
    }
    for node in [a, c] {
        let started = Instant::now();
        while metric(node, HELD).await > 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "leases not returned");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut more = 0;
    loop {
        let v = c.verify(key, json!({})).await;
        if v["code"] != "VALID" {
            assert_eq!(v["code"], "RATE_LIMITED", "{v}");
            break;
        }
        more += 1;
        assert!(more <= limit, "past the limit");
    }
    assert!(valid + more <= limit, "past the limit: {valid} + {more}");
    if answered && errors(a, c).await == late {
        assert_eq!(valid + more, limit, "returned tokens are allowed again, to the hash they came from");
    } else {
        eprintln!("Redis did not answer every run in time: lower bounds not checked ({valid} + {more})");
    }
}

async fn lease_runs(a: &TestServer, c: &TestServer) -> u64 {
    metric(a, LEASE_RUNS).await + metric(c, LEASE_RUNS).await
}

async fn errors(a: &TestServer, c: &TestServer) -> u64 {
    metric(a, ERRORS).await + metric(c, ERRORS).await
}

async fn a_sentinel_failover_is_followed(b: Backend) {
    let Some(mut sentinel) = OwnSentinel::start("a_sentinel_failover_is_followed").await else { return };
    let url = sentinel.url();
    let a = TestServer::start_with(b, with_redis(&url)).await;
    let c = a.second_node_with(denying(&url)).await;
    let (_, key) = a.create(json!({"name": "s", "ratelimits": [{"limit": 3, "duration": "1h"}]})).await;
    assert_eq!(a.verify(&key, json!({})).await["ratelimit"]["remaining"], 2);
    assert_eq!(c.verify(&key, json!({})).await["ratelimit"]["remaining"], 1);

    // The primary dies (its writes on the replica); the sentinel waits a minute before it
    // calls it down, so until the failover asked below every answer is without Redis.
    sentinel.stop_primary();
    let v = a.verify(&key, json!({})).await;
    assert_eq!((v["code"].as_str(), v.get("ratelimit")), (Some("VALID"), None), "{v}");
    let v = c.verify(&key, json!({})).await;
    assert_eq!((v["code"].as_str(), v.get("ratelimit")), (Some("RATE_LIMITED"), None), "{v}");
    keyward_testkit::redis_topologies::cli(sentinel.sentinel, &["SENTINEL", "FAILOVER", "kw"]);
    let started = Instant::now();
    while sentinel.named_primary() != Some(sentinel.replica) {
        assert!(started.elapsed() < Duration::from_secs(20), "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both nodes follow to the new primary, where the two uses made before are.
    let v = by_redis(&a, &key, "ratelimit").await;
    assert_eq!((v["code"].as_str(), v["ratelimit"]["remaining"].as_i64()), (Some("VALID"), Some(0)), "{v}");
    let v = by_redis(&c, &key, "ratelimit").await;
    assert_eq!((v["code"].as_str(), v["ratelimit"]["remaining"].as_i64()), (Some("RATE_LIMITED"), Some(0)), "{v}");
    c.stop().await;
    a.stop().await;
}

/// `n` verifications at once, spread over the (node, key) pairs in turn: each answer's code
/// and pair.
async fn spend(pairs: &[(&TestServer, &String)], n: usize) -> Vec<(String, usize)> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let (node, key) = pairs[i % pairs.len()];
        let (http, url, key) = (node.http(), node.url("/v1/keys/verify"), key.clone());
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).json(&json!({"key": key})).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let v = t.await.unwrap();
        out.push((v["code"].as_str().unwrap().to_string(), i % pairs.len()));
    }
    out
}

/// The VALID answers among `spent`, of one pair or of all.
fn valid(spent: &[(String, usize)], pair: Option<usize>) -> u64 {
    spent.iter().filter(|(code, p)| code == "VALID" && pair.is_none_or(|q| q == *p)).count() as u64
}

/// The first answer with `field` (answered by Redis); until then each is the node's answer
/// without Redis. 20 s at most.
async fn by_redis(node: &TestServer, key: &str, field: &str) -> Value {
    let started = Instant::now();
    loop {
        let v = node.verify(key, json!({})).await;
        if v.get(field).is_some() {
            return v;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "Redis not used again: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn redis_errors(node: &TestServer) -> u64 {
    let metrics = node.http().get(node.url("/metrics")).send().await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("keyward_redis_errors_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits until the database holds `remaining` for key `id` (written back by the nodes).
pub(crate) async fn written_back(node: &TestServer, id: &str, remaining: u64) {
    let mut v = Value::Null;
    for _ in 0..100 {
        v = node.call(Method::GET, &format!("/v1/keys/{id}"), None).await.1;
        if v["credits"]["remaining"] == remaining {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not written back as {remaining}: {v}");
}
