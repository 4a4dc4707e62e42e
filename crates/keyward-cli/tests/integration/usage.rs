//! Usage you can see: counts after a known mix of verifications (two nodes adding up), a
//! graceful stop losing none, rollups and retention with the manual clock, each alert kind
//! once and delivered by webhook, `/metrics` parsed, request ids.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use keyward_testkit::{Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::webhooks::Receiver;

on_both_backends!(
    counts_add_up_across_nodes,
    a_graceful_stop_loses_no_count,
    rollups_keep_counts_past_minute_retention,
    tags_are_counted_per_tag_within_bounds,
    a_made_up_workspace_erases_no_key_counts,
    each_alert_kind_fires_once_and_is_delivered,
    metrics_parse_and_count,
    request_ids_are_echoed_and_audited,
);

async fn verify_as(s: &TestServer, body: Value) -> Value {
    let r = s.http().post(s.url("/v1/keys/verify")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn get(s: &TestServer, path: &str) -> Value {
    let (st, v) = s.call(Method::GET, path, None).await;
    assert_eq!(st, 200, "{path}: {v}");
    v
}

/// Polls `path` until `f` holds on its answer (flushes run every 100 ms in tests).
async fn until(s: &TestServer, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let v = get(s, path).await;
        if f(&v) {
            return v;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting for {what}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn counts_add_up_across_nodes(b: Backend) {
    let s = TestServer::start(b).await;
    let other = s.second_node().await;
    let (k1, secret1) = s.create(json!({"name": "busy", "permissions": ["wallet.read"]})).await;
    let (k2, secret2) = s.create(json!({"name": "revoked"})).await;
    let (st, _) = s.call(Method::POST, &format!("/v1/keys/{k2}/revoke"), None).await;
    assert_eq!(st, 200);
    for _ in 0..5 {
        assert_eq!(s.verify(&secret1, json!({})).await["code"], "VALID");
    }
    for _ in 0..2 {
        assert_eq!(s.verify(&secret1, json!({"permissions": "tx.create"})).await["code"], "INSUFFICIENT_PERMISSIONS");
    }
    for _ in 0..4 {
        assert_eq!(other.verify(&secret1, json!({})).await["code"], "VALID");
    }
    for _ in 0..2 {
        assert_eq!(other.verify(&secret2, json!({})).await["code"], "REVOKED");
    }
    // Refused before a key is known: for the workspace when verification is bound to it.
    for _ in 0..3 {
        let v = verify_as(&s, json!({"key": "kw_live_sk_nonsense", "workspace_id": s.workspace_id})).await;
        assert_eq!(v["code"], "MALFORMED");
    }
    assert_eq!(verify_as(&other, json!({"key": "nope"})).await["code"], "MALFORMED");

    let path = format!("/v1/keys/{k1}/usage?granularity=minute&from={}", enc(&ago(&s, 60)));
    let u = until(&s, &path, "both nodes' counts", |v| v["total"] == 11).await;
    assert_eq!(u["by_code"], json!({"VALID": 9, "INSUFFICIENT_PERMISSIONS": 2}), "{u}");
    let buckets = u["buckets"].as_array().unwrap();
    assert!(buckets.len() >= 60, "every minute of the range is listed: {}", buckets.len());
    assert_eq!(buckets.iter().map(|b| b["total"].as_u64().unwrap()).sum::<u64>(), 11);

    let w = until(&s, "/v1/usage", "the workspace's totals", |v| v["total"] == 16).await;
    assert_eq!(w["unknown_keys"], 3, "the unbound malformed one is server-wide, not this workspace's: {w}");
    assert_eq!(w["top_keys"][0]["key_id"], k1.as_str());
    assert_eq!(w["top_keys"][0]["name"], "busy");
    assert_eq!(w["top_keys"][1]["by_code"], json!({"REVOKED": 2}));
    let list = get(&s, "/v1/keys").await;
    let busy = list["items"].as_array().unwrap().iter().find(|k| k["id"] == k1.as_str()).unwrap().clone();
    assert_eq!(busy["requests_24h"], 11, "{busy}");

    // Bad ranges name their field.
    for (q, field) in [
        ("granularity=week", "granularity"),
        ("from=yesterday", "from"),
        ("granularity=minute&from=2020-01-01T00:00:00Z", "granularity"),
    ] {
        let (st, v) = s.call(Method::GET, &format!("/v1/keys/{k1}/usage?{q}"), None).await;
        assert_eq!((st, v["error"]["field"].as_str()), (400, Some(field)), "{q}: {v}");
    }
    let (st, _) = s.call(Method::GET, "/v1/keys/key_nope/usage", None).await;
    assert_eq!(st, 404);
    other.stop().await;
    s.stop().await;
}

fn ago(s: &TestServer, minutes: i64) -> String {
    (keyward_core::Clock::now(s.clock.as_ref()) - chrono::Duration::minutes(minutes)).to_rfc3339()
}

fn enc(t: &str) -> String {
    t.replace('+', "%2B")
}

async fn a_graceful_stop_loses_no_count(b: Backend) {
    // Counts would wait an hour for their flush: only the stop writes them.
    let config =
        keyward_server::ServerConfig { flush_interval: Duration::from_secs(3600), ..keyward_testkit::test_config() };
    let s = TestServer::start_with(b, config).await;
    let (k, secret) = s.create(json!({"name": "k"})).await;
    let reader = s.second_node().await;
    for _ in 0..7 {
        s.verify(&secret, json!({})).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = format!("/v1/keys/{k}/usage?granularity=minute&from={}", enc(&ago(&s, 5)));
    assert_eq!(get(&reader, &path).await["total"], 0, "not flushed yet");
    s.stop().await;
    assert_eq!(get(&reader, &path).await["total"], 7, "the stop flushed every count");
    reader.stop().await;
}

async fn rollups_keep_counts_past_minute_retention(b: Backend) {
    let s = TestServer::start(b).await;
    let (k, secret) = s.create(json!({"name": "k"})).await;
    let start = ago(&s, 60);
    for i in 0..6 {
        let tags = if i < 2 { json!(["a"]) } else { json!([]) };
        s.verify(&secret, json!({"tags": tags})).await;
    }
    let minute = format!("/v1/keys/{k}/usage?granularity=minute&from={}", enc(&ago(&s, 5)));
    until(&s, &minute, "the flush", |v| v["total"] == 6).await;
    until(&s, &format!("{minute}&tag=a"), "the tag's flush", |v| v["total"] == 2).await;
    // Two days and more later the minute buckets are gone, the hour and day buckets keep it.
    s.clock.advance(chrono::Duration::hours(49));
    let hour = format!("/v1/keys/{k}/usage?granularity=hour&from={}", enc(&start));
    let h = until(&s, &hour, "the hour rollup", |v| v["total"] == 6).await;
    assert_eq!(h["granularity"], "hour");
    let day = format!("/v1/keys/{k}/usage?granularity=day&from={}", enc(&start));
    until(&s, &day, "the day rollup", |v| v["total"] == 6).await;
    until(&s, &format!("{hour}&tag=a"), "the tag's hour rollup", |v| v["total"] == 2).await;
    until(&s, &format!("{day}&tag=a"), "the tag's day rollup", |v| v["total"] == 2).await;
    let started = Instant::now();
    loop {
        let (n,): (i64,) = count_minutes(&s, None).await;
        let (tagged,): (i64,) = count_minutes(&s, Some("a")).await;
        if n == 0 && tagged == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "minute buckets past retention were not pruned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A count after the jump is read from the fresh minute buckets.
    s.verify(&secret, json!({})).await;
    let now_hour = format!("/v1/keys/{k}/usage?granularity=hour&from={}", enc(&ago(&s, 120)));
    until(&s, &now_hour, "the new count", |v| v["total"] == 1).await;
    s.stop().await;
}

async fn count_minutes(s: &TestServer, tag: Option<&str>) -> (i64,) {
    let b = s
        .store
        .usage_buckets(
            "minute",
            &s.workspace_id,
            None,
            tag,
            chrono::DateTime::UNIX_EPOCH,
            chrono::Utc::now() + chrono::Duration::days(400),
        )
        .await
        .unwrap();
    (b.len() as i64,)
}

/// A refusal bound to a workspace that does not exist is settled at the flush; the keys'
/// own counts in that flush are not touched by it (they were once all folded server-wide).
async fn a_made_up_workspace_erases_no_key_counts(b: Backend) {
    let s = TestServer::start(b).await;
    let (k, secret) = s.create(json!({"name": "counted"})).await;
    for round in 1..=3u64 {
        verify_as(&s, json!({"key": "kw_garbage", "workspace_id": "ws_00000000000000000000000000"})).await;
        assert_eq!(s.verify(&secret, json!({})).await["code"], "VALID");
        let usage = format!("/v1/keys/{k}/usage?granularity=minute&from={}", enc(&ago(&s, 5)));
        until(&s, &usage, "the key's count", |v| v["total"] == round).await;
    }
    s.stop().await;
}

/// Tags name what a verification was for: counted per tag (beside the key's totals), bad
/// ones refused naming the field, and a caller inventing tags cannot grow what is kept.
async fn tags_are_counted_per_tag_within_bounds(b: Backend) {
    let s = TestServer::start(b).await;
    let (k, secret) = s.create(json!({"name": "tagged"})).await;
    let (_, other) = s.create(json!({"name": "untagged"})).await;
    for tags in [json!(["path=/orders", "tier=gold"]), json!(["path=/orders"]), json!([])] {
        assert_eq!(s.verify(&secret, json!({"tags": tags})).await["code"], "VALID");
    }
    s.verify(&secret, json!({"tags": ["path=/orders"], "permissions": "nope"})).await;
    s.verify(&other, json!({"tags": ["path=/orders"]})).await;
    let base = format!("/v1/keys/{k}/usage?granularity=minute&from={}", enc(&ago(&s, 5)));
    let orders = format!("{base}&tag={}", enc("path=/orders"));
    let v = until(&s, &orders, "the tag's counts", |v| v["total"] == 3).await;
    assert_eq!(v["by_code"]["VALID"], 2, "{v}");
    assert_eq!(v["by_code"]["INSUFFICIENT_PERMISSIONS"], 1, "{v}");
    until(&s, &format!("{base}&tag=tier%3Dgold"), "the other tag", |v| v["total"] == 1).await;
    assert_eq!(get(&s, &format!("{base}&tag=never")).await["total"], 0);
    assert_eq!(get(&s, &base).await["total"], 4, "the key's totals count every verification once");
    let ws = format!("/v1/usage?granularity=minute&from={}&tag={}", enc(&ago(&s, 5)), enc("path=/orders"));
    until(&s, &ws, "the workspace's tag counts", |v| v["total"] == 4).await;

    // Refused, naming the field, before anything is counted.
    let too_long = "x".repeat(65);
    for (tags, field) in [
        (json!((0..11).map(|i| format!("t{i}")).collect::<Vec<_>>()), "tags"),
        (json!(["ok", too_long]), "tags[1]"),
        (json!(["nul\u{0}"]), "tags[0]"),
        (json!([""]), "tags[0]"),
        (json!([42]), "tags"),
    ] {
        let r =
            s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": secret, "tags": tags})).send().await.unwrap();
        assert_eq!(r.status(), 400, "{tags}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["field"].as_str().unwrap_or("").starts_with(field), "{tags}: {body}");
    }
    let (st, v) = s.call(Method::GET, &format!("{base}&tag={}", "y".repeat(65)), None).await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("tag")), "{v}");

    // Made-up tags (the bound per flush is the buffer's unit test): the key's own count
    // stays whole, and the counter of dropped tag counts is published.
    let (k2, flood) = s.create(json!({"name": "flood"})).await;
    for i in 0..40 {
        s.verify(&flood, json!({"tags": [format!("made-up-{i}")]})).await;
    }
    let flooded = format!("/v1/keys/{k2}/usage?granularity=minute&from={}", enc(&ago(&s, 5)));
    until(&s, &flooded, "the flood's flush", |v| v["total"] == 40).await;
    let metrics = s.http().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("\nkeyward_usage_tags_dropped_total "), "{metrics}");
    s.stop().await;
}

async fn each_alert_kind_fires_once_and_is_delivered(b: Backend) {
    let s = TestServer::start(b).await;
    let r = Receiver::start(&[]).await;
    let (st, _) =
        s.call(Method::POST, "/v1/webhooks", Some(json!({"url": r.url("/alerts"), "events": ["usage.alert"]}))).await;
    assert_eq!(st, 201);
    s.policy(json!({"alerts": {"spike_factor": 3, "failure_ratio": 0.5, "min_requests": 4, "new_ip": true, "unused_days": 30}}))
        .await;
    // Everything below happens one minute into an hour H.
    let t0 = keyward_core::Clock::now(s.clock.as_ref());
    let hour = chrono::Duration::hours(1);
    let h = chrono::DateTime::from_timestamp(t0.timestamp() - t0.timestamp().rem_euclid(3600), 0).unwrap() + hour;
    s.clock.advance(h + chrono::Duration::minutes(1) - t0);
    let (k, secret) = s.create(json!({"name": "watched", "permissions": ["wallet.read"]})).await;

    // new_ip: a second address after a first one.
    s.verify(&secret, json!({"ip": "203.0.113.1"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.verify(&secret, json!({"ip": "203.0.113.2"})).await;
    s.verify(&secret, json!({"ip": "203.0.113.2"})).await;
    let got = r.wait_for(1).await;
    assert_eq!(
        (got[0].json()["data"]["kind"].as_str(), got[0].json()["data"]["key_id"].as_str()),
        (Some("new_ip"), Some(k.as_str()))
    );
    assert_eq!(got[0].json()["data"]["detail"]["ip"], "203.0.113.2");

    // failures: most verifications of H's first five minutes refused; judged once they end.
    for _ in 0..5 {
        s.verify(&secret, json!({"permissions": "tx.create"})).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.clock.advance(chrono::Duration::minutes(4) + chrono::Duration::seconds(1));
    let got = r.wait_for(2).await;
    assert_eq!(got[1].json()["data"]["kind"], "failures");
    assert_eq!(got[1].json()["data"]["detail"]["refused"], 5);
    r.stays_at(2).await;
    // spike: H's 8 verifications beat the empty baseline threefold; judged once H is over.
    s.clock.advance(hour);
    let got = r.wait_for(3).await;
    assert_eq!(got[2].json()["data"]["kind"], "spike");
    r.stays_at(3).await;

    // unused: a month without a verification.
    s.clock.advance(chrono::Duration::days(31));
    let got = r.wait_for(4).await;
    assert_eq!(got[3].json()["data"]["kind"], "unused");
    r.stays_at(4).await;

    let alerts = get(&s, "/v1/alerts?acknowledged=false").await;
    let items = alerts["items"].as_array().unwrap();
    let mut per_kind: HashMap<&str, usize> = HashMap::new();
    for a in items {
        *per_kind.entry(a["kind"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(per_kind, HashMap::from([("new_ip", 1), ("failures", 1), ("spike", 1), ("unused", 1)]), "{alerts}");
    let id = items[0]["id"].as_str().unwrap();
    let (st, a) = s.call(Method::POST, &format!("/v1/alerts/{id}/acknowledge"), None).await;
    assert_eq!((st, a["acknowledged_at"].is_string()), (200, true), "{a}");
    assert_eq!(get(&s, "/v1/alerts?acknowledged=false").await["items"].as_array().unwrap().len(), 3);
    let (st, v) = s.call(Method::GET, "/v1/alerts?acknowledged=maybe", None).await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("acknowledged")));
    let (_, audit) = s.call(Method::GET, "/v1/audit?action=usage.alert", None).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 4, "one system event per alert");
    s.stop().await;
}

/// The text format, parsed line by line: `name{labels} value`, comments, nothing else.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad name {name:?}");
        assert!(!series.contains("key_"), "a per-key label: {line}");
        out.insert(series.to_string(), value);
    }
    out
}

async fn metrics_parse_and_count(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, secret) = s.create(json!({"name": "k"})).await;
    for _ in 0..3 {
        s.verify(&secret, json!({})).await;
    }
    verify_as(&s, json!({"key": "garbage"})).await;
    let text = s.http().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let m = parse_metrics(&text);
    assert_eq!(m["keyward_verifications_total{code=\"VALID\"}"], 3.0, "{text}");
    assert_eq!(m["keyward_verifications_total{code=\"MALFORMED\"}"], 1.0);
    assert_eq!(m["keyward_verify_duration_seconds_count"], 4.0);
    assert_eq!(m["keyward_verify_duration_seconds_bucket{le=\"+Inf\"}"], 4.0);
    assert!(m.contains_key("keyward_cache_entries"));
    // The key's own creation event (PostgreSQL NOTIFY, asynchronous) may drop the entry the
    // verifications filled; the next verification fills it again.
    let started = std::time::Instant::now();
    loop {
        s.verify(&secret, json!({})).await;
        let text = s.http().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if parse_metrics(&text)["keyward_cache_entries"] >= 1.0 {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "the cache stays empty: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(m.contains_key("keyward_webhook_outbox_pending"));
    assert!(m.contains_key("keyward_invalidation_lag_seconds"));
    assert!(m.contains_key("keyward_usage_flush_duration_seconds_count"));
    assert!(!text.contains(&secret[8..]), "a secret in the metrics");
    s.stop().await;
}

async fn request_ids_are_echoed_and_audited(b: Backend) {
    let s = TestServer::start(b).await;
    let r = s
        .http()
        .post(s.url("/v1/keys"))
        .bearer_auth(&s.management_key)
        .header("x-request-id", "trace-abc-123")
        .json(&json!({"name": "traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123", "the caller's id is echoed");
    let made = s.http().get(s.url("/healthz")).send().await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(id.starts_with("req_"), "{id}");
    let other = s.http().get(s.url("/healthz")).send().await.unwrap();
    assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), id, "each request its own id");
    let bad = s.http().get(s.url("/healthz")).header("x-request-id", "a b").send().await.unwrap();
    assert!(bad.headers()["x-request-id"].to_str().unwrap().starts_with("req_"), "an unusable id is replaced");
    let (_, a) = s.call(Method::GET, "/v1/audit?action=key.create", None).await;
    assert_eq!(a["items"][0]["request_id"], "trace-abc-123");
    s.stop().await;
}
