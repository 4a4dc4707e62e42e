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

on_both_backends!(search_folds_case_alike);

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
