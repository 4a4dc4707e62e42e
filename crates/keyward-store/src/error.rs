use thiserror::Error;

/// Errors of the storage layer. `Unavailable` means the database could not be reached (the
/// server answers 503); `Internal` carries detail for logs only, never for clients.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("already initialised")]
    AlreadyInitialised,
    #[error("configuration: {0}")]
    Config(String),
    #[error("storage error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_string()),
            // Lost connection mid-query on PostgreSQL, or a busy SQLite file past its timeout.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03" | "5" | "6")) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Internal(format!("migration failed: {e}"))
    }
}
