//! Verification bound to a workspace: another tenant's key answers `NOT_FOUND`, exactly like
//! a key that does not exist, on every surface — the verify API, forward-auth, signed
//! requests, verify tokens, the gateway and the SDK's tower layer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use keyward_client::layer::VerifyLayer;
use keyward_client::Client;
use keyward_core::signing::Algorithm;
use keyward_core::OsRandom;
use keyward_server::bootstrap::{create_workspace, InitOptions};
use keyward_server::gateway::GatewayConfig;
use keyward_server::Services;
use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::signed_requests::{check, signed};

on_both_backends!(another_workspace_key_is_not_found_everywhere);

async fn verify_as(s: &TestServer, token: Option<&str>, body: Value) -> Value {
    let mut rb = s.http().post(s.url("/v1/keys/verify")).json(&body);
    if let Some(t) = token {
        rb = rb.header("Keyward-Verify-Token", t);
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn another_workspace_key_is_not_found_everywhere(b: Backend) {
    let s = TestServer::start(b).await;
    let ws_a = s.workspace_id.clone();
    let opts =
        InitOptions { workspace_name: "beta".into(), prefix: "beta".into(), owner_email: "b@example.com".into() };
    let beta = create_workspace(&s.store, &s.pepper, s.clock.as_ref(), &OsRandom, &opts).await.unwrap();
    let (_, key_a) = s.create(json!({"name": "mine"})).await;
    let (st, v) = s.call_as(&beta.management_key, Method::POST, "/v1/keys", Some(json!({"name": "theirs"}))).await;
    assert_eq!(st, 201, "{v}");
    let key_b = v["secret"].as_str().unwrap().to_string();
    let unknown = keyward_core::keyformat::generate_secret("beta", "test", &OsRandom);

    // The verify API: unbound, both verify; bound to A, B's key reads like an unknown one.
    assert_eq!(code(&verify_as(&s, None, json!({"key": key_b})).await), "VALID");
    let mine = verify_as(&s, None, json!({"key": key_a, "workspace_id": ws_a})).await;
    assert_eq!(code(&mine), "VALID");
    let theirs = verify_as(&s, None, json!({"key": key_b, "workspace_id": ws_a})).await;
    let missing = verify_as(&s, None, json!({"key": unknown, "workspace_id": ws_a})).await;
    assert_eq!(theirs, missing, "another workspace's key must answer exactly like an unknown one");
    assert_eq!(code(&theirs), "NOT_FOUND");

    // A verify token binds the caller to its workspace.
    let (st, vt) = s.call(Method::POST, "/v1/verify-tokens", Some(json!({"name": "billing api"}))).await;
    assert_eq!(st, 201, "{vt}");
    let token = vt["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("kw_vt_"), "{token}");
    assert_eq!(code(&verify_as(&s, Some(&token), json!({"key": key_a})).await), "VALID");
    assert_eq!(code(&verify_as(&s, Some(&token), json!({"key": key_b})).await), "NOT_FOUND");
    // Asking for another workspace than the token's finds nothing at all.
    let other = verify_as(&s, Some(&token), json!({"key": key_b, "workspace_id": beta.workspace_id})).await;
    assert_eq!(code(&other), "NOT_FOUND");
    let (_, list) = s.call(Method::GET, "/v1/verify-tokens", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("token").is_none(), "a listed token shows only its start");
    let (st, _) = s
        .call_as(
            &beta.management_key,
            Method::DELETE,
            &format!("/v1/verify-tokens/{}", vt["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, 404, "another workspace cannot revoke it");

    // Forward-auth with ?workspace= and with the token.
    let auth = |query: &'static str, key: &str, token: Option<&str>| {
        let mut rb = s.http().get(s.url(&format!("/v1/auth{query}"))).header("X-API-Key", key);
        if let Some(t) = token {
            rb = rb.header("Keyward-Verify-Token", t);
        }
        rb.send()
    };
    let q: &'static str = Box::leak(format!("?workspace={ws_a}").into_boxed_str());
    assert_eq!(auth(q, &key_a, None).await.unwrap().status(), 200);
    let r = auth(q, &key_b, None).await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()), (401, "NOT_FOUND"));
    let r = auth("", &key_b, Some(&token)).await.unwrap();
    assert_eq!(r.headers()["x-keyward-code"], "NOT_FOUND");

    // A signed request of B's key, bound to A.
    let (_, sk, _) = BetaView { s: &s, mk: &beta.management_key }.register().await;
    let req = signed(&s, &sk, "GET", "/v2/x", "", "");
    assert_eq!(code(&check(&s, &req).await), "VALID");
    let mut bound = signed(&s, &sk, "GET", "/v2/y", "", "");
    bound["workspace_id"] = json!(ws_a);
    assert_eq!(code(&check(&s, &bound).await), "NOT_FOUND");

    // The gateway bound to A.
    let (up, up_task) = ok_upstream().await;
    let services = Services {
        store: keyward_store::Store::connect(&s.db.url).await.unwrap(),
        pepper: s.pepper.clone(),
        clock: s.clock.clone(),
        random: Arc::new(OsRandom),
    };
    let cfg = GatewayConfig { workspace: Some(ws_a.clone()), ..GatewayConfig::new(up, Vec::new()) };
    let gw = keyward_server::start_gateway(services, keyward_testkit::test_config(), cfg).await.unwrap();
    let h = reqwest::Client::new();
    let through = |key: String| h.get(format!("http://{}/v2/x", gw.addr)).header("X-API-Key", key).send();
    assert_eq!(through(key_a.clone()).await.unwrap().status(), 200);
    let r = through(key_b.clone()).await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()), (401, "NOT_FOUND"));
    gw.stop().await.unwrap();

    // The SDK's tower layer bound to A: by its setting, and by a client with the token.
    for layer in [
        VerifyLayer::new(Client::new(&s.base, None).unwrap()).workspace(&ws_a),
        VerifyLayer::new(Client::new(&s.base, None).unwrap().with_verify_token(token.clone())),
    ] {
        let (api, task) = serve_layered(layer).await;
        assert_eq!(h.get(&api).header("X-API-Key", &key_a).send().await.unwrap().status(), 200);
        let r = h.get(&api).header("X-API-Key", &key_b).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()), (401, "NOT_FOUND"));
        task.abort();
    }

    // Revoked, the token stops working at once.
    let (st, _) = s.call(Method::DELETE, &format!("/v1/verify-tokens/{}", vt["id"].as_str().unwrap()), None).await;
    assert_eq!(st, 200);
    let r = s
        .http()
        .post(s.url("/v1/keys/verify"))
        .header("Keyward-Verify-Token", &token)
        .json(&json!({"key": key_a}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a revoked verify token still works");
    up_task.abort();
    s.stop().await;
}

/// Registers a public key in the beta workspace (through its owner's management key).
struct BetaView<'a> {
    s: &'a TestServer,
    mk: &'a str,
}

impl BetaView<'_> {
    async fn register(&self) -> (String, keyward_core::signing::SecretKey, String) {
        let sk = keyward_core::signing::SecretKey::generate(Algorithm::Ed25519, &OsRandom);
        let pk = sk.public_key().to_hex();
        let body = json!({"name": "signer", "public_key": pk, "algorithm": "ed25519"});
        let (st, v) = self.s.call_as(self.mk, Method::POST, "/v1/keys", Some(body)).await;
        assert_eq!(st, 201, "{v}");
        (v["id"].as_str().unwrap().to_string(), sk, pk)
    }
}

async fn ok_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().fallback(|| async { "upstream" });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (url, tokio::spawn(async move { axum::serve(l, app).await.unwrap() }))
}

/// An API whose one route, `/v2/x`, sits behind `layer`: its URL and serving task.
pub(crate) async fn serve_layered(layer: VerifyLayer) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route("/v2/x", get(|| async { "ok" })).layer(layer);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/v2/x", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    (api, task)
}
