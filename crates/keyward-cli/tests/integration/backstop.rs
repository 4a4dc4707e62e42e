//! The cache's backstop against missed change events: a role's permissions or a verify
//! token's revocation changed in storage by hand (no event) are still corrected on a node
//! that cached them, by the background comparison with storage.

use std::time::Duration;

use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::faults::eventually;

on_both_backends!(roles_and_verify_tokens_changed_by_hand_are_caught);

/// A change straight in the database: no change event is written.
async fn by_hand(s: &TestServer, sql: &str, bind: &str) {
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&s.db.url).await.unwrap();
    sqlx::query(sql).bind(bind).execute(&mut c).await.unwrap();
    c.close().await.ok();
}

/// Pushes the role's and token's own change events out of the window a polling node
/// re-reads each time (so only the backstop can correct them), and waits until this node has
/// polled past them: a key revoked by hand with its event, after the filler, answers REVOKED.
async fn past_the_replay_window(s: &TestServer) {
    let (id, marker) = s.create(json!({"name": "marker"})).await;
    assert_eq!(code(&s.verify(&marker, json!({})).await), "VALID");
    by_hand(
        s,
        "INSERT INTO key_events (key_hash, created_at) WITH RECURSIVE n(i) AS \
         (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1100) \
         SELECT $1, (SELECT MAX(created_at) FROM key_events) FROM n",
        &"0".repeat(64),
    )
    .await;
    by_hand(s, "UPDATE api_keys SET status = 'revoked', updated_at = updated_at + 1 WHERE id = $1", &id).await;
    by_hand(
        s,
        "INSERT INTO key_events (key_hash, created_at) SELECT hash, updated_at FROM api_keys WHERE id = $1",
        &id,
    )
    .await;
    let polled =
        eventually(Duration::from_secs(5), || async { code(&s.verify(&marker, json!({})).await) == "REVOKED" }).await;
    assert!(polled, "the node never read the events written by hand");
}

async fn verify_with(s: &TestServer, token: &str, key: &str, permissions: &str) -> (u16, Value) {
    let r = s
        .http()
        .post(s.url("/v1/keys/verify"))
        .header("keyward-verify-token", token)
        .json(&json!({"key": key, "permissions": permissions}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn roles_and_verify_tokens_changed_by_hand_are_caught(b: Backend) {
    let cfg = keyward_server::ServerConfig {
        cache_revalidate_interval: Duration::from_millis(300),
        ..keyward_testkit::test_config()
    };
    let s = TestServer::start_with(b, cfg).await;
    let (st, v) =
        s.call(Method::POST, "/v1/roles", Some(json!({"name": "auditor", "permissions": ["audit.read"]}))).await;
    assert_eq!(st, 201, "{v}");
    let (_, key) = s.create(json!({"name": "auditing bot", "roles": ["auditor"]})).await;
    let (st, vt) = s.call(Method::POST, "/v1/verify-tokens", Some(json!({"name": "gw"}))).await;
    assert_eq!(st, 201, "{vt}");
    let token = vt["token"].as_str().unwrap().to_string();
    past_the_replay_window(&s).await;
    // Both are cached now.
    let (st, v) = verify_with(&s, &token, &key, "audit.read").await;
    assert_eq!((st, code(&v)), (200, "VALID"), "{v}");

    by_hand(&s, r#"UPDATE roles SET permissions = '["billing.read"]' WHERE name = $1"#, "auditor").await;
    let caught = eventually(Duration::from_secs(5), || async {
        code(&s.verify(&key, json!({"permissions": "audit.read"})).await) == "INSUFFICIENT_PERMISSIONS"
    })
    .await;
    assert!(caught, "a role changed without its event kept its old permissions in the cache");
    assert_eq!(code(&s.verify(&key, json!({"permissions": "billing.read"})).await), "VALID");

    let id = vt["id"].as_str().unwrap().to_string();
    by_hand(&s, "UPDATE verify_tokens SET revoked_at = 1 WHERE id = $1", &id).await;
    let caught =
        eventually(Duration::from_secs(5), || async { verify_with(&s, &token, &key, "billing.read").await.0 == 401 })
            .await;
    assert!(caught, "a verify token revoked without its event kept working");
    s.stop().await;
}
