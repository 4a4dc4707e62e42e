//! The SDK's tower layer protecting an axum API against a real Keyward server.

use keyward_testkit::{Backend, TestServer};
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::routing::post;
use axum::{Extension, Router};
use keyward_client::layer::VerifyLayer;
use keyward_client::signer::{Algorithm, PrivateKey, Signer};
use keyward_client::{Client, VerifyResponse};
use keyward_core::{Clock, OsRandom};
use serde_json::json;

on_both_backends!(layer_lets_through_only_verified_requests);

async fn layer_lets_through_only_verified_requests(b: Backend) {
    let s = TestServer::start(b).await;
    let layer = VerifyLayer::new(Client::new(&s.base, None).unwrap())
        .require("wallet.read")
        .max_body(64)
        .client_ip(|p| p.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()));
    let app = Router::new()
        .route(
            "/v2/wallets",
            post(|Extension(key): Extension<VerifyResponse>, body: Bytes| async move {
                format!("{}|{}", key.key_id.unwrap_or_default(), String::from_utf8_lossy(&body))
            }),
        )
        .layer(layer);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/v2/wallets", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    let h = reqwest::Client::new();

    let (id, secret) =
        s.create(json!({"name": "reader", "permissions": ["wallet.*"], "ip_allowlist": ["127.0.0.1"]})).await;
    let r = h.post(&api).header("X-API-Key", &secret).body("hi").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), format!("{id}|hi"), "the handler sees the key and the whole body");

    let (_, weak) = s.create(json!({"name": "weak", "permissions": ["tx.create"]})).await;
    let r = h.post(&api).bearer_auth(&weak).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()),
        (403, "INSUFFICIENT_PERMISSIONS")
    );
    let r = h.post(&api).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()), (401, "MALFORMED"));
    // A key out of its limit: 429 with the limit's state and when to come back.
    let (_, limited) = s
        .create(
            json!({"name": "limited", "permissions": ["wallet.read"], "ratelimits": [{"limit": 1, "duration": "1m"}]}),
        )
        .await;
    assert_eq!(h.post(&api).header("X-API-Key", &limited).send().await.unwrap().status(), 200);
    let r = h.post(&api).header("X-API-Key", &limited).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()), (429, "RATE_LIMITED"));
    assert!(r.headers()["ratelimit"].to_str().unwrap().starts_with(r#""default";r=0;t="#));
    assert!(r.headers().contains_key("retry-after"));
    let r = h.post(&api).header("X-API-Key", &secret).body("x".repeat(65)).send().await.unwrap();
    assert_eq!(r.status(), 413);

    // A signed request: the signature covers the body, which still reaches the handler.
    let signer = Signer::new(PrivateKey::generate(Algorithm::Ed25519, &OsRandom));
    let (st, v) = s
        .call(
            reqwest::Method::POST,
            "/v1/keys",
            Some(json!({"name": "signer", "public_key": signer.public_key_hex(), "permissions": ["wallet.read"]})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let body = r#"{"n":"é"}"#;
    let headers = signer.headers("POST", "/v2/wallets", "", body.as_bytes(), s.clock.now().timestamp_millis());
    let mut rb = h.post(&api).body(body);
    for (k, val) in &headers {
        rb = rb.header(*k, val);
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), format!("{}|{body}", v["id"].as_str().unwrap()));
    let mut rb = h.post(&api).body(r#"{"n":"e"}"#);
    for (k, val) in &headers {
        rb = rb.header(*k, val);
    }
    assert_eq!(rb.send().await.unwrap().headers()["x-keyward-code"], "INVALID_SIGNATURE");
    task.abort();
    s.stop().await;
}
