//! Shared copies of what many cached keys hold alike — their workspace and environment,
//! permission and scope lists, what those allow, and those parts of their verify answer — so
//! 100,000 keys with the same permissions keep one list, not 100,000. Entries no key holds any more are dropped when
//! the table has doubled since the last sweep.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use crate::authority::{Access, Basis};
use crate::place::Place;

struct Table<T: ?Sized> {
    set: HashSet<Arc<T>>,
    sweep_at: usize,
}

impl<T: ?Sized + Hash + Eq> Table<T> {
    /// The shared copy of what `value` names, made by `make` when there is none.
    fn get<Q>(&mut self, value: &Q, make: impl FnOnce() -> Arc<T>) -> Arc<T>
    where
        Q: ?Sized + Hash + Eq,
        Arc<T>: Borrow<Q>,
    {
        if let Some(shared) = self.set.get(value) {
            return Arc::clone(shared);
        }
        if self.set.len() >= self.sweep_at {
            self.set.retain(|a| Arc::strong_count(a) > 1);
            self.sweep_at = (self.set.len() * 2).max(1024);
        }
        let shared = make();
        self.set.insert(Arc::clone(&shared));
        shared
    }
}

/// Accesses are found by their basis (the authority is derived from it).
impl Borrow<Basis> for Arc<Access> {
    fn borrow(&self) -> &Basis {
        &self.basis
    }
}

static ACCESSES: Mutex<Option<Table<Access>>> = Mutex::new(None);
static LISTS: Mutex<Option<Table<[String]>>> = Mutex::new(None);
static STRS: Mutex<Option<Table<str>>> = Mutex::new(None);
static PLACES: Mutex<Option<Table<Place>>> = Mutex::new(None);

fn with<T: ?Sized + Hash + Eq, R>(table: &Mutex<Option<Table<T>>>, f: impl FnOnce(&mut Table<T>) -> R) -> R {
    let mut guard = table.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(|| Table { set: HashSet::new(), sweep_at: 1024 }))
}

/// The shared copy of a list.
pub fn list(v: Vec<String>) -> Arc<[String]> {
    with(&LISTS, |t| t.get(v.as_slice(), || v.clone().into()))
}

/// The shared access of keys holding `basis`, derived only when no key holds it yet.
pub fn access(basis: Basis) -> Arc<Access> {
    with(&ACCESSES, |t| t.get(&basis, || Arc::new(Access::new(basis.clone()))))
}

/// The shared place of the keys of `workspace_id` in `environment`.
pub fn place(workspace_id: &str, environment: &str) -> Arc<Place> {
    let place = Place::new(workspace_id, environment);
    with(&PLACES, |t| t.get(&place, || Arc::new(place.clone())))
}

/// The shared copy of a string.
pub fn str(s: &str) -> Arc<str> {
    with(&STRS, |t| t.get(s, || s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy_and_unheld_ones_are_swept() {
        let a = list(vec!["wallet.read".into(), "tx.create".into()]);
        let b = list(vec!["wallet.read".into(), "tx.create".into()]);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &list(vec!["tx.create".into(), "wallet.read".into()])), "order matters");
        assert!(Arc::ptr_eq(&str("ws_1"), &str("ws_1")));
        // Many values held by nobody: the table does not keep them all.
        for i in 0..5000 {
            let _ = str(&format!("gone-{i}"));
        }
        let kept = with(&STRS, |t| t.set.len());
        assert!(kept < 3000, "{kept}");
        assert!(Arc::ptr_eq(&str("ws_1"), &str("ws_1")));
        assert!(Arc::ptr_eq(&place("ws_1", "live"), &place("ws_1", "live")));
        assert!(!Arc::ptr_eq(&place("ws_1", "live"), &place("ws_1", "test")));
    }
}
