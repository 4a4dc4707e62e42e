//! Approval requests: list, show, approve (fresh TOTP), reject (fresh TOTP), cancel.

use axum::extract::{Path, Query, State};
use axum::Json;
use keyward_core::audit_action::AuditAction;
use serde::Deserialize;
use utoipa::IntoParams;

use keyward_core::approval_change::ApprovalChange;
use keyward_core::policy::KeyAction;
use keyward_core::roles::Role;
use keyward_core::validate::UpdateKeyRules;
use keyward_core::wire::governance::{ApprovalList, ApprovalView, ApproveBody, RejectBody, VoteView};
use keyward_store::{Approval, ApprovalStatus, Decision};

use crate::audit::{target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::escalation::Gift;
use crate::extract::{ApiJson, Caller};
use crate::mfa::check_code;
use crate::state::{AppState, SharedState};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalListParams {
    /// pending, approved, rejected, cancelled, expired
    pub status: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

pub(crate) fn approval_view(a: &Approval) -> ApprovalView {
    {
        let r = &a.request;
        ApprovalView {
            id: r.id.clone(),
            action: r.action().as_str().into(),
            // Named `key_id` in the API, whatever the subject's kind (docs/API.md).
            key_id: r.subject.id.clone(),
            status: a.status.as_str().into(),
            requested_by: r.requested_by.clone(),
            required: r.required,
            approved_by: a.votes.iter().map(|v| VoteView { member_id: v.member_id.clone(), at: v.at }).collect(),
            approver_roles: r.approver_roles.clone(),
            details: r.change.payload(),
            reason: a.reason.clone(),
            decided_by: a.decided_by.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            decided_at: a.decided_at,
        }
    }
}

/// Closes this workspace's requests whose time is up before anyone looks at them.
async fn expire(state: &AppState, workspace_id: &str) -> ApiResult<()> {
    for k in state.store.expire_approvals(Some(workspace_id), state.clock.now()).await? {
        state.forget(&k);
    }
    Ok(())
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Approval> {
    state
        .store
        .get_approval(&caller.0.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no approval request with id {id:?}")))
}

fn answer(state: &AppState, d: Decision, id: &str) -> ApiResult<Json<ApprovalView>> {
    match d {
        Decision::Recorded(a) => Ok(Json(approval_view(&a))),
        Decision::Done(a, changed) => {
            changed.iter().for_each(|k| state.forget(k));
            Ok(Json(approval_view(&a)))
        }
        Decision::AlreadyVoted => {
            Err(ApiError::Conflict { field: None, message: "you have already approved this request".into() })
        }
        Decision::Closed(a) => {
            Err(ApiError::Conflict { field: None, message: format!("this request is {}", a.status.as_str()) })
        }
        Decision::NotFound => Err(ApiError::NotFound(format!("no approval request with id {id:?}"))),
    }
}

/// Checks that the caller may decide this request (before their one-time code is spent).
fn may_decide(caller: &Caller, a: &Approval, verb: &str) -> ApiResult<()> {
    if a.status != ApprovalStatus::Pending {
        return Err(ApiError::Conflict { field: None, message: format!("this request is {}", a.status.as_str()) });
    }
    if a.request.requested_by == caller.0.member_id {
        return Err(ApiError::Forbidden(format!("you cannot {verb} your own request; cancel it instead")));
    }
    if !a.request.approver_roles.contains(&caller.0.role) {
        return Err(ApiError::Forbidden(format!("the {} role may not {verb} this request", caller.0.role)));
    }
    Ok(())
}

#[utoipa::path(get, path = "/v1/approvals", tag = "governance", params(ApprovalListParams),
    responses((status = 200, body = ApprovalList), (status = 400, body = ErrorBody)), security(("management_key" = [])))]
pub async fn list_approvals(
    State(state): State<SharedState>,
    caller: Caller,
    params: Result<Query<ApprovalListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ApprovalList>> {
    let Query(p) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    let status = p
        .status
        .as_deref()
        .map(|s| ApprovalStatus::parse(s).ok_or_else(|| ApiError::invalid("status", format!("unknown status {s:?}"))))
        .transpose()?;
    let limit = super::paging::limit(p.limit.as_deref())?;
    let cursor = super::paging::cursor(p.cursor.as_deref(), "apr_")?;
    expire(&state, &caller.0.workspace_id).await?;
    let rows = state.store.list_approvals(&caller.0.workspace_id, status, cursor, limit).await?;
    let (rows, next_cursor) = super::paging::page(rows, limit, |a| a.request.id.as_str());
    Ok(Json(ApprovalList { items: rows.iter().map(approval_view).collect(), next_cursor }))
}

#[utoipa::path(get, path = "/v1/approvals/{id}", tag = "governance", params(("id" = String, Path)),
    responses((status = 200, body = ApprovalView), (status = 404, body = ErrorBody)), security(("management_key" = [])))]
pub async fn get_approval(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ApprovalView>> {
    expire(&state, &caller.0.workspace_id).await?;
    Ok(Json(approval_view(&find(&state, &caller, &id).await?)))
}

#[utoipa::path(post, path = "/v1/approvals/{id}/approve", tag = "governance", params(("id" = String, Path)),
    request_body = ApproveBody,
    responses((status = 200, description = "counted; at quorum the change is applied", body = ApprovalView),
        (status = 401, description = "mfa_required: a fresh one-time code is needed", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn approve(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ApproveBody>,
) -> ApiResult<Json<ApprovalView>> {
    let a = find(&state, &caller, &id).await?;
    may_decide(&caller, &a, "approve")?;
    if a.votes.iter().any(|v| v.member_id == caller.0.member_id) {
        return Err(ApiError::Conflict { field: None, message: "you have already approved this request".into() });
    }
    requester_may_still_give(&state, &a).await?;
    check_code(&state, &caller.0.member_id, body.otp.as_deref()).await?;
    let what = serde_json::json!({"action": a.request.action().as_str(), "subject": a.request.subject.id});
    let audit = caller.audit(&origin, AuditAction::ApprovalApprove, target("approval", &id, None), what);
    let d = state.store.approve(&caller.0.workspace_id, &id, &caller.0.member_id, state.clock.now(), &audit).await?;
    if let Decision::Done(done, _) = &d {
        match done.request.action() {
            KeyAction::RoleUpdate => state.rederive_role(&done.request.workspace_id, &done.request.subject.id).await,
            KeyAction::ServiceAccountRole => state.cache.evict_owner(&done.request.subject.id),
            _ => {}
        }
    }
    answer(&state, d, &id)
}

/// An approved request gives what its requester asked for: they must still be allowed to
/// give it now (their role may have changed, or a role they gave may have grown meanwhile).
async fn requester_may_still_give(state: &AppState, a: &Approval) -> ApiResult<()> {
    let r = &a.request;
    if r.action().is_member_action() || matches!(r.action(), KeyAction::Revoke | KeyAction::PolicyUpdate) {
        return Ok(());
    }
    let gone = || ApiError::Conflict {
        field: None,
        message: "the requester is no longer a member; reject or cancel the request".into(),
    };
    let requester = state.store.get_member(&r.workspace_id, &r.requested_by).await?.ok_or_else(gone)?;
    let refused = |e: ApiError| match e {
        ApiError::Forbidden(m) => {
            ApiError::Conflict { field: None, message: format!("the requester may no longer give this: {m}") }
        }
        other => other,
    };
    match &r.change {
        ApprovalChange::KeyUpdate { changes } => {
            let c = changes.validate(r.created_at)?;
            let gift = Gift {
                permissions: c.permissions.as_deref().unwrap_or_default(),
                roles: c.roles.as_deref().unwrap_or_default(),
                grants: c.grants.as_deref().unwrap_or_default(),
            };
            state.may_give(&r.workspace_id, requester.role, gift).await.map_err(refused)
        }
        ApprovalChange::RoleUpdate { permissions, .. } => {
            let gift = Gift { permissions: permissions.as_deref().unwrap_or_default(), ..Gift::default() };
            state.may_give(&r.workspace_id, requester.role, gift).await.map_err(refused)
        }
        ApprovalChange::ServiceAccountRole { role, .. } => {
            let gift = Gift { roles: std::slice::from_ref(role), ..Gift::default() };
            state.may_give(&r.workspace_id, requester.role, gift).await.map_err(refused)
        }
        ApprovalChange::AppInstall { permissions, .. } => {
            let gift = Gift { permissions, ..Gift::default() };
            state.may_give(&r.workspace_id, requester.role, gift).await.map_err(refused)
        }
        _ => match state.store.get_key(&r.workspace_id, &r.subject.id).await? {
            Some(k) => state.may_give(&r.workspace_id, requester.role, Gift::of_key(&k)).await.map_err(refused),
            None => Ok(()),
        },
    }
}

#[utoipa::path(post, path = "/v1/approvals/{id}/reject", tag = "governance", params(("id" = String, Path)),
    request_body = RejectBody,
    responses((status = 200, description = "rejected; the key returns to its state before the request (a create ends `rejected`)", body = ApprovalView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn reject(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RejectBody>,
) -> ApiResult<Json<ApprovalView>> {
    if body.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::invalid("reason", "reason must be at most 500 characters"));
    }
    let a = find(&state, &caller, &id).await?;
    may_decide(&caller, &a, "reject")?;
    check_code(&state, &caller.0.member_id, body.otp.as_deref()).await?;
    let what = serde_json::json!({"action": a.request.action().as_str(), "subject": a.request.subject.id, "reason": body.reason});
    let audit = caller.audit(&origin, AuditAction::ApprovalReject, target("approval", &id, None), what);
    let d = state
        .store
        .close_approval(
            &caller.0.workspace_id,
            &id,
            ApprovalStatus::Rejected,
            body.reason.as_deref(),
            state.clock.now(),
            &audit,
        )
        .await?;
    answer(&state, d, &id)
}

#[utoipa::path(post, path = "/v1/approvals/{id}/cancel", tag = "governance", params(("id" = String, Path)),
    responses((status = 200, description = "cancelled by the requester (or an owner or admin)", body = ApprovalView),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn cancel(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Json<ApprovalView>> {
    let a = find(&state, &caller, &id).await?;
    let mine = a.request.requested_by == caller.0.member_id;
    if !mine && !matches!(caller.0.role, Role::Owner | Role::Admin) {
        return Err(ApiError::Forbidden("only the requester, an owner or an admin may cancel a request".into()));
    }
    let what = serde_json::json!({"action": a.request.action().as_str(), "subject": a.request.subject.id});
    let audit = caller.audit(&origin, AuditAction::ApprovalCancel, target("approval", &id, None), what);
    let d = state
        .store
        .close_approval(&caller.0.workspace_id, &id, ApprovalStatus::Cancelled, None, state.clock.now(), &audit)
        .await?;
    answer(&state, d, &id)
}
