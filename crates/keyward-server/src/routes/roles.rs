//! Workspace roles: list, create, show, change, delete. The six member roles are roles too;
//! their permissions can be set but they cannot be deleted.

use keyward_core::approval_change::ApprovalChange;
use keyward_core::audit_action::AuditAction;
use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use keyward_core::permissions::permission_covers;
use keyward_core::roles::{Action, Role, ALL_ROLES};
use keyward_core::validate;
use keyward_core::wire::roles::{CreateRoleRequest, RoleList, RoleView, UpdateRoleRequest};
use keyward_store::{RoleDeletion, StoredRole};

use crate::audit::{target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::escalation::Gift;
use crate::extract::{ApiJson, Caller};
use crate::quorum::approval_for;
use crate::state::{AppState, SharedState};

fn view(r: &StoredRole, holders: &BTreeMap<String, u64>) -> RoleView {
    let member_role = Role::parse(&r.name).is_some();
    RoleView {
        name: r.name.clone(),
        description: r.description.clone(),
        permissions: r.permissions.clone(),
        member_role,
        keys: holders.get(&r.name).copied().unwrap_or(0),
        // A member role's row appears only once something was set on it.
        created_at: Some(r.created_at).filter(|_| !member_role || r.permissions.is_some()),
        updated_at: Some(r.updated_at).filter(|_| !member_role || r.permissions.is_some()),
        approval_id: r.approval_id.clone(),
    }
}

/// A member role as it reads before anything is set on it.
fn unset_member_role(role: Role, now: chrono::DateTime<chrono::Utc>) -> StoredRole {
    StoredRole {
        name: role.as_str().into(),
        description: format!("the {role} member role"),
        permissions: None,
        created_at: now,
        updated_at: now,
        approval_id: None,
    }
}

/// The role `name` (a member role always exists), or 404.
async fn find(state: &AppState, workspace_id: &str, name: &str) -> ApiResult<StoredRole> {
    if let Some(r) = state.store.get_role(workspace_id, name).await? {
        return Ok(r);
    }
    Role::parse(name)
        .map(|r| unset_member_role(r, state.clock.now()))
        .ok_or_else(|| ApiError::NotFound(format!("no role named {name:?}")))
}

#[utoipa::path(get, path = "/v1/roles", tag = "roles",
    responses((status = 200, description = "member roles first (by rank), then the workspace's own", body = RoleList)),
    security(("management_key" = [])))]
pub async fn list_roles(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<RoleList>> {
    let ws = &caller.0.workspace_id;
    let stored = state.store.list_roles(ws).await?;
    let holders = state.store.role_holders(ws).await?;
    let now = state.clock.now();
    let mut items: Vec<RoleView> = ALL_ROLES
        .iter()
        .map(|m| {
            let r = stored.iter().find(|r| r.name == m.as_str()).cloned().unwrap_or_else(|| unset_member_role(*m, now));
            view(&r, &holders)
        })
        .collect();
    items.extend(stored.iter().filter(|r| Role::parse(&r.name).is_none()).map(|r| view(r, &holders)));
    Ok(Json(RoleList { items }))
}

#[utoipa::path(post, path = "/v1/roles", tag = "roles", request_body = CreateRoleRequest,
    responses((status = 201, body = RoleView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn create_role(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<CreateRoleRequest>,
) -> ApiResult<(StatusCode, Json<RoleView>)> {
    caller.require(Action::ManageRoles)?;
    let p = &caller.0;
    let name = validate::role_name("name", &req.name)?;
    if Role::parse(&name).is_some() {
        return Err(ApiError::Conflict {
            field: Some("name".into()),
            message: format!("{name} is a member role; change it with PATCH /v1/roles/{name}"),
        });
    }
    let description = validate::description(req.description.as_deref())?;
    let permissions = validate::permission_list("permissions", &req.permissions)?;
    state.may_give(&p.workspace_id, p.role, Gift { permissions: &permissions, ..Gift::default() }).await?;
    let now = state.clock.now();
    let role = StoredRole {
        name,
        description,
        permissions: Some(permissions),
        created_at: now,
        updated_at: now,
        approval_id: None,
    };
    let what = serde_json::json!({"permissions": role.permissions, "description": role.description});
    let audit = caller.audit(&origin, AuditAction::RoleCreate, target("role", &role.name, None), what);
    let taken_off = state.store.create_role(&p.workspace_id, &role, &audit).await?;
    taken_off.iter().for_each(|k| state.forget(k));
    // No key holds it (any that named it had the name taken off above); cached fills that
    // read the role as missing are re-derived all the same.
    state.rederive_role(&p.workspace_id, &role.name).await;
    let holders = state.store.role_holders(&p.workspace_id).await?;
    Ok((StatusCode::CREATED, Json(view(&role, &holders))))
}

#[utoipa::path(get, path = "/v1/roles/{name}", tag = "roles", params(("name" = String, Path)),
    responses((status = 200, body = RoleView), (status = 404, body = ErrorBody)), security(("management_key" = [])))]
pub async fn get_role(
    State(state): State<SharedState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<RoleView>> {
    let r = find(&state, &caller.0.workspace_id, &name).await?;
    let holders = state.store.role_holders(&caller.0.workspace_id).await?;
    Ok(Json(view(&r, &holders)))
}

/// Does `new` grant anything `old` did not (an unset role grants nothing)?
pub(crate) fn widens(old: Option<&[String]>, new: &[String]) -> bool {
    let old = old.unwrap_or_default();
    new.iter().any(|p| !old.iter().any(|g| permission_covers(g, p)))
}

#[utoipa::path(patch, path = "/v1/roles/{name}", tag = "roles", params(("name" = String, Path)),
    request_body = UpdateRoleRequest,
    responses((status = 200, description = "changed, or (with `approval_id`) waiting on approval under policy `role.update`", body = RoleView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn update_role(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<UpdateRoleRequest>,
) -> ApiResult<Json<RoleView>> {
    caller.require(Action::ManageRoles)?;
    let p = &caller.0;
    let current = find(&state, &p.workspace_id, &name).await?;
    if let Some(member_role) = Role::parse(&name) {
        if !p.role.may_grant(member_role) {
            return Err(ApiError::Forbidden(format!("a {} cannot change the {member_role} role", p.role)));
        }
    }
    let description = req.description.as_deref().map(|d| validate::description(Some(d))).transpose()?;
    let permissions = req.permissions.as_deref().map(|l| validate::permission_list("permissions", l)).transpose()?;
    if let Some(perms) = &permissions {
        state.may_give(&p.workspace_id, p.role, Gift { permissions: perms, ..Gift::default() }).await?;
    }
    let now = state.clock.now();
    let widening = permissions.as_deref().is_some_and(|n| widens(current.permissions.as_deref(), n));
    let change = ApprovalChange::RoleUpdate { permissions: permissions.clone(), description: description.clone() };
    let to = change.payload();
    let before = crate::audit::before(
        &serde_json::json!({"permissions": current.permissions, "description": current.description}),
        &to,
    );
    let what = serde_json::json!({"from": current.permissions, "to": to, "before": before});
    let audit = caller.audit(&origin, AuditAction::RoleUpdate, target("role", &name, None), what);
    if widening {
        if let Some(a) = approval_for(&state, &caller, change, &name).await? {
            let audit = audit.with(AuditAction::ApprovalRequest, target("approval", &a.id, None), a.change.payload());
            state.store.request_role_update(&a, &current, &audit).await?;
            let holders = state.store.role_holders(&p.workspace_id).await?;
            return Ok(Json(view(&StoredRole { approval_id: Some(a.id), ..current }, &holders)));
        }
    }
    let updated = state
        .store
        .update_role(&p.workspace_id, &current, description.as_deref(), permissions.as_deref(), now, &audit)
        .await?;
    state.rederive_role(&p.workspace_id, &name).await;
    let holders = state.store.role_holders(&p.workspace_id).await?;
    Ok(Json(view(&updated, &holders)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteRoleParams {
    /// `true`: delete a role keys still hold, taking it off them.
    pub force: Option<bool>,
}

#[utoipa::path(delete, path = "/v1/roles/{name}", tag = "roles", params(("name" = String, Path), DeleteRoleParams),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody),
        (status = 409, description = "in use (keys or service accounts hold it), or a member role", body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn delete_role(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(name): Path<String>,
    params: Result<Query<DeleteRoleParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<StatusCode> {
    let Query(params) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    caller.require(Action::ManageRoles)?;
    let ws = &caller.0.workspace_id;
    if Role::parse(&name).is_some() {
        return Err(ApiError::Conflict {
            field: None,
            message: format!("{name} is a member role and cannot be deleted"),
        });
    }
    let force = params.force.unwrap_or(false);
    let audit = caller.audit(
        &origin,
        AuditAction::RoleDelete,
        target("role", &name, None),
        serde_json::json!({"force": force}),
    );
    let now = state.clock.now();
    match state.store.delete_role(ws, &name, force, now, &audit).await? {
        RoleDeletion::NotFound => Err(ApiError::NotFound(format!("no role named {name:?}"))),
        RoleDeletion::InUse { keys, accounts } => {
            // Refused deletions are on the record too.
            let what = serde_json::json!({"force": force, "refused": true, "keys": keys, "service_accounts": accounts});
            state.store.record(ws, &audit.with(AuditAction::RoleDelete, audit.target.clone(), what), now).await?;
            let message = if accounts > 0 {
                format!("{accounts} service account(s) have this role; give them another role first")
            } else {
                format!("{keys} key(s) hold this role; delete with ?force=true to take it off them")
            };
            Err(ApiError::Conflict { field: None, message })
        }
        RoleDeletion::Deleted { changed_keys } => {
            changed_keys.iter().for_each(|k| state.forget(k));
            state.rederive_role(ws, &name).await;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
