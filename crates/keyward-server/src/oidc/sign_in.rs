//! An email the provider verified, made a session: the members with that email — one, or
//! the one in the workspace named when there are several; an invitation not waiting on
//! approvals is taken up (the provider vouched for the invited email) —, or, with
//! `oidc_auto_join_*`, a new member of that workspace. Then as a
//! password sign-in goes on from a right password (`routes/sessions.rs::open_session`):
//! the account's lock, the one-time code of a member with MFA, the session and its
//! `session.login` on the record, with `"method": "oidc"`.

use std::net::IpAddr;

use keyward_core::audit_action::AuditAction;
use keyward_core::ids;
use keyward_core::wire::governance::SessionView;
use keyward_store::{AuditRecord, JoinedMember, LoginRecord, Origin};

use crate::config::AutoJoin;
use crate::error::{ApiError, ApiResult};
use crate::routes::sessions::open_session;
use crate::state::AppState;

/// Signs in the member with `email` (verified by the provider).
pub async fn sign_in(
    state: &AppState,
    email: &str,
    workspace_id: Option<&str>,
    otp: Option<&str>,
    ip: IpAddr,
    origin: Origin,
) -> ApiResult<SessionView> {
    let now = state.clock.now();
    if let Some(retry_after) = state.login_blocked(ip, now).await {
        return Err(ApiError::RateLimited {
            retry_after,
            message: "too many failed logins from this address; try again later".into(),
        });
    }
    let email = keyward_core::validate::email(email)
        .map_err(|_| ApiError::Forbidden(format!("the sign-in provider's email {email:?} is not an email address")))?;
    let mut records = state.store.login_records(&email).await?;
    // An invitation waiting on approvals is no membership yet.
    records.retain(|r| r.member.active || r.member.approval_id.is_none());
    if records.is_empty() {
        let auto_join = state.config.oidc.as_ref().and_then(|o| o.auto_join.as_ref());
        let Some(join) = auto_join else {
            return Err(ApiError::Forbidden(format!(
                "{email} is not a member of any workspace here; ask an admin to invite you"
            )));
        };
        records.push(join_workspace(state, join, &email, &origin).await?);
    }
    if let Some(ws) = workspace_id.map(str::trim).filter(|w| !w.is_empty()) {
        records.retain(|r| r.member.workspace_id == ws);
        if records.is_empty() {
            return Err(ApiError::invalid("workspace_id", format!("{email} is not a member of workspace {ws}")));
        }
    }
    if records.len() > 1 {
        // The provider vouched for the email: the workspaces may be named to its owner.
        let names: Vec<&str> = records.iter().map(|r| r.member.workspace_id.as_str()).collect();
        return Err(ApiError::invalid(
            "workspace_id",
            format!("{email} is a member of several workspaces ({}); name one", names.join(", ")),
        ));
    }
    let Some(mut rec) = records.pop() else {
        return Err(ApiError::Internal("no login record left after choosing one".into()));
    };
    if !rec.member.active {
        rec.member = state.store.join_invited(&rec.member.id, now, &origin).await?.ok_or_else(|| {
            ApiError::Forbidden(format!("the invitation of {email} has ended; ask an admin to invite you again"))
        })?;
    }
    // The account's lock holds for every way in; the attempt is settled by `open_session`.
    crate::lockout::reserve(state, &rec.member.id).await?;
    open_session(state, rec, otp, ip, origin, "oidc").await
}

/// Makes `email` a member of the auto-join workspace, unless the workspace's policy wants
/// approvals to add a member with that role (then an admin invites them instead).
async fn join_workspace(state: &AppState, join: &AutoJoin, email: &str, origin: &Origin) -> ApiResult<LoginRecord> {
    let ws = &join.workspace_id;
    let Some(prefix) = state.store.workspace_prefix(ws).await? else {
        tracing::warn!(workspace_id = %ws, "single sign-on: oidc_auto_join_workspace names no workspace");
        return Err(ApiError::Forbidden(format!(
            "{email} is not a member of any workspace here, and the workspace to join does not exist; \
             ask an admin to invite you"
        )));
    };
    let policy = state.store.policy(ws).await?;
    if policy.member_invite.needs_approval() && policy.member_invite.approver_roles.contains(&join.role) {
        return Err(ApiError::Forbidden(format!(
            "{email} is not a member yet, and joining as {} needs approvals in this workspace; \
             ask an admin to invite you",
            join.role.as_str()
        )));
    }
    let now = state.clock.now();
    let member = JoinedMember {
        id: ids::new_id("mem", now, state.random.as_ref()),
        workspace_id: ws.clone(),
        email: email.to_string(),
        role: join.role,
        created_at: now,
    };
    let what = serde_json::json!({"role": join.role.as_str(), "method": "oidc"});
    let audit = AuditRecord::by_member(&member.id, email, AuditAction::MemberJoin, what, origin.clone());
    state.store.join_member(&member, &audit).await?;
    tracing::info!(workspace_id = %ws, member_id = %member.id, role = join.role.as_str(), "single sign-on: a member joined");
    Ok(LoginRecord {
        member: keyward_store::Member {
            id: member.id,
            workspace_id: member.workspace_id,
            email: member.email,
            role: member.role,
            created_at: now,
            active: true,
            mfa_enabled: false,
            approval_id: None,
            pending_role: None,
        },
        prefix,
        password_hash: None,
    })
}
