//! Failed secrets per member — passwords and one-time codes alike — counted in the database
//! (so every node sees them): after `account_lockout.0` in a row the account locks for
//! `account_lockout.1`. Without it, anyone holding a session could try all 10^6 codes.

use chrono::{DateTime, Utc};
use keyward_core::audit_action::AuditAction;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The answer while an account is locked.
pub fn locked(state: &AppState, until: DateTime<Utc>) -> ApiError {
    let secs = (until - state.clock.now()).num_seconds().max(1);
    ApiError::RateLimited {
        retry_after: u64::try_from(secs).unwrap_or(1),
        message: "too many failed attempts; try again later".into(),
    }
}

/// Reserves one attempt at the member's password or code before it is judged, or answers
/// the lock: so a locked account answers a right secret exactly as a wrong one, and
/// concurrent attempts judge at most `account_lockout.0` secrets wrong per lock. Every
/// reservation ends in [`succeeded`], [`failed`] or [`release`].
pub async fn reserve(state: &AppState, member_id: &str) -> ApiResult<()> {
    let now = state.clock.now();
    let (limit, lock) = state.config.account_lockout;
    let until = now + chrono::Duration::from_std(lock).unwrap_or(chrono::Duration::minutes(15));
    match state.store.reserve_attempt(member_id, i64::from(limit), until, now).await? {
        keyward_store::SecretAttempt::Reserved => Ok(()),
        keyward_store::SecretAttempt::Locked(until) => {
            tracing::warn!(member_id, "an attempt at a locked account's secret was refused unjudged");
            Err(locked(state, until))
        }
    }
}

/// The reserved attempt was a wrong secret: it stays counted, and is recorded (`action`
/// names what failed).
pub async fn failed(
    state: &AppState,
    member_id: &str,
    action: AuditAction,
    origin: &keyward_store::Origin,
) -> ApiResult<()> {
    state.store.attempt_failed(member_id, state.clock.now(), (action, origin)).await?;
    Ok(())
}

/// The reserved attempt was never judged (the code was not sent, the check could not run):
/// it is given back. Best effort: a failure to give it back leaves it counted.
pub async fn release(state: &AppState, member_id: &str) {
    if let Err(e) = state.store.release_attempt(member_id, i64::from(state.config.account_lockout.0)).await {
        tracing::warn!(member_id, error = %e, "a reserved attempt could not be given back");
    }
}

/// A right secret ends the run of failures.
pub async fn succeeded(state: &AppState, member_id: &str) -> ApiResult<()> {
    Ok(state.store.login_succeeded(member_id).await?)
}

/// Failed logins per address: across nodes through Redis when it is configured, else on
/// this node (`limiter.rs`).
impl AppState {
    /// Seconds until `ip` may try to log in again, when it is blocked: counted across nodes
    /// with Redis, else on this node.
    pub(crate) async fn login_blocked(&self, ip: std::net::IpAddr, now: DateTime<Utc>) -> Option<u64> {
        if let Some(shared) = &self.shared {
            if let Some((n, ttl_ms)) = shared.login_count(&crate::manage::limiter::bucket(ip).to_string()).await {
                return (n >= self.logins.max && ttl_ms > 0)
                    .then(|| u64::try_from(ttl_ms.div_euclid(1000)).unwrap_or(0).max(1));
            }
        }
        self.logins.blocked(ip, now)
    }

    /// Counts a failed login from `ip`.
    pub(crate) async fn login_failed(&self, ip: std::net::IpAddr, now: DateTime<Utc>) {
        if let Some(shared) = &self.shared {
            let window = self.logins.window.to_std().unwrap_or(std::time::Duration::from_secs(900));
            if shared.login_failed(&crate::manage::limiter::bucket(ip).to_string(), window).await.is_some() {
                return;
            }
        }
        self.logins.failed(ip, now);
    }
}
