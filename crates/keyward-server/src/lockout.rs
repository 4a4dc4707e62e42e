//! Failed secrets per member — passwords and one-time codes alike — counted in the database
//! (so every node sees them): after `account_lockout.0` in a row the account locks for
//! `account_lockout.1`. Without it, anyone holding a session could try all 10^6 codes.

use chrono::{DateTime, Utc};

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

/// Refuses while the member's account is locked.
pub async fn ensure_unlocked(state: &AppState, member_id: &str) -> ApiResult<()> {
    match state.store.locked_until(member_id).await? {
        Some(until) if until > state.clock.now() => Err(locked(state, until)),
        _ => Ok(()),
    }
}

/// Counts one failure against the member (and records it: `action` names what failed).
pub async fn failed(state: &AppState, member_id: &str, action: &str, origin: &keyward_store::Origin) -> ApiResult<()> {
    let now = state.clock.now();
    let (limit, lock) = state.config.account_lockout;
    let until = now + chrono::Duration::from_std(lock).unwrap_or(chrono::Duration::minutes(15));
    state.store.login_failed(member_id, i64::from(limit), until, now, (action, origin)).await?;
    Ok(())
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
            if let Some((n, ttl_ms)) = shared.login_count(&ip.to_string()).await {
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
            if shared.login_failed(&ip.to_string(), window).await.is_some() {
                return;
            }
        }
        self.logins.failed(ip, now);
    }
}
