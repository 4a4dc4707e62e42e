//! Where a delivery may go. Every host is resolved by Keyward itself and each address it
//! resolves to is checked before a connection is made (so a name that resolves to a private
//! address — DNS rebinding included — is refused at connect time, not only when the endpoint
//! was registered); literal IP hosts are checked the same way; redirects are never followed
//! and no proxy is used.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use keyward_core::webhooks::refused_destination;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Resolves names and drops the addresses a delivery may not reach.
struct CheckedResolver {
    allow_private: bool,
}

/// Why a delivery was not even attempted.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the host resolves only to refused (loopback, private or link-local) addresses")
    }
}

impl std::error::Error for Refused {}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = found.into_iter().filter(|a| allow || !refused_destination(a.ip())).collect();
            if ok.is_empty() {
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client deliveries use: checked resolution, no redirects, no proxy, a time-out.
pub fn client(allow_private: bool, timeout: Duration) -> std::io::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver { allow_private }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("Keyward-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(std::io::Error::other)
}

/// The literal IP of a URL's host, if it has one (the resolver is not asked for those).
pub fn literal_ip(url: &str) -> Option<IpAddr> {
    let host = reqwest::Url::parse(url).ok()?.host()?.to_owned();
    match host {
        url::Host::Ipv4(a) => Some(IpAddr::V4(a)),
        url::Host::Ipv6(a) => Some(IpAddr::V6(a)),
        url::Host::Domain(_) => None,
    }
}

/// Refuses a URL whose host is a literal refused address before anything is sent (names,
/// `localhost` among them, are checked each time they are resolved). `None` when it may be
/// tried.
pub fn refused_url(url: &str, allow_private: bool) -> Option<&'static str> {
    if allow_private {
        return None;
    }
    if reqwest::Url::parse(url).is_err() {
        return Some("the URL cannot be parsed");
    }
    match literal_ip(url) {
        Some(ip) if refused_destination(ip) => {
            Some("deliveries to loopback, private and link-local addresses are refused (--webhook-allow-private allows them)")
        }
        _ => None,
    }
}

/// Is `e` (or what caused it) the resolver's refusal?
pub fn is_refusal(e: &reqwest::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.is::<Refused>() {
            return true;
        }
        src = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_hosts() {
        assert!(refused_url("http://127.0.0.1:8080/x", false).is_some());
        assert!(refused_url("http://[::1]/x", false).is_some());
        assert!(refused_url("http://169.254.169.254/latest/meta-data", false).is_some());
        assert!(refused_url("https://93.184.216.34/x", false).is_none());
        assert!(refused_url("https://hooks.example.com/x", false).is_none());
        assert!(refused_url("http://127.0.0.1:8080/x", true).is_none());
    }
}
