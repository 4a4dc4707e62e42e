//! The management and verification API, end to end over HTTP, on both backends.

use chrono::Duration;
use keyward_core::Clock;
use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::json;

on_both_backends!(
    secret_is_shown_once,
    verification_codes,
    permission_queries_and_scopes,
    rotation_with_and_without_grace,
    list_filters_and_pagination,
    patch_changes_and_clears,
    bad_input_names_the_field_and_writes_nothing,
    oversized_body_is_413,
    idempotent_create_and_rotate,
    management_needs_a_management_key,
    verify_token_guards_verification,
    last_used_is_buffered_then_written,
    shutdown_flushes_pending_usage,
    revoke_reaches_another_node_within_a_second,
    secrets_never_reach_the_database,
    sdk_round_trip,
);

async fn secret_is_shown_once(b: Backend) {
    let s = TestServer::start(b).await;
    let (s1, created) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "billing", "environment": "live"}))).await;
    assert_eq!(s1, 201);
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("kw_live_sk_"), "{secret}");
    assert_eq!(created["start"], &secret[..15]);
    assert_eq!(created["status"], "active");
    assert_eq!(created["kind"], "secret");
    let id = created["id"].as_str().unwrap();
    let (_, got) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert!(got.get("secret").is_none());
    assert_eq!(got["name"], "billing");
    let (_, list) = s.call(Method::GET, "/v1/keys", None).await;
    assert!(!list.to_string().contains(secret));
    let (sr, revoked) = s.call(Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    assert_eq!(sr, 200);
    assert!(revoked.get("secret").is_none());
    s.stop().await;
}

async fn verification_codes(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, key) = s.create(json!({"name": "a", "expires_in": "1h"})).await;
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID");

    // Malformed: garbage, and a one-character typo caught by the checksum.
    assert_eq!(code(&s.verify("hello", json!({})).await), "MALFORMED");
    let mut typo = key.clone().into_bytes();
    let last = typo.len() - 10;
    typo[last] = if typo[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(code(&s.verify(&String::from_utf8(typo).unwrap(), json!({})).await), "MALFORMED");
    // Well-formed but unknown.
    let unknown = keyward_core::keyformat::generate_secret("kw", "test", &keyward_core::OsRandom);
    let v = s.verify(&unknown, json!({})).await;
    assert_eq!(code(&v), "NOT_FOUND");
    assert!(v.get("key_id").is_none());

    // Expired, by moving the injected clock.
    s.clock.advance(Duration::minutes(61));
    let v = s.verify(&key, json!({})).await;
    assert_eq!(code(&v), "EXPIRED");
    assert_eq!(v["valid"], false);
    let (_, got) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(got["status"], "expired");

    // Revoked, at once on this node.
    let (_, key2) = s.create(json!({"name": "b"})).await;
    assert_eq!(code(&s.verify(&key2, json!({})).await), "VALID");
    let (id2, _) = (s.verify(&key2, json!({})).await["key_id"].as_str().unwrap().to_string(), ());
    s.call(Method::POST, &format!("/v1/keys/{id2}/revoke"), None).await;
    assert_eq!(code(&s.verify(&key2, json!({})).await), "REVOKED");

    // IP allowlist, IPv4 and IPv6 CIDR.
    let (_, k3) = s.create(json!({"name": "c", "ip_allowlist": ["203.0.113.0/24", "2001:db8::/32"]})).await;
    assert_eq!(code(&s.verify(&k3, json!({"ip": "203.0.113.7"})).await), "VALID");
    assert_eq!(code(&s.verify(&k3, json!({"ip": "2001:db8::1"})).await), "VALID");
    assert_eq!(code(&s.verify(&k3, json!({"ip": "198.51.100.1"})).await), "IP_NOT_ALLOWED");
    assert_eq!(code(&s.verify(&k3, json!({})).await), "IP_NOT_ALLOWED");
    s.stop().await;
}

async fn permission_queries_and_scopes(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, k) = s
        .create(json!({"name": "p", "permissions": ["wallet.*", "tx.approve"], "scopes": ["wallet:*", "vault:v_1"], "roles": ["operator"]}))
        .await;
    let ok = s
        .verify(&k, json!({"permissions": "wallet.read AND (tx.create OR tx.approve)", "scope": "wallet:w_123"}))
        .await;
    assert_eq!(code(&ok), "VALID");
    assert_eq!(ok["roles"], json!(["operator"]));
    assert_eq!(code(&s.verify(&k, json!({"permissions": "tx.create"})).await), "INSUFFICIENT_PERMISSIONS");
    assert_eq!(code(&s.verify(&k, json!({"scope": "vault:v_2"})).await), "INSUFFICIENT_PERMISSIONS");
    assert_eq!(code(&s.verify(&k, json!({"scope": "vault:v_1"})).await), "VALID");
    // A bad query is the caller's error: 400 naming the field.
    let r =
        s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": k, "permissions": "a AND"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["field"], "permissions");
    let r = s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": k, "ip": "nope"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    s.stop().await;
}

async fn rotation_with_and_without_grace(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, old) =
        s.create(json!({"name": "r", "environment": "live", "permissions": ["a.b"], "meta": {"team": "x"}})).await;
    let (st, rotated) =
        s.call(Method::POST, &format!("/v1/keys/{id}/rotate"), Some(json!({"grace_period": "1h"}))).await;
    assert_eq!(st, 201, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(rotated["id"], id);
    assert_eq!(rotated["permissions"], json!(["a.b"]));
    assert_eq!(rotated["meta"], json!({"team": "x"}));
    assert!(new.starts_with("kw_live_sk_"));
    assert_eq!(code(&s.verify(&old, json!({})).await), "VALID");
    assert_eq!(code(&s.verify(&new, json!({})).await), "VALID");
    // The two keys name each other; the old one, still active, stops at its grace's end.
    let new_id = rotated["id"].as_str().unwrap().to_string();
    assert_eq!((rotated["rotated_from"].as_str(), rotated.get("rotated_to")), (Some(id.as_str()), None));
    let (_, was) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!((was["rotated_to"].as_str(), was["status"].as_str()), (Some(new_id.as_str()), Some("active")));
    let ends = chrono::DateTime::parse_from_rfc3339(was["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(ends.timestamp(), (s.clock.now() + Duration::hours(1)).timestamp());
    let (_, listed) = s.call(Method::GET, "/v1/keys?environment=live", None).await;
    let by_id = |i: &str| listed["items"].as_array().unwrap().iter().find(|k| k["id"] == i).unwrap().clone();
    assert_eq!((by_id(&id)["rotated_to"].clone(), by_id(&new_id)["rotated_from"].clone()), (json!(new_id), json!(id)));
    // Rotating the same key twice is refused.
    let (st, e) = s.call(Method::POST, &format!("/v1/keys/{id}/rotate"), None).await;
    assert_eq!(st, 409);
    assert!(e["error"]["message"].as_str().unwrap().contains("already rotated"), "{e}");
    s.clock.advance(Duration::minutes(61));
    assert_eq!(code(&s.verify(&old, json!({})).await), "EXPIRED");
    assert_eq!(code(&s.verify(&new, json!({})).await), "VALID");

    // Without grace the old key stops at once.
    let new_id = new_id.as_str();
    let (st, again) =
        s.call(Method::POST, &format!("/v1/keys/{new_id}/rotate"), Some(json!({"grace_period": "0s"}))).await;
    assert_eq!(st, 201);
    assert_eq!(code(&s.verify(&new, json!({})).await), "REVOKED");
    assert_eq!(code(&s.verify(again["secret"].as_str().unwrap(), json!({})).await), "VALID");
    let (st, e) = s.call(Method::POST, &format!("/v1/keys/{new_id}/rotate"), None).await;
    assert_eq!(st, 409);
    assert!(e["error"]["message"].as_str().unwrap().contains("is revoked"), "{e}");
    let (st, e) =
        s.call(Method::POST, &format!("/v1/keys/{new_id}/rotate"), Some(json!({"grace_period": "soon"}))).await;
    assert_eq!(st, 400);
    assert_eq!(e["error"]["field"], "grace_period");
    let (st, _) = s.call(Method::POST, "/v1/keys/key_nope/rotate", None).await;
    assert_eq!(st, 404);
    s.stop().await;
}

async fn list_filters_and_pagination(b: Backend) {
    let s = TestServer::start(b).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let env = if i % 2 == 0 { "test" } else { "live" };
        let (id, _) = s.create(json!({"name": format!("svc-{i}_x"), "environment": env})).await;
        ids.push(id);
        s.clock.advance(Duration::milliseconds(5));
    }
    s.call(Method::POST, &format!("/v1/keys/{}/revoke", ids[0]), None).await;
    let (_, _) = s.create(json!({"name": "short", "expires_in": "1h"})).await;
    s.clock.advance(Duration::hours(2));

    let (_, p1) = s.call(Method::GET, "/v1/keys?limit=2", None).await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let mut seen: Vec<String> =
        p1["items"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap().to_string()).collect();
    let mut cursor = p1["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let (_, p) = s.call(Method::GET, &format!("/v1/keys?limit=2&cursor={c}"), None).await;
        seen.extend(p["items"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap().to_string()));
        cursor = p["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 6);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, no repeats");

    let count = |v: &serde_json::Value| v["items"].as_array().unwrap().len();
    assert_eq!(count(&s.call(Method::GET, "/v1/keys?environment=live", None).await.1), 2);
    assert_eq!(count(&s.call(Method::GET, "/v1/keys?status=revoked", None).await.1), 1);
    assert_eq!(count(&s.call(Method::GET, "/v1/keys?status=expired", None).await.1), 1);
    assert_eq!(count(&s.call(Method::GET, "/v1/keys?status=active", None).await.1), 4);
    assert_eq!(count(&s.call(Method::GET, "/v1/keys?kind=secret", None).await.1), 6);
    assert_eq!(count(&s.call(Method::GET, "/v1/keys?kind=public", None).await.1), 0);
    // q matches name (case-insensitive, `_` literal), id and start.
    assert_eq!(count(&s.call(Method::GET, "/v1/keys?q=SVC-3", None).await.1), 1);
    assert_eq!(count(&s.call(Method::GET, "/v1/keys?q=1_x", None).await.1), 1);
    assert_eq!(count(&s.call(Method::GET, &format!("/v1/keys?q={}", ids[2]), None).await.1), 1);
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("status=gone", "status"),
        ("environment=prod", "environment"),
        ("kind=x", "kind"),
        ("cursor=';--", "cursor"),
        ("owner=a%20b", "owner"),
        ("owner_type=robot", "owner_type"),
    ] {
        let (st, e) = s.call(Method::GET, &format!("/v1/keys?{q}"), None).await;
        assert_eq!(st, 400, "{q}");
        assert_eq!(e["error"]["field"], field, "{q}");
    }
    s.stop().await;
}

async fn patch_changes_and_clears(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, key) = s.create(json!({"name": "p", "expires_in": "1d", "callback_url": "https://cb.example/x"})).await;
    let path = format!("/v1/keys/{id}");
    let (st, v) = s
        .call(Method::PATCH, &path, Some(json!({"name": "renamed", "roles": ["admin"], "permissions": ["x.y"], "ip_allowlist": ["10.0.0.0/8"], "meta": {"k": 1}, "expires_at": null, "callback_url": null})))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["expires_at"], serde_json::Value::Null);
    assert_eq!(v["callback_url"], serde_json::Value::Null);
    assert_eq!(v["ip_allowlist"], json!(["10.0.0.0/8"]));
    // The change is in force for verification at once.
    assert_eq!(code(&s.verify(&key, json!({"ip": "11.0.0.1"})).await), "IP_NOT_ALLOWED");
    assert_eq!(code(&s.verify(&key, json!({"ip": "10.0.0.1", "permissions": "x.y"})).await), "VALID");
    let (st, v) = s.call(Method::PATCH, &path, Some(json!({"meta": "str"}))).await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("meta")));
    let (st, _) = s.call(Method::PATCH, "/v1/keys/key_missing", Some(json!({"name": "x"}))).await;
    assert_eq!(st, 404);
    s.call(Method::POST, &format!("{path}/revoke"), None).await;
    let (st, _) = s.call(Method::PATCH, &path, Some(json!({"name": "x"}))).await;
    assert_eq!(st, 409);
    s.stop().await;
}

async fn bad_input_names_the_field_and_writes_nothing(b: Backend) {
    let s = TestServer::start(b).await;
    let cases = [
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(65)}), "name"),
        (json!({"name": "a", "environment": "prod"}), "environment"),
        (json!({"name": "a", "ip_allowlist": ["300.1.1.1"]}), "ip_allowlist[0]"),
        (json!({"name": "a", "ip_allowlist": ["10.0.0.0/40"]}), "ip_allowlist[0]"),
        (json!({"name": "a", "meta": [1, 2]}), "meta"),
        (json!({"name": "a", "meta": {"big": "x".repeat(5000)}}), "meta"),
        (json!({"name": "a", "expires_in": "forever"}), "expires_in"),
        (json!({"name": "a", "unknown": true}), "unknown"),
        (json!({"name": 12}), "name"),
        (json!({"name": "a", "roles": "admin"}), "roles"),
    ];
    for (body, field) in cases {
        let (st, e) = s.call(Method::POST, "/v1/keys", Some(body.clone())).await;
        assert_eq!(st, 400, "{body}");
        assert_eq!(e["error"]["code"], "invalid_request");
        assert_eq!(e["error"]["field"], field, "{body}");
    }
    let r = s.http().post(s.url("/v1/keys")).bearer_auth(&s.management_key).body("{\"name\": ").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(e["error"]["message"].as_str().unwrap().contains("malformed JSON"));
    assert_eq!(s.store.count_keys(&s.workspace_id).await.unwrap(), 0, "nothing written");
    let (st, _) = s.call(Method::GET, "/v1/nothing-here", None).await;
    assert_eq!(st, 404);
    s.stop().await;
}

async fn oversized_body_is_413(b: Backend) {
    let s = TestServer::start(b).await;
    let big = json!({"name": "a", "meta": {"x": "y".repeat(100_000)}});
    let (st, e) = s.call(Method::POST, "/v1/keys", Some(big)).await;
    assert_eq!(st, 413);
    assert_eq!(e["error"]["code"], "payload_too_large");
    assert_eq!(s.store.count_keys(&s.workspace_id).await.unwrap(), 0);
    s.stop().await;
}

async fn idempotent_create_and_rotate(b: Backend) {
    let s = TestServer::start(b).await;
    let post = |body: serde_json::Value, key: &'static str| {
        s.http()
            .post(s.url("/v1/keys"))
            .bearer_auth(&s.management_key)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let r1 = post(json!({"name": "idem"}), "req-1").await.unwrap();
    assert_eq!(r1.status(), 201);
    let v1: serde_json::Value = r1.json().await.unwrap();
    let r2 = post(json!({"name": "idem"}), "req-1").await.unwrap();
    assert_eq!(r2.status(), 201);
    assert_eq!(r2.headers()["idempotent-replayed"], "true");
    let v2: serde_json::Value = r2.json().await.unwrap();
    assert_eq!(v1, v2, "a retry returns the first answer, secret included");
    assert_eq!(s.store.count_keys(&s.workspace_id).await.unwrap(), 1);
    let r3 = post(json!({"name": "other"}), "req-1").await.unwrap();
    assert_eq!(r3.status(), 409);
    let e: serde_json::Value = r3.json().await.unwrap();
    assert_eq!(e["error"]["field"], "Idempotency-Key");

    let id = v1["id"].as_str().unwrap();
    let rot = || {
        s.http()
            .post(s.url(&format!("/v1/keys/{id}/rotate")))
            .bearer_auth(&s.management_key)
            .header("Idempotency-Key", "rot-1")
            .json(&json!({"grace_period": "1h"}))
            .send()
    };
    let a: serde_json::Value = rot().await.unwrap().json().await.unwrap();
    let b2 = rot().await.unwrap();
    assert_eq!(b2.status(), 201);
    assert_eq!(a, b2.json::<serde_json::Value>().await.unwrap());
    assert_eq!(s.store.count_keys(&s.workspace_id).await.unwrap(), 2);
    s.stop().await;
}

async fn management_needs_a_management_key(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, api_key) = s.create(json!({"name": "k"})).await;
    let h = s.http();
    let r = h.get(s.url("/v1/keys")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "unauthenticated");
    assert_eq!(h.get(s.url("/v1/keys")).bearer_auth("kw_mk_nonsense").send().await.unwrap().status(), 401);
    let forged = keyward_core::keyformat::generate_management("kw", &keyward_core::OsRandom);
    assert_eq!(h.get(s.url("/v1/keys")).bearer_auth(&forged).send().await.unwrap().status(), 401);
    let r = h.post(s.url("/v1/keys")).bearer_auth(&api_key).json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 403, "an ordinary API key cannot manage keys");
    assert_eq!(h.get(s.url("/healthz")).send().await.unwrap().status(), 200);
    s.stop().await;
}

async fn verify_token_guards_verification(b: Backend) {
    let cfg =
        keyward_server::ServerConfig { verify_token: Some("s3cret-token".into()), ..keyward_testkit::test_config() };
    let s = TestServer::start_with(b, cfg).await;
    let (_, key) = s.create(json!({"name": "k"})).await;
    let h = s.http();
    let r = h.post(s.url("/v1/keys/verify")).json(&json!({"key": key})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = h
        .post(s.url("/v1/keys/verify"))
        .header("Keyward-Verify-Token", "wrong")
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = h
        .post(s.url("/v1/keys/verify"))
        .header("Keyward-Verify-Token", "s3cret-token")
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h.get(s.url("/v1/auth")).header("X-API-Key", &key).send().await.unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

async fn last_used_is_buffered_then_written(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, key) = s.create(json!({"name": "u"})).await;
    assert_eq!(code(&s.verify(&key, json!({"ip": "198.51.100.9"})).await), "VALID");
    // The management view shows it at once (from memory), and storage within the flush interval.
    let (_, v) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(v["last_used_ip"], "198.51.100.9");
    let mut stored = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stored = s.store.get_key(&s.workspace_id, &id).await.unwrap().and_then(|r| r.last_used_ip);
        if stored.is_some() {
            break;
        }
    }
    assert_eq!(stored.as_deref(), Some("198.51.100.9"));
    s.stop().await;
}

async fn shutdown_flushes_pending_usage(b: Backend) {
    let cfg = keyward_server::ServerConfig {
        flush_interval: std::time::Duration::from_secs(3600),
        ..keyward_testkit::test_config()
    };
    let mut s = TestServer::start_with(b, cfg).await;
    let (id, key) = s.create(json!({"name": "u"})).await;
    s.verify(&key, json!({"ip": "192.0.2.1"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let before = s.store.get_key(&s.workspace_id, &id).await.unwrap().unwrap();
    assert_eq!(before.last_used_at, None, "no write per request");
    s.server.take().unwrap().stop().await.unwrap();
    let after = s.store.get_key(&s.workspace_id, &id).await.unwrap().unwrap();
    assert_eq!(after.last_used_ip.as_deref(), Some("192.0.2.1"));
    s.stop().await;
}

async fn revoke_reaches_another_node_within_a_second(b: Backend) {
    let a = TestServer::start(b).await;
    let other = a.second_node().await;
    let (id, key) = a.create(json!({"name": "shared"})).await;
    let (id2, key2) = a.create(json!({"name": "rotated"})).await;
    // Node B caches both keys as valid.
    assert_eq!(code(&other.verify(&key, json!({})).await), "VALID");
    assert_eq!(code(&other.verify(&key2, json!({})).await), "VALID");
    a.call(Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    a.call(Method::POST, &format!("/v1/keys/{id2}/rotate"), Some(json!({"grace_period": "0s"}))).await;
    let started = std::time::Instant::now();
    loop {
        let (c1, c2) = (
            code(&other.verify(&key, json!({})).await).to_string(),
            code(&other.verify(&key2, json!({})).await).to_string(),
        );
        if c1 == "REVOKED" && c2 == "REVOKED" {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "node B still says {c1}/{c2} after 1 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A key created on A after B cached "not found" becomes valid on B too.
    let (_, fresh) = a.create(json!({"name": "fresh"})).await;
    let started = std::time::Instant::now();
    while code(&other.verify(&fresh, json!({})).await) != "VALID" {
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    other.stop().await;
    a.stop().await;
}

async fn secrets_never_reach_the_database(b: Backend) {
    let s = TestServer::start(b).await;
    let mut secrets = vec![s.management_key.clone()];
    for i in 0..3 {
        let (id, k) = s.create(json!({"name": format!("k{i}")})).await;
        s.verify(&k, json!({})).await;
        secrets.push(k);
        let (_, r) = s.call(Method::POST, &format!("/v1/keys/{id}/rotate"), Some(json!({"grace_period": "1h"}))).await;
        secrets.push(r["secret"].as_str().unwrap().to_string());
    }
    let r = s
        .http()
        .post(s.url("/v1/keys"))
        .bearer_auth(&s.management_key)
        .header("Idempotency-Key", "i-1")
        .json(&json!({"name": "idem"}))
        .send()
        .await
        .unwrap();
    secrets.push(r.json::<serde_json::Value>().await.unwrap()["secret"].as_str().unwrap().to_string());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    if s.db.is_postgres() {
        // Dump every text column of every table.
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&s.db.url).await.unwrap();
        for t in ["workspaces", "members", "management_keys", "api_keys", "idempotency", "key_events"] {
            let rows: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT row_to_json(t)::text FROM {t} t")).fetch_all(&mut c).await.unwrap();
            for (row,) in rows {
                for sec in &secrets {
                    assert!(!row.contains(sec.as_str()), "secret found in {t}");
                    assert!(!row.contains(&sec[sec.len() - 49..]), "secret body found in {t}");
                }
            }
        }
    } else {
        let files = keyward_testkit::files_under(s.db.dir.path());
        assert!(!files.is_empty());
        for (p, bytes) in files {
            for sec in &secrets {
                assert!(!keyward_testkit::contains(&bytes, &sec[sec.len() - 49..]), "secret found in {}", p.display());
            }
        }
    }
    s.stop().await;
}

async fn sdk_round_trip(b: Backend) {
    let s = TestServer::start(b).await;
    let c = &s.client;
    let k = c
        .create_key(
            &keyward_client::CreateKeyRequest {
                name: Some("sdk".into()),
                scopes: Some(vec!["wallet:*".into()]),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let secret = k.secret.clone().unwrap();
    assert!(c.verify(&secret).await.unwrap().valid);
    let listed = c.list_keys(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let upd = c
        .update_key(&k.id, &keyward_client::UpdateKeyRequest { name: Some("sdk2".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(upd.name, "sdk2");
    let rot = c.rotate_key(&k.id, Some("0s")).await.unwrap();
    assert_eq!(c.verify(&secret).await.unwrap().code, keyward_client::VerifyCode::Revoked);
    let rev = c.revoke_key(&rot.id).await.unwrap();
    assert_eq!(rev.status, keyward_client::KeyStatus::Revoked);
    let err = c.get_key("key_missing").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    let err = c.create_key(&Default::default(), None).await.unwrap_err();
    assert!(
        matches!(err, keyward_client::ClientError::Api { ref field, .. } if field.as_deref() == Some("name")),
        "{err}"
    );
    s.stop().await;
}
