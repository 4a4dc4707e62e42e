//! Several workspaces in one database: each management route scoped to the caller's
//! workspace (another's objects answer 404 and never leak), and `keyward workspaces create`.

use keyward_core::OsRandom;
use keyward_server::bootstrap::{create_workspace, InitOptions};
use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(another_workspace_sees_nothing, governance_routes_are_scoped, workspaces_create_command);

async fn another_workspace_sees_nothing(b: Backend) {
    let s = TestServer::start(b).await;
    let opts =
        InitOptions { workspace_name: "beta".into(), prefix: "beta".into(), owner_email: "b@example.com".into() };
    let beta = create_workspace(&s.store, &s.pepper, s.clock.as_ref(), &OsRandom, &opts).await.unwrap();
    assert_ne!(beta.workspace_id, s.workspace_id);
    let h = s.http();
    let as_beta = |m: Method, path: &str, body: Option<Value>| {
        let mut rb = h.request(m, s.url(path)).bearer_auth(&beta.management_key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        async move {
            let r = rb.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (a_id, a_secret) = s.create(json!({"name": "alpha-secret-name", "environment": "live"})).await;
    // Every route that takes a key id: 404, the same answer as for an id that never existed.
    let routes = [
        (Method::GET, format!("/v1/keys/{a_id}"), None),
        (Method::PATCH, format!("/v1/keys/{a_id}"), Some(json!({"name": "taken over"}))),
        (Method::POST, format!("/v1/keys/{a_id}/revoke"), None),
        (Method::POST, format!("/v1/keys/{a_id}/rotate"), Some(json!({"grace_period": "0s"}))),
    ];
    for (m, path, body) in routes {
        let (st, v) = as_beta(m.clone(), &path, body.clone()).await;
        assert_eq!(st, 404, "{m} {path}: {v}");
        assert!(!v.to_string().contains("alpha-secret-name"));
        let (st_none, v_none) = as_beta(m.clone(), &path.replace(&a_id, "key_01AAAAAAAAAAAAAAAAAAAAAAAA"), body).await;
        assert_eq!((st_none, v_none["error"]["code"].clone()), (404, v["error"]["code"].clone()), "indistinguishable");
    }
    let (st, list) = as_beta(Method::GET, "/v1/keys?q=alpha", None).await;
    assert_eq!(st, 200);
    assert_eq!(list["items"], json!([]));
    let (_, list) = as_beta(Method::GET, "/v1/keys", None).await;
    assert_eq!(list["items"], json!([]));
    assert_eq!(code(&s.verify(&a_secret, json!({})).await), "VALID", "nothing beta did touched alpha's key");
    let (_, a_view) = s.call(Method::GET, &format!("/v1/keys/{a_id}"), None).await;
    assert_eq!(a_view["name"], "alpha-secret-name");

    // Beta's own keys carry its prefix; an idempotency key is per workspace.
    let idem = |mk: &str, name: &str| {
        h.post(s.url("/v1/keys"))
            .bearer_auth(mk)
            .header("Idempotency-Key", "same-key")
            .json(&json!({"name": name}))
            .send()
    };
    let ra: Value = idem(&s.management_key, "from-alpha").await.unwrap().json().await.unwrap();
    let rb = idem(&beta.management_key, "from-beta").await.unwrap();
    assert_eq!(rb.status(), 201);
    assert!(rb.headers().get("idempotent-replayed").is_none(), "not a replay of alpha's answer");
    let rb: Value = rb.json().await.unwrap();
    assert_ne!(ra["id"], rb["id"]);
    assert!(rb["secret"].as_str().unwrap().starts_with("beta_test_sk_"));
    let (_, alpha_list) = s.call(Method::GET, "/v1/keys", None).await;
    assert!(alpha_list["items"].as_array().unwrap().iter().all(|k| k["name"] != "from-beta"));
    s.stop().await;
}

/// Members, approvals and policies: another workspace's credentials see none of them.
async fn governance_routes_are_scoped(b: Backend) {
    let s = TestServer::start(b).await;
    let opts =
        InitOptions { workspace_name: "beta".into(), prefix: "beta".into(), owner_email: "b@example.com".into() };
    let beta = create_workspace(&s.store, &s.pepper, s.clock.as_ref(), &OsRandom, &opts).await.unwrap();
    let admin = s.member("admin", true).await;
    s.policy(json!({"key.create": {"approvals": 1}, "temporary_max_days": 9})).await;
    let (_, k) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "alpha-pending"}))).await;
    let apr = k["approval_id"].as_str().unwrap().to_string();
    // Beta's owner has MFA too, so a refusal cannot be blamed on a missing code.
    let beta_totp = s.enrol(&beta.management_key).await;

    let routes = [
        (Method::GET, format!("/v1/members/{}", admin.id), None),
        (Method::PATCH, format!("/v1/members/{}", admin.id), Some(json!({"role": "viewer"}))),
        (Method::DELETE, format!("/v1/members/{}", admin.id), None),
        (Method::GET, format!("/v1/approvals/{apr}"), None),
        (Method::POST, format!("/v1/approvals/{apr}/approve"), Some(json!({"otp": s.otp(&beta_totp)}))),
        (Method::POST, format!("/v1/approvals/{apr}/reject"), Some(json!({"otp": s.otp(&beta_totp)}))),
        (Method::POST, format!("/v1/approvals/{apr}/cancel"), None),
    ];
    for (m, path, body) in routes {
        let (st, v) = s.call_as(&beta.management_key, m.clone(), &path, body).await;
        assert_eq!(st, 404, "{m} {path}: {v}");
        assert!(!v.to_string().contains("admin-"), "{v}");
    }
    let (_, members) = s.call_as(&beta.management_key, Method::GET, "/v1/members", None).await;
    assert_eq!(members["items"].as_array().unwrap().len(), 1, "only beta's owner");
    let (_, approvals) = s.call_as(&beta.management_key, Method::GET, "/v1/approvals", None).await;
    assert_eq!(approvals["items"], json!([]));
    let (_, policy) = s.call_as(&beta.management_key, Method::GET, "/v1/policies", None).await;
    assert_eq!(
        (policy["temporary_max_days"].as_u64(), policy["key.create"]["approvals"].as_u64()),
        (Some(30), Some(0))
    );
    // Alpha's request and member are untouched; an alpha member cannot log in to beta.
    let (_, a) = s.call(Method::GET, &format!("/v1/approvals/{apr}"), None).await;
    assert_eq!(a["status"], "pending");
    let (_, m) = s.call(Method::GET, &format!("/v1/members/{}", admin.id), None).await;
    assert_eq!(m["role"], "admin");
    let body = json!({"email": admin.email, "password": admin.password, "workspace_id": beta.workspace_id});
    let r = s.http().post(s.url("/v1/sessions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

async fn workspaces_create_command(b: Backend) {
    let db = keyward_testkit::TestDb::new(&b).await;
    let data = db.dir.path().join("data");
    let mut storage = vec!["--data-dir".to_string(), data.display().to_string()];
    if db.is_postgres() {
        storage.extend(["--database-url".to_string(), db.url.clone()]);
    }
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(args)
            .args(&storage)
            .env_remove("KEYWARD_PEPPER")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let first = run(&["init", "--json"]);
    let second = run(&["workspaces", "create", "--name", "beta", "--prefix", "beta", "--json"]);
    assert_ne!(first["workspace_id"], second["workspace_id"]);
    let mk = second["management_key"].as_str().unwrap();
    assert!(mk.starts_with("beta_mk_"));
    // The new key authenticates as the new workspace, under the data dir's pepper.
    let pepper =
        keyward_core::pepper::Pepper::from_hex(&std::fs::read_to_string(data.join("pepper")).unwrap()).unwrap();
    let url = if db.is_postgres() { db.url.clone() } else { keyward_store::sqlite_url(&data) };
    let store = keyward_store::Store::connect(&url).await.unwrap();
    let p = store.principal_by_hash(&pepper.hash(mk), chrono::Utc::now()).await.unwrap().expect("the key is known");
    assert_eq!(p.workspace_id, second["workspace_id"].as_str().unwrap());
    assert_eq!((p.role.as_str(), p.prefix.as_str()), ("owner", "beta"));
    store.close().await;
    db.drop_db().await;
}
