//! The workspace's policy: approvals per key action and who gives them, key lifetimes,
//! required MFA. Members who may not change it see it read-only.

use askama::Template;
use axum::http::Method;
use axum::response::Response;
use keyward_core::policy::{Approvals, Policy};
use keyward_core::roles::ALL_ROLES;
use serde_json::{json, Map, Value};

use super::back_to;
use crate::error::Fail;
use crate::form::Form;
use crate::session::Ctx;
use crate::view::Chrome;

pub(crate) struct Rule {
    key: &'static str,
    label: &'static str,
    approvals: String,
    roles: Vec<(&'static str, bool)>,
}

#[derive(Template)]
#[template(path = "policies.html")]
struct PolicyPage {
    c: Chrome,
    rules: Vec<Rule>,
    p: Policy,
    max_lifetime: String,
}

const RULES: [(&str, &str); 4] = [
    ("key.create", "Creating a key"),
    ("key.update", "Changing a key"),
    ("key.revoke", "Revoking a key"),
    ("key.rotate", "Rotating a key"),
];

pub(crate) async fn page(ctx: Ctx) -> Result<Response, Fail> {
    let p: Policy = ctx.get("/v1/policies").await?;
    let rules = RULES
        .iter()
        .map(|(key, label)| {
            let rule = match *key {
                "key.create" => &p.key_create,
                "key.update" => &p.key_update,
                "key.revoke" => &p.key_revoke,
                _ => &p.key_rotate,
            };
            Rule {
                key,
                label,
                approvals: match rule.approvals {
                    Approvals::Count(n) => n.to_string(),
                    Approvals::HalfOfAdmins => "half_of_admins".into(),
                },
                roles: ALL_ROLES.iter().map(|r| (r.as_str(), rule.approver_roles.contains(r))).collect(),
            }
        })
        .collect();
    let max_lifetime = p.max_key_lifetime_days.map(|d| d.to_string()).unwrap_or_default();
    crate::view::render(&PolicyPage { c: Chrome::new(&ctx, "policies"), rules, p, max_lifetime })
}

fn number(form: &Form, field: &str) -> Result<Value, Fail> {
    form.get(field)
        .parse::<u32>()
        .map(|n| json!(n))
        .map_err(|_| Fail::invalid(field, format!("{field} must be a whole number")))
}

pub(crate) async fn save(ctx: Ctx, form: Form) -> Result<Response, Fail> {
    ctx.check(&form)?;
    let mut b = Map::new();
    for (key, _) in RULES {
        let field = format!("{key}.approvals");
        let approvals = match form.get(&field) {
            "half_of_admins" => json!("half_of_admins"),
            _ => number(&form, &field)?,
        };
        b.insert(key.into(), json!({ "approvals": approvals, "approver_roles": form.all(&format!("{key}.roles")) }));
    }
    b.insert("permanent_requires_ip_allowlist".into(), json!(form.checked("permanent_requires_ip_allowlist")));
    b.insert("require_mfa".into(), json!(form.checked("require_mfa")));
    for field in ["temporary_max_days", "approval_expiry_hours", "expiry_warning_days"] {
        b.insert(field.into(), number(&form, field)?);
    }
    // Left out (an older form), the cap stays as it is.
    if form.opt("management_key_max_days").is_some() {
        b.insert("management_key_max_days".into(), number(&form, "management_key_max_days")?);
    }
    let lifetime = match form.opt("max_key_lifetime_days") {
        Some(_) => number(&form, "max_key_lifetime_days")?,
        None => Value::Null,
    };
    b.insert("max_key_lifetime_days".into(), lifetime);
    let answer: Value = ctx.send(Method::PUT, "/v1/policies", &Value::Object(b)).await?;
    // A change that may weaken the policy waits on approvals: show where it waits.
    if answer.get("status").and_then(Value::as_str) == Some("pending") {
        return Ok(back_to("/console/approvals"));
    }
    Ok(back_to("/console/policies"))
}
