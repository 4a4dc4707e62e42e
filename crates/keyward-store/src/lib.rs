//! Keyward storage. One SQL code path over sqlx's `Any` driver serves SQLite (the embedded
//! default, WAL) and PostgreSQL (several nodes); the few backend differences (migrations,
//! change notifications) are chosen at run time from [`Backend`].

mod approvals;
mod error;
mod events;
mod idempotency;
mod keys;
mod members;
mod migrate;
mod policies;
mod rows;
mod workspaces;

pub use approvals::{Approval, ApprovalStatus, Decision, NewApproval, RequestOutcome, Vote};
pub use error::StoreError;
pub use events::{KeyEvent, Subscription};
pub use idempotency::{IdempotencyRecord, InsertOutcome};
pub use keys::{cache_key, KeyFilter, LastUsed, RotateOutcome, Rotation, StatusFilter, PUBLIC_KEY_EVENT_PREFIX};
pub use members::{CredentialKind, LoginRecord, Member, NewMember, NewSession, Principal, TotpState};
pub use workspaces::{NewManagementKey, NewWorkspace};

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::AnyPool;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish()
    }
}

/// The URL of the embedded database inside a data dir.
pub fn sqlite_url(data_dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("keyward.db").display())
}

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Config("database URL must start with sqlite: or postgres://".into()));
        };
        let opts = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            // Fail fast when the database is gone so management calls answer 503 promptly.
            .acquire_timeout(Duration::from_secs(3));
        let pool = opts.connect(url).await.map_err(StoreError::from)?;
        if backend == Backend::Sqlite {
            // WAL lets verification reads proceed while a write commits; it persists in the file.
            sqlx::query("PRAGMA journal_mode=WAL").execute(&pool).await?;
        }
        let store = Store { pool, backend, url: url.to_string() };
        migrate::run(&store).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Is the database reachable right now?
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
