//! Roles that grant permissions (issue: roles, grants, service accounts): seed 001's "operator
//! on wallets w_1 and w_2, viewer on everything" on one key, a role change reaching another
//! node, escalation refused on every path, and service accounts (seed 002's integration user).

use std::time::{Duration, Instant};

use keyward_testkit::{code, Backend, Member, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    operator_on_two_wallets_viewer_everywhere,
    escalation_is_refused_on_every_path,
    role_update_under_approval,
    deleting_a_role_in_use,
    service_account_keys
);

async fn ok(s: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let (st, v) = s.call(method.clone(), path, Some(body)).await;
    assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
    v
}

async fn check(s: &TestServer, key: &str, permissions: &str, scope: Option<&str>) -> String {
    let mut extra = json!({"permissions": permissions});
    if let Some(sc) = scope {
        extra["scope"] = sc.into();
    }
    code(&s.verify(key, extra).await).to_string()
}

/// Polls `other` until `key` answers `want` for the check, for at most a second.
async fn within_a_second(other: &TestServer, key: &str, permissions: &str, scope: Option<&str>, want: &str) {
    let started = Instant::now();
    loop {
        let got = check(other, key, permissions, scope).await;
        if got == want {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "the other node still answers {got} after 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn operator_on_two_wallets_viewer_everywhere(b: Backend) {
    let s = TestServer::start(b).await;
    let other = s.second_node().await;
    // The member roles are roles too: their API permissions are set like any role's.
    let perms = json!({"permissions": ["tx.create", "tx.approve", "wallet.read"]});
    ok(&s, Method::PATCH, "/v1/roles/operator", perms).await;
    ok(&s, Method::PATCH, "/v1/roles/viewer", json!({"permissions": ["wallet.read", "balance.read"]})).await;
    ok(&s, Method::POST, "/v1/roles", json!({"name": "auditor", "permissions": ["audit.read"]})).await;
    let (id, key) = s
        .create(json!({
            "name": "treasury bot",
            "roles": ["viewer"],
            "scopes": ["*"],
            "grants": [{"role": "operator", "scopes": ["wallet:w_1", "wallet:w_2"]}],
        }))
        .await;
    // The table of the issue, over HTTP, on both nodes.
    for node in [&s, &other] {
        assert_eq!(check(node, &key, "tx.create", Some("wallet:w_1")).await, "VALID");
        assert_eq!(check(node, &key, "tx.approve", Some("wallet:w_2")).await, "VALID");
        assert_eq!(check(node, &key, "tx.create", Some("wallet:w_3")).await, "INSUFFICIENT_PERMISSIONS");
        assert_eq!(check(node, &key, "balance.read", Some("wallet:w_3")).await, "VALID");
        assert_eq!(check(node, &key, "balance.read AND tx.approve", Some("wallet:w_1")).await, "VALID");
        assert_eq!(check(node, &key, "tx.approve", None).await, "VALID");
        assert_eq!(check(node, &key, "admin.delete", None).await, "INSUFFICIENT_PERMISSIONS");
    }
    let v = s.verify(&key, json!({})).await;
    assert_eq!(v["roles"], json!(["viewer", "operator"]));
    assert_eq!(v["permissions"], json!(["wallet.read", "balance.read", "tx.create", "tx.approve"]));
    assert_eq!(v["grants"], json!([{"role": "operator", "scopes": ["wallet:w_1", "wallet:w_2"]}]));
    let (_, k) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(k["grants"][0]["role"], "operator");
    assert_eq!(k["permissions"], json!([]), "the key's own permissions stay its own");

    // What "operator" means changes in one place: at once here, within a second there.
    let r = ok(&s, Method::PATCH, "/v1/roles/operator", json!({"permissions": ["tx.create", "wallet.read"]})).await;
    assert_eq!(r["keys"], 1);
    assert_eq!(check(&s, &key, "tx.approve", Some("wallet:w_1")).await, "INSUFFICIENT_PERMISSIONS");
    within_a_second(&other, &key, "tx.approve", Some("wallet:w_1"), "INSUFFICIENT_PERMISSIONS").await;
    assert_eq!(check(&other, &key, "tx.create", Some("wallet:w_1")).await, "VALID");
    ok(&s, Method::PATCH, "/v1/roles/operator", json!({"permissions": ["tx.*", "wallet.read"]})).await;
    within_a_second(&other, &key, "tx.refund", Some("wallet:w_2"), "VALID").await;
    // Bad input names its field.
    let (st, e) = s.call(Method::POST, "/v1/roles", Some(json!({"name": "bad name", "permissions": []}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("name")));
    let (st, e) = s
        .call(Method::POST, "/v1/keys", Some(json!({"name": "x", "grants": [{"role": "nobody", "scopes": ["a:b"]}]})))
        .await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("grants[0].role")), "{e}");
    let (st, _) = s.call(Method::POST, "/v1/roles", Some(json!({"name": "operator"}))).await;
    assert_eq!(st, 409);
    let (st, roles) = s.call(Method::GET, "/v1/roles", None).await;
    assert_eq!(st, 200);
    let names: Vec<&str> = roles["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["owner", "admin", "manager", "developer", "operator", "viewer", "auditor"]);
    let unset = &roles["items"][0];
    assert_eq!((unset["member_role"].as_bool(), unset["permissions"].is_null()), (Some(true), true));
    other.stop().await;
    s.stop().await;
}

async fn as_(s: &TestServer, m: &Member, method: Method, path: &str, body: Value) -> (u16, Value) {
    s.call_as(&m.token, method, path, Some(body)).await
}

async fn escalation_is_refused_on_every_path(b: Backend) {
    let s = TestServer::start(b).await;
    let dev = s.member("developer", false).await;
    let admin = s.member("admin", true).await;
    ok(&s, Method::POST, "/v1/roles", json!({"name": "ops", "permissions": ["tx.*"]})).await;
    ok(&s, Method::POST, "/v1/roles", json!({"name": "reader", "permissions": ["wallet.read"]})).await;
    // Until an owner sets them, a member role restricts nothing (as before roles granted).
    let (st, _) = as_(&s, &dev, Method::POST, "/v1/keys", json!({"name": "before", "roles": ["ops"]})).await;
    assert_eq!(st, 201);
    ok(&s, Method::PATCH, "/v1/roles/developer", json!({"permissions": ["wallet.*"]})).await;

    // Create: own permissions, roles and grants beyond reach.
    for body in [
        json!({"name": "a", "permissions": ["tx.create"]}),
        json!({"name": "b", "roles": ["ops"]}),
        json!({"name": "c", "grants": [{"role": "ops", "scopes": ["wallet:w_1"]}]}),
        json!({"name": "d", "roles": ["admin"]}),
    ] {
        let (st, e) = as_(&s, &dev, Method::POST, "/v1/keys", body.clone()).await;
        assert_eq!(st, 403, "{body} → {e}");
    }
    let (st, mine) = as_(&s, &dev, Method::POST, "/v1/keys", json!({"name": "mine", "roles": ["reader"]})).await;
    assert_eq!(st, 201, "{mine}");
    let mine = mine["id"].as_str().unwrap().to_string();

    // Update.
    for body in [json!({"roles": ["ops"]}), json!({"permissions": ["tx.x"]})] {
        let (st, _) = as_(&s, &dev, Method::PATCH, &format!("/v1/keys/{mine}"), body).await;
        assert_eq!(st, 403);
    }
    // Rotate: "reader" grew beyond the developer's reach since the key was made.
    ok(&s, Method::PATCH, "/v1/roles/reader", json!({"permissions": ["wallet.read", "tx.create"]})).await;
    let (st, e) = as_(&s, &dev, Method::POST, &format!("/v1/keys/{mine}/rotate"), json!({})).await;
    assert_eq!(st, 403, "{e}");
    ok(&s, Method::PATCH, "/v1/roles/reader", json!({"permissions": ["wallet.read"]})).await;

    // Approval apply: allowed when asked, beyond reach by the time it is approved.
    s.policy(json!({"key.update": {"approvals": 1, "approver_roles": ["owner", "admin"]}})).await;
    ok(&s, Method::POST, "/v1/roles", json!({"name": "reader2", "permissions": ["wallet.read"]})).await;
    let (st, pending) = as_(&s, &dev, Method::PATCH, &format!("/v1/keys/{mine}"), json!({"roles": ["reader2"]})).await;
    assert_eq!((st, pending["status"].as_str()), (200, Some("pending_update")), "{pending}");
    let apr = pending["approval_id"].as_str().unwrap().to_string();
    ok(&s, Method::PATCH, "/v1/roles/reader2", json!({"permissions": ["wallet.read", "tx.*"]})).await;
    let otp = s.otp(admin.totp.as_ref().unwrap());
    let (st, e) = as_(&s, &admin, Method::POST, &format!("/v1/approvals/{apr}/approve"), json!({"otp": otp})).await;
    assert_eq!(st, 409, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("may no longer give"), "{e}");

    // Roles and service accounts: an admin restricted to wallet.* cannot define more.
    ok(&s, Method::PATCH, "/v1/roles/admin", json!({"permissions": ["wallet.*"]})).await;
    let (st, _) = as_(&s, &admin, Method::POST, "/v1/roles", json!({"name": "big", "permissions": ["*"]})).await;
    assert_eq!(st, 403);
    let (st, _) = as_(&s, &admin, Method::PATCH, "/v1/roles/ops", json!({"permissions": ["tx.*", "vault.*"]})).await;
    assert_eq!(st, 403);
    let (st, _) = as_(&s, &admin, Method::PATCH, "/v1/roles/owner", json!({"permissions": []})).await;
    assert_eq!(st, 403, "an admin cannot change the owner role");
    let (st, _) = as_(&s, &admin, Method::POST, "/v1/service-accounts", json!({"name": "x", "role": "ops"})).await;
    assert_eq!(st, 403);
    let (st, v) = as_(&s, &admin, Method::POST, "/v1/service-accounts", json!({"name": "y", "role": "reader"})).await;
    assert_eq!(st, 201, "{v}");
    // Developers manage neither roles nor service accounts.
    let (st, _) = as_(&s, &dev, Method::POST, "/v1/roles", json!({"name": "z", "permissions": []})).await;
    assert_eq!(st, 403);
    s.stop().await;
}

async fn role_update_under_approval(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", true).await;
    ok(&s, Method::POST, "/v1/roles", json!({"name": "reader", "permissions": ["wallet.read"]})).await;
    let (_, key) = s.create(json!({"name": "k", "roles": ["reader"]})).await;
    s.policy(json!({"role.update": {"approvals": 1, "approver_roles": ["owner", "admin"]}})).await;
    // Narrowing needs nobody.
    ok(&s, Method::PATCH, "/v1/roles/reader", json!({"description": "reads wallets"})).await;
    // Widening waits; the role keeps granting what it did.
    let r = ok(&s, Method::PATCH, "/v1/roles/reader", json!({"permissions": ["wallet.read", "tx.create"]})).await;
    let apr = r["approval_id"].as_str().expect("pending").to_string();
    assert_eq!(r["permissions"], json!(["wallet.read"]));
    assert_eq!(check(&s, &key, "tx.create", None).await, "INSUFFICIENT_PERMISSIONS");
    let (st, _) = s.call(Method::PATCH, "/v1/roles/reader", Some(json!({"permissions": []}))).await;
    assert_eq!(st, 409, "one change at a time");
    let otp = s.otp(admin.totp.as_ref().unwrap());
    let (st, v) = as_(&s, &admin, Method::POST, &format!("/v1/approvals/{apr}/approve"), json!({"otp": otp})).await;
    assert_eq!((st, v["status"].as_str(), v["action"].as_str()), (200, Some("approved"), Some("role.update")), "{v}");
    assert_eq!(check(&s, &key, "tx.create", None).await, "VALID");
    let (_, r) = s.call(Method::GET, "/v1/roles/reader", None).await;
    assert_eq!(
        (r["permissions"].clone(), r["description"].as_str()),
        (json!(["wallet.read", "tx.create"]), Some("reads wallets"))
    );
    s.stop().await;
}

async fn deleting_a_role_in_use(b: Backend) {
    let s = TestServer::start(b).await;
    ok(&s, Method::POST, "/v1/roles", json!({"name": "ops", "permissions": ["tx.*"]})).await;
    // A key names only roles that exist (one granting nothing serves as a label).
    ok(&s, Method::POST, "/v1/roles", json!({"name": "label", "permissions": []})).await;
    let (id, key) =
        s.create(json!({"name": "k", "roles": ["ops", "label"], "grants": [{"role": "ops", "scopes": ["a:*"]}]})).await;
    assert_eq!(check(&s, &key, "tx.run", Some("a:1")).await, "VALID");
    let (st, e) = s.call(Method::DELETE, "/v1/roles/ops", None).await;
    assert_eq!(st, 409, "{e}");
    let (st, _) = s.call(Method::DELETE, "/v1/roles/admin", None).await;
    assert_eq!(st, 409, "member roles stay");
    let r = s.http().delete(s.url("/v1/roles/ops?force=true")).bearer_auth(&s.management_key).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (_, k) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!((k["roles"].clone(), k["grants"].clone()), (json!(["label"]), json!([])));
    assert_eq!(check(&s, &key, "tx.run", Some("a:1")).await, "INSUFFICIENT_PERMISSIONS");
    let (st, _) = s.call(Method::GET, "/v1/roles/ops", None).await;
    assert_eq!(st, 404);
    s.stop().await;
}

async fn service_account_keys(b: Backend) {
    let s = TestServer::start(b).await;
    let other = s.second_node().await;
    ok(&s, Method::POST, "/v1/roles", json!({"name": "catalog-sync", "permissions": ["catalog.*"]})).await;
    let sa = ok(
        &s,
        Method::POST,
        "/v1/service-accounts",
        json!({"name": "magento", "role": "catalog-sync", "description": "the store's integration user"}),
    )
    .await;
    assert_eq!((sa["kind"].as_str(), sa["disabled"].as_bool()), (Some("service"), Some(false)));
    let sa_id = sa["id"].as_str().unwrap().to_string();
    let k = ok(&s, Method::POST, &format!("/v1/service-accounts/{sa_id}/keys"), json!({"name": "magento prod"})).await;
    assert_eq!(k["owner"], json!({"type": "service_account", "id": sa_id}));
    let key = k["secret"].as_str().unwrap().to_string();
    let key_id = k["id"].as_str().unwrap().to_string();
    let (_, own) = s.create(json!({"name": "a member's key"})).await;
    assert_eq!(check(&s, &key, "catalog.write", None).await, "VALID");
    assert_eq!(check(&other, &key, "catalog.write", None).await, "VALID");
    assert_eq!(s.verify(&key, json!({})).await["roles"], json!(["catalog-sync"]));
    let (_, list) = s.call(Method::GET, "/v1/keys", None).await;
    let owners: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|k| k["owner"]["type"].as_str().unwrap()).collect();
    assert!(owners.contains(&"service_account") && owners.contains(&"member"), "{owners:?}");
    let (_, sa) = s.call(Method::GET, &format!("/v1/service-accounts/{sa_id}"), None).await;
    assert_eq!(sa["keys"], 1);

    // Disabling stops every key of the account at once, on every node; enabling restarts them.
    // First the other node applies the creation's event and caches the key as valid, so
    // only the account's own event can change its answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(check(&other, &key, "catalog.write", None).await, "VALID");
    ok(&s, Method::PATCH, &format!("/v1/service-accounts/{sa_id}"), json!({"disabled": true})).await;
    assert_eq!(code(&s.verify(&key, json!({})).await), "DISABLED");
    let started = Instant::now();
    while code(&other.verify(&key, json!({})).await) != "DISABLED" {
        assert!(started.elapsed() < Duration::from_secs(1), "the other node still accepts a disabled account's key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(code(&s.verify(&own, json!({})).await), "VALID", "other keys are untouched");
    ok(&s, Method::PATCH, &format!("/v1/service-accounts/{sa_id}"), json!({"disabled": false})).await;
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID");

    // Deleting it revokes its keys.
    let (st, _) = s.call(Method::DELETE, &format!("/v1/service-accounts/{sa_id}"), None).await;
    assert_eq!(st, 204);
    assert_eq!(code(&s.verify(&key, json!({})).await), "REVOKED");
    let started = Instant::now();
    while code(&other.verify(&key, json!({})).await) != "REVOKED" {
        assert!(started.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, k) = s.call(Method::GET, &format!("/v1/keys/{key_id}"), None).await;
    assert_eq!(k["status"], "revoked");
    let (st, _) = s.call(Method::GET, &format!("/v1/service-accounts/{sa_id}"), None).await;
    assert_eq!(st, 404);
    // A role a service account holds cannot be deleted, even by force.
    let sa2 = ok(&s, Method::POST, "/v1/service-accounts", json!({"name": "ci", "role": "catalog-sync"})).await;
    let r = s
        .http()
        .delete(s.url("/v1/roles/catalog-sync?force=true"))
        .bearer_auth(&s.management_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let (st, e) =
        s.call(Method::POST, "/v1/service-accounts", Some(json!({"name": "ci", "role": "catalog-sync"}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (409, Some("name")));
    let (st, e) = s.call(Method::POST, "/v1/service-accounts", Some(json!({"name": "z", "role": "nope"}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("role")));
    assert!(sa2["id"].is_string());
    other.stop().await;
    s.stop().await;
}
