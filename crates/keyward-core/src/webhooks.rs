//! What webhooks say and when: the event types (which audit action raises which is
//! `AuditAction::webhook_event`'s), endpoint event filters, the body of a message, the retry
//! schedule, and the destinations a delivery refuses (SSRF). Signing is `webhook_signature`'s.

use std::net::IpAddr;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::audit::AuditEvent;
use crate::error::CoreError;

/// Every event type an endpoint can subscribe to (`webhook.test` goes only to the endpoint
/// asked to send it).
pub const EVENT_TYPES: &[&str] = &[
    "key.created",
    "key.updated",
    "key.rotated",
    "key.revoked",
    "key.expired",
    "key.expiring",
    "key.leaked",
    "management_key.leaked",
    "verify_token.leaked",
    "session.leaked",
    "approval.requested",
    "approval.approved",
    "approval.rejected",
    "approval.expired",
    "member.invited",
    "member.joined",
    "member.removed",
    "member.role_changed",
    "webhook.disabled",
    "usage.alert",
    "workspace.suspended",
    "workspace.resumed",
    "app.installed",
    "app.uninstalled",
];

/// Where a delivery stands: waiting (due now or at its next attempt), or finished one of
/// three ways. Stored and shown as [`DeliveryStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Its retries ran out.
    Failed,
    /// Its endpoint was deleted or disabled, or answered 410.
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] =
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed, DeliveryStatus::Cancelled];

    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// Does an endpoint subscribed to `patterns` (`*`, `key.*` or an exact type) get `ty`?
pub fn subscribed(patterns: &[String], ty: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => ty.starts_with(prefix),
        None => p == ty,
    })
}

/// Checks an endpoint's event filter: each an event type, `group.*` or `*`; at least one.
pub fn events(patterns: &[String]) -> Result<Vec<String>, CoreError> {
    if patterns.is_empty() {
        return Err(CoreError::invalid("events", "name at least one event type, \"key.*\" or \"*\""));
    }
    let mut out = Vec::with_capacity(patterns.len());
    for p in patterns {
        let known = match p.strip_suffix('*') {
            Some("") => true,
            Some(prefix) => prefix.ends_with('.') && EVENT_TYPES.iter().any(|t| t.starts_with(prefix)),
            None => EVENT_TYPES.contains(&p.as_str()),
        };
        if !known {
            return Err(CoreError::invalid("events", format!("{p:?} is not an event type (see GET /v1/openapi.json)")));
        }
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// The key an event is about: its target, or the key an approval request concerns.
pub fn key_of(e: &AuditEvent) -> Option<&str> {
    if e.target.kind == "key" {
        return e.target.id.as_deref();
    }
    e.changes.get("key_id").and_then(Value::as_str)
}

/// A message's body, `{"type", "timestamp", "data"}`: `data` is taken from the audit event,
/// which never holds a secret.
pub fn body(ty: &str, e: &AuditEvent) -> Value {
    let mut data = json!({
        "audit_id": e.id,
        "workspace_id": e.workspace_id,
        "actor": e.actor,
        "target": e.target,
        "changes": e.changes,
    });
    if let Some(k) = key_of(e) {
        data["key_id"] = k.into();
    }
    // An alert's webhook says what it is at once: {"key_id", "kind", "detail", "alert_id"}.
    if ty == "usage.alert" {
        for f in ["kind", "detail", "alert_id"] {
            if let Some(v) = e.changes.get(f) {
                data[f] = v.clone();
            }
        }
    }
    // An app's developer is told which installation at once: {"installation_id", "app_id"}.
    if ty.starts_with("app.") {
        for f in ["installation_id", "app_id"] {
            if let Some(v) = e.changes.get(f) {
                data[f] = v.clone();
            }
        }
    }
    json!({"type": ty, "timestamp": e.time.to_rfc3339_opts(SecondsFormat::Millis, true), "data": data})
}

/// The body of `POST /v1/webhooks/{id}/test`.
pub fn test_body(endpoint_id: &str, workspace_id: &str, now: DateTime<Utc>) -> Value {
    json!({
        "type": "webhook.test",
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": {"endpoint_id": endpoint_id, "workspace_id": workspace_id},
    })
}

/// The default waits before each retry (the first attempt is immediate): 5 s, 5 min, 30 min,
/// 2 h, 5 h, 10 h, 10 h — eight attempts in all over about a day and a day and a half.
pub fn default_schedule() -> Vec<Duration> {
    [5, 300, 1800, 7200, 18_000, 36_000, 36_000].into_iter().map(Duration::seconds).collect()
}

/// Parses `--webhook-retry-schedule` (`1s,2s,4s`): the waits before each retry.
pub fn parse_schedule(s: &str) -> Option<Vec<Duration>> {
    let v: Option<Vec<Duration>> = s.split(',').map(crate::duration::parse).collect();
    v.filter(|v| !v.is_empty() && v.len() <= 20)
}

/// The longest `Retry-After` honoured: a receiver cannot park a delivery for longer.
pub const MAX_RETRY_AFTER: Duration = Duration::hours(24);

/// When to try again after failed attempt number `attempts` (1-based), or `None` when the
/// schedule is used up. A `Retry-After` asking for longer than the schedule's wait wins.
pub fn next_attempt(
    schedule: &[Duration],
    attempts: u32,
    retry_after: Option<Duration>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let wait = *schedule.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    let wait = match retry_after {
        Some(r) if r > wait => r.min(MAX_RETRY_AFTER),
        _ => wait,
    };
    Some(now + wait)
}

/// Addresses a delivery never goes to unless private destinations are allowed: loopback,
/// private, link-local (cloud metadata services live at 169.254.169.254), unspecified,
/// carrier-grade NAT, unique-local and multicast — an endpoint URL must not reach into the
/// network Keyward runs in.
pub fn refused_destination(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_destination(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                // fd00:ec2::254 and other metadata services sit in unique-local space (above);
                // NAT64 and 6to4 wrap IPv4 addresses that may be private.
                || s[0] == 0x64 && s[1] == 0xff9b
                || s[0] == 0x2002
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit_action::AuditAction;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn filters() {
        assert!(subscribed(&s(&["key.*"]), "key.created"));
        assert!(!subscribed(&s(&["key.*"]), "approval.requested"));
        assert!(subscribed(&s(&["*"]), "member.joined"));
        assert!(subscribed(&s(&["approval.requested"]), "approval.requested"));
        assert!(!subscribed(&s(&["approval.requested"]), "approval.approved"));
        assert_eq!(events(&s(&["key.*", "key.*", "member.joined"])).unwrap(), s(&["key.*", "member.joined"]));
        for bad in [&[][..], &["key.deleted"], &["ke*"], &["nothing.*"]] {
            assert_eq!(events(&s(bad)).unwrap_err().field(), "events", "{bad:?}");
        }
        for t in EVENT_TYPES {
            assert!(events(&s(&[t])).is_ok());
        }
    }

    #[test]
    fn delivery_statuses_round_trip() {
        for d in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(d.as_str()), Some(d));
        }
        assert_eq!(DeliveryStatus::parse("sent"), None);
    }

    #[test]
    fn every_mapped_action_is_a_known_type() {
        let event_type = |a: &str| AuditAction::parse(a).and_then(AuditAction::webhook_event);
        for a in ["key.create", "key.revoke", "approval.request", "member.role", "key.expiring"] {
            assert!(EVENT_TYPES.contains(&event_type(a).unwrap()), "{a}");
        }
        assert_eq!(event_type("session.login"), None);
        assert_eq!(event_type("policy.update"), None);
    }

    #[test]
    fn schedule_and_retry_after() {
        let now = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let sched = parse_schedule("1s,2s,4s").unwrap();
        assert_eq!(next_attempt(&sched, 1, None, now), Some(now + Duration::seconds(1)));
        assert_eq!(next_attempt(&sched, 3, None, now), Some(now + Duration::seconds(4)));
        assert_eq!(next_attempt(&sched, 4, None, now), None, "used up");
        assert_eq!(next_attempt(&sched, 1, Some(Duration::seconds(30)), now), Some(now + Duration::seconds(30)));
        assert_eq!(next_attempt(&sched, 1, Some(Duration::days(9)), now), Some(now + MAX_RETRY_AFTER));
        assert_eq!(default_schedule().len(), 7);
        assert!(parse_schedule("1s,,2s").is_none());
        assert!(parse_schedule("soon").is_none());
    }

    #[test]
    fn destinations() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(refused_destination(bad.parse().unwrap()), "{bad}");
        }
        for ok in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!refused_destination(ok.parse().unwrap()), "{ok}");
        }
    }
}
