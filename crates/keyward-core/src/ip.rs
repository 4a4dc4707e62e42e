//! IP allowlists: single IPv4/IPv6 addresses and CIDR ranges.

use crate::error::CoreError;
use ipnet::IpNet;
use std::net::IpAddr;

pub const MAX_ENTRIES: usize = 100;

/// Parses one allowlist entry; a bare address becomes a /32 or /128.
pub fn parse_entry(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

/// Validates and normalises an allowlist, naming the offending entry.
pub fn normalise(entries: &[String]) -> Result<Vec<String>, CoreError> {
    if entries.len() > MAX_ENTRIES {
        return Err(CoreError::invalid("ip_allowlist", format!("at most {MAX_ENTRIES} entries")));
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            parse_entry(e).map(|n| n.to_string()).ok_or_else(|| {
                CoreError::invalid(format!("ip_allowlist[{i}]"), format!("{e:?} is not an IP address or CIDR range"))
            })
        })
        .collect()
}

/// Is `ip` allowed by the (already normalised) list? An empty list allows everything.
pub fn allowed(list: &[IpNet], ip: IpAddr) -> bool {
    if list.is_empty() {
        return true;
    }
    let ip = canonical(ip);
    list.iter().any(|n| n.contains(&ip))
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) compare as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| parse_entry(s).unwrap()).collect()
    }

    #[test]
    fn v4_v6_and_cidr() {
        let l = list(&["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]);
        assert!(allowed(&l, "203.0.113.9".parse().unwrap()));
        assert!(allowed(&l, "198.51.100.7".parse().unwrap()));
        assert!(!allowed(&l, "198.51.100.8".parse().unwrap()));
        assert!(allowed(&l, "2001:db8:1::5".parse().unwrap()));
        assert!(!allowed(&l, "2001:db9::1".parse().unwrap()));
        assert!(allowed(&l, "::ffff:203.0.113.1".parse().unwrap()));
        assert!(allowed(&[], "10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn normalise_names_the_bad_entry() {
        let e = normalise(&["10.0.0.0/8".into(), "10.0.0.0/33".into()]).unwrap_err();
        assert_eq!(e.field(), "ip_allowlist[1]");
        assert_eq!(normalise(&["10.1.2.3/8".into()]).unwrap(), vec!["10.0.0.0/8"]);
        assert!(normalise(&["not-an-ip".into()]).is_err());
    }
}
