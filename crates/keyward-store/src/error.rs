use thiserror::Error;

use crate::Conflict;

/// Errors of the storage layer. `Unavailable` means the database could not be reached (the
/// server answers 503); `StorageFull` that it refused a write for want of disk space (507,
/// retried later: nothing was written); `Conflict` is a typed refusal the server words;
/// `Internal` carries detail for logs only, never for clients. What a database's error
/// means is the dialect's to say (`dialect.rs` turns a `sqlx::Error` into one).
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database storage full: {0}")]
    StorageFull(String),
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    #[error("already initialised")]
    AlreadyInitialised,
    #[error("configuration: {0}")]
    Config(String),
    /// Input the database cannot store (a NUL character in text, a value too large for an
    /// index).
    #[error("input cannot be stored")]
    InvalidText,
    #[error("storage error: {0}")]
    Internal(String),
}

impl From<Conflict> for StoreError {
    fn from(c: Conflict) -> Self {
        StoreError::Conflict(c)
    }
}

impl StoreError {
    /// Will the same request work later without a change on the caller's side (the database
    /// back, space freed)? Such a failure wrote nothing: what was to be written is kept.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::StorageFull(_))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Internal(format!("cannot bring the database schema up to date: {e}"))
    }
}
