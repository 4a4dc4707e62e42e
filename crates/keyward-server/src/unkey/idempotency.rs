//! A retried `keys.verifyKey` must not spend twice. Unkey's SDKs retry on 5xx and on
//! connection errors and send no idempotency header of their own; they send the same
//! request again (same headers, same body). Keyward answers a 5xx only before anything is
//! spent, so only a connection lost after the answer was made can double-charge: a client
//! that sends `Idempotency-Key` (the SDKs' per-call `headers`/`http_headers`, kept across
//! their retries) gets, within [`WINDOW_MS`] and on the same node, the first answer again
//! without a second verification. Concurrent twins wait for the first. A request without
//! the header is always a new verification: two identical verifications in a row are two
//! uses, and nothing tells them apart from a retry.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

/// How long an answer is kept for its retries (the SDKs give up after 10 s by default).
pub(crate) const WINDOW_MS: i64 = 60_000;
/// Answers kept at most: past it (after dropping ended ones) a new key is not remembered,
/// so a flood of keys cannot grow memory; its request is verified as usual.
const MAX_KEPT: usize = 50_000;

pub(crate) type Slot = Arc<OnceCell<Value>>;

#[derive(Default)]
pub(crate) struct Answered {
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    slots: HashMap<[u8; 32], (i64, Slot)>,
    /// Keys in the order they came, with when each ends, for pruning.
    order: VecDeque<([u8; 32], i64)>,
}

impl Answered {
    /// The slot of this request (`who`: workspace and credential; `key`: the header; the
    /// body), made if new; `None` when full.
    pub(crate) fn slot(&self, who: &[&str], key: &str, body: &[u8], now_ms: i64) -> Option<Slot> {
        let mut h = Sha256::new();
        for part in who.iter().chain([&key]) {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(body);
        let id: [u8; 32] = h.finalize().into();
        let mut kept = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while kept.order.front().is_some_and(|(_, ends)| *ends <= now_ms) {
            if let Some((old, ends)) = kept.order.pop_front() {
                if kept.slots.get(&old).is_some_and(|(e, _)| *e == ends) {
                    kept.slots.remove(&old);
                }
            }
        }
        if let Some((ends, slot)) = kept.slots.get(&id) {
            if *ends > now_ms {
                return Some(slot.clone());
            }
        }
        if kept.slots.len() >= MAX_KEPT {
            return None;
        }
        let slot: Slot = Arc::default();
        let ends = now_ms + WINDOW_MS;
        kept.slots.insert(id, (ends, slot.clone()));
        kept.order.push_back((id, ends));
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_per_request_within_the_window() {
        let a = Answered::default();
        let s1 = a.slot(&["ws", "cred"], "k1", b"{}", 0).expect("slot");
        let s2 = a.slot(&["ws", "cred"], "k1", b"{}", 1000).expect("slot");
        assert!(Arc::ptr_eq(&s1, &s2));
        let other_body = a.slot(&["ws", "cred"], "k1", b"{ }", 1000).expect("slot");
        assert!(!Arc::ptr_eq(&s1, &other_body));
        let other_caller = a.slot(&["ws", "cred2"], "k1", b"{}", 1000).expect("slot");
        assert!(!Arc::ptr_eq(&s1, &other_caller));
        let later = a.slot(&["ws", "cred"], "k1", b"{}", WINDOW_MS + 1).expect("slot");
        assert!(!Arc::ptr_eq(&s1, &later));
    }

    #[test]
    fn bounded() {
        let a = Answered::default();
        for i in 0..MAX_KEPT {
            assert!(a.slot(&["ws"], &i.to_string(), b"", 0).is_some());
        }
        assert!(a.slot(&["ws"], "one more", b"", 0).is_none());
        // Once the window has passed, room again.
        assert!(a.slot(&["ws"], "one more", b"", WINDOW_MS).is_some());
    }
}
