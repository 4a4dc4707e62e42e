//! The console's single sign-on over HTTP, with a small OpenID provider held by the test
//! (discovery, an ES256 key set, a token endpoint checking `client_secret_basic` and PKCE,
//! ID tokens the test words): a member signed in and audited, each ID token check (signature,
//! issuer, audience, expiry, nonce, `email_verified`) refusing with no session, the flow's
//! state and cookie, the one-time code and the workspace asked after the provider, unknown
//! emails refused or auto-joined, invitations taken up, a provider that is down.
//! (`tests/browser/sso.test.mjs` runs the flows against a real provider in Chromium.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use keyward_core::OsRandom;
use keyward_server::bootstrap::{create_workspace, InitOptions};
use keyward_server::config::{AutoJoin, OidcConfig};
use keyward_server::ServerConfig;
use keyward_testkit::{test_config, Backend, TestServer};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::console::{Answer, Browser};

on_both_backends!(
    a_member_signs_in_through_the_provider,
    unknown_emails_are_refused_or_join,
    the_code_and_the_workspace_are_asked_after_the_provider
);

const SECRET: &str = "the-client-secret";

/// What makes an ID token wrong in one way.
type Spoil = fn(&mut Claims);
const PUBLIC_URL: &str = "http://keyward.test";

/// What the ID token of one sign-in says, and how it is made wrong.
#[derive(Clone)]
struct Claims {
    email: String,
    verified: Option<bool>,
    nonce: Option<String>,
    aud: Option<String>,
    iss: Option<String>,
    expired: bool,
    other_key: bool,
}

impl Claims {
    fn of(email: &str) -> Claims {
        Claims {
            email: email.into(),
            verified: Some(true),
            nonce: None,
            aud: None,
            iss: None,
            expired: false,
            other_key: false,
        }
    }
}

struct Pending {
    challenge: String,
    nonce: String,
    claims: Claims,
    now: i64,
}

struct IdpState {
    issuer: String,
    key: SigningKey,
    codes: Mutex<HashMap<String, Pending>>,
}

/// The test's provider, on a loopback port.
struct Idp {
    state: Arc<IdpState>,
}

impl Idp {
    async fn start() -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let state = Arc::new(IdpState {
            issuer: format!("http://{addr}"),
            key: SigningKey::random(&mut rand::rngs::OsRng),
            codes: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Idp { state }
    }

    fn issuer(&self) -> String {
        self.state.issuer.clone()
    }
}

async fn discovery(State(st): State<Arc<IdpState>>) -> Json<Value> {
    let i = &st.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/auth"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn jwks(State(st): State<Arc<IdpState>>) -> Json<Value> {
    let point = st.key.verifying_key().to_encoded_point(false);
    Json(json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    }]}))
}

fn jwt(key: &SigningKey, claims: &Value) -> String {
    let head = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let sig: Signature = key.sign(format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// The token endpoint: the client authenticates with HTTP Basic, and the code's verifier
/// must hash to the challenge its authorization request carried.
async fn token(State(st): State<Arc<IdpState>>, headers: HeaderMap, body: String) -> (StatusCode, Json<Value>) {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let basic = format!("Basic {}", STANDARD.encode(format!("keyward:{SECRET}")));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"})));
    }
    let Some(p) = st.codes.lock().unwrap().remove(form.get("code").map(String::as_str).unwrap_or_default()) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"})));
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != p.challenge {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": "PKCE"})));
    }
    let c = &p.claims;
    let exp = if c.expired { p.now - 600 } else { p.now + 600 };
    let mut claims = json!({
        "iss": c.iss.clone().unwrap_or_else(|| st.issuer.clone()),
        "aud": c.aud.clone().unwrap_or_else(|| "keyward".into()),
        "sub": format!("sub-{}", c.email),
        "iat": exp - 1200, "exp": exp,
        "nonce": c.nonce.clone().unwrap_or(p.nonce),
        "email": c.email,
    });
    if let Some(v) = c.verified {
        claims["email_verified"] = v.into();
    }
    let key = if c.other_key { SigningKey::random(&mut rand::rngs::OsRng) } else { st.key.clone() };
    let id_token = jwt(&key, &claims);
    (
        StatusCode::OK,
        Json(json!({"access_token": "at", "token_type": "Bearer", "expires_in": 600, "id_token": id_token})),
    )
}

fn oidc_config(idp: &Idp, auto_join: Option<AutoJoin>) -> ServerConfig {
    ServerConfig {
        public_url: Some(PUBLIC_URL.into()),
        oidc: Some(OidcConfig {
            issuer: idp.issuer(),
            client_id: "keyward".into(),
            client_secret: SECRET.into(),
            auto_join,
        }),
        ..test_config()
    }
}

fn query(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// "Sign in with SSO", the provider's redirect to it checked, then the way back with a
/// code whose ID token says `claims`: the callback's answer.
async fn through_provider(s: &TestServer, idp: &Idp, br: &mut Browser, claims: Claims) -> Answer {
    let start = br.get("/console/oidc/start").await;
    assert_eq!(start.status, 303, "{}", start.body);
    assert!(start.location().starts_with(&format!("{}/auth?", idp.issuer())), "{}", start.location());
    let q = query(start.location());
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "keyward");
    assert_eq!(q["redirect_uri"], format!("{PUBLIC_URL}/console/oidc/callback"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].split(' ').any(|s| s == "openid") && q["scope"].split(' ').any(|s| s == "email"));
    let flow = start.set_cookie("kw_oidc").expect("the flow cookie");
    assert!(flow.contains("SameSite=Lax") && flow.contains("HttpOnly") && flow.contains("Max-Age=600"), "{flow}");
    let code = format!("code-{}", rand::random::<u64>());
    let now = keyward_core::Clock::now(s.clock.as_ref()).timestamp();
    let pending = Pending { challenge: q["code_challenge"].clone(), nonce: q["nonce"].clone(), claims, now };
    idp.state.codes.lock().unwrap().insert(code.clone(), pending);
    br.get(&format!("/console/oidc/callback?code={code}&state={}", q["state"])).await
}

/// Signed in: the session cookie is set, and the console opens.
async fn assert_signed_in(br: &mut Browser, a: &Answer) {
    assert!(a.set_cookie("kw_session").is_some(), "{} {}", a.status, a.body);
    assert!(br.cookie("kw_oidc").is_none() && br.cookie("kw_sso").is_none());
    let keys = br.get("/console/keys").await;
    assert_eq!(keys.status, 200, "{}", keys.body);
}

/// Refused: no session cookie, and the console still sends the browser to sign in.
async fn assert_refused(br: &mut Browser, a: &Answer, status: u16, words: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert!(a.body.contains("Not signed in") && a.body.contains(words), "{}", a.body);
    assert!(a.set_cookie("kw_session").is_none() && br.cookie("kw_session").is_none());
    assert!(br.cookie("kw_oidc").is_none(), "the flow is used up");
    assert_eq!(br.get("/console/keys").await.location(), "/console/login");
}

async fn a_member_signs_in_through_the_provider(b: Backend) {
    let idp = Idp::start().await;
    let s = TestServer::start_with(b, oidc_config(&idp, None)).await;
    let m = s.member("developer", false).await;
    // The sign-in page offers single sign-on.
    let mut br = Browser::new(&s);
    assert!(br.get("/console/login").await.body.contains(r#"href="/console/oidc/start">Sign in with SSO"#));
    // The provider's email may differ in case from the member's.
    let a = through_provider(&s, &idp, &mut br, Claims::of(&m.email.to_uppercase())).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // Sent on by a page of this site, so the `SameSite=Strict` session cookie goes along.
    assert!(a.body.contains(r#"http-equiv="refresh" content="0; url=/console/keys""#), "{}", a.body);
    assert_signed_in(&mut br, &a).await;
    let (_, audit) = s.call(Method::GET, "/v1/audit?action=session.login", None).await;
    let login = audit["items"].as_array().unwrap().iter().find(|e| e["actor"]["id"] == m.id.as_str()).unwrap();
    assert_eq!(login["changes"]["method"], "oidc", "{login}");
    // A password sign-in says so too.
    s.login(&m.email, &m.password, None).await;
    let (_, audit) = s.call(Method::GET, "/v1/audit?action=session.login", None).await;
    assert_eq!(audit["items"][0]["changes"]["method"], "password");

    // Every check of the ID token refuses on its own, with no session.
    let cases: [(&str, Spoil); 7] = [
        ("nonce", |c| c.nonce = Some("another-flow".into())),
        ("audience", |c| c.aud = Some("another-client".into())),
        ("issuer", |c| c.iss = Some("http://another.example".into())),
        ("expiry", |c| c.expired = true),
        ("signature", |c| c.other_key = true),
        ("email_verified false", |c| c.verified = Some(false)),
        ("email_verified missing", |c| c.verified = None),
    ];
    for (what, spoil) in cases {
        let mut claims = Claims::of(&m.email);
        spoil(&mut claims);
        let mut br = Browser::new(&s);
        let a = through_provider(&s, &idp, &mut br, claims).await;
        let words = if what.starts_with("email") { "has not verified the email" } else { "ID token was not accepted" };
        assert_eq!(a.status, 403, "{what}: {}", a.body);
        assert_refused(&mut br, &a, 403, words).await;
    }

    // The provider's answer must come back to the browser that asked, with its state.
    let mut br = Browser::new(&s);
    let a = br.get("/console/oidc/callback?code=c&state=s").await;
    assert_refused(&mut br, &a, 400, "this sign-in has ended or was started in another browser").await;
    br.get("/console/oidc/start").await;
    let a = br.get("/console/oidc/callback?code=c&state=not-the-state").await;
    assert_refused(&mut br, &a, 400, "does not belong to this sign-in").await;
    br.get("/console/oidc/start").await;
    br.put_cookie("kw_oidc", "00ff");
    let a = br.get("/console/oidc/callback?code=c&state=s").await;
    assert_refused(&mut br, &a, 400, "this sign-in has ended").await;
    // A flow of another server (another pepper) is no flow here.
    let other = TestServer::start_with(Backend::Sqlite, oidc_config(&idp, None)).await;
    let mut ob = Browser::new(&other);
    ob.get("/console/oidc/start").await;
    let foreign = ob.cookie("kw_oidc").unwrap().to_string();
    let start = br.get("/console/oidc/start").await;
    br.put_cookie("kw_oidc", &foreign);
    let a = br.get(&format!("/console/oidc/callback?code=c&state={}", query(start.location())["state"])).await;
    assert_refused(&mut br, &a, 400, "this sign-in has ended").await;
    other.stop().await;
    // A flow ends after ten minutes.
    let mut br = Browser::new(&s);
    let start = br.get("/console/oidc/start").await;
    s.clock.advance(chrono::Duration::minutes(11));
    let a = br.get(&format!("/console/oidc/callback?code=c&state={}", query(start.location())["state"])).await;
    assert_refused(&mut br, &a, 400, "this sign-in has ended").await;
    // The provider's refusal is shown as its words, as text.
    let mut br = Browser::new(&s);
    br.get("/console/oidc/start").await;
    let a = br.get("/console/oidc/callback?error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E").await;
    assert_refused(&mut br, &a, 403, "did not sign you in: &#60;b&#62;no&#60;/b&#62;").await;
    s.stop().await;
}

async fn unknown_emails_are_refused_or_join(b: Backend) {
    let idp = Idp::start().await;
    let s = TestServer::start_with(b, oidc_config(&idp, None)).await;
    let mut br = Browser::new(&s);
    let a = through_provider(&s, &idp, &mut br, Claims::of("stranger@example.com")).await;
    assert_refused(&mut br, &a, 403, "stranger@example.com is not a member of any workspace here").await;
    // An invitation is taken up by signing in (the provider vouched for the invited email)...
    let (st, inv) =
        s.call(Method::POST, "/v1/members", Some(json!({"email": "invited@example.com", "role": "viewer"}))).await;
    assert_eq!(st, 201, "{inv}");
    let mut br = Browser::new(&s);
    let a = through_provider(&s, &idp, &mut br, Claims::of("invited@example.com")).await;
    assert_signed_in(&mut br, &a).await;
    let (_, joined) = s.call(Method::GET, "/v1/audit?action=member.join", None).await;
    assert_eq!(joined["items"][0]["changes"], json!({"role": "viewer", "method": "oidc"}));
    // ... and its setup token is dead.
    let setup = json!({"setup_token": inv["setup_token"], "password": "a long enough password"});
    assert_eq!(s.call_as("", Method::POST, "/v1/members/setup", Some(setup)).await.0, 400);
    // One waiting on approvals is no membership yet.
    s.policy(json!({"member.invite": {"approvals": 1, "approver_roles": ["owner", "admin"]}})).await;
    let (st, _) =
        s.call(Method::POST, "/v1/members", Some(json!({"email": "waiting@example.com", "role": "admin"}))).await;
    assert_eq!(st, 201);
    let mut br = Browser::new(&s);
    let a = through_provider(&s, &idp, &mut br, Claims::of("waiting@example.com")).await;
    assert_refused(&mut br, &a, 403, "is not a member of any workspace here").await;

    // With auto-join (a node of the same database), a new email joins the named workspace
    // with the role.
    let join = |role| Some(AutoJoin { workspace_id: s.workspace_id.clone(), role });
    let j = s.second_node_with(oidc_config(&idp, join(keyward_core::roles::Role::Developer))).await;
    let mut br = Browser::new(&j);
    let a = through_provider(&j, &idp, &mut br, Claims::of("newcomer@example.com")).await;
    assert_signed_in(&mut br, &a).await;
    let (_, members) = s.call(Method::GET, "/v1/members", None).await;
    let m = members["items"].as_array().unwrap().iter().find(|m| m["email"] == "newcomer@example.com").unwrap();
    assert_eq!((m["role"].as_str(), m["status"].as_str()), (Some("developer"), Some("active")));
    let (_, joined) = s.call(Method::GET, "/v1/audit?action=member.join", None).await;
    assert_eq!(joined["items"][0]["actor"]["name"], "newcomer@example.com");
    assert_eq!(joined["items"][0]["changes"], json!({"role": "developer", "method": "oidc"}));
    // An unverified email does not join.
    let mut br = Browser::new(&j);
    let mut claims = Claims::of("unverified@example.com");
    claims.verified = Some(false);
    let a = through_provider(&j, &idp, &mut br, claims).await;
    assert_refused(&mut br, &a, 403, "has not verified the email").await;
    let (_, members) = s.call(Method::GET, "/v1/members", None).await;
    assert!(!members.to_string().contains("unverified@example.com"));
    j.stop().await;
    // Where the policy wants approvals to add a member with that role (admins, above),
    // nobody joins alone.
    let j = s.second_node_with(oidc_config(&idp, join(keyward_core::roles::Role::Admin))).await;
    let mut br = Browser::new(&j);
    let a = through_provider(&j, &idp, &mut br, Claims::of("another@example.com")).await;
    assert_refused(&mut br, &a, 403, "needs approvals in this workspace").await;
    let (_, members) = s.call(Method::GET, "/v1/members", None).await;
    assert!(!members.to_string().contains("another@example.com"));
    j.stop().await;
    s.stop().await;
}

async fn the_code_and_the_workspace_are_asked_after_the_provider(b: Backend) {
    let idp = Idp::start().await;
    let s = TestServer::start_with(b, oidc_config(&idp, None)).await;
    let m = s.member("admin", true).await;
    let mut br = Browser::new(&s);
    let a = through_provider(&s, &idp, &mut br, Claims::of(&m.email)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains(&format!("Your sign-in provider verified <strong>{}</strong>", m.email)), "{}", a.body);
    assert!(a.body.contains("One-time code") && a.set_cookie("kw_session").is_none());
    let proof = a.set_cookie("kw_sso").expect("the proof cookie");
    assert!(proof.contains("SameSite=Strict"), "{proof}");
    let csrf = a.csrf();
    // A wrong code: asked again, no session.
    let wrong = br.send(Method::POST, "/console/oidc/continue", Some(&[("csrf", &csrf), ("otp", "000000")])).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.body.contains("invalid one-time code") && br.cookie("kw_session").is_none(), "{}", wrong.body);
    // Without the form's token the step is refused.
    let otp = s.otp(m.totp.as_ref().unwrap());
    let forged = br.send(Method::POST, "/console/oidc/continue", Some(&[("csrf", "0"), ("otp", &otp)])).await;
    assert_eq!(forged.status, 403);
    let a = br.send(Method::POST, "/console/oidc/continue", Some(&[("csrf", &csrf), ("otp", &otp)])).await;
    assert_eq!((a.status, a.location()), (303, "/console/keys"), "{}", a.body);
    assert_signed_in(&mut br, &a).await;
    let (_, audit) = s.call(Method::GET, "/v1/audit?action=session.login", None).await;
    assert_eq!(audit["items"][0]["changes"], json!({"mfa": true, "method": "oidc"}));
    // The proof is not a session: without the code nothing more is had from it.
    let mut br = Browser::new(&s);
    let a = through_provider(&s, &idp, &mut br, Claims::of(&m.email)).await;
    let proof = br.cookie("kw_sso").unwrap().to_string();
    assert!(a.set_cookie("kw_session").is_none());
    assert_eq!(s.call_as(&proof, Method::GET, "/v1/members/me", None).await.0, 401);

    // An email in two workspaces: the second step names them and takes one.
    let opts = InitOptions { workspace_name: "two".into(), prefix: "two".into(), owner_email: "boss@two.test".into() };
    let two = create_workspace(&s.store, &s.pepper, s.clock.as_ref(), &OsRandom, &opts).await.unwrap();
    let both = s.member("viewer", false).await;
    let (st, _) = s
        .call_as(&two.management_key, Method::POST, "/v1/members", Some(json!({"email": both.email, "role": "viewer"})))
        .await;
    assert_eq!(st, 201);
    let mut br = Browser::new(&s);
    let a = through_provider(&s, &idp, &mut br, Claims::of(&both.email)).await;
    assert!(a.body.contains("several workspaces") && a.body.contains(&two.workspace_id), "{}", a.body);
    assert!(a.body.contains(&s.workspace_id) && a.set_cookie("kw_session").is_none());
    let csrf = a.csrf();
    let a = br
        .send(Method::POST, "/console/oidc/continue", Some(&[("csrf", &csrf), ("workspace_id", &two.workspace_id)]))
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let token = br.cookie("kw_session").unwrap().to_string();
    let (_, me) = s.call_as(&token, Method::GET, "/v1/members/me", None).await;
    assert_eq!((me["email"].as_str(), me["status"].as_str()), (Some(both.email.as_str()), Some("active")), "{me}");
    assert_ne!(me["id"], both.id.as_str(), "the member of the other workspace: {me}");
    // The proof ends with its ten minutes.
    let mut br = Browser::new(&s);
    let a = through_provider(&s, &idp, &mut br, Claims::of(&both.email)).await;
    let csrf = a.csrf();
    s.clock.advance(chrono::Duration::minutes(11));
    let a = br
        .send(Method::POST, "/console/oidc/continue", Some(&[("csrf", &csrf), ("workspace_id", &s.workspace_id)]))
        .await;
    assert_refused(&mut br, &a, 400, "this sign-in has ended").await;
    s.stop().await;
}

/// A provider that cannot be reached: the sign-in page and passwords work as ever, and
/// single sign-on says so on that page (a 502, never a 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_leaves_passwords_working() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = ServerConfig {
        public_url: Some(PUBLIC_URL.into()),
        oidc: Some(OidcConfig {
            issuer: issuer.clone(),
            client_id: "keyward".into(),
            client_secret: SECRET.into(),
            auto_join: None,
        }),
        ..test_config()
    };
    let s = TestServer::start_with(Backend::Sqlite, config).await;
    let m = s.member("developer", false).await;
    let mut br = Browser::new(&s);
    let page = br.get("/console/login").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign in with SSO"));
    let a = br.get("/console/oidc/start").await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert!(a.body.contains("single sign-on is unavailable") && a.body.contains(&issuer), "{}", a.body);
    assert!(a.body.contains(r#"action="/console/login""#), "the password form is still there: {}", a.body);
    assert!(a.set_cookie("kw_oidc").is_none());
    let a = br.login(&m.email, &m.password, None).await;
    assert_eq!(a.status, 303, "{}", a.body);
    s.stop().await;
}

/// Without single sign-on configured the page does not offer it and its routes are 404s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_nothing_is_offered() {
    let s = TestServer::start(Backend::Sqlite).await;
    let mut br = Browser::new(&s);
    assert!(!br.get("/console/login").await.body.contains("Sign in with SSO"));
    assert_eq!(br.get("/console/oidc/start").await.status, 404);
    assert_eq!(br.get("/console/oidc/callback?code=c&state=s").await.status, 404);
    s.stop().await;
}
