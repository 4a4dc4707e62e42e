//! Anonymous leak reports per address: counted across nodes through Redis when it is
//! configured, else on this node (the login throttle's counter and address buckets).

use chrono::{DateTime, Utc};
use std::net::IpAddr;

use crate::manage::limiter::bucket;
use crate::state::AppState;

impl AppState {
    /// Counts a report from `ip`; `Some(seconds)` to wait when it is one too many.
    pub(crate) async fn leak_report_refused(&self, ip: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        let (max, window) = self.config.leak_report_limit;
        if let Some(shared) = &self.shared {
            if let Some(n) = shared.leak_report(&bucket(ip).to_string(), window).await {
                return (n > max).then(|| window.as_secs().max(1));
            }
        }
        if let Some(wait) = self.leak_reports.blocked(ip, now) {
            return Some(wait);
        }
        self.leak_reports.failed(ip, now);
        None
    }
}
