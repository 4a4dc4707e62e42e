//! Holes a reviewer reading as an attacker found, each closed and tried here.

use keyward_core::signing::Algorithm;
use keyward_core::OsRandom;
use keyward_server::bootstrap::{create_workspace, InitOptions};
use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::signed_requests::{check, register, signed};

on_both_backends!(
    rotation_keeps_the_grant_ceiling,
    idempotent_answers_belong_to_their_member,
    a_raw_pipe_in_a_signed_query_is_malformed,
    an_unreadable_forwarded_hop_ends_the_walk,
    a_password_change_ends_other_sessions,
    the_owner_email_is_normalised_at_init,
    one_time_codes_cannot_be_guessed,
    login_and_setup_answers_reveal_nothing,
    management_keys_have_a_lifecycle
);

/// Rotating a key hands its roles to the successor: an operator cannot mint an `owner` key
/// by rotating one.
async fn rotation_keeps_the_grant_ceiling(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, _) = s.create(json!({"name": "powerful", "roles": ["owner"]})).await;
    let op = s.member("operator", false).await;
    let (st, v) = s.call_as(&op.token, Method::POST, &format!("/v1/keys/{id}/rotate"), None).await;
    assert_eq!(st, 403, "an operator rotated an owner key: {v}");
    let (st, v) = s.call(Method::POST, &format!("/v1/keys/{id}/rotate"), None).await;
    assert_eq!(st, 201, "{v}");
    s.stop().await;
}

async fn create_with(s: &TestServer, token: &str, idem: &str) -> reqwest::Response {
    s.http()
        .post(s.url("/v1/keys"))
        .bearer_auth(token)
        .header("Idempotency-Key", idem)
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap()
}

/// The first answer of an idempotent create holds a secret: another member reusing the same
/// `Idempotency-Key` gets a key of their own, and a member who lost the right to create gets
/// 403, not the stored answer.
async fn idempotent_answers_belong_to_their_member(b: Backend) {
    let s = TestServer::start(b).await;
    let (a, other) = (s.member("developer", false).await, s.member("developer", false).await);
    let first = create_with(&s, &a.token, "deploy-42").await;
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let theirs = create_with(&s, &other.token, "deploy-42").await;
    assert_eq!(theirs.status(), 201);
    assert!(theirs.headers().get("idempotent-replayed").is_none(), "another member got a replay");
    let theirs: serde_json::Value = theirs.json().await.unwrap();
    assert_ne!(theirs["id"], first["id"]);
    assert_ne!(theirs["secret"], first["secret"], "another member received the first answer's secret");
    let again = create_with(&s, &a.token, "deploy-42").await;
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    // Demoted to viewer, the same retry is refused before any stored answer is read.
    let (st, _) = s.call(Method::PATCH, &format!("/v1/members/{}", a.id), Some(json!({"role": "viewer"}))).await;
    assert_eq!(st, 200);
    assert_eq!(create_with(&s, &a.token, "deploy-42").await.status(), 403);
    s.stop().await;
}

/// `|` separates the signed fields: with a raw one in the query, bytes could move between
/// the query and the body under the same signature.
async fn a_raw_pipe_in_a_signed_query_is_malformed(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, sk, _) = register(&s, Algorithm::Ed25519, json!({})).await;
    let ok = signed(&s, &sk, "POST", "/v2/tx", "a=1%7Cb", "x");
    assert_eq!(code(&check(&s, &ok).await), "VALID");
    let piped = signed(&s, &sk, "POST", "/v2/tx", "a=1|b", "x");
    assert_eq!(code(&check(&s, &piped).await), "MALFORMED");
    s.stop().await;
}

/// Behind a trusted proxy, `X-Forwarded-For` is walked from the right; a hop that is not an
/// address ends the walk, so nothing left of it (written by the client) can name the client.
async fn an_unreadable_forwarded_hop_ends_the_walk(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, key) = s.create(json!({"name": "office", "ip_allowlist": ["203.0.113.9"]})).await;
    let auth = |xff: &'static str| {
        let s = &s;
        let key = key.clone();
        async move {
            s.http()
                .get(s.url("/v1/auth"))
                .header("X-API-Key", key)
                .header("X-Forwarded-For", xff)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(auth("203.0.113.9").await.status(), 200);
    let r = auth("203.0.113.9, not-an-ip, 127.0.0.2").await;
    assert_eq!(r.status(), 403, "a client-written hop was taken as the client");
    assert_eq!(r.headers()["x-keyward-code"], "IP_NOT_ALLOWED");
    s.stop().await;
}

/// Whoever logged in with the old password is out once it changes; the session that
/// changed it stays.
async fn a_password_change_ends_other_sessions(b: Backend) {
    let s = TestServer::start(b).await;
    let m = s.member("viewer", false).await;
    let elsewhere = s.login(&m.email, &m.password, None).await;
    assert_eq!(s.call_as(&elsewhere, Method::GET, "/v1/members/me", None).await.0, 200);
    let (st, v) = s
        .call_as(
            &m.token,
            Method::POST,
            "/v1/members/me/password",
            Some(json!({"password": "a brand new passphrase", "current_password": m.password})),
        )
        .await;
    assert_eq!(st, 204, "{v}");
    assert_eq!(s.call_as(&elsewhere, Method::GET, "/v1/members/me", None).await.0, 401, "an old session survived");
    assert_eq!(s.call_as(&m.token, Method::GET, "/v1/members/me", None).await.0, 200);
    s.stop().await;
}

/// An owner email typed with capitals at `init` is kept as logins look it up.
async fn the_owner_email_is_normalised_at_init(b: Backend) {
    let s = TestServer::start(b).await;
    let opts =
        InitOptions { workspace_name: "acme".into(), prefix: "acme".into(), owner_email: "  Ann@Example.COM ".into() };
    let out = create_workspace(&s.store, &s.pepper, s.clock.as_ref(), &OsRandom, &opts).await.unwrap();
    let (st, _) = s
        .call_as(
            &out.management_key,
            Method::POST,
            "/v1/members/me/password",
            Some(json!({"password": "owner passphrase 1"})),
        )
        .await;
    assert_eq!(st, 204);
    let (st, v) = s.try_login("ann@example.com", "owner passphrase 1", None).await;
    assert_eq!(st, 201, "the owner cannot log in: {v}");
    s.stop().await;
}

/// A data dir or pepper file others can read is tightened at start.
#[test]
fn loose_data_dir_modes_are_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let user = crate::cli::User::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.display().to_string();
    assert!(user.run(&["init", "--data-dir", &d, "--json"]).status.success());
    let set = |p: &std::path::Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    set(&data, 0o755);
    set(&data.join("pepper"), 0o644);
    set(&data.join("keyward.db"), 0o644);
    // Any start on the data dir checks it (this one then refuses: already initialised).
    let _ = user.run(&["init", "--data-dir", &d]);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("pepper")), 0o600);
    assert_eq!(mode(&data.join("keyward.db")), 0o600);
}

/// Wrong one-time codes count like wrong passwords: after five in a row the account locks
/// (429), even for the right code, until the lock ends.
async fn one_time_codes_cannot_be_guessed(b: Backend) {
    let s = TestServer::start(b).await;
    let m = s.member("admin", true).await;
    let secret = m.totp.clone().unwrap();
    let disable = |otp: String| {
        let s = &s;
        let token = m.token.clone();
        async move { s.call_as(&token, Method::POST, "/v1/members/me/mfa/totp/disable", Some(json!({ "otp": otp }))).await }
    };
    let right = s.otp(&secret);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    for i in 0..5 {
        let (st, v) = disable(wrong.clone()).await;
        assert_eq!(st, 401, "attempt {i}: {v}");
    }
    let (st, v) = disable(s.otp(&secret)).await;
    assert_eq!((st, code(&v["error"])), (429, "rate_limited"), "the right code after five wrong ones: {v}");
    // Logins are locked too: it is one account.
    assert_eq!(s.try_login(&m.email, &m.password, Some(&s.otp(&secret))).await.0, 429);
    s.clock.advance(chrono::Duration::minutes(16));
    let (st, v) = disable(s.otp(&secret)).await;
    assert_eq!(st, 204, "{v}");
    s.stop().await;
}

/// Without the password, a login tells nothing: an unknown email and an email in two
/// workspaces answer the same 401; a locked account answers 429 whatever the password. Made-up setup tokens are refused before
/// any hashing and count against the address.
async fn login_and_setup_answers_reveal_nothing(b: Backend) {
    let mut cfg = keyward_testkit::test_config();
    cfg.account_lockout = (2, std::time::Duration::from_secs(600));
    cfg.ip_lockout = (1000, std::time::Duration::from_secs(600));
    let s = TestServer::start_with(b, cfg).await;
    let m = s.member("viewer", false).await;
    let (_, unknown) = s.try_login("nobody@example.com", "some password here", None).await;
    for _ in 0..2 {
        assert_eq!(s.try_login(&m.email, "wrong password!!", None).await.0, 401);
    }
    // Locked, the account answers every password alike: the lock must not tell a right
    // guess from a wrong one (it does tell that the account exists, as a lock must).
    let (st, locked) = s.try_login(&m.email, "wrong password!!", None).await;
    assert_eq!(st, 429, "{locked}");
    assert_eq!(s.try_login(&m.email, &m.password, None).await, (429, locked), "the right password reads alike");

    // The same email in a second workspace, with another password.
    let opts = InitOptions { workspace_name: "two".into(), prefix: "two".into(), owner_email: "o2@example.com".into() };
    let two = create_workspace(&s.store, &s.pepper, s.clock.as_ref(), &OsRandom, &opts).await.unwrap();
    let (st, inv) = s
        .call_as(
            &two.management_key,
            Method::POST,
            "/v1/members",
            Some(json!({"email": "dual@example.com", "role": "viewer"})),
        )
        .await;
    assert_eq!(st, 201, "{inv}");
    let setup = |token: Value, pw: &'static str| {
        let s = &s;
        async move {
            s.call_as("", Method::POST, "/v1/members/setup", Some(json!({"setup_token": token, "password": pw}))).await
        }
    };
    assert_eq!(setup(inv["setup_token"].clone(), "second workspace pw").await.0, 200);
    let (_, inv1) =
        s.call(Method::POST, "/v1/members", Some(json!({"email": "dual@example.com", "role": "viewer"}))).await;
    assert_eq!(setup(inv1["setup_token"].clone(), "first workspace pw!").await.0, 200);
    let (st, v) = s.try_login("dual@example.com", "a wrong password", None).await;
    assert_eq!((st, &v), (401, &unknown), "an email in two workspaces reads differently");
    assert_eq!(s.try_login("dual@example.com", "first workspace pw!", None).await.0, 201, "one workspace matches");

    // Made-up setup tokens: 400 naming the field, and the address is counted.
    let (st, v) = setup(json!("kw_setup_madeup"), "a fine password 1").await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("setup_token")), "{v}");
    s.stop().await;
}

/// Management keys are listed, expire when asked to, are revoked at once (the first owner's
/// too, once replaced), and a member with MFA needs a fresh code to mint one.
async fn management_keys_have_a_lifecycle(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", true).await;
    let viewer = s.member("viewer", false).await;
    let (st, list) = s.call(Method::GET, "/v1/management-keys", None).await;
    assert_eq!(st, 200, "{list}");
    let first = list["items"].as_array().unwrap();
    assert_eq!(first.len(), 1, "the key init printed is listed: {list}");
    let first_id = first[0]["id"].as_str().unwrap().to_string();
    assert!(first[0].get("management_key").is_none() && first[0].get("hash").is_none());

    // A replacement with an expiry; then the first key is revoked with it.
    let (st, k) = s.call(Method::POST, "/v1/members/me/keys", Some(json!({"name": "ci", "expires_in": "1h"}))).await;
    assert_eq!(st, 201, "{k}");
    let ci = k["management_key"].as_str().unwrap().to_string();
    assert_eq!(s.call_as(&ci, Method::GET, "/v1/keys", None).await.0, 200);
    let (st, _) = s.call_as(&ci, Method::DELETE, &format!("/v1/management-keys/{first_id}"), None).await;
    assert_eq!(st, 204);
    assert_eq!(s.call(Method::GET, "/v1/keys", None).await.0, 401, "a revoked management key still works");
    s.clock.advance(chrono::Duration::minutes(61));
    assert_eq!(s.call_as(&ci, Method::GET, "/v1/keys", None).await.0, 401, "an expired management key still works");
    s.clock.advance(chrono::Duration::minutes(-61));

    // With MFA, a session cannot mint a lasting credential without a fresh code.
    let (st, v) = s.call_as(&admin.token, Method::POST, "/v1/members/me/keys", None).await;
    assert_eq!((st, code(&v["error"])), (401, "mfa_required"), "{v}");
    let otp = s.otp(admin.totp.as_ref().unwrap());
    let (st, v) = s.call_as(&admin.token, Method::POST, "/v1/members/me/keys", Some(json!({ "otp": otp }))).await;
    assert_eq!(st, 201, "{v}");
    // An admin sees every key but cannot revoke an owner's; a viewer sees only their own.
    let (_, all) = s.call_as(&admin.token, Method::GET, "/v1/management-keys", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
    let (st, _) = s
        .call_as(&admin.token, Method::DELETE, &format!("/v1/management-keys/{}", k["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(st, 403);
    let (_, mine) = s.call_as(&viewer.token, Method::GET, "/v1/management-keys", None).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 0);
    let (st, _) = s
        .call_as(&viewer.token, Method::DELETE, &format!("/v1/management-keys/{}", v["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(st, 404, "another member's key is not found for a viewer");
    s.stop().await;
}
