//! The audit trail (issue 11, first part): key, approval, role and service-account changes
//! append events in their own transaction; the chain names the first edited, deleted or
//! reordered event; secrets never appear.

use keyward_core::audit::Chained;
use keyward_testkit::{Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    key_changes_are_on_the_record,
    tampering_is_found,
    the_offline_check_and_head,
    concurrent_writers_on_two_nodes_make_one_chain,
    members_sessions_policies_and_credentials_are_on_the_record,
    retention_prunes_and_keeps_the_chain_verifiable,
    a_used_recovery_code_is_on_the_record,
    an_anchor_finds_a_cut_tail_and_a_moved_head,
    a_tampered_anchor_is_refused,
    a_chain_recomputed_without_the_pepper_fails,
    chains_from_before_keying_still_verify
);

async fn audit(s: &TestServer, query: &str) -> Value {
    let (st, v) = s.call(Method::GET, &format!("/v1/audit{query}"), None).await;
    assert_eq!(st, 200, "{v}");
    v
}

fn actions(v: &Value) -> Vec<String> {
    v["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect()
}

async fn key_changes_are_on_the_record(b: Backend) {
    let s = TestServer::start(b).await;
    let r = s
        .http()
        .post(s.url("/v1/keys"))
        .bearer_auth(&s.management_key)
        .header("x-request-id", "req-from-client-1")
        .header("user-agent", "audit-test/1")
        .json(&json!({"name": "billing", "permissions": ["wallet.read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let k: Value = r.json().await.unwrap();
    let (id, secret) = (k["id"].as_str().unwrap().to_string(), k["secret"].as_str().unwrap().to_string());
    s.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(json!({"name": "billing-2"}))).await;
    let (_, rotated) =
        s.call(Method::POST, &format!("/v1/keys/{id}/rotate"), Some(json!({"grace_period": "1h"}))).await;
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    s.call(Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    s.call(Method::POST, "/v1/roles", Some(json!({"name": "ops", "permissions": ["tx.*"]}))).await;
    s.create(json!({"name": "holder", "roles": ["ops"]})).await;
    let (st, _) = s.call(Method::DELETE, "/v1/roles/ops", None).await;
    assert_eq!(st, 409);
    let (_, sa) = s.call(Method::POST, "/v1/service-accounts", Some(json!({"name": "ci", "role": "ops"}))).await;
    let sa_id = sa["id"].as_str().unwrap().to_string();
    s.call(Method::PATCH, &format!("/v1/service-accounts/{sa_id}"), Some(json!({"disabled": true}))).await;
    s.call(Method::DELETE, &format!("/v1/service-accounts/{sa_id}"), None).await;

    let all = audit(&s, "").await;
    // The old key of the rotation expires within the hour: the background sweep may record
    // `key.expiring` for it at any moment, which is not one of the changes made here.
    let made: Vec<String> = actions(&all).into_iter().filter(|a| a != "key.expiring").collect();
    assert_eq!(
        made,
        [
            "service_account.delete",
            "service_account.update",
            "service_account.create",
            "role.delete",
            "key.create",
            "role.create",
            "key.revoke",
            "key.rotate",
            "key.update",
            "key.create",
            "workspace.create"
        ]
    );
    let items = all["items"].as_array().unwrap();
    let first = &items[items.len() - 2];
    assert_eq!(first["actor"]["type"], "management_key");
    assert_eq!((first["ip"].as_str(), first["user_agent"].as_str()), (Some("127.0.0.1"), Some("audit-test/1")));
    assert_eq!(first["request_id"], "req-from-client-1");
    assert_eq!((first["target"]["type"].as_str(), first["target"]["id"].as_str()), (Some("key"), Some(id.as_str())));
    assert_eq!(first["changes"]["permissions"], json!(["wallet.read"]));
    assert_eq!(first["seq"], 2, "after the workspace's creation");
    let refused = &all["items"][3];
    assert_eq!((refused["changes"]["refused"].as_bool(), refused["changes"]["keys"].as_u64()), (Some(true), Some(1)));

    // Filters and pages.
    let keys_only: Vec<String> =
        actions(&audit(&s, "?action=key.*").await).into_iter().filter(|a| a != "key.expiring").collect();
    assert_eq!(keys_only.len(), 5);
    let targeted: Vec<String> =
        actions(&audit(&s, &format!("?target={id}")).await).into_iter().filter(|a| a != "key.expiring").collect();
    assert_eq!(targeted, ["key.revoke", "key.rotate", "key.update", "key.create"]);
    let page = audit(&s, "?limit=4").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let rest = audit(&s, &format!("?limit=20&cursor={cursor}")).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), actions(&all).len() - 4);
    let (st, e) = s.call(Method::GET, "/v1/audit?since=yesterday", None).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("since")));
    let dev = s.member("developer", false).await;
    assert_eq!(s.call_as(&dev.token, Method::GET, "/v1/audit", None).await.0, 403, "developers do not read the trail");

    // The export streams the same events, oldest first, and no secret is anywhere in them.
    let export = s
        .http()
        .get(s.url("/v1/audit/export"))
        .bearer_auth(&s.management_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // The workspace's creation, the ten above, then the developer's invitation, joining and login.
    let expiring = lines.iter().filter(|l| l["action"] == "key.expiring").count();
    assert_eq!(lines.len() - expiring, 14);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[1]["seq"], 2);
    for secret in [&secret, &new_secret, &s.management_key] {
        assert!(!export.contains(secret.as_str()), "a secret reached the audit trail");
    }
    let (_, v) = s.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((v["ok"].as_bool(), v["events"].as_u64()), (Some(true), Some(14)), "{v}");
    assert_eq!(v["head"], lines[13]["hash"]);
    assert_eq!(
        (lines[0]["action"].as_str(), lines[0]["actor"]["type"].as_str()),
        (Some("workspace.create"), Some("system"))
    );
    s.stop().await;
}

async fn tampering_is_found(b: Backend) {
    for (tamper, broken_at) in [
        ("UPDATE audit_events SET changes = '{\"name\":\"forged\"}' WHERE seq = 3", 3),
        ("DELETE FROM audit_events WHERE seq = 2", 3),
        ("UPDATE audit_events SET seq = 99 WHERE seq = 4", 5),
        ("DELETE FROM audit_events WHERE seq = 6", 6),
    ] {
        let s = TestServer::start(b.clone()).await;
        for i in 0..5 {
            s.create(json!({"name": format!("k{i}")})).await;
        }
        let (_, v) = s.call(Method::GET, "/v1/audit/verify", None).await;
        assert_eq!(v["ok"], true, "{v}");
        s.db.exec(tamper).await;
        let (_, v) = s.call(Method::GET, "/v1/audit/verify", None).await;
        assert_eq!((v["ok"].as_bool(), v["broken_at"].as_i64()), (Some(false), Some(broken_at)), "{tamper}: {v}");
        s.stop().await;
    }
}

/// `keyward audit verify` reads the database itself; `audit head` prints what to record.
async fn the_offline_check_and_head(b: Backend) {
    let s = TestServer::start(b).await;
    s.create(json!({"name": "k"})).await;
    s.create(json!({"name": "l"})).await;
    let run = |args: &[&str]| kw_audit(&s, args);
    let head = run(&["audit", "head"]);
    assert!(head.status.success(), "{head:?}");
    let head = String::from_utf8(head.stdout).unwrap();
    let (_, v) = s.call(Method::GET, "/v1/audit/verify", None).await;
    assert!(head.contains(&format!("{} 3 {}", s.workspace_id, v["head"].as_str().unwrap())), "{head}");
    let ok = run(&["audit", "verify"]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    // The chain is keyed: without the pepper the check cannot be made, and says why.
    let no_pepper = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["audit", "verify", "--database-url", &s.db.url, "--data-dir", "/nonexistent-keyward-dir"])
        .env_remove("KEYWARD_PEPPER")
        .output()
        .unwrap();
    assert!(!no_pepper.status.success());
    assert!(String::from_utf8_lossy(&no_pepper.stderr).contains("KEYWARD_PEPPER"), "{no_pepper:?}");
    s.db.exec("UPDATE audit_events SET actor_name = 'someone else' WHERE seq = 1").await;
    let broken = run(&["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&broken.stdout).contains("BROKEN at seq 1"), "{broken:?}");
    s.stop().await;
}

/// Two nodes on one database writing at once still make one chain per workspace.
async fn concurrent_writers_on_two_nodes_make_one_chain(b: Backend) {
    let s = TestServer::start(b).await;
    let other = s.second_node().await;
    let mut tasks = Vec::new();
    for node in [&s, &other] {
        for i in 0..10 {
            let (url, key) = (node.url("/v1/keys"), node.management_key.clone());
            tasks.push(tokio::spawn(async move {
                let r =
                    reqwest::Client::new().post(url).bearer_auth(key).json(&json!({"name": format!("c{i}")})).send();
                r.await.unwrap().status().as_u16()
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let (_, v) = s.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((v["ok"].as_bool(), v["events"].as_u64()), (Some(true), Some(21)), "{v}");
    other.stop().await;
    s.stop().await;
}

/// Members, sessions (failed logins too), MFA, policies, management keys and verify tokens.
async fn members_sessions_policies_and_credentials_are_on_the_record(b: Backend) {
    let s = TestServer::start(b).await;
    let m = s.member("admin", true).await; // invite, join, login, MFA on
    let (st, _) = s.try_login(&m.email, "wrong password", None).await;
    assert_eq!(st, 401);
    s.call(Method::PATCH, &format!("/v1/members/{}", m.id), Some(json!({"role": "manager"}))).await;
    s.policy(json!({"temporary_max_days": 14})).await;
    let (_, mk) = s.call(Method::POST, "/v1/members/me/keys", Some(json!({"name": "ci"}))).await;
    let mk_id = mk["id"].as_str().unwrap().to_string();
    s.call(Method::DELETE, &format!("/v1/management-keys/{mk_id}"), None).await;
    let (_, vt) = s.call(Method::POST, "/v1/verify-tokens", Some(json!({"name": "gw"}))).await;
    s.call(Method::DELETE, &format!("/v1/verify-tokens/{}", vt["id"].as_str().unwrap()), None).await;
    s.call_as(&m.token, Method::DELETE, "/v1/sessions/current", None).await;
    s.call(Method::DELETE, &format!("/v1/members/{}", m.id), None).await;

    let v = audit(&s, "?limit=50").await;
    let mut got = actions(&v);
    got.reverse();
    assert_eq!(
        got,
        [
            "workspace.create",
            "member.invite",
            "member.join",
            "session.login",
            "member.mfa_enrol",
            "member.mfa_enable",
            "session.login_failed",
            "member.role",
            "policy.update",
            "management_key.create",
            "management_key.revoke",
            "verify_token.create",
            "verify_token.revoke",
            "session.logout",
            "member.remove"
        ]
    );
    let failed = v["items"].as_array().unwrap().iter().find(|e| e["action"] == "session.login_failed").unwrap();
    assert_eq!((failed["actor"]["id"].as_str(), failed["ip"].as_str()), (Some(m.id.as_str()), Some("127.0.0.1")));
    let export = s.http().get(s.url("/v1/audit/export")).bearer_auth(&s.management_key).send().await.unwrap();
    let export = export.text().await.unwrap();
    for secret in [mk["management_key"].as_str().unwrap(), vt["token"].as_str().unwrap(), &m.password, &m.token] {
        assert!(!export.contains(secret), "a secret reached the audit trail");
    }
    let (_, check) = s.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(check["ok"], true, "{check}");
    s.stop().await;
}

/// `audit_retention_days`: the sweeper prunes old events, records it in the chain (an
/// `audit.prune` event naming the checkpoint), and the chain verifies from that checkpoint;
/// tampering after it is still found, and so is deleting more and moving the checkpoint.
async fn retention_prunes_and_keeps_the_chain_verifiable(b: Backend) {
    let config = keyward_server::ServerConfig {
        audit_retention_days: Some(5),
        sweep_interval: std::time::Duration::from_millis(50),
        ..keyward_testkit::test_config()
    };
    let s = TestServer::start_with(b, config).await;
    for i in 0..3 {
        s.create(json!({"name": format!("old{i}")})).await;
    }
    s.clock.advance(chrono::Duration::days(10));
    // The sweeper runs every 50 ms: wait for its prune before writing more, so the order of
    // the events (and their seq) does not depend on when it ran.
    let started = std::time::Instant::now();
    while audit(&s, "?action=audit.prune").await["items"].as_array().unwrap().is_empty() {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the sweeper did not prune");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for i in 0..2 {
        s.create(json!({"name": format!("new{i}")})).await;
    }
    let all = audit(&s, "").await;
    assert_eq!(actions(&all), ["key.create", "key.create", "audit.prune"]);
    let prune = &all["items"][2];
    assert_eq!((prune["seq"].as_i64(), prune["actor"]["type"].as_str()), (Some(5), Some("system")));
    assert_eq!(
        (prune["changes"]["checkpoint"]["seq"].as_i64(), prune["changes"]["events"].as_i64()),
        (Some(4), Some(4))
    );
    let (_, v) = s.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((v["ok"].as_bool(), v["events"].as_u64()), (Some(true), Some(3)), "{v}");
    s.db.exec("UPDATE audit_events SET target_name = 'forged' WHERE seq = 6").await;
    let (_, v) = s.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((v["ok"].as_bool(), v["broken_at"].as_i64()), (Some(false), Some(6)), "{v}");
    s.db.exec("UPDATE audit_events SET target_name = 'new0' WHERE seq = 6").await;

    // Deleting more from the front and moving the checkpoint along is found.
    let ws = &s.workspace_id;
    s.db.exec(&format!(
        "UPDATE audit_checkpoints SET seq = 5, hash = (SELECT hash FROM audit_events WHERE workspace_id = '{ws}' AND seq = 5) WHERE workspace_id = '{ws}'"
    ))
    .await;
    s.db.exec(&format!("DELETE FROM audit_events WHERE workspace_id = '{ws}' AND seq = 5")).await;
    let (_, v) = s.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((v["ok"].as_bool(), v["broken_at"].as_i64()), (Some(false), Some(6)), "{v}");
    s.stop().await;
}

/// Logging in with a recovery code uses it up and says so in the trail (without the code).
async fn a_used_recovery_code_is_on_the_record(b: Backend) {
    let s = TestServer::start(b).await;
    let m = s.member("developer", false).await;
    let (st, e) = s.call_as(&m.token, Method::POST, "/v1/members/me/mfa/totp", None).await;
    assert_eq!(st, 200, "{e}");
    let secret = totp_rs::Secret::Encoded(e["secret"].as_str().unwrap().to_string()).to_bytes().unwrap();
    let otp = s.otp(&secret);
    let (st, r) = s.call_as(&m.token, Method::POST, "/v1/members/me/mfa/totp/confirm", Some(json!({"otp": otp}))).await;
    assert_eq!(st, 200, "{r}");
    let code = r["recovery_codes"][0].as_str().unwrap().to_string();
    s.login(&m.email, &m.password, Some(&code)).await;
    let (st, _) = s.try_login(&m.email, &m.password, Some(&code)).await;
    assert_eq!(st, 401, "a recovery code works once");
    let v = audit(&s, "?action=member.recovery_code_used").await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["actor"]["id"], m.id.as_str());
    let export = s.http().get(s.url("/v1/audit/export")).bearer_auth(&s.management_key).send().await.unwrap();
    assert!(!export.text().await.unwrap().contains(&code), "a recovery code reached the audit trail");
    s.stop().await;
}

/// Runs `keyward audit …` against the test server's database, with its pepper.
fn kw_audit(s: &TestServer, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .args(["--database-url", &s.db.url])
        .env_remove("KEYWARD_DATA_DIR")
        .env("KEYWARD_PEPPER", s.pepper.to_hex())
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `audit head --signed` written to a file.
fn take_anchor(s: &TestServer, dir: &std::path::Path) -> std::path::PathBuf {
    let o = kw_audit(s, &["audit", "head", "--signed"]);
    assert!(o.status.success(), "{o:?}");
    let path = dir.join("anchor.json");
    std::fs::write(&path, &o.stdout).unwrap();
    path
}

/// An insider deletes the tail and moves the head back with SQL: the chain alone still looks
/// intact, but an anchor taken before names the missing event.
async fn an_anchor_finds_a_cut_tail_and_a_moved_head(b: Backend) {
    let s = TestServer::start(b).await;
    for i in 0..3 {
        s.create(json!({"name": format!("k{i}")})).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let anchor = take_anchor(&s, dir.path());
    let doc: Value = serde_json::from_slice(&std::fs::read(&anchor).unwrap()).unwrap();
    let (_, v) = s.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(
        (doc["seq"].as_i64(), &doc["hash"], doc["workspace_id"].as_str()),
        (Some(4), &v["head"], Some(s.workspace_id.as_str()))
    );
    assert!(doc["time"].is_string() && doc["signature"].is_string(), "{doc}");
    for i in 0..2 {
        s.create(json!({"name": format!("later{i}")})).await;
    }
    let a = anchor.to_str().unwrap();
    let ok = kw_audit(&s, &["audit", "verify", "--anchor", a]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(stdout(&ok).contains("anchor ok: holds the anchored head (seq 4)"), "{ok:?}");

    let ws = &s.workspace_id;
    s.db.exec(&format!("DELETE FROM audit_events WHERE workspace_id = '{ws}' AND seq >= 4")).await;
    s.db.exec(&format!(
        "UPDATE audit_heads SET seq = 3, hash = (SELECT hash FROM audit_events WHERE workspace_id = '{ws}' AND seq = 3) WHERE workspace_id = '{ws}'"
    ))
    .await;
    // Without the anchor nothing shows: the shorter chain is consistent.
    let (_, v) = s.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((v["ok"].as_bool(), v["events"].as_u64()), (Some(true), Some(3)), "{v}");
    assert_eq!(kw_audit(&s, &["audit", "verify"]).status.code(), Some(0));
    let cut = kw_audit(&s, &["audit", "verify", "--anchor", a]);
    assert_eq!(cut.status.code(), Some(1), "{cut:?}");
    assert!(stdout(&cut).contains("ANCHOR NOT HELD: the chain ends at seq 3, before the anchored seq 4"), "{cut:?}");
    s.stop().await;
}

/// An anchor file changed after it was signed (a later seq, another hash) or signed with
/// another pepper is refused, with a clear message and exit 1.
async fn a_tampered_anchor_is_refused(b: Backend) {
    let s = TestServer::start(b).await;
    s.create(json!({"name": "k"})).await;
    let dir = tempfile::tempdir().unwrap();
    let anchor = take_anchor(&s, dir.path());
    let doc: Value = serde_json::from_slice(&std::fs::read(&anchor).unwrap()).unwrap();
    let mut forged = Vec::new();
    let mut moved = doc.clone();
    moved["seq"] = json!(1);
    forged.push(moved);
    let mut rehashed = doc.clone();
    rehashed["hash"] = json!("0".repeat(64));
    forged.push(rehashed);
    // A document signed under another pepper, with its own public key inside.
    let other = keyward_core::pepper::Pepper::from_hex(&"cd".repeat(32)).unwrap();
    let key = keyward_core::audit_anchor::AnchorKey::for_workspace(&other, &s.workspace_id);
    let t = chrono::Utc::now();
    let resigned =
        keyward_core::audit_anchor::Anchor::sign(&key, &s.workspace_id, 2, doc["hash"].as_str().unwrap(), Some(t), t);
    forged.push(serde_json::to_value(&resigned).unwrap());
    for (i, f) in forged.iter().enumerate() {
        let path = dir.path().join(format!("forged{i}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(f).unwrap()).unwrap();
        let o = kw_audit(&s, &["audit", "verify", "--anchor", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{f}: {o:?}");
        assert!(stdout(&o).contains("ANCHOR NOT HELD: the anchor's signature does not verify"), "{f}: {o:?}");
    }
    // Not an anchor at all: refused before anything is checked.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"seq\": 1}").unwrap();
    let o = kw_audit(&s, &["audit", "verify", "--anchor", junk.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an audit anchor document"), "{o:?}");
    // The untouched one still passes.
    assert_eq!(kw_audit(&s, &["audit", "verify", "--anchor", anchor.to_str().unwrap()]).status.code(), Some(0));
    s.stop().await;
}

/// Every event of the chain, oldest first, through the export.
async fn export(s: &TestServer) -> Vec<keyward_core::audit::AuditEvent> {
    let text = s.http().get(s.url("/v1/audit/export")).bearer_auth(&s.management_key).send().await.unwrap();
    text.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Writes `events` over the stored ones (same seq) and points the head at the last: what an
/// insider with SQL access can do.
async fn overwrite(s: &TestServer, events: &[keyward_core::audit::AuditEvent]) {
    let ws = &s.workspace_id;
    for e in events {
        let changes = e.changes.to_string().replace('\'', "''");
        s.db.exec(&format!(
            "UPDATE audit_events SET changes = '{changes}', prev_hash = '{}', hash = '{}' WHERE workspace_id = '{ws}' AND seq = {}",
            e.prev_hash, e.hash, e.seq
        ))
        .await;
    }
    let last = events.last().unwrap();
    s.db.exec(&format!(
        "UPDATE audit_heads SET seq = {}, hash = '{}' WHERE workspace_id = '{ws}'",
        last.seq, last.hash
    ))
    .await;
}

/// Each event re-sealed with plain SHA-256 (the old chain hash), after `edit`.
fn resealed_plain(
    events: Vec<keyward_core::audit::AuditEvent>,
    edit: impl Fn(&mut keyward_core::audit::AuditEvent),
) -> Vec<keyward_core::audit::AuditEvent> {
    let mut out: Vec<keyward_core::audit::AuditEvent> = Vec::new();
    for mut e in events {
        edit(&mut e);
        let prev = out.last().map_or(keyward_core::audit::GENESIS.to_string(), |x| x.hash.clone());
        out.push(e.seal_plain(&prev));
    }
    out
}

/// An insider without the pepper edits an event and recomputes the whole chain with plain
/// SHA-256, as the chain was before keying: the check refuses it, over HTTP and offline.
async fn a_chain_recomputed_without_the_pepper_fails(b: Backend) {
    let s = TestServer::start(b).await;
    for i in 0..3 {
        s.create(json!({"name": format!("k{i}")})).await;
    }
    let forged = resealed_plain(export(&s).await, |e| {
        if e.seq == 2 {
            e.changes["permissions"] = json!(["*"]);
        }
    });
    overwrite(&s, &forged).await;
    let (_, v) = s.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((v["ok"].as_bool(), v["broken_at"].as_i64()), (Some(false), Some(1)), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("recomputed without"), "{v}");
    let o = kw_audit(&s, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("BROKEN at seq 1"), "{o:?}");
    s.stop().await;
}

/// A database from before keying (its chain in plain SHA-256, the head not marked keyed):
/// the next server to open it records the switch in the chain, the old events still verify,
/// new ones are keyed.
async fn chains_from_before_keying_still_verify(b: Backend) {
    let s = TestServer::start(b).await;
    for i in 0..2 {
        s.create(json!({"name": format!("k{i}")})).await;
    }
    let legacy = resealed_plain(export(&s).await, |_| {});
    overwrite(&s, &legacy).await;
    s.db.exec(&format!("UPDATE audit_heads SET keyed_from = NULL WHERE workspace_id = '{}'", s.workspace_id)).await;
    // The upgraded server starts on it.
    let upgraded = s.second_node().await;
    let (_, v) = upgraded.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((v["ok"].as_bool(), v["events"].as_u64()), (Some(true), Some(4)), "{v}");
    upgraded.create(json!({"name": "after"})).await;
    let events = export(&upgraded).await;
    let switch = &events[3];
    assert_eq!((switch.action.as_str(), switch.seq), ("audit.chain_keyed", 4));
    assert_eq!(switch.changes["plain_through"], 3);
    for e in &events[..3] {
        assert_eq!(e.hash, e.plain_hash(), "seq {} keeps its plain hash", e.seq);
    }
    for e in &events[3..] {
        assert_ne!(e.hash, e.plain_hash(), "seq {} is keyed", e.seq);
    }
    let (_, v) = upgraded.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((v["ok"].as_bool(), v["events"].as_u64()), (Some(true), Some(5)), "{v}");
    assert_eq!(kw_audit(&upgraded, &["audit", "verify"]).status.code(), Some(0));
    // A plain event slipped in after the switch is refused.
    let mut last = events[4].clone();
    last.changes = json!({"forged": true});
    overwrite(&upgraded, &[last.seal_plain(&events[3].hash)]).await;
    let (_, v) = upgraded.call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((v["ok"].as_bool(), v["broken_at"].as_i64()), (Some(false), Some(5)), "{v}");
    upgraded.stop().await;
    s.stop().await;
}
