//! Forward-auth (`GET /v1/auth`) as nginx, Traefik or Envoy call it, and the nginx example
//! from the docs run against a real nginx when one is installed.

use keyward_testkit::{Backend, TestServer};
use serde_json::json;

on_both_backends!(answers_and_identity_headers, client_ip_from_trusted_proxies_only, nginx_example_config);

async fn answers_and_identity_headers(b: Backend) {
    let s = TestServer::start(b).await;
    // A key names only roles that exist; these grant nothing and serve as labels.
    for role in ["reader", "ops"] {
        let (st, v) = s.call(reqwest::Method::POST, "/v1/roles", Some(json!({"name": role, "permissions": []}))).await;
        assert_eq!(st, 201, "{v}");
    }
    let (id, key) = s.create(json!({"name": "fa", "environment": "live", "roles": ["reader", "ops"], "scopes": ["wallet:*"], "permissions": ["wallet.read"]})).await;
    let h = s.http();
    for (name, value) in [("X-API-Key", key.clone()), ("Authorization", format!("Bearer {key}"))] {
        let r = h.get(s.url("/v1/auth")).header(name, value).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-keyward-key-id"], id.as_str());
        assert_eq!(r.headers()["x-keyward-workspace"], s.workspace_id.as_str());
        assert_eq!(r.headers()["x-keyward-environment"], "live");
        assert_eq!(r.headers()["x-keyward-roles"], "reader,ops");
        assert_eq!(r.headers()["x-keyward-scopes"], "wallet:*");
        assert_eq!(r.headers()["x-keyward-grants"], "reader=wallet:*, ops=wallet:*");
    }
    let refused = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap();
        (status, v["error"]["verification_code"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(refused(h.get(s.url("/v1/auth")).send().await.unwrap()).await, (401, "MALFORMED".into()));
    let unknown = keyward_core::keyformat::generate_secret("kw", "live", &keyward_core::OsRandom);
    assert_eq!(
        refused(h.get(s.url("/v1/auth")).header("X-API-Key", unknown).send().await.unwrap()).await,
        (401, "NOT_FOUND".into())
    );
    let r = h.get(s.url("/v1/auth?permissions=wallet.write")).header("X-API-Key", &key).send().await.unwrap();
    assert_eq!(refused(r).await, (403, "INSUFFICIENT_PERMISSIONS".into()));
    let r = h
        .get(s.url("/v1/auth?permissions=wallet.read&scope=wallet:w_9"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h.get(s.url("/v1/auth?scope=vault:v_1")).header("X-API-Key", &key).send().await.unwrap();
    assert_eq!(refused(r).await, (403, "INSUFFICIENT_PERMISSIONS".into()));
    s.call(reqwest::Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    let r = h.get(s.url("/v1/auth")).header("X-API-Key", &key).send().await.unwrap();
    assert_eq!(r.headers()["x-keyward-code"], "REVOKED");
    assert_eq!(refused(r).await, (401, "REVOKED".into()));
    s.stop().await;
}

async fn client_ip_from_trusted_proxies_only(b: Backend) {
    let s = TestServer::start(b.clone()).await;
    let (_, key) = s.create(json!({"name": "ip", "ip_allowlist": ["203.0.113.0/24"]})).await;
    let h = s.http();
    let status = |xff: Option<&'static str>, real: Option<&'static str>| {
        let mut rb = h.get(s.url("/v1/auth")).header("X-API-Key", &key);
        if let Some(x) = xff {
            rb = rb.header("X-Forwarded-For", x);
        }
        if let Some(x) = real {
            rb = rb.header("X-Real-IP", x);
        }
        async move { rb.send().await.unwrap().status().as_u16() }
    };
    // The test client is on loopback, a trusted proxy by default.
    assert_eq!(status(Some("203.0.113.5"), None).await, 200);
    assert_eq!(status(Some("198.51.100.1"), None).await, 403);
    // The right-most hop that is not a trusted proxy is the client; a spoofed left entry is ignored.
    assert_eq!(status(Some("203.0.113.5, 198.51.100.1"), None).await, 403);
    assert_eq!(status(Some("198.51.100.1, 203.0.113.5, 127.0.0.1"), None).await, 200);
    assert_eq!(status(None, Some("203.0.113.77")).await, 200);
    assert_eq!(status(None, None).await, 403, "loopback itself is not on the allowlist");
    // Every X-Forwarded-For line counts, in order: a proxy that appends a line of its own
    // (HAProxy's `option forwardfor`) leaves a client's forged line first.
    let lines = |lines: &'static [&'static str]| {
        let mut rb = h.get(s.url("/v1/auth")).header("X-API-Key", &key);
        for line in lines {
            rb = rb.header("X-Forwarded-For", *line);
        }
        async move { rb.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(lines(&["203.0.113.5", "198.51.100.1"]).await, 403, "the forged first line was believed");
    assert_eq!(lines(&["198.51.100.1", "203.0.113.5"]).await, 200);
    assert_eq!(lines(&["198.51.100.1, 203.0.113.9", "203.0.113.5, 127.0.0.1"]).await, 200);
    assert_eq!(lines(&["203.0.113.5", "198.51.100.1, 127.0.0.1"]).await, 403);
    s.stop().await;

    // With no trusted proxies, forwarded headers are ignored.
    let cfg = keyward_server::ServerConfig { trusted_proxies: vec![], ..keyward_testkit::test_config() };
    let s = TestServer::start_with(b, cfg).await;
    let (_, key) = s.create(json!({"name": "ip", "ip_allowlist": ["203.0.113.0/24"]})).await;
    let r = s
        .http()
        .get(s.url("/v1/auth"))
        .header("X-API-Key", &key)
        .header("X-Forwarded-For", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    s.stop().await;
}

/// A tiny upstream API that echoes what nginx passed on.
async fn echo_upstream() -> (u16, tokio::task::JoinHandle<()>) {
    use axum::http::HeaderMap;
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        axum::Json(json!({"key_id": get("x-keyward-key-id"), "env": get("x-keyward-environment"),
            "roles": get("x-keyward-roles"), "workspace": get("x-keyward-workspace"), "api_key": get("x-api-key"),
            "grants": get("x-keyward-grants"),
            "authorization": get("authorization"), "biz": [get("biz-api-key"), get("biz-api-nonce"), get("biz-api-signature")],
            "twin": get("x_keyward_roles")}))
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (port, tokio::spawn(async move { axum::serve(l, app).await.unwrap() }))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn nginx_example_config(b: Backend) {
    let Some(nginx) = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| std::path::Path::new(p).exists())
    else {
        keyward_testkit::skipped("nginx_example_config", "nginx is not installed");
        return;
    };
    let s = TestServer::start(b).await;
    let (st, v) = s.call(reqwest::Method::POST, "/v1/roles", Some(json!({"name": "billing", "permissions": []}))).await;
    assert_eq!(st, 201, "{v}");
    let (id, key) = s.create(json!({"name": "behind-nginx", "environment": "live", "roles": ["billing"]})).await;
    let (up_port, upstream) = echo_upstream().await;
    let front = free_port();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/nginx-auth-request.conf"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = example
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{front}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{up_port}"))
        .replace("127.0.0.1:5399", &s.addr.to_string())
        .replace(
            "events {}", // One process, so killing it leaves no orphaned workers behind.
            &format!(
                "master_process off;\npid {0}/nginx.pid;\nerror_log {0}/error.log;\nevents {{}}",
                dir.path().display()
            ),
        )
        .replace(
            "http {",
            &format!(
                "http {{\n    access_log off;\n    client_body_temp_path {0};\n    proxy_temp_path {0};",
                dir.path().display()
            ),
        );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut child = tokio::process::Command::new(nginx)
        .args(["-e", &dir.path().join("error.log").to_string_lossy(), "-c"])
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .kill_on_drop(true)
        .spawn()
        .expect("start nginx");
    let h = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{front}/v2/wallets?x=1");
    let mut ready = false;
    for _ in 0..100 {
        if h.get(&url).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        ready,
        "nginx did not start: {}",
        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
    );
    // A client's own identity headers never reach the API: Keyward's replace them.
    let r = h
        .get(&url)
        .header("X-API-Key", &key)
        .header("X-Keyward-Roles", "owner")
        .header("X_Keyward_Roles", "owner")
        .header("X-Keyward-Workspace", "ws_someone_else")
        .header("X-Keyward-Grants", "billing=*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["key_id"], id.as_str());
    assert_eq!(v["env"], "live");
    assert_eq!(v["roles"], "billing", "a client injected X-Keyward-Roles");
    assert_eq!(v["twin"], "", "a client's X_Keyward_Roles reached the API");
    assert_eq!(v["workspace"], s.workspace_id.as_str(), "a client injected X-Keyward-Workspace");
    assert_eq!(v["grants"], "billing=", "a client injected X-Keyward-Grants");
    assert_eq!(v["api_key"], "", "the credential is not passed upstream");
    // Nor is a bearer token, once accepted.
    let r = h.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!((v["key_id"].as_str(), v["authorization"].as_str()), (Some(id.as_str()), Some("")));
    // Nor a signed request's headers (nginx passes X-Original-Method and -URI for the check).
    let sk =
        keyward_core::signing::SecretKey::generate(keyward_core::signing::Algorithm::Ed25519, &keyward_core::OsRandom);
    let body = json!({"name": "signer", "public_key": sk.public_key().to_hex(), "algorithm": "ed25519"});
    let (st, signer) = s.call(reqwest::Method::POST, "/v1/keys", Some(body)).await;
    assert_eq!(st, 201, "{signer}");
    use keyward_core::Clock as _;
    let nonce = s.clock.now().timestamp_millis().to_string();
    let parts = keyward_core::signing::SignedParts {
        method: "GET",
        path: "/v2/wallets",
        nonce: &nonce,
        params: "x=1",
        body: b"",
    };
    let r = h
        .get(&url)
        .header("Biz-Api-Key", sk.public_key().to_hex())
        .header("Biz-Api-Nonce", &nonce)
        .header("Biz-Api-Signature", sk.sign(&parts.digest()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["key_id"], signer["id"]);
    assert_eq!(v["biz"], json!(["", "", ""]), "a signed request's headers reached the API");
    assert_eq!(h.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(h.get(&url).header("X-API-Key", "kw_live_sk_bogus").send().await.unwrap().status(), 401);
    s.call(reqwest::Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    assert_eq!(h.get(&url).header("X-API-Key", &key).send().await.unwrap().status(), 401);
    let _ = child.start_kill();
    let _ = child.wait().await;
    upstream.abort();
    s.stop().await;
}
