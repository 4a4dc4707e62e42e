//! Identities (docs/IDENTITIES.md): CRUD by id or external id, hostile values, another
//! workspace's identity not found; keys naming an external id (created on the fly), listed
//! and filtered by it; two keys of one identity sharing its limit and credits on one node
//! and on two nodes through Redis; a limit with `auto_apply: false` checked only when named;
//! the verify answer naming the identity; a deleted identity's keys still valid; a change of
//! an identity's limit seen by its keys' next verification.

use keyward_core::random::OsRandom;
use keyward_server::bootstrap::{create_workspace, InitOptions};
use keyward_testkit::{redis_url, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::shared_limits::with_redis;

on_both_backends!(
    identity_crud_and_hostile_values,
    keys_name_their_identity,
    keys_of_an_identity_share_its_limit_and_credits,
    named_limits_and_auto_apply,
    identity_changes_reach_its_keys_at_once,
    two_nodes_share_an_identity_through_redis,
    the_cli_manages_identities,
);

/// `keyward …` against `s`, its stdout (it must succeed).
fn cli(s: &TestServer, args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("KEYWARD_SERVER", &s.base)
        .env("KEYWARD_TOKEN", &s.management_key)
        .output()
        .unwrap();
    assert!(o.status.success(), "keyward {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

async fn the_cli_manages_identities(b: Backend) {
    let s = TestServer::start(b).await;
    let made: Value = serde_json::from_str(&cli(
        &s,
        &["identities", "create", "cus_cli", "--ratelimit", "team=5/1m", "--credits", "50", "--json"],
    ))
    .unwrap();
    assert_eq!((made["external_id"].as_str(), made["credits"]["remaining"].as_u64()), (Some("cus_cli"), Some(50)));
    assert!(cli(&s, &["identities", "list"]).contains("cus_cli"));
    let key: Value =
        serde_json::from_str(&cli(&s, &["keys", "create", "--name", "k", "--external-id", "cus_cli", "--json"]))
            .unwrap();
    assert_eq!(key["identity_id"], made["id"]);
    let listed: Value =
        serde_json::from_str(&cli(&s, &["keys", "list", "--external-id", "cus_cli", "--json"])).unwrap();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let updated: Value =
        serde_json::from_str(&cli(&s, &["identities", "update", "cus_cli", "--no-credits", "--json"])).unwrap();
    assert_eq!(updated["credits"], Value::Null);
    assert!(cli(&s, &["identities", "get", made["id"].as_str().unwrap()]).contains("cus_cli"));
    cli(&s, &["identities", "delete", "cus_cli"]);
    let (st, _) = s.call(Method::GET, "/v1/identities/cus_cli", None).await;
    assert_eq!(st, 404);
    s.stop().await;
}

async fn identity_crud_and_hostile_values(b: Backend) {
    let s = TestServer::start(b).await;
    let body = json!({"external_id": "cus_1", "meta": {"plan": "pro"},
        "ratelimits": [{"name": "team", "limit": 10, "duration": "1m"}], "credits": {"remaining": 100}});
    let (st, created) = s.call(Method::POST, "/v1/identities", Some(body.clone())).await;
    assert_eq!(st, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("idn_"));
    assert_eq!(created["ratelimits"], json!([{"name": "team", "limit": 10, "duration": "1m"}]));
    assert_eq!(created["credits"]["remaining"], 100);
    // A second with the same external id: 409 naming it.
    let (st, e) = s.call(Method::POST, "/v1/identities", Some(body)).await;
    assert_eq!((st, e["error"]["field"].as_str()), (409, Some("external_id")), "{e}");
    // By id and by external id alike.
    for path in [format!("/v1/identities/{id}"), "/v1/identities/cus_1".to_string()] {
        let (st, v) = s.call(Method::GET, &path, None).await;
        assert_eq!((st, v["id"].as_str()), (200, Some(id.as_str())), "{path}: {v}");
    }
    let (st, v) = s.call(Method::GET, "/v1/identities?external_id=cus_1", None).await;
    assert_eq!((st, v["items"].as_array().map(Vec::len)), (200, Some(1)), "{v}");
    let (_, v) = s.call(Method::GET, "/v1/identities?external_id=nobody", None).await;
    assert_eq!(v["items"], json!([]));
    // Hostile values: each refused naming its field, nothing stored.
    for (bad, field) in [
        (json!({"external_id": "a\u{0}b"}), "external_id"),
        (json!({"external_id": ""}), "external_id"),
        (json!({"external_id": "x".repeat(300)}), "external_id"),
        (json!({"external_id": "big", "meta": {"x": "y".repeat(5_000)}}), "meta"),
        (json!({"external_id": "lim", "ratelimits": [{"name": "a", "limit": 0, "duration": "1m"}]}), "ratelimits[0]"),
        (json!({"external_id": "other", "nope": 1}), "nope"),
    ] {
        let (st, e) = s.call(Method::POST, "/v1/identities", Some(bad.clone())).await;
        assert_eq!(st, 400, "{bad}: {e}");
        assert!(e["error"]["field"].as_str().unwrap_or_default().contains(field), "{bad}: {e}");
    }
    // Past the body limit: refused before it is parsed.
    let huge = json!({"external_id": "huge", "meta": {"x": "y".repeat(2_000_000)}});
    assert_eq!(s.call(Method::POST, "/v1/identities", Some(huge)).await.0, 413);
    let (_, v) = s.call(Method::GET, "/v1/identities", None).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{v}");
    let (st, _) = s.call(Method::GET, &format!("/v1/identities/{}", "z".repeat(3000)), None).await;
    assert_eq!(st, 404);
    // PATCH: meta and limits; an empty patch changes nothing.
    let (st, v) =
        s.call(Method::PATCH, "/v1/identities/cus_1", Some(json!({"meta": {"plan": "team"}, "credits": null}))).await;
    assert_eq!((st, v["meta"]["plan"].as_str(), &v["credits"]), (200, Some("team"), &Value::Null), "{v}");
    // Another workspace sees none of it.
    let opts =
        InitOptions { workspace_name: "beta".into(), prefix: "beta".into(), owner_email: "b@example.com".into() };
    let beta = create_workspace(&s.store, &s.pepper, s.clock.as_ref(), &OsRandom, &opts).await.unwrap();
    for (m, path) in [
        (Method::GET, format!("/v1/identities/{id}")),
        (Method::GET, "/v1/identities/cus_1".to_string()),
        (Method::DELETE, format!("/v1/identities/{id}")),
    ] {
        let (st, _) = s.call_as(&beta.management_key, m.clone(), &path, None).await;
        assert_eq!(st, 404, "{m} {path}");
    }
    let (st, body) = s
        .call_as(&beta.management_key, Method::PATCH, &format!("/v1/identities/{id}"), Some(json!({"meta": {}})))
        .await;
    assert_eq!(st, 404, "{body}");
    let (_, v) = s.call_as(&beta.management_key, Method::GET, "/v1/identities", None).await;
    assert_eq!(v["items"], json!([]));
    // The same external id in another workspace is another identity.
    let (st, _) =
        s.call_as(&beta.management_key, Method::POST, "/v1/identities", Some(json!({"external_id": "cus_1"}))).await;
    assert_eq!(st, 201);
    // A viewer reads but does not change.
    let viewer = s.member("viewer", false).await;
    let (st, _) = s.call_as(&viewer.token, Method::GET, "/v1/identities", None).await;
    assert_eq!(st, 200);
    let (st, _) = s.call_as(&viewer.token, Method::POST, "/v1/identities", Some(json!({"external_id": "v"}))).await;
    assert_eq!(st, 403);
    // Audited.
    let (_, audit) = s.call(Method::GET, "/v1/audit?action=identity.create", None).await;
    assert!(audit.to_string().contains("identity.create"), "{audit}");
    let (st, v) = s.call(Method::DELETE, &format!("/v1/identities/{id}"), None).await;
    assert_eq!((st, v["id"].as_str()), (200, Some(id.as_str())));
    let (st, _) = s.call(Method::GET, &format!("/v1/identities/{id}"), None).await;
    assert_eq!(st, 404);
    s.stop().await;
}

async fn keys_name_their_identity(b: Backend) {
    let s = TestServer::start(b).await;
    // An unknown external id makes the identity with the key.
    let (k1, secret) = s.create(json!({"name": "a", "external_id": "cus_9"})).await;
    let (_, idn) = s.call(Method::GET, "/v1/identities/cus_9", None).await;
    let idn_id = idn["id"].as_str().unwrap().to_string();
    let (_, key) = s.call(Method::GET, &format!("/v1/keys/{k1}"), None).await;
    assert_eq!((key["identity_id"].as_str(), key["external_id"].as_str()), (Some(idn_id.as_str()), Some("cus_9")));
    // A second key joins the same identity; a third has none.
    let (k2, _) = s.create(json!({"name": "b", "external_id": "cus_9"})).await;
    let (k3, _) = s.create(json!({"name": "c"})).await;
    let (_, list) = s.call(Method::GET, "/v1/keys?external_id=cus_9", None).await;
    let mut ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut want = [k1.as_str(), k2.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "the keys of cus_9 only (same millisecond: any order)");
    let (st, _) = s.call(Method::GET, &format!("/v1/keys?external_id={}", "x".repeat(300)), None).await;
    assert_eq!(st, 400);
    // The verify answer names it.
    s.call(Method::PATCH, "/v1/identities/cus_9", Some(json!({"meta": {"tier": 3}}))).await;
    let v = s.verify(&secret, json!({})).await;
    assert_eq!(v["identity"], json!({"id": idn_id, "external_id": "cus_9", "meta": {"tier": 3}}), "{v}");
    // PATCH moves a key in and out.
    let (st, v) = s.call(Method::PATCH, &format!("/v1/keys/{k3}"), Some(json!({"external_id": "cus_9"}))).await;
    assert_eq!((st, v["identity_id"].as_str()), (200, Some(idn_id.as_str())), "{v}");
    let (st, v) = s.call(Method::PATCH, &format!("/v1/keys/{k3}"), Some(json!({"external_id": null}))).await;
    assert_eq!((st, &v["identity_id"]), (200, &Value::Null), "{v}");
    let (st, e) = s.call(Method::PATCH, &format!("/v1/keys/{k3}"), Some(json!({"external_id": "a\u{0}"}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("external_id")), "{e}");
    // Deleting the identity: its keys keep working, without it.
    let (st, _) = s.call(Method::DELETE, "/v1/identities/cus_9", None).await;
    assert_eq!(st, 200);
    let v = s.verify(&secret, json!({})).await;
    assert_eq!((v["code"].as_str(), v.get("identity")), (Some("VALID"), None), "{v}");
    let (_, key) = s.call(Method::GET, &format!("/v1/keys/{k1}"), None).await;
    assert_eq!((key.get("identity_id"), key.get("external_id")), (None, None), "{key}");
    s.stop().await;
}

async fn keys_of_an_identity_share_its_limit_and_credits(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/identities",
            Some(json!({"external_id": "acme", "ratelimits": [{"name": "team", "limit": 4, "duration": "1m"}],
                "credits": {"remaining": 6}})),
        )
        .await;
    assert_eq!(st, 201);
    let (_, a) = s.create(json!({"name": "a", "external_id": "acme"})).await;
    let (_, b2) = s.create(json!({"name": "b", "external_id": "acme", "credits": {"remaining": 1}})).await;
    // Four in the minute, between both keys.
    let mut codes = Vec::new();
    for i in 0..6 {
        let v = s.verify(if i % 2 == 0 { &a } else { &b2 }, json!({})).await;
        codes.push(v["code"].as_str().unwrap().to_string());
    }
    // b's own credit (1) runs out on its second use: refused, and the identity's not spent.
    assert_eq!(codes, ["VALID", "VALID", "VALID", "USAGE_EXCEEDED", "RATE_LIMITED", "RATE_LIMITED"], "{codes:?}");
    s.clock.advance(chrono::Duration::minutes(2));
    let v = s.verify(&a, json!({})).await;
    assert_eq!(v["code"], "VALID", "{v}");
    assert_eq!(v["credits"]["remaining"], 2, "6 less four uses: {v}");
    assert_eq!(v["ratelimits"][0]["source"], "identity", "{v}");
    s.verify(&a, json!({})).await;
    s.verify(&a, json!({})).await;
    let v = s.verify(&a, json!({})).await;
    assert_eq!(v["code"], "USAGE_EXCEEDED", "{v}");
    // Written back to the identity's row.
    let mut left = Value::Null;
    for _ in 0..50 {
        left = s.call(Method::GET, "/v1/identities/acme", None).await.1["credits"]["remaining"].clone();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0);
    s.stop().await;
}

async fn named_limits_and_auto_apply(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, key) = s
        .create(json!({"name": "m", "ratelimits": [
            {"name": "auto", "limit": 100, "duration": "1m"},
            {"name": "manual", "limit": 2, "duration": "1m", "auto_apply": false}]}))
        .await;
    for _ in 0..5 {
        assert_eq!(s.verify(&key, json!({})).await["code"], "VALID", "manual is not checked unless named");
    }
    let named = json!({"ratelimits": [{"name": "manual"}]});
    let v = s.verify(&key, named.clone()).await;
    assert_eq!(v["code"], "VALID", "{v}");
    let listed: Vec<(&str, bool)> = v["ratelimits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["auto_apply"].as_bool().unwrap()))
        .collect();
    assert_eq!(listed, [("auto", true), ("manual", false)], "{v}");
    assert_eq!(s.verify(&key, named.clone()).await["code"], "VALID");
    let v = s.verify(&key, named).await;
    assert_eq!(v["code"], "RATE_LIMITED", "{v}");
    assert_eq!(v["ratelimits"][1]["exceeded"], true, "{v}");
    // At its own cost; an unknown name is a 400 naming it; limit and duration make one.
    let r = s
        .http()
        .post(s.url("/v1/keys/verify"))
        .json(&json!({"key": key, "ratelimits": [{"name": "auto"}, {"name": "nope"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["field"], "ratelimits[1].name", "{e}");
    let adhoc = json!({"ratelimits": [{"name": "burst", "limit": 1, "duration": 60000}]});
    assert_eq!(s.verify(&key, adhoc.clone()).await["code"], "VALID");
    let v = s.verify(&key, adhoc).await;
    assert_eq!(
        (v["code"].as_str(), v["ratelimits"][1]["source"].as_str()),
        (Some("RATE_LIMITED"), Some("request")),
        "{v}"
    );
    let r = s
        .http()
        .post(s.url("/v1/keys/verify"))
        .json(&json!({"key": key, "ratelimits": [{"name": "x", "limit": 0, "duration": 60000}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    s.stop().await;
}

async fn identity_changes_reach_its_keys_at_once(b: Backend) {
    let s = TestServer::start(b).await;
    let other = s.second_node().await;
    s.call(
        Method::POST,
        "/v1/identities",
        Some(json!({"external_id": "live", "ratelimits": [{"name": "t", "limit": 100, "duration": "1h"}]})),
    )
    .await;
    let (_, key) = s.create(json!({"name": "k", "external_id": "live"})).await;
    assert_eq!(s.verify(&key, json!({})).await["code"], "VALID");
    assert_eq!(other.verify(&key, json!({})).await["code"], "VALID");
    // Down to one use an hour: the node that changed it answers by it at once…
    let (st, _) = s
        .call(
            Method::PATCH,
            "/v1/identities/live",
            Some(json!({"ratelimits": [{"name": "t", "limit": 1, "duration": "1h"}]})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.verify(&key, json!({})).await["code"], "VALID");
    assert_eq!(s.verify(&key, json!({})).await["code"], "RATE_LIMITED");
    // …and the other within a second.
    let mut code = Value::Null;
    for _ in 0..30 {
        other.verify(&key, json!({"cost": 0})).await;
        let v = other.verify(&key, json!({})).await;
        code = v["ratelimit"]["limit"].clone();
        if code == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(code, 1, "the second node saw the new limit");
    other.stop().await;
    s.stop().await;
}

async fn two_nodes_share_an_identity_through_redis(b: Backend) {
    let Some(url) = redis_url("two_nodes_share_an_identity_through_redis") else { return };
    let a = TestServer::start_with(b, with_redis(&url)).await;
    let c = a.second_node_with(with_redis(&url)).await;
    let ext = format!("redis-{}", rand::random::<u64>());
    a.call(
        Method::POST,
        "/v1/identities",
        Some(json!({"external_id": ext, "ratelimits": [{"name": "team", "limit": 5, "duration": "1m"}],
            "credits": {"remaining": 8}})),
    )
    .await;
    let (_, k1) = a.create(json!({"name": "one", "external_id": ext})).await;
    let (_, k2) = a.create(json!({"name": "two", "external_id": ext})).await;
    let mut valid = 0;
    for i in 0..12 {
        let (node, key) = if i % 2 == 0 { (&a, &k1) } else { (&c, &k2) };
        let v = node.verify(key, json!({})).await;
        match v["code"].as_str().unwrap() {
            "VALID" => valid += 1,
            "RATE_LIMITED" => {}
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(valid, 5, "two keys on two nodes share the identity's limit once");
    // Credits: 8 less the 5 spent; at most 3 more, whichever node and key.
    a.clock.advance(chrono::Duration::minutes(2));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (http, base, key) =
            if i % 2 == 0 { (a.http(), a.base.clone(), k1.clone()) } else { (c.http(), c.base.clone(), k2.clone()) };
        tasks.push(tokio::spawn(async move {
            let r = http.post(format!("{base}/v1/keys/verify")).json(&json!({"key": key})).send().await.unwrap();
            r.json::<Value>().await.unwrap()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let v = t.await.unwrap();
        if v["code"] == "VALID" {
            ok += 1;
        }
    }
    assert_eq!(ok, 3);
    c.stop().await;
    a.stop().await;
}
