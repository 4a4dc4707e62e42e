//! `keyward keys generate|validate|register` and `keyward request`, through the real binary:
//! the config file's mode and refusals, and a signed request to an API that checks it with
//! Keyward.

use keyward_testkit::{Backend, TestServer};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

on_both_backends!(register_then_signed_requests, register_passes_every_flag_create_takes);

const BIN: &str = env!("CARGO_BIN_EXE_keyward");

fn kw(args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn generate_writes_a_private_config_and_never_overwrites_silently() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kw").join("config.toml");
    let c = config.to_str().unwrap();
    let o = kw(&["keys", "generate", "--config", c, "--env", "dev", "--api-host", "http://127.0.0.1:1"], &[]);
    let public = out(&o).trim().to_string();
    assert_eq!(public.len(), 64, "an Ed25519 public key: {public}");
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(config.parent().unwrap()), 0o700);
    let table: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let secret = table["dev"]["api_secret"].as_str().unwrap().to_string();
    assert_eq!(table["dev"]["api_key"].as_str(), Some(public.as_str()));
    assert_eq!(table["dev"]["api_host"].as_str(), Some("http://127.0.0.1:1"));
    assert!(!String::from_utf8_lossy(&o.stderr).contains(&secret), "the secret is never printed");

    // A second generate is refused and changes nothing; --force replaces the pair.
    let before = std::fs::read(&config).unwrap();
    let o = kw(&["keys", "generate", "--config", c, "--env", "dev"], &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read(&config).unwrap(), before);
    // An APP pair and another environment live beside it.
    out(&kw(&["keys", "generate", "--config", c, "--env", "dev", "--key-type", "APP", "--alg", "secp256k1"], &[]));
    out(&kw(&["keys", "generate", "--config", c, "--env", "prod"], &[]));
    let forced = out(&kw(&["keys", "generate", "--config", c, "--env", "dev", "--force"], &[])).trim().to_string();
    assert_ne!(forced, public);
    let table: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    assert_eq!(table["dev"]["app_key"].as_str().unwrap().len(), 66, "a compressed secp256k1 key");
    assert_eq!(table["dev"]["app_alg"].as_str(), Some("secp256k1"));
    assert!(table["prod"]["api_key"].is_str());
    assert_eq!(table["dev"]["api_host"].as_str(), Some("http://127.0.0.1:1"), "kept across --force");

    // KEYWARD_CONFIG names the file when --config is absent.
    let other = dir.path().join("other.toml");
    out(&kw(&["keys", "generate"], &[("KEYWARD_CONFIG", other.to_str().unwrap())]));
    assert!(std::fs::read_to_string(&other).unwrap().contains("[test]"));

    // validate: exit 0 for a matching pair, 1 otherwise.
    let new_secret = table["dev"]["api_secret"].as_str().unwrap();
    assert!(kw(&["keys", "validate", "--alg", "ed25519", "--secret", new_secret, "--pubkey", &forced], &[])
        .status
        .success());
    let o = kw(&["keys", "validate", "--alg", "ed25519", "--secret", new_secret, "--pubkey", &public], &[]);
    assert_eq!(o.status.code(), Some(1));

    // --file writes a dotenv file instead, with the same care.
    let dotenv = dir.path().join("keys.env");
    let pk = out(&kw(&["keys", "generate", "--file", dotenv.to_str().unwrap()], &[])).trim().to_string();
    assert_eq!(mode(&dotenv), 0o600);
    let text = std::fs::read_to_string(&dotenv).unwrap();
    assert!(text.contains(&format!("KEYWARD_API_KEY={pk}")) && text.contains("KEYWARD_API_SECRET="));
    assert!(!kw(&["keys", "generate", "--file", dotenv.to_str().unwrap()], &[]).status.success());
    assert_eq!(std::fs::read_to_string(&dotenv).unwrap(), text);
}

/// An API that accepts a request only when Keyward says its signature is good; it answers
/// with Keyward's verdict.
async fn api_checking_with(keyward: String) -> (u16, tokio::task::JoinHandle<()>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let keyward = keyward.clone();
        async move {
            let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let check = serde_json::json!({
                "method": method.as_str(), "path": uri.path(), "query": uri.query().unwrap_or(""),
                "body": String::from_utf8_lossy(&body),
                "headers": {"Biz-Api-Key": h("biz-api-key"), "Biz-Api-Nonce": h("biz-api-nonce"),
                            "Biz-Api-Signature": h("biz-api-signature")},
            });
            let v: serde_json::Value = reqwest::Client::new()
                .post(format!("{keyward}/v1/requests/verify"))
                .json(&check)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let status = if v["valid"] == true { 200 } else { 401 };
            (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(v))
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (port, tokio::spawn(async move { axum::serve(l, app).await.unwrap() }))
}

async fn register_then_signed_requests(b: Backend) {
    let s = TestServer::start(b).await;
    let (port, api) = api_checking_with(s.base.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let c = config.to_str().unwrap().to_string();
    let host = format!("http://127.0.0.1:{port}");
    let run = |args: &[&str]| {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--config", &c]);
        kw(&a, &[])
    };
    out(&run(&["keys", "generate", "--env", "live", "--api-host", &host]));
    let o = run(&[
        "keys",
        "register",
        "--env",
        "live",
        "--server",
        &s.base,
        "--token",
        &s.management_key,
        "--permission",
        "wallet.read",
        "--json",
    ]);
    let key: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(key["kind"], "public");
    assert_eq!(key["environment"], "live");

    let o =
        run(&["request", "GET", "/v2/wallets", "--env", "live", "--query", "limit=10", "--query", "name=café ☕ & co"]);
    let text = out(&o);
    assert!(text.starts_with("HTTP 200"), "{text}");
    assert!(text.contains("\"VALID\"") && text.contains(key["id"].as_str().unwrap()), "{text}");
    let o = run(&[
        "request",
        "POST",
        "/v2/transactions",
        "--env",
        "live",
        "--data",
        r#"{"memo":"naïve ✓","amount":"1.5"}"#,
    ]);
    assert!(out(&o).starts_with("HTTP 200"));

    // A pair that was never registered is refused by the API (exit 1, status printed).
    out(&run(&["keys", "generate", "--env", "test", "--api-host", &host]));
    let o = run(&["request", "GET", "/v2/wallets", "--env", "test"]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("HTTP 401") && text.contains("NOT_FOUND"), "{text}");

    // Revoked: refused at once.
    s.call(reqwest::Method::POST, &format!("/v1/keys/{}/revoke", key["id"].as_str().unwrap()), None).await;
    let o = run(&["request", "GET", "/v2/wallets", "--env", "live"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("REVOKED"));
    api.abort();
    s.stop().await;
}

/// `keys register` sends every setting `keys create` does: both run with every flag, and the
/// keys read back through the API carry all of them (register once dropped grants, limits,
/// credits, type and the idempotency key without a word).
async fn register_passes_every_flag_create_takes(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, v) = s
        .call(reqwest::Method::POST, "/v1/roles", Some(serde_json::json!({"name": "ops", "permissions": ["tx.*"]})))
        .await;
    assert_eq!(st, 201, "{v}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let c = config.to_str().unwrap().to_string();
    out(&kw(&["keys", "generate", "--config", &c, "--env", "ci"], &[]));
    let every = |name: &str, idem: &str| -> Vec<String> {
        [
            "--server",
            &s.base,
            "--token",
            &s.management_key,
            "--json",
            "--name",
            name,
            "--role",
            "ops",
            "--permission",
            "wallet.read,wallet.write",
            "--scope",
            "wallet:w_1",
            "--grant",
            "ops=wallet:w_2,wallet:w_3",
            "--ip",
            "10.0.0.0/8",
            "--meta",
            r#"{"team":"pay"}"#,
            "--callback-url",
            "https://hooks.example.com/cb",
            "--ratelimit",
            "100/1m",
            "--ratelimit",
            "burst=10/1s",
            "--credits",
            "50",
            "--refill",
            "daily",
            "--type",
            "temporary",
            "--expires-in",
            "30d",
            "--idempotency-key",
            idem,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let created = {
        let mut a = vec!["keys".to_string(), "create".into(), "--env".into(), "live".into()];
        a.extend(every("made", "idem-create"));
        serde_json::from_str::<serde_json::Value>(&out(&kw(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[])))
            .unwrap()
    };
    let registered = {
        let mut a =
            vec!["keys".to_string(), "register".into(), "--config".into(), c.clone(), "--env".into(), "ci".into()];
        a.extend(every("registered", "idem-register"));
        a.extend(["--environment".into(), "live".into()]);
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        let first: serde_json::Value = serde_json::from_str(&out(&kw(&args, &[]))).unwrap();
        // The idempotency key went along: the same request again answers with the same key.
        let again: serde_json::Value = serde_json::from_str(&out(&kw(&args, &[]))).unwrap();
        assert_eq!(again["id"], first["id"], "--idempotency-key was not sent");
        first
    };
    assert_eq!(registered["kind"], "public");
    for (k, name) in [(&created, "made"), (&registered, "registered")] {
        let (st, key) = s.call(reqwest::Method::GET, &format!("/v1/keys/{}", k["id"].as_str().unwrap()), None).await;
        assert_eq!(st, 200, "{key}");
        assert_eq!(key["name"], name);
        assert_eq!(key["environment"], "live", "{name}");
        assert_eq!(key["type"], "temporary", "{name}");
        assert_eq!(key["roles"], serde_json::json!(["ops"]), "{name}");
        assert_eq!(key["permissions"], serde_json::json!(["wallet.read", "wallet.write"]), "{name}");
        assert_eq!(key["scopes"], serde_json::json!(["wallet:w_1"]), "{name}");
        assert_eq!(
            key["grants"],
            serde_json::json!([{"role": "ops", "scopes": ["wallet:w_2", "wallet:w_3"]}]),
            "{name}"
        );
        assert_eq!(key["ip_allowlist"], serde_json::json!(["10.0.0.0/8"]), "{name}");
        assert_eq!(key["meta"], serde_json::json!({"team": "pay"}), "{name}");
        assert_eq!(key["callback_url"], "https://hooks.example.com/cb", "{name}");
        assert_eq!(
            key["ratelimits"],
            serde_json::json!([{"name": "default", "limit": 100, "duration": "1m"}, {"name": "burst", "limit": 10, "duration": "1s"}]),
            "{name}"
        );
        assert_eq!(key["credits"]["remaining"], 50, "{name}");
        assert_eq!(key["credits"]["refill"]["interval"], "daily", "{name}");
        assert!(key["expires_at"].is_string(), "{name}: {key}");
    }
    s.stop().await;
}
