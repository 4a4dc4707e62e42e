//! Apps (docs/APPS.md) end to end: an app registered with an APP pair from `keyward keys
//! generate --key-type APP`, installed by another workspace with less than it asks for; an
//! assertion signed by a held-out JWT library (`jsonwebtoken`) buys an access token that the
//! same library verifies offline against `/.well-known/jwks.json` and that Keyward's verify
//! accepts with exactly the granted permissions; a refresh token works once and its reuse
//! kills the family; an uninstall makes the token `REVOKED` on a second node within a
//! second; forged and replayed assertions are refused; the Rust SDK's `TokenSource`
//! (secp256k1) refreshes before expiry and falls back to a new assertion.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm as JwtAlg, DecodingKey, EncodingKey, Header, Validation};
use keyward_client::signer::{Algorithm, PrivateKey};
use keyward_client::token_source::TokenSource;
use keyward_core::clock::Clock;
use keyward_core::OsRandom;
use keyward_server::bootstrap::{create_workspace, InitOptions};
use keyward_testkit::{code, test_config, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    an_app_installed_elsewhere_buys_tokens_that_verify_everywhere,
    governed_installs_and_the_sdk,
    the_console_registers_installs_and_uninstalls,
    tokens_are_refused_while_suspended_past_the_limit_and_after_their_end,
    concurrent_first_uses_of_an_app_token_share_one_read,
    storage_failing_under_an_app_tokens_first_uses_answers_503,
    made_up_kids_starve_no_real_signing_key,
    workspaces_install_each_others_apps_at_once,
    a_failed_read_of_the_signing_keys_at_start_is_made_again
);

const BIN: &str = env!("CARGO_BIN_EXE_keyward");
/// Where people reach the server (`--public-url`): the assertions' audience and the tokens'
/// issuer, whatever address the test reaches it at.
const PUBLIC: &str = "https://keyward.test";
const AUD: &str = "https://keyward.test/v1/oauth/token";

fn kw(args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(o.status.success(), "keyward {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

async fn server(b: Backend) -> TestServer {
    TestServer::start_with(b, keyward_server::ServerConfig { public_url: Some(PUBLIC.into()), ..test_config() }).await
}

/// An Ed25519 seed as the PKCS#8 DER `jsonwebtoken` signs with (RFC 8410).
fn ed25519_der(seed_hex: &str) -> Vec<u8> {
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend(keyward_core::pepper::hex_decode(seed_hex).unwrap());
    der
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An assertion signed by the held-out library.
fn assertion(seed_hex: &str, claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(JwtAlg::EdDSA), &claims, &EncodingKey::from_ed_der(&ed25519_der(seed_hex)))
        .unwrap()
}

fn claims(app: &str, inst: &str, jti: &str) -> Value {
    json!({"iss": app, "sub": inst, "aud": AUD, "iat": now(), "exp": now() + 120, "jti": jti})
}

async fn token_call(s: &TestServer, form: &[(&str, &str)]) -> (u16, Value) {
    let r = s.http().post(s.url("/v1/oauth/token")).form(form).send().await.unwrap();
    let st = r.status().as_u16();
    assert_eq!(r.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"));
    (st, r.json().await.unwrap())
}

async fn buy(s: &TestServer, assertion: &str) -> (u16, Value) {
    token_call(s, &[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion)]).await
}

async fn refresh(s: &TestServer, r: &str) -> (u16, Value) {
    token_call(s, &[("grant_type", "refresh_token"), ("refresh_token", r)]).await
}

/// Polls `s`'s verify answer for `token` until its code is `want`, for at most a second.
async fn within_a_second(s: &TestServer, token: &str, want: &str) {
    let started = Instant::now();
    loop {
        let v = s.verify(token, json!({})).await;
        if code(&v) == want {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "still {v}, not {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The developer's workspace (the server's first) and an organisation's.
async fn two_workspaces(s: &TestServer) -> (String, String) {
    let opts =
        InitOptions { workspace_name: "acme".into(), prefix: "acme".into(), owner_email: "o@acme.example".into() };
    let o = create_workspace(&s.store, &s.pepper, s.clock.as_ref(), &OsRandom, &opts).await.unwrap();
    (o.management_key, o.workspace_id)
}

async fn an_app_installed_elsewhere_buys_tokens_that_verify_everywhere(b: Backend) {
    let s = server(b).await;
    let (org, org_ws) = two_workspaces(&s).await;

    // The developer's APP pair, made and registered by the real binary.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let c = cfg.to_str().unwrap();
    kw(&["keys", "generate", "--key-type", "APP", "--env", "test", "--config", c]);
    let table: toml::Table = std::fs::read_to_string(&cfg).unwrap().parse().unwrap();
    let seed = table["test"]["app_secret"].as_str().unwrap().to_string();
    let created = kw(&[
        "apps",
        "create",
        "--env",
        "test",
        "--config",
        c,
        "--server",
        &s.base,
        "--token",
        &s.management_key,
        "--name",
        "Ledger sync",
        "--permission",
        "wallet.*",
        "--permission",
        "tx.create",
        "--scope",
        "wallet:*",
        "--json",
    ]);
    let app: Value = serde_json::from_str(&created).unwrap();
    let app_id = app["id"].as_str().unwrap().to_string();
    assert_eq!(app["public_key"], table["test"]["app_key"].as_str().unwrap());

    // The organisation grants less than asked, never more.
    let more = json!({"app_id": app_id, "permissions": ["wallet.read", "tx.approve"]});
    let (st, v) = s.call_as(&org, Method::POST, "/v1/installations", Some(more)).await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("permissions[1]")), "{v}");
    let wider = json!({"app_id": app_id, "permissions": ["wallet.read"], "scopes": ["*"]});
    let (st, v) = s.call_as(&org, Method::POST, "/v1/installations", Some(wider)).await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("scopes[0]")), "{v}");
    let grant = json!({"app_id": app_id, "permissions": ["wallet.read"], "scopes": ["wallet:w_1"]});
    let (st, inst) = s.call_as(&org, Method::POST, "/v1/installations", Some(grant)).await;
    assert_eq!((st, inst["status"].as_str()), (201, Some("active")), "{inst}");
    let inst_id = inst["id"].as_str().unwrap().to_string();
    // The developer sees the installation, and nothing else of the organisation.
    let (_, mine) = s.call(Method::GET, &format!("/v1/apps/{app_id}/installations"), None).await;
    assert_eq!(mine["items"][0]["id"], inst_id.as_str());
    assert_eq!(mine["items"][0]["workspace_id"], org_ws.as_str());
    let (st, _) = s.call(Method::GET, &format!("/v1/installations/{inst_id}"), None).await;
    assert_eq!(st, 404, "the installation is the organisation's to read");
    let (st, _) = s.call_as(&org, Method::GET, &format!("/v1/apps/{app_id}"), None).await;
    assert_eq!(st, 404, "the app is the developer's to read");
    let (_, listed) = s.call_as(&org, Method::GET, "/v1/installations", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // An assertion signed by the held-out library buys a token.
    let first = assertion(&seed, claims(&app_id, &inst_id, "jti-1"));
    let (st, t) = buy(&s, &first).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!((t["token_type"].as_str(), t["expires_in"].as_i64()), (Some("Bearer"), Some(3600)));
    assert_eq!(t["scope"], "wallet:w_1");
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh1 = t["refresh_token"].as_str().unwrap().to_string();

    // The same library verifies it offline against the JWKS.
    let jwks: Value = s.http().get(s.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(&access).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.unwrap();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).expect("the kid is published");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let mut validation = Validation::new(JwtAlg::EdDSA);
    validation.set_audience(&[&org_ws]);
    validation.set_issuer(&[PUBLIC]);
    let offline = jsonwebtoken::decode::<Value>(&access, &DecodingKey::from_jwk(&jwk).unwrap(), &validation).unwrap();
    assert_eq!(offline.claims["permissions"], json!(["wallet.read"]));
    assert_eq!(offline.claims["workspace_id"], org_ws.as_str());
    assert_eq!(offline.claims["client_id"], app_id.as_str());
    assert_eq!(offline.claims["sub"], inst_id.as_str());
    // Keyward's verify accepts it with exactly the granted permissions.
    let v = s.verify(&access, json!({})).await;
    assert_eq!(code(&v), "VALID", "{v}");
    assert_eq!((v["kind"].as_str(), v["app_id"].as_str()), (Some("app_token"), Some(app_id.as_str())));
    assert_eq!(v["installation_id"], inst_id.as_str());
    assert_eq!(v["workspace_id"], org_ws.as_str());
    assert_eq!(v["permissions"], json!(["wallet.read"]));
    assert_eq!(code(&s.verify(&access, json!({"permissions": "wallet.read", "scope": "wallet:w_1"})).await), "VALID");
    assert_eq!(code(&s.verify(&access, json!({"permissions": "tx.create"})).await), "INSUFFICIENT_PERMISSIONS");
    assert_eq!(code(&s.verify(&access, json!({"scope": "wallet:w_2"})).await), "INSUFFICIENT_PERMISSIONS");
    assert_eq!(code(&s.verify(&access, json!({"workspace_id": s.workspace_id})).await), "NOT_FOUND");
    assert_eq!(code(&s.verify(&access, json!({"workspace_id": org_ws})).await), "VALID");
    // The organisation suspended by the operator: its app tokens stop with its keys.
    let suspend = format!("/v1/workspaces/{org_ws}/suspend");
    let (st, v) = s.call_as(&s.operator_token, Method::POST, &suspend, Some(json!({"reason": "unpaid"}))).await;
    assert_eq!(st, 200, "{v}");
    within_a_second(&s, &access, "SUSPENDED").await;
    let resume = format!("/v1/workspaces/{org_ws}/resume");
    let (st, v) = s.call_as(&s.operator_token, Method::POST, &resume, Some(json!({}))).await;
    assert_eq!(st, 200, "{v}");
    within_a_second(&s, &access, "VALID").await;
    // Forward-auth too.
    let r = s.http().get(s.url("/v1/auth")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-keyward-key-id"], inst_id.as_str());
    // RFC 7662.
    let intro: Value = s
        .http()
        .post(s.url("/v1/oauth/introspect"))
        .form(&[("token", &access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((intro["active"].as_bool(), intro["client_id"].as_str()), (Some(true), Some(app_id.as_str())));

    // A token with the same jti and other claims (signature kept) is refused.
    let (h, rest) = access.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let mut forged_claims = offline.claims.clone();
    forged_claims["permissions"] = json!(["*"]);
    let forged_body = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&forged_claims).unwrap(),
    );
    let forged_token = format!("{h}.{forged_body}.{sig}");
    assert_eq!(code(&s.verify(&forged_token, json!({})).await), "INVALID_SIGNATURE");

    // A replayed assertion, a forged one, one for another audience or too far ahead: refused.
    let (st, e) = buy(&s, &first).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "replayed: {e}");
    let stranger = "42".repeat(32);
    let (st, e) = buy(&s, &assertion(&stranger, claims(&app_id, &inst_id, "jti-forged"))).await;
    assert_eq!((st, e["error"].as_str()), (401, Some("invalid_client")), "forged: {e}");
    let mut elsewhere = claims(&app_id, &inst_id, "jti-aud");
    elsewhere["aud"] = "https://other.example/v1/oauth/token".into();
    let (st, e) = buy(&s, &assertion(&seed, elsewhere)).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    let mut long = claims(&app_id, &inst_id, "jti-long");
    long["exp"] = (now() + 3600).into();
    let (st, e) = buy(&s, &assertion(&seed, long)).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    // Another app (its own key, its own id) cannot use this app's installation.
    let other_seed = "17".repeat(32);
    let other_public = PrivateKey::from_hex(Algorithm::Ed25519, &other_seed).unwrap().public_key().to_hex();
    let (st, other) =
        s.call(Method::POST, "/v1/apps", Some(json!({"name": "Other", "public_key": other_public}))).await;
    assert_eq!(st, 201, "{other}");
    let (st, e) = buy(&s, &assertion(&other_seed, claims(other["id"].as_str().unwrap(), &inst_id, "jti-other"))).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "another app's installation: {e}");
    // The developer cannot uninstall the organisation's installation.
    let (st, _) = s.call(Method::DELETE, &format!("/v1/installations/{inst_id}"), None).await;
    assert_eq!(st, 404);
    let (st, e) = token_call(&s, &[("grant_type", "password")]).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("unsupported_grant_type")), "{e}");

    // A refresh token works once; its second use revokes the whole family.
    let (st, t2) = refresh(&s, &refresh1).await;
    assert_eq!(st, 200, "{t2}");
    let access2 = t2["access_token"].as_str().unwrap().to_string();
    let refresh2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(code(&s.verify(&access2, json!({})).await), "VALID");
    let (st, e) = refresh(&s, &refresh1).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "reused: {e}");
    let (st, _) = refresh(&s, &refresh2).await;
    assert_eq!(st, 400, "the family is dead");
    assert_eq!(code(&s.verify(&access, json!({})).await), "REVOKED");
    assert_eq!(code(&s.verify(&access2, json!({})).await), "REVOKED");
    let (_, trail) = s.call_as(&org, Method::GET, "/v1/audit?action=app_token.refresh_reused", None).await;
    assert_eq!(trail["items"].as_array().unwrap().len(), 1, "{trail}");
    let (_, issued) = s.call_as(&org, Method::GET, "/v1/audit?action=app_token.issue", None).await;
    assert!(!issued.to_string().contains(&access) && !issued.to_string().contains(&refresh1), "never a token");

    // A fresh token, known to a second node; an uninstall stops it there within a second.
    let (st, t3) = buy(&s, &assertion(&seed, claims(&app_id, &inst_id, "jti-3"))).await;
    assert_eq!(st, 200, "{t3}");
    let access3 = t3["access_token"].as_str().unwrap().to_string();
    let n2 = s.second_node().await;
    assert_eq!(code(&n2.verify(&access3, json!({})).await), "VALID");
    let (st, gone) = s.call_as(&org, Method::DELETE, &format!("/v1/installations/{inst_id}"), None).await;
    assert_eq!((st, gone["status"].as_str()), (200, Some("uninstalled")), "{gone}");
    within_a_second(&n2, &access3, "REVOKED").await;
    assert_eq!(code(&s.verify(&access3, json!({})).await), "REVOKED");
    let (st, e) = buy(&s, &assertion(&seed, claims(&app_id, &inst_id, "jti-4"))).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "uninstalled: {e}");
    // The developer was told, with the events' webhooks' types.
    let (_, dev_trail) = s.call(Method::GET, "/v1/audit?action=app.uninstalled", None).await;
    assert_eq!(dev_trail["items"][0]["changes"]["installation_id"], inst_id.as_str());
    let (_, org_trail) = s.call_as(&org, Method::GET, "/v1/audit?action=app.install", None).await;
    assert_eq!(org_trail["items"].as_array().unwrap().len(), 1);
    n2.stop().await;
    s.stop().await;
}

async fn governed_installs_and_the_sdk(b: Backend) {
    let s = server(b).await;
    let (org, _) = two_workspaces(&s).await;
    let key = PrivateKey::generate(Algorithm::Secp256k1, &OsRandom);
    // Owners and admins register apps; a developer may not.
    let developer = s.member("developer", false).await;
    let hex = key.public_key().to_hex();
    let (st, _) =
        s.call_as(&developer.token, Method::POST, "/v1/apps", Some(json!({"name": "x", "public_key": hex}))).await;
    assert_eq!(st, 403);
    let body = json!({"name": "Payroll", "public_key": key.public_key().to_hex(), "algorithm": "secp256k1",
        "permissions": ["payroll.read", "payroll.write"]});
    let (st, app) = s.call(Method::POST, "/v1/apps", Some(body)).await;
    assert_eq!(st, 201, "{app}");
    let app_id = app["id"].as_str().unwrap().to_string();
    assert_eq!(app["algorithm"], "secp256k1");
    let patch = json!({"description": "pays people", "homepage_url": "https://payroll.example",
        "permissions": ["payroll.read", "payroll.write", "payroll.audit"]});
    let (st, changed) = s.call(Method::PATCH, &format!("/v1/apps/{app_id}"), Some(patch)).await;
    assert_eq!(st, 200, "{changed}");
    assert_eq!(changed["permissions"].as_array().unwrap().len(), 3);
    assert_eq!(
        (changed["name"].as_str(), changed["homepage_url"].as_str()),
        (Some("Payroll"), Some("https://payroll.example"))
    );
    let (st, cleared) = s.call(Method::PATCH, &format!("/v1/apps/{app_id}"), Some(json!({"homepage_url": null}))).await;
    assert_eq!(
        (st, cleared["homepage_url"].clone(), cleared["description"].as_str()),
        (200, Value::Null, Some("pays people"))
    );
    let (st, e) = s.call(Method::PATCH, &format!("/v1/apps/{app_id}"), Some(json!({"scopes": ["has space"]}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("scopes[0]")), "{e}");

    // The organisation's policy asks one approval for app.install.
    let admin = {
        let (st, v) = s
            .call_as(&org, Method::POST, "/v1/members", Some(json!({"email": "a@acme.example", "role": "admin"})))
            .await;
        assert_eq!(st, 201, "{v}");
        let setup = v["setup_token"].as_str().unwrap();
        let (st, _) = s
            .call_as(
                "",
                Method::POST,
                "/v1/members/setup",
                Some(json!({"setup_token": setup, "password": "correct horse battery 9"})),
            )
            .await;
        assert_eq!(st, 200);
        let token = s.login("a@acme.example", "correct horse battery 9", None).await;
        let secret = s.enrol(&token).await;
        (token, secret)
    };
    let rule = json!({"app.install": {"approvals": 1, "approver_roles": ["owner", "admin"]}});
    let (st, v) = s.call_as(&org, Method::PUT, "/v1/policies", Some(rule)).await;
    assert_eq!(st, 200, "{v}");
    let (st, inst) = s
        .call_as(
            &org,
            Method::POST,
            "/v1/installations",
            Some(json!({"app_id": app_id, "permissions": ["payroll.read"]})),
        )
        .await;
    assert_eq!((st, inst["status"].as_str()), (201, Some("pending")), "{inst}");
    let inst_id = inst["id"].as_str().unwrap().to_string();
    let approval = inst["approval_id"].as_str().unwrap().to_string();

    let source = TokenSource::new(&s.base, &app_id, &inst_id, key.clone()).unwrap().audience(AUD);
    let clock = s.clock.clone();
    let source = source.clock(Arc::new(move || keyward_core::Clock::now(clock.as_ref()).timestamp()));
    let e = source.access_token().await.unwrap_err();
    assert_eq!(e.status(), Some(400), "pending: {e}");

    let otp = s.otp(&admin.1);
    let (st, v) = s
        .call_as(&admin.0, Method::POST, &format!("/v1/approvals/{approval}/approve"), Some(json!({"otp": otp})))
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, now_active) = s.call_as(&org, Method::GET, &format!("/v1/installations/{inst_id}"), None).await;
    assert_eq!(now_active["status"], "active");
    let (_, told) = s.call(Method::GET, "/v1/audit?action=app.installed", None).await;
    assert_eq!(told["items"][0]["changes"]["installation_id"], inst_id.as_str(), "the developer is told");
    // A rejected request leaves its installation rejected, and the developer untold.
    let (st, second) = s
        .call_as(
            &org,
            Method::POST,
            "/v1/installations",
            Some(json!({"app_id": app_id, "permissions": ["payroll.write"]})),
        )
        .await;
    assert_eq!((st, second["status"].as_str()), (201, Some("pending")), "{second}");
    s.clock.advance(chrono::Duration::seconds(30));
    let otp = s.otp(&admin.1);
    let reject = format!("/v1/approvals/{}/reject", second["approval_id"].as_str().unwrap());
    let (st, v) = s.call_as(&admin.0, Method::POST, &reject, Some(json!({"otp": otp, "reason": "not now"}))).await;
    assert_eq!(st, 200, "{v}");
    let (_, rejected) =
        s.call_as(&org, Method::GET, &format!("/v1/installations/{}", second["id"].as_str().unwrap()), None).await;
    assert_eq!(rejected["status"], "rejected");
    let (_, told) = s.call(Method::GET, "/v1/audit?action=app.installed", None).await;
    assert_eq!(told["items"].as_array().unwrap().len(), 1);

    // The SDK's source: an ES256K assertion buys a token; it is kept while fresh…
    let t1 = source.access_token().await.unwrap();
    assert_eq!(source.access_token().await.unwrap(), t1);
    let v = s.verify(&t1, json!({"permissions": "payroll.read"})).await;
    assert_eq!((code(&v), v["kind"].as_str()), ("VALID", Some("app_token")), "{v}");
    assert_eq!(code(&s.verify(&t1, json!({"permissions": "payroll.write"})).await), "INSUFFICIENT_PERMISSIONS");
    // …refreshed a minute before it expires…
    s.clock.advance(chrono::Duration::seconds(3550));
    let t2 = source.access_token().await.unwrap();
    assert_ne!(t2, t1);
    assert_eq!(code(&s.verify(&t2, json!({})).await), "VALID");
    let (_, refreshed) = s.call_as(&org, Method::GET, "/v1/audit?action=app_token.issue", None).await;
    assert_eq!(refreshed["items"][0]["changes"]["grant_type"], "refresh_token");
    // …and bought anew with an assertion once its refresh token has ended.
    s.clock.advance(chrono::Duration::days(31));
    assert_eq!(code(&s.verify(&t2, json!({})).await), "EXPIRED");
    let t3 = source.access_token().await.unwrap();
    assert_eq!(code(&s.verify(&t3, json!({})).await), "VALID");
    let (_, bought) = s.call_as(&org, Method::GET, "/v1/audit?action=app_token.issue", None).await;
    assert_eq!(bought["items"][0]["changes"]["grant_type"], "jwt-bearer");

    // Deleting the app stops its tokens; RFC 7009 revocation stops one.
    let r = s.http().post(s.url("/v1/oauth/revoke")).form(&[("token", &t3)]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(code(&s.verify(&t3, json!({})).await), "REVOKED");
    source.forget().await;
    let t4 = source.access_token().await.unwrap();
    assert_eq!(code(&s.verify(&t4, json!({})).await), "VALID");
    let (st, _) = s.call(Method::DELETE, &format!("/v1/apps/{app_id}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(code(&s.verify(&t4, json!({})).await), "REVOKED");
    // Metadata names the endpoints under the public URL.
    let meta: Value =
        s.http().get(s.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["token_endpoint"], AUD);
    assert_eq!(meta["issuer"], PUBLIC);
    // Long after, the sweep forgets the used assertion ids, the ended tokens and their families.
    s.clock.advance(chrono::Duration::days(40));
    let swept = s.store.sweep_app_tokens(keyward_core::Clock::now(s.clock.as_ref())).await.unwrap();
    assert!(swept >= 8, "swept {swept} rows");
    assert_eq!(s.store.sweep_app_tokens(keyward_core::Clock::now(s.clock.as_ref())).await.unwrap(), 0);
    s.stop().await;
}

async fn the_console_registers_installs_and_uninstalls(b: Backend) {
    use crate::console::Browser;
    let s = server(b).await;
    let (org, _) = two_workspaces(&s).await;
    let dev = s.member("admin", false).await;
    let mut br = Browser::signed_in(&s, &dev).await;
    // One menu entry: the Apps page links to the installed apps.
    let nav = br.get("/console/keys").await.body;
    assert!(nav.contains(r#"<a href="/console/apps""#));
    assert!(br.get("/console/apps").await.body.contains(r#"<a href="/console/installed-apps""#));
    let key = PrivateKey::generate(Algorithm::Ed25519, &OsRandom);
    let a = br
        .submit(
            "/console/apps",
            "/console/apps",
            &[
                ("name", "Audit bot"),
                ("public_key", &key.public_key().to_hex()),
                ("algorithm", "ed25519"),
                ("permissions", "audit.read, keys.read"),
                ("scopes", ""),
            ],
        )
        .await;
    assert_eq!((a.status, a.location()), (303, "/console/apps"), "{}", a.body);
    let (_, apps) = s.call(Method::GET, "/v1/apps", None).await;
    let app_id = apps["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(apps["items"][0]["permissions"], json!(["audit.read", "keys.read"]));

    // The organisation's admin sees what it asks for, grants one of the two.
    let org_admin = s.member_as(&org, "admin", false).await;
    let mut ob = Browser::signed_in(&s, &org_admin).await;
    let consent = ob.get(&format!("/console/installed-apps/consent?app_id={app_id}")).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("audit.read") && consent.body.contains("keys.read"), "{}", consent.body);
    let page = format!("/console/installed-apps/consent?app_id={app_id}");
    let a = ob
        .submit(
            &page,
            "/console/installed-apps",
            &[("app_id", &app_id), ("permission", "audit.read"), ("environment", "live")],
        )
        .await;
    assert_eq!((a.status, a.location()), (303, "/console/installed-apps"), "{}", a.body);
    let listed = ob.get("/console/installed-apps").await.body;
    assert!(listed.contains("Audit bot") && listed.contains("Uninstall Audit bot"), "{listed}");
    let (_, mine) = s.call(Method::GET, &format!("/v1/apps/{app_id}/installations"), None).await;
    assert_eq!(mine["items"][0]["permissions"], json!(["audit.read"]));
    let inst = mine["items"][0]["id"].as_str().unwrap().to_string();
    // The developer's page shows where it is installed.
    assert!(br.get("/console/apps").await.body.contains(&inst));
    let a = ob.submit("/console/installed-apps", &format!("/console/installed-apps/{inst}/uninstall"), &[]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let (_, after) = s.call_as(&org, Method::GET, &format!("/v1/installations/{inst}"), None).await;
    assert_eq!(after["status"], "uninstalled");
    s.stop().await;
}

/// An app registered by `ws` (its management key) with an Ed25519 key from `seed`.
async fn register(s: &TestServer, token: &str, name: &str, seed: &str) -> String {
    let public = PrivateKey::from_hex(Algorithm::Ed25519, seed).unwrap().public_key().to_hex();
    let body = json!({"name": name, "public_key": public, "permissions": ["wallet.read"]});
    let (st, app) = s.call_as(token, Method::POST, "/v1/apps", Some(body)).await;
    assert_eq!(st, 201, "{app}");
    app["id"].as_str().unwrap().to_string()
}

async fn install(s: &TestServer, token: &str, app_id: &str) -> (u16, Value) {
    let grant = json!({"app_id": app_id, "permissions": ["wallet.read"]});
    s.call_as(token, Method::POST, "/v1/installations", Some(grant)).await
}

async fn tokens_are_refused_while_suspended_past_the_limit_and_after_their_end(b: Backend) {
    let config = keyward_server::ServerConfig {
        public_url: Some(PUBLIC.into()),
        oauth_token_limit: (3, Duration::from_secs(60)),
        ..test_config()
    };
    let s = TestServer::start_with(b, config).await;
    let (org, org_ws) = two_workspaces(&s).await;
    let seed = "5a".repeat(32);
    let app_id = register(&s, &s.management_key, "Ledger", &seed).await;
    let (st, inst) = install(&s, &org, &app_id).await;
    assert_eq!(st, 201, "{inst}");
    let inst_id = inst["id"].as_str().unwrap().to_string();
    let (st, t) = buy(&s, &assertion(&seed, claims(&app_id, &inst_id, "a-1"))).await;
    assert_eq!(st, 200, "{t}");
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh_token = t["refresh_token"].as_str().unwrap().to_string();

    // While the organisation is suspended no token is issued, by either grant.
    let srv = &s;
    let op = |path: String| async move {
        let s = srv;
        let (st, v) = s.call_as(&s.operator_token, Method::POST, &path, Some(json!({"reason": "unpaid"}))).await;
        assert_eq!(st, 200, "{path}: {v}");
    };
    op(format!("/v1/workspaces/{org_ws}/suspend")).await;
    let (st, e) = buy(&s, &assertion(&seed, claims(&app_id, &inst_id, "a-2"))).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    assert!(e["error_description"].as_str().unwrap().contains("suspended"), "{e}");
    let (st, e) = refresh(&s, &refresh_token).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    op(format!("/v1/workspaces/{org_ws}/resume")).await;
    // Nor while the app's developer is.
    op(format!("/v1/workspaces/{}/suspend", s.workspace_id)).await;
    let (st, e) = buy(&s, &assertion(&seed, claims(&app_id, &inst_id, "a-3"))).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("unauthorized_client")), "{e}");
    op(format!("/v1/workspaces/{}/resume", s.workspace_id)).await;

    // Three tokens a minute for the installation (the refusals above were not counted).
    let (st, t) = refresh(&s, &refresh_token).await;
    assert_eq!(st, 200, "the refresh token outlived the suspension: {t}");
    let (st, t) = buy(&s, &assertion(&seed, claims(&app_id, &inst_id, "a-4"))).await;
    assert_eq!(st, 200, "{t}");
    let r = s
        .http()
        .post(s.url("/v1/oauth/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion(&seed, claims(&app_id, &inst_id, "a-5"))),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "slow_down", "{e}");
    // Another installation has its own count.
    let (_, other) = s.call_as(&org, Method::GET, "/v1/installations", None).await;
    assert_eq!(other["items"].as_array().unwrap().len(), 1);

    // A day and more past its end the token's row is swept; still ours, still expired.
    assert_eq!(code(&s.verify(&access, json!({})).await), "VALID");
    s.clock.advance(chrono::Duration::days(2));
    assert!(s.store.sweep_app_tokens(s.clock.now()).await.unwrap() >= 1);
    let n2 = s.second_node().await;
    assert_eq!(code(&n2.verify(&access, json!({})).await), "EXPIRED", "a fresh node, nothing cached");
    n2.stop().await;
    s.stop().await;
}

/// Two workspaces installing each other's apps at the same moment, many times over: each
/// install writes both workspaces' audit chains, and none waits on the other forever (on
/// PostgreSQL the heads are row locks; taken in opposite orders they deadlocked).
async fn workspaces_install_each_others_apps_at_once(b: Backend) {
    let s = server(b).await;
    let (org, _) = two_workspaces(&s).await;
    let mut pairs = Vec::new();
    for i in 0..12 {
        let mine = register(&s, &s.management_key, &format!("mine-{i}"), &format!("{:02x}", 16 + i).repeat(32)).await;
        let theirs = register(&s, &org, &format!("theirs-{i}"), &format!("{:02x}", 64 + i).repeat(32)).await;
        pairs.push((mine, theirs));
    }
    let calls = pairs.iter().flat_map(|(mine, theirs)| {
        [Box::pin(install(&s, &org, mine)), Box::pin(install(&s, &s.management_key, theirs))]
    });
    let answers = futures_util::future::join_all(calls).await;
    for (st, v) in &answers {
        assert_eq!(*st, 201, "{v}");
    }
    // Both chains still verify.
    for token in [&s.management_key, &org] {
        let (st, v) = s.call_as(token, Method::GET, "/v1/audit/verify", None).await;
        assert_eq!((st, v["ok"].as_bool()), (200, Some(true)), "{v}");
    }
    s.stop().await;
}

/// A node that has no decision about a token, under load: its concurrent first uses share one
/// read of the signing key and one of the token's row (a node restarted under load would
/// otherwise read a hot token once per request, and spend the second's budget of signing-key
/// lookups on one key, answering the rest `NOT_FOUND`). Storage is made slow by holding
/// PostgreSQL locks on both tables, so this runs on PostgreSQL only.
async fn concurrent_first_uses_of_an_app_token_share_one_read(b: Backend) {
    use sqlx::Executor;
    let s = server(b).await;
    if !on_postgres(&s, "concurrent_first_uses_of_an_app_token_share_one_read") {
        return s.stop().await;
    }
    let token = installed_token(&s, "Hot", &"6b".repeat(32), "hot-1").await;
    // The events of the set-up have passed: misses from now on share one generation.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reads =
        |m: &std::collections::HashMap<String, f64>| m["keyward_verify_storage_reads_total{credential=\"secret_key\"}"];
    let before = reads(&crate::verify_floods::metrics(&s).await);

    let mut lock = lock_app_tables(&s).await;
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let r = s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": token}));
            tokio::spawn(async move { r.send().await.unwrap().json::<Value>().await.unwrap() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    lock.execute("ROLLBACK").await.unwrap();
    for call in calls {
        let v = call.await.unwrap();
        assert_eq!(code(&v), "VALID", "{v}");
    }
    let after = reads(&crate::verify_floods::metrics(&s).await);
    assert_eq!(after - before, 1.0, "one read of the token for 40 first uses");

    // Strangers' `kid`s at once — made-up ones of the right form, a huge one, one with a NUL —
    // are refused without a 5xx, and the real token still verifies beside them.
    let mut forged = under_made_up_kids(&token, 60);
    let stem = &kid_of(&token)[..kid_of(&token).len() - 2];
    forged.push(under_kid(&token, &format!("tsk_{}", "Z".repeat(100_000))));
    forged.push(under_kid(&token, &format!("{stem}\0Z")));
    let calls: Vec<_> = forged
        .iter()
        .chain(std::iter::once(&token))
        .map(|t| {
            let r = s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": t}));
            tokio::spawn(async move {
                let r = r.send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let answers = join_all_handles(calls).await;
    let (real, strangers) = answers.split_last().unwrap();
    assert_eq!((real.0, code(&real.1)), (200, "VALID"), "{}", real.1);
    for (st, v) in strangers {
        assert!(*st < 500, "{st} {v}");
        assert_ne!(code(v), "VALID", "{v}");
    }
    s.stop().await;
}

/// Whether `s` runs on PostgreSQL, whose table locks hold reads back; else says the test
/// `name` was skipped.
fn on_postgres(s: &TestServer, name: &str) -> bool {
    let yes = s.db.is_postgres();
    if !yes {
        keyward_testkit::skipped(&format!("sqlite::{name}"), "PostgreSQL only (a table lock holds reads back)");
    }
    yes
}

/// A connection whose open transaction holds both app-token tables locked: every read of
/// them waits until it rolls back.
async fn lock_app_tables(s: &TestServer) -> sqlx::PgConnection {
    lock_tables(s, "app_signing_keys, app_access_tokens").await
}

/// A connection whose open transaction holds `tables` locked.
async fn lock_tables(s: &TestServer, tables: &str) -> sqlx::PgConnection {
    use sqlx::{Connection, Executor};
    let mut lock = sqlx::PgConnection::connect(&s.db.url).await.unwrap();
    lock.execute("BEGIN").await.unwrap();
    lock.execute(format!("LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE").as_str()).await.unwrap();
    lock
}

/// A new app named `name` (its key's seed `seed`) installed by a second workspace:
/// (the organisation's management key, the app's id, the installation's id).
async fn installed(s: &TestServer, name: &str, seed: &str) -> (String, String, String) {
    let (org, _) = two_workspaces(s).await;
    let app_id = register(s, &s.management_key, name, seed).await;
    let (st, inst) = install(s, &org, &app_id).await;
    assert_eq!(st, 201, "{inst}");
    let inst_id = inst["id"].as_str().unwrap().to_string();
    (org, app_id, inst_id)
}

/// An access token the installation `inst_id` of `app_id` (its key's seed `seed`) buys.
async fn bought(s: &TestServer, seed: &str, app_id: &str, inst_id: &str, jti: &str) -> String {
    let (st, t) = buy(s, &assertion(seed, claims(app_id, inst_id, jti))).await;
    assert_eq!(st, 200, "{t}");
    t["access_token"].as_str().unwrap().to_string()
}

/// An access token bought by a new app named `name` (its key's seed `seed`), installed by a
/// second workspace.
async fn installed_token(s: &TestServer, name: &str, seed: &str, jti: &str) -> String {
    let (_, app_id, inst_id) = installed(s, name, seed).await;
    bought(s, seed, &app_id, &inst_id, jti).await
}

/// Concurrent first uses of an app token while storage fails under their shared read (its
/// database backend terminated while a table lock holds it, again for each new read): every
/// one answers 503 naming nothing internal — none `VALID` from a read that failed, none
/// `NOT_FOUND` for a token that exists — and once storage is back the token verifies, with no
/// restart.
async fn storage_failing_under_an_app_tokens_first_uses_answers_503(b: Backend) {
    use sqlx::{Connection, Executor};
    let s = server(b).await;
    if !on_postgres(&s, "storage_failing_under_an_app_tokens_first_uses_answers_503") {
        return s.stop().await;
    }
    let token = installed_token(&s, "Cut", &"7c".repeat(32), "cut-1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut lock = lock_app_tables(&s).await;
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let r = s.http().post(s.url("/v1/keys/verify")).json(&json!({"key": token}));
            tokio::spawn(async move {
                let r = r.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            })
        })
        .collect();
    let mut admin = sqlx::PgConnection::connect(&s.db.url).await.unwrap();
    let (started, mut cut) = (Instant::now(), 0);
    while !calls.iter().all(|c| c.is_finished()) {
        assert!(started.elapsed() < Duration::from_secs(20), "first uses still waiting after {cut} cut reads");
        let gone: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND state = 'active' \
             AND (query LIKE '%app_access_tokens%' OR query LIKE '%app_signing_keys%')",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        cut += gone.len();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cut >= 1, "no read reached the database");
    for (st, body) in join_all_handles(calls).await {
        assert_eq!(st, 503, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "unavailable", "{body}");
        for internal in ["terminat", "sqlx", "postgres", "app_access_tokens", "app_signing_keys"] {
            assert!(!body.to_lowercase().contains(internal), "{internal} in {body}");
        }
    }
    lock.execute("ROLLBACK").await.unwrap();
    let started = Instant::now();
    loop {
        let v = s.verify(&token, json!({})).await;
        if code(&v) == "VALID" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still {v} after storage came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}

/// The `kid` a token's header names.
fn kid_of(token: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// `token` with its header's `kid` replaced (its signature no longer matches anything).
fn under_kid(token: &str, kid: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let parts: Vec<&str> = token.split('.').collect();
    let mut header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    header["kid"] = kid.into();
    format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), parts[1], parts[2])
}

/// Up to `n` copies of `token` under made-up `kid`s of the right form (its own with the last
/// two characters changed).
fn under_made_up_kids(token: &str, n: usize) -> Vec<String> {
    let kid = kid_of(token);
    let (stem, tail) = kid.split_at(kid.len() - 2);
    let alphabet: Vec<char> = "0123456789ABCDEFGHJKMNPQRSTVWXYZ".chars().collect();
    (0..n)
        .map(|i| format!("{stem}{}{}", alphabet[i % 32], alphabet[(i / 32 + 7) % 32]))
        .filter(|k| !k.ends_with(tail))
        .map(|k| under_kid(token, &k))
        .collect()
}

/// Tokens under made-up `kid`s spend a node's budget of signing-key lookups (the second's:
/// the test's clock does not move), yet a real key is never starved of its read: one made
/// before the node started is held from its start, and one made since is announced by its
/// event and read without the budget. Before, both answered `NOT_FOUND` for as long as the
/// flood lasted.
async fn made_up_kids_starve_no_real_signing_key(b: Backend) {
    let s = server(b).await;
    let seed = "5d".repeat(32);
    let (org, app_id, inst_id) = installed(&s, "Flooded", &seed).await;
    let first = bought(&s, &seed, &app_id, &inst_id, "flood-1").await;
    // The key's event gone (pruned): the new node knows the key only by reading them all.
    s.store.prune_events(s.clock.now() + chrono::Duration::seconds(1)).await.unwrap();

    let n2 = s.second_node().await;
    let started = Instant::now();
    while crate::verify_floods::metrics(&n2).await["keyward_known_credentials_loaded"] != 1.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the new node's sets never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let flood = |token: &str| {
        let calls: Vec<_> = under_made_up_kids(token, 40)
            .into_iter()
            .map(|t| {
                let r = n2.http().post(n2.url("/v1/keys/verify")).json(&json!({"key": t}));
                tokio::spawn(async move {
                    let r = r.send().await.unwrap();
                    (r.status().as_u16(), r.json::<Value>().await.unwrap())
                })
            })
            .collect();
        join_all_handles(calls)
    };
    for (st, v) in flood(&first).await {
        assert_eq!((st, code(&v)), (200, "NOT_FOUND"), "{v}");
    }
    let v = n2.verify(&first, json!({})).await;
    assert_eq!(code(&v), "VALID", "a key made before the node started: {v}");

    // A rotation on the first node makes a key the second has never read.
    let (st, rotated) = s.call_as(&org, Method::POST, "/v1/oauth/signing-key/rotate", None).await;
    assert_eq!(st, 200, "{rotated}");
    let second = bought(&s, &seed, &app_id, &inst_id, "flood-2").await;
    assert_eq!(kid_of(&second), rotated["kid"].as_str().unwrap());
    for (st, v) in flood(&second).await {
        assert_eq!((st, code(&v)), (200, "NOT_FOUND"), "{v}");
    }
    within_a_second(&n2, &second, "VALID").await;
    n2.stop().await;
    s.stop().await;
}

async fn join_all_handles<T>(calls: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for c in calls {
        out.push(c.await.unwrap());
    }
    out
}

/// A node's read of every token-signing key at start, cut off by the database (its backend
/// terminated while a table lock holds it), is made again until it succeeds: the node's known
/// sets load after it, and the key is then held — a token signed with it verifies while the
/// keys' table is locked again, with no read of it.
async fn a_failed_read_of_the_signing_keys_at_start_is_made_again(b: Backend) {
    use sqlx::{Connection, Executor};
    let s = server(b).await;
    if !on_postgres(&s, "a_failed_read_of_the_signing_keys_at_start_is_made_again") {
        return s.stop().await;
    }
    let token = installed_token(&s, "Restarted", &"6e".repeat(32), "start-1").await;
    // The key's event gone (pruned): the new node knows the key only by reading them all.
    s.store.prune_events(s.clock.now() + chrono::Duration::seconds(1)).await.unwrap();
    let mut lock = lock_tables(&s, "app_signing_keys").await;
    let n2 = s.second_node().await;
    let mut admin = sqlx::PgConnection::connect(&s.db.url).await.unwrap();
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(10), "the start read never reached the database");
        let cut: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND state = 'active' \
             AND query LIKE 'SELECT kid, workspace_id, public_key FROM app_signing_keys ORDER BY%'",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        if !cut.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lock.execute("ROLLBACK").await.unwrap();
    let started = Instant::now();
    while crate::verify_floods::metrics(&n2).await["keyward_known_credentials_loaded"] != 1.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the signing keys were not read again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut lock = lock_tables(&s, "app_signing_keys").await;
    let v = tokio::time::timeout(Duration::from_secs(5), n2.verify(&token, json!({})))
        .await
        .expect("the key is held: no read of the locked table");
    assert_eq!(code(&v), "VALID", "{v}");
    lock.execute("ROLLBACK").await.unwrap();
    admin.close().await.ok();
    n2.stop().await;
    s.stop().await;
}
