//! What an anonymous caller of the verification endpoints cannot do: poison the usage flush
//! with a malformed workspace id, grow the database with made-up workspace ids, or turn
//! made-up public keys and verify tokens into storage reads. Counts are read after a graceful
//! stop (which flushes) through a second node on the same database.

use std::collections::HashMap;

use keyward_core::keyformat::generate_verify_token;
use keyward_core::{Clock, OsRandom};
use keyward_server::gateway::GatewayConfig;
use keyward_server::Services;
use keyward_store::{LastUsed, UsageRow};
use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;

on_both_backends!(
    malformed_workspace_ids_are_refused_and_usage_still_flows,
    a_row_the_database_refuses_leaves_the_rest_of_the_flush,
    made_up_workspaces_add_a_constant_number_of_rows,
    made_up_public_keys_and_verify_tokens_cost_bounded_reads,
);

/// One value of the first row of `sql` on the test's database.
async fn scalar(s: &TestServer, sql: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&s.db.url).await.unwrap();
    let n: Option<i64> = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
    c.close().await.ok();
    n.unwrap_or(0)
}

pub(crate) async fn metrics(s: &TestServer) -> HashMap<String, f64> {
    let text = s.http().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_string(), v.parse().unwrap())))
        .collect()
}

/// A workspace id no workspace has, well-formed.
fn made_up_workspace(i: usize) -> String {
    format!("ws_{i:026}")
}

async fn malformed_workspace_ids_are_refused_and_usage_still_flows(b: Backend) {
    let s = TestServer::start(b).await;
    let reader = s.second_node().await;
    let (id, secret) = s.create(json!({"name": "normal"})).await;
    let h = s.http();
    let long = "w".repeat(3000);
    for bad in ["\u{0}", long.as_str(), "ws_other", ""] {
        for (path, body) in [
            ("/v1/keys/verify", json!({"key": "kw_garbage", "workspace_id": bad})),
            ("/v1/keys/verify", json!({"key": secret, "workspace_id": bad})),
            (
                "/v1/requests/verify",
                json!({"method": "GET", "path": "/", "query": "", "body": "", "workspace_id": bad,
                       "headers": {"Biz-Api-Key": "00", "Biz-Api-Nonce": "1", "Biz-Api-Signature": "00"}}),
            ),
        ] {
            let r = h.post(s.url(path)).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 400, "{path} with {:?}", &bad[..bad.len().min(8)]);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["field"], "workspace_id", "{v}");
        }
        let r =
            h.get(s.url("/v1/auth")).query(&[("workspace", bad)]).header("X-API-Key", &secret).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["field"], "workspace", "{v}");
    }
    // A well-formed binding still verifies, and the normal key's use is written by the flush.
    assert_eq!(code(&s.verify(&secret, json!({"workspace_id": s.workspace_id})).await), "VALID");
    s.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(code(&s.verify(&secret, json!({"ip": "198.51.100.7"})).await), "VALID");
    s.stop().await;
    let stored = reader.store.get_key(&reader.workspace_id, &id).await.unwrap().unwrap();
    let n = scalar(
        &reader,
        &format!(
            "SELECT CAST(SUM(count) AS BIGINT) FROM usage_counts WHERE granularity = 'minute' AND key_id = '{id}'"
        ),
    )
    .await;
    assert_eq!(stored.last_used_ip.as_deref(), Some("198.51.100.7"), "the last-used mark was written ({n} counted)");
    assert_eq!(n, 2, "the key's usage was written");
    let m = metrics(&reader).await;
    assert_eq!(m["keyward_usage_rows_dropped_total"], 0.0);

    // The gateway refuses to start bound to a malformed workspace.
    let services = Services {
        store: reader.store.clone(),
        pepper: reader.pepper.clone(),
        clock: reader.clock.clone(),
        random: std::sync::Arc::new(OsRandom),
    };
    let gw =
        GatewayConfig { workspace: Some("ws_\u{0}".into()), ..GatewayConfig::new("http://127.0.0.1:9", Vec::new()) };
    let err = keyward_server::start_gateway(services, keyward_testkit::test_config(), gw).await.err();
    assert!(err.is_some_and(|e| e.to_string().contains("--workspace")), "the gateway started");
    reader.stop().await;
}

async fn a_row_the_database_refuses_leaves_the_rest_of_the_flush(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, _) = s.create(json!({"name": "normal"})).await;
    let minute = s.clock.now().timestamp_millis() / 60_000 * 60_000;
    let row = |ws: &str, key: &str| UsageRow {
        workspace_id: ws.into(),
        key_id: key.into(),
        start_ms: minute,
        code: "VALID",
        count: 3,
    };
    // Random letters: PostgreSQL would compress a repetitive value to fit the index.
    let long: String = (0..3000).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect();
    let marks = [
        LastUsed { key_id: id.clone(), at_ms: minute + 1, ip: Some("198.51.100.8".into()) },
        LastUsed { key_id: "key_\u{0}".into(), at_ms: minute, ip: None },
    ];
    let counts = [row("\u{0}", ""), row(&s.workspace_id, &id), row(&long, ""), row(&s.workspace_id, "key_\u{0}")];
    let written = s.store.record_usage(&marks, &counts, &[], &[]).await.expect("the flush is written");
    let stored = s.store.get_key(&s.workspace_id, &id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_ip.as_deref(), Some("198.51.100.8"), "the good mark");
    let n = scalar(
        &s,
        &format!(
            "SELECT CAST(SUM(count) AS BIGINT) FROM usage_counts WHERE granularity = 'minute' AND key_id = '{id}'"
        ),
    )
    .await;
    assert_eq!(n, 3, "the good count");
    if s.db.is_postgres() {
        // NUL in text, and a 3,000-character value too large for the index.
        assert_eq!(written.refused, 4, "{written:?}");
    } else {
        // SQLite stores them all.
        assert_eq!(written.refused, 0, "{written:?}");
    }
    s.stop().await;
}

async fn made_up_workspaces_add_a_constant_number_of_rows(b: Backend) {
    let s = TestServer::start(b).await;
    let reader = s.second_node().await;
    let before = scalar(&reader, "SELECT COUNT(*) FROM usage_counts").await;
    let minute = "SELECT CAST(SUM(count) AS BIGINT) FROM usage_counts WHERE granularity = 'minute' AND workspace_id";
    let own = format!("{minute} = '{}'", reader.workspace_id);
    // The real workspace's refusals stay its own. Counted (and so known to exist) before the
    // flood: a refusal bound to a workspace the node has not seen yet, arriving after 64
    // made-up ones in one flush interval, is counted server-wide by design.
    let v = s.verify("kw_garbage", json!({"workspace_id": s.workspace_id})).await;
    assert_eq!(code(&v), "MALFORMED");
    let started = std::time::Instant::now();
    while scalar(&reader, &own).await != 1 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the refusal was never flushed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let h = s.http();
    const N: usize = 300;
    for i in 0..N {
        let body = json!({"key": "kw_garbage", "workspace_id": made_up_workspace(i)});
        let r = h.post(s.url("/v1/keys/verify")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = h
            .get(s.url("/v1/auth"))
            .query(&[("workspace", made_up_workspace(N + i))])
            .header("X-API-Key", "kw_garbage")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    s.stop().await;
    // Two minute rows (the server-wide bucket's and the workspace's), rolled up into hours
    // and days by the lease holder.
    let rows = scalar(&reader, "SELECT COUNT(*) FROM usage_counts").await - before;
    assert!(rows <= 6, "{rows} rows for {N} made-up workspaces");
    let server_wide = scalar(&reader, &format!("{minute} = ''")).await;
    assert_eq!(server_wide, 2 * N as i64, "every refusal counted in the server-wide bucket");
    assert_eq!(scalar(&reader, &own).await, 1);
    reader.stop().await;
}

async fn made_up_public_keys_and_verify_tokens_cost_bounded_reads(b: Backend) {
    let s = TestServer::start(b).await;
    // Made-up credentials are answered from memory once the node knows which exist.
    let started = std::time::Instant::now();
    while metrics(&s).await["keyward_known_credentials_loaded"] != 1.0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the known sets never loaded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reads = |m: &HashMap<String, f64>, what: &str| {
        m[&format!("keyward_verify_storage_reads_total{{credential=\"{what}\"}}")]
    };
    // Credentials created now are known at once and verify.
    let (_, sk, _) = crate::signed_requests::register(&s, keyward_core::signing::Algorithm::Ed25519, json!({})).await;
    let (st, vt) = s.call(Method::POST, "/v1/verify-tokens", Some(json!({"name": "api"}))).await;
    assert_eq!(st, 201, "{vt}");
    let token = vt["token"].as_str().unwrap().to_string();
    let signed = crate::signed_requests::signed(&s, &sk, "GET", "/", "", "");
    assert_eq!(code(&crate::signed_requests::check(&s, &signed).await), "VALID");

    const N: usize = 500;
    let limit = keyward_server::LOOKUPS_PER_SECOND as f64;
    let m0 = metrics(&s).await;
    let nonce = s.clock.now().timestamp_millis().to_string();
    for i in 0..N {
        let pk = format!("{i:064x}");
        let body = json!({"method": "GET", "path": "/", "query": "", "body": "",
                          "headers": {"Biz-Api-Key": pk, "Biz-Api-Nonce": nonce, "Biz-Api-Signature": "00"}});
        assert_eq!(code(&crate::signed_requests::check(&s, &body).await), "NOT_FOUND");
    }
    let h = s.http();
    for _ in 0..N {
        let made_up = generate_verify_token("kw", &OsRandom);
        let r = h
            .post(s.url("/v1/keys/verify"))
            .header("Keyward-Verify-Token", made_up)
            .json(&json!({"key": "kw_garbage"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let m1 = metrics(&s).await;
    // The manual clock stands still: one second's budget of lookups for each kind.
    let public = reads(&m1, "public_key") - reads(&m0, "public_key");
    let tokens = reads(&m1, "verify_token") - reads(&m0, "verify_token");
    assert!(public <= limit, "{public} storage reads for {N} made-up public keys");
    assert!(tokens <= limit, "{tokens} storage reads for {N} made-up verify tokens");
    // The real ones still work.
    let r = h.post(s.url("/v1/keys/verify")).header("Keyward-Verify-Token", &token).json(&json!({"key": "kw_garbage"}));
    assert_eq!(r.send().await.unwrap().status(), 200);
    let again = crate::signed_requests::signed(&s, &sk, "GET", "/again", "", "");
    assert_eq!(code(&crate::signed_requests::check(&s, &again).await), "VALID");
    s.stop().await;
}
