//! `POST /v1/keys/verify` is answered by the fast lane straight from the connection; every
//! other route by the router. The lane must answer exactly as the router does: the same
//! status, body and request-id behaviour for valid keys, refusals and bad input, bodies in
//! pieces, escaped strings and oversized bodies.

use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use keyward_testkit::{Backend, TestServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

on_both_backends!(lane_answers_as_the_router_does, bodies_in_pieces_and_escapes_verify,);

/// The router's answer to a verify request, called in-process (no lane in front of it).
async fn via_router(s: &TestServer, body: &[u8]) -> (u16, String) {
    let state = s.server.as_ref().unwrap().state.clone();
    let req = axum::http::Request::post("/v1/keys/verify")
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let resp = keyward_server::router(state).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The lane's answer, over HTTP.
async fn via_lane(s: &TestServer, body: &[u8]) -> (u16, String) {
    let r = s.http().post(s.url("/v1/keys/verify")).header("content-type", "application/json").body(body.to_vec());
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn lane_answers_as_the_router_does(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, secret) =
        s.create(json!({"name": "lane", "permissions": ["a.read"], "scopes": ["w:1"], "meta": {"team": "x"}})).await;
    let (revoked_id, revoked) = s.create(json!({"name": "gone"})).await;
    let (st, _) = s.call(reqwest::Method::POST, &format!("/v1/keys/{revoked_id}/revoke"), None).await;
    assert_eq!(st, 200);
    let bodies: Vec<Vec<u8>> = vec![
        json!({"key": secret}).to_string().into_bytes(),
        json!({"key": secret, "permissions": "a.read", "scope": "w:1", "ip": "10.0.0.1", "cost": 0}).to_string().into(),
        json!({"key": secret, "permissions": "b.write"}).to_string().into(),
        json!({"key": secret, "workspace_id": format!("ws_{}", "0".repeat(26))}).to_string().into(),
        json!({"key": secret, "workspace_id": "ws_other"}).to_string().into(),
        json!({"key": secret, "environment": "test"}).to_string().into(),
        json!({"key": secret, "environment": "live"}).to_string().into(),
        json!({"key": secret, "environment": "live", "workspace_id": format!("ws_{}", "0".repeat(26))})
            .to_string()
            .into(),
        json!({"key": revoked, "environment": "live"}).to_string().into(),
        json!({"key": secret, "environment": "prod"}).to_string().into(),
        json!({"key": secret, "environment": 1}).to_string().into(),
        // Escaped: the lane's borrowing parse cannot take it as it is.
        format!("{{\"key\": \"{secret}\", \"environment\": \"li\\u0076e\"}}").into_bytes(),
        json!({"key": revoked}).to_string().into(),
        json!({"key": "kw_live_sk_notakey"}).to_string().into(),
        json!({"key": secret, "ip": "not-an-ip"}).to_string().into(),
        json!({"key": secret, "permissions": "a.read AND ("}).to_string().into(),
        json!({"key": secret, "colour": "blue"}).to_string().into(),
        json!({"key": 42}).to_string().into(),
        json!({"ip": "10.0.0.1"}).to_string().into(),
        json!({"key": secret, "cost": -1}).to_string().into(),
        b"{\"key\": ".to_vec(),
        b"{} trailing".to_vec(),
        b"   ".to_vec(),
        b"".to_vec(),
        b"[]".to_vec(),
    ];
    for body in &bodies {
        let lane = via_lane(&s, body).await;
        let router = via_router(&s, body).await;
        assert_eq!(lane, router, "for {}", String::from_utf8_lossy(body));
    }
    // A key of another environment: refused with its own code, from the lane too.
    let (st, text) = via_lane(&s, json!({"key": secret, "environment": "live"}).to_string().as_bytes()).await;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((st, v["valid"].as_bool(), v["code"].as_str()), (200, Some(false), Some("WRONG_ENVIRONMENT")));
    let (st, text) = via_lane(&s, json!({"key": secret, "environment": "prod"}).to_string().as_bytes()).await;
    assert_eq!(
        (st, serde_json::from_str::<serde_json::Value>(&text).unwrap()["error"]["field"].clone()),
        (400, json!("environment"))
    );
    // Refusals of bad input name the field, from the lane too.
    let (st, text) = via_lane(&s, json!({"key": secret, "colour": "blue"}).to_string().as_bytes()).await;
    assert_eq!(st, 400);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["error"]["field"], "colour");
    let (st, text) = via_lane(&s, json!({"key": secret, "ip": "nope"}).to_string().as_bytes()).await;
    assert_eq!(
        (st, serde_json::from_str::<serde_json::Value>(&text).unwrap()["error"]["field"].clone()),
        (400, json!("ip"))
    );

    // Over the body limit: 413 whether the length is declared or the body is chunked.
    let big = json!({"key": secret, "scope": "x".repeat(70 * 1024)}).to_string();
    let (st, text) = via_lane(&s, big.as_bytes()).await;
    assert_eq!(st, 413, "{text}");
    let chunks = futures_util::stream::iter(
        big.into_bytes().chunks(8 * 1024).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let r = s.http().post(s.url("/v1/keys/verify")).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(r.status(), 413);

    // Request ids: the caller's echoed, else one made, never the same twice, from the lane
    // and the router alike (they share one counter).
    let r = s.http().post(s.url("/v1/keys/verify")).header("x-request-id", "lane-7").json(&json!({"key": secret}));
    assert_eq!(r.send().await.unwrap().headers()["x-request-id"], "lane-7");
    let mut seen = std::collections::HashSet::new();
    for i in 0..6 {
        let r = if i % 2 == 0 {
            s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": secret})).send().await.unwrap()
        } else {
            s.http().get(s.url("/healthz")).send().await.unwrap()
        };
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(id.starts_with("req_"), "{id}");
        assert!(seen.insert(id), "an id made twice");
    }
    let r = s.http().post(s.url("/v1/keys/verify")).header("x-request-id", "a b").json(&json!({"key": secret}));
    assert!(r.send().await.unwrap().headers()["x-request-id"].to_str().unwrap().starts_with("req_"));

    // Other methods on the path, and other paths, are the router's.
    let r = s.http().get(s.url("/v1/keys/verify")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    s.stop().await;
}

async fn bodies_in_pieces_and_escapes_verify(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, secret) = s.create(json!({"name": "pieces"})).await;
    // A string with JSON escapes cannot be borrowed from the body; it still verifies.
    let escaped = format!("{{\"key\": \"{}\\u005f{}\"}}", &secret[..2], &secret[3..]);
    assert_eq!(&secret[2..3], "_");
    let (st, text) = via_lane(&s, escaped.as_bytes()).await;
    assert_eq!(st, 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["code"], "VALID", "{text}");

    // A body that comes in two pieces, the second after a pause longer than nothing but
    // shorter than the body timeout: joined, verified.
    let body = json!({"key": secret}).to_string();
    let (first, second) = body.split_at(10);
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /v1/keys/verify HTTP/1.1\r\nHost: keyward\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.write_all(second.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"code\":\"VALID\""), "{answer}");
    s.stop().await;
}
