//! Unkey's v2 API under `/v2/` (`docs/UNKEY.md`): the envelope and error shapes, `apiId`
//! bound to the workspace, codes mapped, a retried verification with a cost charged once,
//! hostile values, and keys shared with the native routes both ways.

use keyward_core::{Clock, OsRandom};
use keyward_server::bootstrap::{create_workspace, InitOptions};
use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    v2_keys_round_trip_with_native,
    v2_envelope_and_errors,
    v2_verify_codes,
    v2_retried_verify_charges_once,
    v2_hostile_values,
    v2_roles_permissions_and_ratelimit
);

/// A `/v2` call with `token`: status, body and content type.
pub(crate) async fn v2_as(
    s: &TestServer,
    token: &str,
    route: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (u16, Value, String) {
    let mut rb = s.http().post(s.url(&format!("/v2/{route}"))).bearer_auth(token).json(&body);
    for (n, v) in headers {
        rb = rb.header(*n, *v);
    }
    let r = rb.send().await.expect("send");
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, r.json().await.unwrap_or(Value::Null), ct)
}

pub(crate) async fn v2(s: &TestServer, route: &str, body: Value) -> (u16, Value) {
    let (st, v, _) = v2_as(s, &s.management_key, route, body, &[]).await;
    (st, v)
}

/// `data` of a 200, else the test fails with the answer.
pub(crate) async fn ok(s: &TestServer, route: &str, body: Value) -> Value {
    let (st, v) = v2(s, route, body).await;
    assert_eq!(st, 200, "{route}: {v}");
    assert!(v["meta"]["requestId"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    v["data"].clone()
}

pub(crate) async fn verify(s: &TestServer, key: &str, extra: Value) -> Value {
    let mut body = json!({"key": key});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    ok(s, "keys.verifyKey", body).await
}

async fn v2_keys_round_trip_with_native(b: Backend) {
    let s = TestServer::start(b).await;
    let ws = s.workspace_id.clone();
    let made = ok(
        &s,
        "keys.createKey",
        json!({"apiId": ws, "name": "svc", "meta": {"plan": "pro"}, "permissions": ["documents.read"],
               "expires": 4_102_444_000_000i64, "credits": {"remaining": 10, "refill": {"interval": "daily", "amount": 10}},
               "ratelimits": [{"name": "requests", "limit": 100, "duration": 60000, "autoApply": true}]}),
    )
    .await;
    let (key_id, key) = (made["keyId"].as_str().unwrap().to_string(), made["key"].as_str().unwrap().to_string());
    // A key made through /v2 is an ordinary key: the native verify and read know it.
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID");
    let (st, native) = s.call(Method::GET, &format!("/v1/keys/{key_id}"), None).await;
    assert_eq!(st, 200, "{native}");
    assert_eq!(native["ratelimits"][0]["duration"], "1m", "{native}");
    let got = ok(&s, "keys.getKey", json!({"keyId": key_id})).await;
    assert_eq!(got["name"], "svc");
    assert_eq!(got["meta"]["plan"], "pro");
    assert_eq!(got["expires"], 4_102_444_000_000i64);
    assert_eq!(got["enabled"], true);
    assert_eq!(got["permissions"], json!(["documents.read"]));
    assert_eq!(got["ratelimits"][0]["duration"], 60000);
    assert_eq!(got["credits"]["refill"]["interval"], "daily");
    assert!(got["createdAt"].as_i64().unwrap() > 1_600_000_000_000);

    // A native key verifies through /v2, and whoami finds it.
    let (native_id, native_key) = s.create(json!({"name": "native", "permissions": ["a"]})).await;
    let v = verify(&s, &native_key, json!({})).await;
    assert_eq!(
        (v["valid"].as_bool(), v["code"].as_str(), v["keyId"].as_str()),
        (Some(true), Some("VALID"), Some(native_id.as_str()))
    );
    assert_eq!(ok(&s, "keys.whoami", json!({"key": native_key})).await["keyId"], native_id.as_str());

    // updateKey: enabled false is the native disabled state, and back.
    ok(&s, "keys.updateKey", json!({"keyId": key_id, "enabled": false, "name": "renamed"})).await;
    assert_eq!(verify(&s, &key, json!({})).await["code"], "DISABLED");
    assert_eq!(code(&s.verify(&key, json!({})).await), "DISABLED");
    let (_, native) = s.call(Method::GET, &format!("/v1/keys/{key_id}"), None).await;
    assert_eq!((native["enabled"].as_bool(), native["name"].as_str()), (Some(false), Some("renamed")));
    ok(&s, "keys.updateKey", json!({"keyId": key_id, "enabled": true})).await;
    assert_eq!(verify(&s, &key, json!({})).await["code"], "VALID");

    // Credits: set, increment, decrement.
    let c = ok(&s, "keys.updateCredits", json!({"keyId": key_id, "operation": "set", "value": 3})).await;
    assert_eq!(c["remaining"], 3, "{c}");
    let c = ok(&s, "keys.updateCredits", json!({"keyId": key_id, "operation": "increment", "value": 2})).await;
    assert_eq!(c["remaining"], 5, "{c}");

    // Reroll: a new key at once; the old one until its grace ends.
    let rolled = ok(&s, "keys.rerollKey", json!({"keyId": key_id, "expiration": 60000})).await;
    let new_key = rolled["key"].as_str().unwrap().to_string();
    assert_ne!(rolled["keyId"], key_id.as_str());
    assert_eq!(verify(&s, &new_key, json!({})).await["code"], "VALID");
    assert_eq!(verify(&s, &key, json!({})).await["code"], "VALID");
    s.clock.advance(chrono::Duration::seconds(61));
    let old = verify(&s, &key, json!({})).await;
    assert_eq!(old["valid"], false, "{old}");

    // Delete: a revocation, NOT_FOUND as Unkey deletes; getKey 404s.
    let new_id = rolled["keyId"].as_str().unwrap();
    ok(&s, "keys.deleteKey", json!({"keyId": new_id})).await;
    assert_eq!(verify(&s, &new_key, json!({})).await, json!({"valid": false, "code": "NOT_FOUND"}));
    assert_eq!(v2(&s, "keys.getKey", json!({"keyId": new_id})).await.0, 404);

    // listKeys: the workspace's keys, revoked ones left out.
    let (st, list) = v2(&s, "apis.listKeys", json!({"apiId": ws, "limit": 100})).await;
    assert_eq!(st, 200, "{list}");
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().filter_map(|k| k["keyId"].as_str()).collect();
    assert!(ids.contains(&native_id.as_str()) && !ids.contains(&new_id), "{list}");
    assert_eq!(list["pagination"]["hasMore"], false);

    // migrateKeys: a SHA-256 key verifies through /v2 and natively.
    let secret = "legacy_secret_0123456789";
    let hash = keyward_core::pepper::hex_encode(&<sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes()));
    let m = ok(
        &s,
        "keys.migrateKeys",
        json!({"apiId": ws, "migrationId": "sha256_hex",
        "keys": [{"hash": hash, "name": "legacy", "permissions": ["documents.read"]}]}),
    )
    .await;
    assert_eq!(m["migrated"][0]["hash"], hash.as_str(), "{m}");
    assert_eq!(m["failed"], json!([]));
    assert_eq!(verify(&s, secret, json!({"permissions": "documents.read"})).await["code"], "VALID");
    assert_eq!(code(&s.verify(secret, json!({})).await), "VALID");
}

async fn v2_envelope_and_errors(b: Backend) {
    let s = TestServer::start(b).await;
    // No credential, a bad one, an API key as root key: Unkey's error shape.
    let r = s.http().post(s.url("/v2/keys.getKey")).json(&json!({"keyId": "key_123"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let request_id = r.headers().get("x-request-id").unwrap().to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["meta"]["requestId"], request_id.as_str(), "{v}");
    assert_eq!((v["error"]["status"].as_u64(), v["error"]["title"].as_str()), (Some(401), Some("Unauthorized")));
    assert!(v["error"]["type"].as_str().unwrap().starts_with("https://"), "{v}");
    assert!(v["error"]["detail"].is_string());
    let (st, v, _) = v2_as(&s, "kw_mgmt_nonsense", "keys.getKey", json!({"keyId": "key_123"}), &[]).await;
    assert_eq!((st, v["error"]["status"].as_u64()), (401, Some(401)), "{v}");
    let (_, api_key) = s.create(json!({"name": "api"})).await;
    let (st, v, _) = v2_as(&s, &api_key, "keys.getKey", json!({"keyId": "key_123"}), &[]).await;
    assert_eq!((st, v["error"]["status"].as_u64()), (403, Some(403)), "{v}");

    // apiId other than the workspace: 404 in Unkey's shape.
    let (st, v) = v2(&s, "keys.createKey", json!({"apiId": "api_someone_else"})).await;
    assert_eq!(st, 404, "{v}");
    assert!(v["error"]["type"].as_str().unwrap().ends_with("api_not_found"), "{v}");
    let (st, _) = v2(&s, "apis.listKeys", json!({"apiId": "ws_other"})).await;
    assert_eq!(st, 404);

    // A 400 names where: errors[{location, message}].
    let (st, v) = v2(&s, "keys.createKey", json!({"apiId": s.workspace_id, "expires": "soon"})).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["errors"][0]["location"], "body.expires", "{v}");
    let (st, v) = v2(
        &s,
        "keys.createKey",
        json!({"apiId": s.workspace_id,
        "ratelimits": [{"name": "x", "limit": 1, "duration": 1500}]}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["errors"][0]["location"], "body.ratelimits[0].duration", "{v}");
    let (st, v) = v2(&s, "keys.getKey", json!({})).await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"]["errors"][0]["location"].as_str().unwrap().starts_with("body"), "{v}");

    // 429 is application/problem+json (a spent service limit the caller's role may not
    // exceed is 200; the workspace's own refusals are 429: an unknown route is 404).
    let (st, v) = v2(&s, "keys.noSuchThing", json!({})).await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"]["status"], 404);
    let r = s.http().get(s.url("/v2/keys.getKey")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

async fn v2_verify_codes(b: Backend) {
    let s = TestServer::start(b).await;
    let ws = s.workspace_id.clone();
    let make = |body: Value| {
        let s = &s;
        let ws = ws.clone();
        async move {
            let mut b = json!({"apiId": ws});
            b.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
            let d = ok(s, "keys.createKey", b).await;
            (d["keyId"].as_str().unwrap().to_string(), d["key"].as_str().unwrap().to_string())
        }
    };
    let (_, plain) = make(json!({"permissions": ["documents.read", "documents.write"]})).await;
    assert_eq!(verify(&s, &plain, json!({"permissions": "documents.read and documents.write"})).await["code"], "VALID");
    assert_eq!(
        verify(&s, &plain, json!({"permissions": "documents.delete OR (documents.read AND documents.write)"})).await
            ["code"],
        "VALID"
    );
    let refused = verify(&s, &plain, json!({"permissions": "documents.delete"})).await;
    assert_eq!((refused["valid"].as_bool(), refused["code"].as_str()), (Some(false), Some("INSUFFICIENT_PERMISSIONS")));
    let (st, v) = v2(&s, "keys.verifyKey", json!({"key": plain, "permissions": "a AND ("})).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["errors"][0]["location"], "body.permissions");

    let (_, limited) =
        make(json!({"ratelimits": [{"name": "r", "limit": 2, "duration": 60000, "autoApply": true}]})).await;
    assert_eq!(verify(&s, &limited, json!({})).await["code"], "VALID");
    assert_eq!(verify(&s, &limited, json!({})).await["code"], "VALID");
    assert_eq!(verify(&s, &limited, json!({})).await["code"], "RATE_LIMITED");

    let (_, credited) = make(json!({"credits": {"remaining": 3}})).await;
    let v = verify(&s, &credited, json!({"credits": {"cost": 2}})).await;
    assert_eq!((v["code"].as_str(), v["credits"].as_u64()), (Some("VALID"), Some(1)), "{v}");
    assert_eq!(verify(&s, &credited, json!({"credits": {"cost": 2}})).await["code"], "USAGE_EXCEEDED");

    let (_, expiring) = make(json!({"expires": s.clock.now().timestamp_millis() + 5_000})).await;
    s.clock.advance(chrono::Duration::seconds(6));
    assert_eq!(verify(&s, &expiring, json!({})).await["code"], "EXPIRED");

    let (_, disabled) = make(json!({"enabled": false})).await;
    let v = verify(&s, &disabled, json!({})).await;
    assert_eq!((v["code"].as_str(), v["enabled"].as_bool()), (Some("DISABLED"), Some(false)), "{v}");

    // Native refusals map to the nearest: wrong environment → FORBIDDEN; revoked → NOT_FOUND.
    let (live_id, live) =
        s.create(json!({"name": "live", "environment": "live", "ip_allowlist": ["10.0.0.0/8"]})).await;
    assert_eq!(verify(&s, &live, json!({})).await["code"], "FORBIDDEN");
    let (st, _) = s.call(Method::POST, &format!("/v1/keys/{live_id}/revoke"), Some(json!({}))).await;
    assert_eq!(st, 200);
    assert_eq!(verify(&s, &live, json!({})).await, json!({"valid": false, "code": "NOT_FOUND"}));
    assert_eq!(verify(&s, "not-a-key", json!({})).await, json!({"valid": false, "code": "NOT_FOUND"}));

    // Tags are counted per tag in the key's usage, as natively; bad ones name the field.
    let (tagged_id, tagged) = make(json!({})).await;
    assert_eq!(verify(&s, &tagged, json!({"tags": ["path=/orders"]})).await["code"], "VALID");
    let (st, v) = v2(&s, "keys.verifyKey", json!({"key": tagged, "tags": ["x".repeat(65)]})).await;
    assert_eq!((st, v["error"]["errors"][0]["location"].as_str()), (400, Some("body.tags[0]")), "{v}");
    let usage = format!("/v1/keys/{tagged_id}/usage?granularity=minute&tag=path%3D%2Forders");
    let started = std::time::Instant::now();
    loop {
        let (st, u) = s.call(Method::GET, &usage, None).await;
        assert_eq!(st, 200, "{u}");
        if u["total"] == 1 {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the tag was not counted: {u}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn v2_retried_verify_charges_once(b: Backend) {
    let s = TestServer::start(b).await;
    let d = ok(&s, "keys.createKey", json!({"apiId": s.workspace_id, "credits": {"remaining": 10}})).await;
    let key = d["key"].as_str().unwrap().to_string();
    let body = json!({"key": key, "credits": {"cost": 3}});
    let idem = [("Idempotency-Key", "verify-attempt-1")];
    let (st, first, _) = v2_as(&s, &s.management_key, "keys.verifyKey", body.clone(), &idem).await;
    assert_eq!((st, first["data"]["credits"].as_u64()), (200, Some(7)), "{first}");
    // The SDK's retry: same headers, same body; the first answer again, nothing spent.
    let (_, again, _) = v2_as(&s, &s.management_key, "keys.verifyKey", body.clone(), &idem).await;
    assert_eq!(again["data"], first["data"]);
    // Concurrent twins are charged once too.
    let twins = [("Idempotency-Key", "verify-attempt-2")];
    let (a, b2) = tokio::join!(
        v2_as(&s, &s.management_key, "keys.verifyKey", body.clone(), &twins),
        v2_as(&s, &s.management_key, "keys.verifyKey", body.clone(), &twins)
    );
    assert_eq!(a.1["data"]["credits"], b2.1["data"]["credits"]);
    assert_eq!(a.1["data"]["credits"], 4, "{}", a.1);
    // Without the header every request is a verification of its own.
    assert_eq!(verify(&s, &key, json!({"credits": {"cost": 3}})).await["credits"], 1);
    // After the window, the same header is a new verification.
    s.clock.advance(chrono::Duration::seconds(61));
    let (_, later, _) = v2_as(&s, &s.management_key, "keys.verifyKey", body, &idem).await;
    assert_eq!(later["data"]["code"], "USAGE_EXCEEDED", "{later}");
}

async fn v2_hostile_values(b: Backend) {
    let s = TestServer::start(b).await;
    // Another workspace's key id: 404, as if it did not exist.
    let opts =
        InitOptions { workspace_name: "beta".into(), prefix: "beta".into(), owner_email: "b@example.com".into() };
    let beta = create_workspace(&s.store, &s.pepper, s.clock.as_ref(), &OsRandom, &opts).await.unwrap();
    let (st, made) = s.call_as(&beta.management_key, Method::POST, "/v1/keys", Some(json!({"name": "theirs"}))).await;
    assert_eq!(st, 201, "{made}");
    let (other_id, other_key) =
        (made["id"].as_str().unwrap().to_string(), made["secret"].as_str().unwrap().to_string());
    let (st, v) = v2(&s, "keys.getKey", json!({"keyId": other_id})).await;
    assert_eq!(st, 404, "{v}");
    let (st, _) = v2(&s, "keys.updateKey", json!({"keyId": other_id, "enabled": false})).await;
    assert_eq!(st, 404);
    let (st, _) = v2(&s, "keys.deleteKey", json!({"keyId": other_id})).await;
    assert_eq!(st, 404);
    assert_eq!(verify(&s, &other_key, json!({})).await, json!({"valid": false, "code": "NOT_FOUND"}));
    assert_eq!(v2(&s, "keys.whoami", json!({"key": other_key})).await.0, 404);
    // Ids that could change a native path are refused before.
    for bad in ["../roles", "key_1/revoke", "key\u{0}x", "k"] {
        let (st, v) = v2(&s, "keys.getKey", json!({"keyId": bad})).await;
        assert_eq!(st, 400, "{bad}: {v}");
        assert_eq!(v["error"]["errors"][0]["location"], "body.keyId");
    }
    // NUL in a name: 400, nothing stored.
    let (st, v) = v2(&s, "keys.createKey", json!({"apiId": s.workspace_id, "name": "a\u{0}b"})).await;
    assert_eq!(st, 400, "{v}");
    // A huge body: 413 in Unkey's shape; a huge key: 400.
    let huge = "x".repeat(2 << 20);
    let (st, v) = v2(&s, "keys.verifyKey", json!({"key": huge})).await;
    assert_eq!(st, 413, "{v}");
    assert_eq!(v["error"]["status"], 413);
    let (st, _) = v2(&s, "keys.verifyKey", json!({"key": "x".repeat(600)})).await;
    assert_eq!(st, 400);
    let (st, v) = v2(&s, "keys.verifyKey", json!({"key": "x", "credits": {"cost": 1u64 << 40}})).await;
    assert_eq!((st, v["error"]["errors"][0]["location"].as_str()), (400, Some("body.credits.cost")), "{v}");
    // Not JSON.
    let r = s.http().post(s.url("/v2/keys.getKey")).bearer_auth(&s.management_key).body("{nope").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

async fn v2_roles_permissions_and_ratelimit(b: Backend) {
    let s = TestServer::start(b).await;
    let role = ok(
        &s,
        "permissions.createRole",
        json!({"name": "reader", "description": "reads", "permissions": ["documents.read"]}),
    )
    .await;
    assert_eq!(role["roleId"], "reader");
    let got = ok(&s, "permissions.getRole", json!({"role": "reader"})).await;
    assert_eq!(got["permissions"][0]["slug"], "documents.read", "{got}");
    let (st, list) = v2(&s, "permissions.listRoles", json!({})).await;
    assert_eq!(st, 200);
    assert!(list["data"].as_array().unwrap().iter().any(|r| r["name"] == "reader"), "{list}");
    assert_eq!(
        ok(&s, "permissions.createPermission", json!({"name": "Write", "slug": "documents.write"})).await
            ["permissionId"],
        "documents.write"
    );
    let (_, perms) = v2(&s, "permissions.listPermissions", json!({})).await;
    assert_eq!(perms["data"][0]["slug"], "documents.read", "{perms}");

    let d = ok(&s, "keys.createKey", json!({"apiId": s.workspace_id})).await;
    let (id, key) = (d["keyId"].as_str().unwrap().to_string(), d["key"].as_str().unwrap().to_string());
    let added = ok(&s, "keys.addPermissions", json!({"keyId": id, "permissions": ["a.b", "c.d"]})).await;
    assert_eq!(added.as_array().unwrap().len(), 2, "{added}");
    let removed = ok(&s, "keys.removePermissions", json!({"keyId": id, "permissions": ["a.b"]})).await;
    assert_eq!(removed, json!([{"id": "c.d", "name": "c.d", "slug": "c.d"}]));
    ok(&s, "keys.setPermissions", json!({"keyId": id, "permissions": []})).await;
    let roles = ok(&s, "keys.addRoles", json!({"keyId": id, "roles": ["reader"]})).await;
    assert_eq!(roles[0]["name"], "reader", "{roles}");
    assert_eq!(verify(&s, &key, json!({"permissions": "documents.read"})).await["code"], "VALID");
    assert_eq!(ok(&s, "keys.setRoles", json!({"keyId": id, "roles": []})).await, json!([]));
    assert_eq!(verify(&s, &key, json!({"permissions": "documents.read"})).await["code"], "INSUFFICIENT_PERMISSIONS");
    ok(&s, "keys.addRoles", json!({"keyId": id, "roles": ["reader"]})).await;
    ok(&s, "permissions.deleteRole", json!({"role": "reader"})).await;
    assert_eq!(v2(&s, "permissions.getRole", json!({"role": "reader"})).await.0, 404);

    let limit = json!({"namespace": "sms", "identifier": "user_1", "limit": 2, "duration": 60000});
    for want in [true, true, false] {
        let d = ok(&s, "ratelimit.limit", limit.clone()).await;
        assert_eq!(d["success"], want, "{d}");
        assert_eq!(d["limit"], 2);
    }
    let m = ok(
        &s,
        "ratelimit.multiLimit",
        json!([limit, {"namespace": "sms", "identifier": "user_2", "limit": 5, "duration": 60000}]),
    )
    .await;
    assert_eq!((m["passed"].as_bool(), m["limits"][1]["passed"].as_bool()), (Some(false), Some(true)), "{m}");
    let (st, v) =
        v2(&s, "ratelimit.limit", json!({"namespace": "", "identifier": "x", "limit": 1, "duration": 1000})).await;
    assert_eq!(st, 400, "{v}");
}
