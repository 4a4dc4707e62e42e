//! Keys: the list with filters and search, creating a secret key (one-time reveal),
//! registering a public key, a key's page (settings, usage chart, history), edit, rotate
//! and revoke with confirmation.

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use keyward_core::audit::AuditEvent;
use keyward_core::roles::Action;
use keyward_core::wire::keys::{KeyList, KeyView};
use keyward_core::wire::roles::RoleList;
use keyward_core::wire::usage::KeyUsage;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{back_to, reveal_once, Reveal};
use crate::backend::{query, seg};
use crate::error::Fail;
use crate::form::Form;
use crate::session::{Ctx, May};
use crate::view::{render, status_label, status_tone, time, time_opt, Chrome};

#[derive(Deserialize, Default)]
pub(crate) struct Filter {
    #[serde(default)]
    status: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    q: String,
    /// Only the keys of the identity with this external id.
    #[serde(default)]
    external_id: String,
    #[serde(default)]
    cursor: String,
}

pub(crate) struct Row {
    id: String,
    name: String,
    start: String,
    kind: String,
    environment: String,
    label: &'static str,
    tone: &'static str,
    /// The key is disabled (shown beside its status).
    disabled: bool,
    key_type: String,
    last_used: String,
    requests_24h: String,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct ListPage {
    c: Chrome,
    f: Filter,
    rows: Vec<Row>,
    next: Option<String>,
    filtered: bool,
}

const STATUSES: [&str; 7] =
    ["active", "pending_create", "pending_update", "pending_revoke", "revoked", "expired", "rejected"];

impl ListPage {
    fn statuses(&self) -> Vec<(&'static str, &'static str, bool)> {
        STATUSES.iter().map(|s| (*s, status_label(s), self.f.status == *s)).collect()
    }
}

pub(crate) async fn list(ctx: Ctx, Query(f): Query<Filter>) -> Result<Response, Fail> {
    let path = query(
        "/v1/keys",
        &[
            ("status", &f.status),
            ("kind", &f.kind),
            ("environment", &f.environment),
            ("q", &f.q),
            ("external_id", &f.external_id),
            ("cursor", &f.cursor),
            ("limit", "25"),
        ],
    );
    let page: KeyList = ctx.get(&path).await?;
    let rows = page
        .items
        .iter()
        .map(|k| Row {
            id: k.id.clone(),
            name: k.name.clone(),
            start: k.start.clone(),
            kind: k.kind.as_str().into(),
            environment: k.environment.clone(),
            label: status_label(k.status.as_str()),
            tone: status_tone(k.status.as_str()),
            disabled: !k.enabled,
            key_type: k.key_type.map_or("", |t| t.as_str()).into(),
            last_used: time_opt(&k.last_used_at, "never"),
            requests_24h: k.requests_24h.map_or_else(|| "—".into(), |n| n.to_string()),
        })
        .collect();
    let next = page.next_cursor.map(|c| {
        query(
            "/console/keys",
            &[
                ("status", &f.status),
                ("kind", &f.kind),
                ("environment", &f.environment),
                ("q", &f.q),
                ("external_id", &f.external_id),
                ("cursor", &c),
            ],
        )
    });
    let filtered = !(f.status.is_empty()
        && f.kind.is_empty()
        && f.environment.is_empty()
        && f.q.is_empty()
        && f.external_id.is_empty());
    render(&ListPage { c: Chrome::new(&ctx, "keys"), f, rows, next, filtered })
}

/// The values of the create / register form, kept when the API refuses it.
#[derive(Default)]
pub(crate) struct Draft {
    name: String,
    environment: String,
    key_type: String,
    expiry: String,
    expiry_date: String,
    ip_allowlist: String,
    roles: Vec<(String, bool)>,
    permissions: String,
    scopes: String,
    callback_url: String,
    group: String,
    public_key: String,
    algorithm: String,
    ratelimits: String,
    credits: String,
    refill: String,
}

#[derive(Template)]
#[template(path = "key_new.html")]
struct NewPage {
    c: Chrome,
    public: bool,
    /// The member has MFA: a one-time code confirms the submission.
    mfa: bool,
    d: Draft,
    error: Option<String>,
}

async fn role_names(ctx: &Ctx) -> Result<Vec<String>, Fail> {
    let roles: RoleList = ctx.get("/v1/roles").await?;
    Ok(roles.items.into_iter().map(|r| r.name).collect())
}

async fn new_form(ctx: Ctx, public: bool) -> Result<Response, Fail> {
    if !ctx.may().create_keys {
        return Err(forbidden("Your role may not create keys."));
    }
    let roles = role_names(&ctx).await?.into_iter().map(|r| (r, false)).collect();
    let d = Draft {
        environment: "test".into(),
        key_type: "temporary".into(),
        expiry: "30d".into(),
        algorithm: "ed25519".into(),
        roles,
        ..Draft::default()
    };
    render(&NewPage { c: Chrome::new(&ctx, "keys"), public, mfa: ctx.me.mfa_enabled, d, error: None })
}

pub(crate) async fn new_secret(ctx: Ctx) -> Result<Response, Fail> {
    new_form(ctx, false).await
}

pub(crate) async fn new_public(ctx: Ctx) -> Result<Response, Fail> {
    new_form(ctx, true).await
}

fn forbidden(message: &str) -> Fail {
    Fail::refusal(axum::http::StatusCode::FORBIDDEN, "forbidden", message)
}

/// The API body of a create form.
fn create_body(form: &Form) -> Result<Value, Fail> {
    let mut b = Map::new();
    b.insert("name".into(), json!(form.get("name")));
    for field in ["environment", "type"] {
        if let Some(v) = form.opt(field) {
            b.insert(field.into(), json!(v));
        }
    }
    if form.get("kind") == "public" {
        b.insert("public_key".into(), json!(form.get("public_key")));
        b.insert("algorithm".into(), json!(form.get("algorithm")));
    }
    match form.get("expiry") {
        "" | "never" => {}
        "date" => {
            let date = chrono::NaiveDate::parse_from_str(form.get("expiry_date"), "%Y-%m-%d")
                .map_err(|_| Fail::invalid("expiry_date", "choose an expiry date (YYYY-MM-DD)"))?;
            let at = date.and_hms_opt(23, 59, 59).map(|t| t.and_utc().to_rfc3339());
            b.insert("expires_at".into(), json!(at));
        }
        other => {
            b.insert("expires_in".into(), json!(other));
        }
    }
    for (field, value) in [
        ("ip_allowlist", form.list("ip_allowlist")),
        ("roles", form.all("roles")),
        ("permissions", form.list("permissions")),
        ("scopes", form.list("scopes")),
    ] {
        if !value.is_empty() {
            b.insert(field.into(), json!(value));
        }
    }
    if let Some(url) = form.opt("callback_url") {
        b.insert("callback_url".into(), json!(url));
    }
    if let Some(otp) = form.opt("otp") {
        b.insert("otp".into(), json!(otp));
    }
    let limits = form.list("ratelimits");
    if !limits.is_empty() {
        let specs = limits
            .iter()
            .map(|l| {
                keyward_core::ratelimit::RateLimit::parse_spec(l)
                    .map(|r| keyward_core::wire::keys::RateLimitSpec::from(&r))
                    .map_err(|e| Fail::invalid("ratelimits", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        b.insert("ratelimits".into(), json!(specs));
    }
    if let Some(n) = form.opt("credits") {
        let remaining: u64 = n.parse().map_err(|_| Fail::invalid("credits", "credits must be a whole number"))?;
        let refill = match form.get("refill") {
            "daily" | "monthly" => json!({ "interval": form.get("refill"), "amount": remaining }),
            _ => serde_json::Value::Null,
        };
        b.insert("credits".into(), json!({ "remaining": remaining, "refill": refill }));
    }
    if let Some(group) = form.opt("group") {
        b.insert("meta".into(), json!({ "group": group }));
    }
    Ok(Value::Object(b))
}

pub(crate) async fn create(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let public = form.get("kind") == "public";
    let made: Result<KeyView, Fail> = match create_body(&form) {
        Ok(body) => ctx.send(Method::POST, "/v1/keys", &body).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(key) => created(&ctx, key),
        Err(e @ Fail::Api { .. }) if e.status().is_client_error() && !e.ends_session() => {
            let chosen = form.all("roles");
            let roles = role_names(&ctx).await?.into_iter().map(|r| (r.clone(), chosen.contains(&r))).collect();
            let d = Draft {
                name: form.get("name").into(),
                environment: form.get("environment").into(),
                key_type: form.get("type").into(),
                expiry: form.get("expiry").into(),
                expiry_date: form.get("expiry_date").into(),
                ip_allowlist: form.get("ip_allowlist").into(),
                roles,
                permissions: form.get("permissions").into(),
                scopes: form.get("scopes").into(),
                callback_url: form.get("callback_url").into(),
                group: form.get("group").into(),
                public_key: form.get("public_key").into(),
                algorithm: form.get("algorithm").into(),
                ratelimits: form.get("ratelimits").into(),
                credits: form.get("credits").into(),
                refill: form.get("refill").into(),
            };
            let status = e.status();
            let page =
                NewPage { c: Chrome::new(&ctx, "keys"), public, mfa: ctx.me.mfa_enabled, d, error: Some(e.sentence()) };
            let mut resp = render(&page)?;
            *resp.status_mut() = status;
            Ok(resp)
        }
        Err(e) => Err(e),
    }
}

fn created(ctx: &Ctx, key: KeyView) -> Result<Response, Fail> {
    let next = format!("/console/keys/{}", seg(&key.id));
    let Some(secret) = key.secret.clone() else { return Ok(back_to(&next)) };
    let pending = key.status.as_str() == "pending_create";
    let note = if pending {
        "The key is pending approval (create): it works once approvers accept it. Store the secret now anyway — it is shown only once."
    } else {
        "Store it now in your secret manager. It is shown only once: Keyward keeps only a hash and cannot show it again."
    };
    reveal_once(
        ctx,
        &Reveal {
            title: format!("Key “{}” created", key.name),
            what: "Secret key".into(),
            lines: vec![secret],
            note: note.into(),
            next,
        },
    )
}

pub(crate) struct AuditRow {
    time: String,
    actor: String,
    action: String,
    changes: String,
}

pub(crate) fn audit_rows(events: &[AuditEvent]) -> Vec<AuditRow> {
    events
        .iter()
        .map(|e| AuditRow {
            time: time(&e.time),
            actor: e.actor.name.clone().or_else(|| e.actor.id.clone()).unwrap_or_else(|| e.actor.kind.clone()),
            action: e.action.clone(),
            changes: if e.changes.as_object().is_some_and(|m| m.is_empty()) {
                String::new()
            } else {
                e.changes.to_string()
            },
        })
        .collect()
}

#[derive(Template)]
#[template(path = "key_detail.html")]
struct DetailPage {
    c: Chrome,
    k: KeyView,
    label: &'static str,
    tone: &'static str,
    roles: Vec<(String, bool)>,
    chart: String,
    usage_total: u64,
    by_code: Vec<(String, u64)>,
    history: Option<Vec<AuditRow>>,
    may_update: bool,
    may_rotate: bool,
    may_revoke: bool,
}

impl DetailPage {
    fn t(&self, v: &Option<chrono::DateTime<chrono::Utc>>, none: &str) -> String {
        time_opt(v, none)
    }
    fn created(&self) -> String {
        time(&self.k.created_at)
    }
    fn expires_on(&self) -> String {
        self.k.expires_at.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
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

pub(crate) async fn detail(ctx: Ctx, Path(id): Path<String>) -> Result<Response, Fail> {
    let k: KeyView = ctx.get(&format!("/v1/keys/{}", seg(&id))).await?;
    let usage: KeyUsage = ctx.get(&format!("/v1/keys/{}/usage", seg(&id))).await?;
    let may = ctx.may();
    let history = if may.read_audit {
        let page: super::Page<AuditEvent> = ctx.get(&query("/v1/audit", &[("target", &k.id), ("limit", "20")])).await?;
        Some(audit_rows(&page.items))
    } else {
        None
    };
    let role = ctx.me.role;
    let mine = k.created_by.as_deref();
    let status = k.status.as_str();
    let live = !matches!(status, "revoked" | "expired" | "rejected");
    let settled = live && !status.starts_with("pending");
    let roles = role_names(&ctx).await?.into_iter().map(|r| (r.clone(), k.roles.contains(&r))).collect();
    let page = DetailPage {
        c: Chrome::new(&ctx, "keys"),
        label: status_label(status),
        tone: status_tone(status),
        roles,
        chart: crate::chart::bars(&usage.buckets, "Verifications in the last 24 hours"),
        usage_total: usage.total,
        by_code: usage.by_code.into_iter().collect(),
        history,
        may_update: settled && May::on_key(role, Action::UpdateKey, &ctx.me.id, mine),
        may_rotate: settled && k.kind.as_str() == "secret" && May::on_key(role, Action::RotateKey, &ctx.me.id, mine),
        may_revoke: settled && May::on_key(role, Action::RevokeKey, &ctx.me.id, mine),
        k,
    };
    render(&page)
}

pub(crate) async fn update(ctx: Ctx, Path(id): Path<String>, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let mut b = Map::new();
    b.insert("name".into(), json!(form.get("name")));
    b.insert("roles".into(), json!(form.all("roles")));
    b.insert("permissions".into(), json!(form.list("permissions")));
    b.insert("scopes".into(), json!(form.list("scopes")));
    b.insert("ip_allowlist".into(), json!(form.list("ip_allowlist")));
    b.insert("callback_url".into(), json!(form.opt("callback_url")));
    if let Some(date) = form.opt("expires_on") {
        let date = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d")
            .map_err(|_| Fail::invalid("expires_on", "the expiry date must be YYYY-MM-DD"))?;
        b.insert("expires_at".into(), json!(date.and_hms_opt(23, 59, 59).map(|t| t.and_utc().to_rfc3339())));
    }
    let _: KeyView = ctx.send(Method::PATCH, &format!("/v1/keys/{}", seg(&id)), &Value::Object(b)).await?;
    Ok(back_to(&format!("/console/keys/{}", seg(&id))))
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
