//! Failed logins per client IP address, kept in memory on this node, or in Redis for every
//! node when it is configured (accounts are locked in the database, so that limit holds
//! across nodes anyway).

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// The address a failure is counted against: an IPv4 address itself, an IPv6 address's /64
/// (one host commonly holds a whole /64, so counting single addresses would let it rotate
/// through 2^64 of them). An IPv4-mapped IPv6 address counts as its IPv4 address.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// Entries beyond which old windows are pruned, so memory stays bounded under a spray.
const PRUNE_AT: usize = 10_000;

/// Attempts counted per address (failed logins, leak reports).
pub type LoginLimiter = WindowCounter<IpAddr>;

/// Counts per key in fixed windows, in memory, bounded by pruning ended windows.
pub struct WindowCounter<K> {
    pub(crate) max: u32,
    pub(crate) window: chrono::Duration,
    seen: Mutex<HashMap<K, (u32, DateTime<Utc>)>>,
}

impl<K: std::hash::Hash + Eq> WindowCounter<K> {
    pub fn new(max: u32, window: Duration) -> Self {
        WindowCounter {
            max,
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::minutes(15)),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `k` may try again, when it has reached the count.
    pub fn blocked_key(&self, k: &K, now: DateTime<Utc>) -> Option<u64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (n, since) = seen.get(k)?;
        let until = *since + self.window;
        (*n >= self.max && until > now).then(|| u64::try_from((until - now).num_seconds()).unwrap_or(0).max(1))
    }

    pub fn count_key(&self, k: K, now: DateTime<Utc>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= PRUNE_AT {
            let window = self.window;
            seen.retain(|_, (_, since)| *since + window > now);
        }
        let e = seen.entry(k).or_insert((0, now));
        if e.1 + self.window <= now {
            *e = (0, now);
        }
        e.0 += 1;
    }
}

impl WindowCounter<IpAddr> {
    /// Seconds until `ip` may try again, when it is blocked.
    pub fn blocked(&self, ip: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        self.blocked_key(&bucket(ip), now)
    }

    pub fn failed(&self, ip: IpAddr, now: DateTime<Utc>) {
        self.count_key(bucket(ip), now)
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

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), bucket(ip("2001:db8:1:2:ffff:1:2:3")));
        assert_ne!(bucket(ip("2001:db8:1:2::1")), bucket(ip("2001:db8:1:3::1")));
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(bucket(ip("198.51.100.7")), ip("198.51.100.7"));

        let l = LoginLimiter::new(2, Duration::from_secs(60));
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        l.failed(ip("2001:db8:1:2::1"), t);
        l.failed(ip("2001:db8:1:2::2"), t);
        assert_eq!(l.blocked(ip("2001:db8:1:2:ffff::9"), t), Some(60), "one /64 shares a bucket");
        assert_eq!(l.blocked(ip("2001:db8:1:3::1"), t), None, "another /64 does not");
    }
}
