//! Account locks against guessing: a locked account answers a right secret exactly as a
//! wrong one, and secrets sent at once cannot outrun the lock (each attempt is counted
//! before its secret is judged).

use keyward_testkit::{Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(locked_account_answers_alike, concurrent_codes_cannot_outrun_the_lock);

const LIMIT: u32 = 5;

fn config() -> keyward_server::ServerConfig {
    let mut cfg = keyward_testkit::test_config();
    cfg.account_lockout = (LIMIT, std::time::Duration::from_secs(600));
    cfg.ip_lockout = (10_000, std::time::Duration::from_secs(600));
    cfg
}

/// Sends `n` copies of one request at once; their statuses and error codes.
async fn at_once(s: &TestServer, n: usize, path: &str, token: &str, body: Value) -> Vec<(u16, String)> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let req = s.http().post(s.url(path)).bearer_auth(token).json(&body);
        set.spawn(async move {
            let r = req.send().await.unwrap();
            let st = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (st, v["error"]["code"].as_str().unwrap_or("").to_string())
        });
    }
    set.join_all().await
}

fn count(answers: &[(u16, String)], status: u16, code: &str) -> usize {
    answers.iter().filter(|(st, c)| *st == status && c == code).count()
}

/// Everything a login answer tells, but its request id and date.
async fn answer(s: &TestServer, email: &str, password: &str) -> (u16, Vec<(String, String)>, String) {
    let r =
        s.http().post(s.url("/v1/sessions")).json(&json!({"email": email, "password": password})).send().await.unwrap();
    let status = r.status().as_u16();
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "x-request-id" | "date"))
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    headers.sort();
    (status, headers, r.text().await.unwrap())
}

async fn locked_account_answers_alike(b: Backend) {
    let s = TestServer::start_with(b, config()).await;
    let m = s.member("viewer", false).await;
    for _ in 0..LIMIT {
        assert_eq!(s.try_login(&m.email, "wrong password!!", None).await.0, 401);
    }
    let right = answer(&s, &m.email, &m.password).await;
    let wrong = answer(&s, &m.email, "wrong password!!").await;
    assert_eq!(right.0, 429, "{right:?}");
    assert!(right.1.iter().any(|(n, _)| n == "retry-after"), "{right:?}");
    assert_eq!(right, wrong, "the lock must not tell a right password from a wrong one");

    // The same for a member with MFA: a right password with a wrong code, or none.
    let a = s.member("admin", true).await;
    for _ in 0..LIMIT {
        assert_eq!(s.try_login(&a.email, "wrong password!!", None).await.0, 401);
    }
    let right = answer(&s, &a.email, &a.password).await;
    let wrong = answer(&s, &a.email, "wrong password!!").await;
    assert_eq!((right.0, &right), (429, &wrong));

    // The lock ends; the right password works again, and no guess was judged meanwhile.
    s.clock.advance(chrono::Duration::seconds(601));
    s.login(&m.email, &m.password, None).await;
    s.stop().await;
}

/// Thirty wrong codes (and thirty wrong passwords) at once: at most `lockout_attempts` are
/// judged wrong, the rest are refused by the lock unjudged.
async fn concurrent_codes_cannot_outrun_the_lock(b: Backend) {
    let s = TestServer::start_with(b, config()).await;
    let a = s.member("admin", true).await;
    let dev = s.member("developer", false).await;
    s.policy(json!({"key.create": {"approvals": 1, "approver_roles": ["owner", "admin"]}})).await;
    let (st, k) = s.call_as(&dev.token, Method::POST, "/v1/keys", Some(json!({"name": "guarded"}))).await;
    assert_eq!(st, 201, "{k}");
    let apr = k["approval_id"].as_str().unwrap().to_string();
    // A code the member's authenticator does not show now.
    let right = s.otp(a.totp.as_ref().unwrap());
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 500_000) % 1_000_000);

    let path = format!("/v1/approvals/{apr}/approve");
    let answers = at_once(&s, 30, &path, &a.token, json!({"otp": wrong})).await;
    let judged = count(&answers, 401, "mfa_required");
    assert_eq!(judged + count(&answers, 429, "rate_limited"), 30, "{answers:?}");
    assert!(judged <= LIMIT as usize, "{judged} wrong codes judged, the limit is {LIMIT}: {answers:?}");
    // Locked, the right code is refused like the rest.
    let (st, v) = s.call_as(&a.token, Method::POST, &path, Some(json!({"otp": right}))).await;
    assert_eq!((st, v["error"]["code"].as_str()), (429, Some("rate_limited")), "{v}");

    // Passwords at login, the same.
    let v = s.member("viewer", false).await;
    let answers = at_once(&s, 30, "/v1/sessions", "", json!({"email": v.email, "password": "wrong password!!"})).await;
    let judged = count(&answers, 401, "unauthenticated");
    assert_eq!(judged + count(&answers, 429, "rate_limited"), 30, "{answers:?}");
    assert!(judged <= LIMIT as usize, "{judged} wrong passwords judged, the limit is {LIMIT}: {answers:?}");
    s.stop().await;
}
