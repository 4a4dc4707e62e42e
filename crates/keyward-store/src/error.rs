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
            sqlx::Error::Database(db) if db.code().as_deref().is_some_and(is_unavailable_code) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

/// PostgreSQL: connection exceptions (class 08), the database gone (3D000), too many
/// connections (53300), server shutting down (57P01–57P03). SQLite: busy or locked past the
/// timeout (5, 6), I/O error (10), cannot open (14).
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "3D000" | "53300" | "57P01" | "57P02" | "57P03" | "5" | "6" | "10" | "14")
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Internal(format!("migration failed: {e}"))
    }
}
