//! HTTPS: `serve` with a certificate from a private CA, the SDK and the CLI trusting that CA,
//! the gateway reaching an `https://` upstream, and PostgreSQL with `sslmode=require`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keyward_client::{Client, ListKeys};
use keyward_core::OsRandom;
use keyward_server::config::TlsFiles;
use keyward_server::gateway::GatewayConfig;
use keyward_server::Services;
use keyward_testkit::{Backend, TestDb, TestServer};

/// A CA and a certificate it signed for 127.0.0.1 and localhost, as PEM files in `dir`.
pub(crate) struct Pki {
    pub(crate) ca: PathBuf,
    pub(crate) files: TlsFiles,
}

pub(crate) fn pki(dir: &Path) -> Pki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        files: TlsFiles { cert: write("cert.pem", cert.pem()), key: write("key.pem", key.serialize_pem()) },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_for_the_server_the_sdk_the_cli_and_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let cfg = keyward_server::ServerConfig { tls: Some(pki.files.clone()), ..keyward_testkit::test_config() };
    let s = TestServer::start_with(Backend::Sqlite, cfg).await;
    let https = format!("https://127.0.0.1:{}", s.addr.port());
    let ca_pem = std::fs::read(&pki.ca).unwrap();

    // The SDK with the CA; without it the certificate is not trusted; plain HTTP gets nowhere.
    let sdk = Client::with_ca(&https, Some(s.management_key.clone()), Some(&ca_pem)).unwrap();
    assert!(sdk.list_keys(&ListKeys::default()).await.is_ok());
    let untrusting = Client::new(&https, Some(s.management_key.clone())).unwrap();
    assert!(untrusting.list_keys(&ListKeys::default()).await.is_err(), "an unknown CA was trusted");
    let plain = reqwest::get(format!("http://{}/healthz", s.addr)).await;
    assert!(!plain.map(|r| r.status().is_success()).unwrap_or(false), "plain HTTP was served on the TLS port");

    // Under TLS the console's cookies are Secure too.
    let ca = reqwest::Certificate::from_pem(&ca_pem).unwrap();
    let browser = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let page = browser.get(format!("{https}/console/login")).send().await.unwrap();
    let cookie = page.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("__Host-kw_pre=") && cookie.contains("HttpOnly") && cookie.contains("; Secure"),
        "{cookie}"
    );

    // The CLI over https: `login` with --ca-cert, then a command with KEYWARD_CA_CERT.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["login", "--server", &https, "--token", &s.management_key])
        .arg("--ca-cert")
        .arg(&pki.ca)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "login over https: {}", String::from_utf8_lossy(&o.stderr));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["keys", "create", "--name", "over-tls", "--json"])
        .env("KEYWARD_CA_CERT", &pki.ca)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let created: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();

    // The gateway (plain HTTP here) in front of an https upstream with the private CA.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr: SocketAddr = upstream.local_addr().unwrap();
    let (stop_up, up_stopped) = tokio::sync::watch::channel(false);
    let app = axum::Router::new().fallback(|| async { "secure upstream" });
    let acceptor = keyward_server::http::tls::acceptor(&pki.files).unwrap();
    let workers = keyward_server::http::workers::Workers::start(1).unwrap();
    let up = tokio::spawn(keyward_server::http::connections::serve(
        upstream,
        app.into(),
        keyward_server::http::connections::Bounds { header_read_timeout: Duration::from_secs(5), max_connections: 16 },
        Arc::default(),
        up_stopped,
        Some(acceptor),
        workers.dispatcher(),
    ));
    let services = Services {
        store: keyward_store::Store::connect(&s.db.url).await.unwrap(),
        pepper: s.pepper.clone(),
        clock: s.clock.clone(),
        random: Arc::new(OsRandom),
    };
    let cfg = GatewayConfig {
        ca_pem: Some(ca_pem.clone()),
        ..GatewayConfig::new(format!("https://127.0.0.1:{}", up_addr.port()), Vec::new())
    };
    let gw = keyward_server::start_gateway(services, keyward_testkit::test_config(), cfg).await.unwrap();
    let r = reqwest::Client::new()
        .get(format!("http://{}/v2/x", gw.addr))
        .header("X-API-Key", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "secure upstream");
    gw.stop().await.unwrap();
    let _ = stop_up.send(true);
    let _ = up.await;
    s.stop().await;
}

/// PostgreSQL with `sslmode=require` (the suite's server has `ssl = on`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_sslmode_require() {
    let Some(pg) = Backend::postgres("postgres_with_sslmode_require") else { return };
    let db = TestDb::new(&pg).await;
    let url = if db.url.contains('?') {
        format!("{}&sslmode=require", db.url)
    } else {
        format!("{}?sslmode=require", db.url)
    };
    let store = keyward_store::Store::connect(&url).await.expect("connect with sslmode=require");
    assert!(store.ready().await);
    store.close().await;
    db.drop_db().await;
}

/// `keyward serve --tls-cert --tls-key` (the binary), reached with the CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_binary_listens_with_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let data = dir.path().join("data").display().to_string();
    let args: Vec<String> = vec![
        "--data-dir".into(),
        data,
        "--tls-cert".into(),
        pki.files.cert.display().to_string(),
        "--tls-key".into(),
        pki.files.key.display().to_string(),
    ];
    let s = crate::cli::Serve::spawn(&args, &[]);
    let port = s.url().rsplit(':').next().unwrap().to_string();
    let ca_pem = std::fs::read(&pki.ca).unwrap();
    let sdk = Client::with_ca(&format!("https://127.0.0.1:{port}"), None, Some(&ca_pem)).unwrap();
    assert!(sdk.health().await.unwrap(), "the TLS server did not answer /healthz");
    // A missing key file stops the server at start, saying which.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--data-dir", &dir.path().join("d2").display().to_string(), "--listen", "127.0.0.1:0"])
        .args(["--tls-cert", &pki.files.cert.display().to_string(), "--tls-key", "/nonexistent/key.pem"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/key.pem"), "{o:?}");
    drop(s);
}
