//! Public-key API keys: registration, and signed requests through `POST /v1/requests/verify`
//! and forward-auth, signed the way the seed's clients sign.

use keyward_core::pepper::{hex_decode, hex_encode};
use keyward_core::signing::{Algorithm, SecretKey, SignedParts};
use keyward_core::{Clock, OsRandom};
use keyward_testkit::{code, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(registration_checks_the_public_key, signed_requests_each_code, forward_auth_accepts_signed_requests);

/// Registers a new key pair; returns (id, secret key, public key hex).
pub(crate) async fn register(s: &TestServer, alg: Algorithm, extra: Value) -> (String, SecretKey, String) {
    let sk = SecretKey::generate(alg, &OsRandom);
    let pk = sk.public_key().to_hex();
    let mut body = json!({"name": "signer", "public_key": pk, "algorithm": alg.as_str()});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (st, v) = s.call(Method::POST, "/v1/keys", Some(body)).await;
    assert_eq!(st, 201, "{v}");
    (v["id"].as_str().unwrap().to_string(), sk, pk)
}

/// A `POST /v1/requests/verify` body for a request signed now (by the server's clock).
pub(crate) fn signed(s: &TestServer, sk: &SecretKey, method: &str, path: &str, query: &str, body: &str) -> Value {
    let nonce = s.clock.now().timestamp_millis().to_string();
    let parts = SignedParts { method, path, nonce: &nonce, params: query, body: body.as_bytes() };
    json!({
        "method": method, "path": path, "query": query, "body": body,
        "headers": {"Biz-Api-Key": sk.public_key().to_hex(), "Biz-Api-Nonce": nonce,
                    "Biz-Api-Signature": sk.sign(&parts.digest())},
    })
}

pub(crate) async fn check(s: &TestServer, req: &Value) -> Value {
    let r = s.http().post(s.url("/v1/requests/verify")).json(req).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn registration_checks_the_public_key(b: Backend) {
    let s = TestServer::start(b).await;
    for alg in [Algorithm::Ed25519, Algorithm::Secp256k1] {
        let sk = SecretKey::generate(alg, &OsRandom);
        let pk = sk.public_key().to_hex();
        let body = json!({"name": "p", "public_key": pk.to_uppercase(), "algorithm": alg.as_str(),
                          "environment": "live", "roles": ["operator"], "ip_allowlist": ["10.0.0.0/8"]});
        let (st, v) = s.call(Method::POST, "/v1/keys", Some(body.clone())).await;
        assert_eq!(st, 201, "{v}");
        assert_eq!(v["kind"], "public");
        assert_eq!(v["algorithm"], alg.as_str());
        assert_eq!(v["public_key"], pk.as_str(), "stored as lower-case hex");
        assert!(v.get("secret").is_none_or(Value::is_null), "a registered key has no secret");
        assert_eq!(v["start"], &pk[..12]);
        assert_eq!(v["roles"], json!(["operator"]));
        let (st, e) = s.call(Method::POST, "/v1/keys", Some(body)).await;
        assert_eq!((st, e["error"]["field"].as_str()), (409, Some("public_key")), "duplicate: {e}");
        let id = v["id"].as_str().unwrap();
        let (st, _) = s.call(Method::POST, &format!("/v1/keys/{id}/rotate"), None).await;
        assert_eq!(st, 409, "only secret keys rotate");
    }
    // The default algorithm is Ed25519; a secp256k1 key given as Ed25519 is refused.
    let secp = SecretKey::generate(Algorithm::Secp256k1, &OsRandom).public_key().to_hex();
    let bad = [
        json!({"name": "p", "public_key": secp}),
        json!({"name": "p", "public_key": "xy".repeat(32)}),
        json!({"name": "p", "public_key": format!("02{:064x}", 5), "algorithm": "secp256k1"}),
        json!({"name": "p", "algorithm": "ed25519"}),
    ];
    for body in bad {
        let (st, e) = s.call(Method::POST, "/v1/keys", Some(body.clone())).await;
        assert_eq!((st, e["error"]["field"].as_str()), (400, Some("public_key")), "{body}: {e}");
    }
    let (_, list) = s.call(Method::GET, "/v1/keys?kind=public", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    s.stop().await;
}

async fn signed_requests_each_code(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, sk, _) = register(&s, Algorithm::Ed25519, json!({"permissions": ["wallet.read", "tx.*"]})).await;

    let ok = signed(&s, &sk, "POST", "/v2/transactions/transfer", "", r#"{"amount":"1.5"}"#);
    let v = check(&s, &ok).await;
    assert_eq!(code(&v), "VALID", "{v}");
    assert_eq!(v["key_id"], id.as_str());
    assert_eq!(code(&check(&s, &ok).await), "REPLAYED", "the same signature twice");

    let mut body = signed(&s, &sk, "POST", "/v2/x", "", r#"{"amount":"1.5"}"#);
    body["body"] = json!(r#"{"amount":"15"}"#);
    assert_eq!(code(&check(&s, &body).await), "INVALID_SIGNATURE", "tampered body");
    let mut query = signed(&s, &sk, "GET", "/v2/wallets", "limit=10", "");
    query["query"] = json!("limit=1000");
    assert_eq!(code(&check(&s, &query).await), "INVALID_SIGNATURE", "tampered query");
    let mut method = signed(&s, &sk, "GET", "/v2/wallets", "", "");
    method["method"] = json!("DELETE");
    assert_eq!(code(&check(&s, &method).await), "INVALID_SIGNATURE", "other method");

    // Raw bytes as sent: unicode bodies and queries with reserved characters, not re-encoded.
    let unicode = signed(&s, &sk, "POST", "/v2/wallets", "q=caf%C3%A9&tag=a+b&x=%26%3D&y=☕", r#"{"name":"café ☕"}"#);
    assert_eq!(code(&check(&s, &unicode).await), "VALID");

    // The nonce is the signing time: 31 s off either way is refused.
    let stale = signed(&s, &sk, "GET", "/v2/wallets", "", "");
    s.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(code(&check(&s, &stale).await), "NONCE_EXPIRED");
    let early = signed(&s, &sk, "GET", "/v2/wallets", "", "");
    s.clock.advance(chrono::Duration::seconds(-31));
    assert_eq!(code(&check(&s, &early).await), "NONCE_EXPIRED");

    let perms = signed(&s, &sk, "GET", "/v2/wallets", "", "");
    let mut with_query = perms.clone();
    with_query["permissions"] = json!("wallet.read AND tx.create");
    assert_eq!(code(&check(&s, &with_query).await), "VALID");
    let mut denied = signed(&s, &sk, "GET", "/v2/wallets", "a=1", "");
    denied["permissions"] = json!("wallet.write");
    assert_eq!(code(&check(&s, &denied).await), "INSUFFICIENT_PERMISSIONS");

    let stranger = SecretKey::generate(Algorithm::Ed25519, &OsRandom);
    assert_eq!(code(&check(&s, &signed(&s, &stranger, "GET", "/", "", "")).await), "NOT_FOUND");
    let mut missing = signed(&s, &sk, "GET", "/", "", "");
    missing["headers"].as_object_mut().unwrap().remove("Biz-Api-Signature");
    assert_eq!(code(&check(&s, &missing).await), "MALFORMED");

    // secp256k1: a high-S copy of a good signature is refused, the good one accepted.
    let (_, k1, _) = register(&s, Algorithm::Secp256k1, json!({})).await;
    let good = signed(&s, &k1, "POST", "/v2/wallets", "", "{}");
    let der = hex_decode(good["headers"]["Biz-Api-Signature"].as_str().unwrap()).unwrap();
    let low = k256::ecdsa::Signature::from_der(&der).unwrap();
    let (r, sv) = low.split_scalars();
    let high = k256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*sv).to_bytes()).unwrap();
    let mut malleated = good.clone();
    malleated["headers"]["Biz-Api-Signature"] = json!(hex_encode(high.to_der().as_bytes()));
    assert_eq!(code(&check(&s, &malleated).await), "INVALID_SIGNATURE", "high-S");
    assert_eq!(code(&check(&s, &good).await), "VALID");

    // Revoked: in force at once.
    s.call(Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    assert_eq!(code(&check(&s, &signed(&s, &sk, "GET", "/v2/w", "", "")).await), "REVOKED");
    s.stop().await;
}

async fn forward_auth_accepts_signed_requests(b: Backend) {
    let s = TestServer::start(b).await;
    let (id, sk, pk) = register(&s, Algorithm::Ed25519, json!({"scopes": ["wallet:*"]})).await;
    let auth = |method: &str, uri: &str, sign_uri: &str| {
        let nonce = s.clock.now().timestamp_millis().to_string();
        let (path, query) = sign_uri.split_once('?').unwrap_or((sign_uri, ""));
        let parts = SignedParts { method, path, nonce: &nonce, params: query, body: b"" };
        s.http()
            .get(s.url("/v1/auth?scope=wallet:w_1"))
            .header("Biz-Api-Key", &pk)
            .header("Biz-Api-Nonce", &nonce)
            .header("Biz-Api-Signature", sk.sign(&parts.digest()))
            .header("X-Original-Method", method)
            .header("X-Original-URI", uri)
    };
    let r = auth("GET", "/v2/wallets?limit=10", "/v2/wallets?limit=10").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-keyward-key-id"], id.as_str());
    let r = auth("GET", "/v2/wallets?limit=11", "/v2/wallets?limit=10").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-keyward-code"], "INVALID_SIGNATURE");
    let r = s
        .http()
        .get(s.url("/v1/auth"))
        .header("Biz-Api-Key", &pk)
        .header("Biz-Api-Nonce", "1")
        .header("Biz-Api-Signature", "00")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no original method/URI");
    assert_eq!(r.headers()["x-keyward-code"], "MALFORMED");
    s.stop().await;
}
