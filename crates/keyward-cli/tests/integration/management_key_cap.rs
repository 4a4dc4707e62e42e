//! Management keys expire: at most the policy's `management_key_max_days` (90 by default)
//! after they are made, which is also their expiry when none is asked for.

use chrono::{DateTime, Duration, Utc};
use keyward_core::Clock;
use keyward_testkit::{Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(management_keys_are_capped);

async fn mint(s: &TestServer, body: Value) -> (u16, Value) {
    s.call(Method::POST, "/v1/members/me/keys", Some(body)).await
}

fn expires(v: &Value) -> DateTime<Utc> {
    v["expires_at"].as_str().unwrap().parse().unwrap()
}

async fn management_keys_are_capped(b: Backend) {
    let s = TestServer::start(b).await;
    let now = s.clock.now();
    let (st, k) = mint(&s, json!({"name": "ci"})).await;
    assert_eq!(st, 201, "{k}");
    assert_eq!(expires(&k), now + Duration::days(90), "no expiry given: the cap");
    let (st, v) = mint(&s, json!({"name": "short", "expires_in": "30d"})).await;
    assert_eq!((st, expires(&v)), (201, now + Duration::days(30)));
    let (st, e) = mint(&s, json!({"name": "long", "expires_in": "91d"})).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("expires_in")), "{e}");

    let p = s.policy(json!({"management_key_max_days": 7})).await;
    assert_eq!(p["management_key_max_days"], 7);
    let (st, e) = mint(&s, json!({"expires_in": "8d"})).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("expires_in")), "{e}");
    let (st, v) = mint(&s, json!({})).await;
    assert_eq!((st, expires(&v)), (201, now + Duration::days(7)));
    let (st, e) = s.call(Method::PUT, "/v1/policies", Some(json!({"management_key_max_days": 0}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("management_key_max_days")), "{e}");
    // Out of range, negative, huge or not a number: refused, and the cap stays.
    for bad in [json!(3651), json!(-1), json!(u64::MAX), json!("90"), json!(1.5)] {
        let (st, e) = s.call(Method::PUT, "/v1/policies", Some(json!({"management_key_max_days": bad}))).await;
        assert_eq!(st, 400, "{bad}: {e}");
    }
    let (_, p) = s.call(Method::GET, "/v1/policies", None).await;
    assert_eq!(p["management_key_max_days"], 7);

    // Past the cap the minted key stops; keys made before (the first owner key) are untouched.
    let token = k["management_key"].as_str().unwrap().to_string();
    assert_eq!(s.call_as(&token, Method::GET, "/v1/policies", None).await.0, 200);
    s.clock.advance(Duration::days(91));
    assert_eq!(s.call_as(&token, Method::GET, "/v1/policies", None).await.0, 401);
    assert_eq!(s.call(Method::GET, "/v1/policies", None).await.0, 200);
    s.stop().await;
}
