//! The database going away, and the OpenAPI document against the routes the server answers.

use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::json;
use sqlx::Connection;

on_both_backends!(
    database_outage_keeps_verification_up,
    missed_notifications_are_caught_up,
    openapi_documents_every_route,
    a_reconnect_keeps_unchanged_keys_cached
);

async fn database_outage_keeps_verification_up(b: Backend) {
    let s = TestServer::start(b).await;
    if !s.db.is_postgres() {
        // An embedded SQLite file cannot be taken away from a running process the same way.
        keyward_testkit::skipped("sqlite::database_outage_keeps_verification_up", "PostgreSQL only");
        return s.stop().await;
    }
    let (_, known) = s.create(json!({"name": "cached", "permissions": ["wallet.read"]})).await;
    let (_, revoked_key) = s.create(json!({"name": "gone"})).await;
    let revoked_id = s.verify(&revoked_key, json!({})).await["key_id"].as_str().unwrap().to_string();
    s.call(Method::POST, &format!("/v1/keys/{revoked_id}/revoke"), None).await;
    // The node's own change notifications drop its cache entries when they arrive; let them
    // pass, then have both keys cached.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(code(&s.verify(&known, json!({})).await), "VALID");
    assert_eq!(code(&s.verify(&revoked_key, json!({})).await), "REVOKED");

    // The database disappears under the running server.
    let admin = std::env::var("KEYWARD_TEST_DATABASE_URL").unwrap();
    let name = s.db.url.rsplit('/').next().unwrap().to_string();
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::Executor::execute(&mut c, format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await.unwrap();
    c.close().await.ok();

    // Management: 503 with the error shape and nothing internal in it.
    let (st, v) = s.call(Method::GET, "/v1/keys", None).await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "unavailable");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(!msg.contains(&name) && !msg.to_lowercase().contains("sqlx"), "{msg}");
    let (st, _) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "during outage"}))).await;
    assert_eq!(st, 503);

    // Verification: keys the node knows keep their answers; unknown ones cannot be decided.
    for _ in 0..3 {
        let v = s.verify(&known, json!({"permissions": "wallet.read"})).await;
        assert_eq!(code(&v), "VALID", "{v}");
        assert_eq!(code(&s.verify(&revoked_key, json!({})).await), "REVOKED");
    }
    let unknown = keyward_core::keyformat::generate_secret("kw", "test", &keyward_core::OsRandom);
    let r = s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": unknown})).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let r = s.http().get(s.url("/v1/auth")).header("X-API-Key", &known).send().await.unwrap();
    assert_eq!(r.status(), 200, "forward-auth keeps working for cached keys");
    let r = s.http().get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    // Still serving after all that.
    assert_eq!(code(&s.verify(&known, json!({})).await), "VALID");
    s.stop().await;
}

async fn admin(sql: &str) {
    let mut c = sqlx::PgConnection::connect(&std::env::var("KEYWARD_TEST_DATABASE_URL").unwrap()).await.unwrap();
    sqlx::Executor::execute(&mut c, sql).await.unwrap();
    c.close().await.ok();
}

/// A node whose change listener is cut off keeps serving from its cache, and when it can
/// listen again it reads the changes it missed instead of trusting stale entries.
async fn missed_notifications_are_caught_up(b: Backend) {
    let a = TestServer::start(b).await;
    if !a.db.is_postgres() {
        keyward_testkit::skipped("sqlite::missed_notifications_are_caught_up", "PostgreSQL only");
        return a.stop().await;
    }
    let other = a.second_node().await;
    let (id, key) = a.create(json!({"name": "revoked while deaf"})).await;
    let (_, kept) = a.create(json!({"name": "kept"})).await;
    assert_eq!(code(&other.verify(&key, json!({})).await), "VALID");
    assert_eq!(code(&other.verify(&kept, json!({})).await), "VALID");
    // Nobody may connect; the listeners are cut. Node A still has pooled connections.
    let name = a.db.url.rsplit('/').next().unwrap().to_string();
    admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND query ILIKE 'LISTEN%'"
    ))
    .await;
    let (st, _) = a.call(Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    assert_eq!(st, 200);
    assert_eq!(code(&other.verify(&kept, json!({})).await), "VALID", "cached keys keep working meanwhile");
    admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    let started = std::time::Instant::now();
    while code(&other.verify(&key, json!({})).await) != "REVOKED" {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the missed revoke was never applied");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(code(&other.verify(&kept, json!({})).await), "VALID");
    other.stop().await;
    a.stop().await;
}

/// Every operation the server documents, and every contract route this release serves.
const SERVED: &[(&str, &str)] = &[
    ("post", "/v1/secret-scanning/github"),
    ("post", "/v1/leaks"),
    ("get", "/healthz"),
    ("get", "/v1/openapi.json"),
    ("post", "/v1/keys"),
    ("get", "/v1/keys"),
    ("get", "/v1/keys/{id}"),
    ("patch", "/v1/keys/{id}"),
    ("post", "/v1/keys/{id}/revoke"),
    ("post", "/v1/keys/{id}/rotate"),
    ("post", "/v1/keys/import"),
    ("post", "/v1/keys/verify"),
    ("post", "/v1/requests/verify"),
    ("get", "/v1/auth"),
    ("get", "/v1/auth/{path}"),
    ("post", "/v1/auth/{path}"),
    ("put", "/v1/auth/{path}"),
    ("patch", "/v1/auth/{path}"),
    ("delete", "/v1/auth/{path}"),
    ("post", "/v1/members"),
    ("get", "/v1/members"),
    ("post", "/v1/members/setup"),
    ("get", "/v1/members/me"),
    ("post", "/v1/members/me/password"),
    ("post", "/v1/members/me/mfa/totp"),
    ("post", "/v1/members/me/mfa/totp/confirm"),
    ("post", "/v1/members/me/mfa/totp/disable"),
    ("post", "/v1/members/me/keys"),
    ("get", "/v1/members/{id}"),
    ("patch", "/v1/members/{id}"),
    ("delete", "/v1/members/{id}"),
    ("post", "/v1/sessions"),
    ("post", "/v1/verify-tokens"),
    ("get", "/v1/management-keys"),
    ("delete", "/v1/management-keys/{id}"),
    ("get", "/v1/verify-tokens"),
    ("delete", "/v1/verify-tokens/{id}"),
    ("delete", "/v1/sessions/current"),
    ("delete", "/v1/sessions"),
    ("get", "/v1/policies"),
    ("put", "/v1/policies"),
    ("get", "/v1/approvals"),
    ("get", "/v1/approvals/{id}"),
    ("post", "/v1/approvals/{id}/approve"),
    ("post", "/v1/approvals/{id}/reject"),
    ("post", "/v1/approvals/{id}/cancel"),
    ("get", "/v1/audit"),
    ("get", "/v1/audit/export"),
    ("get", "/v1/audit/verify"),
    ("get", "/v1/roles"),
    ("post", "/v1/roles"),
    ("get", "/v1/roles/{name}"),
    ("patch", "/v1/roles/{name}"),
    ("delete", "/v1/roles/{name}"),
    ("get", "/v1/service-accounts"),
    ("post", "/v1/service-accounts"),
    ("get", "/v1/service-accounts/{id}"),
    ("patch", "/v1/service-accounts/{id}"),
    ("delete", "/v1/service-accounts/{id}"),
    ("post", "/v1/service-accounts/{id}/keys"),
    ("get", "/v1/keys/{id}/usage"),
    ("get", "/v1/usage"),
    ("get", "/v1/alerts"),
    ("post", "/v1/alerts/{id}/acknowledge"),
    ("get", "/metrics"),
    ("get", "/v1/keys/{id}/callbacks"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/webhooks"),
    ("get", "/v1/webhooks/signing-key"),
    ("get", "/v1/webhooks/{id}"),
    ("patch", "/v1/webhooks/{id}"),
    ("delete", "/v1/webhooks/{id}"),
    ("post", "/v1/webhooks/{id}/rotate-secret"),
    ("post", "/v1/webhooks/{id}/test"),
    ("get", "/v1/webhooks/{id}/deliveries"),
    ("post", "/v1/webhooks/{id}/deliveries/{delivery_id}/retry"),
    ("post", "/v1/ratelimit"),
    ("post", "/v1/ratelimit/overrides"),
    ("get", "/v1/ratelimit/overrides"),
    ("delete", "/v1/ratelimit/overrides/{id}"),
    ("post", "/v1/identities"),
    ("get", "/v1/identities"),
    ("get", "/v1/identities/{id}"),
    ("patch", "/v1/identities/{id}"),
    ("delete", "/v1/identities/{id}"),
    ("post", "/v1/workspaces"),
    ("get", "/v1/workspaces"),
    ("get", "/v1/workspaces/{id}"),
    ("patch", "/v1/workspaces/{id}"),
    ("delete", "/v1/workspaces/{id}"),
    ("post", "/v1/workspaces/{id}/suspend"),
    ("post", "/v1/workspaces/{id}/resume"),
    ("get", "/v1/operator/log"),
    ("post", "/v1/apps"),
    ("get", "/v1/apps"),
    ("get", "/v1/apps/{id}"),
    ("patch", "/v1/apps/{id}"),
    ("delete", "/v1/apps/{id}"),
    ("post", "/v1/apps/{id}/keys"),
    ("get", "/v1/apps/{id}/installations"),
    ("get", "/v1/apps/{id}/listing"),
    ("post", "/v1/installations"),
    ("get", "/v1/installations"),
    ("get", "/v1/installations/{id}"),
    ("delete", "/v1/installations/{id}"),
    ("post", "/v1/oauth/token"),
    ("post", "/v1/oauth/introspect"),
    ("post", "/v1/oauth/revoke"),
    ("post", "/v1/oauth/signing-key/rotate"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/.well-known/oauth-authorization-server"),
];

async fn openapi_documents_every_route(b: Backend) {
    let s = TestServer::start(b).await;
    let doc: serde_json::Value = s.http().get(s.url("/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = SERVED.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    expected.sort();
    assert_eq!(documented, expected, "the document and the contract's routes differ");

    // Each documented operation is really served: no answer comes from the router's fallbacks.
    for (method, path) in &documented {
        let url = s.url(&path.replace("{id}", "key_00000000000000000000000000"));
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = s.http().request(m, &url).bearer_auth(&s.management_key).json(&json!({})).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path} is documented but not routed");
        assert!(!body.contains("no such route"), "{method} {path} is documented but not routed");
    }
    // The error shape and the management-key scheme are described.
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object(), "no error schema");
    assert!(doc["components"]["securitySchemes"]["management_key"].is_object());
    assert!(doc["paths"]["/v1/keys"]["post"]["requestBody"].is_object());
    s.stop().await;
}

/// One value of the node's `/metrics`.
async fn metric(s: &TestServer, name: &str) -> i64 {
    let text = s.http().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name}"));
    line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as i64
}

/// Polls `f` every 50 ms for up to 10 s; true when it held.
async fn within_10s<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F) -> bool {
    for _ in 0..200 {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// A database restart (every session ended) makes the change listener reconnect. With no
/// change made meanwhile, the node keeps every cached key: if the database then goes away,
/// a key verified before still verifies (the reconnect used to replay the last 1,000 events
/// and drop their keys, changed or not, so they answered 503).
async fn a_reconnect_keeps_unchanged_keys_cached(b: Backend) {
    let s = TestServer::start(b).await;
    if !s.db.is_postgres() {
        keyward_testkit::skipped("sqlite::a_reconnect_keeps_unchanged_keys_cached", "PostgreSQL only");
        return s.stop().await;
    }
    let (_, key) = s.create(json!({"name": "cached"})).await;
    // Its creation event arrived (it drops the node's entry), then the key is cached.
    let last = s.store.last_event_seq().await.unwrap();
    assert!(within_10s(|| async { metric(&s, "keyward_change_event_seq").await >= last }).await);
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID");

    let connects = metric(&s, "keyward_change_listener_connects_total").await;
    s.db.terminate_sessions().await;
    let relistened =
        within_10s(|| async { metric(&s, "keyward_change_listener_connects_total").await > connects }).await;
    assert!(relistened, "the listener did not reconnect");
    assert_eq!(s.store.last_event_seq().await.unwrap(), last, "no change was made meanwhile");

    s.db.admin("ALTER DATABASE {db} ALLOW_CONNECTIONS false").await;
    s.db.terminate_sessions().await;
    let r = s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": key})).send().await.unwrap();
    assert_eq!(r.status(), 200, "a key verified before the reconnect was dropped from the cache");
    assert_eq!(code(&r.json::<serde_json::Value>().await.unwrap()), "VALID");
    s.db.admin("ALTER DATABASE {db} ALLOW_CONNECTIONS true").await;
    s.stop().await;
}
