//! Leaked keys: GitHub's secret-scanning partner call from a held-out sender (its own P-256
//! key, served from a keys URL of this test, signed with RustCrypto directly — not with
//! Keyward's code), anonymous reports, the `leaked_keys` policy, and `keyward scan` run as
//! users run it.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyward_core::import::plain_hash;
use keyward_core::pepper::hex_encode;
use keyward_testkit::{code, test_config, Backend, Member, TestServer};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use reqwest::Method;
use serde_json::{json, Value};

use crate::webhooks::Receiver;

on_both_backends!(
    github_revokes_a_live_key_and_labels_what_it_knows,
    a_bad_signature_changes_nothing,
    signing_keys_are_refetched_at_most_once_a_minute_and_used_stale,
    the_alert_policy_keeps_the_key_and_raises_the_alert,
    anonymous_reports_work_alike_and_are_bounded,
    scan_reports_what_it_finds,
    every_secret_keyward_issues_is_a_leak,
    the_alert_policy_keeps_every_credential,
    a_large_batch_is_looked_up_in_chunks,
    reports_count_per_address_across_nodes,
    a_leaked_operator_token_is_revoked,
    a_slow_batch_is_answered_in_time_and_finished_after,
);

/// The sender's keys URL: the document it serves, how often it was fetched, and a switch
/// that makes it fail.
#[derive(Clone)]
struct KeysUrl {
    url: String,
    doc: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

async fn serve_keys(State(k): State<KeysUrl>) -> Response {
    k.fetches.fetch_add(1, Ordering::SeqCst);
    if k.failing.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    axum::Json(k.doc.lock().unwrap().clone()).into_response()
}

impl KeysUrl {
    async fn start(keys: &[(&str, &SigningKey)]) -> KeysUrl {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let k = KeysUrl {
            url: format!("http://{}/meta/public_keys/secret_scanning", listener.local_addr().unwrap()),
            doc: Arc::new(Mutex::new(Value::Null)),
            fetches: Arc::default(),
            failing: Arc::default(),
        };
        k.publish(keys);
        let app = axum::Router::new().fallback(serve_keys).with_state(k.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        k
    }

    fn publish(&self, keys: &[(&str, &SigningKey)]) {
        let list: Vec<Value> = keys
            .iter()
            .map(|(id, sk)| {
                let pem = sk.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
                json!({"key_identifier": id, "key": pem, "is_current": true})
            })
            .collect();
        *self.doc.lock().unwrap() = json!({"public_keys": list});
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn new_signer() -> SigningKey {
    SigningKey::random(&mut rand::rngs::OsRng)
}

/// GitHub's call, signed by `sk` over the raw body as the partner program documents it.
async fn github_call(s: &TestServer, key_id: &str, sk: &SigningKey, body: &str) -> (u16, Value) {
    let sig: Signature = sk.sign(body.as_bytes());
    let r = s
        .http()
        .post(s.url("/v1/secret-scanning/github"))
        .header("content-type", "application/json")
        .header("Github-Public-Key-Identifier", key_id)
        .header("Github-Public-Key-Signature", B64.encode(sig.to_der().as_bytes()))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn matches(tokens: &[&str]) -> String {
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"token": t, "type": "keyward_api_key", "url": "https://github.com/o/r/blob/abc/.env", "source": "commit"}))
        .collect();
    serde_json::to_string(&items).unwrap()
}

async fn server_with_keys_url(b: Backend, url: &str) -> TestServer {
    TestServer::start_with(b, keyward_server::ServerConfig { secret_scanning_keys_url: url.into(), ..test_config() })
        .await
}

async fn key(s: &TestServer, id: &str) -> Value {
    let (st, v) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn audit_of(s: &TestServer, action: &str) -> Vec<Value> {
    let (st, v) = s.call(Method::GET, &format!("/v1/audit?action={action}"), None).await;
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

/// A string of a key's shape whose checksum does not hold.
fn look_alike(secret: &str) -> String {
    let mut b = secret.as_bytes().to_vec();
    let last = b.len() - 1;
    b[last] = if b[last] == b'a' { b'b' } else { b'a' };
    String::from_utf8(b).unwrap()
}

async fn github_revokes_a_live_key_and_labels_what_it_knows(b: Backend) {
    let sk = new_signer();
    let keys = KeysUrl::start(&[("gh-1", &sk)]).await;
    let s = server_with_keys_url(b, &keys.url).await;
    let hooks = Receiver::start(&[]).await;
    let (st, v) =
        s.call(Method::POST, "/v1/webhooks", Some(json!({"url": hooks.url("/hook"), "events": ["key.leaked"]}))).await;
    assert_eq!(st, 201, "{v}");
    let (id, secret) = s.create(json!({"name": "billing", "callback_url": hooks.url("/callback")})).await;
    assert_eq!(code(&s.verify(&secret, json!({})).await), "VALID");
    let (_, other) = s.create(json!({"name": "untouched"})).await;
    let unknown = "kw_live_sk_".to_string() + &"A".repeat(49);
    let fake = look_alike(&other);

    let body = matches(&[&secret, &unknown, &fake, &secret]);
    let (st, v) = github_call(&s, "gh-1", &sk, &body).await;
    assert_eq!(st, 200, "{v}");
    let labels: Vec<&str> = v.as_array().unwrap().iter().map(|f| f["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["true_positive", "false_positive", "false_positive", "true_positive"], "{v}");
    assert_eq!(v[0]["token_raw"], secret.as_str());
    assert_eq!(v[0]["token_type"], "keyward_api_key");

    // Revoked at once: verification refuses it, the record says where it was found.
    assert_eq!(code(&s.verify(&secret, json!({})).await), "REVOKED");
    assert_eq!(code(&s.verify(&other, json!({})).await), "VALID");
    let k = key(&s, &id).await;
    assert_eq!(k["status"], "revoked", "{k}");
    assert!(k["leaked_at"].is_string(), "{k}");
    assert_eq!(k["leak_source"], "github:commit");
    assert_eq!(k["leak_url"], "https://github.com/o/r/blob/abc/.env");

    // Audited once (the repeat in the batch did nothing), never with the secret.
    let leaked = audit_of(&s, "key.leaked").await;
    assert_eq!(leaked.len(), 1, "{leaked:?}");
    assert_eq!(leaked[0]["target"]["id"], id.as_str());
    assert_eq!(leaked[0]["changes"]["source"], "github:commit");
    assert_eq!(audit_of(&s, "key.revoke").await.len(), 1);
    let (_, all) = s.call(Method::GET, "/v1/audit", None).await;
    assert!(!all.to_string().contains(&secret), "the secret reached the audit trail");

    // The alert, the webhook event and the key's callback.
    let (_, alerts) = s.call(Method::GET, &format!("/v1/alerts?key_id={id}"), None).await;
    assert_eq!(alerts["items"][0]["kind"], "leaked", "{alerts}");
    let mut got = Vec::new();
    for _ in 0..200 {
        got = hooks.got();
        if got.iter().filter(|g| g.json()["type"] == "key.leaked").count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let leaked_hooks: Vec<_> = got.iter().filter(|g| g.json()["type"] == "key.leaked").collect();
    let paths: Vec<&str> = leaked_hooks.iter().map(|g| g.path.as_str()).collect();
    assert!(paths.contains(&"/hook") && paths.contains(&"/callback"), "{paths:?}");
    assert_eq!(leaked_hooks[0].json()["data"]["key_id"], id.as_str());
    assert!(!got.iter().any(|g| String::from_utf8_lossy(&g.body).contains(&secret)), "the secret reached a webhook");

    // Reported again later: still a true positive, nothing new recorded.
    let (st, v) = github_call(&s, "gh-1", &sk, &matches(&[&secret])).await;
    assert_eq!((st, v[0]["label"].as_str()), (200, Some("true_positive")));
    assert_eq!(audit_of(&s, "key.leaked").await.len(), 1);
    s.stop().await;
}

async fn a_bad_signature_changes_nothing(b: Backend) {
    let sk = new_signer();
    let keys = KeysUrl::start(&[("gh-1", &sk)]).await;
    let s = server_with_keys_url(b, &keys.url).await;
    let (id, secret) = s.create(json!({"name": "billing"})).await;
    let body = matches(&[&secret]);

    // Signed by someone else, a body changed after signing, no headers, a garbled signature.
    let (st, _) = github_call(&s, "gh-1", &new_signer(), &body).await;
    assert_eq!(st, 401);
    let sig: Signature = sk.sign(body.as_bytes());
    let tampered = body.replace("commit", "content");
    for (id_h, sig_h, b) in [
        (Some("gh-1"), Some(B64.encode(sig.to_der().as_bytes())), tampered.as_str()),
        (None, None, body.as_str()),
        (Some("gh-1"), Some("not base64 !".to_string()), body.as_str()),
        (Some("gh-1"), Some(B64.encode(b"\x30\x02\x00\x00")), body.as_str()),
    ] {
        let mut rb = s.http().post(s.url("/v1/secret-scanning/github")).body(b.to_string());
        if let Some(h) = id_h {
            rb = rb.header("Github-Public-Key-Identifier", h);
        }
        if let Some(h) = sig_h {
            rb = rb.header("Github-Public-Key-Signature", h);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(code(&s.verify(&secret, json!({})).await), "VALID");
    let k = key(&s, &id).await;
    assert!(k.get("leaked_at").is_none(), "{k}");
    assert!(audit_of(&s, "key.leaked").await.is_empty());
    // A signed body too large is refused before anything is parsed: 413, or (the server
    // stops reading at its limit and closes) a request whose body could not be written.
    let huge = format!("[{}]", "1,".repeat(3 * 1024 * 1024) + "1");
    let sig: Signature = sk.sign(huge.as_bytes());
    let sent = s
        .http()
        .post(s.url("/v1/secret-scanning/github"))
        .header("Github-Public-Key-Identifier", "gh-1")
        .header("Github-Public-Key-Signature", B64.encode(sig.to_der().as_bytes()))
        .body(huge)
        .send()
        .await;
    match sent {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    assert_eq!(code(&s.verify(&secret, json!({})).await), "VALID");
    s.stop().await;
}

async fn signing_keys_are_refetched_at_most_once_a_minute_and_used_stale(b: Backend) {
    let first = new_signer();
    let keys = KeysUrl::start(&[("gh-1", &first)]).await;
    let s = server_with_keys_url(b, &keys.url).await;
    let body = matches(&["not-a-key"]);
    let (st, _) = github_call(&s, "gh-1", &first, &body).await;
    assert_eq!(st, 200);
    assert_eq!(keys.fetches(), 1);
    let (st, _) = github_call(&s, "gh-1", &first, &body).await;
    assert_eq!((st, keys.fetches()), (200, 1), "a known key is not fetched again");

    // GitHub rotates: an identifier not held makes one fetch, then none within the minute.
    let second = new_signer();
    let (st, _) = github_call(&s, "gh-2", &second, &body).await;
    assert_eq!((st, keys.fetches()), (401, 1), "no fetch within a minute of the last");
    s.clock.advance(chrono::Duration::seconds(61));
    let (st, _) = github_call(&s, "gh-2", &second, &body).await;
    assert_eq!((st, keys.fetches()), (401, 2), "fetched, but gh-2 is not published yet");
    keys.publish(&[("gh-1", &first), ("gh-2", &second)]);
    for _ in 0..5 {
        let (st, _) = github_call(&s, "gh-2", &second, &body).await;
        assert_eq!(st, 401);
    }
    assert_eq!(keys.fetches(), 2, "unknown identifiers fetch at most once a minute");
    s.clock.advance(chrono::Duration::seconds(61));
    let (st, _) = github_call(&s, "gh-2", &second, &body).await;
    assert_eq!((st, keys.fetches()), (200, 3));

    // The keys URL fails: the keys held go on being used, even past a day.
    keys.failing.store(true, Ordering::SeqCst);
    s.clock.advance(chrono::Duration::days(2));
    let (st, _) = github_call(&s, "gh-1", &first, &body).await;
    assert_eq!((st, keys.fetches()), (200, 4), "a stale key is used when the fetch fails");
    let (st, _) = github_call(&s, "gh-2", &second, &body).await;
    assert_eq!((st, keys.fetches()), (200, 4));
    s.stop().await;
}

async fn the_alert_policy_keeps_the_key_and_raises_the_alert(b: Backend) {
    let sk = new_signer();
    let keys = KeysUrl::start(&[("gh-1", &sk)]).await;
    let s = server_with_keys_url(b, &keys.url).await;
    let p = s.policy(json!({"leaked_keys": "alert"})).await;
    assert_eq!(p["leaked_keys"], "alert", "{p}");
    let (id, secret) = s.create(json!({"name": "billing"})).await;
    let (st, v) = github_call(&s, "gh-1", &sk, &matches(&[&secret])).await;
    assert_eq!((st, v[0]["label"].as_str()), (200, Some("true_positive")));
    assert_eq!(code(&s.verify(&secret, json!({})).await), "VALID");
    let k = key(&s, &id).await;
    assert_eq!(k["status"], "active");
    assert!(k["leaked_at"].is_string(), "{k}");
    let (_, alerts) = s.call(Method::GET, "/v1/alerts?acknowledged=false", None).await;
    let items = alerts["items"].as_array().unwrap();
    assert!(items.iter().any(|a| a["kind"] == "leaked" && a["key_id"] == id.as_str()), "{alerts}");
    assert!(audit_of(&s, "key.revoke").await.is_empty());
    let leaked = audit_of(&s, "key.leaked").await;
    assert_eq!((leaked.len(), &leaked[0]["changes"]["revoked"]), (1, &json!(false)));
    // The console shows the banner on the key's page (the key still works: rotate, then revoke).
    let admin = s.member("admin", false).await;
    let mut browser = crate::console::Browser::signed_in(&s, &admin).await;
    let page = browser.get(&format!("/console/keys/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("This key was reported leaked") && page.body.contains("it still works"),
        "{}",
        page.body
    );
    s.stop().await;
}

async fn report(s: &TestServer, body: &str) -> (u16, String) {
    let r = s
        .http()
        .post(s.url("/v1/leaks"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn anonymous_reports_work_alike_and_are_bounded(b: Backend) {
    let config =
        keyward_server::ServerConfig { leak_report_limit: (9, std::time::Duration::from_secs(60)), ..test_config() };
    let s = TestServer::start_with(b, config).await;
    let (id, secret) = s.create(json!({"name": "billing"})).await;
    let (gone_id, gone) = s.create(json!({"name": "gone"})).await;
    s.call(Method::POST, &format!("/v1/keys/{gone_id}/revoke"), None).await;

    // The same 202 for a live key, a revoked one, a made-up one and a string that is no key.
    let mut answers = Vec::new();
    for k in [secret.clone(), gone.clone(), "kw_live_sk_".to_string() + &"B".repeat(49), "hello\u{0}".into()] {
        answers.push(report(&s, &json!({"key": k, "url": "https://paste.example/1"}).to_string()).await);
    }
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 202);
    assert_eq!(code(&s.verify(&secret, json!({})).await), "REVOKED");
    let k = key(&s, &id).await;
    assert_eq!((k["leak_source"].as_str(), k["leak_url"].as_str()), (Some("report"), Some("https://paste.example/1")));
    // Never a verification: the report left no last-used mark on the revoked key.
    assert!(key(&s, &gone_id).await["last_used_at"].is_null());

    // Hostile bodies: bounded work and a bounded answer.
    let huge = json!({"key": "x".repeat(200 * 1024)}).to_string();
    assert_eq!(report(&s, &huge).await.0, 413);
    let many: Vec<Value> = (0..500).map(|_| json!({"key": secret})).collect();
    assert_eq!(report(&s, &Value::Array(many).to_string()).await.0, 400);
    assert_eq!(report(&s, r#"{"key": 1}"#).await.0, 400);
    let (st, body) = report(&s, &json!({"key": secret, "url": "u".repeat(5000)}).to_string()).await;
    assert_eq!(st, 400, "{body}");
    // Every request counts towards the address's limit (9 a minute here; the 413 was refused before it counted): the tenth is refused.
    let (st, _) = report(&s, &json!({"key": secret}).to_string()).await;
    assert_eq!(st, 202);
    let (st, _) = report(&s, &json!({"key": secret}).to_string()).await;
    assert_eq!(st, 202);
    let (st, _) = report(&s, &json!({"key": secret}).to_string()).await;
    assert_eq!(st, 429);
    s.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(report(&s, &json!({"key": secret}).to_string()).await.0, 202);
    assert_eq!(audit_of(&s, "key.leaked").await.len(), 2, "one per key, however often reported");
    s.stop().await;
}

fn scan(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward")).arg("scan").args(args).current_dir(dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(st.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&st.stderr));
}

async fn scan_reports_what_it_finds(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, secret) = s.create(json!({"name": "committed"})).await;
    let (_, other) = s.create(json!({"name": "look-alike"})).await;
    let fake = look_alike(&other);
    let start = &secret[..secret.len() - 45];

    // A clean folder: 0. An error: 2.
    let clean = tempfile::tempdir().unwrap();
    std::fs::write(clean.path().join("a.txt"), format!("nothing here but {fake}\n")).unwrap();
    assert_eq!(scan(&[], clean.path()).0, 0, "a look-alike with a bad checksum is not a key");
    assert_eq!(scan(&["does/not/exist"], clean.path()).0, 2);

    // A folder with a key on line 3: 1, its start printed, never the whole key.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/config.env"), format!("# config\nNAME=x\nAPI_KEY={secret}\n{fake}\n")).unwrap();
    let (code_, out, err) = scan(&["."], dir.path());
    assert_eq!(code_, 1, "{out}{err}");
    assert!(out.contains("src/config.env:3:"), "{out}");
    assert!(out.contains(start), "{out}");
    assert!(!out.contains(&secret) && !err.contains(&secret), "the whole key was printed");
    assert!(!out.contains(&fake[..fake.len() - 10]), "the look-alike was reported: {out}");
    let (_, json_out, _) = scan(&["--json", "."], dir.path());
    let found: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!((found[0]["line"].as_u64(), found[0]["kind"].as_str()), (Some(3), Some("secret_key")));
    assert!(!json_out.contains(&secret));

    // Git history: a key committed, then removed, is still found with its commit.
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    std::fs::write(repo.path().join("deploy.sh"), format!("#!/bin/sh\ncurl -H 'Authorization: Bearer {secret}'\n"))
        .unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "oops"]);
    std::fs::write(repo.path().join("deploy.sh"), "#!/bin/sh\ncurl -H \"Authorization: Bearer $KEY\"\n").unwrap();
    git(repo.path(), &["commit", "-q", "-am", "fix"]);
    assert_eq!(scan(&[], repo.path()).0, 0, "the work tree is clean now");
    let (code_, out, err) = scan(&["--git"], repo.path());
    assert_eq!(code_, 1, "{out}{err}");
    let line = out.lines().next().unwrap();
    let parts: Vec<&str> = line.splitn(4, ':').collect();
    assert_eq!(parts[0].len(), 12, "commit:path:line, got {line}");
    assert_eq!((parts[1], parts[2]), ("deploy.sh", "2"), "{line}");
    assert!(!out.contains(&secret));
    let not_repo = tempfile::tempdir().unwrap();
    assert_eq!(scan(&["--git"], not_repo.path()).0, 2);

    // --report sends it to the server, which applies the policy.
    let (code_, out, err) = scan(&["--report", &s.base, "."], dir.path());
    assert_eq!(code_, 1, "{out}{err}");
    assert_eq!(code(&s.verify(&secret, json!({})).await), "REVOKED");
    assert_eq!(key(&s, &id).await["leak_source"], "report");

    // The gitleaks rule is printed, and its pattern names the kinds.
    let (code_, rule, _) = scan(&["--gitleaks-config"], dir.path());
    assert_eq!(code_, 0);
    assert!(rule.contains("[[rules]]") && rule.contains("_sk|mk|vt|st|op)_"), "{rule}");
    s.stop().await;
}

/// Every other secret Keyward issues (a management key, a verify token, a session token, a
/// key imported by hash and not used yet), and a registered public key, which is no secret.
struct Credentials {
    mk_id: String,
    mk: String,
    vt_id: String,
    vt: String,
    member: Member,
    imported_id: String,
    imported: &'static str,
    public_key: String,
}

async fn credentials(s: &TestServer) -> Credentials {
    let (st, mk) = s.call(Method::POST, "/v1/members/me/keys", Some(json!({"name": "ci"}))).await;
    assert_eq!(st, 201, "{mk}");
    let (st, vt) = s.call(Method::POST, "/v1/verify-tokens", Some(json!({"name": "gw"}))).await;
    assert_eq!(st, 201, "{vt}");
    let member = s.member("developer", false).await;
    let imported = "legacy-4f1c2a9e-7d3b-4c1e-9a0f-2b8d6e5c1a70";
    let body =
        json!([{"hash": {"variant": "sha256_hex", "value": hex_encode(&plain_hash(imported))}, "name": "legacy"}]);
    let (st, v) = s.call(Method::POST, "/v1/keys/import", Some(body)).await;
    assert_eq!(st, 201, "{v}");
    let imported_id = v["ids"][0].as_str().unwrap().to_string();
    let sk =
        keyward_core::signing::SecretKey::generate(keyward_core::signing::Algorithm::Ed25519, &keyward_core::OsRandom);
    let public_key = sk.public_key().to_hex();
    let body = json!({"name": "signer", "public_key": public_key, "algorithm": "ed25519"});
    let (st, v) = s.call(Method::POST, "/v1/keys", Some(body)).await;
    assert_eq!(st, 201, "{v}");
    Credentials {
        mk_id: mk["id"].as_str().unwrap().into(),
        mk: mk["management_key"].as_str().unwrap().into(),
        vt_id: vt["id"].as_str().unwrap().into(),
        vt: vt["token"].as_str().unwrap().into(),
        member,
        imported_id,
        imported,
        public_key,
    }
}

/// Is a management credential (management key or session token) still accepted?
async fn manages(s: &TestServer, token: &str) -> bool {
    s.call_as(token, Method::GET, "/v1/members/me", None).await.0 == 200
}

/// A verification with a verify token: its status (401 once the token is revoked).
async fn verify_with_token(s: &TestServer, token: &str, key: &str) -> u16 {
    let r = s
        .http()
        .post(s.url("/v1/keys/verify"))
        .header("keyward-verify-token", token)
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

fn item<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap_or_else(|| panic!("no {id} in {list}"))
}

async fn every_secret_keyward_issues_is_a_leak(b: Backend) {
    let sk = new_signer();
    let keys = KeysUrl::start(&[("gh-1", &sk)]).await;
    let s = server_with_keys_url(b, &keys.url).await;
    let hooks = Receiver::start(&[]).await;
    let events = ["management_key.leaked", "verify_token.*", "session.leaked"];
    let (st, v) =
        s.call(Method::POST, "/v1/webhooks", Some(json!({"url": hooks.url("/hook"), "events": events}))).await;
    assert_eq!(st, 201, "{v}");
    let c = credentials(&s).await;
    let (_, api_key) = s.create(json!({"name": "verified"})).await;
    // A second node has the verify token cached before the leak.
    let other = s.second_node().await;
    assert_eq!(verify_with_token(&other, &c.vt, &api_key).await, 200);
    assert!(manages(&s, &c.mk).await && manages(&s, &c.member.token).await);

    let body = matches(&[&c.mk, &c.vt, &c.member.token, c.imported, &c.public_key, &c.mk]);
    let (st, v) = github_call(&s, "gh-1", &sk, &body).await;
    assert_eq!(st, 200, "{v}");
    let labels: Vec<&str> = v.as_array().unwrap().iter().map(|f| f["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        ["true_positive", "true_positive", "true_positive", "true_positive", "false_positive", "true_positive"],
        "a registered public key is no secret: {v}"
    );

    // Each ended at once, on every node, as by hand.
    assert!(!manages(&s, &c.mk).await, "the leaked management key still works");
    assert!(!manages(&other, &c.mk).await, "the leaked management key still works on another node");
    assert!(!manages(&other, &c.member.token).await, "the leaked session still works");
    assert_eq!(verify_with_token(&s, &c.vt, &api_key).await, 401, "the leaked verify token still works");
    let dropped = crate::faults::eventually(std::time::Duration::from_secs(10), || async {
        verify_with_token(&other, &c.vt, &api_key).await == 401
    })
    .await;
    assert!(dropped, "the leaked verify token still works on another node");
    assert_eq!(code(&s.verify(c.imported, json!({})).await), "REVOKED", "the leaked imported key still works");
    assert!(manages(&s, &s.management_key).await, "the owner's own key was touched");
    assert_eq!(code(&s.verify(&api_key, json!({})).await), "VALID");

    // The records say where they were found.
    let (_, mks) = s.call(Method::GET, "/v1/management-keys", None).await;
    let mk = item(&mks, &c.mk_id);
    assert!(mk["revoked_at"].is_string() && mk["leaked_at"].is_string(), "{mk}");
    assert_eq!(
        (mk["leak_source"].as_str(), mk["leak_url"].as_str()),
        (Some("github:commit"), Some("https://github.com/o/r/blob/abc/.env"))
    );
    let (_, vts) = s.call(Method::GET, "/v1/verify-tokens", None).await;
    let vt = item(&vts, &c.vt_id);
    assert!(vt["revoked_at"].is_string() && vt["leak_source"] == "github:commit", "{vt}");
    let imported = key(&s, &c.imported_id).await;
    assert_eq!(
        (imported["status"].as_str(), imported["leak_source"].as_str()),
        (Some("revoked"), Some("github:commit"))
    );

    // Audited once each (the repeat in the batch did nothing), ended as by hand, never with a secret.
    for (leaked, ended, target) in [
        ("management_key.leaked", "management_key.revoke", c.mk_id.as_str()),
        ("verify_token.leaked", "verify_token.revoke", c.vt_id.as_str()),
        ("session.leaked", "session.logout", c.member.id.as_str()),
        ("key.leaked", "key.revoke", c.imported_id.as_str()),
    ] {
        let events = audit_of(&s, leaked).await;
        assert_eq!(events.len(), 1, "{leaked}: {events:?}");
        assert_eq!((&events[0]["target"]["id"], &events[0]["changes"]["revoked"]), (&json!(target), &json!(true)));
        let ends = audit_of(&s, ended).await;
        assert_eq!(ends.len(), 1, "{ended}: {ends:?}");
        assert_eq!(ends[0]["changes"]["reason"], "leaked", "{ends:?}");
    }
    let (_, all) = s.call(Method::GET, "/v1/audit?limit=200", None).await;
    for secret in [c.mk.as_str(), &c.vt, &c.member.token, c.imported] {
        assert!(!all.to_string().contains(secret), "a secret reached the audit trail");
    }

    // An alert each, on the credential (a session's on its member).
    let (_, alerts) = s.call(Method::GET, "/v1/alerts", None).await;
    for id in [&c.mk_id, &c.vt_id, &c.member.id, &c.imported_id] {
        let a = alerts["items"].as_array().unwrap().iter().find(|a| a["key_id"] == id.as_str());
        assert!(a.is_some_and(|a| a["kind"] == "leaked"), "no leaked alert on {id}: {alerts}");
    }

    // The webhook events, each of its own type, and no secret in any.
    let mut got = Vec::new();
    for _ in 0..200 {
        got = hooks.got();
        if got.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut types: Vec<String> = got.iter().map(|g| g.json()["type"].as_str().unwrap().to_string()).collect();
    types.sort();
    assert_eq!(types, ["management_key.leaked", "session.leaked", "verify_token.leaked"], "{types:?}");
    for secret in [&c.mk, &c.vt, &c.member.token] {
        assert!(
            !got.iter().any(|g| String::from_utf8_lossy(&g.body).contains(secret.as_str())),
            "a secret reached a webhook"
        );
    }

    // Reported again (anonymously, this time): still known, nothing new recorded.
    let (st, v) = github_call(&s, "gh-1", &sk, &matches(&[&c.vt])).await;
    assert_eq!((st, v[0]["label"].as_str()), (200, Some("true_positive")));
    assert_eq!(report(&s, &json!({"key": c.mk}).to_string()).await.0, 202);
    assert_eq!(audit_of(&s, "management_key.leaked").await.len(), 1);
    assert_eq!(audit_of(&s, "verify_token.leaked").await.len(), 1);
    other.stop().await;
    s.stop().await;
}

async fn the_alert_policy_keeps_every_credential(b: Backend) {
    let s = TestServer::start(b).await;
    s.policy(json!({"leaked_keys": "alert"})).await;
    let c = credentials(&s).await;
    let (_, api_key) = s.create(json!({"name": "verified"})).await;
    for secret in [c.mk.as_str(), &c.vt, &c.member.token, c.imported, &c.public_key] {
        let (st, body) = report(&s, &json!({"key": secret, "url": "https://paste.example/2"}).to_string()).await;
        assert_eq!(st, 202, "{body}");
    }
    // Kept: each still works.
    assert!(manages(&s, &c.mk).await && manages(&s, &c.member.token).await);
    assert_eq!(verify_with_token(&s, &c.vt, &api_key).await, 200);
    assert_eq!(code(&s.verify(c.imported, json!({})).await), "VALID");
    // Marked, audited as not revoked, alerted; nothing ended.
    let (_, mks) = s.call(Method::GET, "/v1/management-keys", None).await;
    let mk = item(&mks, &c.mk_id);
    assert!(mk.get("revoked_at").is_none() && mk["leak_source"] == "report", "{mk}");
    assert_eq!(mk["leak_url"], "https://paste.example/2");
    let (_, vts) = s.call(Method::GET, "/v1/verify-tokens", None).await;
    assert!(item(&vts, &c.vt_id)["leaked_at"].is_string(), "{vts}");
    for leaked in ["management_key.leaked", "verify_token.leaked", "session.leaked", "key.leaked"] {
        let events = audit_of(&s, leaked).await;
        assert_eq!(events.len(), 1, "{leaked}: {events:?}");
        assert_eq!(
            (&events[0]["changes"]["revoked"], &events[0]["changes"]["policy"]),
            (&json!(false), &json!("alert"))
        );
    }
    for ended in ["management_key.revoke", "verify_token.revoke", "session.logout", "key.revoke"] {
        assert!(audit_of(&s, ended).await.is_empty(), "{ended}");
    }
    let (_, alerts) = s.call(Method::GET, "/v1/alerts?acknowledged=false", None).await;
    let leaked = alerts["items"].as_array().unwrap().iter().filter(|a| a["kind"] == "leaked").count();
    assert_eq!(leaked, 4, "{alerts}");
    // A second report of each changes nothing.
    for secret in [c.mk.as_str(), &c.vt, &c.member.token] {
        assert_eq!(report(&s, &json!({"key": secret}).to_string()).await.0, 202);
    }
    assert_eq!(audit_of(&s, "session.leaked").await.len(), 1);
    // The console marks the management key and the verify token.
    let admin = s.member("admin", false).await;
    let mut browser = crate::console::Browser::signed_in(&s, &admin).await;
    for page in ["/console/management-keys", "/console/verify-tokens"] {
        let p = browser.get(page).await;
        assert!(p.body.contains("Reported leaked"), "{page}: {}", p.body);
    }
    s.stop().await;
}

/// GitHub's batches can hold 10,000 matches: looked up a chunk at a time, within one call.
async fn a_large_batch_is_looked_up_in_chunks(b: Backend) {
    let sk = new_signer();
    let keys = KeysUrl::start(&[("gh-1", &sk)]).await;
    let s = server_with_keys_url(b, &keys.url).await;
    let (id, secret) = s.create(json!({"name": "deep in the batch"})).await;
    let (st, mk) = s.call(Method::POST, "/v1/members/me/keys", Some(json!({"name": "ci"}))).await;
    assert_eq!(st, 201, "{mk}");
    let mk = mk["management_key"].as_str().unwrap().to_string();
    // Made-up tokens of every kind (checksums that hold), the real ones past the first chunks.
    let mut tokens: Vec<String> = (0..2400)
        .map(|i| match i % 3 {
            0 => keyward_core::keyformat::generate_secret("kw", "live", &keyward_core::OsRandom),
            1 => keyward_core::keyformat::generate_management("kw", &keyward_core::OsRandom),
            _ => format!("not-a-key-{i}"),
        })
        .collect();
    tokens[1700] = secret.clone();
    tokens[2300] = mk.clone();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let (st, v) = github_call(&s, "gh-1", &sk, &matches(&refs)).await;
    assert_eq!(st, 200);
    let positives: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, f)| f["label"] == "true_positive")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(positives, [1700, 2300]);
    assert_eq!(key(&s, &id).await["status"], "revoked");
    assert!(!manages(&s, &mk).await);
    s.stop().await;
}

/// The per-address limit of anonymous reports counts across nodes through Redis, and an IPv6
/// /64 is one address (addresses of this test's own, so other runs do not count).
async fn reports_count_per_address_across_nodes(b: Backend) {
    let Some(url) = keyward_testkit::redis_url("reports_count_per_address_across_nodes") else { return };
    let config = keyward_server::ServerConfig {
        leak_report_limit: (3, std::time::Duration::from_secs(60)),
        ..crate::shared_limits::with_redis(&url)
    };
    let a = TestServer::start_with(b, config.clone()).await;
    let c = a.second_node_with(config).await;
    let send = |node: &TestServer, ip: String| {
        node.http().post(node.url("/v1/leaks")).header("x-forwarded-for", ip).json(&json!({"key": "nothing"})).send()
    };
    // In 198.18.0.0/15 (for tests like this one): two runs at once pick the same one rarely.
    let v4 = format!("198.{}.{}.{}", 18 + u8::from(rand::random::<bool>()), rand::random::<u8>(), rand::random::<u8>());
    let mut answers = Vec::new();
    for node in [&a, &c, &a, &c] {
        answers.push(send(node, v4.clone()).await.unwrap().status().as_u16());
    }
    assert_eq!(answers, [202, 202, 202, 429], "three reports in all from one address, whatever the node");
    let net = format!("2001:db8:{:x}:{:x}", rand::random::<u16>(), rand::random::<u16>());
    let mut answers = Vec::new();
    for (node, host) in [(&a, "::1"), (&c, "::2"), (&a, "::abcd"), (&c, "::3")] {
        answers.push(send(node, format!("{net}{host}")).await.unwrap().status().as_u16());
    }
    assert_eq!(answers, [202, 202, 202, 429], "an IPv6 /64 counts as one address");
    c.stop().await;
    a.stop().await;
}

/// An operator token belongs to no workspace: whatever the policies say, a leaked one is
/// revoked, GitHub hears a true positive (a repeat too), and the operator log says why.
async fn a_leaked_operator_token_is_revoked(b: Backend) {
    let sk = new_signer();
    let keys = KeysUrl::start(&[("gh-1", &sk)]).await;
    let s = server_with_keys_url(b, &keys.url).await;
    let op = s.operator_token.clone();
    let (st, _) = s.call_as(&op, Method::GET, "/v1/workspaces", None).await;
    assert_eq!(st, 200);

    let (st, v) = github_call(&s, "gh-1", &sk, &matches(&[&op])).await;
    assert_eq!((st, v[0]["label"].as_str()), (200, Some("true_positive")), "{v}");
    let (st, _) = s.call_as(&op, Method::GET, "/v1/workspaces", None).await;
    assert_eq!(st, 401, "a leaked operator token still works");

    // Revoked, it is still known: a true positive again, and no second log line.
    let (st, v) = github_call(&s, "gh-1", &sk, &matches(&[&op])).await;
    assert_eq!((st, v[0]["label"].as_str()), (200, Some("true_positive")), "{v}");
    let log = s.store.operator_log(None, None, 100).await.unwrap();
    let revokes: Vec<_> = log.iter().filter(|l| l.action == "operator_token.revoke").collect();
    assert_eq!(revokes.len(), 1, "{log:?}");
    assert_eq!(revokes[0].changes["reason"], "leaked");
    assert!(!format!("{log:?}").contains(&op), "the secret reached the operator log");
    s.stop().await;
}

/// GitHub allows a call 30 s: a batch whose leaks take longer than the answer may wait is
/// answered with its labels, and its leaks are handled after (here the wait is zero).
async fn a_slow_batch_is_answered_in_time_and_finished_after(b: Backend) {
    let sk = new_signer();
    let keys = KeysUrl::start(&[("gh-1", &sk)]).await;
    let config = keyward_server::ServerConfig {
        secret_scanning_keys_url: keys.url.clone(),
        github_answer_within: std::time::Duration::ZERO,
        ..test_config()
    };
    let s = TestServer::start_with(b, config).await;
    let mut made = Vec::new();
    for i in 0..20 {
        made.push(s.create(json!({"name": format!("leaked-{i}")})).await);
    }
    let secrets: Vec<&str> = made.iter().map(|(_, secret)| secret.as_str()).chain(["not-a-key"]).collect();
    let (st, v) = github_call(&s, "gh-1", &sk, &matches(&secrets)).await;
    assert_eq!(st, 200, "{v}");
    let labels: Vec<&str> = v.as_array().unwrap().iter().map(|f| f["label"].as_str().unwrap()).collect();
    assert_eq!(labels.iter().filter(|l| **l == "true_positive").count(), 20, "{v}");
    assert_eq!(labels.last(), Some(&"false_positive"));
    // Every key is revoked soon after the answer.
    let started = std::time::Instant::now();
    for (id, _) in &made {
        loop {
            if key(&s, id).await["status"] == "revoked" {
                break;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "{id} is still not revoked");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    s.stop().await;
}
