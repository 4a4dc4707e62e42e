//! Whether a governed key action needs approvals, and how many: fixed when it is requested.

use keyward_core::approval_change::{ApprovalChange, Subject};
use keyward_core::ids;
use keyward_core::policy::ActionRule;
use keyward_core::policy::{PolicyRules, QuorumRule};
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
    change: ApprovalChange,
    subject_id: &str,
) -> ApiResult<Option<NewApproval>> {
    let rule = caller.0.policy.rule(change.action());
    strictest_of(state, caller, [rule], change, subject_id).await
}

/// For a change that could cut the quorum (weaken the policy, remove or demote an approver):
/// the request under the strictest rule in force — the one asking the most approvals of
/// members other than the requester — or `None` when no rule asks for any.
pub(crate) async fn strictest_approval(
    state: &AppState,
    caller: &Caller,
    change: ApprovalChange,
    subject_id: &str,
) -> ApiResult<Option<NewApproval>> {
    let rules = caller.0.policy.rules().map(|(_, rule)| rule);
    strictest_of(state, caller, rules, change, subject_id).await
}

/// The request under whichever of `rules` asks the most approvals of this caller now, or
/// `None` when none asks for any.
async fn strictest_of<'r>(
    state: &AppState,
    caller: &Caller,
    rules: impl IntoIterator<Item = &'r ActionRule>,
    change: ApprovalChange,
    subject_id: &str,
) -> ApiResult<Option<NewApproval>> {
    let mut strictest: Option<(u32, &ActionRule)> = None;
    for rule in rules {
        if !rule.needs_approval() {
            continue;
        }
        let required = quorum(state, caller, rule).await?;
        if strictest.is_none_or(|(n, _)| required > n) {
            strictest = Some((required, rule));
        }
    }
    Ok(strictest.and_then(|(required, rule)| request(state, caller, change, subject_id, required, rule)))
}

/// How many approvals `rule` asks of this caller now.
async fn quorum(state: &AppState, caller: &Caller, rule: &ActionRule) -> ApiResult<u32> {
    let p = &caller.0;
    let eligible = state.store.members_with_roles(&p.workspace_id, &rule.approver_roles).await?;
    let others = eligible.iter().filter(|m| **m != p.member_id).count();
    Ok(rule.approvals.required(u32::try_from(others).unwrap_or(u32::MAX)))
}

fn request(
    state: &AppState,
    caller: &Caller,
    change: ApprovalChange,
    subject_id: &str,
    required: u32,
    rule: &ActionRule,
) -> Option<NewApproval> {
    if required == 0 {
        return None;
    }
    let p = &caller.0;
    let now = state.clock.now();
    Some(NewApproval {
        id: ids::new_id("apr", now, state.random.as_ref()),
        workspace_id: p.workspace_id.clone(),
        subject: Subject::of(change.action(), subject_id),
        change,
        requested_by: p.member_id.clone(),
        required,
        approver_roles: rule.approver_roles.clone(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(i64::from(p.policy.approval_expiry_hours)),
    })
}
