//! Governance of the governance: a change that may weaken the policy, or take an approver out
//! of a quorum in force, waits on the strictest rule in force, never on the one it binds; a
//! service account's widening role change follows `role.update`. The old rule applies meanwhile.

use chrono::Duration;
use keyward_testkit::{code, Backend, Member, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends!(
    lowering_approvals_waits_on_another_admin,
    raising_strictness_applies_at_once,
    an_approver_is_not_removed_or_demoted_alone,
    service_account_role_widening_needs_approval,
    a_policy_change_applies_only_to_the_policy_it_was_judged_against
);

async fn as_(s: &TestServer, m: &Member, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    s.call_as(&m.token, method, path, body).await
}

async fn approve(s: &TestServer, m: &Member, id: &str) -> (u16, Value) {
    // A new time step, so the approver's code is fresh.
    s.clock.advance(Duration::seconds(30));
    let otp = s.otp(m.totp.as_ref().unwrap());
    as_(s, m, Method::POST, &format!("/v1/approvals/{id}/approve"), Some(json!({"otp": otp}))).await
}

async fn write(s: &TestServer, key: &str) -> String {
    code(&s.verify(key, json!({"permissions": "docs.write"})).await).to_string()
}

async fn actions(s: &TestServer, query: &str) -> Vec<(String, Value)> {
    let (st, v) = s.call(Method::GET, &format!("/v1/audit{query}"), None).await;
    assert_eq!(st, 200, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_string(), e["changes"].clone()))
        .collect()
}

async fn lowering_approvals_waits_on_another_admin(b: Backend) {
    let s = TestServer::start(b).await;
    let a = s.member("admin", true).await;
    let bb = s.member("admin", true).await;
    let dev = s.member("developer", false).await;
    s.policy(json!({"key.create": {"approvals": 1, "approver_roles": ["admin"]}})).await;

    // One admin alone lowers the rule: the change waits; the policy in force is unchanged.
    let (st, apr) = as_(&s, &a, Method::PUT, "/v1/policies", Some(json!({"key.create": {"approvals": 0}}))).await;
    assert_eq!(
        (st, apr["status"].as_str(), apr["action"].as_str()),
        (202, Some("pending"), Some("policy.update")),
        "{apr}"
    );
    assert_eq!((apr["required"].as_u64(), &apr["approver_roles"]), (Some(1), &json!(["admin"])));
    let apr_id = apr["id"].as_str().unwrap().to_string();
    let (_, p) = s.call(Method::GET, "/v1/policies", None).await;
    assert_eq!(p["key.create"]["approvals"], 1, "the old rule stays in force");
    // The old rule still governs a key action meanwhile.
    let (st, k) = as_(&s, &dev, Method::POST, "/v1/keys", Some(json!({"name": "meanwhile"}))).await;
    assert_eq!((st, k["status"].as_str()), (201, Some("pending_create")), "{k}");
    // The requester cannot approve their own change.
    assert_eq!(approve(&s, &a, &apr_id).await.0, 403);

    // Another admin approves: the new policy applies.
    let (st, v) = approve(&s, &bb, &apr_id).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("approved")), "{v}");
    let (_, p) = s.call(Method::GET, "/v1/policies", None).await;
    assert_eq!(p["key.create"]["approvals"], 0);
    let (st, k) = as_(&s, &dev, Method::POST, "/v1/keys", Some(json!({"name": "after"}))).await;
    assert_eq!((st, k["status"].as_str()), (201, Some("active")), "{k}");

    // Every step is on the record: the request, the vote and the applied change.
    let trail = actions(&s, "?action=approval.*").await;
    let about_policy: Vec<&str> = trail
        .iter()
        .filter(|(_, c)| c["action"] == "policy.update" || c["changes"]["key.create"].is_object())
        .map(|(a, _)| a.as_str())
        .collect();
    for want in ["approval.request", "approval.approve", "approval.approved"] {
        assert!(about_policy.contains(&want), "{want} missing from {trail:?}");
    }

    // Turning required MFA off is weakening too; a rejected change leaves the policy alone.
    s.policy(json!({"key.create": {"approvals": 1, "approver_roles": ["admin"]}})).await;
    let (st, _) = as_(&s, &a, Method::PUT, "/v1/policies", Some(json!({"require_mfa": true}))).await;
    assert_eq!(st, 200, "requiring MFA is stricter: at once");
    let (st, apr) = as_(&s, &a, Method::PUT, "/v1/policies", Some(json!({"require_mfa": false}))).await;
    assert_eq!((st, apr["details"]["weakens"].as_str()), (202, Some("require_mfa")), "{apr}");
    s.clock.advance(Duration::seconds(30));
    let otp = s.otp(bb.totp.as_ref().unwrap());
    let path = format!("/v1/approvals/{}/reject", apr["id"].as_str().unwrap());
    let (st, v) = as_(&s, &bb, Method::POST, &path, Some(json!({"otp": otp}))).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("rejected")), "{v}");
    let (_, p) = as_(&s, &a, Method::GET, "/v1/policies", None).await;
    assert_eq!(p["require_mfa"], true);
    s.stop().await;
}

async fn raising_strictness_applies_at_once(b: Backend) {
    let s = TestServer::start(b).await;
    let a = s.member("admin", true).await;
    let bb = s.member("admin", true).await;
    s.policy(json!({"key.create": {"approvals": 1}})).await;
    for patch in [
        json!({"key.create": {"approvals": 2}}),
        json!({"key.revoke": {"approvals": "half_of_admins"}}),
        json!({"temporary_max_days": 7, "management_key_max_days": 30}),
    ] {
        let (st, v) = as_(&s, &a, Method::PUT, "/v1/policies", Some(patch.clone())).await;
        assert_eq!(st, 200, "{patch} → {v}");
    }
    // More roles that may approve is not stricter: their holders (whom an admin may invite)
    // could make up the quorum, so it waits like a lowered count.
    let patch = json!({"key.create": {"approvals": 2, "approver_roles": ["owner", "admin", "manager"]}});
    let (st, v) = as_(&s, &a, Method::PUT, "/v1/policies", Some(patch)).await;
    assert_eq!((st, v["details"]["weakens"].as_str()), (202, Some("key.create")), "{v}");
    let (st, _) = as_(&s, &a, Method::POST, &format!("/v1/approvals/{}/cancel", v["id"].as_str().unwrap()), None).await;
    assert_eq!(st, 200);
    let (_, p) = s.call(Method::GET, "/v1/policies", None).await;
    assert_eq!((p["key.create"]["approvals"].as_u64(), p["temporary_max_days"].as_u64()), (Some(2), Some(7)));
    // Under a `policy.update` rule every change waits, stricter or not.
    let (st, _) = as_(&s, &a, Method::PUT, "/v1/policies", Some(json!({"policy.update": {"approvals": 1}}))).await;
    assert_eq!(st, 200);
    let (st, apr) = as_(&s, &a, Method::PUT, "/v1/policies", Some(json!({"key.rotate": {"approvals": 1}}))).await;
    assert_eq!((st, apr["action"].as_str()), (202, Some("policy.update")), "{apr}");
    let (st, v) = approve(&s, &bb, apr["id"].as_str().unwrap()).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("approved")), "{v}");
    let (_, p) = s.call(Method::GET, "/v1/policies", None).await;
    assert_eq!(p["key.rotate"]["approvals"], 1);
    s.stop().await;
}

async fn an_approver_is_not_removed_or_demoted_alone(b: Backend) {
    let s = TestServer::start(b).await;
    let a = s.member("admin", true).await;
    let bb = s.member("admin", true).await;
    // Half of the admins other than the requester: one admin's quorum is the other admin.
    s.policy(json!({"key.revoke": {"approvals": "half_of_admins", "approver_roles": ["admin"]}})).await;
    let member = |id: &str| format!("/v1/members/{id}");

    // Demoting the only other approver waits; the role in force stays.
    let (st, m) = as_(&s, &a, Method::PATCH, &member(&bb.id), Some(json!({"role": "developer"}))).await;
    assert_eq!((st, m["role"].as_str(), m["pending_role"].as_str()), (200, Some("admin"), Some("developer")), "{m}");
    let demote = m["approval_id"].as_str().unwrap().to_string();
    let (_, apr) = s.call(Method::GET, &format!("/v1/approvals/{demote}"), None).await;
    assert_eq!((apr["action"].as_str(), apr["required"].as_u64()), (Some("member.role"), Some(1)), "{apr}");
    let (st, _) = as_(&s, &a, Method::POST, &format!("/v1/approvals/{demote}/cancel"), None).await;
    assert_eq!(st, 200);
    let (_, m) = s.call(Method::GET, &member(&bb.id), None).await;
    assert_eq!((m["role"].as_str(), m.get("approval_id").and_then(Value::as_str)), (Some("admin"), None), "{m}");

    // Removing them waits too: they stay a member, able to act, until the request is approved.
    let (st, m) = as_(&s, &a, Method::DELETE, &member(&bb.id), None).await;
    assert_eq!((st, m["role"].as_str()), (202, Some("admin")), "{m}");
    let remove = m["approval_id"].as_str().unwrap().to_string();
    let (st, _) = as_(&s, &bb, Method::GET, "/v1/members/me", None).await;
    assert_eq!(st, 200);
    let (st, v) = approve(&s, &bb, &remove).await;
    assert_eq!((st, v["status"].as_str(), v["action"].as_str()), (200, Some("approved"), Some("member.remove")), "{v}");
    let (st, _) = s.call(Method::GET, &member(&bb.id), None).await;
    assert_eq!(st, 404, "removed once approved");
    let (st, _) = as_(&s, &bb, Method::GET, "/v1/members/me", None).await;
    assert_eq!(st, 401, "with their sessions");

    // A member no quorum counts on is removed at once.
    let dev = s.member("developer", false).await;
    let (st, _) = as_(&s, &a, Method::DELETE, &member(&dev.id), None).await;
    assert_eq!(st, 204);
    s.stop().await;
}

async fn service_account_role_widening_needs_approval(b: Backend) {
    let s = TestServer::start(b).await;
    let a = s.member("admin", true).await;
    let bb = s.member("admin", true).await;
    for (name, perms) in [("reader", json!(["docs.read"])), ("writer", json!(["docs.read", "docs.write"]))] {
        let (st, v) = s.call(Method::POST, "/v1/roles", Some(json!({"name": name, "permissions": perms}))).await;
        assert_eq!(st, 201, "{v}");
    }
    let (_, sa) = s.call(Method::POST, "/v1/service-accounts", Some(json!({"name": "wiki", "role": "reader"}))).await;
    let sa_path = format!("/v1/service-accounts/{}", sa["id"].as_str().unwrap());
    let (st, k) = s.call(Method::POST, &format!("{sa_path}/keys"), Some(json!({"name": "wiki bot"}))).await;
    assert_eq!(st, 201, "{k}");
    let key = k["secret"].as_str().unwrap().to_string();
    assert_eq!(write(&s, &key).await, "INSUFFICIENT_PERMISSIONS");
    s.policy(json!({"role.update": {"approvals": 1, "approver_roles": ["owner", "admin"]}})).await;

    // Widening waits; the account keeps its role and its keys what they had.
    let (st, v) = as_(&s, &a, Method::PATCH, &sa_path, Some(json!({"role": "writer", "description": "docs"}))).await;
    assert_eq!((st, v["role"].as_str(), v["description"].as_str()), (200, Some("reader"), Some("docs")), "{v}");
    let apr = v["approval_id"].as_str().unwrap().to_string();
    assert_eq!(write(&s, &key).await, "INSUFFICIENT_PERMISSIONS");
    let (st, v) = approve(&s, &bb, &apr).await;
    assert_eq!((st, v["action"].as_str(), v["status"].as_str()), (200, Some("service_account.role"), Some("approved")));
    let (_, v) = s.call(Method::GET, &sa_path, None).await;
    assert_eq!(v["role"], "writer");
    assert_eq!(write(&s, &key).await, "VALID");

    // Narrowing applies at once.
    let (st, v) = as_(&s, &a, Method::PATCH, &sa_path, Some(json!({"role": "reader"}))).await;
    assert_eq!((st, v["role"].as_str(), v.get("approval_id")), (200, Some("reader"), None), "{v}");
    assert_eq!(write(&s, &key).await, "INSUFFICIENT_PERMISSIONS");
    s.stop().await;
}

/// A policy change waiting on approval was judged against the policy in force when it was
/// asked for; approved after a stricter rule came into force, it must not undo that rule
/// with its own smaller quorum.
async fn a_policy_change_applies_only_to_the_policy_it_was_judged_against(b: Backend) {
    let s = TestServer::start(b).await;
    let a = s.member("admin", true).await;
    let bb = s.member("admin", true).await;
    s.policy(json!({
        "key.create": {"approvals": 1, "approver_roles": ["admin"]},
        "policy.update": {"approvals": 1, "approver_roles": ["admin"]},
    }))
    .await;
    let put = |m, body| as_(&s, m, Method::PUT, "/v1/policies", Some(body));
    let (st, first) = put(&a, json!({"key.create": {"approvals": 2, "approver_roles": ["admin"]}})).await;
    assert_eq!(st, 202, "{first}");
    let (st, second) = put(&bb, json!({"key.create": {"approvals": 3, "approver_roles": ["admin"]}})).await;
    assert_eq!(st, 202, "{second}");
    let (st, v) = approve(&s, &a, second["id"].as_str().unwrap()).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("approved")), "{v}");
    // The first request now meets a policy it was not judged against: refused, nothing lowered.
    let (st, v) = approve(&s, &bb, first["id"].as_str().unwrap()).await;
    assert_eq!(st, 409, "{v}");
    let (_, p) = s.call(Method::GET, "/v1/policies", None).await;
    assert_eq!(p["key.create"]["approvals"], 3, "{p}");
    s.stop().await;
}
