//! Apps and installations (docs/APPS.md): `POST|GET /v1/apps`, `GET|PATCH|DELETE
//! /v1/apps/{id}`, `POST /v1/apps/{id}/keys` (a new public key, the old ones kept for an
//! overlap), `GET /v1/apps/{id}/installations` (the developer's view), `GET
//! /v1/apps/{id}/listing` (what an organisation consents to), and `POST|GET
//! /v1/installations`, `DELETE /v1/installations/{id}` (the organisation's). Owners and
//! admins only; installing follows the policy rule `app.install`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use keyward_core::approval_change::ApprovalChange;
use keyward_core::audit_action::AuditAction;
use keyward_core::oauth;
use keyward_core::roles::Action;
use keyward_core::wire::apps::{
    AppKeyView, AppList, AppListing, AppView, InstallationList, InstallationView, NewAppRequest,
    NewInstallationRequest, RotateAppKeyRequest, UpdateAppRequest,
};
use keyward_core::{ids, validate};
use keyward_store::{AppChanges, AppKey, AppRecord, Installation, InstallationStatus};

use crate::audit::{target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::escalation::Gift;
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;

fn app_view(a: AppRecord, now: chrono::DateTime<chrono::Utc>) -> AppView {
    let keys: Vec<AppKeyView> = a
        .live_keys(now)
        .map(|k| AppKeyView {
            public_key: k.public_key.clone(),
            algorithm: k.algorithm.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
        })
        .collect();
    let (public_key, algorithm) = keys.first().map(|k| (k.public_key.clone(), k.algorithm.clone())).unwrap_or_default();
    AppView {
        id: a.id,
        workspace_id: a.workspace_id,
        name: a.name,
        description: a.description,
        homepage_url: a.homepage_url,
        public_key,
        algorithm,
        keys,
        permissions: a.permissions,
        scopes: a.scopes,
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

pub(crate) fn installation_view(i: Installation) -> InstallationView {
    InstallationView {
        id: i.id,
        app_id: i.app_id,
        app_name: i.app_name,
        workspace_id: i.workspace_id,
        status: i.status.as_str().to_string(),
        permissions: i.permissions,
        scopes: i.scopes,
        environment: i.environment,
        approval_id: i.approval_id,
        created_at: i.created_at,
        uninstalled_at: i.uninstalled_at,
    }
}

/// The caller's own (live) app, or 404 — another workspace's app is not found.
async fn own_app(state: &SharedState, caller: &Caller, id: &str) -> ApiResult<AppRecord> {
    match state.store.get_app(id).await? {
        Some(a) if a.workspace_id == caller.0.workspace_id && a.deleted_at.is_none() => Ok(a),
        _ => Err(ApiError::NotFound(format!("no app with id {id:?}"))),
    }
}

#[utoipa::path(post, path = "/v1/apps", tag = "apps", request_body = NewAppRequest,
    responses((status = 201, description = "registered", body = AppView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn create_app(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<NewAppRequest>,
) -> ApiResult<(StatusCode, Json<AppView>)> {
    caller.require(Action::ManageApps)?;
    let c = oauth::check_app(&req)?;
    let now = state.clock.now();
    let app = AppRecord {
        id: ids::new_id("app", now, state.random.as_ref()),
        workspace_id: caller.0.workspace_id.clone(),
        name: c.name,
        description: c.description,
        homepage_url: c.homepage_url,
        permissions: c.permissions,
        scopes: c.scopes,
        keys: vec![AppKey {
            public_key: c.public_key.to_hex(),
            algorithm: c.public_key.algorithm().as_str().to_string(),
            created_at: now,
            expires_at: None,
        }],
        created_by: Some(caller.0.member_id.clone()),
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    let what = serde_json::json!({
        "name": app.name, "public_key": app.keys[0].public_key, "algorithm": app.keys[0].algorithm,
        "permissions": app.permissions, "scopes": app.scopes,
    });
    let audit = caller.audit(&origin, AuditAction::AppCreate, target("app", &app.id, Some(&app.name)), what);
    state.store.insert_app(&app, &audit).await?;
    Ok((StatusCode::CREATED, Json(app_view(app, now))))
}

#[utoipa::path(get, path = "/v1/apps", tag = "apps",
    responses((status = 200, description = "the workspace's apps", body = AppList)),
    security(("management_key" = [])))]
pub async fn list_apps(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<AppList>> {
    let now = state.clock.now();
    let items = state.store.list_apps(&caller.0.workspace_id).await?;
    Ok(Json(AppList { items: items.into_iter().map(|a| app_view(a, now)).collect() }))
}

#[utoipa::path(get, path = "/v1/apps/{id}", tag = "apps", params(("id" = String, Path)),
    responses((status = 200, body = AppView), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn get_app(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AppView>> {
    Ok(Json(app_view(own_app(&state, &caller, &id).await?, state.clock.now())))
}

#[utoipa::path(patch, path = "/v1/apps/{id}", tag = "apps", params(("id" = String, Path)),
    request_body = UpdateAppRequest,
    responses((status = 200, description = "changed; installations keep what they were granted", body = AppView),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn update_app(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateAppRequest>,
) -> ApiResult<Json<AppView>> {
    caller.require(Action::ManageApps)?;
    let app = own_app(&state, &caller, &id).await?;
    let c = AppChanges {
        name: req.name.as_deref().map(validate::name).transpose()?,
        description: req.description.as_deref().map(|d| validate::description(Some(d))).transpose()?,
        homepage_url: req
            .homepage_url
            .as_ref()
            .map(|u| u.as_deref().map(|u| validate::http_url("homepage_url", u)).transpose())
            .transpose()?,
        permissions: req.permissions.as_deref().map(|p| validate::permission_list("permissions", p)).transpose()?,
        scopes: req.scopes.as_deref().map(|s| oauth::scope_list("scopes", s)).transpose()?,
    };
    let what = serde_json::json!({
        "name": c.name, "description": c.description, "homepage_url": c.homepage_url,
        "permissions": c.permissions, "scopes": c.scopes,
    });
    let audit = caller.audit(&origin, AuditAction::AppUpdate, target("app", &id, Some(&app.name)), what);
    let now = state.clock.now();
    let app = state
        .store
        .update_app(&caller.0.workspace_id, &id, &c, now, &audit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no app with id {id:?}")))?;
    Ok(Json(app_view(app, now)))
}

#[utoipa::path(delete, path = "/v1/apps/{id}", tag = "apps", params(("id" = String, Path)),
    responses((status = 200, description = "deleted: every token of its installations is refused at once, on every node", body = AppView),
        (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn delete_app(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Json<AppView>> {
    caller.require(Action::ManageApps)?;
    let app = own_app(&state, &caller, &id).await?;
    let audit =
        caller.audit(&origin, AuditAction::AppDelete, target("app", &id, Some(&app.name)), serde_json::json!({}));
    let now = state.clock.now();
    let app = state
        .store
        .delete_app(&caller.0.workspace_id, &id, now, &audit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no app with id {id:?}")))?;
    state.app_tokens.apply(&format!("app:{id}"));
    Ok(Json(app_view(app, now)))
}

#[utoipa::path(post, path = "/v1/apps/{id}/keys", tag = "apps", params(("id" = String, Path)),
    request_body = RotateAppKeyRequest,
    responses((status = 200, description = "the new key signs from now on; the ones before it until the overlap ends", body = AppView),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn rotate_app_key(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RotateAppKeyRequest>,
) -> ApiResult<Json<AppView>> {
    caller.require(Action::ManageApps)?;
    let app = own_app(&state, &caller, &id).await?;
    let key = oauth::app_key(req.algorithm.as_deref(), &req.public_key)?;
    let overlap = match req.overlap.as_deref() {
        None => chrono::Duration::hours(24),
        Some(s) => keyward_core::duration::parse(s)
            .filter(|d| *d >= chrono::Duration::zero() && *d <= chrono::Duration::days(30))
            .ok_or_else(|| ApiError::invalid("overlap", "overlap must be a duration from 0s to 30d (\"24h\")"))?,
    };
    let now = state.clock.now();
    let new = AppKey {
        public_key: key.to_hex(),
        algorithm: key.algorithm().as_str().to_string(),
        created_at: now,
        expires_at: None,
    };
    let what = serde_json::json!({"public_key": new.public_key, "algorithm": new.algorithm, "overlap_seconds": overlap.num_seconds()});
    let audit = caller.audit(&origin, AuditAction::AppKeyRotate, target("app", &id, Some(&app.name)), what);
    let app = state
        .store
        .add_app_key(&caller.0.workspace_id, &id, &new, now + overlap, &audit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no app with id {id:?}")))?;
    Ok(Json(app_view(app, now)))
}

#[utoipa::path(get, path = "/v1/apps/{id}/installations", tag = "apps", params(("id" = String, Path)),
    responses((status = 200, description = "where the app is installed (the organisation's workspace id and grant, nothing else of it)", body = InstallationList),
        (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn app_installations(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<InstallationList>> {
    own_app(&state, &caller, &id).await?;
    let items = state.store.app_installations(&id).await?;
    // An approval request is the organisation's: its id is not the developer's to know.
    let items = items.into_iter().map(|i| InstallationView { approval_id: None, ..installation_view(i) }).collect();
    Ok(Json(InstallationList { items }))
}

#[utoipa::path(get, path = "/v1/apps/{id}/listing", tag = "apps", params(("id" = String, Path)),
    responses((status = 200, description = "what the app asks for, for an organisation deciding to install it", body = AppListing),
        (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn app_listing(
    State(state): State<SharedState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AppListing>> {
    match state.store.get_app(&id).await? {
        Some(a) if a.deleted_at.is_none() => Ok(Json(AppListing {
            id: a.id,
            name: a.name,
            description: a.description,
            homepage_url: a.homepage_url,
            permissions: a.permissions,
            scopes: a.scopes,
        })),
        _ => Err(ApiError::NotFound(format!("no app with id {id:?}"))),
    }
}

#[utoipa::path(post, path = "/v1/installations", tag = "apps", request_body = NewInstallationRequest,
    responses((status = 201, description = "installed (`active`), or `pending` with `approval_id` when the policy's `app.install` rule asks for approvals", body = InstallationView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn install(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<NewInstallationRequest>,
) -> ApiResult<(StatusCode, Json<InstallationView>)> {
    caller.require(Action::ManageApps)?;
    let app = match state.store.get_app(&req.app_id).await? {
        Some(a) if a.deleted_at.is_none() => a,
        _ => return Err(ApiError::NotFound(format!("no app with id {:?}", req.app_id))),
    };
    let permissions = validate::permission_list("permissions", &req.permissions)?;
    let scopes = oauth::scope_list("scopes", &req.scopes)?;
    oauth::within("permissions", &permissions, &app.permissions)?;
    oauth::within("scopes", &scopes, &app.scopes)?;
    let environment = match req.environment.as_deref() {
        None => "live".to_string(),
        Some(e) => validate::environment(Some(e))?,
    };
    // Nobody gives an app more than they could give a key.
    state
        .may_give(&caller.0.workspace_id, caller.0.role, Gift { permissions: &permissions, ..Gift::default() })
        .await?;
    let now = state.clock.now();
    let id = ids::new_id("inst", now, state.random.as_ref());
    let change =
        ApprovalChange::AppInstall { app_id: app.id.clone(), permissions: permissions.clone(), scopes: scopes.clone() };
    let approval = crate::quorum::approval_for(&state, &caller, change, &id).await?;
    let i = Installation {
        id: id.clone(),
        app_id: app.id.clone(),
        app_name: app.name.clone(),
        workspace_id: caller.0.workspace_id.clone(),
        app_workspace_id: app.workspace_id.clone(),
        status: if approval.is_some() { InstallationStatus::Pending } else { InstallationStatus::Active },
        permissions,
        scopes,
        environment,
        approval_id: approval.as_ref().map(|a| a.id.clone()),
        installed_by: Some(caller.0.member_id.clone()),
        created_at: now,
        updated_at: now,
        uninstalled_at: None,
    };
    let what = serde_json::json!({
        "app_id": i.app_id, "permissions": i.permissions, "scopes": i.scopes, "environment": i.environment,
        "status": i.status.as_str(), "approval_id": i.approval_id,
    });
    let action = if approval.is_some() { AuditAction::ApprovalRequest } else { AuditAction::AppInstall };
    let audit = caller.audit(&origin, action, target("installation", &id, Some(&app.name)), what);
    state.store.insert_installation(&i, approval.as_ref(), &audit).await?;
    state.app_tokens.apply(&format!("inst:{id}"));
    Ok((StatusCode::CREATED, Json(installation_view(i))))
}

#[utoipa::path(get, path = "/v1/installations", tag = "apps",
    responses((status = 200, description = "the apps installed in this workspace", body = InstallationList)),
    security(("management_key" = [])))]
pub async fn list_installations(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<InstallationList>> {
    let items = state.store.list_installations(&caller.0.workspace_id).await?;
    Ok(Json(InstallationList { items: items.into_iter().map(installation_view).collect() }))
}

#[utoipa::path(get, path = "/v1/installations/{id}", tag = "apps", params(("id" = String, Path)),
    responses((status = 200, body = InstallationView), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn get_installation(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<InstallationView>> {
    match state.store.get_installation(&id).await? {
        Some(i) if i.workspace_id == caller.0.workspace_id => Ok(Json(installation_view(i))),
        _ => Err(ApiError::NotFound(format!("no installation with id {id:?}"))),
    }
}

#[utoipa::path(delete, path = "/v1/installations/{id}", tag = "apps", params(("id" = String, Path)),
    responses((status = 200, description = "uninstalled: every token of it is refused at once, on every node", body = InstallationView),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn uninstall(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Json<InstallationView>> {
    caller.require(Action::ManageApps)?;
    let audit =
        caller.audit(&origin, AuditAction::AppUninstall, target("installation", &id, None), serde_json::json!({}));
    let i = state
        .store
        .uninstall(&caller.0.workspace_id, &id, state.clock.now(), &audit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no installation with id {id:?}")))?;
    // This node at once; the others by the installation's event.
    state.app_tokens.apply(&format!("inst:{id}"));
    Ok(Json(installation_view(i)))
}
