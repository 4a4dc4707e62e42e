//! Keys imported by the hashes of their secrets (`POST /v1/keys/import`, `keyward keys
//! import`): they verify with their original secrets on every surface and node, are re-keyed
//! under the HMAC on first use, an import is all or none, and made-up credentials still cost
//! no storage read.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::TryStreamExt;
use keyward_core::import::plain_hash;
use keyward_core::pepper::hex_encode;
use keyward_core::Clock;
use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::verify_floods::metrics;

on_both_backends!(
    imported_keys_verify_with_their_own_secrets_and_are_rekeyed,
    an_import_is_all_or_nothing,
    made_up_keys_cost_no_read_beside_imported_ones,
    imports_are_governed_like_creates,
    the_cli_imports_a_file,
    rekeying_on_two_nodes_at_once_rekeys_once,
);

const SECRETS: [&str; 3] =
    ["sk_live_abc123def456ghi789", "legacy-4f1c2a9e-7d3b-4c1e-9a0f-2b8d6e5c1a70", "tok_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA"];

fn hex_of(secret: &str) -> String {
    hex_encode(&plain_hash(secret))
}

fn base64_of(secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(plain_hash(secret))
}

/// The three keys: hex, base64 and upper-case hex, with some settings.
fn three() -> Value {
    json!([
        {"hash": {"variant": "sha256_hex", "value": hex_of(SECRETS[0])}, "start": "sk_live_abc",
         "name": "from stripe-like", "environment": "live", "permissions": ["wallet.read"],
         "meta": {"plan": "pro"}},
        {"hash": {"variant": "sha256_base64", "value": base64_of(SECRETS[1])}, "name": "legacy",
         "credits": {"remaining": 10}, "ratelimits": [{"limit": 100, "duration": "1m"}]},
        {"hash": {"variant": "sha256_hex", "value": hex_of(SECRETS[2]).to_uppercase()}},
    ])
}

async fn import(s: &TestServer, body: Value) -> (u16, Value) {
    s.call(Method::POST, "/v1/keys/import", Some(body)).await
}

async fn auth(s: &TestServer, secret: &str) -> (u16, String) {
    let r = s.http().get(s.url("/v1/auth")).header("X-API-Key", secret).send().await.unwrap();
    let code = r.headers().get("x-keyward-code").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (r.status().as_u16(), code)
}

async fn key_count(s: &TestServer) -> i64 {
    s.store.count_keys(&s.workspace_id).await.unwrap()
}

/// Waits until the re-keying that follows a first use has landed for every key.
async fn rekeyed(s: &TestServer, ids: &[String]) {
    let started = Instant::now();
    for id in ids {
        while s.store.import_pending(id).await.unwrap() {
            assert!(started.elapsed() < Duration::from_secs(10), "key {id} was never re-keyed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn secret_reads(m: &HashMap<String, f64>) -> f64 {
    m["keyward_verify_storage_reads_total{credential=\"secret_key\"}"]
}

async fn known_loaded(s: &TestServer) {
    let started = Instant::now();
    while metrics(s).await["keyward_known_credentials_loaded"] != 1.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the known sets never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn imported_keys_verify_with_their_own_secrets_and_are_rekeyed(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, v) = import(&s, three()).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["imported"], 3);
    let ids: Vec<String> = v["ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 3);
    let (st, k) = s.call(Method::GET, &format!("/v1/keys/{}", ids[0]), None).await;
    assert_eq!(st, 200, "{k}");
    assert_eq!(
        (k["name"].as_str(), k["start"].as_str(), k["environment"].as_str()),
        (Some("from stripe-like"), Some("sk_live_abc"), Some("live"))
    );
    assert_eq!(k["meta"], json!({"plan": "pro"}));
    let (_, k) = s.call(Method::GET, &format!("/v1/keys/{}", ids[1]), None).await;
    assert_eq!((k["name"].as_str(), k["credits"]["remaining"].as_u64()), (Some("legacy"), Some(10)));
    let (_, k) = s.call(Method::GET, &format!("/v1/keys/{}", ids[2]), None).await;
    assert_eq!(k["name"], "imported");

    // Each verifies with its original secret, which has no Keyward prefix or checksum.
    let v = s.verify(SECRETS[0], json!({"permissions": "wallet.read", "environment": "live"})).await;
    assert_eq!((code(&v), v["key_id"].as_str()), ("VALID", Some(ids[0].as_str())), "{v}");
    let v = s.verify(SECRETS[1], json!({})).await;
    assert_eq!((code(&v), v["key_id"].as_str()), ("VALID", Some(ids[1].as_str())), "{v}");
    assert_eq!(auth(&s, SECRETS[2]).await, (200, "VALID".to_string()));
    // A near miss is nothing.
    assert_ne!(code(&s.verify("sk_live_abc123def456ghi780", json!({})).await), "VALID");
    assert_eq!(auth(&s, "legacy-4f1c2a9e").await.0, 401);

    // First use re-keyed them: the plain hash is gone, the HMAC is stored.
    rekeyed(&s, &ids).await;
    for (id, secret) in ids.iter().zip(SECRETS) {
        let rec = s.store.get_key(&s.workspace_id, id).await.unwrap().unwrap();
        assert_eq!(rec.hash.as_deref(), Some(s.pepper.hash(secret).as_str()), "{id}");
    }
    assert_eq!(s.store.import_hashes().try_collect::<Vec<_>>().await.unwrap(), Vec::<String>::new());
    // They keep verifying, here and on a node that never saw them, on every surface.
    let second = s.second_node().await;
    for node in [&s, &second] {
        for (id, secret) in ids.iter().zip(SECRETS) {
            let v = node.verify(secret, json!({})).await;
            assert_eq!((code(&v), v["key_id"].as_str()), ("VALID", Some(id.as_str())), "{v}");
            assert_eq!(auth(node, secret).await, (200, "VALID".to_string()));
        }
    }
    // Credits spent through the imported key count as any key's.
    let v = second.verify(SECRETS[1], json!({"cost": 5})).await;
    assert_eq!(code(&v), "VALID", "{v}");
    // Revoked, an imported key is refused like any other.
    let (st, _) = s.call(Method::POST, &format!("/v1/keys/{}/revoke", ids[2]), None).await;
    assert_eq!(st, 200);
    assert_eq!(code(&s.verify(SECRETS[2], json!({})).await), "REVOKED");

    // One audit event for the call, with the count and no hash or secret.
    let (st, a) = s.call(Method::GET, "/v1/audit?action=key.import", None).await;
    assert_eq!(st, 200, "{a}");
    let items = a["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{a}");
    assert_eq!(items[0]["changes"]["count"], 3);
    let text = a.to_string();
    for secret in SECRETS {
        for needle in [secret.to_string(), hex_of(secret), base64_of(secret), hex_of(secret)[..16].to_string()] {
            assert!(!text.to_lowercase().contains(&needle.to_lowercase()), "the audit event holds {needle}");
        }
    }
    second.stop().await;
    s.stop().await;
}

async fn an_import_is_all_or_nothing(b: Backend) {
    let s = TestServer::start(b).await;
    let refused = |v: &Value| v["error"]["field"].as_str().unwrap_or_default().to_string();
    let mut body = three();
    body[1]["hash"]["variant"] = json!("md5");
    let (st, v) = import(&s, body).await;
    assert_eq!((st, refused(&v)), (400, "keys[1].hash.variant".into()), "{v}");
    let mut body = three();
    body[2]["hash"]["value"] = json!("abc");
    let (st, v) = import(&s, body).await;
    assert_eq!((st, refused(&v)), (400, "keys[2].hash.value".into()), "{v}");
    let mut body = three();
    body[2]["hash"]["value"] = json!(base64_of("x"));
    let (st, v) = import(&s, body).await;
    assert_eq!((st, refused(&v)), (400, "keys[2].hash.value".into()), "base64 given as hex: {v}");
    let mut body = three();
    body[1]["environment"] = json!("prod");
    let (st, v) = import(&s, body).await;
    assert_eq!((st, refused(&v)), (400, "keys[1].environment".into()), "{v}");
    let mut body = three();
    body[0]["secret"] = json!(SECRETS[0]);
    let (st, v) = import(&s, body).await;
    assert_eq!((st, refused(&v)), (400, "keys[0].secret".into()), "{v}");
    let mut body = three();
    body[2]["roles"] = json!(["no-such-role"]);
    let (st, v) = import(&s, body).await;
    assert_eq!((st, refused(&v)), (400, "keys[2].roles".into()), "{v}");
    let (st, v) = import(&s, json!([])).await;
    assert_eq!((st, refused(&v)), (400, "keys".into()), "{v}");
    // One more than a call may hold.
    let many: Vec<Value> =
        (0..10_001).map(|i| json!({"hash": {"variant": "sha256_hex", "value": hex_of(&format!("k{i}"))}})).collect();
    let (st, v) = import(&s, Value::Array(many)).await;
    assert_eq!((st, refused(&v)), (400, "keys".into()), "{v}");
    assert_eq!(key_count(&s).await, 0, "a refused import wrote keys");
    // The same hash twice in a call, or again after it was imported: 409 naming the item.
    let mut body = three();
    body[2]["hash"] = body[0]["hash"].clone();
    let (st, v) = import(&s, body).await;
    assert_eq!((st, refused(&v)), (409, "keys[2].hash".into()), "{v}");
    let (st, _) = import(&s, json!([three()[1].clone()])).await;
    assert_eq!(st, 201);
    let (st, v) = import(&s, three()).await;
    assert_eq!((st, refused(&v)), (409, "keys[1].hash".into()), "{v}");
    assert_eq!(key_count(&s).await, 1, "only the one import that was accepted");
    assert_eq!(code(&s.verify(SECRETS[0], json!({})).await), "MALFORMED", "a refused import's key does not verify");
    // NDJSON, one key a line.
    let lines: String = three().as_array().unwrap()[..1]
        .iter()
        .chain(&three().as_array().unwrap()[2..])
        .map(|k| format!("{k}\n"))
        .collect();
    let r = s
        .http()
        .post(s.url("/v1/keys/import"))
        .bearer_auth(&s.management_key)
        .header("Content-Type", "application/x-ndjson")
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["imported"], 2);
    assert_eq!(code(&s.verify(SECRETS[2], json!({})).await), "VALID");
    s.stop().await;
}

async fn made_up_keys_cost_no_read_beside_imported_ones(b: Backend) {
    let s = TestServer::start(b).await;
    known_loaded(&s).await;
    let h = s.http();
    let made_up = |i: usize| format!("legacy-made-up-{i}");
    // Nothing imported: a key not of Keyward's shape is malformed, from memory.
    let m0 = metrics(&s).await;
    for i in 0..50 {
        assert_eq!(code(&s.verify(&made_up(i), json!({})).await), "MALFORMED");
    }
    assert_eq!(secret_reads(&metrics(&s).await) - secret_reads(&m0), 0.0);
    let (st, v) = import(&s, three()).await;
    assert_eq!(st, 201, "{v}");
    // With imported keys waiting, made-up ones of any shape still read nothing: the set of
    // imported hashes answers for them.
    let m1 = metrics(&s).await;
    for i in 0..300 {
        assert_eq!(code(&s.verify(&made_up(i), json!({})).await), "MALFORMED");
        let r = h.get(s.url("/v1/auth")).header("X-API-Key", made_up(i)).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(secret_reads(&metrics(&s).await) - secret_reads(&m1), 0.0, "made-up keys read storage");
    // A well-formed made-up key, cached as unknown after its first lookup, is not looked up
    // again by a plain hash either.
    let fake = keyward_core::keyformat::generate_secret("kw", "test", &keyward_core::OsRandom);
    assert_eq!(code(&s.verify(&fake, json!({})).await), "NOT_FOUND");
    let m2 = metrics(&s).await;
    for _ in 0..50 {
        assert_eq!(code(&s.verify(&fake, json!({})).await), "NOT_FOUND");
    }
    assert_eq!(secret_reads(&metrics(&s).await) - secret_reads(&m2), 0.0);
    // The imported ones cost two reads at first use (the HMAC, then the plain hash), then
    // none (one more if the re-keying's event already dropped the entry).
    let m3 = metrics(&s).await;
    for secret in SECRETS {
        assert_eq!(code(&s.verify(secret, json!({})).await), "VALID");
        assert_eq!(code(&s.verify(secret, json!({})).await), "VALID");
    }
    let reads = secret_reads(&metrics(&s).await) - secret_reads(&m3);
    assert!((6.0..=9.0).contains(&reads), "{reads} reads for three imported keys used twice");
    s.stop().await;
}

async fn imports_are_governed_like_creates(b: Backend) {
    let s = TestServer::start(b).await;
    // Owners and admins only.
    let dev = s.member("developer", false).await;
    let (st, v) = s.call_as(&dev.token, Method::POST, "/v1/keys/import", Some(three())).await;
    assert_eq!(st, 403, "{v}");
    let admin = s.member("admin", false).await;
    let mut one = three();
    one.as_array_mut().unwrap().truncate(1);
    let (st, v) = s.call_as(&admin.token, Method::POST, "/v1/keys/import", Some(one)).await;
    assert_eq!(st, 201, "{v}");
    // When creating keys needs approvals, an import is refused rather than let past them.
    s.policy(json!({"key.create": {"approvals": 1}})).await;
    let mut two = three();
    two.as_array_mut().unwrap().remove(0);
    let (st, v) = import(&s, two).await;
    assert_eq!(st, 409, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("key.create"), "{v}");
    assert_eq!(key_count(&s).await, 1);
    s.stop().await;
}

async fn the_cli_imports_a_file(b: Backend) {
    let s = TestServer::start(b).await;
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("keys.ndjson");
    let lines: String = three().as_array().unwrap().iter().map(|k| format!("{k}\n")).collect();
    std::fs::write(&file, lines).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["keys", "import", file.to_str().unwrap()])
        .env_clear()
        .env("HOME", home.path())
        .env("KEYWARD_SERVER", &s.base)
        .env("KEYWARD_TOKEN", &s.management_key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "imported 3 keys");
    assert_eq!(code(&s.verify(SECRETS[1], json!({})).await), "VALID");
    // The same file again: refused whole, the item named.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["keys", "import", "--format", "ndjson", file.to_str().unwrap()])
        .env_clear()
        .env("HOME", home.path())
        .env("KEYWARD_SERVER", &s.base)
        .env("KEYWARD_TOKEN", &s.management_key)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("keys[0].hash"), "{}", String::from_utf8_lossy(&o.stderr));
    s.stop().await;
}

async fn rekeying_on_two_nodes_at_once_rekeys_once(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, v) = import(&s, json!([three()[0].clone()])).await;
    assert_eq!(st, 201, "{v}");
    let id = v["ids"][0].as_str().unwrap().to_string();
    let other = keyward_store::Store::connect(&s.db.url).await.unwrap();
    let (plain, hmac) = (hex_of(SECRETS[0]), s.pepper.hash(SECRETS[0]));
    let now = s.clock.now();
    let (a, b) = tokio::join!(s.store.rekey_imported(&plain, &hmac, now), other.rekey_imported(&plain, &hmac, now));
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|r| **r).count(), 1, "exactly one re-keys");
    assert!(!s.store.import_pending(&id).await.unwrap());
    let rec = s.store.get_key(&s.workspace_id, &id).await.unwrap().unwrap();
    assert_eq!(rec.hash.as_deref(), Some(hmac.as_str()));
    assert!(!other.rekey_imported(&plain, &hmac, now).await.unwrap(), "nothing left to re-key");
    // Re-keyed behind the node's back, the key verifies by its HMAC.
    let v = s.verify(SECRETS[0], json!({})).await;
    assert_eq!((code(&v), v["key_id"].as_str()), ("VALID", Some(id.as_str())), "{v}");
    other.close().await;
    s.stop().await;
}
