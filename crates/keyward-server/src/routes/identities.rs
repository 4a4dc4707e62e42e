//! Identities (docs/IDENTITIES.md): `POST|GET /v1/identities`, `GET|PATCH|DELETE
//! /v1/identities/{id}` where `{id}` is the identity's id or its `external_id`. A change is
//! in force on every node within a second (the `idn:` change event drops its keys' cached
//! copies; this node drops them before answering).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use keyward_core::audit_action::AuditAction;
use keyward_core::identity::{IdentityChanges, IdentityRecord, ID_PREFIX};
use keyward_core::ids;
use keyward_core::roles::Action;
use keyward_core::wire::identities::{CreateIdentityRequest, IdentityList, IdentityView, UpdateIdentityRequest};
use keyward_store::IdentityFilter;

use crate::audit::{target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::state::{AppState, SharedState};

/// What the audit trail records of an identity (its meta is the operator's data: only its
/// size).
fn settings(i: &IdentityRecord) -> serde_json::Value {
    let view = i.view();
    serde_json::json!({"external_id": i.external_id, "ratelimits": view.ratelimits, "credits": view.credits})
}

impl AppState {
    /// The id of the identity with `external_id` in `workspace_id`, or the id the key's
    /// transaction will create it under (derived as the store derives it).
    pub(crate) async fn identity_for(
        &self,
        workspace_id: &str,
        external_id: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<String> {
        Ok(match self.store.identity_id_of(workspace_id, external_id).await? {
            Some(id) => id,
            None => ids::derived_id(ID_PREFIX, now, format!("{workspace_id}\0{external_id}").as_bytes()),
        })
    }
}

/// The caller's workspace's identity by id or `external_id`, or 404.
async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<IdentityRecord> {
    let missing = || ApiError::NotFound(format!("no identity with id or external_id {id:?}"));
    if id.is_empty() || id.len() > keyward_core::validate::MAX_EXTERNAL_ID {
        return Err(missing());
    }
    state.store.get_identity(&caller.0.workspace_id, id).await?.ok_or_else(missing)
}

#[utoipa::path(post, path = "/v1/identities", tag = "identities", request_body = CreateIdentityRequest,
    responses((status = 201, description = "created", body = IdentityView),
        (status = 400, description = "`field` names `external_id`, `meta`, `ratelimits[i]…` or `credits…`", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "an identity with this `external_id` exists (`field` `external_id`)", body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn create_identity(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<CreateIdentityRequest>,
) -> ApiResult<(StatusCode, Json<IdentityView>)> {
    caller.require(Action::ManageIdentities)?;
    let now = state.clock.now();
    let id = ids::new_id(ID_PREFIX, now, state.random.as_ref());
    let identity = IdentityRecord::create(&req, id, &caller.0.workspace_id, now)?;
    let audit = caller.audit(
        &origin,
        AuditAction::IdentityCreate,
        target("identity", &identity.id, Some(&identity.external_id)),
        settings(&identity),
    );
    state.store.insert_identity(&identity, &audit).await?;
    Ok((StatusCode::CREATED, Json(identity.view())))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IdentityListParams {
    /// Only the identity with this external id.
    pub external_id: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/identities", tag = "identities", params(IdentityListParams),
    responses((status = 200, description = "newest first", body = IdentityList), (status = 400, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn list_identities(
    State(state): State<SharedState>,
    caller: Caller,
    params: Result<Query<IdentityListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<IdentityList>> {
    let Query(p) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    let limit = super::paging::limit(p.limit.as_deref())?;
    let cursor = super::paging::cursor(p.cursor.as_deref(), "idn_")?.map(str::to_string);
    let external_id =
        p.external_id.as_deref().map(|x| keyward_core::validate::external_id("external_id", x)).transpose()?;
    let f = IdentityFilter { external_id, cursor, limit };
    let rows = state.store.list_identities(&caller.0.workspace_id, &f).await?;
    let (rows, next_cursor) = super::paging::page(rows, limit, |i| i.id.as_str());
    Ok(Json(IdentityList { items: rows.iter().map(IdentityRecord::view).collect(), next_cursor }))
}

#[utoipa::path(get, path = "/v1/identities/{id}", tag = "identities",
    params(("id" = String, Path, description = "the identity's id, or its external_id")),
    responses((status = 200, body = IdentityView), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn get_identity(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<IdentityView>> {
    Ok(Json(find(&state, &caller, &id).await?.view()))
}

#[utoipa::path(patch, path = "/v1/identities/{id}", tag = "identities",
    params(("id" = String, Path, description = "the identity's id, or its external_id")),
    request_body = UpdateIdentityRequest,
    responses((status = 200, description = "changed; in force for its keys on every node within a second", body = IdentityView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn update_identity(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateIdentityRequest>,
) -> ApiResult<Json<IdentityView>> {
    caller.require(Action::ManageIdentities)?;
    let now = state.clock.now();
    let changes = IdentityChanges::check(&req, now)?;
    let current = find(&state, &caller, &id).await?;
    if changes.is_empty() {
        return Ok(Json(current.view()));
    }
    let payload = serde_json::json!({
        "meta": changes.meta.is_some(), "ratelimits": req.ratelimits, "credits": req.credits,
    });
    let audit = caller.audit(
        &origin,
        AuditAction::IdentityUpdate,
        target("identity", &current.id, Some(&current.external_id)),
        payload,
    );
    let missing = || ApiError::NotFound(format!("no identity with id or external_id {id:?}"));
    let updated = state
        .store
        .update_identity(&caller.0.workspace_id, &current.id, &changes, now, &audit)
        .await?
        .ok_or_else(missing)?;
    state.cache.evict_identity(&updated.id);
    Ok(Json(updated.view()))
}

#[utoipa::path(delete, path = "/v1/identities/{id}", tag = "identities",
    params(("id" = String, Path, description = "the identity's id, or its external_id")),
    responses((status = 200, description = "deleted; its keys keep working without it", body = IdentityView),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn delete_identity(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Json<IdentityView>> {
    caller.require(Action::ManageIdentities)?;
    let now = state.clock.now();
    let current = find(&state, &caller, &id).await?;
    let audit = caller.audit(
        &origin,
        AuditAction::IdentityDelete,
        target("identity", &current.id, Some(&current.external_id)),
        serde_json::json!({}),
    );
    let missing = || ApiError::NotFound(format!("no identity with id or external_id {id:?}"));
    let deleted =
        state.store.delete_identity(&caller.0.workspace_id, &current.id, now, &audit).await?.ok_or_else(missing)?;
    state.cache.evict_identity(&deleted.id);
    Ok(Json(deleted.view()))
}
