//! The audit trail's tamper evidence: each workspace's events form a hash chain. An event's
//! `hash` is HMAC-SHA-256, under a key derived from the pepper for the workspace, over the
//! previous event's hash and the event's canonical JSON; the first event's `prev_hash` is 64
//! zeros. Recomputing the chain finds an edited, deleted or reordered event; without the
//! pepper nobody can recompute it. A signed head kept elsewhere (`audit_anchor`) finds a
//! truncated tail.
//!
//! Chains written before the key existed used plain SHA-256. They stay verifiable: plain
//! events are accepted only before the chain's first keyed event, which must then be the
//! `audit.chain_keyed` event recording the switch, and a chain with events must hold a keyed
//! one (a chain recomputed without the pepper has none).
//!
//! Canonical JSON (`docs/AUDIT.md`): the event object without `hash`, keys sorted by their
//! bytes at every level, no whitespace, strings escaped as serde_json escapes them, times as
//! RFC 3339 UTC with milliseconds (`2026-11-29T18:00:00.123Z`), absent values as `null`.

use chrono::SecondsFormat;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use keyward_proto::audit::{AuditActor, AuditEvent, AuditList, AuditTarget, ChainCheck};

use crate::audit_action::AuditAction;
use crate::pepper::Pepper;

/// `prev_hash` of a workspace's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The event that switches a chain written with plain SHA-256 to keyed hashes: the first
/// keyed event after plain ones. `changes`: `plain_through` (the last plain seq) and
/// `checkpoint` (the pruning checkpoint then, or null).
pub const CHAIN_KEYED: &str = AuditAction::AuditChainKeyed.as_str();

/// The event retention appends when it deletes old events. `changes`: `checkpoint`
/// (`{seq, hash}` of the last deleted event, where the chain now starts), `events` (how many
/// went) and `before` (the cut-off time).
pub const PRUNED: &str = AuditAction::AuditPrune.as_str();

/// The key of one workspace's chain: HMAC-SHA-256 under the pepper of
/// `"audit-chain" 0 workspace_id` (`Pepper::derive`).
#[derive(Clone)]
pub struct ChainKey([u8; 32]);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

impl ChainKey {
    pub fn for_workspace(pepper: &Pepper, workspace_id: &str) -> ChainKey {
        ChainKey(pepper.derive("audit-chain", workspace_id))
    }
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

/// An event's place in its chain (the type is the wire crate's).
pub trait Chained: Sized {
    /// The canonical JSON the hash covers: every field but `hash`.
    fn canonical(&self) -> String;
    /// The hash this event must carry: HMAC-SHA-256 under the chain's key of
    /// prev_hash ‖ canonical JSON, lower-case hex.
    fn expected_hash(&self, key: &ChainKey) -> String;
    /// The hash of chains written before keying: SHA-256(prev_hash ‖ canonical JSON), hex.
    fn plain_hash(&self) -> String;
    /// Fills in `prev_hash` and `hash` as the event after `prev` (the head's hash).
    fn seal(self, prev: &str, key: &ChainKey) -> Self;
    /// [`Chained::seal`] the way chains were sealed before keying (tests and tools
    /// showing what an insider without the pepper can write).
    fn seal_plain(self, prev: &str) -> Self;
}

impl Chained for AuditEvent {
    fn canonical(&self) -> String {
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

    fn expected_hash(&self, key: &ChainKey) -> String {
        // HMAC takes a key of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else { return String::new() };
        mac.update(self.prev_hash.as_bytes());
        mac.update(self.canonical().as_bytes());
        crate::pepper::hex_encode(&mac.finalize().into_bytes())
    }

    fn plain_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(self.canonical().as_bytes());
        crate::pepper::hex_encode(&h.finalize())
    }

    fn seal(mut self, prev: &str, key: &ChainKey) -> AuditEvent {
        prepare(&mut self, prev);
        self.hash = self.expected_hash(key);
        self
    }

    fn seal_plain(mut self, prev: &str) -> AuditEvent {
        prepare(&mut self, prev);
        self.hash = self.plain_hash();
        self
    }
}

fn prepare(e: &mut AuditEvent, prev: &str) {
    e.prev_hash = prev.to_string();
    // Stored times keep milliseconds: hash what will be read back.
    e.time = crate::clock::from_ms(crate::clock::to_ms(e.time));
}

/// Does this event name `(seq, hash)` as the chain's pruning checkpoint?
fn names_checkpoint(e: &AuditEvent, seq: i64, hash: &str) -> bool {
    (e.action == PRUNED || e.action == CHAIN_KEYED)
        && e.changes["checkpoint"]["seq"].as_i64() == Some(seq)
        && e.changes["checkpoint"]["hash"].as_str() == Some(hash)
}

/// Walks one workspace's chain from a known point (`GENESIS` and seq 0 for the whole log, or
/// a checkpoint kept when older events were pruned), oldest first.
pub struct ChainWalk {
    key: ChainKey,
    prev_hash: String,
    prev_seq: i64,
    events: u64,
    /// The checkpoint the walk starts from, until a keyed event names it.
    checkpoint: Option<(i64, String)>,
    /// The first plain (pre-keying) event seen, until a keyed one is.
    first_plain: Option<i64>,
    keyed: bool,
    broken: Option<(i64, String)>,
}

impl ChainWalk {
    pub fn from_start(key: ChainKey) -> Self {
        let mut w = Self::from_checkpoint(key, GENESIS, 0);
        w.checkpoint = None;
        w
    }

    pub fn from_checkpoint(key: ChainKey, hash: &str, seq: i64) -> Self {
        ChainWalk {
            key,
            prev_hash: hash.to_string(),
            prev_seq: seq,
            events: 0,
            checkpoint: Some((seq, hash.to_string())),
            first_plain: None,
            keyed: false,
            broken: None,
        }
    }

    /// Why `e`'s hash is not acceptable here, if it is not; moves from plain to keyed.
    fn check_hash(&mut self, e: &AuditEvent) -> Option<String> {
        if e.hash == e.expected_hash(&self.key) {
            if !self.keyed && self.first_plain.is_some() && e.action != CHAIN_KEYED {
                return Some(format!("the first keyed event after plain ones must be {CHAIN_KEYED}"));
            }
            self.keyed = true;
            return None;
        }
        if self.keyed {
            return Some(
                "hash does not match the event's content under this server's key (it was edited, \
                 or rewritten without the pepper)"
                    .to_string(),
            );
        }
        if e.hash == e.plain_hash() {
            // From before the chain was keyed; acceptable only if a keyed switch follows.
            self.first_plain.get_or_insert(e.seq);
            return None;
        }
        Some("hash does not match the event's content (it was edited)".to_string())
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
        } else {
            self.check_hash(e)
        };
        match reason {
            Some(r) => self.broken = Some((e.seq, r)),
            None => {
                if self.keyed && self.checkpoint.as_ref().is_some_and(|(seq, hash)| names_checkpoint(e, *seq, hash)) {
                    self.checkpoint = None;
                }
                self.prev_hash.clone_from(&e.hash);
                self.prev_seq = e.seq;
                self.events += 1;
            }
        }
    }

    pub fn finish(self) -> ChainCheck {
        if let Some((seq, reason)) = self.broken {
            return ChainCheck::Broken { ok: false, broken_at: seq, reason };
        }
        if let Some(first) = self.first_plain.filter(|_| !self.keyed) {
            return ChainCheck::Broken {
                ok: false,
                broken_at: first,
                reason: "no event is keyed with this server's pepper: the chain was recomputed without it".into(),
            };
        }
        if let Some((seq, _)) = self.checkpoint {
            return ChainCheck::Broken {
                ok: false,
                broken_at: seq + 1,
                reason: format!(
                    "the chain starts after seq {seq}, but no {PRUNED} event records that checkpoint (events were deleted)"
                ),
            };
        }
        ChainCheck::Intact { ok: true, events: self.events, head: self.prev_hash }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

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

    fn key() -> ChainKey {
        ChainKey::for_workspace(&Pepper::from_hex(&"ab".repeat(32)).unwrap(), "ws_1")
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map_or(GENESIS.to_string(), |e| e.hash.clone());
            out.push(event(seq, serde_json::json!({"name": {"to": format!("k{seq}")}, "a": 1})).seal(&prev, &key()));
        }
        out
    }

    /// `plain` events sealed with plain SHA-256, as before keying, then the switch and `keyed`
    /// keyed ones.
    fn legacy_chain(plain: i64, keyed: i64) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for seq in 1..=plain + 1 + keyed {
            let prev = out.last().map_or(GENESIS.to_string(), |e| e.hash.clone());
            let e = event(seq, serde_json::json!({"n": seq}));
            out.push(match seq {
                s if s <= plain => e.seal_plain(&prev),
                s if s == plain + 1 => AuditEvent { action: CHAIN_KEYED.into(), ..e }.seal(&prev, &key()),
                _ => e.seal(&prev, &key()),
            });
        }
        out
    }

    fn check(events: &[AuditEvent]) -> ChainCheck {
        let mut w = ChainWalk::from_start(key());
        events.iter().for_each(|e| w.push(e));
        w.finish()
    }

    /// Every event re-sealed with plain SHA-256: what an insider without the pepper can do.
    fn recomputed_plain(events: &[AuditEvent]) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for e in events {
            let prev = out.last().map_or(GENESIS.to_string(), |x| x.hash.clone());
            out.push(e.clone().seal_plain(&prev));
        }
        out
    }

    #[test]
    fn canonical_form_is_sorted_compact_and_stable() {
        let e = event(1, serde_json::json!({"z": 1, "a": {"y": true, "b": null}})).seal(GENESIS, &key());
        let c = e.canonical();
        assert!(c.starts_with(r#"{"action":"key.create","actor":{"id":"mem_1","name":"ann@example.com","type":"member"},"changes":{"a":{"b":null,"y":true},"z":1},"id":"aud_1""#), "{c}");
        assert!(c.contains(r#""time":"2027-01-15T08:00:00.124Z""#), "{c}");
        // The hash is HMAC-SHA-256 under derive("audit-chain", workspace) of prev_hash ‖
        // canonical, hex.
        let pepper = Pepper::from_hex(&"ab".repeat(32)).unwrap();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&pepper.derive("audit-chain", "ws_1")).unwrap();
        mac.update(GENESIS.as_bytes());
        mac.update(c.as_bytes());
        assert_eq!(e.hash, crate::pepper::hex_encode(&mac.finalize().into_bytes()));
        // The plain form, as chains were sealed before keying.
        let mut h = Sha256::new();
        h.update(GENESIS.as_bytes());
        h.update(c.as_bytes());
        assert_eq!(e.plain_hash(), crate::pepper::hex_encode(&h.finalize()));
    }

    #[test]
    fn an_intact_chain_and_its_head() {
        let c = chain(5);
        assert_eq!(check(&c), ChainCheck::Intact { ok: true, events: 5, head: c[4].hash.clone() });
        // From a checkpoint (after pruning seq 1-2): a keyed pruning event must name it.
        let mut w = ChainWalk::from_checkpoint(key(), &c[1].hash, 2);
        c[2..].iter().for_each(|e| w.push(e));
        assert!(matches!(w.finish(), ChainCheck::Broken { broken_at: 3, .. }), "no pruning event names it");
        let mut pruned = c[2..].to_vec();
        let prune = AuditEvent {
            action: PRUNED.into(),
            changes: serde_json::json!({"checkpoint": {"seq": 2, "hash": c[1].hash}, "events": 2}),
            ..event(6, Value::Null)
        };
        pruned.push(prune.seal(&c[4].hash, &key()));
        let mut w = ChainWalk::from_checkpoint(key(), &c[1].hash, 2);
        pruned.iter().for_each(|e| w.push(e));
        assert!(matches!(w.finish(), ChainCheck::Intact { events: 4, .. }));
        // Moving the checkpoint further (deleting more from the front) is found.
        let mut w = ChainWalk::from_checkpoint(key(), &c[2].hash, 3);
        pruned[1..].iter().for_each(|e| w.push(e));
        assert!(matches!(w.finish(), ChainCheck::Broken { broken_at: 4, .. }));
    }

    #[test]
    fn a_chain_recomputed_without_the_pepper_is_refused() {
        let c = chain(5);
        let forged = recomputed_plain(&c);
        assert!(matches!(check(&forged), ChainCheck::Broken { broken_at: 1, .. }), "{:?}", check(&forged));
        // Under another pepper's key, nothing verifies either.
        let other = ChainKey::for_workspace(&Pepper::from_hex(&"cd".repeat(32)).unwrap(), "ws_1");
        let mut w = ChainWalk::from_start(other);
        c.iter().for_each(|e| w.push(e));
        assert!(matches!(w.finish(), ChainCheck::Broken { broken_at: 1, .. }));
        // A plain event appended after keyed ones is refused.
        let mut tail = c.clone();
        tail.push(event(6, Value::Null).seal_plain(&c[4].hash));
        assert!(matches!(check(&tail), ChainCheck::Broken { broken_at: 6, .. }));
    }

    #[test]
    fn chains_from_before_keying_verify_through_the_recorded_switch() {
        let c = legacy_chain(3, 2);
        assert_eq!(check(&c), ChainCheck::Intact { ok: true, events: 6, head: c[5].hash.clone() });
        // Plain events stay tamper-evident.
        let mut edited = c.clone();
        edited[1].changes = serde_json::json!({"n": 99});
        assert!(matches!(check(&edited), ChainCheck::Broken { broken_at: 2, .. }));
        // Without a keyed switch the plain prefix alone does not pass.
        assert!(matches!(check(&c[..3]), ChainCheck::Broken { broken_at: 1, .. }));
        // The first keyed event after plain ones must be the switch.
        let mut c2 = c[..3].to_vec();
        c2.push(event(4, Value::Null).seal(&c[2].hash, &key()));
        assert!(matches!(check(&c2), ChainCheck::Broken { broken_at: 4, .. }));
    }

    #[test]
    fn edits_deletions_and_reorders_are_found() {
        let mut edited = chain(5);
        edited[2].changes = serde_json::json!({"name": {"to": "forged"}});
        assert!(matches!(check(&edited), ChainCheck::Broken { broken_at: 3, .. }));

        let mut rehashed = chain(5);
        rehashed[2].actor.id = Some("mem_2".into());
        let prev = rehashed[1].hash.clone();
        rehashed[2] = rehashed[2].clone().seal(&prev, &key());
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
