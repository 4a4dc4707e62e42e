//! The store's transaction: its connection, the dialect it runs on (so code inside need not
//! be told which backend it is) and the pepper the audit events appended inside are keyed
//! with. Dropped without a commit, it rolls back.

use std::sync::{Arc, OnceLock};

use keyward_core::pepper::Pepper;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};

use crate::{Dialect, StoreError};

/// Where the store keeps the pepper the audit chain is keyed with: shared by every clone of
/// a store and every transaction it begins.
pub(crate) type KeySlot = Arc<OnceLock<Pepper>>;

pub(crate) struct Tx {
    inner: Transaction<'static, Any>,
    pub(crate) dialect: Dialect,
    /// The pepper audit events appended inside are keyed with (set by `Store::begin`).
    pub(crate) audit_key: KeySlot,
}

impl Tx {
    pub(crate) async fn begin(pool: &AnyPool, dialect: Dialect, audit_key: KeySlot) -> Result<Tx, StoreError> {
        Ok(Tx { inner: dialect.begin(pool).await?, dialect, audit_key })
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        Ok(self.inner.commit().await?)
    }

    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        Ok(self.inner.rollback().await?)
    }
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}
