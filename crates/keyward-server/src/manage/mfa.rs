//! Checking a member's one-time code: a TOTP code, whose time step is then claimed so it
//! cannot be used again, or one of their recovery codes, which is used up.

use keyward_core::audit_action::AuditAction;
use keyward_core::mfa;
use keyward_core::pepper::hex_encode;

use crate::error::{ApiError, ApiResult};
use crate::manage::seal;
use crate::state::AppState;

fn refused(message: &str) -> ApiError {
    ApiError::MfaRequired { enrol: false, message: message.into() }
}

/// How a recovery code is stored: keyed by the pepper and bound to its member.
pub fn recovery_hash(state: &AppState, member_id: &str, code: &str) -> String {
    hex_encode(&state.pepper.derive("recovery-code", &format!("{member_id}\0{}", mfa::normalise_recovery(code))))
}

/// Accepts `code` for `member_id` once, or answers `mfa_required`. Every refused code counts
/// against the account like a wrong password; a locked account answers 429 without the code
/// being judged. The attempt is counted before the code is judged (`lockout::reserve`), so
/// codes sent at once cannot outrun the lock.
pub async fn check_code(state: &AppState, member_id: &str, code: Option<&str>) -> ApiResult<()> {
    let code = code.map(str::trim).filter(|c| !c.is_empty()).ok_or_else(|| {
        refused("a one-time code is required: send otp from your authenticator app (or a recovery code)")
    })?;
    crate::manage::lockout::reserve(state, member_id).await?;
    judge_reserved(state, member_id, code, &keyward_store::Origin::default()).await
}

/// Judges `code` for an attempt already reserved (`lockout::reserve`), and settles it:
/// a right code ends the run of failures, a refused one stays counted, anything else
/// (not enrolled, storage away) gives it back.
pub async fn judge_reserved(
    state: &AppState,
    member_id: &str,
    code: &str,
    origin: &keyward_store::Origin,
) -> ApiResult<()> {
    match verify_code(state, member_id, code).await {
        Ok(()) => crate::manage::lockout::succeeded(state, member_id).await,
        Err(e @ ApiError::MfaRequired { enrol: false, .. }) => {
            crate::manage::lockout::failed(state, member_id, AuditAction::MemberCodeRefused, origin).await?;
            tracing::warn!(member_id, "a one-time code was refused");
            Err(e)
        }
        Err(e) => {
            crate::manage::lockout::release(state, member_id).await;
            Err(e)
        }
    }
}

async fn verify_code(state: &AppState, member_id: &str, code: &str) -> ApiResult<()> {
    let st = state.store.totp_state(member_id).await?;
    let Some(sealed) = st.secret else {
        return Err(ApiError::MfaRequired {
            enrol: true,
            message: "this needs MFA: enrol TOTP with POST /v1/members/me/mfa/totp first".into(),
        });
    };
    if mfa::is_recovery_shape(code) {
        let used =
            state.store.use_recovery_code(member_id, &recovery_hash(state, member_id, code), state.clock.now()).await?;
        return if used { Ok(()) } else { Err(refused("invalid or already used recovery code")) };
    }
    let secret = seal::open_totp(&state.pepper, member_id, &sealed)
        .ok_or_else(|| ApiError::Internal("stored TOTP secret cannot be opened".into()))?;
    let step = mfa::matching_step(&secret, code, state.clock.now()).ok_or_else(|| refused("invalid one-time code"))?;
    if !state.store.claim_totp_step(member_id, step).await? {
        return Err(refused("this one-time code was already used; wait for the next one"));
    }
    Ok(())
}
