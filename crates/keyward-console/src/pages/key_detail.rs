//! A key's page: its settings with the roles it holds and what they grant (its grants, and a
//! service account key's inherited role), a rotation it is part of, usage chart and history;
//! editing its settings, grants, rate limits and credits (a refusal shown beside the field),
//! disabling, rotating and revoking with confirmation.

use askama::Template;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use keyward_core::audit::AuditEvent;
use keyward_core::roles::Action;
use keyward_core::wire::keys::{CreditsSpec, KeyView};
use keyward_core::wire::roles::{RoleList, ServiceAccountView};
use keyward_core::wire::usage::KeyUsage;
use serde_json::{json, Map, Value};

use super::audit_changes::{changes_of, Change};
use super::key_fields::{
    grants_of, grants_text, limits_text, offered_roles, parse_credits, parse_grants, parse_limits, refill_word,
};
use super::keys::created;
use super::{back_to, Page};
use crate::backend::{query, seg};
use crate::error::{Fail, Problem};
use crate::form::Form;
use crate::session::{Ctx, May};
use crate::view::{render, status_label, status_tone, time, time_opt, Chrome};

pub(crate) struct AuditRow {
    time: String,
    actor: String,
    action: String,
    changes: Vec<Change>,
}

pub(crate) fn audit_rows(events: &[AuditEvent]) -> Vec<AuditRow> {
    events
        .iter()
        .map(|e| AuditRow {
            time: time(&e.time),
            actor: e.actor.name.clone().or_else(|| e.actor.id.clone()).unwrap_or_else(|| e.actor.kind.clone()),
            action: e.action.clone(),
            changes: changes_of(&e.changes),
        })
        .collect()
}

/// A role the key holds, and what it grants.
pub(crate) struct Held {
    name: String,
    grants: String,
}

/// The role a service account key holds through its account.
pub(crate) struct Inherited {
    account_id: String,
    account_name: String,
    disabled: bool,
    role: String,
    grants: String,
}

/// A rotation this key is part of: the old key keeps working until `until`.
#[derive(Default)]
pub(crate) struct Rotation {
    /// The key that replaced this one, and the one this one replaced.
    to: Option<String>,
    from: Option<String>,
    /// The rotation is under way: the old key (this one or `from`) still works.
    old: Option<String>,
    new: Option<String>,
    /// When the old key stops; `None` while the rotation waits on approval.
    until: Option<String>,
    pending: bool,
}

/// The edit form's values: the key's, or what was sent when the API refused it.
pub(crate) struct EditDraft {
    name: String,
    roles: Vec<(String, bool)>,
    permissions: String,
    scopes: String,
    grants: String,
    ip_allowlist: String,
    callback_url: String,
    expires_on: String,
    ratelimits: String,
    credits: String,
    refill: String,
    refill_amount: String,
}

impl EditDraft {
    fn of_key(k: &KeyView, roles: Vec<(String, bool)>) -> EditDraft {
        EditDraft {
            name: k.name.clone(),
            roles,
            permissions: k.permissions.join("\n"),
            scopes: k.scopes.join("\n"),
            grants: grants_text(&k.grants),
            ip_allowlist: k.ip_allowlist.join("\n"),
            callback_url: k.callback_url.clone().unwrap_or_default(),
            expires_on: expires_on(k),
            ratelimits: limits_text(&k.ratelimits),
            credits: k.credits.as_ref().map(|c| c.remaining.to_string()).unwrap_or_default(),
            refill: refill_word(k.credits.as_ref()).into(),
            refill_amount: k.credits.as_ref().and_then(|c| c.refill).map(|r| r.amount.to_string()).unwrap_or_default(),
        }
    }

    fn of_form(f: &Form, roles: Vec<(String, bool)>) -> EditDraft {
        let roles = roles.into_iter().map(|(r, _)| (r.clone(), f.all("roles").contains(&r))).collect();
        EditDraft {
            name: f.get("name").into(),
            roles,
            permissions: f.get("permissions").into(),
            scopes: f.get("scopes").into(),
            grants: f.get("grants").into(),
            ip_allowlist: f.get("ip_allowlist").into(),
            callback_url: f.get("callback_url").into(),
            expires_on: f.get("expires_on").into(),
            ratelimits: f.get("ratelimits").into(),
            credits: f.get("credits").into(),
            refill: f.get("refill").into(),
            refill_amount: f.get("refill_amount").into(),
        }
    }
}

fn expires_on(k: &KeyView) -> String {
    k.expires_at.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "key_detail.html")]
struct DetailPage {
    c: Chrome,
    k: KeyView,
    label: &'static str,
    tone: &'static str,
    held: Vec<Held>,
    inherited: Option<Inherited>,
    rotation: Rotation,
    chart: String,
    usage_total: u64,
    by_code: Vec<(String, u64)>,
    history: Option<Vec<AuditRow>>,
    may_update: bool,
    may_rotate: bool,
    may_revoke: bool,
    d: EditDraft,
    err: Problem,
}

impl DetailPage {
    fn t(&self, v: &Option<chrono::DateTime<chrono::Utc>>, none: &str) -> String {
        time_opt(v, none)
    }
    fn created(&self) -> String {
        time(&self.k.created_at)
    }
    fn refill_words(&self) -> String {
        use keyward_core::ratelimit::Interval;
        match self.k.credits.as_ref().and_then(|c| c.refill) {
            Some(r) if r.interval == Interval::Daily => "every day".into(),
            Some(r) => format!("every month on day {}", r.day),
            None => String::new(),
        }
    }
    fn meta(&self) -> String {
        if self.k.meta.is_empty() {
            String::new()
        } else {
            Value::Object(self.k.meta.clone()).to_string()
        }
    }
}

/// The service account owning `k` and what its role grants; `None` for a member's key (or
/// an account the caller may not read).
async fn inherited(ctx: &Ctx, k: &KeyView, roles: &RoleList) -> Option<Inherited> {
    let owner = k.owner.as_ref().filter(|o| o.kind == "service_account")?;
    let a: ServiceAccountView = ctx.get(&format!("/v1/service-accounts/{}", seg(&owner.id))).await.ok()?;
    let grants = roles.items.iter().find(|r| r.name == a.role).map_or_else(|| "nothing".into(), grants_of);
    Some(Inherited { account_id: a.id, account_name: a.name, disabled: a.disabled, role: a.role, grants })
}

/// The rotation `k` is part of, reading the other key of it.
async fn rotation(ctx: &Ctx, k: &KeyView) -> Rotation {
    let mut r = Rotation { to: k.rotated_to.clone(), from: k.rotated_from.clone(), ..Rotation::default() };
    let get = |id: String| async move { ctx.get::<KeyView>(&format!("/v1/keys/{}", seg(&id))).await.ok() };
    // This key is the old one, still working: it stops at its expiry.
    if let Some(to) = &k.rotated_to {
        if k.status.as_str() == "active" {
            r.pending = get(to.clone()).await.is_some_and(|n| n.status.as_str() == "pending_create");
            r.until = k.expires_at.as_ref().map(time).filter(|_| !r.pending);
            (r.old, r.new) = (Some(k.id.clone()), Some(to.clone()));
        }
    }
    // This key is the new one, and the old one still works.
    if let Some(from) = &k.rotated_from {
        if let Some(old) = get(from.clone()).await {
            if old.status.as_str() == "active" && old.rotated_to.as_deref() == Some(k.id.as_str()) {
                r.pending = k.status.as_str() == "pending_create";
                r.until = old.expires_at.as_ref().map(time).filter(|_| !r.pending);
                (r.old, r.new) = (Some(old.id), Some(k.id.clone()));
            }
        }
    }
    r
}

async fn page(ctx: &Ctx, id: &str, edit: Option<(&Form, Problem)>) -> Result<DetailPage, Fail> {
    let k: KeyView = ctx.get(&format!("/v1/keys/{}", seg(id))).await?;
    let usage: KeyUsage = ctx.get(&format!("/v1/keys/{}/usage", seg(id))).await?;
    let may = ctx.may();
    let history = if may.read_audit {
        let page: Page<AuditEvent> = ctx.get(&query("/v1/audit", &[("target", &k.id), ("limit", "20")])).await?;
        Some(audit_rows(&page.items))
    } else {
        None
    };
    let roles: RoleList = ctx.get("/v1/roles").await?;
    let role = ctx.me.role;
    let mine = k.created_by.as_deref();
    let status = k.status.as_str();
    let live = !matches!(status, "revoked" | "expired" | "rejected");
    let settled = live && !status.starts_with("pending");
    let mut held_names: Vec<&String> = k.roles.iter().collect();
    held_names.extend(k.grants.iter().map(|g| &g.role).filter(|r| !k.roles.contains(r)));
    let held = held_names
        .into_iter()
        .map(|n| Held {
            name: n.clone(),
            grants: roles.items.iter().find(|r| &r.name == n).map_or_else(|| "nothing".into(), grants_of),
        })
        .collect();
    let offered = offered_roles(&roles.items, &k.roles);
    let (d, err) = match edit {
        Some((form, problem)) => (EditDraft::of_form(form, offered), problem),
        None => (EditDraft::of_key(&k, offered), Problem::default()),
    };
    Ok(DetailPage {
        c: Chrome::new(ctx, "keys"),
        label: status_label(status),
        tone: status_tone(status),
        held,
        inherited: inherited(ctx, &k, &roles).await,
        rotation: rotation(ctx, &k).await,
        chart: crate::chart::bars(&usage.buckets, "Verifications in the last 24 hours"),
        usage_total: usage.total,
        by_code: usage.by_code.into_iter().collect(),
        history,
        may_update: settled && May::on_key(role, Action::UpdateKey, &ctx.me.id, mine),
        may_rotate: settled
            && k.kind.as_str() == "secret"
            && k.rotated_to.is_none()
            && May::on_key(role, Action::RotateKey, &ctx.me.id, mine),
        may_revoke: settled && May::on_key(role, Action::RevokeKey, &ctx.me.id, mine),
        d,
        err,
        k,
    })
}

pub(crate) async fn detail(ctx: Ctx, Path(id): Path<String>) -> Result<Response, Fail> {
    render(&page(&ctx, &id, None).await?)
}

/// The changes the edit form asks for: only the fields that differ from the key's, so the
/// audit trail records what changed (and credits are not started again by an unrelated
/// edit).
fn changes(form: &Form, k: &KeyView) -> Result<Map<String, Value>, Fail> {
    let mut b = Map::new();
    let mut set = |field: &str, new: Value, old: Value| {
        if new != old {
            b.insert(field.into(), new);
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    set("name", json!(form.get("name")), json!(k.name));
    set("roles", json!(sorted(form.all("roles"))), json!(sorted(k.roles.clone())));
    set("permissions", json!(form.list("permissions")), json!(k.permissions));
    set("scopes", json!(form.list("scopes")), json!(k.scopes));
    set("grants", json!(parse_grants(form.get("grants"))?), json!(k.grants));
    set("ip_allowlist", json!(form.list("ip_allowlist")), json!(k.ip_allowlist));
    set("callback_url", json!(form.opt("callback_url")), json!(k.callback_url));
    set("ratelimits", json!(parse_limits(form.get("ratelimits"), &k.ratelimits)?), json!(k.ratelimits));
    let day = k.credits.as_ref().and_then(|c| c.refill).map_or(1, |r| r.day);
    let credits = parse_credits(form.get("credits"), form.get("refill"), form.get("refill_amount"), day)?;
    // Compared by what the form can say (a daily refill's day is not its).
    let said = |c: &Option<CreditsSpec>| c.as_ref().map(|c| (c.remaining, c.refill.map(|r| (r.interval, r.amount))));
    if said(&credits) != said(&k.credits) {
        b.insert("credits".into(), json!(credits));
    }
    if let Some(date) = form.opt("expires_on").filter(|d| *d != expires_on(k)) {
        let date = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d")
            .map_err(|_| Fail::invalid("expires_on", "the expiry date must be YYYY-MM-DD"))?;
        b.insert("expires_at".into(), json!(date.and_hms_opt(23, 59, 59).map(|t| t.and_utc().to_rfc3339())));
    }
    Ok(b)
}

pub(crate) async fn update(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let current: KeyView = ctx.get(&format!("/v1/keys/{}", seg(&id))).await?;
    let sent = match changes(&form, &current) {
        Ok(b) if b.is_empty() => return Ok(back_to(&format!("/console/keys/{}", seg(&id)))),
        Ok(b) => ctx.send::<KeyView>(Method::PATCH, &format!("/v1/keys/{}", seg(&id)), &Value::Object(b)).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(_) => Ok(back_to(&format!("/console/keys/{}", seg(&id)))),
        // The form again, its values kept, the API's message beside the field it names.
        Err(e @ Fail::Api { .. }) if e.status().is_client_error() && !e.ends_session() => {
            let status = e.status();
            let mut resp = render(&page(&ctx, &id, Some((&form, Problem::of(&e)))).await?)?;
            *resp.status_mut() = status;
            Ok(resp)
        }
        Err(e) => Err(e),
    }
}

/// Disable or enable: a key update of `enabled` alone (governed and audited as one).
pub(crate) async fn set_enabled(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let enabled = match form.get("enabled") {
        "true" => true,
        "false" => false,
        _ => return Err(Fail::invalid("enabled", "enabled must be true or false")),
    };
    let body = json!({ "enabled": enabled });
    let _: KeyView = ctx.send(Method::PATCH, &format!("/v1/keys/{}", seg(&id)), &body).await?;
    Ok(back_to(&format!("/console/keys/{}", seg(&id))))
}

pub(crate) async fn rotate(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let body = json!({ "grace_period": form.get("grace_period") });
    let key: KeyView = ctx.send(Method::POST, &format!("/v1/keys/{}/rotate", seg(&id)), &body).await?;
    created(&ctx, key)
}

#[derive(Template)]
#[template(path = "key_revoke.html")]
struct RevokePage {
    c: Chrome,
    k: KeyView,
}

pub(crate) async fn revoke_page(ctx: Ctx, Path(id): Path<String>) -> Result<Response, Fail> {
    let k: KeyView = ctx.get(&format!("/v1/keys/{}", seg(&id))).await?;
    render(&RevokePage { c: Chrome::new(&ctx, "keys"), k })
}

pub(crate) async fn revoke(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let _: KeyView = ctx.send(Method::POST, &format!("/v1/keys/{}/revoke", seg(&id)), &json!({})).await?;
    Ok(back_to(&format!("/console/keys/{}", seg(&id))))
}
