use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How a server runs. Defaults match `keyward serve` without flags.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// When set, the verification endpoints also require `Keyward-Verify-Token`.
    pub verify_token: Option<String>,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed (forward-auth).
    pub trusted_proxies: Vec<IpNet>,
    /// Most key records (and misses) held by the verification cache.
    pub cache_capacity: u64,
    /// How often last-used marks are written.
    pub flush_interval: Duration,
    /// How often nodes sharing an SQLite file look for change events.
    pub poll_interval: Duration,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// How far a signed request's nonce (its time) may be from this server's clock.
    pub signature_window: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5399)),
            verify_token: None,
            trusted_proxies: vec![
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
                IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
            ],
            cache_capacity: 1_000_000,
            flush_interval: Duration::from_secs(2),
            poll_interval: Duration::from_millis(200),
            body_limit: 64 * 1024,
            signature_window: Duration::from_secs(30),
        }
    }
}
