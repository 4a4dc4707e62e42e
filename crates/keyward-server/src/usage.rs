//! Last-used marks kept in memory by the verify path and written in batches, so a request
//! never waits on (or causes) a storage write of its own.

use keyward_store::{LastUsed, Store};
use std::collections::HashMap;
use std::sync::Mutex;

type Marks = HashMap<String, (i64, Option<String>)>;

/// Shards keep verifications on different cores from queueing on one lock.
const SHARDS: usize = 16;

pub struct UsageBuffer {
    shards: [Mutex<Marks>; SHARDS],
}

impl Default for UsageBuffer {
    fn default() -> Self {
        UsageBuffer { shards: std::array::from_fn(|_| Mutex::new(HashMap::new())) }
    }
}

impl UsageBuffer {
    fn shard(&self, key_id: &str) -> std::sync::MutexGuard<'_, Marks> {
        // Key ids end in random characters: the last byte spreads them well enough.
        let i = key_id.as_bytes().last().copied().unwrap_or(0) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(&self, key_id: &str, at_ms: i64, ip: Option<String>) {
        let mut p = self.shard(key_id);
        match p.get_mut(key_id) {
            Some(slot) if slot.0 <= at_ms => *slot = (at_ms, ip),
            Some(_) => {}
            None => {
                p.insert(key_id.to_string(), (at_ms, ip));
            }
        }
    }

    /// The mark not yet written for a key, so management reads can show it at once.
    pub fn pending_for(&self, key_id: &str) -> Option<(i64, Option<String>)> {
        self.shard(key_id).get(key_id).cloned()
    }

    fn take(&self) -> Vec<LastUsed> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let drained = std::mem::take(&mut *shard.lock().unwrap_or_else(|e| e.into_inner()));
            out.extend(drained.into_iter().map(|(key_id, (at_ms, ip))| LastUsed { key_id, at_ms, ip }));
        }
        out
    }

    /// Writes everything pending; on failure the marks go back to be retried.
    pub async fn flush(&self, store: &Store) -> Result<usize, keyward_store::StoreError> {
        let batch = self.take();
        let n = batch.len();
        if let Err(e) = store.record_last_used(&batch).await {
            for u in batch {
                self.record(&u.key_id, u.at_ms, u.ip);
            }
            return Err(e);
        }
        Ok(n)
    }
}
