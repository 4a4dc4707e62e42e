//! Workspaces' standings on this node: which are suspended or deleted. A key is cached with
//! its workspace's standing (`VerifiableKey::standing`), so verification decides it by one
//! byte already in hand — no lookup, no lock, nothing allocated. This table is read only when
//! a key is cached, and changed only by a workspace's change event (`ws:<id>`, read back
//! from storage, one at a time), which then rewrites the standing of that workspace's cached
//! keys in place. Loaded before the node serves, reloaded once its change stream is
//! caught up, and compared with storage by the backstop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use keyward_core::standing::Standing;
use keyward_store::StoreError;

use crate::state::AppState;

#[derive(Default)]
pub struct Standings {
    /// Workspaces not active, by id: a handful, read when a key is cached.
    others: RwLock<HashMap<Box<str>, Standing>>,
    /// Is any workspace not active? Most nodes never have one: a cache fill then reads
    /// nothing more.
    any: AtomicBool,
}

impl Standings {
    /// The standing a key of `workspace` is cached with.
    pub fn of(&self, workspace: &str) -> Standing {
        if !self.any.load(Ordering::Acquire) {
            return Standing::Active;
        }
        let others = self.others.read().unwrap_or_else(|e| e.into_inner());
        others.get(workspace).copied().unwrap_or_default()
    }

    /// Sets `workspace`'s standing; says whether it changed.
    fn set(&self, workspace: &str, standing: Standing) -> bool {
        let mut others = self.others.write().unwrap_or_else(|e| e.into_inner());
        let before = match standing {
            Standing::Active => others.remove(workspace),
            s => others.insert(workspace.into(), s),
        };
        self.any.store(!others.is_empty(), Ordering::Release);
        before.unwrap_or_default() != standing
    }

    /// The workspaces whose standing here differs from `stored` (every workspace not
    /// active, as storage lists them), with the stored standing.
    fn differences(&self, stored: &[(String, Standing)]) -> Vec<(String, Standing)> {
        let others = self.others.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, Standing)> = stored
            .iter()
            .filter(|(id, s)| others.get(id.as_str()).copied().unwrap_or_default() != *s)
            .cloned()
            .collect();
        for id in others.keys() {
            if !stored.iter().any(|(s, _)| **s == **id) {
                out.push((id.to_string(), Standing::Active));
            }
        }
        out
    }
}

impl AppState {
    /// Brings `workspace`'s standing on this node in line with storage: its change event's
    /// work, awaited by the route that made the change (that node answers with it at once).
    pub(crate) async fn restand(&self, workspace: &str) {
        let _one_at_a_time = self.standing_changes.lock().await;
        match self.store.workspace_standing(workspace).await {
            Ok(s) => self.apply_standing(workspace, s),
            // Storage cannot say now: the backstop compares again soon.
            Err(e) => tracing::warn!(error = %e, workspace, "cannot read a workspace's changed standing; will retry"),
        }
    }

    /// Records `standing` and rewrites the cached keys of `workspace` with it.
    fn apply_standing(&self, workspace: &str, standing: Standing) {
        self.standings.set(workspace, standing);
        // Fills that read the table before the change are thrown away; those after see it.
        self.cache.bump_all();
        let touched = self.cache.restand(workspace, standing);
        tracing::info!(workspace, standing = standing.as_str(), keys = touched, "workspace standing applied");
    }

    /// Reads every standing from storage and applies those that differ here; returns how
    /// many differed.
    pub(crate) async fn reload_standings(&self) -> Result<usize, StoreError> {
        let _one_at_a_time = self.standing_changes.lock().await;
        let stored = self.store.standings().await?;
        let differ = self.standings.differences(&stored);
        for (id, s) in &differ {
            self.apply_standing(id, *s);
        }
        Ok(differ.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workspaces_not_active_are_held() {
        let s = Standings::default();
        assert_eq!(s.of("ws_1"), Standing::Active);
        assert!(s.set("ws_1", Standing::Suspended));
        assert!(!s.set("ws_1", Standing::Suspended), "no change");
        assert_eq!((s.of("ws_1"), s.of("ws_2")), (Standing::Suspended, Standing::Active));
        assert!(s.set("ws_1", Standing::Active));
        assert!(!s.any.load(Ordering::Acquire), "nothing left: fills read nothing more");
        s.set("ws_2", Standing::Deleted);
        s.set("ws_3", Standing::Suspended);
        let stored = vec![("ws_2".to_string(), Standing::Deleted), ("ws_4".to_string(), Standing::Suspended)];
        let mut d = s.differences(&stored);
        d.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(d, vec![("ws_3".to_string(), Standing::Active), ("ws_4".to_string(), Standing::Suspended)]);
    }
}
