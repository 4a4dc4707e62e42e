//! The operator's API (docs/OPERATORS.md): a workspace provisioned, its owner setting a
//! password and making a key; lists with key counts and status; a suspension reaching every
//! verification surface (verify, forward-auth, Envoy's gRPC ext_authz, the gateway, `/v2`)
//! and a second node within a second, members kept to reading, webhooks told, then lifted;
//! credentials kept to their side; bad input named; a deletion refused with live keys,
//! forced, and erased in the background with the audit checkpoint kept; a revoked operator
//! token refused; no secret stored in clear; `keyward operator-tokens`.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use keyward_core::{OsRandom, SystemClock};
use keyward_testkit::{code, Backend, TestDb, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::{storage, Serve, User};
use crate::gateway::{recording_upstream, start_gateway};
use crate::webhooks::Receiver;

on_both_backends!(
    a_provisioned_owner_signs_in_and_makes_keys,
    a_suspension_reaches_every_surface_and_node,
    credentials_stay_on_their_side,
    bad_input_is_named,
    a_deletion_waits_for_force_then_erases,
    the_cli_makes_lists_and_revokes_operator_tokens,
);

/// A call with the operator token.
async fn op(s: &TestServer, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    s.call_as(&s.operator_token, method, path, body).await
}

/// A workspace provisioned for `email`, its owner's password set with the setup token and a
/// session signed in: (workspace id, session token).
async fn provision(s: &TestServer, name: &str, email: &str) -> (String, String) {
    let (st, v) = op(s, Method::POST, "/v1/workspaces", Some(json!({"name": name, "owner_email": email}))).await;
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let setup = v["owner"]["setup_token"].as_str().unwrap();
    let password = "correct horse operator battery";
    let (st, m) = s
        .call_as("", Method::POST, "/v1/members/setup", Some(json!({"setup_token": setup, "password": password})))
        .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!((m["role"].as_str(), m["status"].as_str()), (Some("owner"), Some("active")), "{m}");
    let session = s.login(email, password, None).await;
    (id, session)
}

/// Polls `f` until it answers `want`, for at most a second (another node, or the gateway,
/// hears of the change through its change event).
async fn within_a_second<F, Fut>(what: &str, want: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let started = Instant::now();
    loop {
        let got = f().await;
        if got == want {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "{what}: still {got}, not {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /v1/auth` with `key`: the status and the `X-Keyward-Code`.
async fn forward_auth(s: &TestServer, key: &str) -> String {
    let r = s.http().get(s.url("/v1/auth")).header("X-API-Key", key).send().await.unwrap();
    let code = r.headers().get("x-keyward-code").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    format!("{} {code}", r.status().as_u16())
}

/// Lines of the operator log (and ids) made in one millisecond sort in no set order: each
/// test step that a test orders by runs a millisecond (here, a second) after the one before.
fn tick(s: &TestServer) {
    s.clock.advance(chrono::Duration::seconds(1));
}

async fn a_provisioned_owner_signs_in_and_makes_keys(b: Backend) {
    let s = TestServer::start(b).await;
    tick(&s);
    let (st, v) = op(
        &s,
        Method::POST,
        "/v1/workspaces",
        Some(json!({"name": "Acme", "prefix": "acme", "owner_email": "Boss@Acme.example"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!((v["name"].as_str(), v["prefix"].as_str()), (Some("Acme"), Some("acme")), "{v}");
    assert_eq!(v["owner"]["email"], "boss@acme.example", "kept as logins look it up");
    let setup = v["owner"]["setup_token"].as_str().unwrap().to_string();
    assert!(setup.starts_with("acme_setup_"), "{setup}");
    // The owner sets a password with it, as an invited member does; it works once.
    let password = "correct horse acme battery";
    let body = json!({"setup_token": setup, "password": password});
    let (st, m) = s.call_as("", Method::POST, "/v1/members/setup", Some(body.clone())).await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["id"], v["owner"]["member_id"]);
    let (st, _) = s.call_as("", Method::POST, "/v1/members/setup", Some(body)).await;
    assert_eq!(st, 400, "a setup token works once");
    let session = s.login("boss@acme.example", password, None).await;
    let (st, me) = s.call_as(&session, Method::GET, "/v1/members/me", None).await;
    assert_eq!((st, me["role"].as_str()), (200, Some("owner")), "{me}");
    let (st, k) = s.call_as(&session, Method::POST, "/v1/keys", Some(json!({"name": "first"}))).await;
    assert_eq!(st, 201, "{k}");
    let secret = k["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("acme_test_sk_"), "{secret}");
    let ans = s.verify(&secret, json!({})).await;
    assert_eq!((code(&ans), ans["workspace_id"].as_str()), ("VALID", Some(id.as_str())), "{ans}");
    // Its keys are its own: the first workspace's key does not see them.
    let (_, keys) = s.call(Method::GET, "/v1/keys", None).await;
    assert!(!keys.to_string().contains(&id), "{keys}");

    // Listed with its key counts and status, page by page.
    let (st, r) = s.call_as(&session, Method::POST, "/v1/keys", Some(json!({"name": "gone"}))).await;
    assert_eq!(st, 201);
    let (st, _) =
        s.call_as(&session, Method::POST, &format!("/v1/keys/{}/revoke", r["id"].as_str().unwrap()), None).await;
    assert_eq!(st, 200);
    let (st, page) = op(&s, Method::GET, "/v1/workspaces?limit=1", None).await;
    assert_eq!(st, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], s.workspace_id.as_str(), "oldest first");
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, next) = op(&s, Method::GET, &format!("/v1/workspaces?limit=1&cursor={cursor}"), None).await;
    let acme = &next["items"][0];
    assert_eq!(acme["id"], id.as_str(), "{next}");
    assert_eq!((acme["status"].as_str(), &acme["keys"]), (Some("active"), &json!({"live": 1, "total": 2})), "{acme}");
    assert!(next["next_cursor"].is_null(), "{next}");
    let (_, active) = op(&s, Method::GET, "/v1/workspaces?status=active", None).await;
    assert_eq!(active["items"].as_array().unwrap().len(), 2);
    let (_, none) = op(&s, Method::GET, "/v1/workspaces?status=suspended", None).await;
    assert!(none["items"].as_array().unwrap().is_empty(), "{none}");

    // One read, one rename.
    let (st, one) = op(&s, Method::GET, &format!("/v1/workspaces/{id}"), None).await;
    assert_eq!((st, one["name"].as_str()), (200, Some("Acme")), "{one}");
    tick(&s);
    let (st, renamed) =
        op(&s, Method::PATCH, &format!("/v1/workspaces/{id}"), Some(json!({"name": "Acme Corp"}))).await;
    assert_eq!((st, renamed["name"].as_str()), (200, Some("Acme Corp")), "{renamed}");
    let (st, _) = op(&s, Method::GET, "/v1/workspaces/ws_01NOSUCHWORKSPACE0000000000", None).await;
    assert_eq!(st, 404);

    // On the workspace's own record, by the operator, and in the operator log.
    let (_, events) = s.call_as(&session, Method::GET, "/v1/audit?action=workspace.*", None).await;
    let actions: Vec<&str> =
        events["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["workspace.update", "workspace.create"], "{events}");
    assert_eq!(events["items"][0]["actor"]["type"], "operator", "{events}");
    let (st, log) = op(&s, Method::GET, &format!("/v1/operator/log?workspace_id={id}"), None).await;
    assert_eq!(st, 200, "{log}");
    let logged: Vec<&str> = log["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(logged, ["workspace.update", "workspace.create"], "{log}");
    assert_eq!(log["items"][0]["actor"]["type"], "operator");
    let (_, all) = op(&s, Method::GET, "/v1/operator/log?limit=1", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    assert!(all["next_cursor"].is_string(), "init's token is logged too: {all}");
    let (st, verified) = s.call_as(&session, Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((st, verified["ok"].as_bool()), (200, Some(true)), "{verified}");

    // No secret in clear: not the operator token, the setup token or the key.
    assert!(!log.to_string().contains(&setup) && !events.to_string().contains(&setup));
    let raw = keyward_testkit::files_under(s.db.dir.path());
    for secret in [&s.operator_token, &setup, &secret] {
        let tail = &secret[secret.len() - 20..];
        assert!(raw.iter().all(|(_, b)| !keyward_testkit::contains(b, tail)), "a secret stored in clear");
    }
    s.stop().await;
}

async fn a_suspension_reaches_every_surface_and_node(b: Backend) {
    let config = keyward_server::ServerConfig {
        ext_authz_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..keyward_testkit::test_config()
    };
    let s = TestServer::start_with(b, config).await;
    let ext_authz = s.server.as_ref().unwrap().ext_authz_addr.expect("the ext_authz listener");
    let mut envoy = AuthorizationClient::connect(format!("http://{ext_authz}")).await.unwrap();
    let check = |key: &str| crate::ext_authz::request("GET", "/api/x", &[("x-api-key", key)], b"", &[]);
    let other = s.second_node().await;
    let (up, seen, up_task) = recording_upstream().await;
    let gw = start_gateway(&s, &up, 1024).await;
    let (h, gw_url) = (reqwest::Client::new(), format!("http://{}/v2/x", gw.addr));
    let through_gateway = |key: String| {
        let (h, url) = (h.clone(), gw_url.clone());
        async move {
            let r = h.get(url).header("X-API-Key", key).send().await.unwrap();
            let code = r.headers().get("x-keyward-code").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            format!("{} {code}", r.status().as_u16())
        }
    };
    let receiver = Receiver::start(&[]).await;
    let (st, hook) = s
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": receiver.url("/hook"), "events": ["workspace.suspended", "workspace.resumed"]})),
        )
        .await;
    assert_eq!(st, 201, "{hook}");
    let (key_id, key) = s.create(json!({"name": "svc"})).await;
    let viewer = s.member("viewer", false).await;
    // A workspace beside it, untouched by the suspension.
    let (_, bystander_session) = provision(&s, "Bystander", "bystander@example.com").await;
    let (_, by) = s.call_as(&bystander_session, Method::POST, "/v1/keys", Some(json!({"name": "b"}))).await;
    let bystander = by["secret"].as_str().unwrap().to_string();
    let (other_ref, key_ref) = (&other, &key);
    let on_other = move || async move { code(&other_ref.verify(key_ref, json!({})).await).to_string() };
    // Every node caches the key as valid first, so only the suspension's event can change it.
    assert_eq!(on_other().await, "VALID");
    assert_eq!(through_gateway(key.clone()).await, "201 VALID");
    assert_eq!(forward_auth(&s, &key).await, "200 VALID");
    assert_eq!(crate::ext_authz::call(&mut envoy, check(&key)).await.status, 200);

    let path = format!("/v1/workspaces/{}", s.workspace_id);
    let (st, v) = op(&s, Method::POST, &format!("{path}/suspend"), Some(json!({"reason": "unpaid invoice"}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["status"].as_str(), v["suspend_reason"].as_str()), (Some("suspended"), Some("unpaid invoice")));
    // This node at once, on every surface.
    let ans = s.verify(&key, json!({})).await;
    assert_eq!(
        (ans["valid"].as_bool(), code(&ans), ans["key_id"].as_str()),
        (Some(false), "SUSPENDED", Some(&*key_id))
    );
    assert_eq!(forward_auth(&s, &key).await, "403 SUSPENDED");
    let denied = crate::ext_authz::call(&mut envoy, check(&key)).await;
    assert_eq!((denied.status, denied.code()), (403, "SUSPENDED"), "Envoy's ext_authz");
    let (st, v2) = crate::unkey_v2::v2(&s, "keys.verifyKey", json!({"key": key})).await;
    assert_eq!((st, v2["data"]["valid"].as_bool(), v2["data"]["code"].as_str()), (200, Some(false), Some("FORBIDDEN")));
    // The gateway and the other node within a second; nothing reaches the upstream.
    within_a_second("the gateway", "403 SUSPENDED", || through_gateway(key.clone())).await;
    let before = seen.lock().unwrap().len();
    assert_eq!(through_gateway(key.clone()).await, "403 SUSPENDED");
    assert_eq!(seen.lock().unwrap().len(), before, "nothing reaches the upstream");
    within_a_second("the second node", "SUSPENDED", on_other).await;
    assert_eq!(code(&other.verify(&bystander, json!({})).await), "VALID", "another workspace's keys are untouched");
    // A key made uncached (new to the node) is cached as suspended too.
    let third = s.second_node().await;
    assert_eq!(code(&third.verify(&key, json!({})).await), "SUSPENDED");

    // Members read, and change nothing; signing out still works.
    for who in [&s.management_key, &viewer.token] {
        let (st, _) = s.call_as(who, Method::GET, "/v1/keys", None).await;
        assert_eq!(st, 200, "reads work");
    }
    let (st, e) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "more"}))).await;
    assert_eq!((st, e["error"]["code"].as_str()), (403, Some("workspace_suspended")), "{e}");
    let (st, e) = s.call(Method::PATCH, &format!("/v1/keys/{key_id}"), Some(json!({"name": "x"}))).await;
    assert_eq!((st, e["error"]["code"].as_str()), (403, Some("workspace_suspended")), "{e}");
    let (st, e) =
        other.call(Method::POST, "/v1/members", Some(json!({"email": "x@example.com", "role": "viewer"}))).await;
    assert_eq!((st, e["error"]["code"].as_str()), (403, Some("workspace_suspended")), "every node: {e}");
    let (st, e) = crate::unkey_v2::v2(&s, "keys.createKey", json!({"apiId": s.workspace_id})).await;
    assert_eq!(st, 403, "/v2 changes too: {e}");
    let (st, _) = s.call_as(&viewer.token, Method::DELETE, "/v1/sessions/current", None).await;
    assert_eq!(st, 204, "signing out is allowed");
    let (st, v) = op(&s, Method::POST, &format!("{path}/suspend"), Some(json!({"reason": "again"}))).await;
    assert_eq!(st, 409, "{v}");
    let (_, list) = op(&s, Method::GET, "/v1/workspaces?status=suspended", None).await;
    assert_eq!(list["items"][0]["id"], s.workspace_id.as_str(), "{list}");

    // Lifted: valid again, everywhere.
    tick(&s);
    let (st, v) = op(&s, Method::POST, &format!("{path}/resume"), None).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("active")), "{v}");
    assert!(v.get("suspend_reason").is_none(), "{v}");
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID");
    assert_eq!(forward_auth(&s, &key).await, "200 VALID");
    assert_eq!(crate::ext_authz::call(&mut envoy, check(&key)).await.status, 200);
    within_a_second("the gateway", "201 VALID", || through_gateway(key.clone())).await;
    within_a_second("the second node", "VALID", on_other).await;
    let (third_ref, key_ref) = (&third, &key);
    within_a_second("the third node", "VALID", move || async move {
        code(&third_ref.verify(key_ref, json!({})).await).to_string()
    })
    .await;
    let (st, _) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "more"}))).await;
    assert_eq!(st, 201, "changes work again");
    let (st, v) = op(&s, Method::POST, &format!("{path}/resume"), None).await;
    assert_eq!(st, 409, "not suspended: {v}");

    // Its webhooks were told, each once; its chain and the operator log record both.
    let got = receiver.wait_for(2).await;
    let types: Vec<Value> = got.iter().map(|g| g.json()["type"].clone()).collect();
    assert_eq!(types, [json!("workspace.suspended"), json!("workspace.resumed")], "{types:?}");
    assert_eq!(got[0].json()["data"]["changes"]["reason"], "unpaid invoice", "{}", got[0].json());
    let (_, events) = s.call(Method::GET, "/v1/audit?action=workspace.*", None).await;
    let actions: Vec<&str> =
        events["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions[..2], ["workspace.resume", "workspace.suspend"], "{events}");
    let (_, log) = op(&s, Method::GET, &format!("/v1/operator/log?workspace_id={}", s.workspace_id), None).await;
    let logged: Vec<&str> = log["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(logged, ["workspace.resume", "workspace.suspend"], "{log}");

    up_task.abort();
    gw.stop().await.unwrap();
    third.stop().await;
    other.stop().await;
    s.stop().await;
}

async fn credentials_stay_on_their_side(b: Backend) {
    let s = TestServer::start(b).await;
    let member = s.member("owner", false).await;
    let (_, secret) = s.create(json!({"name": "k"})).await;
    let (st, vt) = s.call(Method::POST, "/v1/verify-tokens", Some(json!({"name": "gw"}))).await;
    assert_eq!(st, 201, "{vt}");
    let verify_token = vt["token"].as_str().unwrap().to_string();
    // A workspace's credentials never reach the operator's routes, however high its role.
    for (what, cred) in [
        ("management key", &s.management_key),
        ("session", &member.token),
        ("verify token", &verify_token),
        ("API key", &secret),
    ] {
        for (method, path) in [
            (Method::GET, "/v1/workspaces".to_string()),
            (Method::POST, "/v1/workspaces".to_string()),
            (Method::POST, format!("/v1/workspaces/{}/suspend", s.workspace_id)),
            (Method::DELETE, format!("/v1/workspaces/{}?force=true", s.workspace_id)),
            (Method::GET, "/v1/operator/log".to_string()),
        ] {
            let body =
                (method == Method::POST).then(|| json!({"name": "x", "owner_email": "x@example.com", "reason": "x"}));
            let (st, v) = s.call_as(cred, method.clone(), &path, body).await;
            assert_eq!(st, 403, "{what} on {method} {path}: {v}");
        }
    }
    // And an operator token never reaches a workspace's.
    for (method, path) in [(Method::GET, "/v1/keys"), (Method::POST, "/v1/keys"), (Method::GET, "/v1/members/me")] {
        let (st, v) = s.call_as(&s.operator_token, method.clone(), path, Some(json!({"name": "x"}))).await;
        assert_eq!(st, 403, "operator token on {method} {path}: {v}");
    }
    let (st, v, _) =
        crate::unkey_v2::v2_as(&s, &s.operator_token, "keys.createKey", json!({"apiId": s.workspace_id}), &[]).await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(code(&s.verify(&s.operator_token, json!({})).await), "MALFORMED", "an operator token is no API key");
    // No credential, a made-up one, and a revoked one: 401.
    let (st, _) = s.call_as("", Method::GET, "/v1/workspaces", None).await;
    assert_eq!(st, 401);
    let (st, _) = s.call_as("kw_op_made-up", Method::GET, "/v1/workspaces", None).await;
    assert_eq!(st, 401);
    let store = &s.store;
    let (t, token) = keyward_server::bootstrap::create_operator_token(store, &s.pepper, &SystemClock, &OsRandom, "ci")
        .await
        .unwrap();
    let (st, _) = s.call_as(&token, Method::GET, "/v1/workspaces", None).await;
    assert_eq!(st, 200, "a new token works");
    tick(&s);
    keyward_server::bootstrap::revoke_operator_token(store, &SystemClock, &OsRandom, &t.id).await.unwrap().unwrap();
    let (st, v) = s.call_as(&token, Method::GET, "/v1/workspaces", None).await;
    assert_eq!(st, 401, "revoked: {v}");
    let (st, v) = s.second_node().await.call_as(&token, Method::GET, "/v1/workspaces", None).await;
    assert_eq!(st, 401, "revoked on every node: {v}");
    let (_, log) = op(&s, Method::GET, "/v1/operator/log", None).await;
    let logged: Vec<&str> = log["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(logged[..2], ["operator_token.revoke", "operator_token.create"], "{log}");
    s.stop().await;
}

async fn bad_input_is_named(b: Backend) {
    let s = TestServer::start(b).await;
    let ws = format!("/v1/workspaces/{}", s.workspace_id);
    for (method, path, body, field) in [
        (Method::POST, "/v1/workspaces".to_string(), json!({"name": " ", "owner_email": "a@b.example"}), "name"),
        (
            Method::POST,
            "/v1/workspaces".to_string(),
            json!({"name": "x".repeat(65), "owner_email": "a@b.example"}),
            "name",
        ),
        (Method::POST, "/v1/workspaces".to_string(), json!({"name": "n\u{7}", "owner_email": "a@b.example"}), "name"),
        (
            Method::POST,
            "/v1/workspaces".to_string(),
            json!({"name": "n", "prefix": "9x", "owner_email": "a@b.example"}),
            "prefix",
        ),
        (
            Method::POST,
            "/v1/workspaces".to_string(),
            json!({"name": "n", "prefix": "a_b", "owner_email": "a@b.example"}),
            "prefix",
        ),
        (Method::POST, "/v1/workspaces".to_string(), json!({"name": "n", "owner_email": "nobody"}), "owner_email"),
        (Method::POST, "/v1/workspaces".to_string(), json!({"name": "n"}), "owner_email"),
        (
            Method::POST,
            "/v1/workspaces".to_string(),
            json!({"name": "n", "owner_email": "a@b.example", "plan": "x"}),
            "plan",
        ),
        (Method::POST, "/v1/workspaces".to_string(), json!({"name": 7, "owner_email": "a@b.example"}), "name"),
        (Method::PATCH, ws.clone(), json!({"name": ""}), "name"),
        (Method::PATCH, ws.clone(), json!({"prefix": "other"}), "prefix"),
        (Method::POST, format!("{ws}/suspend"), json!({"reason": ""}), "reason"),
        (Method::POST, format!("{ws}/suspend"), json!({"reason": "r".repeat(501)}), "reason"),
        (Method::POST, format!("{ws}/suspend"), json!({}), "reason"),
        (Method::DELETE, format!("{ws}?force=yes"), Value::Null, "force"),
        (Method::GET, "/v1/workspaces?status=gone".to_string(), Value::Null, "status"),
        (Method::GET, "/v1/workspaces?limit=0".to_string(), Value::Null, "limit"),
        (Method::GET, "/v1/workspaces?cursor=key_1".to_string(), Value::Null, "cursor"),
        (Method::GET, "/v1/operator/log?cursor=ws_1".to_string(), Value::Null, "cursor"),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (st, v) = op(&s, method.clone(), &path, body).await;
        assert_eq!((st, v["error"]["field"].as_str()), (400, Some(field)), "{method} {path}: {v}");
    }
    // Nothing was changed by any of them.
    let (_, list) = op(&s, Method::GET, "/v1/workspaces", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["items"][0]["status"], "active");
    for path in ["/v1/workspaces/nope/suspend", "/v1/workspaces/nope/resume"] {
        let (st, _) = op(&s, Method::POST, path, Some(json!({"reason": "r"}))).await;
        assert_eq!(st, 404, "{path}");
    }
    let (st, _) = op(&s, Method::DELETE, "/v1/workspaces/nope", None).await;
    assert_eq!(st, 404);
    s.stop().await;
}

async fn a_deletion_waits_for_force_then_erases(b: Backend) {
    let s = TestServer::start(b).await;
    let other = s.second_node().await;
    let (id, session) = provision(&s, "Doomed", "doomed@example.com").await;
    let (_, k) = s.call_as(&session, Method::POST, "/v1/keys", Some(json!({"name": "live"}))).await;
    let key = k["secret"].as_str().unwrap().to_string();
    let (st, hook) = s
        .call_as(&session, Method::POST, "/v1/webhooks", Some(json!({"url": "http://127.0.0.1:9/x", "events": ["*"]})))
        .await;
    assert_eq!(st, 201, "{hook}");
    let (_, mine) = s.create(json!({"name": "survivor"})).await;
    assert_eq!(code(&other.verify(&key, json!({})).await), "VALID");

    // Refused while it has a live key; nothing changes.
    let (st, v) = op(&s, Method::DELETE, &format!("/v1/workspaces/{id}"), None).await;
    assert_eq!((st, v["error"]["field"].as_str()), (409, Some("force")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("1 live keys"), "{v}");
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID");

    // Forced: answered at once; its keys are gone and its credentials refused, everywhere,
    // while its rows are all still there (this node's erasure is held back meanwhile; the
    // other's sweeps run at its start and every 30 s).
    let hold = s.server.as_ref().unwrap().state.erasures.lock().await;
    let (st, v) = op(&s, Method::DELETE, &format!("/v1/workspaces/{id}?force=true"), None).await;
    assert_eq!((st, v["status"].as_str()), (202, Some("deleted")), "{v}");
    assert!(v["deleted_at"].is_string(), "{v}");
    assert_eq!(code(&s.verify(&key, json!({})).await), "NOT_FOUND");
    within_a_second("the second node", "NOT_FOUND", || async {
        code(&other.verify(&key, json!({})).await).to_string()
    })
    .await;
    let (st, _) = s.call_as(&session, Method::GET, "/v1/keys", None).await;
    assert_eq!(st, 401, "its sessions are dead");
    let (st, _) = s.try_login("doomed@example.com", "correct horse operator battery", None).await;
    assert_eq!(st, 401, "nobody signs in to it");
    let (st, v) = op(&s, Method::DELETE, &format!("/v1/workspaces/{id}?force=true"), None).await;
    assert_eq!(st, 409, "deleted already: {v}");
    let (st, v) = op(&s, Method::POST, &format!("/v1/workspaces/{id}/suspend"), Some(json!({"reason": "r"}))).await;
    assert_eq!(st, 409, "{v}");
    let (_, v) = op(&s, Method::GET, &format!("/v1/workspaces/{id}"), None).await;
    assert_eq!((v["keys"]["total"].as_u64(), v.get("erased_at")), (Some(1), None), "not erased yet: {v}");
    drop(hold);

    // Erased in the background: its row stays, marked, with no key left.
    let started = Instant::now();
    let erased = loop {
        let (_, v) = op(&s, Method::GET, &format!("/v1/workspaces/{id}"), None).await;
        if v["erased_at"].is_string() {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not erased: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(erased["keys"], json!({"live": 0, "total": 0}), "{erased}");
    assert_eq!(code(&other.verify(&key, json!({})).await), "NOT_FOUND");
    assert!(s.store.list_members(&id, None, 10).await.unwrap().is_empty());
    // Erasing again (a retry after a failure) changes nothing and records nothing more.
    let now = keyward_core::Clock::now(s.clock.as_ref());
    assert_eq!(s.store.erase_workspace(&id, "opl_01RETRY0000000000000000000", now).await.unwrap(), 0);
    // The audit chain keeps its end: the checkpoint and the event naming it, and verifies.
    let kept = s.store.list_audit(&id, &keyward_store::AuditFilter { limit: 10, ..Default::default() }).await.unwrap();
    let kept: Vec<&str> = kept.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(kept, ["audit.prune"]);
    let (seq, _) = s.store.audit_checkpoint(&id).await.unwrap().expect("a checkpoint is kept");
    assert!(seq >= 4, "create, key, webhook, delete: {seq}");
    let check = s.store.verify_audit(&id).await.unwrap();
    assert!(matches!(check, keyward_core::audit::ChainCheck::Intact { ok: true, events: 1, .. }), "{check:?}");
    let (_, log) = op(&s, Method::GET, &format!("/v1/operator/log?workspace_id={id}"), None).await;
    let items = log["items"].as_array().unwrap();
    let line = |a: &str| items.iter().find(|e| e["action"] == a).unwrap_or_else(|| panic!("no {a}: {log}")).clone();
    assert_eq!(items.len(), 3, "{log}");
    assert_eq!(line("workspace.delete")["changes"], json!({"force": true, "live_keys": 1}), "{log}");
    assert_eq!(line("workspace.erased")["actor"]["type"], "system", "{log}");
    assert_eq!(line("workspace.create")["actor"]["type"], "operator", "{log}");
    // The other workspace goes on.
    assert_eq!(code(&s.verify(&mine, json!({})).await), "VALID");
    let (_, deleted) = op(&s, Method::GET, "/v1/workspaces?status=deleted", None).await;
    assert_eq!(deleted["items"].as_array().unwrap().len(), 1, "{deleted}");

    other.stop().await;
    s.stop().await;
}

async fn the_cli_makes_lists_and_revokes_operator_tokens(b: Backend) {
    let db = TestDb::new(&b).await;
    let data = db.dir.path().join("data");
    let user = User::new();
    let st = storage(&db, &data);
    let with =
        |args: &[&str]| -> Vec<String> { args.iter().map(|a| a.to_string()).chain(st.iter().cloned()).collect() };
    let run = |args: Vec<String>| user.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let json = |args: Vec<String>| -> Value {
        let out = user.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
    };
    // Before init there is nothing to make operators of.
    let o = run(with(&["operator-tokens", "create"]));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not initialised"), "{o:?}");

    let init = json(with(&["init", "--json"]));
    let first = init["operator_token"].as_str().unwrap().to_string();
    assert!(first.starts_with("kw_op_"), "{init}");
    let made = json(with(&["operator-tokens", "create", "--name", "billing automation", "--json"]));
    let (id, second) = (made["id"].as_str().unwrap().to_string(), made["token"].as_str().unwrap().to_string());
    assert!(second.starts_with("kw_op_") && second != first, "{made}");
    assert_eq!(made["start"].as_str(), Some(&second[..10]));
    let listed = json(with(&["operator-tokens", "list", "--json"]));
    let names: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["first operator token", "billing automation"], "{listed}");
    assert!(!listed.to_string().contains(&second[10..]), "never the secret: {listed}");
    let text = user
        .ok(&with(&["operator-tokens", "create", "--name", "spare"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(text.contains("shown once") && text.contains("kw_op_"), "{text}");

    let s = Serve::spawn(&st, &[]);
    let h = reqwest::Client::new();
    let workspaces = |token: String| {
        let (h, url) = (h.clone(), format!("{}/v1/workspaces", s.url()));
        async move { h.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(workspaces(first.clone()).await, 200);
    assert_eq!(workspaces(second.clone()).await, 200);
    let revoked = json(with(&["operator-tokens", "revoke", &id, "--json"]));
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert_eq!(workspaces(second).await, 401, "revoked: refused at once");
    assert_eq!(workspaces(first).await, 200, "the others still work");
    let o = run(with(&["operator-tokens", "revoke", &id]));
    assert!(!o.status.success(), "revoked already");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no live operator token"), "{o:?}");
    let table = user.ok(&with(&["operator-tokens", "list"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(table.contains("revoked") && table.contains("billing automation"), "{table}");
    drop(s);

    // The first `serve` on an empty data dir prints one too.
    let fresh = TestDb::new(&Backend::Sqlite).await;
    let s = Serve::spawn(&storage(&fresh, &fresh.dir.path().join("data")), &[]);
    assert!(s.log().contains("Operator token (shown once") && s.log().contains("kw_op_"), "{}", s.log());
    drop(s);
    db.drop_db().await;
}
