//! Tokens issued per installation (`--oauth-token-limit`): counted across nodes through
//! Redis when it is configured, else on this node. Counted after the client proved itself
//! (a signed assertion, a live refresh token), so a stranger cannot spend an app's budget.

use chrono::{DateTime, Utc};

use crate::state::AppState;

impl AppState {
    /// Counts a token for installation `id`; `Some(seconds)` to wait when it is one too many.
    pub(crate) async fn token_issue_refused(&self, id: &str, now: DateTime<Utc>) -> Option<u64> {
        let (max, window) = self.config.oauth_token_limit;
        if let Some(shared) = &self.shared {
            if let Some(n) = shared.token_issued(id, window).await {
                return (n > max).then(|| window.as_secs().max(1));
            }
        }
        if let Some(wait) = self.token_issues.blocked_key(&Box::from(id), now) {
            return Some(wait);
        }
        self.token_issues.count_key(id.into(), now);
        None
    }
}
