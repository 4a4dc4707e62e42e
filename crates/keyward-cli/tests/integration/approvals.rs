//! Approval policies and requests: every path (approve to quorum, reject, cancel, expire),
//! the refusals (self-approval, double approval, missing or reused one-time code, a role
//! that may not approve), and what a pending key does meanwhile.

use chrono::Duration;
use keyward_testkit::{code, Backend, Member, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    create_needs_two_approvals,
    reject_cancel_expire,
    pending_update_revoke_rotate,
    half_of_admins_quorum,
    key_lifetime_policy,
    four_eyes_cover_new_approvers
);

struct Team {
    s: TestServer,
    a: Member,
    b: Member,
    dev: Member,
}

async fn team(b: Backend) -> Team {
    let s = TestServer::start(b).await;
    let a = s.member("admin", true).await;
    let bb = s.member("admin", true).await;
    let dev = s.member("developer", false).await;
    Team { s, a, b: bb, dev }
}

impl Team {
    async fn as_(&self, m: &Member, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.s.call_as(&m.token, method, path, body).await
    }

    async fn approve(&self, m: &Member, id: &str, otp: Option<String>) -> (u16, Value) {
        self.as_(m, Method::POST, &format!("/v1/approvals/{id}/approve"), Some(json!({"otp": otp}))).await
    }

    fn otp(&self, m: &Member) -> String {
        self.s.otp(m.totp.as_ref().unwrap())
    }

    /// A new time step, so every member's next code is fresh.
    fn tick(&self) {
        self.s.clock.advance(Duration::seconds(30));
    }
}

fn err(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

async fn create_needs_two_approvals(b: Backend) {
    let t = team(b).await;
    let p = t.s.policy(json!({"key.create": {"approvals": 2, "approver_roles": ["owner", "admin"]}})).await;
    assert_eq!(p["key.create"], json!({"approvals": 2, "approver_roles": ["owner", "admin"]}));
    assert_eq!(p["key.revoke"]["approvals"], 0, "other actions keep their rules");

    // The key exists, its secret is shown now, and it does not authenticate yet.
    let (st, k) = t.as_(&t.dev, Method::POST, "/v1/keys", Some(json!({"name": "billing"}))).await;
    assert_eq!(st, 201, "{k}");
    assert_eq!(k["status"], "pending_create");
    let apr = k["approval_id"].as_str().unwrap().to_string();
    let secret = k["secret"].as_str().unwrap().to_string();
    assert_eq!(code(&t.s.verify(&secret, json!({})).await), "PENDING");
    let (st, list) = t.as_(&t.dev, Method::GET, "/v1/approvals?status=pending", None).await;
    assert_eq!((st, list["items"][0]["id"].as_str()), (200, Some(apr.as_str())));
    assert_eq!(list["items"][0]["required"], 2);

    // Refusals, none of which counts: the requester, a role outside approver_roles, no code,
    // a wrong code.
    let (st, _) = t.approve(&t.dev, &apr, None).await;
    assert_eq!(st, 403, "the requester cannot approve");
    let viewer = t.s.member("viewer", false).await;
    assert_eq!(t.approve(&viewer, &apr, None).await.0, 403);
    let (st, v) = t.approve(&t.a, &apr, None).await;
    assert_eq!((st, err(&v)), (401, "mfa_required"));
    let (st, v) = t.approve(&t.a, &apr, Some("000000".into())).await;
    assert_eq!((st, err(&v)), (401, "mfa_required"));

    // First approval: counted, still pending.
    let code_a = t.otp(&t.a);
    let (st, v) = t.approve(&t.a, &apr, Some(code_a.clone())).await;
    assert_eq!(
        (st, v["status"].as_str(), v["approved_by"].as_array().map(Vec::len)),
        (200, Some("pending"), Some(1)),
        "{v}"
    );
    assert_eq!(code(&t.s.verify(&secret, json!({})).await), "PENDING");
    // The same approver again: refused, with a fresh code or not.
    t.tick();
    let (st, v) = t.approve(&t.a, &apr, Some(t.otp(&t.a))).await;
    assert_eq!((st, err(&v)), (409, "conflict"));

    // A reused code is refused even for another request.
    let (_, k2) = t.as_(&t.dev, Method::POST, "/v1/keys", Some(json!({"name": "other"}))).await;
    let apr2 = k2["approval_id"].as_str().unwrap();
    let code_b = t.otp(&t.b);
    assert_eq!(t.approve(&t.b, apr2, Some(code_b.clone())).await.0, 200);
    let (st, v) = t.approve(&t.b, &apr, Some(code_b)).await;
    assert_eq!((st, err(&v)), (401, "mfa_required"), "reused code");

    // Second approver, fresh code: quorum; the key works at once.
    t.tick();
    let (st, v) = t.approve(&t.b, &apr, Some(t.otp(&t.b))).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("approved")), "{v}");
    assert_eq!(code(&t.s.verify(&secret, json!({})).await), "VALID");
    let (_, key) = t.as_(&t.dev, Method::GET, &format!("/v1/keys/{}", k["id"].as_str().unwrap()), None).await;
    assert_eq!(key["status"], "active");
    assert!(key.get("approval_id").is_none());
    // A decided request takes no more votes.
    let owner_totp = t.s.enrol(&t.s.management_key).await;
    let (st, _) =
        t.s.call(Method::POST, &format!("/v1/approvals/{apr}/approve"), Some(json!({"otp": t.s.otp(&owner_totp)})))
            .await;
    assert_eq!(st, 409);
    t.s.stop().await;
}

async fn reject_cancel_expire(b: Backend) {
    let t = team(b).await;
    t.s.policy(json!({"key.create": {"approvals": 1}, "approval_expiry_hours": 2})).await;

    // Rejected: the key ends `rejected` and never works.
    let (_, k) = t.as_(&t.dev, Method::POST, "/v1/keys", Some(json!({"name": "r"}))).await;
    let apr = k["approval_id"].as_str().unwrap();
    let reject = json!({"otp": t.otp(&t.a), "reason": "not needed"});
    let (st, v) = t.as_(&t.a, Method::POST, &format!("/v1/approvals/{apr}/reject"), Some(reject)).await;
    assert_eq!((st, v["status"].as_str(), v["reason"].as_str()), (200, Some("rejected"), Some("not needed")), "{v}");
    let (_, key) = t.as_(&t.dev, Method::GET, &format!("/v1/keys/{}", k["id"].as_str().unwrap()), None).await;
    assert_eq!(key["status"], "rejected");
    assert_eq!(code(&t.s.verify(k["secret"].as_str().unwrap(), json!({})).await), "NOT_FOUND");
    t.tick();
    assert_eq!(t.approve(&t.b, apr, Some(t.otp(&t.b))).await.0, 409, "a rejected request cannot be approved");
    // Rejecting needs a code too.
    let (_, k) = t.as_(&t.dev, Method::POST, "/v1/keys", Some(json!({"name": "r2"}))).await;
    let apr = k["approval_id"].as_str().unwrap();
    let (st, v) = t.as_(&t.b, Method::POST, &format!("/v1/approvals/{apr}/reject"), Some(json!({}))).await;
    assert_eq!((st, err(&v)), (401, "mfa_required"));

    // Cancelled by its requester (another developer may not).
    let other = t.s.member("developer", false).await;
    assert_eq!(t.as_(&other, Method::POST, &format!("/v1/approvals/{apr}/cancel"), None).await.0, 403);
    let (st, v) = t.as_(&t.dev, Method::POST, &format!("/v1/approvals/{apr}/cancel"), None).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("cancelled")));
    let (_, key) = t.as_(&t.dev, Method::GET, &format!("/v1/keys/{}", k["id"].as_str().unwrap()), None).await;
    assert_eq!(key["status"], "rejected");

    // Expired: after approval_expiry_hours nobody can approve it and the key ends rejected.
    let (_, k) = t.as_(&t.dev, Method::POST, "/v1/keys", Some(json!({"name": "late"}))).await;
    let apr = k["approval_id"].as_str().unwrap();
    t.s.clock.advance(Duration::hours(2) + Duration::seconds(1));
    let (st, v) = t.approve(&t.a, apr, Some(t.otp(&t.a))).await;
    assert_eq!((st, err(&v)), (409, "conflict"), "{v}");
    let (_, v) = t.as_(&t.dev, Method::GET, &format!("/v1/approvals/{apr}"), None).await;
    assert_eq!(v["status"], "expired");
    let (_, key) = t.as_(&t.dev, Method::GET, &format!("/v1/keys/{}", k["id"].as_str().unwrap()), None).await;
    assert_eq!(key["status"], "rejected");
    // The list sweeps expired requests too.
    let (_, k) = t.as_(&t.dev, Method::POST, "/v1/keys", Some(json!({"name": "later"}))).await;
    t.s.clock.advance(Duration::hours(3));
    let (_, list) = t.as_(&t.dev, Method::GET, "/v1/approvals?status=pending", None).await;
    assert_eq!(list["items"], json!([]));
    let (_, v) =
        t.as_(&t.dev, Method::GET, &format!("/v1/approvals/{}", k["approval_id"].as_str().unwrap()), None).await;
    assert_eq!(v["status"], "expired");
    t.s.stop().await;
}

async fn pending_update_revoke_rotate(b: Backend) {
    let t = team(b).await;
    let (id, secret) = t.s.create(json!({"name": "svc", "permissions": ["wallet.read"]})).await;
    t.s.policy(json!({"key.update": {"approvals": 1}, "key.revoke": {"approvals": 1}, "key.rotate": {"approvals": 1}}))
        .await;

    // Update: the old settings stay in force until approved.
    let (st, v) =
        t.s.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(json!({"permissions": ["wallet.write"]}))).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("pending_update")), "{v}");
    assert_eq!(v["permissions"], json!(["wallet.read"]));
    let apr = v["approval_id"].as_str().unwrap().to_string();
    assert_eq!(code(&t.s.verify(&secret, json!({"permissions": "wallet.read"})).await), "VALID");
    // Nothing else may change a key while it waits.
    let (st, _) = t.s.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(json!({"name": "x"}))).await;
    assert_eq!(st, 409);
    let (_, a) = t.s.call(Method::GET, &format!("/v1/approvals/{apr}"), None).await;
    assert_eq!(a["details"]["changes"]["permissions"], json!(["wallet.write"]));
    assert_eq!(t.approve(&t.a, &apr, Some(t.otp(&t.a))).await.0, 200);
    let v = t.s.verify(&secret, json!({"permissions": "wallet.write"})).await;
    assert_eq!(code(&v), "VALID", "{v}");
    assert_eq!(code(&t.s.verify(&secret, json!({"permissions": "wallet.read"})).await), "INSUFFICIENT_PERMISSIONS");

    // A rejected update leaves the key as it was.
    let (_, v) = t.s.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(json!({"name": "renamed"}))).await;
    let apr = v["approval_id"].as_str().unwrap().to_string();
    t.tick();
    let (st, _) =
        t.as_(&t.b, Method::POST, &format!("/v1/approvals/{apr}/reject"), Some(json!({"otp": t.otp(&t.b)}))).await;
    assert_eq!(st, 200);
    let (_, k) = t.s.call(Method::GET, &format!("/v1/keys/{id}"), None).await;
    assert_eq!((k["status"].as_str(), k["name"].as_str()), (Some("active"), Some("svc")));

    // Rotate: the successor waits with its secret shown now; the old key works meanwhile.
    let (st, new) = t.s.call(Method::POST, &format!("/v1/keys/{id}/rotate"), Some(json!({"grace_period": "0s"}))).await;
    assert_eq!((st, new["status"].as_str()), (201, Some("pending_create")), "{new}");
    let new_secret = new["secret"].as_str().unwrap().to_string();
    assert_eq!(code(&t.s.verify(&new_secret, json!({})).await), "PENDING");
    assert_eq!(code(&t.s.verify(&secret, json!({})).await), "VALID");
    t.tick();
    assert_eq!(t.approve(&t.a, new["approval_id"].as_str().unwrap(), Some(t.otp(&t.a))).await.0, 200);
    assert_eq!(code(&t.s.verify(&new_secret, json!({})).await), "VALID");
    assert_eq!(code(&t.s.verify(&secret, json!({})).await), "REVOKED");

    // Revoke: the key keeps working until approved.
    let new_id = new["id"].as_str().unwrap();
    let (st, v) = t.s.call(Method::POST, &format!("/v1/keys/{new_id}/revoke"), None).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("pending_revoke")));
    assert_eq!(code(&t.s.verify(&new_secret, json!({})).await), "VALID");
    t.tick();
    assert_eq!(t.approve(&t.b, v["approval_id"].as_str().unwrap(), Some(t.otp(&t.b))).await.0, 200);
    assert_eq!(code(&t.s.verify(&new_secret, json!({})).await), "REVOKED");
    t.s.stop().await;
}

async fn half_of_admins_quorum(b: Backend) {
    let t = team(b).await;
    t.s.policy(json!({"key.create": {"approvals": "half_of_admins"}})).await;
    // Owner + two admins can approve a developer's key: half of three, rounded up.
    let (_, k) = t.as_(&t.dev, Method::POST, "/v1/keys", Some(json!({"name": "h"}))).await;
    let (_, a) =
        t.as_(&t.dev, Method::GET, &format!("/v1/approvals/{}", k["approval_id"].as_str().unwrap()), None).await;
    assert_eq!(a["required"], 2);
    // An admin's own request: the two others, half rounded up is one.
    let (_, k) = t.as_(&t.a, Method::POST, "/v1/keys", Some(json!({"name": "h2"}))).await;
    let apr = k["approval_id"].as_str().unwrap();
    let (st, v) = t.approve(&t.a, apr, Some(t.otp(&t.a))).await;
    assert_eq!((st, err(&v)), (403, "forbidden"), "no self-approval");
    let (st, v) = t.approve(&t.b, apr, Some(t.otp(&t.b))).await;
    assert_eq!((st, v["status"].as_str(), v["required"].as_u64()), (200, Some("approved"), Some(1)));
    // A lone owner (no one else could approve) is not blocked by half_of_admins.
    let solo = TestServer::start(Backend::Sqlite).await;
    solo.policy(json!({"key.create": {"approvals": "half_of_admins"}})).await;
    let (st, k) = solo.call(Method::POST, "/v1/keys", Some(json!({"name": "solo"}))).await;
    assert_eq!((st, k["status"].as_str()), (201, Some("active")));
    solo.stop().await;
    t.s.stop().await;
}

/// Permanent and temporary keys under the workspace policy.
async fn key_lifetime_policy(b: Backend) {
    let s = TestServer::start(b).await;
    let create = |body: Value| s.call(Method::POST, "/v1/keys", Some(body));
    let field = |v: &Value| v["error"]["field"].as_str().unwrap_or("").to_string();
    // Defaults: permanent needs an allowlist and never expires; temporary lasts 30 days.
    let (st, v) = create(json!({"name": "p", "type": "permanent"})).await;
    assert_eq!((st, field(&v)), (400, "ip_allowlist".to_string()));
    let (st, v) = create(json!({"name": "p", "type": "permanent", "ip_allowlist": ["203.0.113.0/24"]})).await;
    assert_eq!((st, v["expires_at"].clone()), (201, Value::Null));
    let now = keyward_core::Clock::now(s.clock.as_ref());
    let (_, v) = create(json!({"name": "t", "type": "temporary"})).await;
    let exp = chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((exp.with_timezone(&chrono::Utc) - now).num_days(), 30);

    // Tighter policy: temporary 7 days, nothing lives past 90, permanent without allowlist.
    s.policy(json!({"temporary_max_days": 7, "max_key_lifetime_days": 90, "permanent_requires_ip_allowlist": false}))
        .await;
    let (_, v) = create(json!({"name": "t", "type": "temporary"})).await;
    let exp = chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((exp.with_timezone(&chrono::Utc) - now).num_days(), 7);
    let (st, v) = create(json!({"name": "t", "type": "temporary", "expires_in": "8d"})).await;
    assert_eq!((st, field(&v)), (400, "expires_in".to_string()));
    let (st, v) = create(json!({"name": "u", "expires_in": "1y"})).await;
    assert_eq!((st, field(&v)), (400, "expires_in".to_string()));
    let (st, v) = create(json!({"name": "u"})).await;
    assert_eq!(st, 201);
    let id = v["id"].as_str().unwrap().to_string();
    assert!(v["expires_at"].is_string(), "a key without type gets the lifetime cap");
    let (st, _) = create(json!({"name": "p", "type": "permanent"})).await;
    assert_eq!(st, 201);
    // An update cannot lift the cap.
    let (st, v) = s.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(json!({"expires_at": null}))).await;
    assert_eq!((st, field(&v)), (400, "expires_at".to_string()));
    // Bad policy input names its field.
    let (st, v) = s.call(Method::PUT, "/v1/policies", Some(json!({"temporary_max_days": 0}))).await;
    assert_eq!((st, field(&v)), (400, "temporary_max_days".to_string()));
    let (st, v) = s.call(Method::PUT, "/v1/policies", Some(json!({"key.create": {"approvals": "most"}}))).await;
    assert_eq!((st, field(&v)), (400, "key.create.approvals".to_string()), "{v}");
    s.stop().await;
}

/// Under a two-person rule, one admin alone cannot make the second approver: inviting an
/// approver and raising a member to an approver role wait on another approver's vote.
async fn four_eyes_cover_new_approvers(b: Backend) {
    let t = team(b).await;
    let rule = json!({"approvals": 1, "approver_roles": ["owner", "admin"]});
    let p = t.s.policy(json!({"member.invite": rule, "member.role": rule, "key.create": rule})).await;
    assert_eq!(p["member.invite"], rule);

    // A invites a new admin: the invitation exists, but its setup token is dead for now.
    let (st, inv) =
        t.as_(&t.a, Method::POST, "/v1/members", Some(json!({"email": "sock@example.com", "role": "admin"}))).await;
    assert_eq!(st, 201, "{inv}");
    let apr = inv["approval_id"].as_str().expect("the invitation waits on approval").to_string();
    let setup = json!({"setup_token": inv["setup_token"], "password": "sock puppet password"});
    let (st, v) = t.s.call_as("", Method::POST, "/v1/members/setup", Some(setup.clone())).await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (400, Some("setup_token")),
        "an unapproved invitation let someone in"
    );
    assert_eq!(t.approve(&t.a, &apr, Some(t.otp(&t.a))).await.0, 403, "A approved their own invitation");
    t.tick();
    let (st, v) = t.approve(&t.b, &apr, Some(t.otp(&t.b))).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = t.s.call_as("", Method::POST, "/v1/members/setup", Some(setup)).await;
    assert_eq!(st, 200, "approved, the invitation works: {v}");

    // A raises the developer to admin: the role stays until B approves.
    let path = format!("/v1/members/{}", t.dev.id);
    let (st, m) = t.as_(&t.a, Method::PATCH, &path, Some(json!({"role": "admin"}))).await;
    assert_eq!(st, 200, "{m}");
    assert_eq!((m["role"].as_str(), m["pending_role"].as_str()), (Some("developer"), Some("admin")));
    let (st, _) = t.as_(&t.dev, Method::POST, "/v1/keys", Some(json!({"name": "still a developer"}))).await;
    assert_eq!(st, 201);
    let (_, me) = t.as_(&t.dev, Method::GET, "/v1/members/me", None).await;
    assert_eq!(me["role"], "developer", "the promotion applied before approval");
    let apr = m["approval_id"].as_str().unwrap().to_string();
    let (st, v) = t.as_(&t.a, Method::PATCH, &path, Some(json!({"role": "operator"}))).await;
    assert_eq!(st, 409, "a member with a pending promotion changed role directly: {v}");
    t.tick();
    let (st, v) =
        t.as_(&t.b, Method::POST, &format!("/v1/approvals/{apr}/reject"), Some(json!({"otp": t.otp(&t.b)}))).await;
    assert_eq!(st, 200, "{v}");
    let (_, me) = t.as_(&t.dev, Method::GET, "/v1/members/me", None).await;
    assert_eq!((me["role"].as_str(), me.get("pending_role")), (Some("developer"), None));

    // A rejected invitation goes away.
    let (_, inv) =
        t.as_(&t.a, Method::POST, "/v1/members", Some(json!({"email": "no@example.com", "role": "owner"}))).await;
    assert_eq!(inv.get("approval_id"), None, "an admin cannot invite an owner at all");
    let (st, inv) =
        t.as_(&t.a, Method::POST, "/v1/members", Some(json!({"email": "no@example.com", "role": "admin"}))).await;
    assert_eq!(st, 201);
    t.tick();
    let apr = inv["approval_id"].as_str().unwrap();
    let (st, _) =
        t.as_(&t.b, Method::POST, &format!("/v1/approvals/{apr}/reject"), Some(json!({"otp": t.otp(&t.b)}))).await;
    assert_eq!(st, 200);
    let (st, _) = t.as_(&t.a, Method::GET, &format!("/v1/members/{}", inv["id"].as_str().unwrap()), None).await;
    assert_eq!(st, 404, "a rejected invitation stays");
    // Invitations of roles that cannot approve are not governed.
    let (st, v) =
        t.as_(&t.a, Method::POST, "/v1/members", Some(json!({"email": "view@example.com", "role": "viewer"}))).await;
    assert_eq!((st, v.get("approval_id")), (201, None), "{v}");
    t.s.stop().await;
}
