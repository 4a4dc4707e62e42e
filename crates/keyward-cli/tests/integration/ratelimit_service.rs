//! Rate limiting as a service (`POST /v1/ratelimit`, `/v1/ratelimit/overrides`): exact
//! `remaining` and `reset` on the manual clock, `cost`, workspaces that never collide, who may
//! call it, overrides (exact and `*` patterns) that reach — and, deleted, leave — another
//! node, two nodes sharing one limit through Redis (and `--ratelimit-on-error` while it is
//! away), field-named 400s, 401 without credentials.

use std::time::{Duration, Instant};

use keyward_core::OsRandom;
use keyward_server::bootstrap::{create_workspace, InitOptions};
use keyward_server::ServerConfig;
use keyward_testkit::{redis_url, Backend, OwnRedis, TestServer};

use crate::shared_limits::with_redis;
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    remaining_and_reset_are_exact_and_cost_spends,
    workspaces_never_collide_and_roles_are_checked,
    overrides_reach_and_leave_another_node,
    two_nodes_share_one_limit_through_redis,
    without_redis_allow_counts_here_and_deny_refuses,
    bad_input_names_the_field,
);

fn now_ms(s: &TestServer) -> i64 {
    keyward_core::Clock::now(s.clock.as_ref()).timestamp_millis()
}

async fn limit_as(s: &TestServer, token: &str, body: Value) -> (u16, Value) {
    s.call_as(token, Method::POST, "/v1/ratelimit", Some(body)).await
}

async fn limit(s: &TestServer, body: Value) -> Value {
    let (st, v) = limit_as(s, &s.management_key, body).await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn remaining_and_reset_are_exact_and_cost_spends(b: Backend) {
    let s = TestServer::start(b).await;
    let t0 = now_ms(&s);
    let body = json!({"namespace": "login", "identifier": "alice@example.com", "limit": 3, "duration": 60_000});
    // GCRA: three at once, spaced 20 s apart in its books; whole again a minute after.
    for (left, reset) in [(2, 20_000), (1, 40_000), (0, 60_000)] {
        let v = limit(&s, body.clone()).await;
        assert_eq!(v, json!({"success": true, "remaining": left, "reset": t0 + reset, "limit": 3}));
    }
    let v = limit(&s, body.clone()).await;
    assert_eq!(v, json!({"success": false, "remaining": 0, "reset": t0 + 60_000, "limit": 3}));
    s.clock.advance(chrono::Duration::milliseconds(19_999));
    assert_eq!(limit(&s, body.clone()).await["success"], false, "one comes back after 20 s, not before");
    s.clock.advance(chrono::Duration::milliseconds(1));
    let v = limit(&s, body.clone()).await;
    assert_eq!((v["success"].as_bool(), v["remaining"].as_i64()), (Some(true), Some(0)), "{v}");

    // `cost` spends several; 0 only looks; more than is left is refused and spends nothing.
    let t1 = now_ms(&s);
    let sms = |cost: Value| json!({"namespace": "sms", "identifier": "+15550100", "limit": 10, "duration": 10_000, "cost": cost});
    assert_eq!(
        limit(&s, sms(json!(4))).await,
        json!({"success": true, "remaining": 6, "reset": t1 + 4_000, "limit": 10})
    );
    assert_eq!(
        limit(&s, sms(json!(0))).await,
        json!({"success": true, "remaining": 6, "reset": t1 + 4_000, "limit": 10})
    );
    assert_eq!(limit(&s, sms(json!(7))).await["success"], false);
    assert_eq!(
        limit(&s, sms(json!(6))).await,
        json!({"success": true, "remaining": 0, "reset": t1 + 10_000, "limit": 10})
    );
    assert_eq!(limit(&s, sms(Value::Null)).await["success"], false, "cost null is the default, 1");
    s.stop().await;
}

async fn workspaces_never_collide_and_roles_are_checked(b: Backend) {
    let s = TestServer::start(b).await;
    let opts =
        InitOptions { workspace_name: "beta".into(), prefix: "beta".into(), owner_email: "b@example.com".into() };
    let beta = create_workspace(&s.store, &s.pepper, s.clock.as_ref(), &OsRandom, &opts).await.unwrap();
    let body = json!({"namespace": "otp", "identifier": "u1", "limit": 1, "duration": 3_600_000});
    assert_eq!(limit(&s, body.clone()).await["success"], true);
    assert_eq!(limit(&s, body.clone()).await["success"], false);
    let (st, v) = limit_as(&s, &beta.management_key, body.clone()).await;
    assert_eq!((st, v["success"].as_bool()), (200, Some(true)), "beta's otp/u1 is its own: {v}");
    // An override in beta does not reach alpha.
    let (st, o) = s
        .call_as(
            &beta.management_key,
            Method::POST,
            "/v1/ratelimit/overrides",
            Some(json!({"namespace": "otp", "identifier": "u1", "limit": 100, "duration": 3_600_000})),
        )
        .await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(limit(&s, body.clone()).await["limit"], 1);
    let (st, _) = s.call(Method::DELETE, &format!("/v1/ratelimit/overrides/{}", o["id"].as_str().unwrap()), None).await;
    assert_eq!(st, 404, "another workspace's override is not found");
    let (_, list) = s.call(Method::GET, "/v1/ratelimit/overrides", None).await;
    assert_eq!(list["items"], json!([]));

    // Without credentials 401; with an API key 403.
    let r = s.http().post(s.url("/v1/ratelimit")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (_, key) = s.create(json!({"name": "k"})).await;
    assert_eq!(limit_as(&s, &key, body.clone()).await.0, 403);
    // A viewer may look (cost 0) but not spend, nor set overrides; an operator may spend.
    let viewer = s.member("viewer", false).await;
    let fresh = json!({"namespace": "otp", "identifier": "u2", "limit": 1, "duration": 60_000});
    assert_eq!(limit_as(&s, &viewer.token, fresh.clone()).await.0, 403);
    let mut peek = fresh.clone();
    peek["cost"] = 0.into();
    assert_eq!(
        limit_as(&s, &viewer.token, peek).await,
        (200, json!({"success": true, "remaining": 1, "reset": now_ms(&s), "limit": 1}))
    );
    let operator = s.member("operator", false).await;
    assert_eq!(limit_as(&s, &operator.token, fresh.clone()).await.1["success"], true);
    let set = json!({"namespace": "otp", "identifier": "u2", "limit": 5, "duration": 60_000});
    let (st, _) = s.call_as(&operator.token, Method::POST, "/v1/ratelimit/overrides", Some(set)).await;
    assert_eq!(st, 403);
    s.stop().await;
}

/// Asks `node` until `check` holds for its answer (change events arrive within a second).
async fn eventually(node: &TestServer, body: &Value, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let mut peek = body.clone();
        peek["cost"] = 0.into();
        let v = limit(node, peek).await;
        if check(&v) {
            return v;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "not in force on the other node: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn overrides_reach_and_leave_another_node(b: Backend) {
    let a = TestServer::start(b).await;
    let c = a.second_node().await;
    let vip = json!({"namespace": "api", "identifier": "vip", "limit": 1, "duration": 60_000});
    let gold = json!({"namespace": "api", "identifier": "premium_gold", "limit": 1, "duration": 60_000});
    // The second node holds the namespace's overrides (none) before they are set.
    assert_eq!(limit(&c, vip.clone()).await["limit"], 1);
    let (st, o) = a
        .call(
            Method::POST,
            "/v1/ratelimit/overrides",
            Some(json!({"namespace": "api", "identifier": "vip", "limit": 5, "duration": 60_000})),
        )
        .await;
    assert_eq!(st, 200, "{o}");
    let id = o["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("rlo_"), "{o}");
    assert_eq!(limit(&a, vip.clone()).await["limit"], 5, "in force at once on the node that set it");
    let v = eventually(&c, &vip, |v| v["limit"] == 5).await;
    assert_eq!(v["override_id"], id.as_str());
    // Setting it again replaces it, same id.
    let (_, again) = a
        .call(
            Method::POST,
            "/v1/ratelimit/overrides",
            Some(json!({"namespace": "api", "identifier": "vip", "limit": 7, "duration": 60_000})),
        )
        .await;
    assert_eq!((again["id"].as_str(), again["limit"].as_i64()), (Some(id.as_str()), Some(7)));
    eventually(&c, &vip, |v| v["limit"] == 7).await;
    // A pattern, and a ban (limit 0).
    let (st, _) = a
        .call(
            Method::POST,
            "/v1/ratelimit/overrides",
            Some(json!({"namespace": "api", "identifier": "premium_*", "limit": 3, "duration": 1_000})),
        )
        .await;
    assert_eq!(st, 200);
    eventually(&c, &gold, |v| v["limit"] == 3).await;
    let (st, ban) = a
        .call(
            Method::POST,
            "/v1/ratelimit/overrides",
            Some(json!({"namespace": "api", "identifier": "mallory", "limit": 0, "duration": 60_000})),
        )
        .await;
    assert_eq!(st, 200, "{ban}");
    let mallory = json!({"namespace": "api", "identifier": "mallory", "limit": 100, "duration": 60_000});
    let v = eventually(&c, &mallory, |v| v["limit"] == 0).await;
    assert_eq!((v["success"].as_bool(), v["remaining"].as_i64()), (Some(false), Some(0)));

    // Listed (paged, by namespace), audited.
    let (_, list) = a.call(Method::GET, "/v1/ratelimit/overrides?namespace=api&limit=2", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    let cursor = list["next_cursor"].as_str().unwrap();
    let (_, rest) = a.call(Method::GET, &format!("/v1/ratelimit/overrides?namespace=api&cursor={cursor}"), None).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, none) = a.call(Method::GET, "/v1/ratelimit/overrides?namespace=other", None).await;
    assert_eq!(none["items"], json!([]));

    // Deleted on one node: the other stops applying it.
    let (st, gone) = a.call(Method::DELETE, &format!("/v1/ratelimit/overrides/{id}"), None).await;
    assert_eq!((st, gone["identifier"].as_str()), (200, Some("vip")));
    let v = eventually(&c, &vip, |v| v["limit"] == 1).await;
    assert_eq!(v.get("override_id"), None, "{v}");
    let (st, _) = a.call(Method::DELETE, &format!("/v1/ratelimit/overrides/{id}"), None).await;
    assert_eq!(st, 404);
    let (_, audit) = a.call(Method::GET, "/v1/audit?action=ratelimit_override.*", None).await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "ratelimit_override.delete",
            "ratelimit_override.set",
            "ratelimit_override.set",
            "ratelimit_override.set",
            "ratelimit_override.set"
        ]
    );
    assert_eq!(audit["items"][0]["target"]["id"], id.as_str());
    assert_eq!(audit["items"][3]["target"]["id"], id.as_str(), "the replacing set's audit names the kept id");
    let (_, chain) = a.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(chain["ok"], true, "{chain}");
    c.stop().await;
    a.stop().await;
}

async fn two_nodes_share_one_limit_through_redis(b: Backend) {
    let Some(url) = redis_url("two_nodes_share_one_limit_through_redis") else { return };
    let a = TestServer::start_with(b, with_redis(&url)).await;
    let c = a.second_node_with(with_redis(&url)).await;
    let t0 = now_ms(&a);
    let body = json!({"namespace": "login", "identifier": "203.0.113.7", "limit": 5, "duration": 60_000});
    let first = limit(&a, body.clone()).await;
    assert_eq!(first, json!({"success": true, "remaining": 4, "reset": t0 + 12_000, "limit": 5}));
    let mut allowed = 1;
    for i in 0..9 {
        let node = if i % 2 == 0 { &c } else { &a };
        if limit(node, body.clone()).await["success"] == true {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5, "two nodes allow the limit once in total");
    // An override set on one node applies to the count both share.
    let (st, _) = c
        .call(
            Method::POST,
            "/v1/ratelimit/overrides",
            Some(json!({"namespace": "login", "identifier": "203.0.113.7", "limit": 6, "duration": 60_000})),
        )
        .await;
    assert_eq!(st, 200);
    eventually(&a, &body, |v| v["limit"] == 6).await;
    c.stop().await;
    a.stop().await;
}

/// Redis stopped: `allow` (the default) counts on the node meanwhile, `deny` refuses.
async fn without_redis_allow_counts_here_and_deny_refuses(b: Backend) {
    let Some(mut redis) = OwnRedis::start("without_redis_allow_counts_here_and_deny_refuses").await else { return };
    let allow = TestServer::start_with(b, with_redis(&redis.url())).await;
    let deny = allow
        .second_node_with(ServerConfig {
            ratelimit_on_error: keyward_server::limits::redis::OnError::Deny,
            ..with_redis(&redis.url())
        })
        .await;
    let body = json!({"namespace": "login", "identifier": "bob", "limit": 2, "duration": 60_000});
    assert_eq!(limit(&allow, body.clone()).await["remaining"], 1, "counted in Redis");
    assert_eq!(limit(&deny, body.clone()).await["remaining"], 0, "the same count");
    redis.stop();
    // The node's own count starts whole: the limit still holds, per node.
    let got: Vec<bool> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(limit(&allow, body.clone()).await["success"].as_bool().unwrap());
        }
        v
    };
    assert_eq!(got, [true, true, false]);
    let v = limit(&deny, json!({"namespace": "login", "identifier": "carol", "limit": 5, "duration": 60_000})).await;
    assert_eq!((v["success"].as_bool(), v["remaining"].as_i64()), (Some(false), Some(0)), "{v}");
    deny.stop().await;
    allow.stop().await;
}

async fn bad_input_names_the_field(b: Backend) {
    let s = TestServer::start(b).await;
    let good = json!({"namespace": "n", "identifier": "i", "limit": 10, "duration": 60_000});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("namespace", json!("")), "namespace"),
        (with("namespace", json!("a\u{0}b")), "namespace"),
        (with("identifier", json!("x".repeat(256))), "identifier"),
        (with("limit", json!(0)), "limit"),
        (with("limit", json!(1_000_000_001u64)), "limit"),
        (with("limit", json!(-1)), "limit"),
        (with("limit", json!("ten")), "limit"),
        (with("duration", json!(999)), "duration"),
        (with("duration", json!(2_592_000_001u64)), "duration"),
        (with("cost", json!(11)), "cost"),
        (with("unknown", json!(1)), "unknown"),
        (json!({"namespace": "n", "limit": 1, "duration": 1_000}), "identifier"),
    ];
    for (body, field) in cases {
        let (st, v) = s.call(Method::POST, "/v1/ratelimit", Some(body.clone())).await;
        assert_eq!((st, v["error"]["field"].as_str()), (400, Some(field)), "{body}: {v}");
    }
    assert_eq!(limit(&s, with("identifier", json!("é".repeat(127)))).await["success"], true, "254 bytes fit");
    // Overrides: the same rules (limit 0 allowed), nothing stored when refused.
    let ocases = [
        (json!({"namespace": "n", "identifier": "", "limit": 1, "duration": 1_000}), "identifier"),
        (json!({"namespace": "n", "identifier": "i", "limit": 1, "duration": 10}), "duration"),
        (json!({"namespace": "n", "identifier": "i", "limit": 1, "duration": 1_000, "cost": 1}), "cost"),
        (json!({"namespace": "n".repeat(256), "identifier": "i", "limit": 1, "duration": 1_000}), "namespace"),
    ];
    for (body, field) in ocases {
        let (st, v) = s.call(Method::POST, "/v1/ratelimit/overrides", Some(body.clone())).await;
        assert_eq!((st, v["error"]["field"].as_str()), (400, Some(field)), "{body}: {v}");
    }
    let (st, v) = s.call(Method::GET, "/v1/ratelimit/overrides?limit=0", None).await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("limit")));
    let (st, v) = s.call(Method::GET, "/v1/ratelimit/overrides?cursor=nope", None).await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("cursor")));
    let (_, list) = s.call(Method::GET, "/v1/ratelimit/overrides", None).await;
    assert_eq!(list["items"], json!([]));
    let (st, _) = s.call(Method::DELETE, "/v1/ratelimit/overrides/rlo_01AAAAAAAAAAAAAAAAAAAAAAAA", None).await;
    assert_eq!(st, 404);
    let r = s.http().post(s.url("/v1/ratelimit/overrides")).json(&good).send().await.unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}
