//! Failed logins per client IP address, kept in memory on this node, or in Redis for every
//! node when it is configured (accounts are locked in the database, so that limit holds
//! across nodes anyway).

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Entries beyond which old windows are pruned, so memory stays bounded under a spray.
const PRUNE_AT: usize = 10_000;

pub struct LoginLimiter {
    pub(crate) max: u32,
    pub(crate) window: chrono::Duration,
    seen: Mutex<HashMap<IpAddr, (u32, DateTime<Utc>)>>,
}

impl LoginLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        LoginLimiter {
            max,
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::minutes(15)),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `ip` may try again, when it is blocked.
    pub fn blocked(&self, ip: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (n, since) = seen.get(&ip)?;
        let until = *since + self.window;
        (*n >= self.max && until > now).then(|| u64::try_from((until - now).num_seconds()).unwrap_or(0).max(1))
    }

    pub fn failed(&self, ip: IpAddr, now: DateTime<Utc>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= PRUNE_AT {
            let window = self.window;
            seen.retain(|_, (_, since)| *since + window > now);
        }
        let e = seen.entry(ip).or_insert((0, now));
        if e.1 + self.window <= now {
            *e = (0, now);
        }
        e.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_until_the_window_ends() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for _ in 0..2 {
            l.failed(ip, t);
        }
        assert_eq!(l.blocked(ip, t), None);
        l.failed(ip, t);
        assert_eq!(l.blocked(ip, t + chrono::Duration::seconds(10)), Some(50));
        assert_eq!(l.blocked("198.51.100.8".parse().unwrap(), t), None);
        assert_eq!(l.blocked(ip, t + chrono::Duration::seconds(61)), None);
    }
}
