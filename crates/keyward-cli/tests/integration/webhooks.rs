//! Webhooks and per-key callbacks against a real receiver: signatures checked with an
//! independent implementation (hmac/sha2/ed25519 directly, not Keyward's code), retries with
//! the same `webhook-id`, rotation, `410`, deliveries surviving a restart, one delivery per
//! event across two nodes, SSRF refusals, and `key.expiring`/`key.expired` with the manual
//! clock.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use keyward_testkit::{Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

on_both_backends!(
    endpoints_are_managed_and_deliveries_signed,
    a_failing_receiver_gets_retries_with_the_same_id,
    retry_after_is_honoured_and_days_of_failure_disable,
    rotation_signs_with_both_secrets_then_gone_disables,
    key_callbacks_are_signed_with_the_workspace_key,
    pending_deliveries_survive_a_restart,
    a_delivery_claimed_by_a_dead_node_is_made_by_another,
    two_nodes_deliver_each_event_once,
    private_destinations_are_refused,
    expiry_is_told_once,
);

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    pub(crate) path: String,
    id: String,
    timestamp: String,
    signature: String,
    pub(crate) body: Bytes,
}

impl Got {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Inbox {
    got: Vec<Got>,
    /// Answers to give, in order; 200 once used up.
    script: VecDeque<u16>,
}

#[derive(Clone)]
pub(crate) struct Receiver {
    addr: SocketAddr,
    inbox: Arc<Mutex<Inbox>>,
}

async fn receive(State(inbox): State<Arc<Mutex<Inbox>>>, uri: axum::http::Uri, h: HeaderMap, body: Bytes) -> Response {
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut i = inbox.lock().unwrap();
    i.got.push(Got {
        path: uri.path().to_string(),
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
    });
    let status = i.script.pop_front().unwrap_or(200);
    if status == 302 {
        return (StatusCode::FOUND, [("location", "/elsewhere")]).into_response();
    }
    if status == 429 {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "30")]).into_response();
    }
    StatusCode::from_u16(status).unwrap().into_response()
}

impl Receiver {
    pub(crate) async fn start(script: &[u16]) -> Receiver {
        let inbox = Arc::new(Mutex::new(Inbox { got: Vec::new(), script: script.iter().copied().collect() }));
        let app = axum::Router::new().fallback(receive).with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, inbox }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn got(&self) -> Vec<Got> {
        self.inbox.lock().unwrap().got.clone()
    }

    fn answer_next(&self, script: &[u16]) {
        self.inbox.lock().unwrap().script = script.iter().copied().collect();
    }

    /// Waits until at least `n` requests arrived (at most 10 s).
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Got> {
        let started = Instant::now();
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "expected {n} deliveries, got {}", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Nothing more arrives for a while (deliveries are polled every 50 ms in tests).
    pub(crate) async fn stays_at(&self, n: usize) {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(self.got().len(), n, "unexpected extra deliveries: {:?}", self.got());
    }
}

/// Standard Webhooks `v1`, computed here from the specification (not with Keyward's code).
fn independent_v1(secret: &str, g: &Got) -> String {
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", g.id, g.timestamp).as_bytes());
    mac.update(&g.body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

fn signed_by(secret: &str, g: &Got) -> bool {
    let want = independent_v1(secret, g);
    g.signature.split(' ').any(|s| s == want)
}

async fn endpoint(s: &TestServer, url: &str, events: Value) -> (String, String) {
    let (st, v) = s.call(Method::POST, "/v1/webhooks", Some(json!({"url": url, "events": events}))).await;
    assert_eq!(st, 201, "{v}");
    (v["id"].as_str().unwrap().to_string(), v["secret"].as_str().unwrap().to_string())
}

async fn deliveries(s: &TestServer, id: &str) -> Vec<Value> {
    let (st, v) = s.call(Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None).await;
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

/// Polls until `f` holds (at most 10 s).
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn endpoints_are_managed_and_deliveries_signed(b: Backend) {
    let s = TestServer::start(b).await;
    let r = Receiver::start(&[]).await;
    // Bad input names its field.
    for (body, field) in [
        (json!({"url": "ftp://x", "events": ["key.*"]}), "url"),
        (json!({"url": "http://user:pw@example.com/", "events": ["key.*"]}), "url"),
        (json!({"url": r.url("/hook"), "events": []}), "events"),
        (json!({"url": r.url("/hook"), "events": ["key.deleted"]}), "events"),
    ] {
        let (st, v) = s.call(Method::POST, "/v1/webhooks", Some(body.clone())).await;
        assert_eq!((st, v["error"]["field"].as_str()), (400, Some(field)), "{body} → {v}");
    }
    let (id, secret) = endpoint(&s, &r.url("/hook"), json!(["key.*"])).await;
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = s.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert!(listed["items"][0].get("secret").is_none(), "the secret is shown only once");

    let (key_id, key_secret) = s.create(json!({"name": "billing"})).await;
    let got = r.wait_for(1).await;
    let g = &got[0];
    assert_eq!(g.path, "/hook");
    assert!(signed_by(&secret, g), "signature {} does not verify", g.signature);
    let body = g.json();
    assert_eq!(body["type"], "key.created");
    assert_eq!(body["data"]["key_id"], key_id.as_str());
    assert!(!String::from_utf8_lossy(&g.body).contains(&key_secret), "a key's secret reached a webhook");
    let ts: i64 = g.timestamp.parse().unwrap();
    assert_eq!(ts, now_ts(&s), "webhook-timestamp is the server's time");

    // An event type the endpoint did not subscribe to is not sent; a narrowed filter holds.
    let (st, v) = s.call(Method::PATCH, &format!("/v1/webhooks/{id}"), Some(json!({"events": ["key.revoked"]}))).await;
    assert_eq!((st, v["events"].clone()), (200, json!(["key.revoked"])), "{v}");
    s.create(json!({"name": "ignored"})).await;
    let (st, _) = s.call(Method::POST, &format!("/v1/keys/{key_id}/revoke"), None).await;
    assert_eq!(st, 200);
    let got = r.wait_for(2).await;
    assert_eq!(got[1].json()["type"], "key.revoked");
    r.stays_at(2).await;

    // A test event, the delivery log, and the audit trail (no secret in it).
    let (st, t) = s.call(Method::POST, &format!("/v1/webhooks/{id}/test"), None).await;
    assert_eq!(st, 202, "{t}");
    let got = r.wait_for(3).await;
    assert_eq!(
        (got[2].json()["type"].as_str(), got[2].id.as_str()),
        (Some("webhook.test"), t["message_id"].as_str().unwrap())
    );
    eventually("the test delivery to be logged", || async {
        deliveries(&s, &id).await.iter().any(|d| d["type"] == "webhook.test" && d["status"] == "delivered")
    })
    .await;
    let log = deliveries(&s, &id).await;
    let test = log.iter().find(|d| d["type"] == "webhook.test").unwrap();
    assert_eq!(test["attempt_log"][0]["status"], 200, "{test}");
    let (st, v) = s.call(Method::GET, "/v1/webhooks/nope", None).await;
    assert_eq!(st, 404, "{v}");
    let (st, _) = s.call(Method::DELETE, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(st, 204);
    let export = s.http().get(s.url("/v1/audit/export")).bearer_auth(&s.management_key).send().await.unwrap();
    let export = export.text().await.unwrap();
    for a in ["webhook.create", "webhook.update", "webhook.test", "webhook.delete"] {
        assert!(export.contains(&format!("\"action\":\"{a}\"")), "{a} not audited");
    }
    assert!(!export.contains(&secret[6..]), "a webhook secret reached the audit trail");
    let raw = keyward_testkit::files_under(s.db.dir.path());
    assert!(raw.iter().all(|(_, b)| !keyward_testkit::contains(b, &secret[6..])), "a webhook secret stored in clear");
    s.stop().await;
}

async fn a_failing_receiver_gets_retries_with_the_same_id(b: Backend) {
    let s = TestServer::start(b).await;
    let r = Receiver::start(&[500, 503]).await;
    let (id, secret) = endpoint(&s, &r.url("/hook"), json!(["key.created"])).await;
    s.create(json!({"name": "k"})).await;
    r.wait_for(1).await;
    // The schedule (1 s, 1 s, 1 s in tests) runs on the server's manual clock.
    s.clock.advance(chrono::Duration::seconds(1));
    r.wait_for(2).await;
    s.clock.advance(chrono::Duration::seconds(1));
    let got = r.wait_for(3).await;
    s.clock.advance(chrono::Duration::seconds(5));
    r.stays_at(3).await;
    assert!(got.iter().all(|g| g.id == got[0].id), "webhook-id changed between attempts");
    assert!(got.iter().all(|g| signed_by(&secret, g)));
    eventually("the delivery to be logged as delivered", || async {
        deliveries(&s, &id).await.first().is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    let d = &deliveries(&s, &id).await[0];
    assert_eq!(d["attempts"], 3, "{d}");
    let statuses: Vec<i64> =
        d["attempt_log"].as_array().unwrap().iter().map(|a| a["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, vec![500, 503, 200]);

    // A receiver asking for more time (Retry-After) is given it; a manual retry sends again.
    let did = d["id"].as_str().unwrap();
    let (st, v) = s.call(Method::POST, &format!("/v1/webhooks/{id}/deliveries/{did}/retry"), None).await;
    assert_eq!(st, 202, "{v}");
    let got = r.wait_for(4).await;
    assert_eq!(got[3].id, got[0].id, "a retried delivery keeps its webhook-id");
    s.stop().await;
}

async fn retry_after_is_honoured_and_days_of_failure_disable(b: Backend) {
    let s = TestServer::start(b).await;
    let r = Receiver::start(&[429, 500, 500, 500, 500, 500]).await;
    let (id, _) = endpoint(&s, &r.url("/hook"), json!(["key.created"])).await;
    s.create(json!({"name": "k"})).await;
    r.wait_for(1).await;
    // The schedule says 1 s; the receiver asked for 30 s.
    s.clock.advance(chrono::Duration::seconds(2));
    r.stays_at(1).await;
    s.clock.advance(chrono::Duration::seconds(29));
    r.wait_for(2).await;
    // Failing ever since: once the streak is 5 days old, the next failure disables the endpoint.
    s.clock.advance(chrono::Duration::days(5));
    r.wait_for(3).await;
    eventually("the failing endpoint to be disabled", || async {
        s.call(Method::GET, &format!("/v1/webhooks/{id}"), None).await.1["disabled_reason"] == "failing"
    })
    .await;
    let d = &deliveries(&s, &id).await[0];
    assert_eq!(d["status"], "cancelled", "{d}");
    let (_, a) = s.call(Method::GET, "/v1/audit?action=webhook.disabled", None).await;
    assert_eq!(a["items"][0]["changes"]["reason"], "failing", "{a}");
    s.clock.advance(chrono::Duration::seconds(5));
    r.stays_at(3).await;
    s.stop().await;
}

async fn rotation_signs_with_both_secrets_then_gone_disables(b: Backend) {
    let s = TestServer::start(b).await;
    let r = Receiver::start(&[]).await;
    let (id, old) = endpoint(&s, &r.url("/hook"), json!(["*"])).await;
    let (st, v) =
        s.call(Method::POST, &format!("/v1/webhooks/{id}/rotate-secret"), Some(json!({"overlap": "1h"}))).await;
    assert_eq!(st, 200, "{v}");
    let new = v["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    s.create(json!({"name": "k"})).await;
    let got = r.wait_for(1).await;
    assert_eq!(got[0].signature.split(' ').count(), 2, "{}", got[0].signature);
    assert!(signed_by(&old, &got[0]) && signed_by(&new, &got[0]), "both secrets sign during the overlap");
    // After the overlap only the new secret signs.
    s.clock.advance(chrono::Duration::hours(2));
    s.create(json!({"name": "k2"})).await;
    let got = r.wait_for(2).await;
    assert!(signed_by(&new, &got[1]) && !signed_by(&old, &got[1]));
    let (st, v) =
        s.call(Method::POST, &format!("/v1/webhooks/{id}/rotate-secret"), Some(json!({"overlap": "soon"}))).await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("overlap")), "{v}");

    // 410 Gone disables the endpoint at once; the audit trail says so, as a system event.
    r.answer_next(&[410]);
    s.create(json!({"name": "k3"})).await;
    r.wait_for(3).await;
    eventually("the endpoint to be disabled", || async {
        s.call(Method::GET, &format!("/v1/webhooks/{id}"), None).await.1["disabled"] == true
    })
    .await;
    let (_, v) = s.call(Method::GET, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(v["disabled_reason"], "gone", "{v}");
    let (_, a) = s.call(Method::GET, "/v1/audit?action=webhook.disabled", None).await;
    assert_eq!(a["items"][0]["actor"]["type"], "system", "{a}");
    s.create(json!({"name": "k4"})).await;
    r.stays_at(3).await;
    // Enabled again, it receives again.
    let (st, _) = s.call(Method::PATCH, &format!("/v1/webhooks/{id}"), Some(json!({"disabled": false}))).await;
    assert_eq!(st, 200);
    s.create(json!({"name": "k5"})).await;
    r.wait_for(4).await;
    s.stop().await;
}

async fn key_callbacks_are_signed_with_the_workspace_key(b: Backend) {
    let s = TestServer::start(b).await;
    let r = Receiver::start(&[]).await;
    let (st, pk) = s.call(Method::GET, "/v1/webhooks/signing-key", None).await;
    assert_eq!(st, 200, "{pk}");
    let pk = pk["public_key"].as_str().unwrap().to_string();
    let (key_id, _) = s.create(json!({"name": "with callback", "callback_url": r.url("/cb")})).await;
    let (st, _) = s.call(Method::PATCH, &format!("/v1/keys/{key_id}"), Some(json!({"name": "renamed"}))).await;
    assert_eq!(st, 200);
    let mut got = r.wait_for(2).await;
    // Deliveries due together are sent side by side: no order is promised.
    got.sort_by_key(|g| g.json()["type"].as_str().unwrap().to_string());
    let raw: [u8; 32] = B64.decode(pk.strip_prefix("whpk_").unwrap()).unwrap().try_into().unwrap();
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&raw).unwrap();
    for (g, ty) in got.iter().zip(["key.created", "key.updated"]) {
        assert_eq!((g.path.as_str(), g.json()["type"].as_str()), ("/cb", Some(ty)));
        assert_eq!(g.json()["data"]["key_id"], key_id.as_str());
        let sig = B64.decode(g.signature.strip_prefix("v1a,").unwrap()).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        let mut content = format!("{}.{}.", g.id, g.timestamp).into_bytes();
        content.extend_from_slice(&g.body);
        vk.verify_strict(&content, &sig).expect("a callback verifies against the published key");
        // The SDK's helper agrees.
        assert!(keyward_client::verify_webhook(&pk, &g.id, &g.timestamp, &g.signature, &g.body, now_ts(&s)));
    }
    // The key's callback deliveries are listed with their attempts.
    let (st, cb) = s.call(Method::GET, &format!("/v1/keys/{key_id}/callbacks"), None).await;
    assert_eq!(st, 200, "{cb}");
    let items = cb["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{cb}");
    assert!(items.iter().all(|d| d["key_id"] == key_id.as_str() && d["endpoint_id"].is_null()));
    let (st, _) = s.call(Method::GET, "/v1/keys/key_nope/callbacks", None).await;
    assert_eq!(st, 404);
    // Another key's events do not go to this key's callback.
    s.create(json!({"name": "no callback"})).await;
    r.stays_at(2).await;
    // The key stays the same on every node and across restarts (stored, sealed).
    let other = s.second_node().await;
    let (_, again) = other.call(Method::GET, "/v1/webhooks/signing-key", None).await;
    assert_eq!(again["public_key"], pk.as_str());
    other.stop().await;
    s.stop().await;
}

async fn pending_deliveries_survive_a_restart(b: Backend) {
    // A node that takes the event but never gets to deliver it (as if killed at once).
    let s = node_that_never_delivers(b).await;
    let r = Receiver::start(&[]).await;
    endpoint(&s, &r.url("/hook"), json!(["key.*"])).await;
    s.create(json!({"name": "a"})).await;
    r.stays_at(0).await;
    // The event's delivery was committed with it: another node (a restart) delivers it.
    let next = s.second_node().await;
    let got = r.wait_for(1).await;
    assert_eq!(got[0].json()["type"], "key.created");

    // A delivery that failed before a restart is retried after it, with the same id.
    r.answer_next(&[500]);
    next.create(json!({"name": "b"})).await;
    let got = r.wait_for(2).await;
    let third = next.second_node().await;
    next.stop().await;
    third.clock.advance(chrono::Duration::seconds(1));
    let got2 = r.wait_for(3).await;
    assert_eq!(got2[2].id, got[1].id);
    third.stop().await;
    s.stop().await;
}

/// A node whose delivery worker never gets to look at the outbox (polls once an hour).
async fn node_that_never_delivers(b: Backend) -> TestServer {
    let config = keyward_server::ServerConfig {
        webhook_poll_interval: Duration::from_secs(3600),
        ..keyward_testkit::test_config()
    };
    TestServer::start_with(b, config).await
}

/// A node that claimed a delivery and died before sending it: its lease runs out, then
/// another node sends it (at least once).
async fn a_delivery_claimed_by_a_dead_node_is_made_by_another(b: Backend) {
    let s = node_that_never_delivers(b).await;
    let r = Receiver::start(&[]).await;
    endpoint(&s, &r.url("/hook"), json!(["key.*"])).await;
    s.create(json!({"name": "a"})).await;
    // The claim a node makes before sending, made here by hand; nothing is sent after it.
    let now = keyward_core::Clock::now(s.clock.as_ref());
    let claimed = s.store.claim_deliveries(now, chrono::Duration::seconds(40), 16).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let other = s.second_node().await;
    r.stays_at(0).await;
    s.clock.advance(chrono::Duration::seconds(41));
    let got = r.wait_for(1).await;
    assert_eq!(got[0].id, claimed[0].message_id);
    r.stays_at(1).await;
    other.stop().await;
    s.stop().await;
}

async fn two_nodes_deliver_each_event_once(b: Backend) {
    let s = TestServer::start(b).await;
    let other = s.second_node().await;
    let r = Receiver::start(&[]).await;
    endpoint(&s, &r.url("/hook"), json!(["key.created"])).await;
    for i in 0..20 {
        let node = if i % 2 == 0 { &s } else { &other };
        node.create(json!({"name": format!("k{i}")})).await;
    }
    r.wait_for(20).await;
    r.stays_at(20).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for g in r.got() {
        *seen.entry(g.id).or_default() += 1;
    }
    assert_eq!(seen.len(), 20);
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    other.stop().await;
    s.stop().await;
}

async fn private_destinations_are_refused(b: Backend) {
    let config = keyward_server::ServerConfig { webhook_allow_private: false, ..keyward_testkit::test_config() };
    let s = TestServer::start_with(b, config).await;
    let r = Receiver::start(&[]).await;
    for url in ["http://127.0.0.1:9/x", "http://[::1]/x", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/"]
    {
        let (st, v) = s.call(Method::POST, "/v1/webhooks", Some(json!({"url": url, "events": ["*"]}))).await;
        assert_eq!((st, v["error"]["field"].as_str()), (400, Some("url")), "{url} → {v}");
    }
    // A name is checked when it is resolved, at delivery: localhost resolves to loopback.
    let port = r.addr.port();
    let (id, _) = endpoint(&s, &format!("http://localhost:{port}/hook"), json!(["*"])).await;
    s.create(json!({"name": "k"})).await;
    eventually("the refused attempt to be logged", || async {
        deliveries(&s, &id).await.first().is_some_and(|d| d["attempts"] == 1)
    })
    .await;
    let d = &deliveries(&s, &id).await[0];
    assert!(d["last_error"].as_str().unwrap().contains("refused"), "{d}");
    assert!(r.got().is_empty(), "a refused destination was reached");
    s.stop().await;

    // With private destinations allowed, redirects are still not followed.
    let s = TestServer::start(Backend::Sqlite).await;
    let r = Receiver::start(&[302]).await;
    let (id, _) = endpoint(&s, &r.url("/hook"), json!(["*"])).await;
    s.create(json!({"name": "k"})).await;
    r.wait_for(1).await;
    r.stays_at(1).await;
    assert!(r.got().iter().all(|g| g.path == "/hook"), "a redirect was followed");
    let d = &deliveries(&s, &id).await[0];
    assert_eq!((d["status"].as_str(), d["last_status"].as_i64()), (Some("pending"), Some(302)), "{d}");
    s.stop().await;
}

async fn expiry_is_told_once(b: Backend) {
    let config =
        keyward_server::ServerConfig { sweep_interval: Duration::from_millis(50), ..keyward_testkit::test_config() };
    let s = TestServer::start_with(b, config).await;
    let other = s.second_node().await;
    let r = Receiver::start(&[]).await;
    s.policy(json!({"expiry_warning_days": 3})).await;
    endpoint(&s, &r.url("/hook"), json!(["key.expiring", "key.expired"])).await;
    let expires = (keyward_core::Clock::now(s.clock.as_ref()) + chrono::Duration::days(10)).to_rfc3339();
    let (key_id, _) = s.create(json!({"name": "short-lived", "expires_at": expires})).await;
    r.stays_at(0).await;
    s.clock.advance(chrono::Duration::days(8));
    let got = r.wait_for(1).await;
    assert_eq!(got[0].json()["type"], "key.expiring");
    assert_eq!(got[0].json()["data"]["key_id"], key_id.as_str());
    r.stays_at(1).await;
    s.clock.advance(chrono::Duration::days(3));
    let got = r.wait_for(2).await;
    assert_eq!(got[1].json()["type"], "key.expired");
    r.stays_at(2).await;
    let (_, a) = s.call(Method::GET, "/v1/audit?action=key.expir*", None).await;
    let kinds: Vec<&str> = a["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["key.expired", "key.expiring"], "each once, by one of the two nodes");
    other.stop().await;
    s.stop().await;
}

fn now_ts(s: &TestServer) -> i64 {
    keyward_core::Clock::now(s.clock.as_ref()).timestamp()
}
