//! Whether a governed key action needs approvals, and how many: fixed when it is requested.

use keyward_core::ids;
use keyward_core::policy::KeyAction;
use keyward_store::NewApproval;

use crate::error::ApiResult;
use crate::extract::Caller;
use crate::state::AppState;

/// The approval request a governed action needs, or `None` when the policy lets it through.
/// The quorum is fixed now: `half_of_admins` counts the members who could approve, not the
/// requester.
pub(crate) async fn approval_for(
    state: &AppState,
    caller: &Caller,
    action: KeyAction,
    key_id: &str,
    payload: serde_json::Value,
) -> ApiResult<Option<NewApproval>> {
    let p = &caller.0;
    let rule = p.policy.rule(action);
    if !rule.needs_approval() {
        return Ok(None);
    }
    let eligible = state.store.members_with_roles(&p.workspace_id, &rule.approver_roles).await?;
    let others = eligible.iter().filter(|m| **m != p.member_id).count();
    let required = rule.approvals.required(u32::try_from(others).unwrap_or(u32::MAX));
    if required == 0 {
        return Ok(None);
    }
    let now = state.clock.now();
    Ok(Some(NewApproval {
        id: ids::new_id("apr", now, state.random.as_ref()),
        workspace_id: p.workspace_id.clone(),
        action,
        key_id: key_id.to_string(),
        requested_by: p.member_id.clone(),
        required,
        approver_roles: rule.approver_roles.clone(),
        payload,
        created_at: now,
        expires_at: now + chrono::Duration::hours(i64::from(p.policy.approval_expiry_hours)),
    }))
}
