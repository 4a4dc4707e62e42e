//! The governance flow from the command line: an owner invites two admins and a developer,
//! requires two approvals for new keys; the developer's key waits until both admins approve
//! with codes from their authenticators; a rejected key never works.

use keyward_testkit::{Backend, TestServer};
use std::io::Write;
use std::process::{Command, Output, Stdio};

on_both_backends!(
    owner_admins_developer_flow,
    roles_grants_and_service_accounts,
    webhooks_from_the_command_line,
    usage_from_the_command_line,
    credentials_rotations_and_the_config_file
);

const BIN: &str = env!("CARGO_BIN_EXE_keyward");

/// A person at their own terminal: their own HOME (so their own `keyward login`).
struct Person {
    home: tempfile::TempDir,
    server: String,
}

impl Person {
    fn new(server: &str) -> Person {
        Person { home: tempfile::tempdir().unwrap(), server: server.to_string() }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(BIN)
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("KEYWARD_SERVER", &self.server)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.run(args, stdin);
        assert!(o.status.success(), "keyward {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a, None);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
    }
}

/// The owner invites; the invitee sets a password and logs in, all with the CLI.
fn join(s: &TestServer, owner: &Person, email: &str, role: &str) -> Person {
    let inv = owner.json(&["members", "invite", "--email", email, "--role", role]);
    let p = Person::new(&s.base);
    let pw = format!("{email} has a long password\n");
    let token = inv["setup_token"].as_str().unwrap();
    p.ok(&["members", "setup", "--setup-token", token, "--password-stdin"], Some(&pw));
    p.ok(&["login", "--server", &s.base, "--email", email, "--password-stdin"], Some(&pw));
    let me = p.json(&["members", "me"]);
    assert_eq!((me["email"].as_str(), me["role"].as_str()), (Some(email), Some(role)));
    p
}

/// Enrols TOTP with the CLI; returns the secret.
fn enrol(s: &TestServer, p: &Person) -> Vec<u8> {
    let e = p.json(&["members", "mfa-enrol"]);
    let secret = totp_rs::Secret::Encoded(e["secret"].as_str().unwrap().into()).to_bytes().unwrap();
    let r = p.json(&["members", "mfa-confirm", "--otp", &s.otp(&secret)]);
    assert_eq!(r["recovery_codes"].as_array().unwrap().len(), 10);
    secret
}

async fn owner_admins_developer_flow(b: Backend) {
    let s = TestServer::start(b).await;
    let owner = Person::new(&s.base);
    owner.ok(&["login", "--server", &s.base, "--token", &s.management_key], None);

    let a1 = join(&s, &owner, "ann@example.com", "admin");
    let a2 = join(&s, &owner, "bob@example.com", "admin");
    let dev = join(&s, &owner, "dev@example.com", "developer");
    let (k1, k2) = (enrol(&s, &a1), enrol(&s, &a2));
    let members = owner.json(&["members", "list"]);
    assert_eq!(members["items"].as_array().unwrap().len(), 4);

    let policy = owner.ok(&["policies", "set", "--approvals", "key.create=2"], None);
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert_eq!(policy["key.create"], serde_json::json!({"approvals": 2, "approver_roles": ["owner", "admin"]}));
    // A developer may not change policies.
    assert!(!dev.run(&["policies", "set", "--approvals", "key.create=0"], None).status.success());

    let key = dev.json(&["keys", "create", "--name", "billing"]);
    assert_eq!(key["status"], "pending_create");
    let secret = key["secret"].as_str().unwrap().to_string();
    let apr = key["approval_id"].as_str().unwrap().to_string();
    assert_eq!(dev.run(&["verify", &secret], None).status.code(), Some(1), "pending keys do not verify");

    let pending = a1.json(&["approvals", "list"]);
    assert_eq!(pending["items"][0]["id"].as_str(), Some(apr.as_str()));
    let text = a1.ok(&["approvals", "show", &apr], None);
    assert!(text.contains("0 of 2"), "{text}");
    // The requester cannot approve; an approval without a valid code is refused.
    assert!(!dev.run(&["approvals", "approve", &apr, "--otp", "123456"], None).status.success());
    assert!(!a1.run(&["approvals", "approve", &apr, "--otp", "000000"], None).status.success());

    s.clock.advance(chrono::Duration::seconds(30));
    let v = a1.json(&["approvals", "approve", &apr, "--otp", &s.otp(&k1)]);
    assert_eq!((v["status"].as_str(), v["approved_by"].as_array().map(Vec::len)), (Some("pending"), Some(1)));
    let v = a2.json(&["approvals", "approve", &apr, "--otp", &s.otp(&k2)]);
    assert_eq!(v["status"], "approved");
    assert_eq!(dev.run(&["verify", &secret], None).status.code(), Some(0), "approved keys verify");

    // A rejected request: the key ends rejected and never works.
    let key = dev.json(&["keys", "create", "--name", "unwanted"]);
    let apr = key["approval_id"].as_str().unwrap();
    s.clock.advance(chrono::Duration::seconds(30));
    let v = a1.json(&["approvals", "reject", apr, "--otp", &s.otp(&k1), "--reason", "no"]);
    assert_eq!(v["status"], "rejected");
    let shown = dev.json(&["keys", "show", key["id"].as_str().unwrap()]);
    assert_eq!(shown["status"], "rejected");
    assert_eq!(dev.run(&["verify", key["secret"].as_str().unwrap()], None).status.code(), Some(1));

    // Logout ends the saved session on the server, not only on this machine.
    let cfg = std::fs::read_to_string(dev.home.path().join(".keyward/config.toml")).unwrap();
    let session = cfg.lines().find_map(|l| l.strip_prefix("token = ")).unwrap().trim_matches('"').to_string();
    dev.ok(&["logout"], None);
    assert!(!dev.run(&["members", "me"], None).status.success());
    assert_eq!(s.call_as(&session, reqwest::Method::GET, "/v1/members/me", None).await.0, 401);
    s.stop().await;
}

/// Seed 001's key ("operator on wallets w_1 and w_2, viewer on everything") and seed 002's
/// integration user, from the command line.
async fn roles_grants_and_service_accounts(b: Backend) {
    let s = TestServer::start(b).await;
    let owner = Person::new(&s.base);
    owner.ok(&["login", "--server", &s.base, "--token", &s.management_key], None);
    owner.ok(&["roles", "update", "operator", "--permission", "tx.create,tx.approve,wallet.read"], None);
    owner.ok(&["roles", "update", "viewer", "--permission", "wallet.read", "--permission", "balance.read"], None);
    owner.ok(&["roles", "create", "catalog-sync", "--permission", "catalog.*", "--description", "Magento"], None);
    let list = owner.ok(&["roles", "list"], None);
    assert!(list.contains("catalog-sync") && list.contains("catalog.*"), "{list}");

    let key = owner.json(&[
        "keys",
        "create",
        "--name",
        "treasury",
        "--role",
        "viewer",
        "--scope",
        "*",
        "--grant",
        "operator=wallet:w_1,wallet:w_2",
    ]);
    assert_eq!(key["grants"], serde_json::json!([{"role": "operator", "scopes": ["wallet:w_1", "wallet:w_2"]}]));
    let secret = key["secret"].as_str().unwrap();
    let verify = |perm: &str, scope: &str| {
        owner.run(&["verify", secret, "--permissions", perm, "--scope", scope], None).status.code()
    };
    assert_eq!(verify("tx.create", "wallet:w_1"), Some(0));
    assert_eq!(verify("tx.create", "wallet:w_3"), Some(1));
    assert_eq!(verify("balance.read", "wallet:w_3"), Some(0));
    assert!(!owner.run(&["keys", "create", "--name", "x", "--grant", "operator"], None).status.success());

    let sa = owner.json(&["service-accounts", "create", "--name", "magento", "--role", "catalog-sync"]);
    let sa_id = sa["id"].as_str().unwrap();
    let k = owner.json(&["service-accounts", "create-key", sa_id, "--name", "magento prod"]);
    let sa_secret = k["secret"].as_str().unwrap();
    assert_eq!(owner.run(&["verify", sa_secret, "--permissions", "catalog.write"], None).status.code(), Some(0));
    let keys = owner.ok(&["keys", "list"], None);
    assert!(keys.contains("OWNER") && keys.contains(sa_id), "{keys}");
    // `keys show` says what a service account key holds through its account.
    let shown = owner.ok(&["keys", "show", k["id"].as_str().unwrap()], None);
    assert!(shown.contains(&format!("role catalog-sync from service account magento ({sa_id}): catalog.*")), "{shown}");
    let theirs = owner.json(&["keys", "list", "--owner", sa_id]);
    assert_eq!(theirs["items"].as_array().unwrap().len(), 1, "{theirs}");
    owner.ok(&["service-accounts", "disable", sa_id], None);
    let out = owner.run(&["verify", sa_secret], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DISABLED"), "{out:?}");
    owner.ok(&["service-accounts", "enable", sa_id], None);
    assert_eq!(owner.run(&["verify", sa_secret], None).status.code(), Some(0));
    assert!(!owner.run(&["roles", "delete", "catalog-sync"], None).status.success(), "in use");
    owner.ok(&["service-accounts", "delete", sa_id], None);
    assert_eq!(owner.run(&["verify", sa_secret], None).status.code(), Some(1));
    owner.ok(&["roles", "delete", "catalog-sync", "--force"], None);
    s.stop().await;
}

/// `keyward webhooks …`: register (the secret printed once), list, test, deliveries, rotate,
/// disable, the signing key, delete.
async fn webhooks_from_the_command_line(b: Backend) {
    let s = TestServer::start(b).await;
    let owner = Person::new(&s.base);
    owner.ok(&["login", "--server", &s.base, "--token", &s.management_key], None);
    // Nothing listens here: deliveries fail and stay pending, which is all this needs.
    let url = "http://127.0.0.1:9/hook";
    let bad = owner.run(&["webhooks", "create", url, "--event", "key.deleted"], None);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("events"));
    let w = owner.json(&["webhooks", "create", url, "--event", "key.*,approval.requested"]);
    let id = w["id"].as_str().unwrap();
    assert!(w["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(w["events"], serde_json::json!(["key.*", "approval.requested"]));
    let list = owner.ok(&["webhooks", "list"], None);
    assert!(list.contains(id) && list.contains("enabled") && !list.contains("whsec_"), "{list}");
    let t = owner.json(&["webhooks", "test", id]);
    assert_eq!(t["type"], "webhook.test");
    let log = owner.ok(&["webhooks", "deliveries", id], None);
    assert!(log.contains("webhook.test"), "{log}");
    let r = owner.json(&["webhooks", "rotate-secret", id, "--overlap", "1h"]);
    assert_ne!(r["secret"], w["secret"]);
    owner.ok(&["webhooks", "update", id, "--disable"], None);
    assert!(owner.ok(&["webhooks", "show", id], None).contains("disabled (manual)"));
    assert!(owner.ok(&["webhooks", "signing-key"], None).trim().starts_with("whpk_"));
    owner.ok(&["webhooks", "delete", id], None);
    assert!(!owner.ok(&["webhooks", "list"], None).contains(id));
    s.stop().await;
}

/// `keyward keys usage` prints totals, a sparkline and a table; `keys list` the last 24 hours.
async fn usage_from_the_command_line(b: Backend) {
    let s = TestServer::start(b).await;
    let owner = Person::new(&s.base);
    owner.ok(&["login", "--server", &s.base, "--token", &s.management_key], None);
    let (id, secret) = s.create(serde_json::json!({"name": "counted"})).await;
    for _ in 0..4 {
        s.verify(&secret, serde_json::json!({})).await;
    }
    s.verify(&secret, serde_json::json!({"permissions": "x.y"})).await;
    let started = std::time::Instant::now();
    loop {
        let out = owner.ok(&["keys", "usage", &id, "--since", "2h", "--granularity", "minute"], None);
        if out.contains("5 verifications") {
            assert!(out.contains("VALID 4") && out.contains("INSUFFICIENT_PERMISSIONS 1"), "{out}");
            assert!(out.contains('█'), "a sparkline: {out}");
            assert!(out.contains("START") && out.contains("REFUSED"), "{out}");
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{out}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let list = owner.ok(&["keys", "list"], None);
    let row = list.lines().find(|l| l.contains(&id)).unwrap();
    assert!(list.contains("REQ/24H") && row.split_whitespace().any(|c| c == "5"), "{list}");
    let bad = owner.run(&["keys", "usage", &id, "--since", "soon"], None);
    assert!(!bad.status.success());
    s.stop().await;
}

/// `keyward management-keys` and `verify-tokens` (list, create, revoke), a rotation in
/// `keys list` and `keys show`, flags named alike, and what the config file is warned about.
async fn credentials_rotations_and_the_config_file(b: Backend) {
    let s = TestServer::start(b).await;
    let owner = Person::new(&s.base);
    owner.ok(&["login", "--server", &s.base, "--token", &s.management_key], None);

    // Management keys: created (printed once), listed without the secret, revoked.
    let mk = owner.json(&["management-keys", "create", "--name", "deploy", "--expires-in", "30d"]);
    let (mk_id, secret) = (mk["id"].as_str().unwrap(), mk["management_key"].as_str().unwrap());
    let list = owner.ok(&["management-keys", "list"], None);
    assert!(list.contains(mk_id) && list.contains("deploy") && !list.contains(secret), "{list}");
    let other = Person::new(&s.base);
    assert!(other.run(&["keys", "list", "--token", secret], None).status.success());
    assert!(owner.ok(&["management-keys", "revoke", mk_id], None).contains("revoked"));
    assert!(!other.run(&["keys", "list", "--token", secret], None).status.success(), "a revoked key stops");
    assert!(owner.ok(&["management-keys", "list"], None).contains("revoked"));

    // Verify tokens: created, listed, revoked.
    let vt = owner.json(&["verify-tokens", "create", "--name", "gateway"]);
    let (vt_id, token) = (vt["id"].as_str().unwrap(), vt["token"].as_str().unwrap());
    let list = owner.ok(&["verify-tokens", "list"], None);
    assert!(
        list.contains(vt_id) && list.contains("gateway") && list.contains("active") && !list.contains(token),
        "{list}"
    );
    let revoked = owner.json(&["verify-tokens", "revoke", vt_id]);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");

    // Flags are named alike: the plural and `--environment`/`--env` spellings are accepted.
    let key = owner.json(&[
        "keys",
        "create",
        "--name",
        "aliased",
        "--environment",
        "live",
        "--permissions",
        "a.read",
        "--scopes",
        "s:1",
    ]);
    assert_eq!((key["environment"].as_str(), key["scopes"].clone()), (Some("live"), serde_json::json!(["s:1"])));
    let secret = key["secret"].as_str().unwrap();
    assert_eq!(owner.run(&["verify", secret, "--env", "live", "--permission", "a.read"], None).status.code(), Some(0));

    // A rotation under way: the list says so both ways, `keys show` says when the old key stops.
    let old = key["id"].as_str().unwrap();
    let new = owner.json(&["keys", "rotate", old, "--grace-period", "1h"]);
    let new = new["id"].as_str().unwrap();
    let list = owner.ok(&["keys", "list"], None);
    assert!(list.contains(&format!("rotating → {new}")) && list.contains(&format!("active ← {old}")), "{list}");
    let shown = owner.ok(&["keys", "show", old], None);
    assert!(shown.contains(&format!("rotating → {new} (this key stops at")) && shown.contains("rotated to"), "{shown}");
    assert!(owner.ok(&["keys", "show", new], None).contains(&format!("rotated from  {old}")));

    // The config file: unknown keys are named (a warning, the command still works), and a
    // credential readable by others is warned about until it is chmod 600.
    let config = owner.home.path().join(".keyward").join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("colour = \"blue\"\n{text}\n[test]\napi_hots = \"x\"\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = owner.run(&["keys", "list"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("unknown key `colour`") && err.contains("unknown key `test.api_hots`"), "{err}");
    assert!(err.contains("readable by others (mode 644): run chmod 600"), "{err}");
    assert_eq!(err.matches("unknown key `colour`").count(), 1, "warned once: {err}");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = owner.run(&["keys", "list"], None);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("chmod"), "{o:?}");
    s.stop().await;
}
