//! The operator's API (docs/OPERATORS.md), for the holder of an operator token (`kw_op_…`)
//! and nobody else: `POST|GET /v1/workspaces`, `GET|PATCH|DELETE /v1/workspaces/{id}`,
//! `POST /v1/workspaces/{id}/suspend|resume`, `GET /v1/operator/log`. A suspension or a
//! deletion is in force on this node before the answer and on every other within a second
//! (the `ws:` change event); a deleted workspace's data is erased in the background.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use keyward_core::operator_action::OperatorAction;
use keyward_core::random::base62_string;
use keyward_core::standing::Standing;
use keyward_core::wire::operators::{
    NewWorkspaceRequest, OperatorLog, OwnerSetup, ProvisionedWorkspace, SuspendRequest, WorkspaceChanges,
    WorkspaceList, WorkspaceView,
};
use keyward_core::{ids, keyformat, validate};
use keyward_store::{NewWorkspace, StandingFilter, Workspace};

use crate::audit::RequestOrigin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Operator};
use crate::state::SharedState;

/// The prefix of a workspace provisioned without one.
const DEFAULT_PREFIX: &str = "kw";

fn view(w: Workspace) -> WorkspaceView {
    WorkspaceView {
        status: w.standing().as_str().to_string(),
        id: w.id,
        name: w.name,
        prefix: w.prefix,
        created_at: w.created_at,
        suspended_at: w.suspended_at,
        suspend_reason: w.suspend_reason,
        deleted_at: w.deleted_at,
        erased_at: w.erased_at,
        keys: w.keys,
    }
}

fn missing(id: &str) -> ApiError {
    ApiError::NotFound(format!("no workspace with id {id:?}"))
}

#[utoipa::path(post, path = "/v1/workspaces", tag = "operators", request_body = NewWorkspaceRequest,
    responses((status = 201, description = "provisioned; `owner.setup_token` is shown only here", body = ProvisionedWorkspace),
        (status = 400, description = "`field` names `name`, `prefix` or `owner_email`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "a workspace's credential", body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn create_workspace(
    State(state): State<SharedState>,
    operator: Operator,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<NewWorkspaceRequest>,
) -> ApiResult<(StatusCode, Json<ProvisionedWorkspace>)> {
    let name = validate::name(&req.name)?;
    let prefix = validate::prefix(req.prefix.as_deref().unwrap_or(DEFAULT_PREFIX))?;
    let email = validate::email(&req.owner_email)
        .map_err(|_| ApiError::invalid("owner_email", "owner_email must be an email address"))?;
    let now = state.clock.now();
    let rng = state.random.as_ref();
    // The owner sets a password as an invited member does: `POST /v1/members/setup`.
    let setup_token = format!("{prefix}_setup_{}", base62_string(rng, keyformat::RANDOM_LEN));
    let expires = now + chrono::Duration::from_std(state.config.invite_ttl).unwrap_or(chrono::Duration::days(7));
    let ws = NewWorkspace {
        id: ids::new_id("ws", now, rng),
        name,
        prefix,
        owner_id: ids::new_id("mem", now, rng),
        owner_email: email,
        created_at: now,
    };
    let rec = operator.record(&state, &origin, OperatorAction::WorkspaceCreate).about(&ws.id).with_changes(json!({
        "name": ws.name, "prefix": ws.prefix, "owner_id": ws.owner_id, "owner_email": ws.owner_email,
    }));
    state.store.provision_workspace(&ws, &state.pepper.hash(&setup_token), expires, &rec).await?;
    let owner = OwnerSetup { member_id: ws.owner_id, email: ws.owner_email, setup_token, setup_expires_at: expires };
    Ok((StatusCode::CREATED, Json(ProvisionedWorkspace { id: ws.id, name: ws.name, prefix: ws.prefix, owner })))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkspaceListParams {
    /// 1-200, default 50.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only workspaces that are `active`, `suspended` or `deleted`.
    pub status: Option<String>,
}

#[utoipa::path(get, path = "/v1/workspaces", tag = "operators", params(WorkspaceListParams),
    responses((status = 200, description = "oldest first, each with its key counts and status", body = WorkspaceList),
        (status = 400, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn list_workspaces(
    State(state): State<SharedState>,
    _operator: Operator,
    params: Result<Query<WorkspaceListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<WorkspaceList>> {
    let Query(p) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    let limit = super::paging::limit(p.limit.as_deref())?;
    let cursor = super::paging::cursor(p.cursor.as_deref(), "ws_")?;
    let filter = match p.status.as_deref() {
        None => StandingFilter::Any,
        Some("active") => StandingFilter::Only(Standing::Active),
        Some("suspended") => StandingFilter::Only(Standing::Suspended),
        Some("deleted") => StandingFilter::Only(Standing::Deleted),
        Some(other) => {
            return Err(ApiError::invalid(
                "status",
                format!("unknown status {other:?}: use active, suspended or deleted"),
            ))
        }
    };
    let rows = state.store.list_workspaces(filter, cursor, limit, state.clock.now()).await?;
    let (rows, next_cursor) = super::paging::page(rows, limit, |w| w.id.as_str());
    Ok(Json(WorkspaceList { items: rows.into_iter().map(view).collect(), next_cursor }))
}

#[utoipa::path(get, path = "/v1/workspaces/{id}", tag = "operators", params(("id" = String, Path)),
    responses((status = 200, body = WorkspaceView), (status = 404, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn get_workspace(
    State(state): State<SharedState>,
    _operator: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    let w = state.store.get_workspace(&id, state.clock.now()).await?.ok_or_else(|| missing(&id))?;
    Ok(Json(view(w)))
}

#[utoipa::path(patch, path = "/v1/workspaces/{id}", tag = "operators", params(("id" = String, Path)),
    request_body = WorkspaceChanges,
    responses((status = 200, body = WorkspaceView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the workspace is deleted", body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn update_workspace(
    State(state): State<SharedState>,
    operator: Operator,
    origin: RequestOrigin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<WorkspaceChanges>,
) -> ApiResult<Json<WorkspaceView>> {
    let now = state.clock.now();
    let Some(name) = req.name.as_deref().map(validate::name).transpose()? else {
        // Nothing to change.
        return get_workspace(State(state), operator, Path(id)).await;
    };
    let rec = operator
        .record(&state, &origin, OperatorAction::WorkspaceUpdate)
        .about(&id)
        .with_changes(json!({"name": name}));
    let w = state.store.rename_workspace(&id, &name, &rec, now).await?.ok_or_else(|| missing(&id))?;
    Ok(Json(view(w)))
}

#[utoipa::path(post, path = "/v1/workspaces/{id}/suspend", tag = "operators", params(("id" = String, Path)),
    request_body = SuspendRequest,
    responses((status = 200, description = "suspended: its keys answer `SUSPENDED` on every node within a second, \
        its members may only read, its webhooks get `workspace.suspended`", body = WorkspaceView),
        (status = 400, description = "`field` names `reason`", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "suspended already, or deleted", body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn suspend_workspace(
    State(state): State<SharedState>,
    operator: Operator,
    origin: RequestOrigin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SuspendRequest>,
) -> ApiResult<Json<WorkspaceView>> {
    let reason = validate::reason(&req.reason)?;
    let rec = operator
        .record(&state, &origin, OperatorAction::WorkspaceSuspend)
        .about(&id)
        .with_changes(json!({"reason": reason}));
    let w = state.store.suspend_workspace(&id, &reason, &rec, state.clock.now()).await?.ok_or_else(|| missing(&id))?;
    state.restand(&id).await;
    Ok(Json(view(w)))
}

#[utoipa::path(post, path = "/v1/workspaces/{id}/resume", tag = "operators", params(("id" = String, Path)),
    responses((status = 200, description = "resumed: its keys verify again on every node within a second, its \
        webhooks get `workspace.resumed`", body = WorkspaceView),
        (status = 404, body = ErrorBody), (status = 409, description = "not suspended, or deleted", body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn resume_workspace(
    State(state): State<SharedState>,
    operator: Operator,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    let rec = operator.record(&state, &origin, OperatorAction::WorkspaceResume).about(&id).with_changes(json!({}));
    let w = state.store.resume_workspace(&id, &rec, state.clock.now()).await?.ok_or_else(|| missing(&id))?;
    state.restand(&id).await;
    Ok(Json(view(w)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// `true` deletes a workspace that still has live keys.
    pub force: Option<String>,
}

#[utoipa::path(delete, path = "/v1/workspaces/{id}", tag = "operators", params(("id" = String, Path), DeleteParams),
    responses((status = 202, description = "deleted: its keys are not found and its credentials refused at once; \
        its data is erased in the background (`erased_at` then set; its audit checkpoint kept)", body = WorkspaceView),
        (status = 400, description = "`field` names `force`", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "it has live keys (without `force=true`), or is deleted already", body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn delete_workspace(
    State(state): State<SharedState>,
    operator: Operator,
    origin: RequestOrigin,
    Path(id): Path<String>,
    params: Result<Query<DeleteParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    let Query(p) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    let force = match p.force.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("force", "force must be true or false")),
    };
    let rec = operator.record(&state, &origin, OperatorAction::WorkspaceDelete).about(&id);
    let w = state.store.delete_workspace(&id, force, &rec, state.clock.now()).await?.ok_or_else(|| missing(&id))?;
    state.restand(&id).await;
    // Never on the request: the answer goes now, the rows after.
    tokio::spawn(crate::manage::erasure::erase_after_grace(state.clone(), id));
    Ok((StatusCode::ACCEPTED, Json(view(w))))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OperatorLogParams {
    /// 1-200, default 50.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only what was done to this workspace.
    pub workspace_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/operator/log", tag = "operators", params(OperatorLogParams),
    responses((status = 200, description = "what operators did, newest first", body = OperatorLog),
        (status = 400, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn operator_log(
    State(state): State<SharedState>,
    _operator: Operator,
    params: Result<Query<OperatorLogParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<OperatorLog>> {
    let Query(p) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    let limit = super::paging::limit(p.limit.as_deref())?;
    let cursor = super::paging::cursor(p.cursor.as_deref(), "opl_")?;
    let rows = state.store.operator_log(p.workspace_id.as_deref(), cursor, limit).await?;
    let (items, next_cursor) = super::paging::page(rows, limit, |e| e.id.as_str());
    Ok(Json(OperatorLog { items, next_cursor }))
}
