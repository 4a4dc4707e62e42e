//! Disabling a key (`PATCH /v1/keys/{id} {"enabled": false}`): `DISABLED` on every
//! verification surface and every node at once, enabled again just as fast; a key update in
//! governance and audit; counted like any code; distinct from revocation.

use std::time::{Duration, Instant};

use keyward_core::signing::Algorithm;
use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::gateway::{recording_upstream, start_gateway};
use crate::signed_requests::{check, register, signed};

on_both_backends!(
    disabled_everywhere_and_enabled_again,
    disabled_keys_rotate_revoke_and_count,
    disabling_waits_for_approval,
    disable_from_the_command_line,
    disable_from_the_console
);

async fn patch(s: &TestServer, id: &str, body: Value) -> Value {
    let (st, v) = s.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(body)).await;
    assert_eq!(st, 200, "{v}");
    v
}

/// Polls `f` until it answers `want`, for at most a second (another node hears of changes
/// through change events).
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
async fn forward_auth(s: &TestServer, key: &str) -> (u16, String) {
    let r = s.http().get(s.url("/v1/auth")).header("X-API-Key", key).send().await.unwrap();
    let code = r.headers().get("x-keyward-code").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let status = r.status().as_u16();
    if status != 200 {
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["verification_code"], code.as_str(), "{v}");
    }
    (status, code)
}

async fn disabled_everywhere_and_enabled_again(b: Backend) {
    let s = TestServer::start(b).await;
    let other = s.second_node().await;
    let (up, seen, up_task) = recording_upstream().await;
    let gw = start_gateway(&s, &up, 1024).await;
    let (h, gw_url) = (reqwest::Client::new(), format!("http://{}/v2/x", gw.addr));
    // The gateway's status and, for a refusal, its code.
    let through_gateway = |key: String| {
        let (h, url) = (h.clone(), gw_url.clone());
        async move {
            let r = h.get(url).header("X-API-Key", key).send().await.unwrap();
            match r.status().as_u16() {
                201 => "201".to_string(),
                st => format!("{st} {}", r.headers().get("x-keyward-code").and_then(|v| v.to_str().ok()).unwrap_or("")),
            }
        }
    };
    let (id, key) = s.create(json!({"name": "svc", "permissions": ["wallet.read"]})).await;
    let (_, bystander) = s.create(json!({"name": "bystander"})).await;
    let (pk_id, sk, _) = register(&s, Algorithm::Ed25519, json!({})).await;
    let (other_ref, key_ref) = (&other, &key);
    let on_other = move || async move { code(&other_ref.verify(key_ref, json!({})).await).to_string() };
    // Every node caches the key as valid first, so only the disabling's event can change
    // what they answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(code(&other.verify(&key, json!({})).await), "VALID");
    assert_eq!(through_gateway(key.clone()).await, "201");
    assert_eq!(forward_auth(&s, &key).await, (200, "VALID".into()));

    let v = patch(&s, &id, json!({"enabled": false})).await;
    assert_eq!((v["enabled"].as_bool(), v["status"].as_str()), (Some(false), Some("active")), "{v}");
    assert!(v["disabled_at"].is_string(), "{v}");
    let ans = s.verify(&key, json!({"permissions": "wallet.read"})).await;
    assert_eq!((ans["valid"].as_bool(), code(&ans), ans["key_id"].as_str()), (Some(false), "DISABLED", Some(&*id)));
    // Forward-auth refuses it as it refuses a revoked or expired key.
    assert_eq!(forward_auth(&s, &key).await, (401, "DISABLED".into()));
    within_a_second("the gateway", "401 DISABLED", || through_gateway(key.clone())).await;
    let before = seen.lock().unwrap().len();
    assert_eq!(through_gateway(key.clone()).await, "401 DISABLED");
    assert_eq!(seen.lock().unwrap().len(), before, "nothing reaches the upstream");
    within_a_second("the second node", "DISABLED", on_other).await;
    assert_eq!(code(&s.verify(&bystander, json!({})).await), "VALID", "other keys are untouched");

    // A signed request's key too (the same decision).
    patch(&s, &pk_id, json!({"enabled": false})).await;
    assert_eq!(code(&check(&s, &signed(&s, &sk, "GET", "/x", "", "")).await), "DISABLED");

    // The key's view and lists: status keeps its meaning, `enabled` says it.
    let (_, k) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!((k["enabled"].as_bool(), k["status"].as_str()), (Some(false), Some("active")));
    let (_, list) = s.call(Method::GET, "/v1/keys?status=active", None).await;
    let listed = list["items"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).cloned().unwrap();
    assert_eq!(listed["enabled"], false);

    // A disabled key can still be changed; it stays disabled.
    let v = patch(&s, &id, json!({"name": "renamed"})).await;
    assert_eq!((v["name"].as_str(), v["enabled"].as_bool()), (Some("renamed"), Some(false)));
    assert_eq!(v["disabled_at"], k["disabled_at"], "disabled since the first time");
    assert_eq!(code(&s.verify(&key, json!({})).await), "DISABLED");
    let v = patch(&s, &id, json!({"enabled": false})).await;
    assert_eq!(v["disabled_at"], k["disabled_at"], "disabling again changes nothing");

    // Audited as the key update it is.
    let (_, events) = s.call(Method::GET, &format!("/v1/audit?action=key.update&target={id}"), None).await;
    let changes: Vec<&Value> = events["items"].as_array().unwrap().iter().map(|e| &e["changes"]["changes"]).collect();
    assert!(changes.iter().any(|c| c["enabled"] == false), "{events}");

    // Enabled again: valid at once, everywhere.
    let v = patch(&s, &id, json!({"enabled": true})).await;
    assert_eq!(v["enabled"], true);
    assert!(v.get("disabled_at").is_none(), "{v}");
    assert_eq!(code(&s.verify(&key, json!({"permissions": "wallet.read"})).await), "VALID");
    assert_eq!(forward_auth(&s, &key).await, (200, "VALID".into()));
    within_a_second("the gateway", "201", || through_gateway(key.clone())).await;
    within_a_second("the second node", "VALID", on_other).await;
    let (_, events) = s.call(Method::GET, &format!("/v1/audit?action=key.update&target={id}"), None).await;
    assert_eq!(events["items"][0]["changes"]["changes"]["enabled"], true, "{events}");

    up_task.abort();
    gw.stop().await.unwrap();
    other.stop().await;
    s.stop().await;
}

async fn disabled_keys_rotate_revoke_and_count(b: Backend) {
    let s = TestServer::start(b).await;
    // Created disabled.
    let (st, k) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "off", "enabled": false}))).await;
    assert_eq!((st, k["enabled"].as_bool()), (201, Some(false)), "{k}");
    let (id, key) = (k["id"].as_str().unwrap().to_string(), k["secret"].as_str().unwrap().to_string());
    for _ in 0..3 {
        assert_eq!(code(&s.verify(&key, json!({})).await), "DISABLED");
    }
    // Counted like any code: in the key's usage and in `/metrics`.
    let started = Instant::now();
    loop {
        let (_, u) = s.call(Method::GET, &format!("/v1/keys/{id}/usage"), None).await;
        if u["total"] == 3 {
            assert_eq!(u["by_code"], json!({"DISABLED": 3}), "{u}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "usage not flushed: {u}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = s.http().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "keyward_verifications_total{code=\"DISABLED\"} 3"), "{metrics}");

    // Rotating a disabled key gives a disabled successor (enabling is an update).
    let (st, new) = s.call(Method::POST, &format!("/v1/keys/{id}/rotate"), Some(json!({"grace_period": "0s"}))).await;
    assert_eq!((st, new["enabled"].as_bool()), (201, Some(false)), "{new}");
    let new_key = new["secret"].as_str().unwrap();
    let new_id = new["id"].as_str().unwrap();
    assert_eq!(code(&s.verify(new_key, json!({})).await), "DISABLED");
    assert_eq!(code(&s.verify(&key, json!({})).await), "REVOKED");

    // Revoking a disabled key revokes it; a revoked key is neither enabled nor disabled.
    let (st, v) = s.call(Method::POST, &format!("/v1/keys/{new_id}/revoke"), None).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("revoked")));
    assert_eq!(code(&s.verify(new_key, json!({})).await), "REVOKED");
    for enabled in [true, false] {
        let (st, e) = s.call(Method::PATCH, &format!("/v1/keys/{new_id}"), Some(json!({"enabled": enabled}))).await;
        assert_eq!((st, e["error"]["field"].as_str()), (409, Some("enabled")), "{e}");
    }
    assert_eq!(code(&s.verify(new_key, json!({})).await), "REVOKED");
    let (st, e) = s.call(Method::PATCH, &format!("/v1/keys/{new_id}"), Some(json!({"enabled": "no"}))).await;
    assert_eq!(st, 400, "{e}");
    s.stop().await;
}

async fn disabling_waits_for_approval(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", true).await;
    let (id, key) = s.create(json!({"name": "svc"})).await;
    s.policy(json!({"key.update": {"approvals": 1}})).await;
    let approve = |apr: String| {
        let (s, admin) = (&s, &admin);
        async move {
            let otp = s.otp(admin.totp.as_ref().unwrap());
            let (st, v) = s
                .call_as(&admin.token, Method::POST, &format!("/v1/approvals/{apr}/approve"), Some(json!({"otp": otp})))
                .await;
            assert_eq!((st, v["status"].as_str()), (200, Some("approved")), "{v}");
        }
    };

    // Disabling waits: the key keeps working until it is approved.
    let v = patch(&s, &id, json!({"enabled": false})).await;
    assert_eq!((v["status"].as_str(), v["enabled"].as_bool()), (Some("pending_update"), Some(true)), "{v}");
    let apr = v["approval_id"].as_str().unwrap().to_string();
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID");
    let (_, a) = s.call(Method::GET, &format!("/v1/approvals/{apr}"), None).await;
    assert_eq!((a["action"].as_str(), &a["details"]["changes"]["enabled"]), (Some("key.update"), &json!(false)));
    approve(apr).await;
    assert_eq!(code(&s.verify(&key, json!({})).await), "DISABLED");
    let (_, k) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!((k["status"].as_str(), k["enabled"].as_bool()), (Some("active"), Some(false)));

    // Enabling waits too: the key stays disabled meanwhile.
    s.clock.advance(chrono::Duration::seconds(30));
    let v = patch(&s, &id, json!({"enabled": true})).await;
    assert_eq!((v["status"].as_str(), v["enabled"].as_bool()), (Some("pending_update"), Some(false)));
    assert_eq!(code(&s.verify(&key, json!({})).await), "DISABLED");
    approve(v["approval_id"].as_str().unwrap().to_string()).await;
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID");
    s.stop().await;
}

async fn disable_from_the_command_line(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, key) = s.create(json!({"name": "cli"})).await;
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(args)
            .env_clear()
            .env("HOME", home.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "keyward {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["login", "--server", &s.base, "--token", &s.management_key]);
    let out = run(&["keys", "update", &id, "--disable"]);
    assert!(out.contains("active (disabled)"), "{out}");
    assert_eq!(code(&s.verify(&key, json!({})).await), "DISABLED");
    let v: Value = serde_json::from_str(&run(&["keys", "show", &id, "--json"])).unwrap();
    assert_eq!(v["enabled"], false);
    let out = run(&["keys", "update", &id, "--enable"]);
    assert!(!out.contains("disabled"), "{out}");
    assert_eq!(code(&s.verify(&key, json!({})).await), "VALID");
    s.stop().await;
}

/// The console's key page: a Disable button, then an Enable one, each a `PATCH` of `enabled`.
async fn disable_from_the_console(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", false).await;
    let (id, key) = s.create(json!({"name": "web"})).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut cookies: Vec<String> = Vec::new();
    // Sends with the cookies so far and keeps the ones set; returns the status and the body.
    async fn send(
        http: &reqwest::Client,
        cookies: &mut Vec<String>,
        url: String,
        form: Option<&[(&str, &str)]>,
    ) -> (u16, String) {
        let mut rb = if form.is_some() { http.post(url) } else { http.get(url) };
        rb = rb.header("cookie", cookies.join("; "));
        if let Some(f) = form {
            rb = rb.form(f);
        }
        let r = rb.send().await.unwrap();
        for c in r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let pair = c.split(';').next().unwrap().to_string();
            let name = pair.split('=').next().unwrap().to_string();
            cookies.retain(|k| !k.starts_with(&format!("{name}=")));
            cookies.push(pair);
        }
        (r.status().as_u16(), r.text().await.unwrap())
    }
    let csrf = |body: &str| {
        let at = body.find(r#"name="csrf" value=""#).expect("a form") + 19;
        body[at..at + 32].to_string()
    };
    let (_, page) = send(&http, &mut cookies, s.url("/console/login"), None).await;
    let login = [("csrf", csrf(&page)), ("email", admin.email.clone()), ("password", admin.password.clone())];
    let login: Vec<(&str, &str)> = login.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (st, _) = send(&http, &mut cookies, s.url("/console/login"), Some(&login)).await;
    assert_eq!(st, 303);

    let page_url = s.url(&format!("/console/keys/{id}"));
    for (button, enabled, want) in [("Disable key", "false", "DISABLED"), ("Enable key", "true", "VALID")] {
        let (_, page) = send(&http, &mut cookies, page_url.clone(), None).await;
        assert!(page.contains(button), "{page}");
        let form = [("csrf", csrf(&page).as_str()), ("enabled", enabled)].map(|(k, v)| (k, v.to_string()));
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (st, body) = send(&http, &mut cookies, s.url(&format!("/console/keys/{id}/enabled")), Some(&form)).await;
        assert_eq!(st, 303, "{body}");
        assert_eq!(code(&s.verify(&key, json!({})).await), want);
    }
    let (_, page) = send(&http, &mut cookies, page_url, None).await;
    assert!(page.contains("Disable key") && !page.contains(">Disabled<"), "{page}");
    s.stop().await;
}
