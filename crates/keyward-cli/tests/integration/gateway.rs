//! `keyward gateway`: what reaches the upstream, what is refused and how, and the whole path
//! `keys generate` → `keys register` → `keyward request` through the real binary.

use keyward_testkit::{code, Backend, TestServer};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method as HttpMethod, Uri};
use keyward_core::signing::{Algorithm, SecretKey, SignedParts};
use keyward_core::{Clock, OsRandom};
use keyward_server::gateway::{parse_rules, GatewayConfig};
use keyward_server::{RunningServer, Services};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    gateway_passes_identity_and_refuses,
    gateway_paths_headers_and_timeouts,
    gateway_binary_end_to_end,
    gateway_keeps_upstream_connections,
    gateway_streams_long_slow_and_stalled_answers,
    gateway_reads_every_answer_framing,
    gateway_rules_see_one_spelling_of_the_path,
    gateway_and_forward_auth_hold_roles_to_their_scopes,
    gateway_reads_every_forwarded_line_and_drops_client_claims,
    gateway_checks_a_secret_key_before_reading_the_body
);

#[derive(Debug, Clone)]
pub(crate) struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: String,
}

/// An upstream that records every request and answers 201 with a marker header.
pub(crate) async fn recording_upstream() -> (String, Arc<Mutex<Vec<Seen>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |m: HttpMethod, uri: Uri, headers: HeaderMap, body: Bytes| {
        let log = log.clone();
        async move {
            let body = String::from_utf8_lossy(&body).to_string();
            log.lock().unwrap().push(Seen { method: m.to_string(), uri: uri.to_string(), headers, body: body.clone() });
            (axum::http::StatusCode::CREATED, [("x-upstream", "yes")], format!("echo:{body}"))
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (url, seen, tokio::spawn(async move { axum::serve(l, app).await.unwrap() }))
}

pub(crate) async fn start_gateway(s: &TestServer, upstream: &str, max_body: usize) -> RunningServer {
    start_gateway_with(s, GatewayConfig { max_body, ..GatewayConfig::new(upstream, Vec::new()) }).await
}

async fn start_gateway_with(s: &TestServer, gw: GatewayConfig) -> RunningServer {
    start_gateway_on(s, keyward_testkit::test_config(), gw).await
}

/// A gateway with the server settings `config`, and the `/v2/admin` rule unless `gw` has rules.
async fn start_gateway_on(
    s: &TestServer,
    config: keyward_server::ServerConfig,
    mut gw: GatewayConfig,
) -> RunningServer {
    let services = Services {
        store: keyward_store::Store::connect(&s.db.url).await.unwrap(),
        pepper: s.pepper.clone(),
        clock: s.clock.clone(),
        random: Arc::new(OsRandom),
    };
    if gw.rules.is_empty() {
        gw.rules = parse_rules("[[route]]\nprefix = \"/v2/admin\"\npermissions = \"admin.*\"\n").unwrap();
    }
    keyward_server::start_gateway(services, config, gw).await.unwrap()
}

fn signed_headers(
    s: &TestServer,
    sk: &SecretKey,
    method: &str,
    path: &str,
    query: &str,
    body: &str,
) -> Vec<(&'static str, String)> {
    let nonce = s.clock.now().timestamp_millis().to_string();
    let parts = SignedParts { method, path, nonce: &nonce, params: query, body: body.as_bytes() };
    vec![
        ("Biz-Api-Key", sk.public_key().to_hex()),
        ("Biz-Api-Nonce", nonce.clone()),
        ("Biz-Api-Signature", sk.sign(&parts.digest())),
    ]
}

async fn gateway_passes_identity_and_refuses(b: Backend) {
    let s = TestServer::start(b).await;
    let (up, seen, up_task) = recording_upstream().await;
    let gw = start_gateway(&s, &up, 1024).await;
    let base = format!("http://{}", gw.addr);
    let h = reqwest::Client::new();
    let (id, secret) =
        s.create(json!({"name": "svc", "environment": "live", "scopes": ["wallet:*"], "roles": ["operator"]})).await;

    // A secret key: passed on without the credential, with the identity; answer streamed back.
    let r = h
        .post(format!("{base}/v2/wallets?limit=10&x=%26"))
        .header("X-API-Key", &secret)
        .header("X-Keyward-Key-Id", "spoofed")
        .header("X-Custom", "kept")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-upstream"], "yes");
    assert_eq!(r.headers()["content-length"], "10", "the upstream's length is kept");
    assert_eq!(r.text().await.unwrap(), "echo:hello");
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (got.method.as_str(), got.uri.as_str(), got.body.as_str()),
        ("POST", "/v2/wallets?limit=10&x=%26", "hello")
    );
    assert_eq!(got.headers["x-keyward-key-id"], id.as_str(), "our identity, not the client's");
    assert_eq!(got.headers["x-keyward-environment"], "live");
    assert_eq!(got.headers["x-keyward-roles"], "operator");
    assert_eq!(got.headers["x-keyward-scopes"], "wallet:*");
    assert_eq!(got.headers["x-keyward-grants"], "operator=wallet:*");
    assert_eq!(got.headers["x-keyward-workspace"], s.workspace_id.as_str());
    assert_eq!(got.headers["x-custom"], "kept");
    let hosts: Vec<_> = got.headers.get_all("host").iter().collect();
    assert_eq!(hosts, [up.trim_start_matches("http://")], "one Host, the upstream's");
    assert!(got.headers.get("x-api-key").is_none(), "the credential is removed");
    let r = h.get(format!("{base}/v2/x")).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(seen.lock().unwrap().last().unwrap().headers.get("authorization").is_none());

    // Refusals: JSON error with the verification code; nothing reaches the upstream.
    let before = seen.lock().unwrap().len();
    let r = h.get(format!("{base}/v2/x")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()), (401, "MALFORMED"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["verification_code"], "MALFORMED");
    let r = h.get(format!("{base}/v2/admin/users")).header("X-API-Key", &secret).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()),
        (403, "INSUFFICIENT_PERMISSIONS")
    );
    let r = h.post(format!("{base}/v2/x")).header("X-API-Key", &secret).body("x".repeat(2000)).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(seen.lock().unwrap().len(), before);

    // A signed request with a unicode body; then the same again (replay), then tampered.
    let sk = SecretKey::generate(Algorithm::Secp256k1, &OsRandom);
    let (st, v) = s
        .call(
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "signer", "public_key": sk.public_key().to_hex(), "algorithm": "secp256k1"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let body = r#"{"name":"café ☕"}"#;
    let headers = signed_headers(&s, &sk, "POST", "/v2/wallets", "a=1", body);
    let send = |body: &'static str| {
        let mut rb = h.post(format!("{base}/v2/wallets?a=1")).body(body);
        for (k, v) in &headers {
            rb = rb.header(*k, v);
        }
        rb.send()
    };
    assert_eq!(send(r#"{"name":"café ☕"}"#).await.unwrap().status(), 201);
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(got.body, body);
    assert!(got.headers.get("biz-api-signature").is_none());
    assert_eq!(got.headers["x-keyward-key-id"], v["id"].as_str().unwrap());
    let r = send(r#"{"name":"café ☕"}"#).await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()), (401, "REPLAYED"));
    let fresh = signed_headers(&s, &sk, "POST", "/v2/wallets", "a=1", body);
    let mut rb = h.post(format!("{base}/v2/wallets?a=1")).body(r#"{"name":"cafe"}"#);
    for (k, v) in &fresh {
        rb = rb.header(*k, v);
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.headers()["x-keyward-code"], "INVALID_SIGNATURE", "tampered body");

    // Revoked: refused at once (the gateway shares the database and hears the change).
    s.call(Method::POST, &format!("/v1/keys/{id}/revoke"), None).await;
    let started = std::time::Instant::now();
    loop {
        let r = h.get(format!("{base}/v2/x")).header("X-API-Key", &secret).send().await.unwrap();
        if r.status() == 401 {
            assert_eq!(r.headers()["x-keyward-code"], "REVOKED");
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "revoke not in force at the gateway within 1 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The upstream goes away: 502 with a clear message.
    up_task.abort();
    let _ = up_task.await;
    let (_, other) = s.create(json!({"name": "other"})).await;
    let r = h.get(format!("{base}/v2/x")).header("X-API-Key", &other).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bad_gateway");
    assert_eq!(code(&s.verify(&other, json!({})).await), "VALID");
    gw.stop().await.unwrap();
    s.stop().await;
}

async fn gateway_binary_end_to_end(b: Backend) {
    let s = TestServer::start(b).await;
    let (up, seen, up_task) = recording_upstream().await;
    let mut args = vec!["gateway".to_string(), "--upstream".into(), up, "--listen".into(), "127.0.0.1:0".into()];
    args.extend(["--data-dir".into(), s.db.dir.path().display().to_string()]);
    if s.db.is_postgres() {
        args.extend(["--database-url".into(), s.db.url.clone()]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(&args)
        .env("KEYWARD_PEPPER", s.pepper.to_hex())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("addr=").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("gateway did not start");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let kw = |a: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(a)
            .args(["--config", config.to_str().unwrap()])
            .env("HOME", dir.path())
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stdout).to_string())
    };
    let host = format!("http://{addr}");
    assert_eq!(kw(&["keys", "generate", "--env", "test", "--api-host", &host]).0, Some(0));
    let (st, _) =
        kw(&["keys", "register", "--env", "test", "--server", &s.base, "--token", &s.management_key, "--json"]);
    assert_eq!(st, Some(0));
    let (st, out) =
        kw(&["request", "POST", "/v2/transfers", "--query", "q=a b&c", "--data", r#"{"amount":"1.5","memo":"naïve"}"#]);
    assert_eq!(st, Some(0), "{out}");
    assert!(out.starts_with("HTTP 201"), "{out}");
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(got.body, r#"{"amount":"1.5","memo":"naïve"}"#);
    assert!(got.uri.starts_with("/v2/transfers?q="), "{}", got.uri);
    assert!(got.headers.contains_key("x-keyward-key-id"));

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success(), "the gateway stops cleanly on SIGTERM");
    up_task.abort();
    s.stop().await;
}

/// Sends one request exactly as written (no client-side URL clean-up); returns the status.
async fn raw_status(addr: std::net::SocketAddr, target: &str, key: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out).await;
    out.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Rules are matched on exactly the path the upstream receives: paths another reader could
/// take for a different one are refused; headers the client names in `Connection` do not
/// travel on; a silent upstream answers 504.
async fn gateway_paths_headers_and_timeouts(b: Backend) {
    let s = TestServer::start(b).await;
    let (up, seen, up_task) = recording_upstream().await;
    let gw = start_gateway(&s, &up, 1024).await;
    let (_, secret) = s.create(json!({"name": "no admin", "permissions": ["wallet.read"]})).await;
    for target in [
        "/v2\\admin/x",
        "/a/%2e%2e/v2/admin/x",
        "/a/%2E%2E/v2/admin/x",
        "/v2/./admin/x",
        "/a/../v2/admin/x",
        "/v2%2fadmin/x",
        "//v2/admin/x",
        "/v2/admin%5cx",
    ] {
        assert_eq!(raw_status(gw.addr, target, &secret).await, 400, "{target}");
    }
    assert_eq!(raw_status(gw.addr, "/v2/admin/x", &secret).await, 403, "the rule holds");
    assert_eq!(raw_status(gw.addr, "/v2/wallets/w%20x", &secret).await, 201);
    assert!(seen.lock().unwrap().iter().all(|r| !r.uri.contains("admin")), "an admin path reached the upstream");

    let h = reqwest::Client::new();
    let r = h
        .get(format!("http://{}/v2/wallets", gw.addr))
        .header("X-API-Key", &secret)
        .header("Connection", "keep-alive, X-Internal-Token")
        .header("X-Internal-Token", "let-me-in")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(seen.lock().unwrap().last().unwrap().headers.get("x-internal-token").is_none());
    gw.stop().await.unwrap();

    // An upstream that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            held.push(c);
        }
    });
    let cfg = GatewayConfig {
        upstream_timeout: std::time::Duration::from_millis(500),
        ..GatewayConfig::new(format!("http://{silent_addr}"), Vec::new())
    };
    let gw = start_gateway_with(&s, cfg).await;
    let r = h.get(format!("http://{}/v2/wallets", gw.addr)).header("X-API-Key", &secret).send().await.unwrap();
    assert_eq!(r.status(), 504);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "gateway_timeout");
    gw.stop().await.unwrap();
    hold.abort();
    up_task.abort();
    s.stop().await;
}

/// A raw HTTP/1.1 upstream answering `ok` to every request (bodyless requests only); with
/// `close_after` it closes each connection after its answer, without saying so. Counts the
/// connections it accepted.
async fn counting_upstream(
    close_after: bool,
) -> (String, Arc<std::sync::atomic::AtomicUsize>, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if c.write_all(answer).await.is_err() || close_after {
                            return;
                        }
                    }
                    match c.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (url, accepted, task)
}

/// The gateway keeps its upstream connections for the next requests, and one the upstream
/// closed while it sat idle is not used again: the request goes on a new one.
async fn gateway_keeps_upstream_connections(b: Backend) {
    use std::sync::atomic::Ordering;
    let s = TestServer::start(b).await;
    let (_, secret) = s.create(json!({"name": "pooled"})).await;
    for close_after in [false, true] {
        let (up, accepted, task) = counting_upstream(close_after).await;
        let gw = start_gateway(&s, &up, 1024).await;
        // One client connection, so every request is served by the same serving thread
        // (each keeps its own upstream connections).
        let mut client = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        for i in 0..20 {
            let (status, body) = raw_exchange(&mut client, &format!("/v2/items/{i}"), &secret).await;
            assert_eq!(status, 200, "request {i}, upstream closing: {close_after}");
            assert_eq!(body, "ok");
            if close_after {
                // The upstream's close reaches the gateway before the next request.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        let n = accepted.load(Ordering::SeqCst);
        if close_after {
            assert_eq!(n, 20, "a connection per request");
        } else {
            assert_eq!(n, 1, "one connection kept for every request");
        }
        gw.stop().await.unwrap();
        task.abort();
    }
    s.stop().await;
}

/// A GET on an open keep-alive connection: the answer's status and body.
async fn raw_exchange(c: &mut tokio::net::TcpStream, target: &str, key: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {target} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                return (status, String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string());
            }
        }
        let n = c.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the gateway closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The next request on `c`, its body read past: its head as sent and its body's length;
/// `None` once the connection ends.
async fn next_request(c: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<(String, usize)> {
    use tokio::io::AsyncReadExt;
    let mut chunk = vec![0u8; 65536];
    let mut head = None;
    loop {
        if head.is_none() {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&buf[..end]).to_string();
                let length: usize = text
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                    .unwrap_or(0);
                head = Some((text, end + 4, length));
            }
        }
        if let Some((text, at, length)) = head.take() {
            if buf.len() >= at + length {
                buf.drain(..at + length);
                return Some((text, length));
            }
            head = Some((text, at, length));
        }
        match c.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A raw HTTP/1.1 upstream whose answers are scripted by path: `/big` is 3 MiB with a
/// length, written in pieces; `/slow` is chunked, a piece every 150 ms; `/stall` sends half
/// its length and then nothing; `/late` answers after 2 s; `/echo` answers the length of the
/// request's body.
async fn scripted_upstream() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some((head, length)) = next_request(&mut c, &mut buf).await {
                    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                    let sleep = || tokio::time::sleep(std::time::Duration::from_millis(150));
                    match path.as_str() {
                        "/big" => {
                            let piece = vec![b'x'; 65536];
                            c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3145728\r\n\r\n").await.unwrap();
                            for _ in 0..48 {
                                c.write_all(&piece).await.unwrap();
                            }
                        }
                        "/slow" => {
                            c.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
                                .await
                                .unwrap();
                            sleep().await;
                            c.write_all(b"5\r\n slow\r\n").await.unwrap();
                            sleep().await;
                            c.write_all(b"6\r\n world\r\n0\r\n\r\n").await.unwrap();
                        }
                        "/late" => {
                            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlate").await;
                            return;
                        }
                        "/stall" => {
                            c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf.").await.unwrap();
                            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                            return;
                        }
                        _ => {
                            let text = length.to_string();
                            let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}", text.len());
                            c.write_all(answer.as_bytes()).await.unwrap();
                        }
                    }
                }
            });
        }
    });
    (url, task)
}

/// The gateway reads an upstream answer by driving its connection from the answer's body:
/// a long answer arrives whole, a slow one piece by piece (the connection is woken for each),
/// a stalled one fails after the upstream timeout instead of hanging, and a long request body
/// goes up whole; the connection that served each complete answer serves the next request,
/// its deadline moved for each: a pause longer than the timeout between two requests fails
/// neither, and an answer whose head is late on a kept connection is a 504.
async fn gateway_streams_long_slow_and_stalled_answers(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, secret) = s.create(json!({"name": "streams"})).await;
    let (up, task) = scripted_upstream().await;
    let cfg = GatewayConfig {
        upstream_timeout: std::time::Duration::from_millis(600),
        max_body: 4 << 20,
        ..GatewayConfig::new(up, Vec::new())
    };
    let gw = start_gateway_with(&s, cfg).await;
    let base = format!("http://{}", gw.addr);
    let h = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
    for round in 0..2 {
        let r = h.get(format!("{base}/big")).header("X-API-Key", &secret).send().await.unwrap();
        assert_eq!(r.status(), 200, "round {round}");
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), 3 << 20, "round {round}");
        assert!(body.iter().all(|b| *b == b'x'));
        let r = h.get(format!("{base}/slow")).header("X-API-Key", &secret).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "hello slow world", "round {round}");
        let big = vec![b'y'; 3 << 20];
        let r = h.post(format!("{base}/echo")).header("X-API-Key", &secret).body(big).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), (3 << 20).to_string(), "round {round}");
        // Longer than the upstream timeout: the kept connection's last deadline has passed.
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    }
    let started = std::time::Instant::now();
    let r = h.get(format!("{base}/late")).header("X-API-Key", &secret).send().await.unwrap();
    assert_eq!(r.status(), 504, "a head later than the timeout");
    assert!(started.elapsed() < std::time::Duration::from_millis(1800), "not waited for");
    let started = std::time::Instant::now();
    let r = h.get(format!("{base}/stall")).header("X-API-Key", &secret).send().await.unwrap();
    assert_eq!(r.status(), 200, "the head came in time");
    assert!(r.bytes().await.is_err(), "a stalled answer fails instead of ending short");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "it does not wait for the upstream");
    // A request after the stalled one is served on a fresh connection.
    let r = h.get(format!("{base}/slow")).header("X-API-Key", &secret).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "hello slow world");
    gw.stop().await.unwrap();
    task.abort();
    s.stop().await;
}

/// A raw HTTP/1 upstream (bodyless requests only) whose answers are scripted by path, each
/// naming in `x-conn` the ordinal of the connection it came on, so a test sees which
/// connections the gateway kept.
async fn framing_upstream() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut ordinal = 0;
        while let Ok((mut c, _)) = l.accept().await {
            ordinal += 1;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some((head, _)) = next_request(&mut c, &mut buf).await {
                    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                    let ok = format!("HTTP/1.1 200 OK\r\nx-conn: {ordinal}\r\n");
                    let (answer, then_close) = match path.as_str() {
                        // A HEAD's answer has the length a GET's would have, and no body.
                        "/plain" if head.starts_with("HEAD ") => (format!("{ok}content-length: 2\r\n\r\n"), false),
                        "/plain" => (format!("{ok}content-length: 2\r\n\r\nok"), false),
                        "/nocontent" => (format!("HTTP/1.1 204 No Content\r\nx-conn: {ordinal}\r\n\r\n"), false),
                        "/notmodified" => (
                            format!("HTTP/1.1 304 Not Modified\r\nx-conn: {ordinal}\r\ncontent-length: 9\r\n\r\n"),
                            false,
                        ),
                        "/interim" => (
                            format!("HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n{ok}content-length: 2\r\n\r\nok"),
                            false,
                        ),
                        "/hop" => (
                            format!(
                                "{ok}Connection: X-Private, keep-alive\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\n\
                                 X-Public: 1\r\ncontent-length: 2\r\n\r\nok"
                            ),
                            false,
                        ),
                        "/trailers" => (
                            format!(
                                "{ok}transfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n\
                                 5;note=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n"
                            ),
                            false,
                        ),
                        // Chunked wins over a length (RFC 9112 §6.3): reading 100 bytes would
                        // take the next answer for this one's body; and the connection is not
                        // trusted with another answer.
                        "/both" => (
                            format!(
                                "{ok}content-length: 100\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                            ),
                            false,
                        ),
                        "/close" => (format!("{ok}\r\nuntil close"), true),
                        // HTTP/1.0 without keep-alive: this connection is not to be used again
                        // (it is kept open here, so a reuse would show).
                        "/old" => {
                            (format!("HTTP/1.0 200 OK\r\nx-conn: {ordinal}\r\ncontent-length: 3\r\n\r\nold"), false)
                        }
                        // More than the length says: the connection cannot be trusted again.
                        "/extra" => (format!("{ok}content-length: 2\r\n\r\nokEXTRA"), false),
                        "/badlength" => (format!("{ok}content-length: 2x\r\n\r\nok"), false),
                        "/twolengths" => (format!("{ok}content-length: 2\r\ncontent-length: 3\r\n\r\nok"), false),
                        "/hugehead" => {
                            (format!("{ok}x-big: {}\r\ncontent-length: 2\r\n\r\nok", "b".repeat(70_000)), false)
                        }
                        _ => ("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_string(), false),
                    };
                    if c.write_all(answer.as_bytes()).await.is_err() || then_close {
                        return;
                    }
                }
            });
        }
    });
    (url, task)
}

/// Every way an answer's body can end reaches the client whole, the answer's hop-by-hop
/// headers stay behind, and the upstream connection is kept exactly when it can serve the
/// next answer: after lengths, chunks (with trailers, and over a stray length), bodiless
/// answers and interim ones; not after an answer ended by closing, an HTTP/1.0 one, or one
/// with bytes past its length. Broken heads are 502s.
async fn gateway_reads_every_answer_framing(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, secret) = s.create(json!({"name": "framings"})).await;
    let (up, task) = framing_upstream().await;
    // One serving thread, so every request uses its upstream connections (each thread keeps
    // its own), whichever client connection it came on.
    let config = keyward_server::ServerConfig { http_threads: 1, ..keyward_testkit::test_config() };
    let gw = start_gateway_on(&s, config, GatewayConfig::new(up, Vec::new())).await;
    let base = format!("http://{}", gw.addr);
    let h = reqwest::Client::new();
    let call = |method: Method, path: &str| {
        let r = h.request(method, format!("{base}{path}")).header("X-API-Key", &secret).send();
        async move {
            let r = r.await.unwrap();
            let conn = r.headers().get("x-conn").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            let headers = r.headers().clone();
            (r.status().as_u16(), conn, headers, r.text().await.unwrap())
        }
    };
    let (status, conn, _, body) = call(Method::GET, "/plain").await;
    assert_eq!((status, conn.as_str(), body.as_str()), (200, "1", "ok"));

    let (status, conn, headers, body) = call(Method::HEAD, "/plain").await;
    assert_eq!((status, conn.as_str(), body.as_str()), (200, "1", ""));
    assert_eq!(headers["content-length"], "2", "a HEAD keeps the length a GET would get");
    for (path, code) in [("/nocontent", 204), ("/notmodified", 304)] {
        let (status, conn, _, body) = call(Method::GET, path).await;
        assert_eq!((status, conn.as_str(), body.as_str()), (code, "1", ""), "{path}");
    }
    let (status, conn, _, body) = call(Method::GET, "/interim").await;
    assert_eq!((status, conn.as_str(), body.as_str()), (200, "1", "ok"), "the 103 is skipped");

    let (status, conn, headers, body) = call(Method::GET, "/hop").await;
    assert_eq!((status, conn.as_str(), body.as_str()), (200, "1", "ok"));
    assert_eq!(headers["x-public"], "1");
    for gone in ["x-private", "keep-alive"] {
        assert!(headers.get(gone).is_none(), "{gone} came through");
    }
    let (status, conn, headers, body) = call(Method::GET, "/trailers").await;
    assert_eq!((status, conn.as_str(), body.as_str()), (200, "1", "hello world"));
    assert!(headers.get("content-length").is_none_or(|l| l == "11"));
    let (_, conn, _, _) = call(Method::GET, "/plain").await;
    assert_eq!(conn, "1", "every answer so far left the connection ready for the next");

    // Answers after which the connection is not used again; among them one with both a
    // length and chunks (RFC 9112 §6.3: read as chunked, then the connection is closed).
    let mut expected = 1;
    for (path, want) in [("/close", "until close"), ("/old", "old"), ("/extra", "ok"), ("/both", "ok")] {
        let (status, conn, headers, body) = call(Method::GET, path).await;
        assert_eq!((status, conn, body.as_str()), (200, expected.to_string(), want), "{path}");
        assert!(headers.get("content-length").is_none_or(|l| l == body.len().to_string().as_str()), "{path}");
        expected += 1;
        let (status, conn, _, body) = call(Method::GET, "/plain").await;
        assert_eq!((status, conn, body.as_str()), (200, expected.to_string(), "ok"), "after {path}");
    }
    for path in ["/badlength", "/twolengths", "/hugehead"] {
        let (status, _, _, body) = call(Method::GET, path).await;
        assert_eq!(status, 502, "{path}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "bad_gateway", "{path}");
        expected += 1;
        let (status, conn, _, _) = call(Method::GET, "/plain").await;
        assert_eq!((status, conn), (200, expected.to_string()), "a new connection after {path}");
    }
    gw.stop().await.unwrap();
    task.abort();
    s.stop().await;
}

/// The example rules file, as shipped.
fn example_rules() -> Vec<keyward_server::gateway::RouteRule> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/gateway-rules.toml");
    parse_rules(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Rules see the path in one spelling, the one the upstream receives: `%61dmin`, `/V2/admin`
/// and `;` parameters do not walk around the `/v2/admin` rule.
async fn gateway_rules_see_one_spelling_of_the_path(b: Backend) {
    let s = TestServer::start(b).await;
    let (up, seen, up_task) = recording_upstream().await;
    let gw = start_gateway_with(&s, GatewayConfig::new(up.clone(), example_rules())).await;
    let (_, plain) = s.create(json!({"name": "no admin", "permissions": ["wallet.read"]})).await;
    let (_, admin) = s.create(json!({"name": "admin", "permissions": ["admin.*"]})).await;
    for target in ["/v2/%61dmin/x", "/v2/%61%64%6d%69%6e/x", "/V2/admin/x", "/v2/ADMIN/x", "/%76%32/Admin"] {
        assert_eq!(raw_status(gw.addr, target, &plain).await, 403, "{target}");
    }
    for target in ["/v2;a=b/admin/x", "/v2/admin;p=1/x", "/v2%3Badmin/x", "/v2/%2e/admin", "/v2/a%zz", "/v2//admin"] {
        assert_eq!(raw_status(gw.addr, target, &plain).await, 400, "{target}");
    }
    assert!(
        seen.lock().unwrap().iter().all(|r| !r.uri.to_ascii_lowercase().contains("admin")),
        "an admin path reached the upstream"
    );

    // The upstream receives exactly the normal form; the query goes on as it came.
    for (target, sent) in [
        ("/v2/%61dmin/x?q=%61&r=%2f", "/v2/admin/x?q=%61&r=%2f"),
        ("/V2/Admin/%7e%c3%a9", "/V2/Admin/~%C3%A9"),
        ("/v2/admin/caf\u{e9}", "/v2/admin/caf%C3%A9"),
        ("/v2/admin/x?", "/v2/admin/x"),
        ("/v2/admin/x", "/v2/admin/x"),
    ] {
        assert_eq!(raw_status(gw.addr, target, &admin).await, 201, "{target}");
        assert_eq!(seen.lock().unwrap().last().unwrap().uri, sent, "{target}");
    }
    let r = reqwest::Client::new()
        .get(format!("http://{}/v2/admin;p=1/x", gw.addr))
        .header("X-API-Key", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["field"], "path", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("allow_path_parameters"), "{v}");
    gw.stop().await.unwrap();

    // An upstream that takes `;` as an ordinary character: such paths go on, matched as
    // they are.
    let cfg = GatewayConfig { allow_path_parameters: true, ..GatewayConfig::new(up, example_rules()) };
    let gw = start_gateway_with(&s, cfg).await;
    assert_eq!(raw_status(gw.addr, "/v2/admin;p=1/x", &plain).await, 403);
    assert_eq!(raw_status(gw.addr, "/v2/%61dmin;p=1/x", &admin).await, 201);
    assert_eq!(seen.lock().unwrap().last().unwrap().uri, "/v2/admin;p=1/x");
    assert_eq!(raw_status(gw.addr, "/v2/admin%3Bp=1/x", &admin).await, 400, "never encoded");
    gw.stop().await.unwrap();
    up_task.abort();
    s.stop().await;
}

/// Seed 001's per-role scopes at the gateway (a path template's capture names the scope)
/// and at forward-auth (`?scope=`); both pass the grants on in `X-Keyward-Grants`.
async fn gateway_and_forward_auth_hold_roles_to_their_scopes(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, v) = s
        .call(Method::POST, "/v1/roles", Some(json!({"name": "payer", "permissions": ["tx.create", "wallet.read"]})))
        .await;
    assert_eq!(st, 201, "{v}");
    let (_, key) = s
        .create(json!({
            "name": "payer on w_1",
            "permissions": ["profile.read"],
            "grants": [{"role": "payer", "scopes": ["wallet:w_1"]}],
        }))
        .await;
    let (up, seen, up_task) = recording_upstream().await;
    let gw = start_gateway_with(&s, GatewayConfig::new(up, example_rules())).await;
    let h = reqwest::Client::new();
    let send = |path: &str| h.post(format!("http://{}{path}", gw.addr)).header("X-API-Key", &key).body("{}").send();

    let r = send("/v2/wallets/w_1/transactions").await.unwrap();
    assert_eq!(r.status(), 201);
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(got.uri, "/v2/wallets/w_1/transactions");
    assert_eq!(got.headers["x-keyward-grants"], "payer=wallet:w_1");
    assert_eq!(got.headers["x-keyward-roles"], "payer");
    let before = seen.lock().unwrap().len();
    for path in ["/v2/wallets/w_3/transactions", "/v2/wallets/W_1/transactions", "/v2/Wallets/w_3/Transactions/"] {
        let r = send(path).await.unwrap();
        assert_eq!(
            (r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()),
            (403, "INSUFFICIENT_PERMISSIONS"),
            "{path}"
        );
    }
    assert_eq!(seen.lock().unwrap().len(), before, "a refused request reached the upstream");
    gw.stop().await.unwrap();

    // Forward-auth: the same check through ?scope=.
    let auth = |q: &str| h.get(s.url(&format!("/v1/auth?{q}"))).header("X-API-Key", &key).send();
    let r = auth("permissions=tx.create&scope=wallet:w_1").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-keyward-grants"], "payer=wallet:w_1");
    let r = auth("permissions=tx.create&scope=wallet:w_3").await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["x-keyward-code"].to_str().unwrap()),
        (403, "INSUFFICIENT_PERMISSIONS")
    );
    let r = auth("permissions=tx.create").await.unwrap();
    assert_eq!(r.status(), 200, "unscoped: every permission the key holds");
    up_task.abort();
    s.stop().await;
}

/// Every `X-Forwarded-For` line counts, in order, for an allowlisted key and in what the
/// upstream gets (a proxy that appends a line of its own leaves a client's forged line
/// first); a client's underscore twins of the identity headers never reach the upstream, nor
/// its own `X-Real-IP`, `X-Forwarded-Host` or `Forwarded` unless it is a trusted proxy.
async fn gateway_reads_every_forwarded_line_and_drops_client_claims(b: Backend) {
    let s = TestServer::start(b).await;
    let (up, seen, up_task) = recording_upstream().await;
    let (_, key) = s.create(json!({"name": "allowlisted", "ip_allowlist": ["203.0.113.0/24"]})).await;
    // The test client is on loopback, a trusted proxy by default.
    let gw = start_gateway(&s, &up, 1024).await;
    let h = reqwest::Client::new();
    let send = |base: String, lines: &'static [&'static str], extra: &'static [(&'static str, &'static str)]| {
        let mut rb = h.get(format!("{base}/v2/x")).header("X-API-Key", &key);
        for line in lines {
            rb = rb.header("X-Forwarded-For", *line);
        }
        for (name, value) in extra {
            rb = rb.header(*name, *value);
        }
        async move { rb.send().await.unwrap().status().as_u16() }
    };
    let base = format!("http://{}", gw.addr);
    assert_eq!(
        send(base.clone(), &["203.0.113.5", "198.51.100.1"], &[]).await,
        403,
        "the forged first line was believed"
    );
    let before = seen.lock().unwrap().len();
    assert_eq!(send(base.clone(), &["198.51.100.1", "203.0.113.5"], &[]).await, 201);
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.lock().unwrap().len(), before + 1);
    let xff: Vec<_> = got.headers.get_all("x-forwarded-for").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(xff, ["198.51.100.1, 203.0.113.5, 127.0.0.1"], "every line goes on, as one, with the peer");

    // Underscore twins of the identity headers, in any case.
    let twins: &[(&str, &str)] = &[
        ("X_Keyward_Roles", "owner"),
        ("x-keyward_workspace", "ws_other"),
        ("X_KEYWARD-KEY-ID", "key_forged"),
        ("x_keyward_environment", "live"),
    ];
    let claims: &[(&str, &str)] =
        &[("X-Real-IP", "203.0.113.5"), ("X-Forwarded-Host", "admin.internal"), ("Forwarded", "for=203.0.113.5")];
    let all: &'static [(&str, &str)] = Box::leak([twins, claims].concat().into_boxed_slice());
    assert_eq!(send(base.clone(), &["203.0.113.5"], all).await, 201);
    let got = seen.lock().unwrap().last().cloned().unwrap();
    for name in got.headers.keys() {
        let n = name.as_str().replace('_', "-");
        assert!(!n.starts_with("x-keyward-") || name.as_str().starts_with("x-keyward-"), "{name} reached the upstream");
    }
    assert_eq!(got.headers["x-keyward-roles"], "");
    // From a trusted proxy, what it says of the client passes.
    for (name, value) in claims {
        assert_eq!(got.headers[*name], *value, "{name} from a trusted proxy");
    }
    gw.stop().await.unwrap();

    // From a peer that is not a trusted proxy, none of it does.
    let config = keyward_server::ServerConfig { trusted_proxies: vec![], ..keyward_testkit::test_config() };
    let (_, open_key) = s.create(json!({"name": "open"})).await;
    let gw = start_gateway_on(&s, config, GatewayConfig::new(up.clone(), Vec::new())).await;
    let mut rb = h.get(format!("http://{}/v2/x", gw.addr)).header("X-API-Key", &open_key);
    for (name, value) in all {
        rb = rb.header(*name, *value);
    }
    assert_eq!(rb.header("X-Forwarded-For", "203.0.113.5").send().await.unwrap().status(), 201);
    let got = seen.lock().unwrap().last().cloned().unwrap();
    for (name, _) in all {
        assert!(got.headers.get(*name).is_none(), "{name} from an untrusted peer reached the upstream");
    }
    assert_eq!(got.headers["x-forwarded-for"], "203.0.113.5, 127.0.0.1", "the peer is added after the client's list");
    gw.stop().await.unwrap();
    up_task.abort();
    s.stop().await;
}

/// Sends a request head announcing a body of `length` bytes, with `key`, and none of the
/// body; returns the answer's status line and head.
async fn head_only(addr: std::net::SocketAddr, key: &str, length: usize) -> String {
    head_only_with(addr, &format!("X-API-Key: {key}\r\n"), length).await
}

/// The same, with the credential headers given (each line ending in CRLF).
async fn head_only_with(addr: std::net::SocketAddr, credential: &str, length: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("POST /v2/upload HTTP/1.1\r\nHost: gw\r\n{credential}Content-Length: {length}\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed without an answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).to_string()
}

/// A request with a bad or unknown secret key is refused before its body is read: neither a
/// large body (past the limit) nor one that never comes holds the gateway. A good key's body
/// is still read and bounded, and a signed request's is read for its signature.
async fn gateway_checks_a_secret_key_before_reading_the_body(b: Backend) {
    let s = TestServer::start(b).await;
    let (up, seen, up_task) = recording_upstream().await;
    let (_, key) = s.create(json!({"name": "uploads"})).await;
    // A short body timeout: were the body awaited, the answer would be its 400.
    let config = keyward_server::ServerConfig {
        body_read_timeout: std::time::Duration::from_secs(2),
        ..keyward_testkit::test_config()
    };
    let gw = start_gateway_on(&s, config, GatewayConfig { max_body: 1024, ..GatewayConfig::new(up, Vec::new()) }).await;
    let unknown = keyward_core::keyformat::generate_secret("kw", "test", &OsRandom);
    for (bad, code) in [(unknown.as_str(), "NOT_FOUND"), ("kw_test_sk_garbage", "MALFORMED")] {
        for length in [10 << 20, 500] {
            let head = head_only(gw.addr, bad, length).await;
            assert!(head.starts_with("HTTP/1.1 401"), "{length} bytes announced: {head}");
            assert!(
                head.to_ascii_lowercase().contains(&format!("x-keyward-code: {}", code.to_ascii_lowercase())),
                "{head}"
            );
        }
    }
    // A signed request whose key is unknown, or whose nonce is stale, is refused before its
    // body too: only a known key's body is read for its signature.
    let made_up = SecretKey::generate(Algorithm::Ed25519, &OsRandom).public_key().to_hex();
    let fresh = s.clock.now().timestamp_millis();
    for (nonce, code) in [(fresh, "not_found"), (fresh - 3_600_000, "nonce_expired")] {
        let signed = format!("Biz-Api-Key: {made_up}\r\nBiz-Api-Nonce: {nonce}\r\nBiz-Api-Signature: 00\r\n");
        let head = head_only_with(gw.addr, &signed, 10 << 20).await;
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
        assert!(head.to_ascii_lowercase().contains(&format!("x-keyward-code: {code}")), "{head}");
    }
    // A good key: the body is read (and bounded) as before.
    let head = head_only(gw.addr, &key, 10 << 20).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let h = reqwest::Client::new();
    let r =
        h.post(format!("http://{}/v2/upload", gw.addr)).header("X-API-Key", &key).body("payload").send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(seen.lock().unwrap().last().unwrap().body, "payload");
    assert_eq!(seen.lock().unwrap().len(), 1, "only the good request reached the upstream");
    gw.stop().await.unwrap();
    up_task.abort();
    s.stop().await;
}
