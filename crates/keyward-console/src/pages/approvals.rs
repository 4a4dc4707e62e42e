//! The approvals inbox: what is asked, by whom, the change; approve or reject with a
//! one-time code, or cancel one's own request.

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use keyward_core::wire::governance::{ApprovalList, ApprovalView, MemberList};
use keyward_core::wire::keys::KeyView;
use serde::Deserialize;
use serde_json::json;

use super::back_to;
use crate::backend::{query, seg};
use crate::error::Fail;
use crate::form::Form;
use crate::session::Ctx;
use crate::view::{pretty, status_tone, time, Chrome};

#[derive(Deserialize)]
pub(crate) struct Filter {
    #[serde(default)]
    status: String,
}

pub(crate) struct Item {
    a: ApprovalView,
    what: String,
    /// The key's settings, for key requests.
    key: Option<Vec<(&'static str, String)>>,
    state: String,
    by: String,
    tone: &'static str,
    details: String,
    created: String,
    expires: String,
    votes: String,
    /// The signed-in member may vote (an approver role, not the requester).
    may_vote: bool,
    may_cancel: bool,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ListPage {
    c: Chrome,
    status: String,
    items: Vec<Item>,
}

/// What is asked, in words: "Create key “billing”".
fn asked(action: &str, name: Option<&str>) -> String {
    let what = match action {
        "key.create" => "Create key",
        "key.update" => "Update key",
        "key.revoke" => "Revoke key",
        "key.rotate" => "Rotate key",
        "member.invite" => "Invite member",
        "member.role" => "Change a member's role",
        "role.update" => "Widen a role",
        "policy.update" => "Change the policy",
        "member.remove" => "Remove a member",
        "service_account.role" => "Change a service account's role",
        "app.install" => "Install an app",
        other => other,
    };
    match name {
        Some(name) => format!("{what} “{name}”"),
        None => what.to_string(),
    }
}

/// A key's settings as approvers read them.
fn settings(k: &KeyView) -> Vec<(&'static str, String)> {
    let list = |v: &[String], none: &str| if v.is_empty() { none.to_string() } else { v.join(", ") };
    vec![
        ("Key", format!("{} ({}…, {})", k.name, k.start, k.kind.as_str())),
        ("Environment", k.environment.clone()),
        ("Type", k.key_type.map_or("—", |t| t.as_str()).to_string()),
        ("Roles", list(&k.roles, "none")),
        ("Permissions", list(&k.permissions, "none")),
        ("Scopes", list(&k.scopes, "any")),
        ("IP allowlist", list(&k.ip_allowlist, "any address")),
        ("Expires", crate::view::time_opt(&k.expires_at, "never")),
    ]
}

/// The request's status as the seeds word it: "Pending approval (create)".
fn status_words(action: &str, status: &str) -> String {
    match status {
        "pending" => format!("Pending approval ({})", action.rsplit('.').next().unwrap_or(action)),
        other => other.to_string(),
    }
}

pub(crate) async fn list(ctx: Ctx, Query(f): Query<Filter>) -> Result<Response, Fail> {
    let status = if f.status.is_empty() { "pending".to_string() } else { f.status };
    let page: ApprovalList = ctx.get(&query("/v1/approvals", &[("status", &status), ("limit", "100")])).await?;
    let members: MemberList = ctx.get("/v1/members?limit=200").await?;
    let email =
        |id: &str| members.items.iter().find(|m| m.id == id).map_or_else(|| id.to_string(), |m| m.email.clone());
    let me = &ctx.me;
    // The key each key request is about: its name and settings are what approvers judge.
    let mut keys = std::collections::HashMap::new();
    for a in page.items.iter().filter(|a| a.action.starts_with("key.")) {
        if let Ok(k) = ctx.get::<KeyView>(&format!("/v1/keys/{}", seg(&a.key_id))).await {
            keys.insert(a.key_id.clone(), k);
        }
    }
    let items = page
        .items
        .into_iter()
        .map(|a| {
            let key = keys.get(&a.key_id);
            let pending = a.status == "pending";
            let voted = a.approved_by.iter().any(|v| v.member_id == me.id);
            Item {
                what: asked(
                    &a.action,
                    key.map(|k| k.name.as_str()).or_else(|| a.details.get("email").and_then(|v| v.as_str())),
                ),
                key: key.map(settings),
                state: status_words(&a.action, &a.status),
                by: email(&a.requested_by),
                tone: status_tone(&a.status),
                details: pretty(&a.details),
                created: time(&a.created_at),
                expires: time(&a.expires_at),
                votes: format!("{} of {}", a.approved_by.len(), a.required),
                may_vote: pending && !voted && a.requested_by != me.id && a.approver_roles.contains(&me.role),
                may_cancel: pending && a.requested_by == me.id,
                a,
            }
        })
        .collect();
    crate::view::render(&ListPage { c: Chrome::new(&ctx, "approvals"), status, items })
}

pub(crate) async fn decide(
    ctx: Ctx,
    Path((id, decision)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let body = match decision.as_str() {
        "approve" => json!({ "otp": form.get("otp") }),
        "reject" => json!({ "otp": form.get("otp"), "reason": form.opt("reason") }),
        "cancel" => json!({}),
        _ => return Err(Fail::invalid("decision", "approve, reject or cancel")),
    };
    let path = format!("/v1/approvals/{}/{decision}", seg(&id));
    let _: ApprovalView = ctx.send(Method::POST, &path, &body).await?;
    Ok(back_to("/console/approvals"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_is_asked_reads_plainly() {
        assert_eq!(super::asked("key.create", Some("billing")), "Create key “billing”");
        assert_eq!(super::asked("member.invite", None), "Invite member");
        assert_eq!(super::status_words("key.revoke", "pending"), "Pending approval (revoke)");
        assert_eq!(super::status_words("key.revoke", "approved"), "approved");
    }
}
