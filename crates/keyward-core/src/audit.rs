//! The audit trail's tamper evidence: each workspace's events form a hash chain. An event's
//! `hash` is SHA-256 over the previous event's hash and the event's canonical JSON; the first
//! event's `prev_hash` is 64 zeros. Recomputing the chain finds an edited, deleted or
//! reordered event, and a head recorded elsewhere finds a truncated tail.
//!
//! Canonical JSON (`docs/AUDIT.md`): the event object without `hash`, keys sorted by their
//! bytes at every level, no whitespace, strings escaped as serde_json escapes them, times as
//! RFC 3339 UTC with milliseconds (`2026-11-29T18:00:00.123Z`), absent values as `null`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// `prev_hash` of a workspace's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it: a member (by session), a management key, or the server itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditActor {
    /// `member`, `management_key` or `system`
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
}

/// What it was done to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditTarget {
    /// `key`, `member`, `role`, `service_account`, `policy`, `approval`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
}

/// One audit event as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub workspace_id: String,
    pub actor: AuditActor,
    /// e.g. `key.create`
    pub action: String,
    pub target: AuditTarget,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// What changed; never a secret.
    #[schema(value_type = Object)]
    pub changes: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Writes `v` with object keys in byte order (serde_json's `Map` may keep insertion order).
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

impl AuditEvent {
    /// The canonical JSON the hash covers: every field but `hash`.
    pub fn canonical(&self) -> String {
        let time = self.time.to_rfc3339_opts(SecondsFormat::Millis, true);
        let v = serde_json::json!({
            "id": self.id,
            "seq": self.seq,
            "time": time,
            "workspace_id": self.workspace_id,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
            "changes": self.changes,
            "prev_hash": self.prev_hash,
        });
        let mut out = String::with_capacity(256);
        write_canonical(&v, &mut out);
        out
    }

    /// The hash this event must carry: SHA-256(prev_hash ‖ canonical JSON), lower-case hex.
    pub fn expected_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(self.canonical().as_bytes());
        crate::pepper::hex_encode(&h.finalize())
    }

    /// Fills in `prev_hash` and `hash` as the event after `prev` (the head's hash).
    pub fn seal(mut self, prev: &str) -> AuditEvent {
        self.prev_hash = prev.to_string();
        // Stored times keep milliseconds: hash what will be read back.
        self.time = crate::clock::from_ms(crate::clock::to_ms(self.time));
        self.hash = self.expected_hash();
        self
    }
}

/// `GET /v1/audit`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

/// The outcome of recomputing a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ChainCheck {
    Intact { ok: bool, events: u64, head: String },
    Broken { ok: bool, broken_at: i64, reason: String },
}

/// Walks one workspace's chain from a known point (`GENESIS` and seq 0 for the whole log, or
/// a checkpoint kept when older events were pruned), oldest first.
pub struct ChainWalk {
    prev_hash: String,
    prev_seq: i64,
    events: u64,
    broken: Option<(i64, String)>,
}

impl ChainWalk {
    pub fn from_start() -> Self {
        Self::from_checkpoint(GENESIS, 0)
    }

    pub fn from_checkpoint(hash: &str, seq: i64) -> Self {
        ChainWalk { prev_hash: hash.to_string(), prev_seq: seq, events: 0, broken: None }
    }

    /// Takes the next event; after the first break, the rest is ignored.
    pub fn push(&mut self, e: &AuditEvent) {
        if self.broken.is_some() {
            return;
        }
        let reason = if e.seq != self.prev_seq + 1 {
            Some(format!(
                "expected seq {} here, found {} (an event is missing or out of order)",
                self.prev_seq + 1,
                e.seq
            ))
        } else if e.prev_hash != self.prev_hash {
            Some("prev_hash does not match the previous event's hash".to_string())
        } else if e.hash != e.expected_hash() {
            Some("hash does not match the event's content (it was edited)".to_string())
        } else {
            None
        };
        match reason {
            Some(r) => self.broken = Some((e.seq, r)),
            None => {
                self.prev_hash.clone_from(&e.hash);
                self.prev_seq = e.seq;
                self.events += 1;
            }
        }
    }

    pub fn finish(self) -> ChainCheck {
        match self.broken {
            Some((seq, reason)) => ChainCheck::Broken { ok: false, broken_at: seq, reason },
            None => ChainCheck::Intact { ok: true, events: self.events, head: self.prev_hash },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, changes: Value) -> AuditEvent {
        AuditEvent {
            id: format!("aud_{seq}"),
            seq,
            time: DateTime::from_timestamp_millis(1_800_000_000_123 + seq).unwrap(),
            workspace_id: "ws_1".into(),
            actor: AuditActor { kind: "member".into(), id: Some("mem_1".into()), name: Some("ann@example.com".into()) },
            action: "key.create".into(),
            target: AuditTarget { kind: "key".into(), id: Some(format!("key_{seq}")), name: Some("billing".into()) },
            ip: Some("198.51.100.7".into()),
            user_agent: None,
            request_id: Some("req_1".into()),
            changes,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map_or(GENESIS.to_string(), |e| e.hash.clone());
            out.push(event(seq, serde_json::json!({"name": {"to": format!("k{seq}")}, "a": 1})).seal(&prev));
        }
        out
    }

    fn check(events: &[AuditEvent]) -> ChainCheck {
        let mut w = ChainWalk::from_start();
        events.iter().for_each(|e| w.push(e));
        w.finish()
    }

    #[test]
    fn canonical_form_is_sorted_compact_and_stable() {
        let e = event(1, serde_json::json!({"z": 1, "a": {"y": true, "b": null}})).seal(GENESIS);
        let c = e.canonical();
        assert!(c.starts_with(r#"{"action":"key.create","actor":{"id":"mem_1","name":"ann@example.com","type":"member"},"changes":{"a":{"b":null,"y":true},"z":1},"id":"aud_1""#), "{c}");
        assert!(c.contains(r#""time":"2027-01-15T08:00:00.124Z""#), "{c}");
        // The hash is over prev_hash ‖ canonical, hex.
        let mut h = Sha256::new();
        h.update(GENESIS.as_bytes());
        h.update(c.as_bytes());
        assert_eq!(e.hash, crate::pepper::hex_encode(&h.finalize()));
    }

    #[test]
    fn an_intact_chain_and_its_head() {
        let c = chain(5);
        assert_eq!(check(&c), ChainCheck::Intact { ok: true, events: 5, head: c[4].hash.clone() });
        // From a checkpoint (after pruning seq 1-2).
        let mut w = ChainWalk::from_checkpoint(&c[1].hash, 2);
        c[2..].iter().for_each(|e| w.push(e));
        assert!(matches!(w.finish(), ChainCheck::Intact { events: 3, .. }));
    }

    #[test]
    fn edits_deletions_and_reorders_are_found() {
        let mut edited = chain(5);
        edited[2].changes = serde_json::json!({"name": {"to": "forged"}});
        assert!(matches!(check(&edited), ChainCheck::Broken { broken_at: 3, .. }));

        let mut rehashed = chain(5);
        rehashed[2].actor.id = Some("mem_2".into());
        let prev = rehashed[1].hash.clone();
        rehashed[2] = rehashed[2].clone().seal(&prev);
        // Re-sealing one event breaks the next one's link.
        assert!(matches!(check(&rehashed), ChainCheck::Broken { broken_at: 4, .. }));

        let mut deleted = chain(5);
        deleted.remove(1);
        assert!(matches!(check(&deleted), ChainCheck::Broken { broken_at: 3, .. }));

        let mut reordered = chain(5);
        reordered.swap(2, 3);
        assert!(matches!(check(&reordered), ChainCheck::Broken { broken_at: 4, .. }));
    }
}
