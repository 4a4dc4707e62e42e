//! The role × action matrix, tried over HTTP with each role's session. The expected table is
//! written out here (not read from the server's code), so a change to either shows up.

use keyward_testkit::{Backend, TestServer};
use reqwest::Method;
use serde_json::json;

on_both_backends!(role_action_matrix, nobody_grants_more_than_they_hold);

const ROLES: [&str; 6] = ["owner", "admin", "manager", "developer", "operator", "viewer"];

/// Action, then whether each role in `ROLES` order may do it (`-`: not applicable).
const MATRIX: [(&str, [char; 6]); 12] = [
    ("list keys", ['y', 'y', 'y', 'y', 'y', 'y']),
    ("read policies", ['y', 'y', 'y', 'y', 'y', 'y']),
    ("list members", ['y', 'y', 'y', 'y', 'y', 'y']),
    ("create key", ['y', 'y', 'y', 'y', 'y', 'n']),
    ("update own key", ['y', 'y', 'y', 'y', 'n', '-']),
    ("update another's key", ['y', 'y', 'y', 'n', 'n', 'n']),
    ("rotate own key", ['y', 'y', 'y', 'y', 'y', '-']),
    ("rotate another's key", ['y', 'y', 'y', 'n', 'y', 'n']),
    ("revoke own key", ['y', 'y', 'y', 'y', 'y', '-']),
    ("revoke another's key", ['y', 'y', 'y', 'n', 'y', 'n']),
    ("invite a viewer", ['y', 'y', 'n', 'n', 'n', 'n']),
    ("change policies", ['y', 'y', 'n', 'n', 'n', 'n']),
];

async fn role_action_matrix(b: Backend) {
    let s = TestServer::start(b).await;
    let mut failures = Vec::new();
    for (r, role) in ROLES.iter().enumerate() {
        let m = s.member(role, false).await;
        let as_m = |method: Method, path: String, body: Option<serde_json::Value>| {
            let token = m.token.clone();
            let s = &s;
            async move { s.call_as(&token, method, &path, body).await }
        };
        let (other, _) = s.create(json!({"name": format!("owner-made-{role}")})).await;
        // The member's own key, when the role may create one.
        let (st, own) = as_m(Method::POST, "/v1/keys".into(), Some(json!({"name": format!("{role}-own")}))).await;
        let own_id = (st == 201).then(|| own["id"].as_str().unwrap().to_string());
        for (action, expect) in MATRIX {
            let want = expect[r];
            let key = |own: bool| if own { own_id.clone() } else { Some(other.clone()) };
            let (method, path, body, target) = match action {
                "list keys" => (Method::GET, "/v1/keys".to_string(), None, Some(String::new())),
                "read policies" => (Method::GET, "/v1/policies".into(), None, Some(String::new())),
                "list members" => (Method::GET, "/v1/members".into(), None, Some(String::new())),
                "create key" => (Method::POST, "/v1/keys".into(), Some(json!({"name": "m"})), Some(String::new())),
                "invite a viewer" => (
                    Method::POST,
                    "/v1/members".into(),
                    Some(json!({"email": format!("v-by-{role}@example.com"), "role": "viewer"})),
                    Some(String::new()),
                ),
                "change policies" => {
                    (Method::PUT, "/v1/policies".into(), Some(json!({"temporary_max_days": 30})), Some(String::new()))
                }
                a => {
                    let k = key(a.contains("own"));
                    let id = k.clone().unwrap_or_default();
                    match a.split(' ').next() {
                        Some("update") => {
                            (Method::PATCH, format!("/v1/keys/{id}"), Some(json!({"name": "renamed"})), k)
                        }
                        // A grace period keeps the key active for the revoke rows below.
                        Some("rotate") => {
                            (Method::POST, format!("/v1/keys/{id}/rotate"), Some(json!({"grace_period": "1h"})), k)
                        }
                        _ => (Method::POST, format!("/v1/keys/{id}/revoke"), None, k),
                    }
                }
            };
            let got = match target {
                None => '-',
                Some(_) => {
                    let (st, v) = as_m(method, path, body).await;
                    match st {
                        200..=299 => 'y',
                        403 => 'n',
                        _ => panic!("{role} / {action}: unexpected {st} {v}"),
                    }
                }
            };
            if got != want {
                failures.push(format!("{role} / {action}: expected {want}, got {got}"));
            }
        }
    }
    assert!(failures.is_empty(), "role matrix differs:\n{}", failures.join("\n"));
    s.stop().await;
}

async fn nobody_grants_more_than_they_hold(b: Backend) {
    let s = TestServer::start(b).await;
    let dev = s.member("developer", false).await;
    // A key's roles may name member roles only up to its creator's.
    let (st, v) = s.call_as(&dev.token, Method::POST, "/v1/keys", Some(json!({"name": "k", "roles": ["admin"]}))).await;
    assert_eq!(st, 403, "{v}");
    // Other roles it names must exist.
    let (st, v) = s.call(Method::POST, "/v1/roles", Some(json!({"name": "billing", "permissions": []}))).await;
    assert_eq!(st, 201, "{v}");
    let (st, k) = s
        .call_as(&dev.token, Method::POST, "/v1/keys", Some(json!({"name": "k", "roles": ["developer", "billing"]})))
        .await;
    assert_eq!(st, 201, "{k}");
    let (st, _) = s
        .call_as(
            &dev.token,
            Method::PATCH,
            &format!("/v1/keys/{}", k["id"].as_str().unwrap()),
            Some(json!({"roles": ["owner"]})),
        )
        .await;
    assert_eq!(st, 403);
    // The owner may.
    let (st, _) = s.call(Method::POST, "/v1/keys", Some(json!({"name": "k", "roles": ["admin"]}))).await;
    assert_eq!(st, 201);
    // An admin invites up to admin.
    let admin = s.member("admin", false).await;
    let invite = |role: &str| json!({"email": format!("{role}@grant.example"), "role": role});
    assert_eq!(s.call_as(&admin.token, Method::POST, "/v1/members", Some(invite("admin"))).await.0, 201);
    assert_eq!(s.call_as(&admin.token, Method::POST, "/v1/members", Some(invite("owner"))).await.0, 403);
    s.stop().await;
}
