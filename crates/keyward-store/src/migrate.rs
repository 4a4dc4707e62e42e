//! Migrations: one set of SQL files for both backends (the dialect fills in the few words
//! that differ), embedded in the binary and run at start. PostgreSQL takes an advisory lock,
//! so several nodes starting at once migrate exactly once.

use futures_core::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;

use crate::{Dialect, Store, StoreError};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "public keys", include_str!("../migrations/0002_public_keys.sql")),
    (3, "governance", include_str!("../migrations/0003_governance.sql")),
    (4, "verify tokens", include_str!("../migrations/0004_verify_tokens.sql")),
    (5, "management key lifecycle", include_str!("../migrations/0005_management_key_lifecycle.sql")),
    (6, "governed members", include_str!("../migrations/0006_governed_members.sql")),
    (7, "roles and service accounts", include_str!("../migrations/0007_roles_service_accounts.sql")),
    (8, "audit trail", include_str!("../migrations/0008_audit.sql")),
    (9, "audit checkpoints", include_str!("../migrations/0009_audit_checkpoints.sql")),
    (10, "webhooks", include_str!("../migrations/0010_webhooks.sql")),
    (11, "usage", include_str!("../migrations/0011_usage.sql")),
    (12, "ratelimits", include_str!("../migrations/0012_ratelimits.sql")),
    (13, "health probe", include_str!("../migrations/0013_health_probe.sql")),
    (14, "audit keyed", include_str!("../migrations/0014_audit_keyed.sql")),
    (15, "approval subjects", include_str!("../migrations/0015_approval_subjects.sql")),
    (16, "ratelimit overrides", include_str!("../migrations/0016_ratelimit_overrides.sql")),
    (17, "key imports", include_str!("../migrations/0017_key_imports.sql")),
    (18, "key disabled", include_str!("../migrations/0018_key_disabled.sql")),
    (19, "identities", include_str!("../migrations/0019_identities.sql")),
    (21, "usage tags", include_str!("../migrations/0021_usage_tags.sql")),
    (22, "key leaks", include_str!("../migrations/0022_key_leaks.sql")),
    (23, "operators", include_str!("../migrations/0023_operators.sql")),
    (25, "key rotation links", include_str!("../migrations/0025_key_rotation_links.sql")),
    (26, "apps", include_str!("../migrations/0026_apps.sql")),
    (28, "credential leaks", include_str!("../migrations/0028_credential_leaks.sql")),
];

#[derive(Debug)]
struct Embedded(Dialect);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(MIGRATIONS
                .iter()
                .map(|(v, d, sql)| {
                    // The rendered text is what the checksum covers: it must stay byte for
                    // byte what earlier versions ran, or existing databases refuse to start.
                    let sql = Cow::Owned(self.0.migration_sql(sql));
                    Migration::new(*v, Cow::Borrowed(*d), MigrationType::Simple, sql, false)
                })
                .collect())
        })
    }
}

/// Runs what is not applied yet. Two processes starting on one new SQLite file (PostgreSQL
/// has the advisory lock) can race; the loser tries again once the winner is done, when
/// there is nothing left to apply.
pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    let migrator = Migrator::new(Embedded(store.dialect)).await?;
    let mut tries = 0;
    loop {
        match migrator.run(&store.pool).await {
            Ok(()) => return Ok(()),
            Err(e) if tries < 5 => {
                tries += 1;
                tracing::debug!(error = %e, "migration raced another process; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * tries)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Brings a database's schema only up to `version`: for tests of what a later migration does
/// to rows written before it (`Store::connect` then runs the rest).
#[doc(hidden)]
pub async fn migrate_to(url: &str, version: i64) -> Result<(), StoreError> {
    let dialect = Dialect::from_url(url)?;
    let pool = dialect.connect(url, Some(1)).await?;
    let mut migrator = Migrator::new(Embedded(dialect)).await?;
    migrator.migrations = Cow::Owned(migrator.migrations.iter().filter(|m| m.version <= version).cloned().collect());
    let ran = migrator.run(&pool).await;
    pool.close().await;
    Ok(ran?)
}
