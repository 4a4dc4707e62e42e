//! Rate limiting as a service: `POST /v1/ratelimit` (limits not about keys: logins, SMS,
//! addresses; the counting is `limits/service.rs`), and the overrides per identifier,
//! `POST|GET /v1/ratelimit/overrides`, `DELETE /v1/ratelimit/overrides/{id}`.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use keyward_core::audit_action::AuditAction;
use keyward_core::ids;
use keyward_core::ratelimit_service::{self, check_override, check_request, MAX_OVERRIDES, MAX_PATTERNS};
use keyward_core::roles::Action;
use keyward_core::wire::ratelimit::{LimitAnswer, LimitRequest, OverrideList, OverrideRequest, OverrideView};
use keyward_store::{OverrideWrite, RatelimitOverride};

use crate::audit::{target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;

const ID_PREFIX: &str = "rlo";

fn view(o: RatelimitOverride) -> OverrideView {
    OverrideView {
        id: o.id,
        namespace: o.namespace,
        identifier: o.identifier,
        limit: u64::from(o.limit),
        duration: o.duration_ms,
        created_at: o.created_at,
        updated_at: o.updated_at,
    }
}

#[utoipa::path(post, path = "/v1/ratelimit", tag = "ratelimit", request_body = LimitRequest,
    responses((status = 200, description = "`success` says whether the request fits; it was counted when it did", body = LimitAnswer),
        (status = 400, description = "`field` names `namespace`, `identifier`, `limit`, `duration` or `cost`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn limit(
    State(state): State<SharedState>,
    caller: Caller,
    ApiJson(req): ApiJson<LimitRequest>,
) -> ApiResult<Json<LimitAnswer>> {
    let checked = check_request(&req)?;
    // Looking (cost 0) spends nothing: any member may; spending takes a role that may.
    caller.require(if checked.cost == 0 { Action::Read } else { Action::Ratelimit })?;
    Ok(Json(crate::limits::service::check(&state, &caller.0.workspace_id, &checked).await?))
}

#[utoipa::path(post, path = "/v1/ratelimit/overrides", tag = "ratelimit", request_body = OverrideRequest,
    responses((status = 200, description = "set: a new override, or the identifier's existing one replaced (same id); in force on every node", body = OverrideView),
        (status = 400, description = "`field` names `namespace`, `identifier`, `limit` or `duration`", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "the namespace holds the most overrides allowed (`field` `identifier`)", body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn set_override(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<OverrideRequest>,
) -> ApiResult<Json<OverrideView>> {
    let limit = check_override(&req)?;
    caller.require(Action::ManageRatelimits)?;
    let now = state.clock.now();
    let p = &caller.0;
    let o = RatelimitOverride {
        id: ids::new_id(ID_PREFIX, now, state.random.as_ref()),
        workspace_id: p.workspace_id.clone(),
        namespace: req.namespace,
        identifier: req.identifier,
        limit: limit.limit,
        duration_ms: limit.duration_ms,
        created_by: Some(p.member_id.clone()),
        created_at: now,
        updated_at: now,
    };
    let what = serde_json::json!({
        "namespace": o.namespace, "identifier": o.identifier, "limit": o.limit, "duration": o.duration_ms
    });
    let audit =
        caller.audit(&origin, AuditAction::RatelimitOverrideSet, target("ratelimit_override", &o.id, None), what);
    let stored = match state.store.set_ratelimit_override(&o, &audit).await? {
        OverrideWrite::Set(stored) => stored,
        OverrideWrite::Full => {
            return Err(ApiError::Conflict {
                field: Some("identifier".into()),
                message: format!(
                    "a namespace holds at most {MAX_OVERRIDES} overrides, {MAX_PATTERNS} of them patterns with '*'"
                ),
            })
        }
    };
    // This node answers with it at once; the others on the change event.
    state.service_limits.forget_overrides(&p.workspace_id);
    Ok(Json(view(stored)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverrideListParams {
    /// Only this namespace's overrides.
    pub namespace: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/ratelimit/overrides", tag = "ratelimit", params(OverrideListParams),
    responses((status = 200, description = "by id", body = OverrideList), (status = 400, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn list_overrides(
    State(state): State<SharedState>,
    caller: Caller,
    params: Result<Query<OverrideListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<OverrideList>> {
    let Query(p) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    let namespace = p.namespace.as_deref().map(|n| ratelimit_service::name("namespace", n)).transpose()?;
    let limit = super::paging::limit(p.limit.as_deref())?;
    let cursor = super::paging::cursor(p.cursor.as_deref(), "rlo_")?;
    let rows = state.store.list_ratelimit_overrides(&caller.0.workspace_id, namespace, cursor, limit + 1).await?;
    let (rows, next_cursor) = super::paging::page(rows, limit, |o| o.id.as_str());
    Ok(Json(OverrideList { items: rows.into_iter().map(view).collect(), next_cursor }))
}

#[utoipa::path(delete, path = "/v1/ratelimit/overrides/{id}", tag = "ratelimit", params(("id" = String, Path)),
    responses((status = 200, description = "deleted, on every node; the identifier's requests name their own limit again", body = OverrideView),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn delete_override(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Json<OverrideView>> {
    caller.require(Action::ManageRatelimits)?;
    let missing = || ApiError::NotFound(format!("no rate limit override with id {id:?}"));
    if !ids::is_id(ID_PREFIX, &id) {
        return Err(missing());
    }
    let ws = &caller.0.workspace_id;
    let audit = caller.audit(
        &origin,
        AuditAction::RatelimitOverrideDelete,
        target("ratelimit_override", &id, None),
        serde_json::json!({}),
    );
    let o = state.store.delete_ratelimit_override(ws, &id, state.clock.now(), &audit).await?.ok_or_else(missing)?;
    state.service_limits.forget_overrides(ws);
    Ok(Json(view(o)))
}
