//! Members: invitations and setup, roles, removal, the caller's own password, TOTP and
//! management keys.

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyward_core::approval_change::ApprovalChange;
use keyward_core::audit_action::AuditAction;
use serde::Deserialize;
use utoipa::IntoParams;

use keyward_core::policy::PolicyRules;
use keyward_core::random::base62_string;
use keyward_core::roles::{Action, Role};
use keyward_core::wire::governance::{
    Invitation, InviteRequest, MemberList, MemberView, OtpBody, PasswordChange, RecoveryCodes, RoleChange,
    SetupRequest, TotpEnrolment,
};
use keyward_core::{ids, keyformat, mfa, password};
use keyward_store::{CredentialKind, Member, NewMember};

use crate::audit::{target as audit_target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::mfa::{check_code, recovery_hash};
use crate::quorum::{approval_for, strictest_approval};
use crate::seal;
use crate::state::{AppState, SharedState};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberListParams {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

pub(crate) fn member_view(m: &Member) -> MemberView {
    {
        MemberView {
            id: m.id.clone(),
            email: m.email.clone(),
            role: m.role,
            status: if m.active { "active" } else { "invited" }.into(),
            mfa_enabled: m.mfa_enabled,
            created_at: m.created_at,
            approval_id: m.approval_id.clone(),
            pending_role: m.pending_role,
        }
    }
}

fn role(raw: &str) -> ApiResult<Role> {
    Role::parse(raw).ok_or_else(|| {
        ApiError::invalid(
            "role",
            format!("unknown role {raw:?}: use owner, admin, manager, developer, operator or viewer"),
        )
    })
}

/// A slot for one argon2id computation (19 MiB and most of a core each): a flood of logins
/// or setups waits here instead of exhausting memory, and is turned away after a while.
async fn argon_slot(state: &AppState) -> ApiResult<tokio::sync::SemaphorePermit<'_>> {
    match tokio::time::timeout(std::time::Duration::from_secs(10), state.argon.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::RateLimited {
            retry_after: 1,
            message: "too many password checks at once; try again shortly".into(),
        }),
    }
}

/// argon2id is deliberately slow: off the async workers, a bounded number at once.
pub(crate) async fn hash_password(state: &AppState, pw: String) -> ApiResult<String> {
    password::check_rules(&pw)?;
    let _slot = argon_slot(state).await?;
    let rng = state.random.clone();
    tokio::task::spawn_blocking(move || password::hash(&pw, rng.as_ref()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::from)
}

/// Checks a password against a stored hash, or spends the same work when there is none.
pub(crate) async fn password_matches(state: &AppState, pw: String, phc: Option<String>) -> ApiResult<bool> {
    let _slot = argon_slot(state).await?;
    tokio::task::spawn_blocking(move || match phc {
        Some(h) => password::verify(&pw, &h),
        None => {
            password::verify_nothing(&pw);
            false
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))
}

async fn target(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Member> {
    state
        .store
        .get_member(&caller.0.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no member with id {id:?}")))
}

/// Admins manage members up to their own rank; an owner is managed only by owners.
fn may_manage(caller: &Caller, role: Role) -> ApiResult<()> {
    if caller.0.role.may_grant(role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("a {} cannot manage or grant the {role} role", caller.0.role)))
    }
}

#[utoipa::path(post, path = "/v1/members", tag = "members", request_body = InviteRequest,
    responses((status = 201, description = "invited; `setup_token` is shown only here", body = Invitation),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn invite_member(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<InviteRequest>,
) -> ApiResult<(StatusCode, Json<Invitation>)> {
    caller.require(Action::ManageMembers)?;
    let email = keyward_core::validate::email(&req.email)?;
    let role = role(&req.role)?;
    may_manage(&caller, role)?;
    let now = state.clock.now();
    let rng = state.random.as_ref();
    let token = format!("{}_setup_{}", caller.0.prefix, base62_string(rng, keyformat::RANDOM_LEN));
    let expires = now + chrono::Duration::from_std(state.config.invite_ttl).unwrap_or(chrono::Duration::days(7));
    let id = ids::new_id("mem", now, rng);
    // Inviting someone who could approve is itself governed when the policy says so: one
    // admin alone cannot make the second approver of a two-person rule.
    let approval = if caller.0.policy.member_invite.approver_roles.contains(&role) {
        approval_for(&state, &caller, ApprovalChange::MemberInvite { role }, &id).await?
    } else {
        None
    };
    let m = NewMember {
        id,
        workspace_id: caller.0.workspace_id.clone(),
        email,
        role,
        setup_hash: state.pepper.hash(&token),
        setup_expires_at: expires,
        created_at: now,
    };
    let what = serde_json::json!({"email": m.email, "role": m.role.as_str(), "approval_id": approval.as_ref().map(|a| a.id.clone())});
    let audit = caller.audit(&origin, AuditAction::MemberInvite, audit_target("member", &m.id, Some(&m.email)), what);
    state.store.invite_member(&m, approval.as_ref(), &audit).await?;
    let member = Member {
        id: m.id,
        workspace_id: m.workspace_id,
        email: m.email,
        role,
        created_at: now,
        active: false,
        mfa_enabled: false,
        approval_id: approval.map(|a| a.id),
        pending_role: None,
    };
    Ok((
        StatusCode::CREATED,
        Json(Invitation { member: member_view(&member), setup_token: token, setup_expires_at: expires }),
    ))
}

#[utoipa::path(post, path = "/v1/members/setup", tag = "members", request_body = SetupRequest,
    responses((status = 200, description = "password set; the setup token is dead", body = MemberView),
        (status = 400, body = ErrorBody)))]
pub async fn setup_member(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<SetupRequest>,
) -> ApiResult<Json<MemberView>> {
    let ip = state.client_ip(peer.ip(), &headers);
    let now = state.clock.now();
    if let Some(retry_after) = state.login_blocked(ip, now).await {
        return Err(ApiError::RateLimited {
            retry_after,
            message: "too many failed attempts from this address".into(),
        });
    }
    password::check_rules(&req.password)?;
    let invalid = || ApiError::invalid("setup_token", "setup_token is invalid, already used or expired");
    // The token is looked up before any hashing: a made-up one costs a read, not argon2.
    let hash = state.pepper.hash(req.setup_token.trim());
    if !state.store.setup_pending(&hash, now).await? {
        state.login_failed(ip, now).await;
        return Err(invalid());
    }
    let phc = hash_password(&state, req.password).await?;
    let m = state.store.complete_setup(&hash, &phc, now, &origin.0).await?.ok_or_else(invalid)?;
    Ok(Json(member_view(&m)))
}

#[utoipa::path(get, path = "/v1/members", tag = "members", params(MemberListParams),
    responses((status = 200, body = MemberList), (status = 400, body = ErrorBody)), security(("management_key" = [])))]
pub async fn list_members(
    State(state): State<SharedState>,
    caller: Caller,
    params: Result<Query<MemberListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<MemberList>> {
    let Query(p) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    let limit = super::paging::limit(p.limit.as_deref())?;
    let cursor = super::paging::cursor(p.cursor.as_deref(), "mem_")?;
    let rows = state.store.list_members(&caller.0.workspace_id, cursor, limit).await?;
    let (rows, next_cursor) = super::paging::page(rows, limit, |m| m.id.as_str());
    Ok(Json(MemberList { items: rows.iter().map(member_view).collect(), next_cursor }))
}

#[utoipa::path(get, path = "/v1/members/{id}", tag = "members", params(("id" = String, Path)),
    responses((status = 200, body = MemberView), (status = 404, body = ErrorBody)), security(("management_key" = [])))]
pub async fn get_member(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberView>> {
    Ok(Json(member_view(&target(&state, &caller, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/members/{id}", tag = "members", params(("id" = String, Path)), request_body = RoleChange,
    responses((status = 200, body = MemberView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the last owner", body = ErrorBody)), security(("management_key" = [])))]
pub async fn change_role(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RoleChange>,
) -> ApiResult<Json<MemberView>> {
    caller.require(Action::ManageMembers)?;
    let new = role(&req.role)?;
    let m = target(&state, &caller, &id).await?;
    may_manage(&caller, m.role)?;
    may_manage(&caller, new)?;
    let not_found = || ApiError::NotFound(format!("no member with id {id:?}"));
    let policy = &caller.0.policy;
    // Taking someone out of a quorum in force cannot be done by one it binds alone: it needs
    // the approvals of the strictest rule in force.
    let cuts = m.active
        && policy
            .rules()
            .iter()
            .any(|(_, r)| r.needs_approval() && r.approver_roles.contains(&m.role) && !r.approver_roles.contains(&new));
    // Raising someone to an approver role is governed when the policy says so.
    let governed = new > m.role && policy.member_role.approver_roles.contains(&new);
    let approval = if cuts {
        let change = ApprovalChange::MemberRole { role: new, from: Some(m.role) };
        strictest_approval(&state, &caller, change, &id).await?
    } else if governed {
        approval_for(&state, &caller, ApprovalChange::MemberRole { role: new, from: None }, &id).await?
    } else {
        None
    };
    let what = serde_json::json!({"from": m.role.as_str(), "to": new.as_str()});
    let audit = caller.audit(&origin, AuditAction::MemberRole, audit_target("member", &id, Some(&m.email)), what);
    let now = state.clock.now();
    let m = match approval {
        Some(a) => {
            let audit =
                audit.with(AuditAction::ApprovalRequest, audit_target("approval", &a.id, None), a.change.payload());
            state.store.request_role(&a, new, &audit).await?.ok_or_else(not_found)?
        }
        None => state.store.set_role(&caller.0.workspace_id, &id, new, now, &audit).await?.ok_or_else(not_found)?,
    };
    Ok(Json(member_view(&m)))
}

#[utoipa::path(delete, path = "/v1/members/{id}", tag = "members", params(("id" = String, Path)),
    responses((status = 204, description = "removed with their sessions and management keys"),
        (status = 202, description = "an approver under a rule in force: the removal waits on the request named by `approval_id` (`member.remove`)", body = MemberView),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn remove_member(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Action::ManageMembers)?;
    let m = target(&state, &caller, &id).await?;
    may_manage(&caller, m.role)?;
    let not_found = || ApiError::NotFound(format!("no member with id {id:?}"));
    let audit = caller.audit(
        &origin,
        AuditAction::MemberRemove,
        audit_target("member", &id, Some(&m.email)),
        serde_json::json!({"role": m.role.as_str()}),
    );
    // Removing a member a quorum in force counts on needs that quorum's strictest approvals.
    if m.active && caller.0.policy.binds(m.role) {
        let change = ApprovalChange::MemberRemove { role: m.role, email: m.email.clone() };
        if let Some(a) = strictest_approval(&state, &caller, change, &id).await? {
            let audit =
                audit.with(AuditAction::ApprovalRequest, audit_target("approval", &a.id, None), a.change.payload());
            let m = state.store.request_removal(&a, &audit).await?.ok_or_else(not_found)?;
            return Ok((StatusCode::ACCEPTED, Json(member_view(&m))).into_response());
        }
    }
    if !state.store.remove_member(&caller.0.workspace_id, &id, state.clock.now(), &audit).await? {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/v1/members/me", tag = "members",
    responses((status = 200, body = MemberView)), security(("management_key" = [])))]
pub async fn me(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<MemberView>> {
    let id = caller.0.member_id.clone();
    Ok(Json(member_view(&target(&state, &caller, &id).await?)))
}

#[utoipa::path(post, path = "/v1/members/me/password", tag = "members", request_body = PasswordChange,
    responses((status = 204, description = "password set"), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)), security(("management_key" = [])))]
pub async fn set_password(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    let id = &caller.0.member_id;
    if let Some(current) = state.store.password_hash(id).await? {
        let given = req.current_password.ok_or_else(|| {
            ApiError::invalid("current_password", "current_password is required to change a password")
        })?;
        // Counted like a login, before it is judged: a stolen session cannot guess the
        // password it would need to take the account over.
        crate::lockout::reserve(&state, id).await?;
        let right = match password_matches(&state, given, Some(current)).await {
            Ok(right) => right,
            Err(e) => {
                crate::lockout::release(&state, id).await;
                return Err(e);
            }
        };
        if !right {
            crate::lockout::failed(&state, id, AuditAction::MemberPasswordRefused, &origin.0).await?;
            return Err(ApiError::Forbidden("current_password is wrong".into()));
        }
        crate::lockout::succeeded(&state, id).await?;
    }
    let phc = hash_password(&state, req.password).await?;
    // The session that changed the password stays; every other one ends.
    let keep = (caller.0.kind == CredentialKind::Session).then_some(caller.0.hash.as_str());
    let audit = caller.audit(
        &origin,
        AuditAction::MemberPassword,
        audit_target("member", id, Some(&caller.0.email)),
        serde_json::json!({}),
    );
    state.store.set_password(&caller.0.workspace_id, id, &phc, keep, state.clock.now(), &audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/members/me/mfa/totp", tag = "members",
    responses((status = 200, description = "confirm with a code to turn it on", body = TotpEnrolment),
        (status = 409, body = ErrorBody)), security(("management_key" = [])))]
pub async fn enrol_totp(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
) -> ApiResult<Json<TotpEnrolment>> {
    let p = &caller.0;
    if p.mfa_enabled {
        return Err(ApiError::Conflict { field: None, message: "TOTP is already on; disable it first".into() });
    }
    let secret = mfa::new_secret(state.random.as_ref());
    let sealed = seal::seal_totp(&state.pepper, state.random.as_ref(), &p.member_id, &secret)
        .ok_or_else(|| ApiError::Internal("sealing failed".into()))?;
    let (b32, uri) = mfa::enrolment(&secret, "Keyward", &p.email)
        .ok_or_else(|| ApiError::Internal("cannot build the otpauth URI".into()))?;
    // The secret itself is never on the record.
    let audit = caller.audit(
        &origin,
        AuditAction::MemberMfaEnrol,
        audit_target("member", &p.member_id, Some(&p.email)),
        serde_json::json!({}),
    );
    state.store.set_totp_pending(&p.workspace_id, &p.member_id, &sealed, state.clock.now(), &audit).await?;
    Ok(Json(TotpEnrolment { secret: b32, otpauth_uri: uri }))
}

#[utoipa::path(post, path = "/v1/members/me/mfa/totp/confirm", tag = "members", request_body = OtpBody,
    responses((status = 200, description = "TOTP is on; recovery codes are shown only here", body = RecoveryCodes),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)), security(("management_key" = [])))]
pub async fn confirm_totp(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<OtpBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    let id = &caller.0.member_id;
    let st = state.store.totp_state(id).await?;
    let sealed = st.pending.ok_or_else(|| ApiError::Conflict {
        field: None,
        message: "no TOTP enrolment is waiting: POST /v1/members/me/mfa/totp first".into(),
    })?;
    let secret = seal::open_totp(&state.pepper, id, &sealed)
        .ok_or_else(|| ApiError::Internal("stored TOTP secret cannot be opened".into()))?;
    let otp = req.otp.unwrap_or_default();
    let step = mfa::matching_step(&secret, &otp, state.clock.now())
        .ok_or_else(|| ApiError::MfaRequired { enrol: false, message: "invalid one-time code".into() })?;
    let codes = mfa::recovery_codes(state.random.as_ref());
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(&state, id, c)).collect();
    let audit = caller.audit(
        &origin,
        AuditAction::MemberMfaEnable,
        audit_target("member", id, Some(&caller.0.email)),
        serde_json::json!({}),
    );
    if !state.store.confirm_totp(&caller.0.workspace_id, id, step, &hashes, state.clock.now(), &audit).await? {
        return Err(ApiError::Conflict { field: None, message: "no TOTP enrolment is waiting".into() });
    }
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}

#[utoipa::path(post, path = "/v1/members/me/mfa/totp/disable", tag = "members", request_body = OtpBody,
    responses((status = 204, description = "TOTP is off"), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn disable_totp(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<OtpBody>,
) -> ApiResult<StatusCode> {
    if caller.0.policy.require_mfa {
        return Err(ApiError::Conflict {
            field: None,
            message: "this workspace requires MFA; it cannot be turned off".into(),
        });
    }
    check_code(&state, &caller.0.member_id, req.otp.as_deref()).await?;
    let me = &caller.0.member_id;
    let audit = caller.audit(
        &origin,
        AuditAction::MemberMfaDisable,
        audit_target("member", me, Some(&caller.0.email)),
        serde_json::json!({}),
    );
    state.store.disable_totp(&caller.0.workspace_id, me, state.clock.now(), &audit).await?;
    Ok(StatusCode::NO_CONTENT)
}
