//! Management keys: minted by a member for scripts (`POST /v1/members/me/keys`), listed
//! (`GET /v1/management-keys`) and revoked (`DELETE /v1/management-keys/{id}`). A key acts as
//! its member with the member's current role; storage is read on every call, so a revoked or
//! expired key stops at once on every node.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use keyward_core::audit_action::AuditAction;

use keyward_core::roles::RoleMatrix;
use keyward_core::roles::{Action, Role};
use keyward_core::wire::governance::{
    ManagementKeyList, ManagementKeyView, NewManagementKeyRequest, NewManagementKeyView,
};
use keyward_core::{duration, ids, keyformat, validate};
use keyward_store::{ManagementKey, NewManagementKey};

use crate::audit::{target as audit_target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{parse_json, Caller, RawBody};
use crate::mfa::check_code;
use crate::state::SharedState;

fn view(k: ManagementKey) -> ManagementKeyView {
    ManagementKeyView {
        id: k.id,
        member_id: k.member_id,
        email: k.email,
        name: k.name,
        start: k.start,
        created_at: k.created_at,
        expires_at: k.expires_at,
        revoked_at: k.revoked_at,
        leaked_at: k.leak.as_ref().map(|l| l.at),
        leak_source: k.leak.as_ref().map(|l| l.source.clone()),
        leak_url: k.leak.and_then(|l| l.url),
    }
}

#[utoipa::path(post, path = "/v1/members/me/keys", tag = "members", request_body = NewManagementKeyRequest,
    responses((status = 201, description = "a management key acting as you; shown only here", body = NewManagementKeyView),
        (status = 400, body = ErrorBody), (status = 401, description = "`mfa_required`: a fresh code is needed", body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn create_management_key(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<NewManagementKeyView>)> {
    let p = &caller.0;
    let req: NewManagementKeyRequest =
        if body.iter().all(u8::is_ascii_whitespace) { NewManagementKeyRequest::default() } else { parse_json(&body)? };
    // A key outlives the session that mints it: with MFA, minting one takes a fresh code.
    if p.mfa_enabled {
        check_code(&state, &p.member_id, req.otp.as_deref()).await?;
    }
    let name = match req.name.as_deref() {
        Some(n) => validate::name(n)?,
        None => "management key".to_string(),
    };
    let now = state.clock.now();
    // Every new management key expires: at most `management_key_max_days` from now, which is
    // also its expiry when none is asked for.
    let max_days = p.policy.management_key_max_days;
    let cap = chrono::Duration::days(i64::from(max_days));
    let lifetime = match req.expires_in.as_deref() {
        None => cap,
        Some(e) => duration::parse(e)
            .filter(|d| *d > chrono::Duration::zero())
            .ok_or_else(|| ApiError::invalid("expires_in", "expires_in must look like 12h, 30d or 1y"))?,
    };
    if lifetime > cap {
        return Err(ApiError::invalid(
            "expires_in",
            format!("expires_in must be at most {max_days} days (policy management_key_max_days)"),
        ));
    }
    let expires_at = Some(now + lifetime);
    let rng = state.random.as_ref();
    let token = keyformat::generate_management(&p.prefix, rng);
    let start = keyformat::parse(&token)
        .map(|t| t.start.to_string())
        .ok_or_else(|| ApiError::Internal("generated management key failed to parse".into()))?;
    let key = NewManagementKey {
        id: ids::new_id("mk", now, rng),
        hash: state.pepper.hash(&token),
        start,
        name: name.clone(),
    };
    let what = serde_json::json!({"name": key.name, "start": key.start, "expires_at": expires_at});
    let audit = caller.audit(
        &origin,
        AuditAction::ManagementKeyCreate,
        audit_target("management_key", &key.id, Some(&key.name)),
        what,
    );
    state.store.add_management_key(&p.workspace_id, &p.member_id, &key, expires_at, now, &audit).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewManagementKeyView {
            id: key.id,
            management_key: token,
            start: key.start,
            role: p.role,
            name,
            expires_at,
        }),
    ))
}

/// Owners and admins see and revoke every member's keys (admins not an owner's); others
/// only their own.
fn sees_all(caller: &Caller) -> bool {
    matches!(caller.0.role.allows(Action::ManageMembers), keyward_core::roles::Grant::Yes)
}

#[utoipa::path(get, path = "/v1/management-keys", tag = "members",
    responses((status = 200, body = ManagementKeyList)), security(("management_key" = [])))]
pub async fn list_management_keys(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<ManagementKeyList>> {
    let p = &caller.0;
    let only = (!sees_all(&caller)).then_some(p.member_id.as_str());
    let items = state.store.list_management_keys(&p.workspace_id, only).await?;
    Ok(Json(ManagementKeyList { items: items.into_iter().map(view).collect() }))
}

#[utoipa::path(delete, path = "/v1/management-keys/{id}", tag = "members", params(("id" = String, Path)),
    responses((status = 204, description = "revoked at once, on every node"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn revoke_management_key(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let p = &caller.0;
    let not_found = || ApiError::NotFound(format!("no management key with id {id:?}"));
    let keys = state.store.list_management_keys(&p.workspace_id, None).await?;
    let k = keys.into_iter().find(|k| k.id == id).ok_or_else(not_found)?;
    let own = k.member_id == p.member_id;
    if !own && !sees_all(&caller) {
        return Err(not_found());
    }
    if !own && k.member_role == Role::Owner && p.role != Role::Owner {
        return Err(ApiError::Forbidden("only an owner revokes an owner's management keys".into()));
    }
    let what = serde_json::json!({"member_id": k.member_id});
    let audit =
        caller.audit(&origin, AuditAction::ManagementKeyRevoke, audit_target("management_key", &id, None), what);
    state.store.revoke_management_key(&p.workspace_id, &id, state.clock.now(), &audit).await?;
    Ok(StatusCode::NO_CONTENT)
}
