//! Verification bound to an environment: where only `live` keys may pass, a `test` key (and
//! the reverse) answers `WRONG_ENVIRONMENT` on every surface — the verify API, signed
//! requests, forward-auth, the gateway (its setting in layers, through the real binary), the
//! SDK's tower layer and `keyward verify`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use keyward_client::layer::VerifyLayer;
use keyward_client::Client;
use keyward_core::signing::Algorithm;
use keyward_core::OsRandom;
use keyward_server::gateway::GatewayConfig;
use keyward_server::Services;
use keyward_testkit::{code, Backend, TestServer};
use serde_json::{json, Value};

use crate::signed_requests::{check, register, signed};

on_both_backends!(another_environment_key_is_refused_everywhere, gateway_environment_setting_in_layers);

async fn another_environment_key_is_refused_everywhere(b: Backend) {
    let s = TestServer::start(b).await;
    let (live_id, live) = s.create(json!({"name": "live", "environment": "live"})).await;
    let (test_id, test) = s.create(json!({"name": "test", "environment": "test"})).await;

    // The verify API: unbound, both verify; bound, the other environment's key is refused
    // with its own code (its holder is told which key it sent).
    assert_eq!(code(&s.verify(&test, json!({})).await), "VALID");
    assert_eq!(code(&s.verify(&live, json!({"environment": "live"})).await), "VALID");
    let v = s.verify(&test, json!({"environment": "live"})).await;
    assert_eq!(
        (v["valid"].as_bool(), code(&v), v["key_id"].as_str()),
        (Some(false), "WRONG_ENVIRONMENT", Some(&*test_id))
    );
    let v = s.verify(&live, json!({"environment": "test"})).await;
    assert_eq!((code(&v), v["key_id"].as_str()), ("WRONG_ENVIRONMENT", Some(&*live_id)));
    // Right after the workspace: another workspace's key is still not found, and the
    // environment is decided before the key's own state (a revoked test key is refused as
    // a test key).
    let v = s.verify(&test, json!({"environment": "live", "workspace_id": format!("ws_{}", "0".repeat(26))})).await;
    assert_eq!(code(&v), "NOT_FOUND");
    let bound = s.verify(&test, json!({"environment": "test", "workspace_id": s.workspace_id})).await;
    assert_eq!(code(&bound), "VALID");
    let (_, limited) = s.create(json!({"name": "limited", "ratelimits": [{"limit": 1, "duration": "1m"}]})).await;
    for _ in 0..3 {
        let v = s.verify(&limited, json!({"environment": "live"})).await;
        assert_eq!(code(&v), "WRONG_ENVIRONMENT", "a refused key spends none of its limit");
    }
    assert_eq!(code(&s.verify(&limited, json!({})).await), "VALID");
    // An environment that does not exist is bad input, named.
    let r = s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": test, "environment": "prod"})).send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["field"], "environment");
    // A stranger's value (NUL, huge) on every surface: a 400 naming the field, never echoed
    // back whole.
    let huge = "e".repeat(3000);
    for bad in ["\u{0}", huge.as_str(), "live\u{0}"] {
        let r = s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": test, "environment": bad})).send();
        let r = r.await.unwrap();
        assert_eq!(r.status(), 400, "{bad:?}");
        let body = r.text().await.unwrap();
        assert!(body.contains("\"field\":\"environment\"") && body.len() < 500, "{body}");
        let r = s.http().get(s.url("/v1/auth")).query(&[("environment", bad)]).header("X-API-Key", &test).send();
        assert_eq!(r.await.unwrap().status(), 400, "{bad:?}");
    }

    // A signed request: refused before its signature is looked at, with a bare answer.
    let (_, sk, _) = register(&s, Algorithm::Ed25519, json!({"environment": "test"})).await;
    let mut req = signed(&s, &sk, "GET", "/v2/x", "", "");
    req["environment"] = json!("test");
    assert_eq!(code(&check(&s, &req).await), "VALID");
    let mut req = signed(&s, &sk, "GET", "/v2/y", "", "");
    req["environment"] = json!("live");
    let v = check(&s, &req).await;
    assert_eq!((code(&v), v.get("key_id")), ("WRONG_ENVIRONMENT", None));
    req["headers"]["Biz-Api-Signature"] = json!("00");
    assert_eq!(code(&check(&s, &req).await), "WRONG_ENVIRONMENT");
    req["environment"] = json!("staging");
    let r = s.http().post(s.url("/v1/requests/verify")).json(&req).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["field"], "environment");

    // Forward-auth: 403 with the code.
    let auth =
        |query: &str, key: &str| s.http().get(s.url(&format!("/v1/auth{query}"))).header("X-API-Key", key).send();
    let r = auth("?environment=live", &live).await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-keyward-environment"].to_str().unwrap()), (200, "live"));
    let r = auth("?environment=live", &test).await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()), (403, "WRONG_ENVIRONMENT"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"]["code"].as_str(), v["error"]["verification_code"].as_str()),
        (Some("forbidden"), Some("WRONG_ENVIRONMENT"))
    );
    let r = auth("?environment=prod", &live).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["field"], "environment");

    // The gateway bound to live.
    let (up, up_task) = ok_upstream().await;
    let services = Services {
        store: keyward_store::Store::connect(&s.db.url).await.unwrap(),
        pepper: s.pepper.clone(),
        clock: s.clock.clone(),
        random: Arc::new(OsRandom),
    };
    let cfg = GatewayConfig { environment: Some("live".into()), ..GatewayConfig::new(up, Vec::new()) };
    let gw = keyward_server::start_gateway(services, keyward_testkit::test_config(), cfg).await.unwrap();
    let h = reqwest::Client::new();
    let through = |key: &str| h.get(format!("http://{}/v2/x", gw.addr)).header("X-API-Key", key).send();
    assert_eq!(through(&live).await.unwrap().status(), 200);
    let r = through(&test).await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()), (403, "WRONG_ENVIRONMENT"));
    gw.stop().await.unwrap();

    // The SDK's tower layer bound to live.
    let layer = VerifyLayer::new(Client::new(&s.base, None).unwrap()).environment("live");
    let (api, task) = crate::scope::serve_layered(layer).await;
    assert_eq!(h.get(&api).header("X-API-Key", &live).send().await.unwrap().status(), 200);
    let r = h.get(&api).header("X-API-Key", &test).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()), (403, "WRONG_ENVIRONMENT"));
    task.abort();

    // `keyward verify --environment`.
    let user = crate::cli::User::new();
    let o = user.run(&["verify", &test, "--server", &s.base, "--environment", "live", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(code(&serde_json::from_slice(&o.stdout).unwrap()), "WRONG_ENVIRONMENT");
    assert!(user.run(&["verify", &live, "--server", &s.base, "--environment", "live"]).status.success());
    up_task.abort();
    s.stop().await;
}

/// A gateway process, killed if a failing test leaves it running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `keyward gateway` with `args` and `env`; its address once it listens, or its exit status
/// and what it printed when it does not start.
fn spawn_gateway(s: &TestServer, args: &[&str], env: &[(&str, &str)]) -> Result<(Running, String), String> {
    let mut all = vec!["gateway", "--listen", "127.0.0.1:0", "--data-dir"];
    let dir = s.db.dir.path().display().to_string();
    all.push(&dir);
    if s.db.is_postgres() {
        all.extend(["--database-url", &s.db.url]);
    }
    all.extend(args);
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(&all)
        .env("KEYWARD_PEPPER", s.pepper.to_hex())
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // Read to the end on a thread of its own, so the gateway's log never fills the pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut printed = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("addr=").nth(1) {
                let _ = tx.send(Ok(addr.trim().to_string()));
            }
            printed.push_str(&line);
            printed.push('\n');
        }
        let _ = tx.send(Err(printed));
    });
    match rx.recv().unwrap() {
        Ok(addr) => Ok((Running(child), addr)),
        Err(printed) => Err(format!("{:?}: {printed}", child.wait().unwrap())),
    }
}

/// `gateway --environment`, `KEYWARD_GATEWAY_ENVIRONMENT` and `environment` under
/// `[gateway]` in the config file, in that order of precedence; an unknown one stops it.
async fn gateway_environment_setting_in_layers(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, live) = s.create(json!({"name": "live", "environment": "live"})).await;
    let (_, test) = s.create(json!({"name": "test", "environment": "test"})).await;
    let (up, up_task) = ok_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keyward.toml");
    std::fs::File::create(&config)
        .unwrap()
        .write_all(format!("[gateway]\nupstream = \"{up}\"\nenvironment = \"live\"\n").as_bytes())
        .unwrap();
    let config = config.display().to_string();
    let h = reqwest::Client::new();
    let file = ["--config", config.as_str()];
    for (args, env, passes) in [
        (&file[..], &[][..], "live"),
        (&file[..], &[("KEYWARD_GATEWAY_ENVIRONMENT", "test")][..], "test"),
        (&["--config", &config, "--environment", "live"][..], &[("KEYWARD_GATEWAY_ENVIRONMENT", "test")][..], "live"),
    ] {
        let (mut gateway, addr) = spawn_gateway(&s, args, env).unwrap();
        let status = |key: &str| {
            let r = h.get(format!("http://{addr}/v2/x")).header("X-API-Key", key).send();
            async move {
                let r = r.await.unwrap();
                let code = r.headers().get("x-keyward-code").map(|v| v.to_str().unwrap().to_string());
                (r.status().as_u16(), code.unwrap_or_default())
            }
        };
        let (good, bad) = if passes == "live" { (&live, &test) } else { (&test, &live) };
        assert_eq!(status(good).await, (200, "VALID".into()), "{args:?} {env:?}");
        assert_eq!(status(bad).await, (403, "WRONG_ENVIRONMENT".into()), "{args:?} {env:?}");
        assert!(Command::new("kill").args(["-TERM", &gateway.0.id().to_string()]).status().unwrap().success());
        assert!(gateway.0.wait().unwrap().success());
    }
    let err = spawn_gateway(&s, &["--config", &config, "--environment", "prod"], &[]).err().unwrap_or_default();
    assert!(err.contains("environment") && err.contains("prod"), "{err}");
    up_task.abort();
    s.stop().await;
}

async fn ok_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().fallback(|| async { "upstream" });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (url, tokio::spawn(async move { axum::serve(l, app).await.unwrap() }))
}
