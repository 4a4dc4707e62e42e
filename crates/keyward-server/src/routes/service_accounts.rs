//! Service accounts: integration users that cannot log in and own keys. Disabling one stops
//! all its keys at once (`DISABLED`); deleting one revokes them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use keyward_core::approval_change::ApprovalChange;
use keyward_core::audit_action::AuditAction;

use keyward_core::ids;
use keyward_core::roles::{Action, Role};
use keyward_core::validate;
use keyward_core::wire::keys::{CreateKeyRequest, KeyView};
use keyward_core::wire::roles::{
    CreateServiceAccountRequest, ServiceAccountList, ServiceAccountView, UpdateServiceAccountRequest,
};
use keyward_store::{AccountChanges, ServiceAccount};

use crate::audit::{target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::escalation::Gift;
use crate::extract::{ApiJson, Caller, RawBody};
use crate::quorum::approval_for;
use crate::state::{AppState, SharedState};

fn view(a: &ServiceAccount) -> ServiceAccountView {
    ServiceAccountView {
        id: a.id.clone(),
        kind: "service".into(),
        name: a.name.clone(),
        description: a.description.clone(),
        role: a.role.clone(),
        disabled: a.disabled,
        keys: a.keys,
        created_by: a.created_by.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
        approval_id: None,
    }
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<ServiceAccount> {
    state
        .store
        .get_service_account(&caller.0.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no service account with id {id:?}")))
}

/// A role an account may be given by the caller: one that exists, within the caller's reach.
async fn checked_role(state: &AppState, caller: &Caller, raw: &str) -> ApiResult<String> {
    let role = validate::role_name("role", raw)?;
    let exists = Role::parse(&role).is_some() || state.store.get_role(&caller.0.workspace_id, &role).await?.is_some();
    if !exists {
        return Err(ApiError::invalid("role", format!("no role named {role:?}")));
    }
    let roles = [role.clone()];
    state.may_give(&caller.0.workspace_id, caller.0.role, Gift { roles: &roles, ..Gift::default() }).await?;
    Ok(role)
}

#[utoipa::path(post, path = "/v1/service-accounts", tag = "roles", request_body = CreateServiceAccountRequest,
    responses((status = 201, body = ServiceAccountView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn create_service_account(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<CreateServiceAccountRequest>,
) -> ApiResult<(StatusCode, Json<ServiceAccountView>)> {
    caller.require(Action::ManageRoles)?;
    let name = validate::name(&req.name)?;
    let description = validate::description(req.description.as_deref())?;
    let role = checked_role(&state, &caller, &req.role).await?;
    let now = state.clock.now();
    let a = ServiceAccount {
        id: ids::new_id("sa", now, state.random.as_ref()),
        workspace_id: caller.0.workspace_id.clone(),
        name,
        description,
        role,
        disabled: false,
        created_by: Some(caller.0.member_id.clone()),
        created_at: now,
        updated_at: now,
        keys: 0,
    };
    let what = serde_json::json!({"name": a.name, "role": a.role, "description": a.description});
    let audit =
        caller.audit(&origin, AuditAction::ServiceAccountCreate, target("service_account", &a.id, Some(&a.name)), what);
    state.store.create_service_account(&a, &audit).await?;
    Ok((StatusCode::CREATED, Json(view(&a))))
}

#[utoipa::path(get, path = "/v1/service-accounts", tag = "roles",
    responses((status = 200, body = ServiceAccountList)), security(("management_key" = [])))]
pub async fn list_service_accounts(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<ServiceAccountList>> {
    let items = state.store.list_service_accounts(&caller.0.workspace_id).await?;
    Ok(Json(ServiceAccountList { items: items.iter().map(view).collect() }))
}

#[utoipa::path(get, path = "/v1/service-accounts/{id}", tag = "roles", params(("id" = String, Path)),
    responses((status = 200, body = ServiceAccountView), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn get_service_account(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ServiceAccountView>> {
    Ok(Json(view(&find(&state, &caller, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/service-accounts/{id}", tag = "roles", params(("id" = String, Path)),
    request_body = UpdateServiceAccountRequest,
    responses((status = 200, body = ServiceAccountView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn update_service_account(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateServiceAccountRequest>,
) -> ApiResult<Json<ServiceAccountView>> {
    caller.require(Action::ManageRoles)?;
    let mut changes = AccountChanges {
        name: req.name.as_deref().map(validate::name).transpose()?,
        role: match req.role.as_deref() {
            Some(r) => Some(checked_role(&state, &caller, r).await?),
            None => None,
        },
        description: req.description.as_deref().map(|d| validate::description(Some(d))).transpose()?,
        disabled: req.disabled,
    };
    let current = find(&state, &caller, &id).await?;
    let mut what = serde_json::to_value(&req).unwrap_or_default();
    // Beside the fields sent (those left out read as `null`), what they were: the event
    // reads before → after.
    let mut sent = what.clone();
    if let Some(o) = sent.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let before = crate::audit::before(&serde_json::to_value(view(&current)).unwrap_or_default(), &sent);
    if let Some(o) = what.as_object_mut() {
        o.insert("before".into(), before);
    }
    let audit = caller.audit(&origin, AuditAction::ServiceAccountUpdate, target("service_account", &id, None), what);
    // A role that widens what the account's keys may do follows `role.update`: the old role
    // stays in force until the request is approved; the other changes apply at once.
    let mut pending = None;
    if let Some(new) = changes.role.clone() {
        if widens_account(&state, &caller.0.workspace_id, &current.role, &new).await? {
            let change = ApprovalChange::ServiceAccountRole { role: new.clone(), from: current.role.clone() };
            if let Some(a) = approval_for(&state, &caller, change, &id).await? {
                let audit =
                    audit.with(AuditAction::ApprovalRequest, target("approval", &a.id, None), a.change.payload());
                state.store.request_approval(&a, &audit).await?;
                changes.role = None;
                pending = Some(a.id);
            }
        }
    }
    let a = if changes.name.is_none()
        && changes.role.is_none()
        && changes.description.is_none()
        && changes.disabled.is_none()
    {
        current
    } else {
        state
            .store
            .update_service_account(&caller.0.workspace_id, &id, &changes, state.clock.now(), &audit)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no service account with id {id:?}")))?
    };
    state.cache.evict_owner(&id);
    Ok(Json(ServiceAccountView { approval_id: pending, ..view(&a) }))
}

/// Does giving the account `new` instead of `old` let its keys do more (an unset role
/// grants nothing)?
async fn widens_account(state: &AppState, workspace_id: &str, old: &str, new: &str) -> ApiResult<bool> {
    if old == new {
        return Ok(false);
    }
    let defs = state.store.role_defs(workspace_id, &[old.to_string(), new.to_string()]).await?;
    let new = defs.get(new).map(Vec::as_slice).unwrap_or_default();
    Ok(super::roles::widens(defs.get(old).map(Vec::as_slice), new))
}

#[utoipa::path(delete, path = "/v1/service-accounts/{id}", tag = "roles", params(("id" = String, Path)),
    responses((status = 204, description = "deleted; its keys are revoked"), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn delete_service_account(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Action::ManageRoles)?;
    let audit = caller.audit(
        &origin,
        AuditAction::ServiceAccountDelete,
        target("service_account", &id, None),
        serde_json::json!({}),
    );
    let revoked = state
        .store
        .delete_service_account(&caller.0.workspace_id, &id, state.clock.now(), &audit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no service account with id {id:?}")))?;
    revoked.iter().for_each(|k| state.forget(k));
    state.cache.evict_owner(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/service-accounts/{id}/keys", tag = "roles", params(("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key returns the first answer")),
    request_body = CreateKeyRequest,
    responses((status = 201, description = "a key owned by the account, holding its role; `secret` is shown only here", body = KeyView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn create_account_key(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Action::ManageRoles)?;
    let account = find(&state, &caller, &id).await?;
    super::keys::create(&state, &caller, &origin, &headers, &body, Some(&account)).await
}
