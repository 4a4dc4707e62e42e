//! `GET|PUT /v1/policies`: approvals per key action, key lifetimes, required MFA.

use axum::extract::State;
use axum::Json;

use keyward_core::policy::{Policy, PolicyPatch};
use keyward_core::roles::Action;

use crate::audit::{target as audit_target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;

#[utoipa::path(get, path = "/v1/policies", tag = "governance",
    responses((status = 200, body = Policy)), security(("management_key" = [])))]
pub async fn get_policies(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<Policy>> {
    Ok(Json(state.store.policy(&caller.0.workspace_id).await?))
}

#[utoipa::path(put, path = "/v1/policies", tag = "governance", request_body = PolicyPatch,
    responses((status = 200, description = "the whole policy after the change", body = Policy),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn put_policies(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(patch): ApiJson<PolicyPatch>,
) -> ApiResult<Json<Policy>> {
    caller.require(Action::ManagePolicies)?;
    let current = state.store.policy(&caller.0.workspace_id).await?;
    let next = current.patched(&patch)?;
    if next.require_mfa && !current.require_mfa && !caller.0.mfa_enabled {
        // Otherwise the one who turned it on would be locked out with everyone else.
        return Err(ApiError::Conflict {
            field: Some("require_mfa".into()),
            message: "enrol TOTP yourself before requiring MFA for everyone".into(),
        });
    }
    let what = serde_json::to_value(&patch).unwrap_or_default();
    let ws = caller.0.workspace_id.clone();
    let audit = caller.audit(&origin, "policy.update", audit_target("policy", &ws, None), what);
    state.store.put_policy(&ws, &next, state.clock.now(), &audit).await?;
    Ok(Json(next))
}
