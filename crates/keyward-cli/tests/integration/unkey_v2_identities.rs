//! Unkey's `identities.*` and `externalId` under `/v2/` (`docs/UNKEY.md`): identities over
//! the native ones, keys sharing an identity's limit, named limits and `credits.cost` in a
//! verification as Unkey spends them, and hostile values.

use keyward_core::OsRandom;
use keyward_server::bootstrap::{create_workspace, InitOptions};
use keyward_testkit::{Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::unkey_v2::{ok, v2, verify};

on_both_backends!(v2_identities_crud, v2_identity_limits_shared, v2_named_limits_and_costs, v2_identities_hostile);

async fn key_with(s: &TestServer, body: Value) -> (String, String) {
    let mut b = json!({"apiId": s.workspace_id});
    b.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
    let d = ok(s, "keys.createKey", b).await;
    (d["keyId"].as_str().unwrap().to_string(), d["key"].as_str().unwrap().to_string())
}

async fn v2_identities_crud(b: Backend) {
    let s = TestServer::start(b).await;
    let made = ok(
        &s,
        "identities.createIdentity",
        json!({"externalId": "user_123", "meta": {"plan": "pro"},
               "ratelimits": [{"name": "requests", "limit": 10, "duration": 60000, "autoApply": true}]}),
    )
    .await;
    let idn = made["identityId"].as_str().unwrap().to_string();
    assert!(idn.starts_with("idn_"), "{made}");
    // The native route knows it.
    let (st, native) = s.call(Method::GET, &format!("/v1/identities/{idn}"), None).await;
    assert_eq!((st, native["external_id"].as_str()), (200, Some("user_123")), "{native}");
    // By id and by external id, in Unkey's shape.
    for by in [idn.as_str(), "user_123"] {
        let got = ok(&s, "identities.getIdentity", json!({"identity": by})).await;
        assert_eq!((got["id"].as_str(), got["externalId"].as_str()), (Some(idn.as_str()), Some("user_123")), "{got}");
        assert_eq!(got["meta"], json!({"plan": "pro"}));
        let rl = &got["ratelimits"][0];
        assert_eq!(
            (rl["name"].as_str(), rl["limit"].as_u64(), rl["duration"].as_u64()),
            (Some("requests"), Some(10), Some(60000))
        );
        assert_eq!(rl["autoApply"], true);
        assert_eq!(rl["id"].as_str(), Some(format!("rl_{idn}_requests").as_str()));
    }
    // A second with the same external id: 409.
    let (st, v) = v2(&s, "identities.createIdentity", json!({"externalId": "user_123"})).await;
    assert_eq!((st, v["error"]["status"].as_u64()), (409, Some(409)), "{v}");
    assert!(v["error"]["type"].as_str().unwrap().ends_with("identity_already_exists"), "{v}");
    ok(&s, "identities.createIdentity", json!({"externalId": "org.acme"})).await;

    // listIdentities: all, paged, and searched (id or external id, any case).
    let (st, all) = v2(&s, "identities.listIdentities", json!({})).await;
    assert_eq!(st, 200, "{all}");
    assert_eq!(all["data"].as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all["pagination"]["hasMore"], false);
    let (_, first) = v2(&s, "identities.listIdentities", json!({"limit": 1})).await;
    assert_eq!((first["data"].as_array().unwrap().len(), first["pagination"]["hasMore"].as_bool()), (1, Some(true)));
    let cursor = first["pagination"]["cursor"].as_str().unwrap();
    let (_, second) = v2(&s, "identities.listIdentities", json!({"limit": 1, "cursor": cursor})).await;
    assert_ne!(first["data"][0]["id"], second["data"][0]["id"], "{second}");
    let (_, found) = v2(&s, "identities.listIdentities", json!({"search": "ACME"})).await;
    let ext: Vec<&str> = found["data"].as_array().unwrap().iter().filter_map(|i| i["externalId"].as_str()).collect();
    assert_eq!(ext, ["org.acme"], "{found}");

    // updateIdentity: meta replaced, limits replaced; answers the identity.
    let up = ok(
        &s,
        "identities.updateIdentity",
        json!({"identity": "user_123", "meta": {"plan": "team"},
               "ratelimits": [{"name": "requests", "limit": 20, "duration": 60000}]}),
    )
    .await;
    assert_eq!((up["meta"]["plan"].as_str(), up["ratelimits"][0]["limit"].as_u64()), (Some("team"), Some(20)));
    // Unkey's default: a limit given without autoApply is applied only when named.
    assert_eq!(up["ratelimits"][0]["autoApply"], false, "{up}");

    // Keys: externalId on create, the identity in getKey, listKeys filtered by it.
    let (k1, key1) = key_with(&s, json!({"externalId": "user_123"})).await;
    let (k2, _) = key_with(&s, json!({"externalId": "new_customer"})).await; // made on the fly
    let (k3, _) = key_with(&s, json!({})).await;
    let got = ok(&s, "keys.getKey", json!({"keyId": k1})).await;
    assert_eq!(
        (got["identity"]["id"].as_str(), got["identity"]["externalId"].as_str()),
        (Some(idn.as_str()), Some("user_123"))
    );
    assert_eq!(got["identity"]["meta"]["plan"], "team", "{got}");
    assert_eq!(got["identity"]["ratelimits"][0]["name"], "requests", "{got}");
    assert!(ok(&s, "keys.getKey", json!({"keyId": k3})).await.get("identity").is_none());
    let who = ok(&s, "keys.whoami", json!({"key": key1})).await;
    assert_eq!(who["identity"]["externalId"], "user_123", "{who}");
    let (st, list) = v2(&s, "apis.listKeys", json!({"apiId": s.workspace_id, "externalId": "user_123"})).await;
    assert_eq!(st, 200, "{list}");
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().filter_map(|k| k["keyId"].as_str()).collect();
    assert_eq!(ids, [k1.as_str()], "{list}");
    assert_eq!(list["data"][0]["identity"]["externalId"], "user_123");
    // updateKey moves a key to another identity, and null detaches it.
    ok(&s, "keys.updateKey", json!({"keyId": k2, "externalId": "user_123"})).await;
    assert_eq!(ok(&s, "keys.getKey", json!({"keyId": k2})).await["identity"]["externalId"], "user_123");
    ok(&s, "keys.updateKey", json!({"keyId": k2, "externalId": null})).await;
    assert!(ok(&s, "keys.getKey", json!({"keyId": k2})).await.get("identity").is_none());
    let (_, native) = s.call(Method::GET, &format!("/v1/keys/{k2}"), None).await;
    assert!(native.get("external_id").is_none_or(Value::is_null), "{native}");
    // migrateKeys with externalId.
    let hash = keyward_core::pepper::hex_encode(&<sha2::Sha256 as sha2::Digest>::digest(b"legacy_identity_key_1"));
    let m = ok(
        &s,
        "keys.migrateKeys",
        json!({"apiId": s.workspace_id, "migrationId": "sha256_hex", "keys": [{"hash": hash, "externalId": "user_123"}]}),
    )
    .await;
    let migrated = m["migrated"][0]["keyId"].as_str().unwrap();
    assert_eq!(ok(&s, "keys.getKey", json!({"keyId": migrated})).await["identity"]["id"], idn.as_str());

    // deleteIdentity: `{meta}` only; its keys keep working without it.
    let (st, del) = v2(&s, "identities.deleteIdentity", json!({"identity": idn})).await;
    assert_eq!(st, 200, "{del}");
    assert!(del.get("data").is_none() && del["meta"]["requestId"].is_string(), "{del}");
    let (st, v) = v2(&s, "identities.getIdentity", json!({"identity": "user_123"})).await;
    assert_eq!(st, 404, "{v}");
    assert!(v["error"]["type"].as_str().unwrap().ends_with("identity_not_found"), "{v}");
    assert_eq!(v2(&s, "identities.deleteIdentity", json!({"identity": idn})).await.0, 404);
    let v = verify(&s, &key1, json!({})).await;
    assert_eq!(v["code"], "VALID", "{v}");
    assert!(v.get("identity").is_none(), "{v}");
}

async fn v2_identity_limits_shared(b: Backend) {
    let s = TestServer::start(b).await;
    ok(
        &s,
        "identities.createIdentity",
        json!({"externalId": "team_a", "meta": {"tier": "free"},
               "ratelimits": [{"name": "team", "limit": 3, "duration": 60000, "autoApply": true}]}),
    )
    .await;
    let (_, a) = key_with(&s, json!({"externalId": "team_a"})).await;
    let (_, b_key) = key_with(&s, json!({"externalId": "team_a"})).await;
    let (_, other) = key_with(&s, json!({})).await;
    // Three uses between the two keys, then both are limited; a key without it is not.
    for (i, k) in [&a, &b_key, &a].into_iter().enumerate() {
        let v = verify(&s, k, json!({})).await;
        assert_eq!(v["code"], "VALID", "use {i}: {v}");
        let rl = &v["ratelimits"][0];
        assert_eq!((rl["name"].as_str(), rl["remaining"].as_u64()), (Some("team"), Some(2 - i as u64)), "{v}");
        assert_eq!((rl["exceeded"].as_bool(), rl["autoApply"].as_bool()), (Some(false), Some(true)));
        assert!(rl["id"].as_str().unwrap().starts_with("rl_idn_"), "{v}");
        assert_eq!(rl["duration"], 60000);
        assert!(rl["reset"].as_i64().unwrap() > 1_600_000_000_000, "{v}");
    }
    let v = verify(&s, &b_key, json!({})).await;
    assert_eq!(
        (v["code"].as_str(), v["ratelimits"][0]["exceeded"].as_bool()),
        (Some("RATE_LIMITED"), Some(true)),
        "{v}"
    );
    // The answer names the identity, with its meta and limits.
    assert_eq!(v["identity"]["externalId"], "team_a", "{v}");
    assert_eq!(v["identity"]["meta"]["tier"], "free");
    assert_eq!(v["identity"]["ratelimits"][0]["limit"], 3);
    assert_eq!(verify(&s, &a, json!({})).await["code"], "RATE_LIMITED");
    assert_eq!(verify(&s, &other, json!({})).await["code"], "VALID");
}

async fn v2_named_limits_and_costs(b: Backend) {
    let s = TestServer::start(b).await;
    ok(
        &s,
        "identities.createIdentity",
        json!({"externalId": "team_b", "ratelimits": [{"name": "exports", "limit": 4, "duration": 60000}]}),
    )
    .await;
    let (kid, key) = key_with(
        &s,
        json!({"externalId": "team_b", "credits": {"remaining": 10},
               "ratelimits": [{"name": "requests", "limit": 3, "duration": 60000, "autoApply": true},
                              {"name": "manual", "limit": 1, "duration": 60000}]}),
    )
    .await;
    // getKey shows each limit's autoApply as set.
    let got = ok(&s, "keys.getKey", json!({"keyId": kid})).await;
    let auto: Vec<(String, bool)> = got["ratelimits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap().to_string(), l["autoApply"].as_bool().unwrap()))
        .collect();
    assert_eq!(auto, [("requests".to_string(), true), ("manual".to_string(), false)], "{got}");

    // credits.cost is spent of the credits only; the auto-applied limit spends 1.
    let v = verify(&s, &key, json!({"credits": {"cost": 4}})).await;
    assert_eq!((v["code"].as_str(), v["credits"].as_u64()), (Some("VALID"), Some(6)), "{v}");
    let listed: Vec<&str> = v["ratelimits"].as_array().unwrap().iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(listed, ["requests"], "only the auto-applied limit is checked: {v}");
    assert_eq!(v["ratelimits"][0]["remaining"], 2, "{v}");
    assert_eq!(v["ratelimits"][0]["id"].as_str(), Some(format!("rl_{kid}_requests").as_str()));

    // A named limit at its cost: the identity's `exports` (4) at 3, then refused at 3 more.
    let v = verify(&s, &key, json!({"credits": {"cost": 0}, "ratelimits": [{"name": "exports", "cost": 3}]})).await;
    assert_eq!(v["code"], "VALID", "{v}");
    let exports = v["ratelimits"].as_array().unwrap().iter().find(|l| l["name"] == "exports").unwrap().clone();
    assert_eq!((exports["remaining"].as_u64(), exports["autoApply"].as_bool()), (Some(1), Some(false)), "{v}");
    let v = verify(&s, &key, json!({"credits": {"cost": 0}, "ratelimits": [{"name": "exports", "cost": 3}]})).await;
    assert_eq!(v["code"], "RATE_LIMITED", "{v}");
    // A key's own limit named, and one made for the request (no id, as at Unkey).
    let v = verify(&s, &key, json!({"credits": {"cost": 0}, "ratelimits": [{"name": "manual"}]})).await;
    assert_eq!(v["code"], "VALID", "{v}");
    let v = verify(
        &s,
        &key,
        json!({"credits": {"cost": 0}, "ratelimits": [{"name": "burst", "limit": 5, "duration": 1000}]}),
    )
    .await;
    let burst = v["ratelimits"].as_array().unwrap().iter().find(|l| l["name"] == "burst").unwrap().clone();
    assert_eq!((burst["id"].as_str(), burst["limit"].as_u64()), (Some(""), Some(5)), "{v}");
    // A name neither the key nor its identity has: Unkey's precondition failure.
    let (st, v) = v2(&s, "keys.verifyKey", json!({"key": key, "ratelimits": [{"name": "nope"}]})).await;
    assert_eq!(st, 412, "{v}");
    // Bad named limits name the field.
    for (bad, at) in [
        (json!([{"name": "x\u{0}"}]), "body.ratelimits[0].name"),
        (json!([{"name": "ok", "limit": 5}]), "body.ratelimits[0].duration"),
        (json!([{"name": "ok", "cost": 1u64 << 40}]), "body.ratelimits[0].cost"),
        (json!([{"name": "y".repeat(300)}]), "body.ratelimits[0].name"),
    ] {
        let (st, v) = v2(&s, "keys.verifyKey", json!({"key": key, "ratelimits": bad})).await;
        assert_eq!((st, v["error"]["errors"][0]["location"].as_str()), (400, Some(at)), "{v}");
    }
    let many: Vec<Value> = (0..40).map(|_| json!({"name": "requests"})).collect();
    let (st, _) = v2(&s, "keys.verifyKey", json!({"key": key, "ratelimits": many})).await;
    assert_eq!(st, 400);
}

async fn v2_identities_hostile(b: Backend) {
    let s = TestServer::start(b).await;
    // Another workspace's identity is not found, by id or external id.
    let opts =
        InitOptions { workspace_name: "beta".into(), prefix: "beta".into(), owner_email: "b@example.com".into() };
    let beta = create_workspace(&s.store, &s.pepper, s.clock.as_ref(), &OsRandom, &opts).await.unwrap();
    let (st, theirs) = s
        .call_as(&beta.management_key, Method::POST, "/v1/identities", Some(json!({"external_id": "shared_name"})))
        .await;
    assert_eq!(st, 201, "{theirs}");
    let their_id = theirs["id"].as_str().unwrap();
    for by in [their_id, "shared_name"] {
        assert_eq!(v2(&s, "identities.getIdentity", json!({"identity": by})).await.0, 404, "{by}");
        assert_eq!(v2(&s, "identities.updateIdentity", json!({"identity": by, "meta": {}})).await.0, 404);
        assert_eq!(v2(&s, "identities.deleteIdentity", json!({"identity": by})).await.0, 404);
    }
    // The same external id is free in this workspace, and names this one's.
    ok(&s, "identities.createIdentity", json!({"externalId": "shared_name"})).await;
    let (st, still) = s.call_as(&beta.management_key, Method::GET, &format!("/v1/identities/{their_id}"), None).await;
    assert_eq!(st, 200, "{still}");

    // Path-like values reach no other route; NUL, huge and empty ones are 400s naming the field.
    for odd in ["../keys", "shared_name/../x", "idn_1?x=1", "%2e%2e"] {
        let (st, v) = v2(&s, "identities.getIdentity", json!({"identity": odd})).await;
        assert_eq!(st, 404, "{odd}: {v}");
    }
    for bad in ["", &"x".repeat(300)] {
        let (st, v) = v2(&s, "identities.getIdentity", json!({"identity": bad})).await;
        assert_eq!((st, v["error"]["errors"][0]["location"].as_str()), (400, Some("body.identity")), "{v}");
    }
    for bad in ["a\u{0}b", "", " padded", &"x".repeat(300)] {
        let (st, v) = v2(&s, "identities.createIdentity", json!({"externalId": bad})).await;
        assert_eq!((st, v["error"]["errors"][0]["location"].as_str()), (400, Some("body.externalId")), "{bad:?}: {v}");
        let (st, v) = v2(&s, "keys.createKey", json!({"apiId": s.workspace_id, "externalId": bad})).await;
        assert_eq!((st, v["error"]["errors"][0]["location"].as_str()), (400, Some("body.externalId")), "{bad:?}: {v}");
        let (st, v) = v2(&s, "apis.listKeys", json!({"apiId": s.workspace_id, "externalId": bad})).await;
        assert_eq!(st, 400, "{bad:?}: {v}");
    }
    let big = json!({"blob": "x".repeat(8 << 10)});
    let (st, v) = v2(&s, "identities.createIdentity", json!({"externalId": "big", "meta": big})).await;
    assert_eq!((st, v["error"]["errors"][0]["location"].as_str()), (400, Some("body.meta")), "{v}");
    let (st, v) = v2(
        &s,
        "identities.createIdentity",
        json!({"externalId": "bad_limit", "ratelimits": [{"name": "r", "limit": 1, "duration": 1500}]}),
    )
    .await;
    assert_eq!((st, v["error"]["errors"][0]["location"].as_str()), (400, Some("body.ratelimits[0].duration")), "{v}");
    let (st, _) = v2(&s, "identities.listIdentities", json!({"search": "s".repeat(300)})).await;
    assert_eq!(st, 400);
    let (st, _) = v2(&s, "identities.listIdentities", json!({"limit": 0})).await;
    assert_eq!(st, 400);
    // Nothing of the refused ones was stored.
    let (_, all) = s.call(Method::GET, "/v1/identities", None).await;
    let ext: Vec<&str> = all["items"].as_array().unwrap().iter().filter_map(|i| i["external_id"].as_str()).collect();
    assert_eq!(ext, ["shared_name"], "{all}");
}
