//! The storage layer on both backends: one schema, the same search.

use keyward_store::Store;
use keyward_testkit::{Backend, TestDb, TestServer};
use reqwest::Method;
use serde_json::json;

/// Both backends end their migrations with the same tables and columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_have_the_same_schema() {
    let Some(pg) = Backend::postgres("both_backends_have_the_same_schema") else { return };
    let (a, b) = (TestDb::new(&Backend::Sqlite).await, TestDb::new(&pg).await);
    let (sa, sb) = (Store::connect(&a.url).await.unwrap(), Store::connect(&b.url).await.unwrap());
    let (ta, tb) = (sa.schema().await.unwrap(), sb.schema().await.unwrap());
    assert!(ta.iter().any(|(t, c)| t == "api_keys" && c == "public_key"), "{ta:?}");
    assert!(ta.len() > 50, "{ta:?}");
    assert_eq!(ta, tb, "SQLite and PostgreSQL schemas differ");
    sb.close().await;
    b.drop_db().await;
}

on_both_backends!(
    search_folds_case_alike,
    credit_counts_never_go_back_up,
    addresses_are_written_in_batches,
    approval_subjects_move_to_their_pair,
    rotations_made_before_0025_are_linked_both_ways
);

/// `q` matches name and `start` without regard to ASCII case, identically on both backends
/// (PostgreSQL's LIKE is case-sensitive, SQLite's is not; LOWER differs beyond ASCII).
async fn search_folds_case_alike(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, _) = s.create(json!({"name": "Billing Äpfel"})).await;
    let (_, k) = s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    let start = k["start"].as_str().unwrap().to_string();
    assert_ne!(start.to_lowercase(), start.to_uppercase());
    let found = |q: String| {
        let s = &s;
        async move {
            let path = format!("/v1/keys?q={}", form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>());
            let (st, v) = s.call(Method::GET, &path, None).await;
            assert_eq!(st, 200, "{v}");
            v["items"].as_array().unwrap().len()
        }
    };
    for q in ["billing", "BILLING", "Äpfel", "ing äp"] {
        let expect = usize::from(q != "ing äp");
        assert_eq!(found(q.to_string()).await, expect, "q={q:?}");
    }
    assert_eq!(found(start.to_lowercase()).await, 1, "start, lower case");
    assert_eq!(found(start.to_uppercase()).await, 1, "start, upper case");
    // Only ASCII letters fold, on both backends alike.
    assert_eq!(found("äPFEL".into()).await, 0);
    s.stop().await;
}

/// Nodes write their running credit counts back on their own clocks, and a node's last
/// sight of a count shared through Redis may be older than another node's: a later write
/// of more credits in the same period must not undo a lower count. A refill (a later
/// period) and credits set anew (a later `set_at`) do raise it.
async fn credit_counts_never_go_back_up(b: Backend) {
    use keyward_store::CreditCount;
    let s = TestServer::start(b).await;
    let (id, _) = s.create(json!({"name": "prepaid", "credits": {"remaining": 20}})).await;
    let stored = || async {
        let k = s.store.get_key(&s.workspace_id, &id).await.unwrap().unwrap();
        let c = k.credits.unwrap();
        (c.remaining, c.period, c.set_at.timestamp_millis())
    };
    let (_, _, set_at_ms) = stored().await;
    let count = |remaining, period| CreditCount { key_id: id.clone(), remaining, period, set_at_ms };
    s.store.save_credits(&[count(0, 0)]).await.unwrap();
    s.store.save_credits(&[count(5, 0)]).await.unwrap();
    assert_eq!(stored().await, (0, 0, set_at_ms), "an older, higher count written last");
    s.store.save_credits(&[count(20, 1)]).await.unwrap();
    assert_eq!(stored().await, (20, 1, set_at_ms), "a refill raises it");
    s.store.save_credits(&[count(3, 0)]).await.unwrap();
    assert_eq!(stored().await, (20, 1, set_at_ms), "a count of an earlier period is stale");
    let stale = CreditCount { set_at_ms: set_at_ms - 1, ..count(1, 1) };
    s.store.save_credits(&[stale]).await.unwrap();
    assert_eq!(stored().await, (20, 1, set_at_ms), "a count of credits since replaced");
    // Of two counts of one key, the later is the one with fewer left, then a later period.
    assert!(count(4, 0).is_later_than(&count(5, 0)));
    assert!(count(9, 1).is_later_than(&count(0, 0)));
    assert!(!count(5, 0).is_later_than(&count(5, 0)));
    s.stop().await;
}

/// A flush writes the addresses keys were seen from in batches of several rows: an address
/// first seen for a key is answered only when the key was seen from another before, however
/// the flush's rows fall into statements (here 40 keys, more than one batch).
async fn addresses_are_written_in_batches(b: Backend) {
    use keyward_store::SeenIp;
    let s = TestServer::start(b).await;
    let seen = |key: usize, ip: &str, at_ms: i64| SeenIp {
        workspace_id: s.workspace_id.clone(),
        key_id: format!("key_batch_{key:02}"),
        ip: ip.into(),
        at_ms,
    };
    let flush = |ips: Vec<SeenIp>| {
        let s = &s;
        async move {
            let mut new: Vec<String> = s
                .store
                .record_usage(&[], &[], &ips, &[])
                .await
                .unwrap()
                .new_ips
                .into_iter()
                .map(|n| n.key_id + " " + &n.ip)
                .collect();
            new.sort();
            new
        }
    };
    let keys = 0..40;
    assert!(flush(keys.clone().map(|k| seen(k, "10.0.0.1", 1_000)).collect()).await.is_empty(), "first addresses");
    assert!(flush(keys.clone().map(|k| seen(k, "10.0.0.1", 2_000)).collect()).await.is_empty(), "known addresses");
    let second: Vec<String> = keys.clone().map(|k| format!("key_batch_{k:02} 10.0.0.2")).collect();
    assert_eq!(flush(keys.clone().map(|k| seen(k, "10.0.0.2", 3_000)).collect()).await, second, "second addresses");
    let mut mixed: Vec<SeenIp> = keys.map(|k| seen(k, "10.0.0.1", 4_000)).collect();
    mixed.push(seen(39, "10.0.0.3", 4_000));
    mixed.push(seen(40, "10.0.0.1", 4_000));
    assert_eq!(flush(mixed).await, vec!["key_batch_39 10.0.0.3".to_string()], "one new among known ones");
    s.stop().await;
}

/// Migration 0015 moves `approvals.key_id` (a key id, a member id or a role's name, told
/// apart by the action) to `subject_kind`/`subject_id`; the old rows read back whole.
async fn approval_subjects_move_to_their_pair(b: Backend) {
    use keyward_core::approval_change::{ApprovalChange, SubjectKind};
    let db = TestDb::new(&b).await;
    keyward_store::migrate_to(&db.url, 14).await.unwrap();
    db.exec("INSERT INTO workspaces (id, name, prefix, created_at) VALUES ('ws_old', 'old', 'old', 1)").await;
    let rows = [
        (
            "apr_1",
            "key.update",
            "key_1",
            r#"{"changes":{"name":"n","roles":null,"permissions":null,"scopes":null,"ip_allowlist":null,"meta":null}}"#,
        ),
        ("apr_2", "key.rotate", "key_3", r#"{"old_key_id":"key_2","grace_period_seconds":60}"#),
        ("apr_3", "member.remove", "mem_1", r#"{"role":"admin","email":"a@example.com"}"#),
        ("apr_4", "member.role", "mem_2", r#"{"role":"admin"}"#),
        ("apr_5", "role.update", "deployers", r#"{"permissions":["deploy:*"],"description":null}"#),
        ("apr_6", "policy.update", "ws_old", r#"{"changes":{"require_mfa":false},"weakens":"require_mfa"}"#),
        ("apr_7", "service_account.role", "sa_1", r#"{"role":"deployers","from":"readers"}"#),
    ];
    for (id, action, key_id, payload) in rows {
        db.exec(&format!(
            "INSERT INTO approvals (id, workspace_id, action, key_id, requested_by, status, required, approver_roles, \
             payload, reason, decided_by, created_at, expires_at, decided_at) VALUES ('{id}', 'ws_old', '{action}', \
             '{key_id}', 'mem_0', 'rejected', 1, '[\"owner\"]', '{payload}', NULL, 'mem_0', 1, 2, 2)"
        ))
        .await;
    }
    let store = Store::connect(&db.url).await.unwrap();
    let expect = [
        ("apr_1", SubjectKind::Key, "key_1"),
        ("apr_2", SubjectKind::Key, "key_3"),
        ("apr_3", SubjectKind::Member, "mem_1"),
        ("apr_4", SubjectKind::Member, "mem_2"),
        ("apr_5", SubjectKind::Role, "deployers"),
        ("apr_6", SubjectKind::Workspace, "ws_old"),
        ("apr_7", SubjectKind::ServiceAccount, "sa_1"),
    ];
    for ((id, kind, subject), (_, action, _, payload)) in expect.into_iter().zip(rows) {
        let a = store.get_approval("ws_old", id).await.unwrap().unwrap_or_else(|| panic!("{id} is gone"));
        assert_eq!((a.request.subject.kind, a.request.subject.id.as_str()), (kind, subject), "{id}");
        assert_eq!(a.request.action().as_str(), action, "{id}");
        let stored: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(a.request.change.payload(), stored, "{id}: the payload reads back as it was");
    }
    let listed = store.list_approvals("ws_old", None, None, 50).await.unwrap();
    assert_eq!(listed.len(), 7);
    let rotate = listed.iter().find(|a| a.request.id == "apr_2").unwrap();
    assert!(
        matches!(&rotate.request.change, ApprovalChange::KeyRotate { old_key_id, grace_period_seconds: 60 } if old_key_id == "key_2")
    );
    assert_eq!(rotate.request.subject.key_id(), Some("key_3"));
    store.close().await;
    if db.is_postgres() {
        db.drop_db().await;
    }
}

/// Migration 0025 adds `rotated_from` and fills it in for rotations made before it, from the
/// old key's `replaced_by`: both keys of an earlier rotation read as linked.
async fn rotations_made_before_0025_are_linked_both_ways(b: Backend) {
    let db = TestDb::new(&b).await;
    keyward_store::migrate_to(&db.url, 22).await.unwrap();
    db.exec("INSERT INTO workspaces (id, name, prefix, created_at) VALUES ('ws_old', 'old', 'old', 1)").await;
    for (id, replaced_by) in [("key_1", "'key_2'"), ("key_2", "'key_3'"), ("key_3", "NULL"), ("key_9", "NULL")] {
        db.exec(&format!(
            "INSERT INTO api_keys (id, workspace_id, name, kind, environment, status, start, roles, permissions, \
             scopes, ip_allowlist, meta, created_at, updated_at, replaced_by) VALUES ('{id}', 'ws_old', '{id}', \
             'secret', 'test', 'active', 'old_test_sk_{id}', '[]', '[]', '[]', '[]', '{{}}', 1, 1, {replaced_by})"
        ))
        .await;
    }
    let store = Store::connect(&db.url).await.unwrap();
    let links = |k: keyward_core::model::KeyRecord| (k.rotated_from, k.rotated_to);
    let get = |id: &'static str| {
        let store = &store;
        async move { links(store.get_key("ws_old", id).await.unwrap().unwrap()) }
    };
    assert_eq!(get("key_1").await, (None, Some("key_2".into())));
    assert_eq!(get("key_2").await, (Some("key_1".into()), Some("key_3".into())));
    assert_eq!(get("key_3").await, (Some("key_2".into()), None));
    assert_eq!(get("key_9").await, (None, None));
    store.close().await;
    if db.is_postgres() {
        db.drop_db().await;
    }
}
