//! Last-used marks kept in memory by the verify path and written in batches, so a request
//! never waits on (or causes) a storage write of its own.

use keyward_store::{LastUsed, Store};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct UsageBuffer {
    pending: Mutex<HashMap<String, (i64, Option<String>)>>,
}

impl UsageBuffer {
    pub fn record(&self, key_id: &str, at_ms: i64, ip: Option<String>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
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
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).get(key_id).cloned()
    }

    fn take(&self) -> Vec<LastUsed> {
        let drained = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        drained.into_iter().map(|(key_id, (at_ms, ip))| LastUsed { key_id, at_ms, ip }).collect()
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
