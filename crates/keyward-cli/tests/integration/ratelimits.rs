//! Rate limits and credits per key, in the mode without Redis (each node counts on its own):
//! exactly `limit` per window then `RATE_LIMITED` with its reset, `cost`, credits spent to
//! zero and refilled on the manual clock, written back in batches, overrides in force on
//! every node within a second, 429 with the IETF headers from forward-auth and the gateway,
//! policy defaults, rotation, the CLI's flags, field-named 400s.

use std::time::Duration;

use keyward_testkit::{Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    exactly_the_limit_then_refused_with_its_reset,
    credits_spent_refilled_and_written_back,
    overrides_reach_every_node,
    without_redis_each_node_spends_the_credits_it_read,
    surfaces_answer_429_with_headers,
    defaults_rotation_cli_and_bad_input
);

async fn verify_cost(s: &TestServer, key: &str, cost: Option<u32>) -> Value {
    let mut extra = json!({});
    if let Some(c) = cost {
        extra["cost"] = c.into();
    }
    s.verify(key, extra).await
}

fn now_ms(s: &TestServer) -> i64 {
    keyward_core::Clock::now(s.clock.as_ref()).timestamp_millis()
}

async fn exactly_the_limit_then_refused_with_its_reset(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, key) = s
        .create(json!({"name": "metered", "ratelimits": [{"name": "per-minute", "limit": 3, "duration": "1m"}]}))
        .await;
    let (_, v) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(v["ratelimits"], json!([{"name": "per-minute", "limit": 3, "duration": "1m"}]));
    let t0 = now_ms(&s);
    for left in [2, 1, 0] {
        let v = verify_cost(&s, &key, None).await;
        assert_eq!(v["code"], "VALID", "{v}");
        assert_eq!(
            v["ratelimit"],
            json!({"name": "per-minute", "limit": 3, "remaining": left, "reset": v["ratelimit"]["reset"]})
        );
    }
    let v = verify_cost(&s, &key, None).await;
    assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(false), Some("RATE_LIMITED")), "{v}");
    assert_eq!(v["key_id"], id.as_str());
    assert_eq!(v["ratelimit"]["remaining"], 0);
    // Whole again one minute after the burst (GCRA: the three uses were spaced 20 s apart).
    assert_eq!(v["ratelimit"]["reset"].as_i64().unwrap(), t0 + 60_000);
    // One use comes back every 20 s.
    s.clock.advance(chrono::Duration::seconds(19));
    assert_eq!(verify_cost(&s, &key, None).await["code"], "RATE_LIMITED");
    s.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(verify_cost(&s, &key, None).await["code"], "VALID");
    // A window later, a whole burst again; cost spends several, 0 only looks.
    s.clock.advance(chrono::Duration::seconds(60));
    let v = verify_cost(&s, &key, Some(0)).await;
    assert_eq!((v["code"].as_str(), v["ratelimit"]["remaining"].as_i64()), (Some("VALID"), Some(3)));
    let v = verify_cost(&s, &key, Some(2)).await;
    assert_eq!((v["code"].as_str(), v["ratelimit"]["remaining"].as_i64()), (Some("VALID"), Some(1)));
    assert_eq!(verify_cost(&s, &key, Some(2)).await["code"], "RATE_LIMITED");
    assert_eq!(verify_cost(&s, &key, Some(1)).await["code"], "VALID");
    // A refusal that is not about the limit spends nothing of it.
    let (_, other) = s
        .create(
            json!({"name": "ip-bound", "ip_allowlist": ["10.0.0.1"], "ratelimits": [{"limit": 1, "duration": "1h"}]}),
        )
        .await;
    assert_eq!(s.verify(&other, json!({"ip": "10.9.9.9"})).await["code"], "IP_NOT_ALLOWED");
    assert_eq!(s.verify(&other, json!({"ip": "10.0.0.1"})).await["code"], "VALID");
    // Counted in usage under its own code.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, u) = s.call(Method::GET, &format!("/v1/keys/{id}/usage"), None).await;
    assert_eq!(u["by_code"]["RATE_LIMITED"], 3, "{u}");
    s.stop().await;
}

async fn credits_spent_refilled_and_written_back(b: Backend) {
    let s = TestServer::start(b).await;
    let body = json!({"name": "prepaid", "credits": {"remaining": 3, "refill": {"interval": "daily", "amount": 5}}});
    let (id, key) = s.create(body).await;
    for left in [2, 1, 0] {
        let v = verify_cost(&s, &key, None).await;
        assert_eq!((v["code"].as_str(), v["credits"]["remaining"].as_i64()), (Some("VALID"), Some(left)), "{v}");
    }
    let v = verify_cost(&s, &key, None).await;
    assert_eq!((v["code"].as_str(), v["credits"]["remaining"].as_i64()), (Some("USAGE_EXCEEDED"), Some(0)));
    assert_eq!(verify_cost(&s, &key, Some(0)).await["code"], "VALID", "cost 0 only looks");
    // Written back in batches: the stored count follows within a flush interval.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, v) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(v["credits"], json!({"remaining": 0, "refill": {"interval": "daily", "amount": 5, "day": 1}}));
    // The next UTC day refills to the amount.
    let now = keyward_core::Clock::now(s.clock.as_ref());
    let midnight = (now + chrono::Duration::days(1)).date_naive().and_hms_opt(0, 0, 1).unwrap().and_utc();
    s.clock.advance(midnight - now);
    assert_eq!(verify_cost(&s, &key, Some(2)).await["credits"]["remaining"], 3);
    assert_eq!(verify_cost(&s, &key, Some(4)).await["code"], "USAGE_EXCEEDED", "never below zero");
    // A node started later begins from the written count.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = s.second_node().await;
    assert_eq!(second.verify(&key, json!({})).await["credits"]["remaining"], 2);
    second.stop().await;
    s.stop().await;
}

/// The overshoot docs/RATELIMITS.md states for credits without Redis: a node spends from the
/// count it read when it first saw the key and does not learn of another node's spending
/// (only of an override), so each node can grant the whole allowance.
async fn without_redis_each_node_spends_the_credits_it_read(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, key) = s.create(json!({"name": "prepaid", "credits": {"remaining": 10}})).await;
    let other = s.second_node().await;
    assert_eq!(other.verify(&key, json!({"cost": 0})).await["credits"]["remaining"], 10);
    assert_eq!(s.verify(&key, json!({"cost": 10})).await["credits"]["remaining"], 0);
    let mut v = Value::Null;
    for _ in 0..100 {
        v = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await.1;
        if v["credits"]["remaining"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(v["credits"]["remaining"], 0, "written back: {v}");
    let v = other.verify(&key, json!({"cost": 10})).await;
    assert_eq!((v["code"].as_str(), v["credits"]["remaining"].as_i64()), (Some("VALID"), Some(0)), "20 granted for 10");
    other.stop().await;
    s.stop().await;
}

async fn overrides_reach_every_node(b: Backend) {
    let s = TestServer::start(b).await;
    let other = s.second_node().await;
    let (id, key) = s
        .create(json!({"name": "shared", "ratelimits": [{"limit": 1, "duration": "1h"}], "credits": {"remaining": 1}}))
        .await;
    // Without Redis each node counts on its own (documented): one use on each.
    assert_eq!(s.verify(&key, json!({})).await["code"], "VALID");
    assert_eq!(s.verify(&key, json!({})).await["code"], "RATE_LIMITED");
    // An override through PATCH: new limits and credits, audited, on both nodes within a second.
    let patch = json!({"ratelimits": [{"limit": 5, "duration": "1h"}], "credits": {"remaining": 10}});
    let (st, v) = s.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(patch)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["credits"]["remaining"], 10);
    let started = std::time::Instant::now();
    loop {
        let v = other.verify(&key, json!({"cost": 0})).await;
        if v["credits"]["remaining"] == 10 && v["ratelimit"]["limit"] == 5 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "the override did not reach the other node: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = s.verify(&key, json!({})).await;
    assert_eq!(
        (v["code"].as_str(), v["credits"]["remaining"].as_i64(), v["ratelimit"]["remaining"].as_i64()),
        (Some("VALID"), Some(9), Some(4))
    );
    let (_, audit) = s.call(Method::GET, &format!("/v1/audit?target={id}&action=key.update"), None).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    // Removing them: the key verifies with no block at all.
    let (st, _) =
        s.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(json!({"ratelimits": [], "credits": null}))).await;
    assert_eq!(st, 200);
    let v = s.verify(&key, json!({})).await;
    assert!(v.get("ratelimit").is_none() && v.get("credits").is_none(), "{v}");
    other.stop().await;
    s.stop().await;
}

async fn surfaces_answer_429_with_headers(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, key) = s.create(json!({"name": "fa", "ratelimits": [{"limit": 1, "duration": "1m"}]})).await;
    let auth = |k: &str| s.http().get(s.url("/v1/auth")).header("x-api-key", k.to_string()).send();
    let ok = auth(&key).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["ratelimit-policy"], r#""default";q=1;w=60"#);
    assert_eq!(ok.headers()["ratelimit"], r#""default";r=0;t=60"#);
    let no = auth(&key).await.unwrap();
    assert_eq!(no.status(), 429);
    assert_eq!(no.headers()["x-keyward-code"], "RATE_LIMITED");
    assert_eq!(no.headers()["retry-after"], "60");
    assert_eq!(no.headers()["ratelimit-policy"], r#""default";q=1;w=60"#);
    let body: Value = no.json().await.unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["verification_code"].as_str()),
        (Some("rate_limited"), Some("RATE_LIMITED"))
    );
    let (_, spent) = s.create(json!({"name": "fa2", "credits": {"remaining": 0}})).await;
    let no = auth(&spent).await.unwrap();
    assert_eq!((no.status().as_u16(), no.headers()["x-keyward-code"].to_str().unwrap()), (429, "USAGE_EXCEEDED"));
    assert!(no.headers().contains_key("retry-after"));

    // The gateway: the upstream sees the first request only.
    let (up, seen, _h) = crate::gateway::recording_upstream().await;
    let gw = crate::gateway::start_gateway(&s, &up, 1024).await;
    let (_, gkey) = s.create(json!({"name": "gw", "ratelimits": [{"limit": 1, "duration": "1m"}]})).await;
    let send = || s.http().get(format!("http://{}/v2/x", gw.addr)).header("x-api-key", gkey.clone()).send();
    assert_eq!(send().await.unwrap().status(), 201);
    let r = send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["ratelimit"], r#""default";r=0;t=60"#);
    assert_eq!(seen.lock().unwrap().len(), 1);
    gw.stop().await.unwrap();
    s.stop().await;
}

async fn defaults_rotation_cli_and_bad_input(b: Backend) {
    let s = TestServer::start(b).await;
    s.policy(json!({"default_ratelimits": {"live": [{"name": "live-default", "limit": 100, "duration": "1s"}]}})).await;
    let (_, live) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "l", "environment": "live"}))).await;
    assert_eq!(live["ratelimits"][0]["name"], "live-default");
    let (_, test) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "t", "environment": "test"}))).await;
    assert_eq!(test["ratelimits"], json!([]));
    // A rotated key keeps its limits and credits.
    let (id, _) = s
        .create(json!({"name": "r", "ratelimits": [{"limit": 7, "duration": "1h"}], "credits": {"remaining": 50}}))
        .await;
    let (st, rotated) = s.call(Method::POST, &format!("/v1/keys/{id}/rotate"), Some(json!({}))).await;
    assert_eq!(st, 201, "{rotated}");
    assert_eq!(rotated["ratelimits"], json!([{"name": "default", "limit": 7, "duration": "1h"}]));
    assert_eq!(rotated["credits"]["remaining"], 50);
    // Bad input names the field.
    for (body, field) in [
        (json!({"name": "x", "ratelimits": [{"limit": 0, "duration": "1m"}]}), "ratelimits[0]"),
        (json!({"name": "x", "ratelimits": [{"limit": 5, "duration": "1ms"}]}), "ratelimits[0]"),
        (
            json!({"name": "x", "ratelimits": [{"limit": 5, "duration": "1m"}, {"limit": 6, "duration": "1h"}]}),
            "ratelimits[1].name",
        ),
        (
            json!({"name": "x", "credits": {"remaining": 5, "refill": {"interval": "monthly", "amount": 5, "day": 32}}}),
            "credits.refill.day",
        ),
        (json!({"name": "x", "credits": {"remaining": 5, "refill": {"interval": "weekly", "amount": 5}}}), "credits"),
    ] {
        let (st, v) = s.call(Method::POST, "/v1/keys", Some(body.clone())).await;
        assert_eq!(st, 400, "{body}: {v}");
        assert!(v["error"]["field"].as_str().unwrap_or("").starts_with(field), "{body}: {v}");
    }
    let (st, v) = s.call(Method::PUT, "/v1/policies", Some(json!({"default_ratelimits": {"prod": []}}))).await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("default_ratelimits")));

    // The CLI's flags.
    let home = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(args)
            .env("HOME", home.path())
            .env("KEYWARD_SERVER", &s.base)
            .env("KEYWARD_TOKEN", &s.management_key)
            .output()
            .unwrap()
    };
    let o = cli(&[
        "keys",
        "create",
        "--name",
        "cli",
        "--ratelimit",
        "100/1m",
        "--ratelimit",
        "burst=10/1s",
        "--credits",
        "1000",
        "--refill",
        "monthly",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let k: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        k["ratelimits"],
        json!([{"name": "default", "limit": 100, "duration": "1m"}, {"name": "burst", "limit": 10, "duration": "1s"}])
    );
    assert_eq!(k["credits"], json!({"remaining": 1000, "refill": {"interval": "monthly", "amount": 1000, "day": 1}}));
    let o = cli(&["keys", "show", k["id"].as_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("default=100/1m, burst=10/1s") && text.contains("1000 (refill 1000 monthly on day 1)"),
        "{text}"
    );
    let (_, secret) = s.create(json!({"name": "cli-verify", "ratelimits": [{"limit": 10, "duration": "1s"}], "credits": {"remaining": 1000}})).await;
    let o = cli(&["verify", &secret, "--cost", "1"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("VALID") && text.contains("ratelimit default 9/10 left") && text.contains("credits 999"),
        "{text}"
    );
    let o = cli(&["keys", "create", "--name", "bad", "--ratelimit", "lots"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--ratelimit"));
    s.stop().await;
}
