//! Members and sessions: invitations, setup tokens, password logins, lockouts, logout,
//! roles and removal; TOTP enrolment, reuse refusal, recovery codes and a policy requiring
//! MFA. Time moves only on the test's clock.

use chrono::Duration;
use keyward_testkit::{Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(invite_setup_login_logout, lockouts, roles_and_removal, totp_lifecycle, policy_requires_mfa);

fn err(v: &Value) -> (&str, &str) {
    (v["error"]["code"].as_str().unwrap_or(""), v["error"]["field"].as_str().unwrap_or(""))
}

async fn invite_setup_login_logout(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, inv) =
        s.call(Method::POST, "/v1/members", Some(json!({"email": " Ada@Example.com ", "role": "developer"}))).await;
    assert_eq!(st, 201, "{inv}");
    assert_eq!((inv["email"].as_str(), inv["status"].as_str()), (Some("ada@example.com"), Some("invited")));
    let token = inv["setup_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("kw_setup_"));

    // Bad input names its field; the same email twice is a conflict.
    for (body, field) in [
        (json!({"email": "nope", "role": "developer"}), "email"),
        (json!({"email": "b@example.com", "role": "root"}), "role"),
        (json!({"email": "b@example.com"}), "role"),
    ] {
        let (st, v) = s.call(Method::POST, "/v1/members", Some(body)).await;
        assert_eq!((st, err(&v).1), (400, field), "{v}");
    }
    let (st, v) =
        s.call(Method::POST, "/v1/members", Some(json!({"email": "ADA@example.com", "role": "viewer"}))).await;
    assert_eq!((st, err(&v)), (409, ("conflict", "email")));

    // An invited member cannot log in; setup needs a real password and the token works once.
    assert_eq!(s.try_login("ada@example.com", "whatever password", None).await.0, 401);
    let setup = |tok: String, pw: &str| {
        s.http().post(s.url("/v1/members/setup")).json(&json!({"setup_token": tok, "password": pw})).send()
    };
    let r = setup(token.clone(), "short").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(err(&r.json::<Value>().await.unwrap()).1, "password");
    let r = setup(token.clone(), "a long enough password").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "active");
    let r = setup(token.clone(), "another long password").await.unwrap();
    assert_eq!(r.status(), 400, "a setup token works once");
    assert_eq!(err(&r.json::<Value>().await.unwrap()).1, "setup_token");

    // The password is stored as argon2id, never in clear.
    let rows = s.store.login_records("ada@example.com").await.unwrap();
    let phc = rows[0].password_hash.clone().unwrap();
    assert!(phc.starts_with("$argon2id$") && !phc.contains("a long enough password"));

    // Login: wrong password 401; right one gives a session token that acts as the member.
    let (st, v) = s.try_login("ada@example.com", "a wrong password!", None).await;
    assert_eq!((st, err(&v).0), (401, "unauthenticated"));
    let (st, v) = s.try_login("nobody@example.com", "a long enough password", None).await;
    assert_eq!(
        (st, v["error"]["message"].clone()),
        (401, json!("invalid email or password")),
        "no hint that the email is unknown"
    );
    let session = s.login("ADA@example.com", "a long enough password", None).await;
    assert!(session.starts_with("kw_st_"));
    let (st, me) = s.call_as(&session, Method::GET, "/v1/members/me", None).await;
    assert_eq!((st, me["role"].as_str()), (200, Some("developer")));
    let (st, _) = s.call_as(&session, Method::POST, "/v1/keys", Some(json!({"name": "from-a-session"}))).await;
    assert_eq!(st, 201);

    // Logout kills the token; a management key has no session to end.
    let (st, _) = s.call_as(&session, Method::DELETE, "/v1/sessions/current", None).await;
    assert_eq!(st, 204);
    assert_eq!(s.call_as(&session, Method::GET, "/v1/members/me", None).await.0, 401);
    assert_eq!(s.call(Method::DELETE, "/v1/sessions/current", None).await.0, 400);

    // Sessions expire.
    let session = s.login("ada@example.com", "a long enough password", None).await;
    s.clock.advance(Duration::hours(12) + Duration::seconds(1));
    assert_eq!(s.call_as(&session, Method::GET, "/v1/members/me", None).await.0, 401);

    // The owner from `init` sets a password with the management key, then logs in with it.
    let (st, _) = s.call(Method::POST, "/v1/members/me/password", Some(json!({"password": "owner password 1"}))).await;
    assert_eq!(st, 204);
    let (st, v) = s.call(Method::POST, "/v1/members/me/password", Some(json!({"password": "owner password 2"}))).await;
    assert_eq!((st, err(&v).1), (400, "current_password"), "changing needs the current one");
    s.login("owner@localhost", "owner password 1", None).await;
    s.stop().await;
}

async fn lockouts(b: Backend) {
    let mut cfg = keyward_testkit::test_config();
    cfg.account_lockout = (3, std::time::Duration::from_secs(600));
    cfg.ip_lockout = (5, std::time::Duration::from_secs(600));
    let s = TestServer::start_with(b, cfg).await;
    let m = s.member("viewer", false).await;
    for _ in 0..3 {
        assert_eq!(s.try_login(&m.email, "wrong password!!", None).await.0, 401);
    }
    // Locked: even the right password is refused until the lock ends.
    let (st, v) = s.try_login(&m.email, &m.password, None).await;
    assert_eq!((st, err(&v).0), (429, "rate_limited"));
    s.clock.advance(Duration::seconds(601));
    s.login(&m.email, &m.password, None).await;
    // The count restarts after a success.
    assert_eq!(s.try_login(&m.email, "wrong password!!", None).await.0, 401);
    s.login(&m.email, &m.password, None).await;

    // Per address (the window restarted with the failure above): failures on unknown
    // accounts block the address for everyone.
    for i in 0..4 {
        assert_eq!(s.try_login(&format!("ghost{i}@example.com"), "whatever password", None).await.0, 401);
    }
    let r = s
        .http()
        .post(s.url("/v1/sessions"))
        .json(&json!({"email": m.email, "password": m.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    s.stop().await;
}

async fn roles_and_removal(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", false).await;
    let dev = s.member("developer", false).await;
    let (_, owner) = s.call(Method::GET, "/v1/members/me", None).await;
    let owner_id = owner["id"].as_str().unwrap();

    // An admin manages up to admin, never an owner.
    let (st, _) = s
        .call_as(&admin.token, Method::POST, "/v1/members", Some(json!({"email": "o2@example.com", "role": "owner"})))
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .call_as(&admin.token, Method::PATCH, &format!("/v1/members/{owner_id}"), Some(json!({"role": "viewer"})))
        .await;
    assert_eq!(st, 403);
    let (st, v) = s
        .call_as(&admin.token, Method::PATCH, &format!("/v1/members/{}", dev.id), Some(json!({"role": "manager"})))
        .await;
    assert_eq!((st, v["role"].as_str()), (200, Some("manager")));
    // A manager manages no one.
    let (st, _) = s
        .call_as(&dev.token, Method::POST, "/v1/members", Some(json!({"email": "x@example.com", "role": "viewer"})))
        .await;
    assert_eq!(st, 403);
    // Everyone reads the member list.
    let (st, list) = s.call_as(&dev.token, Method::GET, "/v1/members", None).await;
    assert_eq!((st, list["items"].as_array().unwrap().len()), (200, 3));

    // The last owner can be neither demoted nor removed.
    let (st, v) = s.call(Method::PATCH, &format!("/v1/members/{owner_id}"), Some(json!({"role": "admin"}))).await;
    assert_eq!((st, err(&v).0), (409, "conflict"));
    let (st, _) = s.call(Method::DELETE, &format!("/v1/members/{owner_id}"), None).await;
    assert_eq!(st, 409);

    // Removing a member ends their sessions and management keys.
    let (st, mk) = s.call_as(&dev.token, Method::POST, "/v1/members/me/keys", None).await;
    assert_eq!((st, mk["role"].as_str()), (201, Some("manager")), "a management key carries its member's role");
    let dev_key = mk["management_key"].as_str().unwrap().to_string();
    assert_eq!(s.call_as(&dev_key, Method::GET, "/v1/keys", None).await.0, 200);
    let (st, _) = s.call_as(&admin.token, Method::DELETE, &format!("/v1/members/{}", dev.id), None).await;
    assert_eq!(st, 204);
    assert_eq!(s.call_as(&dev.token, Method::GET, "/v1/keys", None).await.0, 401);
    assert_eq!(s.call_as(&dev_key, Method::GET, "/v1/keys", None).await.0, 401);
    assert_eq!(s.call(Method::GET, &format!("/v1/members/{}", dev.id), None).await.0, 404);
    s.stop().await;
}

async fn totp_lifecycle(b: Backend) {
    let s = TestServer::start(b).await;
    let m = s.member("admin", false).await;
    let (st, e) = s.call_as(&m.token, Method::POST, "/v1/members/me/mfa/totp", None).await;
    assert_eq!(st, 200);
    assert!(e["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Keyward:"));
    let secret = totp_rs::Secret::Encoded(e["secret"].as_str().unwrap().into()).to_bytes().unwrap();
    // The stored secret is sealed, not the base32 the member saw.
    let stored = s.store.totp_state(&m.id).await.unwrap().pending.unwrap();
    assert!(!stored.contains(e["secret"].as_str().unwrap()));

    let confirm =
        |otp: String| s.call_as(&m.token, Method::POST, "/v1/members/me/mfa/totp/confirm", Some(json!({"otp": otp})));
    let (st, v) = confirm("000000".into()).await;
    assert_eq!((st, err(&v)), (401, ("mfa_required", "otp")));
    let (st, r) = confirm(s.otp(&secret)).await;
    assert_eq!(st, 200, "{r}");
    let codes: Vec<String> =
        r["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().into()).collect();
    assert_eq!(codes.len(), 10);

    // Login now needs a code; the code of the step used to confirm is spent.
    let (st, v) = s.try_login(&m.email, &m.password, None).await;
    assert_eq!((st, err(&v).0), (401, "mfa_required"));
    let (st, _) = s.try_login(&m.email, &m.password, Some(&s.otp(&secret))).await;
    assert_eq!(st, 401, "a code cannot be used twice in its time step");
    s.clock.advance(Duration::seconds(30));
    let code = s.otp(&secret);
    s.login(&m.email, &m.password, Some(&code)).await;
    let (st, v) = s.try_login(&m.email, &m.password, Some(&code)).await;
    assert_eq!((st, err(&v).0), (401, "mfa_required"), "reused code refused");
    // A code from two steps ago is refused too.
    s.clock.advance(Duration::seconds(90));
    assert_eq!(s.try_login(&m.email, &m.password, Some(&code)).await.0, 401);

    // A recovery code works once, in any case and spacing.
    s.login(&m.email, &m.password, Some(&codes[0].to_uppercase())).await;
    assert_eq!(s.try_login(&m.email, &m.password, Some(&codes[0])).await.0, 401);

    // Disabling needs a code.
    let disable = |otp: Option<String>| {
        s.call_as(&m.token, Method::POST, "/v1/members/me/mfa/totp/disable", Some(json!({"otp": otp})))
    };
    assert_eq!(disable(None).await.0, 401);
    assert_eq!(disable(Some("123456".into())).await.0, 401);
    s.clock.advance(Duration::seconds(30));
    assert_eq!(disable(Some(s.otp(&secret))).await.0, 204);
    s.login(&m.email, &m.password, None).await;
    assert_eq!(s.store.recovery_codes_left(&m.id).await.unwrap(), 0);
    s.stop().await;
}

async fn policy_requires_mfa(b: Backend) {
    let s = TestServer::start(b).await;
    let dev = s.member("developer", false).await;
    // The owner must have MFA before requiring it of everyone.
    let (st, v) = s.call(Method::PUT, "/v1/policies", Some(json!({"require_mfa": true}))).await;
    assert_eq!((st, err(&v)), (409, ("conflict", "require_mfa")));
    s.enrol(&s.management_key).await;
    s.policy(json!({"require_mfa": true})).await;
    // A member without MFA may only enrol.
    let (st, v) = s.call_as(&dev.token, Method::GET, "/v1/keys", None).await;
    assert_eq!((st, err(&v).0), (403, "mfa_required"));
    let secret = s.enrol(&dev.token).await;
    assert_eq!(s.call_as(&dev.token, Method::GET, "/v1/keys", None).await.0, 200);
    // And cannot turn it off while the policy holds.
    let (st, _) = s
        .call_as(&dev.token, Method::POST, "/v1/members/me/mfa/totp/disable", Some(json!({"otp": s.otp(&secret)})))
        .await;
    assert_eq!(st, 409);
    s.stop().await;
}
