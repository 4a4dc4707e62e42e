//! Password logins: session tokens (bearer credentials for the management API) and logout;
//! the session itself, opened here for single sign-on too (`oidc/sign_in.rs`).

use keyward_core::audit_action::AuditAction;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use keyward_core::keyformat;
use keyward_core::wire::governance::{LoginRequest, SessionView};
use keyward_store::{CredentialKind, LoginRecord, NewSession};

use crate::audit::RequestOrigin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::mfa::judge_reserved;
use crate::routes::members::password_matches;
use crate::state::{AppState, SharedState};

fn wrong() -> ApiError {
    ApiError::Unauthenticated("invalid email or password".into())
}

#[utoipa::path(post, path = "/v1/sessions", tag = "members", request_body = LoginRequest,
    responses((status = 201, body = SessionView), (status = 401, description = "wrong credentials, or `mfa_required`", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<(StatusCode, Json<SessionView>)> {
    let ip = state.client_ip(peer.ip(), &headers);
    let now = state.clock.now();
    let RequestOrigin(origin) = origin;
    if let Some(retry_after) = state.login_blocked(ip, now).await {
        return Err(ApiError::RateLimited {
            retry_after,
            message: "too many failed logins from this address; try again later".into(),
        });
    }
    let email = keyward_core::validate::email(&req.email)?;
    let mut records = state.store.login_records(&email).await?;
    records.retain(|r| r.password_hash.is_some());
    if let Some(ws) = &req.workspace_id {
        records.retain(|r| &r.member.workspace_id == ws);
    }
    // Nothing is answered before a password is checked: an unknown email and an email in
    // several workspaces cost the same argon2 work and read alike to someone without the
    // password. Each account's attempt is counted before its password is judged, and a
    // locked account's password is not judged at all: the lock answers a right password
    // exactly as a wrong one.
    let mut matched = Vec::new();
    let mut locked = None;
    if records.is_empty() {
        password_matches(&state, req.password.clone(), None).await?;
    }
    for rec in records {
        if let Err(e) = judge_password(&state, &rec, &req.password, &origin, &mut matched, &mut locked).await {
            // Attempts reserved for records that matched are not failures: give them back.
            release_all(&state, &matched).await;
            return Err(e);
        }
    }
    if matched.len() > 1 {
        release_all(&state, &matched).await;
        return Err(ApiError::invalid("workspace_id", "this email is a member of several workspaces; name one"));
    }
    let Some(rec) = matched.pop() else {
        state.login_failed(ip, now).await;
        return Err(locked.unwrap_or_else(wrong));
    };
    let session = open_session(&state, rec, req.otp.as_deref(), ip, origin, "password").await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// A session for a member whose first factor was accepted — a password, or an email the
/// sign-in provider verified — within the attempt reserved for it (`lockout::reserve`):
/// with MFA the one-time code is judged in that attempt (none sent: the attempt is given
/// back and `mfa_required` answered), without it the attempt ends the run of failures.
/// The sign-in goes on the record with its `method`.
pub(crate) async fn open_session(
    state: &AppState,
    rec: LoginRecord,
    otp: Option<&str>,
    ip: IpAddr,
    origin: keyward_store::Origin,
    method: &str,
) -> ApiResult<SessionView> {
    let now = state.clock.now();
    if rec.member.mfa_enabled {
        let Some(otp) = otp.map(str::trim).filter(|o| !o.is_empty()) else {
            // The first factor was right: asking for the second is not a failure.
            crate::lockout::release(state, &rec.member.id).await;
            return Err(ApiError::MfaRequired { enrol: false, message: "this account has MFA: send otp".into() });
        };
        // One attempt covers the first factor and its code.
        if let Err(e) = judge_reserved(state, &rec.member.id, otp, &origin).await {
            // The code was counted against the account; count it against the address.
            state.login_failed(ip, now).await;
            return Err(e);
        }
    } else {
        crate::lockout::succeeded(state, &rec.member.id).await?;
    }
    let token = keyformat::generate_session(&rec.prefix, state.random.as_ref());
    let expires_at = now + chrono::Duration::from_std(state.config.session_ttl).unwrap_or(chrono::Duration::hours(12));
    let m = &rec.member;
    let what = serde_json::json!({"mfa": m.mfa_enabled, "method": method});
    let audit = keyward_store::AuditRecord::by_member(&m.id, &m.email, AuditAction::SessionLogin, what, origin);
    let session = NewSession {
        hash: state.pepper.hash(&token),
        workspace_id: m.workspace_id.clone(),
        member_id: m.id.clone(),
        created_at: now,
        expires_at,
    };
    state.store.create_session(&session, &audit).await?;
    Ok(SessionView {
        token,
        expires_at,
        member_id: rec.member.id,
        workspace_id: rec.member.workspace_id,
        role: rec.member.role,
    })
}

/// One record's password check, within a reserved attempt: a right one joins `matched`, a
/// wrong one is counted, a locked account is remembered in `locked`.
async fn judge_password(
    state: &SharedState,
    rec: &LoginRecord,
    password: &str,
    origin: &keyward_store::Origin,
    matched: &mut Vec<LoginRecord>,
    locked: &mut Option<ApiError>,
) -> ApiResult<()> {
    if let Err(e) = crate::lockout::reserve(state, &rec.member.id).await {
        return match e {
            ApiError::RateLimited { .. } => {
                *locked = Some(e);
                Ok(())
            }
            e => Err(e),
        };
    }
    match password_matches(state, password.to_string(), rec.password_hash.clone()).await {
        Ok(true) => {
            matched.push(rec.clone());
            Ok(())
        }
        Ok(false) => crate::lockout::failed(state, &rec.member.id, AuditAction::SessionLoginFailed, origin).await,
        Err(e) => {
            crate::lockout::release(state, &rec.member.id).await;
            Err(e)
        }
    }
}

async fn release_all(state: &SharedState, matched: &[LoginRecord]) {
    for rec in matched {
        crate::lockout::release(state, &rec.member.id).await;
    }
}
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "members",
    responses((status = 204, description = "logged out; the token no longer works"), (status = 400, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn logout(State(state): State<SharedState>, caller: Caller, origin: RequestOrigin) -> ApiResult<StatusCode> {
    if caller.0.kind != CredentialKind::Session {
        return Err(ApiError::Invalid {
            field: None,
            message: "this credential is a management key, not a session; nothing to log out".into(),
        });
    }
    let me = &caller.0.member_id;
    let audit = caller.audit(
        &origin,
        AuditAction::SessionLogout,
        crate::audit::target("member", me, Some(&caller.0.email)),
        serde_json::json!({}),
    );
    state.store.delete_session(&caller.0.workspace_id, &caller.0.hash, state.clock.now(), &audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/sessions", tag = "members",
    responses((status = 204, description = "every session of the caller's member ended (log out everywhere)")),
    security(("management_key" = [])))]
pub async fn logout_everywhere(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
) -> ApiResult<StatusCode> {
    let me = &caller.0.member_id;
    let audit = caller.audit(
        &origin,
        AuditAction::SessionLogoutAll,
        crate::audit::target("member", me, Some(&caller.0.email)),
        serde_json::json!({}),
    );
    state.store.delete_member_sessions(&caller.0.workspace_id, me, state.clock.now(), &audit).await?;
    Ok(StatusCode::NO_CONTENT)
}
