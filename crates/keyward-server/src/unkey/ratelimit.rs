//! `ratelimit.limit` and `ratelimit.multiLimit` over `POST /v1/ratelimit` (same GCRA, Redis
//! sharing and overrides).

use axum::body::Bytes;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use keyward_core::wire::ratelimit::LimitAnswer;

use super::{parse, Ctx, UnkeyError, V2};

#[derive(Clone, Deserialize, Serialize)]
pub(super) struct Limit {
    namespace: String,
    identifier: String,
    limit: u64,
    duration: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cost: Option<u64>,
}

async fn check(v2: &V2, ctx: &Ctx, req: &Limit) -> Result<LimitAnswer, UnkeyError> {
    let body = serde_json::to_value(req).map_err(|e| super::internal(&e))?;
    v2.call(ctx, Method::POST, "/v1/ratelimit", Some(body)).await?.json()
}

pub(super) async fn limit(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: Limit = parse(&body)?;
    let a = check(&v2, &ctx, &req).await?;
    let mut data = json!({"limit": a.limit, "remaining": a.remaining, "reset": a.reset, "success": a.success});
    if let Some(id) = a.override_id {
        data["overrideId"] = id.into();
    }
    Ok(data)
}

/// At most this many limits in one call (each is one native check).
const MAX_MULTI: usize = 100;

pub(super) async fn multi_limit(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let reqs: Vec<Limit> = parse(&body)?;
    if reqs.is_empty() || reqs.len() > MAX_MULTI {
        return Err(UnkeyError::invalid("body", "between 1 and 100 limits"));
    }
    // Each limit is checked and spent on its own, in order: one refused does not undo the
    // others (docs/UNKEY.md).
    let mut limits = Vec::with_capacity(reqs.len());
    let mut passed = true;
    for (i, r) in reqs.iter().enumerate() {
        let a = check(&v2, &ctx, r).await.map_err(|e| at(e, i))?;
        passed &= a.success;
        let mut one = json!({"namespace": r.namespace, "identifier": r.identifier, "limit": a.limit,
            "remaining": a.remaining, "reset": a.reset, "passed": a.success});
        if let Some(id) = a.override_id {
            one["overrideId"] = id.into();
        }
        limits.push(one);
    }
    Ok(json!({"passed": passed, "limits": limits}))
}

/// A refusal of the `i`th limit, located at it.
fn at(e: UnkeyError, i: usize) -> UnkeyError {
    e.located(&format!("body[{i}]"))
}
