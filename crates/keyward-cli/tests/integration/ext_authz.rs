//! Envoy's external authorization: the gRPC `Authorization/Check` service (`serve
//! --ext-authz-listen`) called with a tonic client as Envoy calls it, and the HTTP mode
//! (`ANY /v1/auth/{path}`, Envoy's `http_service` with `path_prefix: /v1/auth`). The same
//! against a real Envoy runs in CI (tests/envoy/).

use std::collections::HashMap;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use keyward_core::signing::{Algorithm, SignedParts};
use keyward_core::Clock;
use keyward_testkit::{Backend, TestServer};
use serde_json::{json, Value};

use crate::signed_requests::register;

on_both_backends!(
    grpc_check_answers_as_forward_auth,
    grpc_check_refuses_hostile_values,
    grpc_verify_token_comes_from_metadata,
    http_mode_answers_any_method_under_v1_auth
);

async fn start(
    b: Backend,
    config: keyward_server::ServerConfig,
) -> (TestServer, AuthorizationClient<tonic::transport::Channel>) {
    let config = keyward_server::ServerConfig { ext_authz_listen: Some("127.0.0.1:0".parse().unwrap()), ..config };
    let s = TestServer::start_with(b, config).await;
    let addr = s.server.as_ref().unwrap().ext_authz_addr.expect("the ext_authz listener");
    let client = AuthorizationClient::connect(format!("http://{addr}")).await.unwrap();
    (s, client)
}

/// A Check as Envoy sends it: the client's request and the route's context_extensions.
pub(crate) fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    ext: &[(&str, &str)],
) -> CheckRequest {
    let http = HttpRequest {
        method: method.into(),
        path: path.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        raw_body: body.to_vec(),
        ..Default::default()
    };
    let context_extensions: HashMap<String, String> = ext.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request { http: Some(http), ..Default::default() }),
            context_extensions,
            ..Default::default()
        }),
    }
}

/// What a Check answered, flattened: the HTTP status Envoy would answer with (200 for OK),
/// the headers (to the upstream when OK, to the client when denied), what is removed, the
/// headers added to the client's answer, the body's JSON, the gRPC code.
pub(crate) struct Answer {
    pub(crate) status: u16,
    headers: HashMap<String, String>,
    removed: Vec<String>,
    to_client: HashMap<String, String>,
    body: Value,
    grpc: i32,
}

impl Answer {
    pub(crate) fn code(&self) -> &str {
        self.body["error"]["verification_code"].as_str().unwrap_or("")
    }
}

pub(crate) async fn call(client: &mut AuthorizationClient<tonic::transport::Channel>, req: CheckRequest) -> Answer {
    let r: CheckResponse = client.check(req).await.unwrap().into_inner();
    let grpc = r.status.as_ref().map_or(0, |s| s.code);
    let pairs = |hs: &[envoy_types::pb::envoy::config::core::v3::HeaderValueOption]| {
        hs.iter().filter_map(|h| h.header.as_ref()).map(|h| (h.key.clone(), h.value.clone())).collect()
    };
    match r.http_response {
        Some(HttpResponse::OkResponse(ok)) => Answer {
            status: 200,
            headers: pairs(&ok.headers),
            removed: ok.headers_to_remove,
            to_client: pairs(&ok.response_headers_to_add),
            body: Value::Null,
            grpc,
        },
        Some(HttpResponse::DeniedResponse(d)) => Answer {
            status: d.status.map_or(403, |s| s.code as u16),
            headers: pairs(&d.headers),
            removed: Vec::new(),
            to_client: HashMap::new(),
            body: serde_json::from_str(&d.body).unwrap_or(Value::Null),
            grpc,
        },
        other => panic!("no HTTP response in the Check's answer: {other:?}"),
    }
}

async fn grpc_check_answers_as_forward_auth(b: Backend) {
    let (s, mut c) = start(b, keyward_testkit::test_config()).await;
    let (st, v) = s.call(reqwest::Method::POST, "/v1/roles", Some(json!({"name": "reader", "permissions": []}))).await;
    assert_eq!(st, 201, "{v}");
    let (id, key) = s
        .create(json!({"name": "envoy", "environment": "live", "roles": ["reader"], "scopes": ["wallet:*"],
                       "permissions": ["wallet.read"], "ratelimits": [{"name": "per-minute", "limit": 100, "duration": "1m"}]}))
        .await;
    let bearer = format!("Bearer {key}");

    // A good key, either way it is sent: through, with the identity for the upstream, the
    // credentials and a forged look-alike identity header removed, the limits for the client.
    for h in [("x-api-key", key.as_str()), ("authorization", bearer.as_str())] {
        let headers = [h, ("x-keyward-key-id", "forged"), ("x_keyward_roles", "admin"), ("accept", "*/*")];
        let a = call(&mut c, request("GET", "/wallets/w_1", &headers, b"", &[])).await;
        assert_eq!((a.status, a.grpc), (200, 0));
        assert_eq!(a.headers["x-keyward-key-id"], id, "replaces the client's own");
        assert_eq!(a.headers["x-keyward-workspace"], s.workspace_id);
        assert_eq!(a.headers["x-keyward-environment"], "live");
        assert_eq!(a.headers["x-keyward-roles"], "reader");
        assert_eq!(a.headers["x-keyward-scopes"], "wallet:*");
        assert_eq!(a.headers["x-keyward-code"], "VALID");
        for gone in
            ["x-api-key", "authorization", "biz-api-key", "biz-api-nonce", "biz-api-signature", "x_keyward_roles"]
        {
            assert!(a.removed.iter().any(|r| r == gone), "{gone} not removed: {:?}", a.removed);
        }
        assert!(!a.removed.iter().any(|r| r == "x-keyward-key-id" || r == "accept"), "{:?}", a.removed);
        assert!(
            a.to_client.contains_key("ratelimit-policy") && a.to_client.contains_key("ratelimit"),
            "{:?}",
            a.to_client
        );
        assert!(!a.to_client.contains_key("content-type"));
    }

    // No key: 401 with forward-auth's JSON body and X-Keyward-Code.
    let a = call(&mut c, request("GET", "/wallets", &[("accept", "*/*")], b"", &[])).await;
    assert_eq!((a.status, a.code(), a.grpc), (401, "MALFORMED", 16));
    assert_eq!(a.headers["x-keyward-code"], "MALFORMED");
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.body["error"]["code"], "unauthenticated");

    // The route's requirements, from its context_extensions.
    let with =
        |ext: &'static [(&'static str, &'static str)]| request("GET", "/w", &[("x-api-key", key.as_str())], b"", ext);
    let a = call(&mut c, with(&[("keyward_permissions", "wallet.write")])).await;
    assert_eq!((a.status, a.code(), a.grpc), (403, "INSUFFICIENT_PERMISSIONS", 7));
    assert_eq!(call(&mut c, with(&[("keyward_permissions", "wallet.read")])).await.status, 200);
    let a = call(&mut c, with(&[("keyward_permissions", "wallet.read"), ("keyward_scope", "vault:v_1")])).await;
    assert_eq!((a.status, a.code()), (403, "INSUFFICIENT_PERMISSIONS"));
    assert_eq!(call(&mut c, with(&[("keyward_scope", "wallet:w_9")])).await.status, 200);
    let a = call(&mut c, with(&[("keyward_environment", "test")])).await;
    assert_eq!((a.status, a.code()), (403, "WRONG_ENVIRONMENT"));
    assert_eq!(call(&mut c, with(&[("keyward_environment", "live")])).await.status, 200);
    let ws = s.workspace_id.clone();
    let own = request("GET", "/w", &[("x-api-key", key.as_str())], b"", &[("keyward_workspace", ws.as_str())]);
    assert_eq!(call(&mut c, own).await.status, 200);
    // Context extensions of other filters are no concern of ours.
    assert_eq!(call(&mut c, with(&[("istio_route", "x")])).await.status, 200);

    // A signed request, its body included (Envoy's with_request_body).
    let (pid, sk, pk) = register(&s, Algorithm::Ed25519, json!({"permissions": ["tx.create"]})).await;
    let body = br#"{"amount": 5}"#;
    let signed = |method: &str, path: &str, query: &str, body: &[u8]| {
        let nonce = s.clock.now().timestamp_millis().to_string();
        let sig = sk.sign(&SignedParts { method, path, nonce: &nonce, params: query, body }.digest());
        (nonce, sig)
    };
    let (nonce, sig) = signed("POST", "/tx", "a=1", body);
    let headers =
        [("biz-api-key", pk.as_str()), ("biz-api-nonce", nonce.as_str()), ("biz-api-signature", sig.as_str())];
    let tampered = request("POST", "/tx?a=1", &headers, br#"{"amount": 500}"#, &[]);
    let a = call(&mut c, tampered).await;
    assert_eq!((a.status, a.code()), (401, "INVALID_SIGNATURE"));
    let good = request("POST", "/tx?a=1", &headers, body, &[("keyward_permissions", "tx.create")]);
    let a = call(&mut c, good).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.headers["x-keyward-key-id"], pid);
    let again = request("POST", "/tx?a=1", &headers, body, &[]);
    assert_eq!(call(&mut c, again).await.code(), "REPLAYED");
    let (nonce, sig) = signed("DELETE", "/tx", "", b"");
    let headers =
        [("biz-api-key", pk.as_str()), ("biz-api-nonce", nonce.as_str()), ("biz-api-signature", sig.as_str())];
    let a = call(&mut c, request("DELETE", "/tx", &headers, b"", &[("keyward_permissions", "tx.delete")])).await;
    assert_eq!((a.status, a.code()), (403, "INSUFFICIENT_PERMISSIONS"));

    // Limits as forward-auth answers them: 429 with Retry-After.
    let (_, metered) = s.create(json!({"name": "metered", "ratelimits": [{"limit": 1, "duration": "1h"}]})).await;
    let once = || request("GET", "/w", &[("x-api-key", metered.as_str())], b"", &[]);
    assert_eq!(call(&mut c, once()).await.status, 200);
    let a = call(&mut c, once()).await;
    assert_eq!((a.status, a.code(), a.grpc), (429, "RATE_LIMITED", 8));
    assert!(a.headers.contains_key("retry-after"), "{:?}", a.headers);

    s.call(reqwest::Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    let a = call(&mut c, with(&[])).await;
    assert_eq!((a.status, a.code()), (401, "REVOKED"));
    s.stop().await;
}

async fn grpc_check_refuses_hostile_values(b: Backend) {
    let (s, mut c) = start(b, keyward_testkit::test_config()).await;
    let (_, key) = s.create(json!({"name": "envoy"})).await;
    let keyed = |ext: &[(&str, &str)]| request("GET", "/w", &[("x-api-key", key.as_str())], b"", ext);
    // Another workspace's id (well formed, unknown): nothing passes, as forward-auth answers.
    let a = call(&mut c, keyed(&[("keyward_workspace", "ws_01HZZZZZZZZZZZZZZZZZZZZZZZ")])).await;
    assert_eq!((a.status, a.code()), (401, "NOT_FOUND"));
    // Malformed requirements name their field.
    let huge = "w".repeat(100_000);
    for ext in [
        vec![("keyward_workspace", huge.as_str())],
        vec![("keyward_workspace", "ws\0x")],
        vec![("keyward_permissions", "a AND (")],
        vec![("keyward_environment", "staging")],
        vec![("keyward_cost", "-1")],
        vec![("keyward_permission", "x")],
    ] {
        let a = call(&mut c, keyed(&ext)).await;
        assert_eq!(a.status, 400, "{ext:?}: {}", a.body);
        assert!(a.body["error"]["field"].is_string(), "{ext:?}: {}", a.body);
    }
    // A huge header, a key with a NUL, a body past the limit: refused, and the service goes on.
    let big = "k".repeat(1 << 20);
    let a = call(&mut c, request("GET", "/w", &[("x-api-key", big.as_str())], b"", &[])).await;
    assert_eq!(a.status, 401);
    let a = call(&mut c, request("GET", "/w", &[("x-api-key", "kw_live_\0")], b"", &[])).await;
    assert_eq!(a.status, 401);
    let body = vec![b'x'; 64 * 1024 + 1];
    let a = call(&mut c, request("POST", "/w", &[("x-api-key", key.as_str())], &body, &[])).await;
    assert_eq!(a.status, 413);
    // No request attributes at all: no credential.
    let r = c.check(CheckRequest::default()).await.unwrap().into_inner();
    assert_eq!(r.status.map(|s| s.code), Some(16));
    assert_eq!(call(&mut c, keyed(&[])).await.status, 200);
    s.stop().await;
}

async fn grpc_verify_token_comes_from_metadata(b: Backend) {
    let config =
        keyward_server::ServerConfig { verify_token: Some("vt-s3cret".into()), ..keyward_testkit::test_config() };
    let (s, mut c) = start(b, config).await;
    let (_, key) = s.create(json!({"name": "envoy"})).await;
    // The client's own headers cannot carry it: only Envoy's gRPC metadata does.
    let headers = [("x-api-key", key.as_str()), ("keyward-verify-token", "vt-s3cret")];
    let a = call(&mut c, request("GET", "/w", &headers, b"", &[])).await;
    assert_eq!(a.status, 401);
    let mut req = tonic::Request::new(request("GET", "/w", &headers[..1], b"", &[]));
    req.metadata_mut().insert("keyward-verify-token", "vt-s3cret".parse().unwrap());
    let r = c.check(req).await.unwrap().into_inner();
    assert!(matches!(r.http_response, Some(HttpResponse::OkResponse(_))), "{r:?}");
    s.stop().await;
}

async fn http_mode_answers_any_method_under_v1_auth(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, key) = s.create(json!({"name": "envoy-http", "permissions": ["wallet.read"]})).await;
    let h = s.http();
    let send = |method: reqwest::Method, path: &str| h.request(method, s.url(path)).header("X-API-Key", &key);
    for method in [reqwest::Method::GET, reqwest::Method::POST, reqwest::Method::DELETE, reqwest::Method::PUT] {
        let r = send(method.clone(), "/v1/auth/wallets/w_1?x=1")
            .header("Keyward-Permissions", "wallet.read")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method}");
        assert_eq!(r.headers()["x-keyward-key-id"], id.as_str());
        assert_eq!(
            r.headers()["x-envoy-auth-headers-to-remove"],
            "x-api-key,authorization,biz-api-key,biz-api-nonce,biz-api-signature"
        );
    }
    let r = send(reqwest::Method::GET, "/v1/auth/").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Requirements come from the proxy's headers; the query is the original request's own.
    let r = send(reqwest::Method::POST, "/v1/auth/wallets?permissions=wallet.read")
        .header("Keyward-Permissions", "wallet.write")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()),
        (403, "INSUFFICIENT_PERMISSIONS")
    );
    let r = send(reqwest::Method::GET, "/v1/auth/w").header("Keyward-Environment", "staging").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = h.patch(s.url("/v1/auth/w")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // A signed request: method, the path after /v1/auth, its query and body.
    let (_, sk, pk) = register(&s, Algorithm::Ed25519, json!({})).await;
    let body = r#"{"amount": 5}"#;
    let nonce = s.clock.now().timestamp_millis().to_string();
    let parts = SignedParts { method: "PUT", path: "/tx/1", nonce: &nonce, params: "a=1", body: body.as_bytes() };
    let sig = sk.sign(&parts.digest());
    let signed = |body: &'static str| {
        h.put(s.url("/v1/auth/tx/1?a=1"))
            .header("Biz-Api-Key", &pk)
            .header("Biz-Api-Nonce", &nonce)
            .header("Biz-Api-Signature", &sig)
            .body(body)
    };
    let r = signed(r#"{"amount": 500}"#).send().await.unwrap();
    assert_eq!(r.headers()["x-keyward-code"], "INVALID_SIGNATURE");
    let r = signed(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // GET /v1/auth is as it was: the original request from X-Original-* headers.
    let r = h.get(s.url("/v1/auth")).header("X-API-Key", &key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-envoy-auth-headers-to-remove").is_none());
    s.stop().await;
}
