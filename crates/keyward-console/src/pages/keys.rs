//! Keys: the list with filters and search (in the header's environment), creating a secret
//! key (one-time reveal) and registering a public key. A key's own page is `key_detail.rs`.

use askama::Template;
use axum::extract::Query;
use axum::http::Method;
use axum::response::Response;
use keyward_core::wire::keys::{KeyList, KeyView};
use keyward_core::wire::policy::TEMPORARY_DEFAULT_DAYS;
use keyward_core::wire::roles::RoleList;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::key_fields::{default_expiry, offered_roles, parse_credits, parse_grants, parse_limits};
use super::{back_to, reveal_once, Reveal};
use crate::backend::{query, seg};
use crate::error::{Fail, Problem};
use crate::form::Form;
use crate::session::Ctx;
use crate::view::{render, status_label, status_tone, time_opt, Chrome};

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
    /// Only the keys of this owner (a service account's page links here).
    #[serde(default)]
    owner: String,
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
    /// In its grace period after a rotation: the key replacing it.
    rotating_to: Option<String>,
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
    /// The header's environment, which the list keeps to (its own select is then hidden).
    env: &'static str,
}

const STATUSES: [&str; 7] =
    ["active", "pending_create", "pending_update", "pending_revoke", "revoked", "expired", "rejected"];

impl ListPage {
    fn statuses(&self) -> Vec<(&'static str, &'static str, bool)> {
        STATUSES.iter().map(|s| (*s, status_label(s), self.f.status == *s)).collect()
    }
}

pub(crate) async fn list(ctx: Ctx, Query(mut f): Query<Filter>) -> Result<Response, Fail> {
    let env = ctx.env;
    if !env.is_empty() {
        f.environment = env.to_string();
    }
    let path = query(
        "/v1/keys",
        &[
            ("status", &f.status),
            ("kind", &f.kind),
            ("environment", &f.environment),
            ("q", &f.q),
            ("external_id", &f.external_id),
            ("owner", &f.owner),
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
            rotating_to: k.rotated_to.clone().filter(|_| k.status.as_str() == "active"),
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
                ("owner", &f.owner),
                ("cursor", &c),
            ],
        )
    });
    let filtered = !(f.status.is_empty()
        && f.kind.is_empty()
        && (f.environment.is_empty() || !env.is_empty())
        && f.q.is_empty()
        && f.external_id.is_empty()
        && f.owner.is_empty());
    render(&ListPage { c: Chrome::new(&ctx, "keys"), f, rows, next, filtered, env })
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
    grants: String,
}

#[derive(Template)]
#[template(path = "key_new.html")]
struct NewPage {
    c: Chrome,
    public: bool,
    /// The member has MFA: a one-time code confirms the submission.
    mfa: bool,
    d: Draft,
    /// The expiry option the API would choose itself.
    default_expiry: String,
    err: Problem,
}

impl NewPage {
    /// The API's default lifetime of a temporary key, in words.
    fn default_words(&self) -> String {
        format!("{TEMPORARY_DEFAULT_DAYS} days")
    }

    /// The expiry choices: the default first, then longer ones.
    fn expiries(&self) -> Vec<(String, String, bool)> {
        let mut out = vec![(self.default_expiry.clone(), format!("{} (the default)", self.default_words()))];
        for (v, l) in [("90d", "90 days"), ("1y", "1 year")] {
            if v != self.default_expiry {
                out.push((v.into(), l.into()));
            }
        }
        out.into_iter().map(|(v, l)| (v.clone(), l, self.d.expiry == v)).collect()
    }
}

/// The workspace's roles a new key may be given, each with whether it is chosen.
async fn roles_offered(ctx: &Ctx, chosen: &[String]) -> Result<Vec<(String, bool)>, Fail> {
    let roles: RoleList = ctx.get("/v1/roles").await?;
    Ok(offered_roles(&roles.items, chosen))
}

async fn new_form(ctx: Ctx, public: bool) -> Result<Response, Fail> {
    if !ctx.may().create_keys {
        return Err(forbidden("Your role may not create keys."));
    }
    let d = Draft {
        environment: if ctx.env.is_empty() { "test" } else { ctx.env }.into(),
        key_type: "temporary".into(),
        expiry: default_expiry(),
        algorithm: "ed25519".into(),
        roles: roles_offered(&ctx, &[]).await?,
        ..Draft::default()
    };
    let page = NewPage {
        c: Chrome::new(&ctx, "keys"),
        public,
        mfa: ctx.me.mfa_enabled,
        d,
        default_expiry: default_expiry(),
        err: Problem::default(),
    };
    render(&page)
}

pub(crate) async fn new_secret(ctx: Ctx) -> Result<Response, Fail> {
    new_form(ctx, false).await
}

pub(crate) async fn new_public(ctx: Ctx) -> Result<Response, Fail> {
    new_form(ctx, true).await
}

pub(crate) fn forbidden(message: &str) -> Fail {
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
    let grants = parse_grants(form.get("grants"))?;
    if !grants.is_empty() {
        b.insert("grants".into(), json!(grants));
    }
    let limits = parse_limits(form.get("ratelimits"), &[])?;
    if !limits.is_empty() {
        b.insert("ratelimits".into(), json!(limits));
    }
    if let Some(c) = parse_credits(form.get("credits"), form.get("refill"), "", 1)? {
        b.insert("credits".into(), json!(c));
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
            let roles = roles_offered(&ctx, &form.all("roles")).await?;
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
                grants: form.get("grants").into(),
            };
            let status = e.status();
            let page = NewPage {
                c: Chrome::new(&ctx, "keys"),
                public,
                mfa: ctx.me.mfa_enabled,
                d,
                default_expiry: default_expiry(),
                err: Problem::of(&e),
            };
            let mut resp = render(&page)?;
            *resp.status_mut() = status;
            Ok(resp)
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn created(ctx: &Ctx, key: KeyView) -> Result<Response, Fail> {
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
