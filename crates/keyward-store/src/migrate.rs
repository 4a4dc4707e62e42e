//! Migrations, one folder per backend, embedded in the binary and run at start. PostgreSQL
//! takes an advisory lock, so several nodes starting at once migrate exactly once.

use futures_core::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;

use crate::{Backend, Store, StoreError};

const SQLITE: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
    (2, "public keys", include_str!("../migrations/sqlite/0002_public_keys.sql")),
    (3, "governance", include_str!("../migrations/sqlite/0003_governance.sql")),
];
const POSTGRES: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/postgres/0001_init.sql")),
    (2, "public keys", include_str!("../migrations/postgres/0002_public_keys.sql")),
    (3, "governance", include_str!("../migrations/postgres/0003_governance.sql")),
];

#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(*v, Cow::Borrowed(*d), MigrationType::Simple, Cow::Borrowed(*sql), false)
                })
                .collect())
        })
    }
}

pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    let source = match store.backend {
        Backend::Sqlite => Embedded(SQLITE),
        Backend::Postgres => Embedded(POSTGRES),
    };
    let migrator = Migrator::new(source).await?;
    migrator.run(&store.pool).await?;
    Ok(())
}
