//! A key or service account names only roles that exist, so a role created (or re-created)
//! later never reaches into keys that named it before.

use keyward_core::signing::{Algorithm, SecretKey};
use keyward_core::OsRandom;
use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    only_existing_roles_are_named,
    a_new_role_never_reaches_into_old_keys,
    a_deleted_role_is_not_resurrected
);

fn field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or("")
}

async fn refund(s: &TestServer, key: &str) -> String {
    code(&s.verify(key, json!({"permissions": "payments.refund"})).await).to_string()
}

async fn only_existing_roles_are_named(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, e) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "early", "roles": ["payments-admin"]}))).await;
    assert_eq!((st, field(&e)), (400, "roles"), "{e}");
    let pk = SecretKey::generate(Algorithm::Ed25519, &OsRandom).public_key().to_hex();
    let body = json!({"name": "signer", "public_key": pk, "algorithm": "ed25519", "roles": ["payments-admin"]});
    let (st, e) = s.call(Method::POST, "/v1/keys", Some(body)).await;
    assert_eq!((st, field(&e)), (400, "roles"), "a public key too: {e}");
    let (id, _) = s.create(json!({"name": "plain"})).await;
    let (st, e) = s.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(json!({"roles": ["payments-admin"]}))).await;
    assert_eq!((st, field(&e)), (400, "roles"), "{e}");
    let (st, e) =
        s.call(Method::POST, "/v1/service-accounts", Some(json!({"name": "sa", "role": "payments-admin"}))).await;
    assert_eq!((st, field(&e)), (400, "role"), "{e}");
    // Member roles always exist; a defined role may be named.
    let (st, v) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "viewer", "roles": ["viewer"]}))).await;
    assert_eq!(st, 201, "{v}");
    let (st, _) =
        s.call(Method::POST, "/v1/roles", Some(json!({"name": "payments-admin", "permissions": ["payments.*"]}))).await;
    assert_eq!(st, 201);
    let (st, v) = s.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(json!({"roles": ["payments-admin"]}))).await;
    assert_eq!(st, 200, "{v}");
    s.stop().await;
}

async fn a_new_role_never_reaches_into_old_keys(b: Backend) {
    let s = TestServer::start(b).await;
    // A key stored before names were checked still names a role nobody defined.
    let (id, key) = s.create(json!({"name": "legacy"})).await;
    s.db.exec(&format!("UPDATE api_keys SET roles = '[\"payments-admin\"]' WHERE id = '{id}'")).await;
    let (st, e) = s.call(Method::POST, &format!("/v1/keys/{id}/rotate"), None).await;
    assert_eq!((st, field(&e)), (400, "roles"), "rotating it is refused: {e}");
    // The role is created later: the old key does not gain it, and no longer names it.
    let (st, _) =
        s.call(Method::POST, "/v1/roles", Some(json!({"name": "payments-admin", "permissions": ["payments.*"]}))).await;
    assert_eq!(st, 201);
    assert_eq!(refund(&s, &key).await, "INSUFFICIENT_PERMISSIONS");
    let (_, k) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(k["roles"], json!([]), "{k}");
    let (_, trail) = s.call(Method::GET, "/v1/audit?action=role.create", None).await;
    assert_eq!(trail["items"][0]["changes"]["taken_off_keys"], json!([id]), "{trail}");
    s.stop().await;
}

async fn a_deleted_role_is_not_resurrected(b: Backend) {
    let s = TestServer::start(b).await;
    let role = json!({"name": "payments-admin", "permissions": ["payments.*"]});
    assert_eq!(s.call(Method::POST, "/v1/roles", Some(role.clone())).await.0, 201);
    let (id, key) = s.create(json!({"name": "holder", "roles": ["payments-admin"]})).await;
    assert_eq!(refund(&s, &key).await, "VALID");
    // Held, the role is not deleted unless taken off its holders in the same transaction.
    assert_eq!(s.call(Method::DELETE, "/v1/roles/payments-admin", None).await.0, 409);
    assert_eq!(s.call(Method::DELETE, "/v1/roles/payments-admin?force=true", None).await.0, 204);
    assert_eq!(refund(&s, &key).await, "INSUFFICIENT_PERMISSIONS");
    assert_eq!(s.call(Method::POST, "/v1/roles", Some(role)).await.0, 201);
    assert_eq!(refund(&s, &key).await, "INSUFFICIENT_PERMISSIONS", "re-created, it is a new role");
    let (_, k) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(k["roles"], json!([]));
    s.stop().await;
}
