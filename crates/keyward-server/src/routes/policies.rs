//! `GET|PUT /v1/policies`: approvals per key action, key lifetimes, required MFA. A change
//! that may weaken the policy waits on the approvals of the strictest rule in force (and any
//! change on `policy.update`'s); meanwhile the policy in force stays as it was.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyward_core::approval_change::ApprovalChange;
use keyward_core::audit_action::AuditAction;

use keyward_core::policy::PolicyRules;
use keyward_core::policy::{Policy, PolicyPatch};
use keyward_core::roles::Action;
use keyward_core::wire::governance::ApprovalView;
use keyward_store::{Approval, ApprovalStatus};

use crate::audit::{target as audit_target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::quorum::{approval_for, strictest_approval};
use crate::state::SharedState;

#[utoipa::path(get, path = "/v1/policies", tag = "governance",
    responses((status = 200, body = Policy)), security(("management_key" = [])))]
pub async fn get_policies(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<Policy>> {
    Ok(Json(state.store.policy(&caller.0.workspace_id).await?))
}

#[utoipa::path(put, path = "/v1/policies", tag = "governance", request_body = PolicyPatch,
    responses((status = 200, description = "the whole policy after the change", body = Policy),
        (status = 202, description = "the change waits on this approval request (`policy.update`); the policy in force is unchanged", body = ApprovalView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn put_policies(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(patch): ApiJson<PolicyPatch>,
) -> ApiResult<Response> {
    caller.require(Action::ManagePolicies)?;
    let ws = caller.0.workspace_id.clone();
    let current = state.store.policy(&ws).await?;
    let next = current.patched(&patch)?;
    if next.require_mfa && !current.require_mfa && !caller.0.mfa_enabled {
        // Otherwise the one who turned it on would be locked out with everyone else.
        return Err(ApiError::Conflict {
            field: Some("require_mfa".into()),
            message: "enrol TOTP yourself before requiring MFA for everyone".into(),
        });
    }
    let mut what = serde_json::to_value(&patch).unwrap_or_default();
    // Beside the fields sent, what they were: the event reads before → after.
    let before = crate::audit::before(&serde_json::to_value(&current).unwrap_or_default(), &what);
    if let Some(o) = what.as_object_mut() {
        o.insert("before".into(), before);
    }
    let audit = caller.audit(&origin, AuditAction::PolicyUpdate, audit_target("policy", &ws, None), what.clone());
    // A rule is never loosened by one of the people it binds: the strictest rule in force
    // (read with the credential, so the one a pending change has not touched) decides.
    let weakens = current.weakened_by(&next);
    // The policy it was judged against: approved later, it applies only to that policy.
    let change = ApprovalChange::PolicyUpdate {
        changes: Box::new(patch.clone()),
        weakens: weakens.map(str::to_string),
        basis: Some(Box::new(current.clone())),
    };
    let approval = match weakens {
        Some(_) => strictest_approval(&state, &caller, change, &ws).await?,
        None if next != current => approval_for(&state, &caller, change, &ws).await?,
        None => None,
    };
    let Some(a) = approval else {
        state.store.put_policy(&ws, &next, state.clock.now(), &audit).await?;
        return Ok(Json(next).into_response());
    };
    let audit = audit.with(AuditAction::ApprovalRequest, audit_target("approval", &a.id, None), a.change.payload());
    state.store.request_approval(&a, &audit).await?;
    let view = super::approvals::approval_view(&Approval {
        request: a,
        status: ApprovalStatus::Pending,
        reason: None,
        decided_by: None,
        decided_at: None,
        votes: Vec::new(),
    });
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}
