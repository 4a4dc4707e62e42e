//! `keys.verifyKey`: the verify hot path (`AppState::verify_secret`) bound to the root key's
//! workspace, always 200 with `data.valid` and `data.code` (`codes.rs`).

use axum::body::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use axum::http::StatusCode;

use keyward_core::permissions::Query as PermQuery;
use keyward_core::verify::{IdentityLimits, Requirements, VerifyCode};
use keyward_core::wire::verify::{VerifyRatelimit, VerifyResponse};

use super::codes::unkey_code;
use super::shapes::limit_id;
use super::{parse, Ctx, UnkeyError, V2};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct VerifyKey {
    key: String,
    permissions: Option<String>,
    credits: Option<Credits>,
    ratelimits: Option<Vec<NamedLimit>>,
    // Counted per tag in the key's usage, as the native verify's `tags`.
    tags: Option<Vec<String>>,
    // A migration is an import made beforehand (keys.migrateKeys); nothing to do here.
    #[allow(dead_code)]
    migration_id: Option<String>,
}

#[derive(Deserialize)]
struct Credits {
    cost: u64,
}

/// `KeysVerifyKeyRatelimit`: a limit to check by name, at a cost, or (with `limit` and
/// `duration`) made for this request.
#[derive(Deserialize)]
struct NamedLimit {
    name: String,
    cost: Option<u64>,
    limit: Option<u64>,
    duration: Option<u64>,
}

/// Unkey's named limits as the native verify's (`body.ratelimits[i]…` in refusals).
fn named_limits(given: &[NamedLimit]) -> Result<Vec<VerifyRatelimit<'_>>, UnkeyError> {
    let at = |i: usize, f: &str| format!("body.ratelimits[{i}].{f}");
    let small = |i: usize, f: &str, v: Option<u64>| {
        v.map(|v| {
            u32::try_from(v).map_err(|_| UnkeyError::invalid(at(i, f), format!("{f} must be at most 4294967295")))
        })
        .transpose()
    };
    let named = given
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Ok(VerifyRatelimit {
                name: n.name.as_str().into(),
                cost: small(i, "cost", n.cost)?,
                limit: small(i, "limit", n.limit)?,
                duration: n.duration,
            })
        })
        .collect::<Result<Vec<_>, UnkeyError>>()?;
    keyward_core::limit_plan::check_named(&named)
        .map_err(|e| UnkeyError::invalid(format!("body.{}", e.field()), e.to_string()))?;
    Ok(named)
}

/// Unkey's permission query as Keyward's: the same grammar (AND binds tighter than OR,
/// parentheses group), but Unkey reads `and`/`or` in any case, Keyward in capitals.
pub(crate) fn permission_query(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or") {
            out.push_str(&word.to_ascii_uppercase());
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in raw.chars() {
        if c.is_whitespace() || c == '(' || c == ')' {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

pub(super) async fn verify_key(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: VerifyKey = parse(&body)?;
    if req.key.is_empty() || req.key.len() > 512 {
        return Err(UnkeyError::invalid("body.key", "key must be 1-512 characters"));
    }
    let named = named_limits(req.ratelimits.as_deref().unwrap_or_default())?;
    let query = match req.permissions.as_deref() {
        Some(p) if p.is_empty() || p.len() > 1000 => {
            return Err(UnkeyError::invalid("body.permissions", "permissions must be 1-1000 characters"))
        }
        Some(p) => Some(
            PermQuery::parse(&permission_query(p))
                .map_err(|e| UnkeyError::invalid("body.permissions", e.to_string()))?,
        ),
        None => None,
    };
    // Unkey's `credits.cost` is spent of the credits only; each limit spends 1 (or its named cost).
    let credit_cost = match &req.credits {
        None => 1,
        Some(c) => u32::try_from(c.cost)
            .map_err(|_| UnkeyError::invalid("body.credits.cost", "cost must be at most 4294967295"))?,
    };
    let tags: Vec<std::borrow::Cow<str>> = req.tags.iter().flatten().map(|t| t.as_str().into()).collect();
    keyward_core::validate::tags(&tags)
        .map_err(|e| UnkeyError::invalid(format!("body.{}", e.field()), e.to_string()))?;
    let key = ctx.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).filter(|k| (1..=255).contains(&k.len()));
    let verify = || async {
        let needs = Requirements {
            workspace: Some(&ctx.principal.workspace_id),
            environment: None,
            ip: None,
            permissions: query.as_ref(),
            scope: None,
            cost: Some(1),
            credit_cost: Some(credit_cost),
            // Unkey's answers list every limit checked.
            list_limits: true,
            tags: &tags,
            ratelimits: &named,
        };
        // `Err` only before anything was spent (storage unreachable on a cache miss, or a
        // named limit the key does not have): the SDK's retry of that 503 cannot charge twice.
        let verdict = v2.state.verify_secret(&req.key, &needs).await.map_err(unknown_limit)?;
        // Nothing after the verification may fail: a 5xx now would be retried and charged again.
        let native = serde_json::from_str::<VerifyResponse>(&verdict.to_json())
            .unwrap_or_else(|_| VerifyResponse::bare(verdict.code));
        let shared = verdict.key.as_deref().and_then(|k| k.limits.as_deref()).and_then(|l| l.identity.as_deref());
        Ok::<Value, UnkeyError>(answer(native, shared))
    };
    let slot = key.and_then(|k| {
        let who = [ctx.principal.workspace_id.as_str(), ctx.principal.hash.as_str()];
        v2.answered.slot(&who, k, &body, v2.state.clock.now().timestamp_millis())
    });
    match slot {
        Some(slot) => slot.get_or_try_init(verify).await.cloned(),
        None => verify().await,
    }
}

/// A limit named that neither the key nor its identity has: Unkey's precondition failure
/// (412); any other refusal as it is.
fn unknown_limit(e: crate::error::ApiError) -> UnkeyError {
    let (status, _, field, message) = e.parts();
    if status == StatusCode::BAD_REQUEST && field.is_some_and(|f| f.starts_with("ratelimits[") && f.ends_with(".name"))
    {
        return UnkeyError::new(StatusCode::PRECONDITION_FAILED, message);
    }
    UnkeyError::from(e)
}

/// Unkey's `data` from Keyward's answer (and the identity's limits, from the verified
/// key's cached copy). A key Unkey would call not found shows nothing.
fn answer(n: VerifyResponse, shared: Option<&IdentityLimits>) -> Value {
    let code = unkey_code(n.code);
    let mut data = json!({"valid": n.valid, "code": code});
    if code == "NOT_FOUND" {
        return data;
    }
    if let Some(id) = n.key_id {
        data["keyId"] = id.into();
    }
    if let Some(name) = n.name.filter(|s| !s.is_empty()) {
        data["name"] = name.into();
    }
    if let Some(meta) = n.meta.filter(|m| !m.is_empty()) {
        data["meta"] = meta.into();
    }
    if let Some(t) = n.expires_at {
        data["expires"] = t.timestamp_millis().into();
    }
    if let Some(c) = n.credits {
        data["credits"] = c.remaining.into();
    }
    data["enabled"] = (n.code != VerifyCode::Disabled).into();
    if let Some(p) = n.permissions {
        data["permissions"] = p.into();
    }
    if let Some(r) = n.roles {
        data["roles"] = r.into();
    }
    let key_id = data.get("keyId").and_then(Value::as_str).unwrap_or_default().to_string();
    if let Some(i) = n.identity {
        let limits: Vec<Value> = shared
            .filter(|s| *s.id == *i.id)
            .map(|s| s.limits.ratelimits.iter().map(|l| identity_limit(&i.id, l)).collect())
            .unwrap_or_default();
        let mut identity = json!({"id": i.id, "externalId": i.external_id});
        if !i.meta.is_empty() {
            identity["meta"] = i.meta.into();
        }
        if !limits.is_empty() {
            identity["ratelimits"] = limits.into();
        }
        data["identity"] = identity;
    }
    let checked: Vec<Value> = n
        .ratelimits
        .into_iter()
        .flatten()
        .map(|r| {
            // A limit made for this request has no id at Unkey either.
            let id = match r.source.as_str() {
                "key" => limit_id(&key_id, &r.name),
                "identity" => data["identity"]["id"].as_str().map_or_else(String::new, |i| limit_id(i, &r.name)),
                _ => String::new(),
            };
            json!({
                "exceeded": r.exceeded, "id": id, "name": r.name, "limit": r.limit, "duration": r.duration,
                "reset": r.reset, "remaining": r.remaining, "autoApply": r.auto_apply,
            })
        })
        .collect();
    if !checked.is_empty() {
        data["ratelimits"] = checked.into();
    }
    data
}

/// An identity's limit as `RatelimitResponse`.
fn identity_limit(identity: &str, l: &keyward_core::ratelimit::RateLimit) -> Value {
    json!({
        "id": limit_id(identity, &l.name), "name": l.name, "limit": l.limit,
        "duration": l.duration_ms, "autoApply": l.auto_apply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_in_any_case() {
        assert_eq!(permission_query("a.read and (b or c)"), "a.read AND (b OR c)");
        assert_eq!(permission_query("(a Or b)AND c"), "(a OR b)AND c");
        assert_eq!(permission_query("android.read"), "android.read");
    }
}
