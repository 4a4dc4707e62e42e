//! `keys.verifyKey`: the verify hot path (`AppState::verify_secret`) bound to the root key's
//! workspace, always 200 with `data.valid` and `data.code` (`codes.rs`).

use axum::body::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use keyward_core::permissions::Query as PermQuery;
use keyward_core::verify::{Requirements, VerifyCode};
use keyward_core::wire::verify::VerifyResponse;

use super::codes::unkey_code;
use super::{parse, Ctx, UnkeyError, V2};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct VerifyKey {
    key: String,
    permissions: Option<String>,
    credits: Option<Credits>,
    ratelimits: Option<Vec<Value>>,
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
    if req.ratelimits.as_ref().is_some_and(|r| !r.is_empty()) {
        // TODO(identities): named limits and their costs in a verification.
        return Err(UnkeyError::invalid(
            "body.ratelimits",
            "naming limits in a verification is not supported by this server yet; a key's limits all apply",
        ));
    }
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
    let cost = match &req.credits {
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
            cost: Some(cost),
            tags: &tags,
            ratelimits: &[],
        };
        // `Err` only before anything was spent (storage unreachable on a cache miss): the
        // SDK's retry of that 503 cannot charge twice.
        let verdict = v2.state.verify_secret(&req.key, &needs).await.map_err(UnkeyError::from)?;
        // Nothing after the verification may fail: a 5xx now would be retried and charged again.
        let native = serde_json::from_str::<VerifyResponse>(&verdict.to_json())
            .unwrap_or_else(|_| VerifyResponse::bare(verdict.code));
        Ok::<Value, UnkeyError>(answer(native))
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

/// Unkey's `data` from Keyward's answer. A key Unkey would call not found shows nothing.
fn answer(n: VerifyResponse) -> Value {
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
    data
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
