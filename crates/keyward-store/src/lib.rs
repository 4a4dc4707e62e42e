//! Keyward storage. One SQL code path over sqlx's `Any` driver serves SQLite (the embedded
//! default, WAL) and PostgreSQL (several nodes); the few backend differences live in
//! [`dialect`] alone.

mod app_tokens;
mod approvals;
mod apps;
mod audit;
mod conflict;
mod credential_leaks;
pub mod dialect;
mod erasure;
mod error;
mod events;
mod idempotency;
mod identities;
mod imports;
mod key_event;
mod key_state;
mod keys;
mod leaks;
mod member_state;
mod members;
mod migrate;
mod operator_log;
mod operator_tokens;
mod outbox;
mod policies;
mod ratelimit_overrides;
mod roles;
mod rows;
mod service_accounts;
mod tx;
mod usage;
mod verify_tokens;
mod webhooks;
mod workspace_state;
mod workspaces;

pub use app_tokens::{Issue, NewTokens, Redeemed, SigningKeyRow, TokenState};
pub use approvals::{Approval, ApprovalStatus, Decision, NewApproval, RequestOutcome, Vote};
pub use apps::{app_event, AppChanges, AppKey, AppRecord, Installation, InstallationStatus, APP_EVENT_PREFIX};
pub use audit::{AuditFilter, AuditRecord, Origin};
pub use conflict::Conflict;
pub use credential_leaks::{CredentialLeakFound, LeakableCredential, LeakableKind};
pub use dialect::Dialect;
pub use dialect::Subscription;
pub use error::StoreError;
pub use idempotency::{IdempotencyRecord, InsertOutcome};
pub use identities::{identity_event, IdentityFilter, IDENTITY_EVENT_PREFIX};
pub use imports::{import_events, ImportedKey, IMPORT_EVENT_PREFIX};
pub use key_event::{parse_announcement, KeyEvent};
pub use key_state::{cache_key, PUBLIC_KEY_EVENT_PREFIX};
pub use keys::CreditCount;
pub use keys::{KeyFilter, KeyVersion, LastUsed, OwnerType, RotateOutcome, Rotation, StatusFilter};
pub use leaks::{LeakFound, LeakOutcome};
pub use members::{
    CredentialKind, JoinedMember, LoginRecord, ManagementKey, Member, NewMember, NewSession, Principal, SecretAttempt,
    TotpState,
};
pub use migrate::migrate_to;
pub use operator_log::OperatorRecord;
pub use operator_tokens::{NewOperatorToken, OperatorToken};
pub use ratelimit_overrides::{
    ratelimit_override_event, OverrideWrite, RatelimitOverride, RATELIMIT_OVERRIDE_EVENT_PREFIX,
};
pub use roles::{parse_role_event, role_event, RoleDeletion, StoredRole, ROLE_EVENT_PREFIX};
pub use service_accounts::{AccountChanges, ServiceAccount, SERVICE_ACCOUNT_EVENT_PREFIX};
pub use usage::{Alert, Bucket, KeyActivity, SeenIp, TagUsageRow, UsageRow, UsageWritten, DAY_MS, HOUR_MS, MINUTE_MS};
pub use verify_tokens::{VerifyToken, VERIFY_TOKEN_EVENT_PREFIX};
pub use webhooks::{AfterAttempt, Attempt, DeliveriesTo, Delivery, DueDelivery, WebhookChanges, WebhookEndpoint};
pub use workspace_state::{workspace_event, StandingFilter, Workspace, WORKSPACE_EVENT_PREFIX};
pub use workspaces::{NewManagementKey, NewWorkspace};

use futures_util::TryStreamExt;
use sqlx::AnyPool;

use crate::tx::Tx;

/// One text column of many rows, streamed as storage reads them: a whole table's worth is
/// never held at once.
pub type Column<'a> = futures_core::stream::BoxStream<'a, Result<String, StoreError>>;

fn column<'a>(pool: &'a AnyPool, sql: &'static str) -> Column<'a> {
    Box::pin(sqlx::query_scalar(sql).fetch(pool).map_err(StoreError::from))
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    url: String,
    /// The pepper the audit chain is keyed with (`Store::key_audit`).
    audit_key: tx::KeySlot,
    /// `/healthz`'s probe, one at a time per node (`Store::health`).
    health: std::sync::Arc<HealthProbe>,
}

/// One health probe at a time: callers who arrive while one runs wait, then share the
/// answer of the next probe begun after they arrived, so a flood of `/healthz` costs one
/// write at a time rather than one each, and no answer is older than its request.
#[derive(Default)]
struct HealthProbe {
    /// Probes begun so far.
    begun: std::sync::atomic::AtomicU64,
    /// The last probe's number and outcome.
    last: tokio::sync::Mutex<Option<(u64, Probed)>>,
}

/// A probe's outcome, kept to be shared: whether the disk was full, and the error's text.
type Probed = Result<(), (bool, String)>;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dialect", &self.dialect).finish()
    }
}

/// The embedded database's file name inside a data dir.
pub const SQLITE_FILE: &str = "keyward.db";

/// The URL of the embedded database inside a data dir.
pub fn sqlite_url(data_dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join(SQLITE_FILE).display())
}

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Self::connect_pooled(url, None).await
    }

    /// Connects with a pool of at most `size` connections (`None`: the backend's default, 16
    /// for PostgreSQL, 8 for SQLite): nodes sharing one PostgreSQL server must fit, pools and
    /// listeners together, within its `max_connections`.
    pub async fn connect_pooled(url: &str, size: Option<u32>) -> Result<Store, StoreError> {
        let dialect = Dialect::from_url(url)?;
        let pool = dialect.connect(url, size).await?;
        let store = Store {
            pool,
            dialect,
            url: url.to_string(),
            audit_key: tx::KeySlot::default(),
            health: std::sync::Arc::default(),
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Can this store push changes to other nodes as they commit (else they poll)?
    pub fn pushes_changes(&self) -> bool {
        self.dialect.pushes_changes()
    }

    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        Tx::begin(&self.pool, self.dialect, self.audit_key.clone()).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Is the database reachable right now?
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Is the database reachable and willing to take writes right now?
    pub async fn ready(&self) -> bool {
        self.health().await.is_ok()
    }

    /// Why this node cannot write right now, if it cannot: one real write (a counter bumped
    /// in its own transaction), so an unreachable database, a read-only one (a standby after
    /// a failover, `default_transaction_read_only`) and a full disk each answer their error.
    pub async fn health(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let arrived = self.health.begun.load(Ordering::Acquire);
        let mut last = self.health.last.lock().await;
        let outcome = match &*last {
            // A probe begun after this caller arrived has finished meanwhile: its answer.
            Some((n, outcome)) if *n > arrived => outcome.clone(),
            _ => {
                let n = self.health.begun.fetch_add(1, Ordering::AcqRel) + 1;
                let outcome = self.probe().await.map_err(|e| match e {
                    StoreError::StorageFull(m) => (true, m),
                    other => (false, other.to_string()),
                });
                *last = Some((n, outcome.clone()));
                outcome
            }
        };
        outcome.map_err(|(full, m)| if full { StoreError::StorageFull(m) } else { StoreError::Unavailable(m) })
    }

    async fn probe(&self) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE health_probe SET writes = writes + 1 WHERE id = 1").execute(&mut *tx).await?;
        tx.commit().await
    }

    /// Every `(table, column)` of the schema Keyward manages, sorted: both backends must end
    /// with the same after their migrations.
    pub async fn schema(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut out: Vec<(String, String)> = sqlx::query_as(self.dialect.schema_query()).fetch_all(&self.pool).await?;
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod health_tests {
    use sqlx::Row;

    async fn probe_writes(store: &crate::Store) -> i64 {
        let r = sqlx::query("SELECT writes FROM health_probe WHERE id = 1").fetch_one(&store.pool).await.unwrap();
        r.try_get::<i64, _>("writes").unwrap()
    }

    /// Twenty `/healthz` at once cost two probes (the one running when they arrived, and one
    /// begun after), not twenty; a later caller always gets a probe of its own.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_health_checks_share_a_probe() {
        // The time only made the folder's name unique: random characters do that without a clock.
        let at = keyward_core::random::base62_string(&keyward_core::OsRandom, 12);
        let dir = std::env::temp_dir().join(format!("kw-store-health-{}-{at}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::Store::connect(&crate::sqlite_url(&dir)).await.unwrap();
        let before = probe_writes(&store).await;
        let all: Vec<_> = (0..20).map(|_| store.health()).collect();
        for r in futures_util::future::join_all(all).await {
            r.unwrap();
        }
        let shared = probe_writes(&store).await;
        assert!(shared - before <= 2, "{} probes for 20 callers", shared - before);
        store.health().await.unwrap();
        store.health().await.unwrap();
        assert_eq!(probe_writes(&store).await - shared, 2, "sequential callers probe afresh");
        store.close().await;
        std::fs::remove_dir_all(&dir).ok();
    }
}
