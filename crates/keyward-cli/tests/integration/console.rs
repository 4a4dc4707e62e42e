//! The web console at the handler level, over real HTTP like a browser without script:
//! every page renders for the roles that see it, a secret is revealed once, forms without
//! their CSRF token are refused, cookies carry their flags, what a role may not do is
//! neither offered nor accepted, approvals with a one-time code, log out everywhere.
//! (`tests/browser/` drives the same flows in a real Chromium.)

use std::collections::BTreeMap;

use keyward_core::signing::{Algorithm, SecretKey};
use keyward_core::OsRandom;
use keyward_testkit::{code, Backend, Member, TestServer};
use reqwest::header::{HeaderMap, CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::Method;
use serde_json::json;

on_both_backends!(
    every_page_renders,
    a_secret_is_shown_once,
    forms_need_their_csrf_token,
    roles_see_only_what_they_may_do,
    login_tells_what_is_wrong,
    approvals_with_a_code_and_logout_everywhere,
    mfa_enrolment_and_audit_export,
    a_code_confirms_a_new_key,
    roles_accounts_and_tokens_from_the_navigation,
    a_key_page_edits_grants_limits_and_credits,
    a_rotation_can_be_followed,
    the_environment_switch_filters_what_is_shown
);

/// A cookie-keeping client that does not follow redirects.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    headers: HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn location(&self) -> &str {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub(crate) fn csrf(&self) -> String {
        let at = self.body.find(r#"name="csrf" value=""#).expect("a form with a CSRF token") + 19;
        self.body[at..at + 32].to_string()
    }

    pub(crate) fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }
}

impl Browser {
    pub(crate) fn new(s: &TestServer) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, base: s.base.clone(), cookies: BTreeMap::new() }
    }

    /// A browser trusting `ca`, at `base` (`https://…`).
    fn over_tls(base: &str, ca: &[u8]) -> Browser {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
            .build()
            .unwrap();
        Browser { http, base: base.to_string(), cookies: BTreeMap::new() }
    }

    pub(crate) async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Answer {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            rb = rb.header("cookie", jar.join("; "));
        }
        if let Some(f) = form {
            rb = rb.form(f);
        }
        let r = rb.send().await.expect("send");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        for c in headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Answer { status, headers, body: r.text().await.unwrap_or_default() }
    }

    /// The cookie the browser holds under `name`, if any.
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    /// Sets (or replaces) a cookie as another page could have.
    pub(crate) fn put_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_string(), value.to_string());
    }

    pub(crate) async fn get(&mut self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    /// Posts a form with the CSRF token of the page at `page`.
    pub(crate) async fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.get(page).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.send(Method::POST, action, Some(&all)).await
    }

    pub(crate) async fn login(&mut self, email: &str, password: &str, otp: Option<&str>) -> Answer {
        let mut f = vec![("email", email), ("password", password)];
        if let Some(o) = otp {
            f.push(("otp", o));
        }
        self.submit("/console/login", "/console/login", &f).await
    }

    pub(crate) async fn signed_in(s: &TestServer, m: &Member) -> Browser {
        let mut b = Browser::new(s);
        let otp = m.totp.as_ref().map(|t| s.otp(t));
        let a = b.login(&m.email, &m.password, otp.as_deref()).await;
        assert_eq!((a.status, a.location()), (303, "/console/keys"), "{}", a.body);
        b
    }
}

/// Keys listed by the API (as the owner).
async fn key_count(s: &TestServer) -> usize {
    let (_, v) = s.call(Method::GET, "/v1/keys?limit=200", None).await;
    v["items"].as_array().unwrap().len()
}

async fn every_page_renders(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", false).await;
    let (key, _) = s
        .create(json!({"name": "render-me", "permissions": ["wallet.read"],
            "ratelimits": [{"limit": 10, "duration": "1s"}],
            "credits": {"remaining": 1000, "refill": {"interval": "monthly", "amount": 1000, "day": 1}},
            "external_id": "cus <render>"}))
        .await;
    let (st, hook) =
        s.call(Method::POST, "/v1/webhooks", Some(json!({"url": "http://127.0.0.1:9/h", "events": ["key.*"]}))).await;
    assert_eq!(st, 201, "{hook}");
    let hook = hook["id"].as_str().unwrap().to_string();
    let mut br = Browser::signed_in(&s, &admin).await;
    let pages = [
        ("/console/keys".to_string(), "<h1>Keys</h1>"),
        ("/console/keys/new".into(), "Create secret key</h1>"),
        ("/console/keys/register".into(), "Register API key (public key)"),
        (format!("/console/keys/{key}"), "render-me</h1>"),
        (format!("/console/keys/{key}/revoke"), "Revoke “render-me”?"),
        ("/console/approvals".into(), "<h1>Approvals</h1>"),
        ("/console/members".into(), "<h1>Members</h1>"),
        ("/console/policies".into(), "<h1>Policies</h1>"),
        ("/console/audit".into(), "<h1>Audit log</h1>"),
        ("/console/webhooks".into(), "<h1>Webhooks</h1>"),
        (format!("/console/webhooks/{hook}"), "http://127.0.0.1:9/h</h1>"),
        ("/console/usage".into(), "<h1>Usage, last 24 hours</h1>"),
        ("/console/account".into(), "<h1>Your account</h1>"),
        ("/console/identities".into(), "cus &#60;render&#62;"),
        ("/console/roles".into(), "<h1>Roles</h1>"),
        ("/console/roles/viewer".into(), "Role “viewer”</h1>"),
        ("/console/service-accounts".into(), "<h1>Service accounts</h1>"),
        ("/console/management-keys".into(), "<h1>Management keys</h1>"),
        ("/console/verify-tokens".into(), "<h1>Verify tokens</h1>"),
        ("/console/keys?external_id=cus+%3Crender%3E".into(), "render-me"),
    ];
    for (path, heading) in &pages {
        let a = br.get(path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert!(a.body.contains(heading), "{path} lacks {heading}: {}", a.body);
        let csp = a.headers.get(CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(a.headers.get("cache-control").unwrap(), "no-store", "{path}");
        // No inline script and no style attribute (the policy would block both).
        assert!(!a.body.contains("<script>") && !a.body.contains(" style="), "{path}");
        // Every input has a label: each id'd input is named by a label's `for`.
        for chunk in a.body.split("<input").skip(1) {
            let tag = &chunk[..chunk.find('>').unwrap()];
            if tag.contains(r#"type="hidden""#) || tag.contains(r#"type="checkbox""#) || tag.contains(r#"type="radio""#)
            {
                continue;
            }
            let id = tag.split(r#"id=""#).nth(1).map(|r| &r[..r.find('"').unwrap()]);
            let id = id.unwrap_or_else(|| panic!("{path}: an input without an id: {tag}"));
            assert!(a.body.contains(&format!(r#"for="{id}""#)), "{path}: input {id} has no label");
        }
    }
    // The key's page: the usage chart is SVG drawn on the server, the history lists its creation.
    let a = br.get(&format!("/console/keys/{key}")).await;
    assert!(a.body.contains(r#"<svg class="chart""#) && a.body.contains("key.create"), "{}", a.body);
    assert!(
        a.body.contains("default: 10 per 1s") && a.body.contains("1000 left, refilled to 1000 every month on day 1")
    );
    // Filters reach the API: a search that matches nothing lists nothing.
    let a = br.get("/console/keys?q=no-such-key&status=active&kind=secret&environment=live").await;
    assert!(a.body.contains("No keys match these filters"), "{}", a.body);
    let a = br.get("/console/keys?q=render").await;
    assert!(a.body.contains("render-me"));
    // Bad filter input is the API's 400, naming the field.
    let a = br.get("/console/keys?status=bogus").await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("status"), "{}", a.body);
    // Assets are served from the binary; an unknown page is a 404 page.
    assert_eq!(br.get("/console/assets/console.css").await.status, 200);
    assert!(br.get("/console/assets/console.js").await.body.contains("data-copy"));
    assert_eq!(br.get("/console/nope").await.status, 404);
    s.stop().await;
}

async fn a_secret_is_shown_once(b: Backend) {
    let s = TestServer::start(b).await;
    let dev = s.member("developer", false).await;
    let mut br = Browser::signed_in(&s, &dev).await;
    let a = br
        .submit(
            "/console/keys/new",
            "/console/keys",
            &[
                ("kind", "secret"),
                ("name", "billing"),
                ("environment", "live"),
                ("type", "temporary"),
                ("expiry", "30d"),
                ("ratelimits", "10/1s, cap=1000/30d"),
                ("credits", "1000"),
                ("refill", "monthly"),
            ],
        )
        .await;
    assert_eq!((a.status, a.location()), (303, "/console/reveal"), "{}", a.body);
    let reveal = a.set_cookie("kw_reveal").unwrap();
    assert!(reveal.contains("HttpOnly") && reveal.contains("SameSite=Strict") && reveal.contains("Max-Age=300"));
    let shown = br.get("/console/reveal").await;
    assert_eq!(shown.status, 200);
    let mark = r#"<pre id="revealed" class="secret" tabindex="0">"#;
    let at = shown.body.find(mark).unwrap() + mark.len();
    let secret = shown.body[at..].split('\n').next().unwrap().to_string();
    // What was shown is the key: it verifies, and the sealed cookie does not hold it in clear.
    assert_eq!(s.verify(&secret, json!({})).await["code"], "VALID");
    assert!(!reveal.contains(&secret));
    assert!(shown.body.contains("I have stored it"));
    let key = s.verify(&secret, json!({})).await["key_id"].as_str().unwrap().to_string();
    // Shown once: a reload finds nothing, and the key's page never shows it.
    let again = br.get("/console/reveal").await;
    assert!(again.body.contains("Nothing to show") && !again.body.contains(&secret));
    // The server, not only the browser, forgets it: the same cookie sent again shows nothing.
    br.cookies.insert("kw_reveal".into(), reveal.split(';').next().unwrap()[10..].to_string());
    let replayed = br.get("/console/reveal").await;
    assert!(replayed.body.contains("Nothing to show") && !replayed.body.contains(&secret), "{}", replayed.body);
    let page = br.get(&format!("/console/keys/{key}?stored=on")).await;
    assert!(page.body.contains("billing") && !page.body.contains(&secret));
    let (_, v) = s.call(Method::GET, &format!("/v1/keys/{key}"), None).await;
    assert_eq!(v["expires_at"].as_str().unwrap()[..4].len(), 4);
    assert_eq!(v["environment"], "live");
    assert_eq!(v["ratelimits"][1], json!({"name": "cap", "limit": 1000, "duration": "30d"}));
    assert_eq!(v["credits"]["refill"], json!({"interval": "monthly", "amount": 1000, "day": 1}));
    // The two verifications above spent two, written back within a flush interval (or not yet).
    assert!((998..=1000).contains(&v["credits"]["remaining"].as_i64().unwrap()), "{v}");
    // A reveal cookie is bound to its session: another session cannot open it.
    let mut other = Browser::signed_in(&s, &dev).await;
    other.cookies.insert("kw_reveal".into(), reveal.split(';').next().unwrap()[10..].to_string());
    assert!(other.get("/console/reveal").await.body.contains("Nothing to show"));

    // Rotation reveals the new secret the same way; the old one keeps working in its grace.
    let a = br
        .submit(&format!("/console/keys/{key}"), &format!("/console/keys/{key}/rotate"), &[("grace_period", "1h")])
        .await;
    assert_eq!(a.location(), "/console/reveal", "{}", a.body);
    let shown = br.get("/console/reveal").await;
    let at = shown.body.find(mark).unwrap() + mark.len();
    let rotated = shown.body[at..].split('\n').next().unwrap().to_string();
    assert_ne!(rotated, secret);
    assert_eq!(s.verify(&rotated, json!({})).await["code"], "VALID");
    assert_eq!(s.verify(&secret, json!({})).await["code"], "VALID");

    // A permanent key without an allowlist: the form comes back with the API's reason and the
    // values typed so far; nothing is created.
    let before = key_count(&s).await;
    let a = br
        .submit(
            "/console/keys/new",
            "/console/keys",
            &[("kind", "secret"), ("name", "kept-name"), ("type", "permanent"), ("expiry", "never")],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("ip_allowlist") && a.body.contains(r#"value="kept-name""#), "{}", a.body);
    assert_eq!(key_count(&s).await, before);

    // Registering a public key: no secret to reveal, straight to its page.
    let pk = SecretKey::generate(Algorithm::Ed25519, &OsRandom).public_key().to_hex();
    let a = br
        .submit(
            "/console/keys/register",
            "/console/keys",
            &[
                ("kind", "public"),
                ("name", "partner"),
                ("public_key", &pk),
                ("algorithm", "ed25519"),
                ("expiry", "30d"),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(a.location().starts_with("/console/keys/"), "{}", a.location());
    let page = br.get(a.location()).await;
    assert!(page.body.contains("partner") && page.body.contains(&pk), "{}", page.body);
    s.stop().await;
}

async fn forms_need_their_csrf_token(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", false).await;
    let mut br = Browser::signed_in(&s, &admin).await;
    let session = br.cookies.get("kw_session").unwrap().clone();
    let before = key_count(&s).await;
    let fields = [("kind", "secret"), ("name", "forged")];
    // No token, an empty one, another session's token: refused, nothing created.
    let a = br.send(Method::POST, "/console/keys", Some(&fields)).await;
    assert_eq!(a.status, 403);
    assert!(a.body.contains("security token"), "{}", a.body);
    let mut other = Browser::signed_in(&s, &admin).await;
    let foreign = other.get("/console/keys/new").await.csrf();
    let mut with = vec![("csrf", foreign.as_str())];
    with.extend_from_slice(&fields);
    assert_eq!(br.send(Method::POST, "/console/keys", Some(&with)).await.status, 403);
    assert_eq!(br.send(Method::POST, "/console/keys", Some(&[("csrf", ""), ("name", "x")])).await.status, 403);
    assert_eq!(key_count(&s).await, before);
    // The same for a sign-out: the session still works after a forged one.
    assert_eq!(br.send(Method::POST, "/console/logout", Some(&[])).await.status, 403);
    assert_eq!(br.get("/console/keys").await.status, 200);
    // The login form needs its pre-session cookie and token.
    let mut fresh = Browser::new(&s);
    let a = fresh
        .send(Method::POST, "/console/login", Some(&[("email", &admin.email), ("password", &admin.password)]))
        .await;
    assert_eq!(a.status, 403);
    // The session cookie: HttpOnly, SameSite=Strict, scoped to the console; no Secure on plain HTTP.
    let mut b2 = Browser::new(&s);
    let a = b2.login(&admin.email, &admin.password, None).await;
    let c = a.set_cookie("kw_session").unwrap();
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/console"), "{c}");
    assert!(!c.contains("Secure"));
    // The token is the API session's, never in a URL.
    assert!(!a.location().contains(&session));
    s.stop().await;
}

async fn roles_see_only_what_they_may_do(b: Backend) {
    let s = TestServer::start(b).await;
    let (key, _) = s.create(json!({"name": "someone-elses"})).await;
    let viewer = s.member("viewer", false).await;
    let mut br = Browser::signed_in(&s, &viewer).await;
    let list = br.get("/console/keys").await;
    assert!(list.body.contains("someone-elses"));
    assert!(!list.body.contains("Create secret key") && !list.body.contains("Register public key"), "{}", list.body);
    assert!(!list.body.contains("/console/audit"), "a viewer is not offered the audit log");
    let page = br.get(&format!("/console/keys/{key}")).await;
    assert!(
        !page.body.contains("Revoke key") && !page.body.contains("Rotate key") && !page.body.contains("Save changes")
    );
    assert!(!page.body.contains("<h2 id=\"history\">"));
    assert_eq!(br.get("/console/keys/new").await.status, 403);
    let members = br.get("/console/members").await;
    assert!(!members.body.contains("Invite a member"));
    assert!(br.get("/console/policies").await.body.contains("Read-only"));
    // Not offered, and refused by the API anyway when posted.
    let before = key_count(&s).await;
    let a = br.submit("/console/keys", "/console/keys", &[("kind", "secret"), ("name", "sneaky")]).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(key_count(&s).await, before);
    let a = br.submit("/console/keys", &format!("/console/keys/{key}/revoke"), &[]).await;
    assert_eq!(a.status, 403);
    assert_eq!(br.get("/console/audit").await.status, 403);

    // A developer revokes their own key through the confirmation page, not another's.
    let dev = s.member("developer", false).await;
    let mut br = Browser::signed_in(&s, &dev).await;
    assert!(!br.get(&format!("/console/keys/{key}")).await.body.contains("Revoke key"));
    let (st, mine) = s.call_as(&dev.token, Method::POST, "/v1/keys", Some(json!({"name": "mine"}))).await;
    assert_eq!(st, 201);
    let mine = mine["id"].as_str().unwrap();
    assert!(br.get(&format!("/console/keys/{mine}")).await.body.contains("Revoke key…"));
    let confirm = format!("/console/keys/{mine}/revoke");
    assert!(br.get(&confirm).await.body.contains("Cannot be undone"));
    let a = br.submit(&confirm, &confirm, &[]).await;
    assert_eq!(a.status, 303);
    assert!(br.get(&format!("/console/keys/{mine}")).await.body.contains(r#"<span class="badge bad">Revoked</span>"#));
    s.stop().await;
}

async fn login_tells_what_is_wrong(b: Backend) {
    let s = TestServer::start(b).await;
    let m = s.member("developer", true).await;
    let mut br = Browser::new(&s);
    let a = br.login(&m.email, "wrong password here", None).await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("invalid email or password"), "{}", a.body);
    // The password was right: the page asks for the code instead of failing.
    let a = br.login(&m.email, &m.password, None).await;
    assert!(a.body.contains("one-time code") && a.body.contains("required autofocus"), "{}", a.body);
    let otp = s.otp(m.totp.as_ref().unwrap());
    let a = br.login(&m.email, &m.password, Some(&otp)).await;
    assert_eq!(a.status, 303, "{}", a.body);
    // Repeated failures end in the lockout's own words.
    let mut br = Browser::new(&s);
    for _ in 0..6 {
        br.login(&m.email, "wrong password here", None).await;
    }
    let otp = s.otp(m.totp.as_ref().unwrap());
    let last = br.login(&m.email, &m.password, Some(&otp)).await;
    assert!(last.status >= 400 && last.body.contains("Locked out: too many failed attempts"), "{}", last.body);
    s.stop().await;
}

async fn approvals_with_a_code_and_logout_everywhere(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", true).await;
    let dev = s.member("developer", false).await;
    // The admin sets the policy in the console: creating a key needs one admin's approval.
    let mut ab = Browser::signed_in(&s, &admin).await;
    let a = ab
        .submit(
            "/console/policies",
            "/console/policies",
            &[
                ("key.create.approvals", "1"),
                ("key.create.roles", "admin"),
                ("key.update.approvals", "0"),
                ("key.revoke.approvals", "0"),
                ("key.rotate.approvals", "0"),
                ("permanent_requires_ip_allowlist", "on"),
                ("temporary_max_days", "30"),
                ("approval_expiry_hours", "72"),
                ("expiry_warning_days", "7"),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let (_, p) = s.call(Method::GET, "/v1/policies", None).await;
    assert_eq!(
        (p["key.create"]["approvals"].as_u64(), p["key.create"]["approver_roles"][0].as_str()),
        (Some(1), Some("admin"))
    );
    // A bad number names its field.
    let a = ab.submit("/console/policies", "/console/policies", &[("key.create.approvals", "lots")]).await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("key.create.approvals"));

    let mut db = Browser::signed_in(&s, &dev).await;
    let a = db.submit("/console/keys/new", "/console/keys", &[("kind", "secret"), ("name", "needs-approval")]).await;
    assert_eq!(a.location(), "/console/reveal");
    assert!(db.get("/console/reveal").await.body.contains("pending approval (create)"));
    let (_, keys) = s.call(Method::GET, "/v1/keys?q=needs-approval", None).await;
    let key = keys["items"][0]["id"].as_str().unwrap().to_string();
    assert!(db.get(&format!("/console/keys/{key}")).await.body.contains("Pending approval (create)"));
    // The requester may not vote on it; the admin sees the request and approves with a code.
    assert!(!db.get("/console/approvals").await.body.contains(">Approve</button>"));
    let inbox = ab.get("/console/approvals").await;
    assert!(inbox.body.contains("Create key “needs-approval”") && inbox.body.contains(&dev.email), "{}", inbox.body);
    assert!(inbox.body.contains("Pending approval (create)"), "{}", inbox.body);
    let id = inbox.body.split("/console/approvals/").nth(1).unwrap().split('/').next().unwrap().to_string();
    let a = ab.submit("/console/approvals", &format!("/console/approvals/{id}/approve"), &[("otp", "000000")]).await;
    assert_eq!(a.status, 401, "a wrong code is refused: {}", a.body);
    // The code that signed the admin in is spent: the next time step's code approves.
    s.clock.advance(chrono::Duration::seconds(30));
    let otp = s.otp(admin.totp.as_ref().unwrap());
    let a = ab.submit("/console/approvals", &format!("/console/approvals/{id}/approve"), &[("otp", &otp)]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let (_, v) = s.call(Method::GET, &format!("/v1/keys/{key}"), None).await;
    assert_eq!(v["status"], "active");

    // Log out everywhere ends the admin's other sessions too.
    s.clock.advance(chrono::Duration::seconds(30));
    let mut second = Browser::signed_in(&s, &admin).await;
    assert_eq!(second.get("/console/keys").await.status, 200);
    let a = ab.submit("/console/account", "/console/logout-everywhere", &[]).await;
    assert_eq!((a.status, a.location()), (303, "/console/login"));
    assert_eq!(second.get("/console/keys").await.location(), "/console/login");
    // The ended session's cookie is cleared on the way, so the sign-in page shows rather than
    // sending the browser back to the keys (a redirect loop).
    assert!(!second.cookies.contains_key("kw_session"), "{:?}", second.cookies);
    assert_eq!(second.get("/console/login").await.status, 200);
    assert_eq!(s.call_as(&admin.token, Method::GET, "/v1/members/me", None).await.0, 401);
    // A plain sign-out ends only its own session.
    let mut one = Browser::signed_in(&s, &dev).await;
    let two_ok = db.get("/console/keys").await.status;
    let a = one.submit("/console/keys", "/console/logout", &[]).await;
    assert_eq!(a.location(), "/console/login");
    assert_eq!(one.get("/console/keys").await.location(), "/console/login");
    assert_eq!((two_ok, db.get("/console/keys").await.status), (200, 200));
    // The SDK's log out everywhere: the developer's console session ends with its API ones.
    let api_session = s.login(&dev.email, &dev.password, None).await;
    let sdk = keyward_client::Client::new(&s.base, Some(api_session.clone())).unwrap();
    sdk.logout_everywhere().await.unwrap();
    assert_eq!(s.call_as(&api_session, Method::GET, "/v1/members/me", None).await.0, 401);
    assert_eq!(db.get("/console/keys").await.location(), "/console/login");
    s.stop().await;
}

async fn mfa_enrolment_and_audit_export(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", false).await;
    let mut br = Browser::signed_in(&s, &admin).await;
    let a = br.submit("/console/account", "/console/account/mfa", &[]).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains(r#"<svg role="img" aria-label="QR code"#), "the QR code is drawn on the server");
    let mark = r#"<code id="totp-secret" class="secret">"#;
    let at = a.body.find(mark).unwrap() + mark.len();
    let secret = &a.body[at..at + a.body[at..].find('<').unwrap()];
    let raw = totp_rs::Secret::Encoded(secret.to_string()).to_bytes().unwrap();
    let csrf = a.csrf();
    let otp = s.otp(&raw);
    let a = br.send(Method::POST, "/console/account/mfa/confirm", Some(&[("csrf", &csrf), ("otp", &otp)])).await;
    assert_eq!(a.location(), "/console/reveal", "{}", a.body);
    let codes = br.get("/console/reveal").await;
    assert!(codes.body.contains("Recovery codes"));
    assert!(br.get("/console/reveal").await.body.contains("Nothing to show"));
    assert!(br.get("/console/account").await.body.contains(r#"<span class="badge ok">On</span>"#));

    // Invitations reveal the setup token once; the setup page sets the password.
    let a =
        br.submit("/console/members", "/console/members", &[("email", "new@example.com"), ("role", "viewer")]).await;
    assert_eq!(a.location(), "/console/reveal", "{}", a.body);
    let shown = br.get("/console/reveal").await;
    let at = shown.body.find("kw_setup_").unwrap();
    let token = shown.body[at..].split('\n').next().unwrap().to_string();
    let mut invitee = Browser::new(&s);
    let a = invitee
        .submit(
            "/console/setup",
            "/console/setup",
            &[("setup_token", &token), ("password", "a long new password"), ("password_again", "a long new password")],
        )
        .await;
    assert!(a.body.contains("Your password is set"), "{}", a.body);
    assert_eq!(invitee.login("new@example.com", "a long new password", None).await.status, 303);

    // The audit export is a download of NDJSON lines; the log lists the console's changes.
    let a = br.get("/console/audit/export").await;
    assert_eq!(a.status, 200);
    assert!(a.headers.get("content-disposition").unwrap().to_str().unwrap().starts_with("attachment"));
    let actions: Vec<String> = a
        .body
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["action"].as_str().unwrap().to_string())
        .collect();
    assert!(
        actions.iter().any(|a| a == "member.invite") && actions.iter().any(|a| a == "session.login"),
        "{actions:?}"
    );
    let log = br.get("/console/audit?action=member.invite").await;
    assert!(log.body.contains("new@example.com"), "{}", log.body);
    // The console's requests carry the browser's address into the trail.
    assert!(log.body.contains("127.0.0.1"));
    s.stop().await;
}

/// The seeds' "Security Verification": a member with MFA confirms a new key with a code,
/// checked by the API (`otp` on `POST /v1/keys`), so a wrong code creates nothing.
async fn a_code_confirms_a_new_key(b: Backend) {
    let s = TestServer::start(b).await;
    let m = s.member("developer", true).await;
    let mut br = Browser::signed_in(&s, &m).await;
    let form = br.get("/console/keys/new").await;
    assert!(form.body.contains("Security verification") && form.body.contains(r#"name="otp" required"#));
    let before = key_count(&s).await;
    let a = br
        .submit("/console/keys/new", "/console/keys", &[("kind", "secret"), ("name", "checked"), ("otp", "123456")])
        .await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.body.contains("otp") && a.body.contains(r#"value="checked""#), "{}", a.body);
    assert_eq!(key_count(&s).await, before);
    s.clock.advance(chrono::Duration::seconds(30));
    let otp = s.otp(m.totp.as_ref().unwrap());
    let a = br
        .submit("/console/keys/new", "/console/keys", &[("kind", "secret"), ("name", "checked"), ("otp", &otp)])
        .await;
    assert_eq!(a.location(), "/console/reveal", "{}", a.body);
    assert_eq!(key_count(&s).await, before + 1);
    // The same code again is spent; without one the API creates as before.
    let (st, v) = s.call_as(&m.token, Method::POST, "/v1/keys", Some(json!({"name": "again", "otp": otp}))).await;
    assert_eq!(st, 401, "{v}");
    let (st, _) = s.call_as(&m.token, Method::POST, "/v1/keys", Some(json!({"name": "plain"}))).await;
    assert_eq!(st, 201);
    s.stop().await;
}

/// Under TLS every cookie is a `__Host-` cookie (`Secure`, `Path=/`, no `Domain`), a cookie
/// under the plain name is not taken for it, and a reveal still works once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_tls_cookies_are_host_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::tls::pki(dir.path());
    let cfg = keyward_server::ServerConfig { tls: Some(pki.files.clone()), ..keyward_testkit::test_config() };
    let s = TestServer::start_with(Backend::Sqlite, cfg).await;
    let ca = std::fs::read(&pki.ca).unwrap();
    let https = format!("https://127.0.0.1:{}", s.addr.port());
    let mut br = Browser::over_tls(&https, &ca);

    // A member to sign in as, over HTTPS.
    let api = |method: Method, path: &str, token: &str, body: serde_json::Value| {
        let r = br.http.request(method, format!("{https}{path}")).bearer_auth(token).json(&body);
        async move { r.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let inv =
        api(Method::POST, "/v1/members", &s.management_key, json!({"email": "tls@example.com", "role": "developer"}))
            .await;
    let setup = json!({"setup_token": inv["setup_token"], "password": "a tls password 1"});
    assert_eq!(api(Method::POST, "/v1/members/setup", "", setup).await["email"], "tls@example.com");

    let page = br.get("/console/login").await;
    let pre = page.set_cookie("__Host-kw_pre").expect("a __Host- pre-session cookie");
    for flag in ["; Path=/;", "; Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(pre.contains(flag), "{pre}");
    }
    assert!(!pre.contains("Domain") && page.set_cookie("kw_pre").is_none(), "{pre}");
    let a = br.login("tls@example.com", "a tls password 1", None).await;
    assert_eq!((a.status, a.location()), (303, "/console/keys"), "{}", a.body);
    let session = a.set_cookie("__Host-kw_session").expect("a __Host- session cookie");
    assert!(session.contains("; Path=/;") && session.contains("; Secure") && !session.contains("Domain"), "{session}");

    // The plain name is another cookie: one set by a plain-HTTP page on the host is not it.
    let token = br.cookies["__Host-kw_session"].clone();
    let mut shadow = Browser::over_tls(&https, &ca);
    shadow.cookies.insert("kw_session".into(), token);
    assert_eq!(shadow.get("/console/keys").await.location(), "/console/login");

    let a = br.submit("/console/keys/new", "/console/keys", &[("kind", "secret"), ("name", "over tls")]).await;
    assert_eq!((a.status, a.location()), (303, "/console/reveal"), "{}", a.body);
    let reveal = a.set_cookie("__Host-kw_reveal").expect("a __Host- reveal cookie");
    let value = reveal.split(';').next().unwrap()["__Host-kw_reveal=".len()..].to_string();
    assert!(br.get("/console/reveal").await.body.contains(r#"<pre id="revealed""#));
    br.cookies.insert("__Host-kw_reveal".into(), value);
    assert!(br.get("/console/reveal").await.body.contains("Nothing to show"), "a replayed reveal showed again");
    s.stop().await;
}

/// The value on a reveal page.
fn revealed(body: &str) -> String {
    let mark = r#"<pre id="revealed" class="secret" tabindex="0">"#;
    let at = body.find(mark).expect("a revealed value") + mark.len();
    body[at..].split('\n').next().unwrap().to_string()
}

async fn verify_with_token(s: &TestServer, token: &str, key: &str) -> u16 {
    let r = s
        .http()
        .post(s.url("/v1/keys/verify"))
        .header("keyward-verify-token", token)
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

async fn roles_accounts_and_tokens_from_the_navigation(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", false).await;
    let mut br = Browser::signed_in(&s, &admin).await;
    // `/` sends a person to the console.
    let a = br.get("/").await;
    assert_eq!((a.status, a.location()), (303, "/console"), "{}", a.body);
    // Every page is in the navigation.
    let nav = br.get("/console/keys").await.body;
    for href in ["/console/roles", "/console/service-accounts", "/console/management-keys", "/console/verify-tokens"] {
        assert!(nav.contains(&format!(r#"<a href="{href}""#)), "{href} not in the navigation");
    }

    // Roles: create, edit its permissions, delete; a hostile name is the API's 400.
    let a = br
        .submit("/console/roles", "/console/roles", &[("name", "billing-reader"), ("permissions", "invoices.read")])
        .await;
    assert_eq!((a.status, a.location()), (303, "/console/roles/billing-reader"), "{}", a.body);
    let page = br.get("/console/roles/billing-reader").await;
    assert!(page.body.contains("invoices.read") && page.body.contains("Delete role billing-reader"), "{}", page.body);
    let a = br
        .submit(
            "/console/roles/billing-reader",
            "/console/roles/billing-reader",
            &[("description", "reads invoices"), ("permissions", "invoices.read\ninvoices.list")],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let (_, v) = s.call(Method::GET, "/v1/roles/billing-reader", None).await;
    assert_eq!(v["permissions"], json!(["invoices.read", "invoices.list"]), "{v}");
    assert_eq!(v["description"], "reads invoices");
    let a = br.submit("/console/roles", "/console/roles", &[("name", "bad\u{0}name")]).await;
    assert_eq!(a.status, 400, "{}", a.body);
    // A member role cannot be deleted: the page offers no button, the API refuses a forged one.
    assert!(!br.get("/console/roles/viewer").await.body.contains("Delete role"));
    let a = br.submit("/console/roles", "/console/roles/viewer/delete", &[]).await;
    assert_eq!(a.status, 409, "{}", a.body);

    // Service accounts: created with the role, listed with their keys, disabled and enabled.
    let a = br
        .submit(
            "/console/service-accounts",
            "/console/service-accounts",
            &[("name", "ci-bot"), ("role", "billing-reader")],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let (_, list) = s.call(Method::GET, "/v1/service-accounts", None).await;
    let sa = list["items"][0]["id"].as_str().unwrap().to_string();
    let (st, k) =
        s.call(Method::POST, &format!("/v1/service-accounts/{sa}/keys"), Some(json!({"name": "ci-bot-key"}))).await;
    assert_eq!(st, 201, "{k}");
    let sa_secret = k["secret"].as_str().unwrap().to_string();
    let page = br.get("/console/service-accounts").await;
    assert!(page.body.contains("ci-bot-key") && page.body.contains("Disable ci-bot"), "{}", page.body);
    let a = br
        .submit(
            "/console/service-accounts",
            &format!("/console/service-accounts/{sa}/enabled"),
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(br.get("/console/service-accounts").await.body.contains("Enable ci-bot"));
    assert_eq!(code(&s.verify(&sa_secret, json!({})).await), "DISABLED");
    br.submit("/console/service-accounts", &format!("/console/service-accounts/{sa}/enabled"), &[("enabled", "true")])
        .await;
    assert_eq!(code(&s.verify(&sa_secret, json!({})).await), "VALID");
    // The role is held by an account: deleting it is refused with the reason.
    let a =
        br.submit("/console/roles/billing-reader", "/console/roles/billing-reader/delete", &[("force", "true")]).await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(a.body.contains("service account"), "{}", a.body);
    let a = br.submit("/console/roles", "/console/roles", &[("name", "short-lived")]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let a = br.submit("/console/roles/short-lived", "/console/roles/short-lived/delete", &[]).await;
    assert_eq!((a.status, a.location()), (303, "/console/roles"), "{}", a.body);
    assert!(!br.get("/console/roles").await.body.contains("short-lived"));

    // Management keys: minted and shown once, the key works, revoked it stops.
    let a = br
        .submit("/console/management-keys", "/console/management-keys", &[("name", "deploy"), ("expires_in", "30d")])
        .await;
    assert_eq!((a.status, a.location()), (303, "/console/reveal"), "{}", a.body);
    let shown = br.get("/console/reveal").await;
    let mk = revealed(&shown.body);
    assert!(!a.set_cookie("kw_reveal").unwrap().contains(&mk));
    assert!(br.get("/console/reveal").await.body.contains("Nothing to show"));
    assert_eq!(s.call_as(&mk, Method::GET, "/v1/keys", None).await.0, 200);
    let list = br.get("/console/management-keys").await;
    assert!(list.body.contains("<td>deploy</td>") && !list.body.contains(&mk), "{}", list.body);
    let (_, v) = s.call(Method::GET, "/v1/management-keys", None).await;
    let mk_id = v["items"].as_array().unwrap().iter().find(|k| k["name"] == "deploy").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = br.submit("/console/management-keys", &format!("/console/management-keys/{mk_id}/revoke"), &[]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(s.call_as(&mk, Method::GET, "/v1/keys", None).await.0, 401);
    assert!(br.get("/console/management-keys").await.body.contains(r#"<span class="badge bad">Revoked</span>"#));

    // Verify tokens: minted and shown once, it binds verification, revoked it stops.
    let (_, key) = s.create(json!({"name": "checked"})).await;
    let a = br.submit("/console/verify-tokens", "/console/verify-tokens", &[("name", "billing service")]).await;
    assert_eq!((a.status, a.location()), (303, "/console/reveal"), "{}", a.body);
    let vt = revealed(&br.get("/console/reveal").await.body);
    assert!(br.get("/console/reveal").await.body.contains("Nothing to show"));
    assert_eq!(verify_with_token(&s, &vt, &key).await, 200);
    let (_, v) = s.call(Method::GET, "/v1/verify-tokens", None).await;
    let vt_id = v["items"][0]["id"].as_str().unwrap().to_string();
    assert!(!br.get("/console/verify-tokens").await.body.contains(&vt));
    let a = br.submit("/console/verify-tokens", &format!("/console/verify-tokens/{vt_id}/revoke"), &[]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_ne!(verify_with_token(&s, &vt, &key).await, 200);

    // Without the CSRF token every new form is refused and changes nothing.
    for (action, fields) in [
        ("/console/roles", vec![("name", "forged")]),
        ("/console/roles/billing-reader", vec![("permissions", "*")]),
        ("/console/roles/billing-reader/delete", vec![("force", "true")]),
        ("/console/service-accounts", vec![("name", "forged"), ("role", "viewer")]),
        (&*format!("/console/service-accounts/{sa}/enabled"), vec![("enabled", "false")]),
        ("/console/management-keys", vec![("name", "forged")]),
        ("/console/verify-tokens", vec![("name", "forged")]),
    ] {
        assert_eq!(br.send(Method::POST, action, Some(&fields)).await.status, 403, "{action}");
    }
    let (_, v) = s.call(Method::GET, "/v1/roles/billing-reader", None).await;
    assert_eq!(v["permissions"], json!(["invoices.read", "invoices.list"]));
    assert_eq!(s.call(Method::GET, "/v1/service-accounts", None).await.1["items"].as_array().unwrap().len(), 1);
    assert_eq!(code(&s.verify(&sa_secret, json!({})).await), "VALID");
    assert_eq!(s.call(Method::GET, "/v1/verify-tokens", None).await.1["items"].as_array().unwrap().len(), 1);

    // A viewer sees the pages but no create button, and is refused when posting anyway.
    let viewer = s.member("viewer", false).await;
    let mut vb = Browser::signed_in(&s, &viewer).await;
    for (path, button) in [
        ("/console/roles", "Create role"),
        ("/console/roles/billing-reader", "Save role"),
        ("/console/service-accounts", "Create service account"),
        ("/console/verify-tokens", "Create verify token"),
    ] {
        let a = vb.get(path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert!(!a.body.contains(button), "{path} offers {button} to a viewer");
    }
    assert!(!vb.get("/console/service-accounts").await.body.contains("Disable ci-bot"));
    assert!(!vb.get("/console/verify-tokens").await.body.contains("Revoke verify token"));
    let a = vb.submit("/console/roles", "/console/roles", &[("name", "sneaky")]).await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = vb.submit("/console/verify-tokens", "/console/verify-tokens", &[("name", "sneaky")]).await;
    assert_eq!(a.status, 403, "{}", a.body);
    // A viewer's management keys are their own, with the viewer's role: they may mint one.
    assert!(vb.get("/console/management-keys").await.body.contains("Create management key"));
    assert!(
        !vb.get("/console/management-keys").await.body.contains("<td>deploy</td>"),
        "a viewer sees only their own keys"
    );
    s.stop().await;
}

/// The text of the `<p class="field-error" id="{input}-error">` beside an input, if any.
fn field_error(body: &str, input: &str) -> Option<String> {
    let mark = format!(r#"<p class="field-error" id="{input}-error">"#);
    let at = body.find(&mark)? + mark.len();
    Some(body[at..at + body[at..].find("</p>")?].to_string())
}

/// Audit events of `action` on target `id`.
async fn audit_count(s: &TestServer, action: &str, id: &str) -> usize {
    let (_, v) = s.call(Method::GET, &format!("/v1/audit?action={action}&target={id}&limit=200"), None).await;
    v["items"].as_array().unwrap().len()
}

/// The edit form of a key's page as a browser would post it unchanged, with `changes` over it.
fn edit_form<'a>(page: &'a str, changes: &[(&'a str, &'a str)]) -> Vec<(String, String)> {
    let start = page.find(r#"class="stack">"#).expect("the edit form");
    let form = &page[start..start + page[start..].find("</form>").unwrap()];
    let attr = |tag: &str, name: &str| {
        tag.split(&format!(r#"{name}=""#)).nth(1).map(|r| r[..r.find('"').unwrap()].to_string())
    };
    let unescape = |v: &str| {
        v.replace("&#60;", "<").replace("&#62;", ">").replace("&#34;", "\"").replace("&#39;", "'").replace("&#38;", "&")
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for chunk in form.split('<').skip(1) {
        let tag = &chunk[..chunk.find('>').unwrap_or(chunk.len())];
        let Some(name) = attr(tag, "name") else { continue };
        if name == "csrf" {
            continue;
        }
        if tag.starts_with("input") {
            if tag.contains(r#"type="checkbox""#) && !tag.contains(" checked") {
                continue;
            }
            out.push((name, unescape(&attr(tag, "value").unwrap_or_default())));
        } else if tag.starts_with("textarea") {
            let text = &chunk[chunk.find('>').unwrap() + 1..];
            out.push((name, unescape(text)));
        } else if tag.starts_with("select") {
            let rest = &form[form.find(tag).unwrap()..];
            let rest = &rest[..rest.find("</select>").unwrap()];
            let chosen = rest.split("<option").find(|o| o.contains(" selected")).and_then(|o| attr(o, "value"));
            out.push((name, chosen.unwrap_or_default()));
        }
    }
    for (k, v) in changes {
        out.retain(|(n, _)| n != k);
        out.push((k.to_string(), v.to_string()));
    }
    out
}

async fn post_form(br: &mut Browser, page: &str, action: &str, fields: &[(String, String)]) -> Answer {
    let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    br.submit(page, action, &f).await
}

async fn a_key_page_edits_grants_limits_and_credits(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, v) = s
        .call(
            Method::POST,
            "/v1/roles",
            Some(json!({"name": "wallet-operator", "permissions": ["wallet.read", "tx.create"]})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let admin = s.member("admin", false).await;
    let mut br = Browser::signed_in(&s, &admin).await;

    // The create form offers the workspace's roles, not the member roles (those are people's).
    let new = br.get("/console/keys/new").await;
    assert!(new.body.contains(r#"name="roles" value="wallet-operator""#), "{}", new.body);
    for member_role in ["owner", "admin", "viewer"] {
        assert!(!new.body.contains(&format!(r#"name="roles" value="{member_role}""#)), "{member_role} offered");
    }
    // Its default expiry is the API's own (one constant for both).
    let days = keyward_core::wire::policy::TEMPORARY_DEFAULT_DAYS;
    assert!(
        new.body.contains(&format!(r#"<option value="{days}d" selected>{days} days (the default)"#)),
        "{}",
        new.body
    );
    // A refused create says what is wrong beside the field, keeping what was typed.
    for (field, value, input) in
        [("ratelimits", "ten/1s", "ratelimits"), ("ip_allowlist", "not-an-address", "ip_allowlist")]
    {
        let a = br
            .submit("/console/keys/new", "/console/keys", &[("kind", "secret"), ("name", "refused"), (field, value)])
            .await;
        assert_eq!(a.status, 400, "{}", a.body);
        let e = field_error(&a.body, input).unwrap_or_else(|| panic!("no error beside {input}: {}", a.body));
        assert!(!e.is_empty());
        assert!(a.body.contains(value) && a.body.contains(r#"value="refused""#), "the form keeps its values");
    }
    let a = br
        .submit(
            "/console/keys/new",
            "/console/keys",
            &[("kind", "secret"), ("name", "refused"), ("grants", "ghost=wallet:w_1")],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(field_error(&a.body, "grants").unwrap().contains("no role named"), "{}", a.body);
    assert_eq!(key_count(&s).await, 0);

    // Grants, rate limits and credits edited on the key's page.
    let (key, _) = s.create(json!({"name": "editable", "permissions": ["wallet.read"]})).await;
    let path = format!("/console/keys/{key}");
    let page = br.get(&path).await;
    let fields = edit_form(
        &page.body,
        &[
            ("grants", "wallet-operator=wallet:w_1,wallet:w_2"),
            ("ratelimits", "5/1s, burst=50/1m"),
            ("credits", "100"),
            ("refill", "daily"),
        ],
    );
    let a = post_form(&mut br, &path, &path, &fields).await;
    assert_eq!((a.status, a.location()), (303, path.as_str()), "{}", a.body);
    let (_, k) = s.call(Method::GET, &format!("/v1/keys/{key}"), None).await;
    assert_eq!(k["grants"], json!([{"role": "wallet-operator", "scopes": ["wallet:w_1", "wallet:w_2"]}]));
    assert_eq!(
        k["ratelimits"],
        json!([{"name": "default", "limit": 5, "duration": "1s"}, {"name": "burst", "limit": 50, "duration": "1m"}])
    );
    assert_eq!(
        (k["credits"]["remaining"].as_u64(), k["credits"]["refill"]["interval"].as_str()),
        (Some(100), Some("daily"))
    );
    assert_eq!(k["permissions"], json!(["wallet.read"]), "what the form did not change stays");
    let shown = br.get(&path).await.body;
    assert!(shown.contains("wallet-operator in wallet:w_1, wallet:w_2"), "{shown}");
    assert!(shown.contains("burst: 50 per 1m") && shown.contains("100 left, refilled to 100 every day"), "{shown}");
    assert_eq!(audit_count(&s, "key.update", &key).await, 1);
    // Saving the form unchanged sends nothing: no update, credits not started again.
    let fields = edit_form(&shown, &[]);
    let a = post_form(&mut br, &path, &path, &fields).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(audit_count(&s, "key.update", &key).await, 1, "an unchanged form changes nothing");
    // A refusal of the API sits beside its field, the form keeping what was typed.
    let fields = edit_form(&shown, &[("grants", "wallet-operator=")]);
    let a = post_form(&mut br, &path, &path, &fields).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(field_error(&a.body, "grants").unwrap().contains("at least one scope"), "{}", a.body);
    assert!(a.body.contains(">wallet-operator=</textarea>"), "{}", a.body);
    let fields = edit_form(&shown, &[("credits", "lots")]);
    let a = post_form(&mut br, &path, &path, &fields).await;
    assert_eq!(a.status, 400);
    assert!(field_error(&a.body, "credits").is_some(), "{}", a.body);
    assert_eq!(audit_count(&s, "key.update", &key).await, 1);

    // The audit log reads the update as before → after, not as JSON.
    let log = br.get(&format!("/console/audit?action=key.update&target={key}")).await.body;
    assert!(
        log.contains(r#"<span class="field">grants</span>: <span class="old">none</span> → <span class="new">"#),
        "{log}"
    );
    assert!(log.contains(r#"<span class="field">credits</span>"#) && !log.contains("{&#34;changes&#34;"), "{log}");
    let history = br.get(&path).await.body;
    assert!(history.contains(r#"<span class="field">ratelimits</span>"#), "the key's history too: {history}");

    // A service account's key shows the role it inherits and what the role grants.
    let (_, sa) =
        s.call(Method::POST, "/v1/service-accounts", Some(json!({"name": "ci-bot", "role": "wallet-operator"}))).await;
    let sa = sa["id"].as_str().unwrap().to_string();
    let (st, sk) =
        s.call(Method::POST, &format!("/v1/service-accounts/{sa}/keys"), Some(json!({"name": "bot-key"}))).await;
    assert_eq!(st, 201, "{sk}");
    let bot = br.get(&format!("/console/keys/{}", sk["id"].as_str().unwrap())).await.body;
    assert!(
        bot.contains("From its service account")
            && bot.contains("role wallet-operator — grants wallet.read, tx.create"),
        "{bot}"
    );
    // The keys API filters by owner: the account's keys, or those of any account.
    let ids = |v: serde_json::Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(s.call(Method::GET, &format!("/v1/keys?owner={sa}"), None).await.1), vec!["bot-key"]);
    assert_eq!(ids(s.call(Method::GET, "/v1/keys?owner_type=service_account", None).await.1), vec!["bot-key"]);
    assert!(!ids(s.call(Method::GET, "/v1/keys?owner_type=member", None).await.1).contains(&"bot-key".to_string()));
    // The service accounts page lists them with one bounded read and links to all of them.
    let page = br.get("/console/service-accounts").await.body;
    assert!(
        page.contains("bot-key") && page.contains(&format!(r#"href="/console/keys?owner={sa}">All keys of ci-bot"#)),
        "{page}"
    );
    let theirs = br.get(&format!("/console/keys?owner={sa}")).await.body;
    assert!(theirs.contains("bot-key") && !theirs.contains("editable"), "{theirs}");
    s.stop().await;
}

async fn a_rotation_can_be_followed(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", false).await;
    let mut br = Browser::signed_in(&s, &admin).await;
    let (old, _) = s.create(json!({"name": "rotating"})).await;
    let a = br
        .submit(&format!("/console/keys/{old}"), &format!("/console/keys/{old}/rotate"), &[("grace_period", "24h")])
        .await;
    assert_eq!((a.status, a.location()), (303, "/console/reveal"), "{}", a.body);
    let shown = br.get("/console/reveal").await.body;
    let new = shown.split(r#"action="/console/keys/"#).nth(1).map(|r| r[..r.find('"').unwrap()].to_string()).unwrap();
    assert!(new.starts_with("key_") && new != old, "{shown}");
    let (_, o) = s.call(Method::GET, &format!("/v1/keys/{old}"), None).await;
    let until = chrono::DateTime::parse_from_rfc3339(o["expires_at"].as_str().unwrap()).unwrap();
    let until = until.format("%Y-%m-%d %H:%M UTC").to_string();
    // Both pages say a rotation is under way, when the old key stops, and link to each other.
    for (page, other) in [(&old, &new), (&new, &old)] {
        let body = br.get(&format!("/console/keys/{page}")).await.body;
        let banner = body.split(r#"id="rotation""#).nth(1).unwrap_or_else(|| panic!("no rotation banner: {body}"));
        let banner = &banner[..banner.find("</p>").unwrap()];
        assert!(banner.contains(&format!("Rotating</span> — old key stops at {until}")), "{banner}");
        assert!(banner.contains(&format!(r#"<a href="/console/keys/{other}">{other}</a>"#)), "{banner}");
        if page == &old {
            assert!(!body.contains("Rotate key</button>"), "a key already rotated is not offered another rotation");
        }
    }
    let list = br.get("/console/keys").await.body;
    assert!(list.contains(&format!(r#"Rotating → <a href="/console/keys/{new}">{new}</a>"#)), "{list}");
    // Once the grace period is over the old key is expired: no banner, the links stay.
    s.clock.advance(chrono::Duration::hours(25));
    // (a day later: a new session)
    let mut br = Browser::signed_in(&s, &admin).await;
    let body = br.get(&format!("/console/keys/{new}")).await.body;
    assert!(
        !body.contains(r#"id="rotation""#)
            && body.contains(&format!(r#"Rotated from</dt><dd><a href="/console/keys/{old}">"#)),
        "{body}"
    );
    let body = br.get(&format!("/console/keys/{old}")).await.body;
    assert!(body.contains(&format!(r#"Replaced by</dt><dd><a href="/console/keys/{new}">"#)), "{body}");
    s.stop().await;
}

async fn the_environment_switch_filters_what_is_shown(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.member("admin", false).await;
    let mut br = Browser::signed_in(&s, &admin).await;
    let (_, test_secret) = s.create(json!({"name": "test-only", "environment": "test"})).await;
    let (_, live_secret) = s.create(json!({"name": "live-only", "environment": "live"})).await;
    for secret in [&test_secret, &live_secret] {
        assert_eq!(code(&s.verify(secret, json!({})).await), "VALID");
    }
    // Counts reach storage in the next flush (every 100 ms in tests).
    for _ in 0..200 {
        if s.call(Method::GET, "/v1/usage", None).await.1["total"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let both = br.get("/console/keys").await.body;
    assert!(both.contains("test-only") && both.contains("live-only"));
    assert!(both.contains(r#"value="all" aria-pressed="true""#), "{both}");

    // Live: the keys list, the usage page and a new key's form keep to it, remembered.
    let a = br
        .submit("/console/keys", "/console/environment", &[("environment", "live"), ("next", "/console/usage")])
        .await;
    assert_eq!((a.status, a.location()), (303, "/console/usage"), "{}", a.body);
    let cookie = a.set_cookie("kw_env").unwrap();
    assert!(
        cookie.starts_with("kw_env=live;") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let keys = br.get("/console/keys").await.body;
    assert!(keys.contains("live-only") && !keys.contains("test-only"), "{keys}");
    assert!(keys.contains(r#"value="live" aria-pressed="true""#));
    let usage = br.get("/console/usage").await.body;
    assert!(usage.contains("live-only") && !usage.contains("test-only"), "{usage}");
    assert!(br.get("/console/keys/new").await.body.contains(r#"<option value="live" selected>"#));
    let (st, u) = s.call(Method::GET, "/v1/usage?environment=live", None).await;
    assert_eq!((st, u["total"].as_u64()), (200, Some(1)), "{u}");
    assert_eq!(s.call(Method::GET, "/v1/usage?environment=prod", None).await.1["error"]["field"], "environment");

    // Test, then all again; the switch returns only to console pages, and needs its token.
    br.submit("/console/keys", "/console/environment", &[("environment", "test"), ("next", "/console/keys")]).await;
    let keys = br.get("/console/keys").await.body;
    assert!(keys.contains("test-only") && !keys.contains("live-only"), "{keys}");
    let a = br
        .submit("/console/keys", "/console/environment", &[("environment", "all"), ("next", "https://evil.example/")])
        .await;
    assert_eq!((a.status, a.location()), (303, "/console/keys"));
    let keys = br.get("/console/keys").await.body;
    assert!(keys.contains("test-only") && keys.contains("live-only"), "{keys}");
    let forged = br.send(Method::POST, "/console/environment", Some(&[("environment", "live")])).await;
    assert_eq!(forged.status, 403);
    let a = br.submit("/console/keys", "/console/environment", &[("environment", "prod")]).await;
    assert_eq!(a.status, 400);
    s.stop().await;
}
