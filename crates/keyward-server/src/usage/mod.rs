//! Usage counted on the verify path: the in-memory buffer flushed in batches (here) and the
//! rollups, retention and alert rules the lease holder runs (`rollup`).
//!
//! What the verify path remembers of each verification — per key, per minute, per code, the
//! last-used mark and the addresses seen — kept in memory and written in batches, so a
//! request never waits on (or causes) a storage write of its own. Flushes add to what other
//! nodes wrote (increments), so several nodes' counts add up.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};

use keyward_core::codes::VerifyCode;
use keyward_store::{LastUsed, SeenIp, Store, TagUsageRow, UsageRow, MINUTE_MS};

pub(crate) mod rollup;

const CODES: usize = VerifyCode::ALL.len();

/// Distinct addresses remembered per key between two flushes (enough to find a new one).
const IPS_PER_FLUSH: usize = 8;

/// Distinct (tag, minute) counts a key keeps between two flushes: tags are the caller's
/// words, so a caller inventing new ones cannot grow memory or storage past this; the rest
/// are counted as dropped (`keyward_usage_tags_dropped_total`).
pub const TAGS_PER_FLUSH: usize = 32;

/// One tag's counts per code in one minute.
struct TagCount {
    tag: Box<str>,
    minute: i64,
    counts: [u32; CODES],
}

/// One key's (or one workspace's unknown keys') verifications since the last flush.
#[derive(Default)]
struct Slot {
    workspace_id: String,
    /// Refusals bound to a workspace this node has not yet seen in storage: the flush looks
    /// it up, and counts them server-wide when no such workspace exists.
    unresolved: bool,
    last: Option<(i64, Option<IpAddr>)>,
    /// Minute start (ms) → count per code; one or two minutes between flushes.
    minutes: Vec<(i64, [u32; CODES])>,
    ips: Vec<(IpAddr, i64)>,
    /// Counts per tag (verifications that named tags), at most [`TAGS_PER_FLUSH`].
    tags: Vec<TagCount>,
}

impl Slot {
    fn count(&mut self, at_ms: i64, code: VerifyCode) {
        let minute = at_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        match self.minutes.iter_mut().rev().find(|(m, _)| *m == minute) {
            Some((_, c)) => c[code.index()] = c[code.index()].saturating_add(1),
            None => {
                let mut c = [0u32; CODES];
                c[code.index()] = 1;
                self.minutes.push((minute, c));
            }
        }
    }

    /// Counts one tagged verification; `false` when the slot has no room for a new tag.
    fn count_tag(&mut self, tag: &str, minute: i64, code: VerifyCode, n: u32) -> bool {
        let full = self.tags.len() >= TAGS_PER_FLUSH;
        match self.tags.iter_mut().find(|t| t.minute == minute && &*t.tag == tag) {
            Some(t) => t.counts[code.index()] = t.counts[code.index()].saturating_add(n),
            None if full => return false,
            None => {
                let mut counts = [0u32; CODES];
                counts[code.index()] = n;
                self.tags.push(TagCount { tag: tag.into(), minute, counts });
            }
        }
        true
    }

    /// Verifications counted in this slot.
    fn total(&self) -> u64 {
        self.minutes.iter().flat_map(|(_, c)| c.iter()).map(|n| u64::from(*n)).sum()
    }

    /// Adds another slot's counts (a failed flush's, put back).
    fn merge(&mut self, other: Slot) {
        if self.workspace_id.is_empty() {
            self.workspace_id = other.workspace_id;
        }
        if other.last.is_some_and(|(t, _)| self.last.is_none_or(|(mine, _)| mine < t)) {
            self.last = other.last;
        }
        for (m, c) in other.minutes {
            match self.minutes.iter_mut().find(|(x, _)| *x == m) {
                Some((_, mine)) => mine.iter_mut().zip(c).for_each(|(a, b)| *a = a.saturating_add(b)),
                None => self.minutes.push((m, c)),
            }
        }
        for (ip, at) in other.ips {
            if self.ips.len() < IPS_PER_FLUSH && !self.ips.iter().any(|(x, _)| *x == ip) {
                self.ips.push((ip, at));
            }
        }
        for t in other.tags {
            for (code, n) in VerifyCode::ALL.iter().zip(t.counts).filter(|(_, n)| *n > 0) {
                // A put-back within the bound it was counted under: nothing to drop.
                self.count_tag(&t.tag, t.minute, *code, n);
            }
        }
    }
}

/// Key id (or, for verifications whose key was not known, `\0` and the workspace id) → slot.
/// foldhash rather than SipHash: the ids are ours (only found keys and bound workspaces get
/// a slot), so nobody can aim collisions at it, and hashing was most of a verification's
/// bookkeeping here.
type Slots = HashMap<String, Slot, foldhash::fast::RandomState>;

/// Shards keep verifications on different cores from queueing on one lock.
const SHARDS: usize = 16;

/// Slots (keys, and workspaces' unknown keys) pending at most between two flushes: the
/// buffer's memory stays bounded (a few hundred bytes a slot) while storage is away. Past it,
/// verifications of keys without a slot are not counted (`keyward_usage_entries_dropped_total`).
pub const MAX_PENDING_SLOTS: usize = 200_000;

/// Distinct workspaces not yet known to exist that get a slot of their own between two
/// flushes; refusals bound to others are counted server-wide at once.
const UNRESOLVED_WORKSPACES: usize = 64;

pub struct UsageBuffer {
    shards: [Mutex<Slots>; SHARDS],
    /// Slots one shard may hold.
    per_shard: usize,
    /// Workspace ids seen in storage (they are never deleted): refusals bound to one of them
    /// are counted for it; to another, server-wide.
    workspaces: RwLock<HashSet<String, foldhash::fast::RandomState>>,
    /// Slots of unresolved workspaces taken since the last flush.
    unresolved: AtomicUsize,
    /// Verifications not counted because the buffer was full.
    entries_dropped: AtomicU64,
    /// Tag counts not kept because their key had [`TAGS_PER_FLUSH`] already.
    tags_dropped: AtomicU64,
    /// Rows the database refused (left out of their flush).
    rows_dropped: AtomicU64,
    /// The last-used marks of the flush being written (or last written). A management read
    /// takes a key's record from storage and then this node's pending mark; without these, a
    /// flush committing between the two would hide a mark from both.
    flushed: Mutex<Marks>,
}

/// Key id → last-used mark (when, from where).
type Marks = HashMap<String, (i64, Option<IpAddr>), foldhash::fast::RandomState>;

impl Default for UsageBuffer {
    fn default() -> Self {
        Self::with_capacity(MAX_PENDING_SLOTS)
    }
}

/// What one flush writes.
#[derive(Debug, Default)]
pub struct Batch {
    pub marks: Vec<LastUsed>,
    pub counts: Vec<UsageRow>,
    pub ips: Vec<SeenIp>,
    pub tags: Vec<TagUsageRow>,
}

impl UsageBuffer {
    /// A buffer holding at most about `slots` pending slots (rounded up to a whole number a
    /// shard).
    pub fn with_capacity(slots: usize) -> Self {
        UsageBuffer {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::default())),
            per_shard: slots.div_ceil(SHARDS).max(1),
            workspaces: RwLock::new(HashSet::default()),
            unresolved: AtomicUsize::new(0),
            entries_dropped: AtomicU64::new(0),
            tags_dropped: AtomicU64::new(0),
            rows_dropped: AtomicU64::new(0),
            flushed: Mutex::new(HashMap::default()),
        }
    }

    /// Verifications not counted because the buffer was full, and rows the database refused.
    pub fn dropped(&self) -> (u64, u64) {
        (self.entries_dropped.load(Relaxed), self.rows_dropped.load(Relaxed))
    }

    /// Tag counts not kept (their key had too many distinct tags between two flushes).
    pub fn tags_dropped(&self) -> u64 {
        self.tags_dropped.load(Relaxed)
    }

    fn shard(&self, id: &str) -> std::sync::MutexGuard<'_, Slots> {
        // Key ids end in random characters: the last byte spreads them well enough.
        let i = id.as_bytes().last().copied().unwrap_or(0) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_slot(&self, id: &str, workspace_id: &str, f: impl FnOnce(&mut Slot)) {
        let mut shard = self.shard(id);
        let full = shard.len() >= self.per_shard;
        match shard.get_mut(id) {
            Some(slot) => f(slot),
            None if full => {
                self.entries_dropped.fetch_add(1, Relaxed);
            }
            None => {
                let mut slot = Slot { workspace_id: workspace_id.to_string(), ..Slot::default() };
                f(&mut slot);
                shard.insert(id.to_string(), slot);
            }
        }
    }

    /// Puts a slot back (a failed flush's, or one folded into another), within the bound.
    fn put_back(&self, id: String, slot: Slot) {
        let mut shard = self.shard(&id);
        let full = shard.len() >= self.per_shard;
        match shard.get_mut(&id) {
            Some(mine) => mine.merge(slot),
            None if full => {
                self.entries_dropped.fetch_add(slot.total(), Relaxed);
            }
            None => {
                shard.insert(id, slot);
            }
        }
    }

    /// A verification of a known key: its count, and for a valid one the last-used mark and
    /// the address.
    pub fn record(&self, key_id: &str, workspace_id: &str, at_ms: i64, code: VerifyCode, ip: Option<IpAddr>) {
        self.with_slot(key_id, workspace_id, |slot| {
            slot.count(at_ms, code);
            if code == VerifyCode::Valid {
                if slot.last.is_none_or(|(t, _)| t <= at_ms) {
                    slot.last = Some((at_ms, ip));
                }
                if let Some(ip) = ip {
                    if slot.ips.len() < IPS_PER_FLUSH && !slot.ips.iter().any(|(x, _)| *x == ip) {
                        slot.ips.push((ip, at_ms));
                    }
                }
            }
        });
    }

    /// The tags a verification of a known key named (after [`Self::record`]), each counted
    /// under its code, within [`TAGS_PER_FLUSH`] distinct ones per key between two flushes.
    pub fn record_tags(&self, key_id: &str, workspace_id: &str, at_ms: i64, code: VerifyCode, tags: &[Cow<'_, str>]) {
        let minute = at_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        let mut dropped = 0;
        self.with_slot(key_id, workspace_id, |slot| {
            for t in tags {
                if !slot.count_tag(t, minute, code, 1) {
                    dropped += 1;
                }
            }
        });
        if dropped > 0 {
            self.tags_dropped.fetch_add(dropped, Relaxed);
        }
    }

    /// A verification refused before its key was known (malformed, unknown): counted for the
    /// workspace the caller bound verification to when it exists, else server-wide (`""`):
    /// made-up workspace names never become slots or rows of their own.
    pub fn record_unknown(&self, workspace_id: Option<&str>, at_ms: i64, code: VerifyCode) {
        let mut ws = workspace_id.unwrap_or("");
        let unresolved = !ws.is_empty() && !self.workspaces.read().is_ok_and(|known| known.contains(ws));
        let mut id = String::with_capacity(ws.len() + 1);
        id.push('\0');
        id.push_str(ws);
        if unresolved {
            let mut shard = self.shard(&id);
            if let Some(slot) = shard.get_mut(&id) {
                slot.count(at_ms, code);
                return;
            }
            // Read before counting: once the budget is spent a flood only reads it.
            if self.unresolved.load(Relaxed) < UNRESOLVED_WORKSPACES
                && self.unresolved.fetch_add(1, Relaxed) < UNRESOLVED_WORKSPACES
                && shard.len() < self.per_shard
            {
                let mut slot = Slot { workspace_id: ws.to_string(), unresolved: true, ..Slot::default() };
                slot.count(at_ms, code);
                shard.insert(id, slot);
                return;
            }
            drop(shard);
            ws = "";
            id.truncate(1);
        }
        self.with_slot(&id, ws, |slot| slot.count(at_ms, code));
    }

    /// Settles the workspaces of unresolved slots against storage: those that exist keep
    /// their slot, the others' counts join the server-wide slot. `Err` when storage could
    /// not say (the caller puts everything back).
    async fn resolve(&self, store: &Store, taken: &mut Vec<(String, Slot)>) -> Result<(), keyward_store::StoreError> {
        let flooded = self.unresolved.swap(0, Relaxed) >= UNRESOLVED_WORKSPACES;
        if !taken.iter().any(|(_, s)| s.unresolved) {
            return Ok(());
        }
        // Usually only the ids in question are looked up. When the interval ran out of slots
        // for new names (a flood), a real workspace may have been folded server-wide for want
        // of one: every id is read then, at most once a flush, so it has its own next time.
        let stored = if flooded {
            store.workspace_ids().await?
        } else {
            let mut asked: Vec<&str> =
                taken.iter().filter(|(_, s)| s.unresolved).map(|(_, s)| s.workspace_id.as_str()).collect();
            asked.sort_unstable();
            asked.dedup();
            store.existing_workspaces(&asked).await?
        };
        let mut known = self.workspaces.write().unwrap_or_else(|e| e.into_inner());
        known.extend(stored);
        let mut server_wide = Slot::default();
        taken.retain_mut(|(_, slot)| {
            // Only the refusals of unresolved workspaces are settled here; a key's slot (its
            // workspace is its own, never asked) is kept as it is.
            if !std::mem::take(&mut slot.unresolved) || known.contains(&slot.workspace_id) {
                return true;
            }
            let mut folded = std::mem::take(slot);
            folded.workspace_id.clear();
            server_wide.merge(folded);
            false
        });
        drop(known);
        if !server_wide.minutes.is_empty() {
            match taken.iter_mut().find(|(id, _)| id == "\0") {
                Some((_, slot)) => slot.merge(server_wide),
                None => taken.push(("\0".to_string(), server_wide)),
            }
        }
        Ok(())
    }

    /// The mark not yet written for a key, so management reads can show it at once.
    pub fn pending_for(&self, key_id: &str) -> Option<(i64, Option<String>)> {
        let pending = self.shard(key_id).get(key_id).and_then(|s| s.last);
        let pending = pending.or_else(|| self.flushed_marks().get(key_id).copied());
        pending.map(|(t, ip)| (t, ip.map(|i| i.to_string())))
    }

    fn flushed_marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.flushed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes everything pending for a flush, its marks still shown by [`Self::pending_for`]
    /// until the next flush (the marks are taken while that map is held, so a read finds a
    /// mark in one or the other).
    fn take_for_flush(&self) -> Vec<(String, Slot)> {
        let mut flushed = self.flushed_marks();
        let taken = self.take();
        // A new map, not the old one cleared: a cleared map keeps its room for every key of
        // the busiest interval so far (75 bytes a key, for good, after one warm-up pass).
        *flushed = taken.iter().filter_map(|(id, slot)| slot.last.map(|last| (id.clone(), last))).collect();
        taken
    }

    /// What a flush takes, taken and dropped as if written: what the buffer keeps after a
    /// flush is left (for tests weighing it).
    #[cfg(test)]
    pub(crate) fn flushed_now(&self) -> usize {
        self.take_for_flush().len()
    }

    fn take(&self) -> Vec<(String, Slot)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let drained = std::mem::take(&mut *shard.lock().unwrap_or_else(|e| e.into_inner()));
            out.extend(drained);
        }
        out
    }

    fn batch(taken: &[(String, Slot)]) -> Batch {
        let mut b = Batch::default();
        for (id, slot) in taken {
            let key_id = if id.starts_with('\0') { "" } else { id.as_str() };
            if let Some((at_ms, ip)) = slot.last {
                b.marks.push(LastUsed { key_id: key_id.to_string(), at_ms, ip: ip.map(|i| i.to_string()) });
            }
            for (minute, counts) in &slot.minutes {
                for (code, n) in VerifyCode::ALL.iter().zip(counts).filter(|(_, n)| **n > 0) {
                    b.counts.push(UsageRow {
                        workspace_id: slot.workspace_id.clone(),
                        key_id: key_id.to_string(),
                        start_ms: *minute,
                        code: code.as_str(),
                        count: u64::from(*n),
                    });
                }
            }
            for t in &slot.tags {
                for (code, n) in VerifyCode::ALL.iter().zip(t.counts).filter(|(_, n)| *n > 0) {
                    b.tags.push(TagUsageRow {
                        workspace_id: slot.workspace_id.clone(),
                        key_id: key_id.to_string(),
                        tag: t.tag.to_string(),
                        start_ms: t.minute,
                        code: code.as_str(),
                        count: u64::from(n),
                    });
                }
            }
            for (ip, at_ms) in &slot.ips {
                b.ips.push(SeenIp {
                    workspace_id: slot.workspace_id.clone(),
                    key_id: key_id.to_string(),
                    ip: ip.to_string(),
                    at_ms: *at_ms,
                });
            }
        }
        b
    }

    /// Writes everything pending in one transaction; on failure it all goes back to be
    /// retried (nothing was written). Answers the verifications written and the addresses
    /// new to a key that was seen from others before.
    pub async fn flush(&self, store: &Store) -> Result<(u64, Vec<SeenIp>), keyward_store::StoreError> {
        let mut taken = self.take_for_flush();
        if taken.is_empty() {
            return Ok((0, Vec::new()));
        }
        let written = match self.resolve(store, &mut taken).await {
            Ok(()) => {
                let b = Self::batch(&taken);
                store.record_usage(&b.marks, &b.counts, &b.ips, &b.tags).await.map(|w| (b, w))
            }
            Err(e) => Err(e),
        };
        match written {
            Ok((b, w)) => {
                // Rows the database refused were left out, the rest written: a bad row is
                // dropped (and counted), never retried forever in front of the others.
                self.rows_dropped.fetch_add(w.refused, Relaxed);
                Ok((b.counts.iter().map(|c| c.count).sum(), w.new_ips))
            }
            Err(e) => {
                for (id, slot) in taken {
                    self.put_back(id, slot);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_being_flushed_is_still_shown() {
        let u = UsageBuffer::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        u.record("key_a", "ws", 60_000, VerifyCode::Valid, Some(ip));
        let taken = u.take_for_flush();
        assert_eq!(taken.len(), 1);
        assert_eq!(u.pending_for("key_a"), Some((60_000, Some("10.0.0.1".to_string()))));
        u.record("key_a", "ws", 61_000, VerifyCode::Valid, None);
        assert_eq!(u.pending_for("key_a"), Some((61_000, None)), "the newer, unflushed mark");
        u.take_for_flush();
        u.take_for_flush();
        assert_eq!(u.pending_for("key_a"), None, "kept only until the flush after");
    }

    #[test]
    fn counts_per_key_minute_and_code() {
        let u = UsageBuffer::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        u.record("key_a", "ws", 60_000, VerifyCode::Valid, Some(ip));
        u.record("key_a", "ws", 61_000, VerifyCode::Valid, Some(ip));
        u.record("key_a", "ws", 62_000, VerifyCode::Revoked, None);
        u.record("key_a", "ws", 120_000, VerifyCode::Valid, None);
        u.record_unknown(None, 60_500, VerifyCode::Malformed);
        u.record_unknown(Some("ws"), 60_500, VerifyCode::NotFound);
        let mut b = UsageBuffer::batch(&u.take());
        b.counts.sort_by_key(|c| (c.key_id.clone(), c.start_ms, c.code));
        let got: Vec<(&str, &str, i64, &str, u64)> = b
            .counts
            .iter()
            .map(|c| (c.workspace_id.as_str(), c.key_id.as_str(), c.start_ms, c.code, c.count))
            .collect();
        assert_eq!(
            got,
            vec![
                ("", "", 60_000, "MALFORMED", 1),
                ("ws", "", 60_000, "NOT_FOUND", 1),
                ("ws", "key_a", 60_000, "REVOKED", 1),
                ("ws", "key_a", 60_000, "VALID", 2),
                ("ws", "key_a", 120_000, "VALID", 1),
            ]
        );
        assert_eq!(b.marks.len(), 1);
        assert_eq!(b.marks[0].at_ms, 120_000);
        assert_eq!(b.ips.len(), 1, "one address, once");
        for (i, c) in VerifyCode::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn a_failed_flush_puts_everything_back() {
        let u = UsageBuffer::default();
        u.record("key_a", "ws", 60_000, VerifyCode::Valid, None);
        let taken = u.take();
        u.record("key_a", "ws", 60_001, VerifyCode::Valid, None);
        for (id, slot) in taken {
            u.put_back(id, slot);
        }
        let b = UsageBuffer::batch(&u.take());
        assert_eq!(b.counts.iter().map(|c| c.count).sum::<u64>(), 2);
    }

    #[test]
    fn pending_slots_are_bounded() {
        let u = UsageBuffer::with_capacity(SHARDS * 2);
        for i in 0..1000 {
            u.record(&format!("key_{i:04}"), "ws", 60_000, VerifyCode::Valid, None);
        }
        let held: usize = u.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= SHARDS * 2, "{held} slots held");
        assert_eq!(u.dropped().0, 1000 - held as u64, "every verification left out is counted");
        // A key that has a slot is still counted.
        let (kept, _) = u.take().into_iter().next().unwrap();
        u.record(&kept, "ws", 60_000, VerifyCode::Valid, None);
        assert_eq!(u.dropped().0, 1000 - held as u64);
        // A failed flush's slots go back within the bound too.
        let u = UsageBuffer::with_capacity(SHARDS);
        for i in 0..100 {
            u.record(&format!("key_{i:04}"), "ws", 60_000, VerifyCode::Valid, None);
        }
        let taken = u.take();
        let before = u.dropped().0;
        for i in 0..100 {
            u.record(&format!("new_{i:04}"), "ws", 60_000, VerifyCode::Valid, None);
        }
        let refilled = u.dropped().0 - before;
        for (id, slot) in taken {
            u.put_back(id, slot);
        }
        let held: usize = u.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= SHARDS, "{held} slots held after the put-back");
        assert_eq!(u.dropped().0, 200 - held as u64, "{refilled} dropped while refilling");
    }

    #[test]
    fn tags_are_counted_within_their_bound() {
        let u = UsageBuffer::default();
        let tags: Vec<Cow<str>> = vec!["a".into(), "b".into()];
        u.record("key_a", "ws", 60_000, VerifyCode::Valid, None);
        u.record_tags("key_a", "ws", 60_000, VerifyCode::Valid, &tags);
        u.record_tags("key_a", "ws", 61_000, VerifyCode::Revoked, &tags[..1]);
        u.record_tags("key_a", "ws", 120_000, VerifyCode::Valid, &tags[..1]);
        for i in 0..40 {
            u.record_tags("key_b", "ws", 60_000, VerifyCode::Valid, &[format!("t{i}").into()]);
        }
        assert_eq!(u.tags_dropped(), 40 - TAGS_PER_FLUSH as u64, "past the bound, counted as dropped");
        let taken = u.take();
        let b = UsageBuffer::batch(&taken);
        let mut got: Vec<(&str, &str, i64, &str, u64)> = b
            .tags
            .iter()
            .filter(|t| t.key_id == "key_a")
            .map(|t| (t.key_id.as_str(), t.tag.as_str(), t.start_ms, t.code, t.count))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("key_a", "a", 60_000, "REVOKED", 1),
                ("key_a", "a", 60_000, "VALID", 1),
                ("key_a", "a", 120_000, "VALID", 1),
                ("key_a", "b", 60_000, "VALID", 1),
            ]
        );
        assert_eq!(b.tags.iter().filter(|t| t.key_id == "key_b").count(), TAGS_PER_FLUSH);
        // A failed flush's tags go back whole.
        for (id, slot) in taken {
            u.put_back(id, slot);
        }
        let again = UsageBuffer::batch(&u.take());
        assert_eq!(again.tags.len(), b.tags.len());
    }

    #[test]
    fn unknown_workspaces_take_few_slots() {
        let u = UsageBuffer::default();
        for i in 0..1000 {
            u.record_unknown(Some(&format!("ws_{i:026}")), 60_000, VerifyCode::NotFound);
        }
        let taken = u.take();
        assert!(taken.len() <= UNRESOLVED_WORKSPACES + 1, "{} slots", taken.len());
        assert_eq!(taken.iter().map(|(_, s)| s.total()).sum::<u64>(), 1000, "every refusal counted");
    }
}
