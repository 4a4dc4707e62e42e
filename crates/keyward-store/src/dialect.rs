//! Everything that differs between SQLite and PostgreSQL, and nothing else: the rest of the
//! store is one SQL code path over sqlx's `Any` driver. No other file branches on the backend.

use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgListener;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Transaction};
use std::time::Duration;

use crate::key_event::KeyEvent;
use crate::{Conflict, StoreError};

/// Which database a store talks to, and how each differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded default: one file, WAL, several processes at most on one machine.
    Sqlite,
    /// Several nodes sharing one database; changes are pushed with LISTEN/NOTIFY.
    Postgres,
}

/// The channel key changes are announced on (PostgreSQL).
pub(crate) const CHANNEL: &str = "keyward_keys";

/// Longest a session may sit inside a transaction between statements (PostgreSQL).
const IDLE_IN_TRANSACTION: &str = "SET idle_in_transaction_session_timeout = '10s'";

impl Dialect {
    /// The dialect a database URL names.
    pub fn from_url(url: &str) -> Result<Dialect, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else {
            Err(StoreError::Config("database URL must start with sqlite: or postgres://".into()))
        }
    }

    /// The pool's size when none is set: SQLite serialises writers anyway, so it needs
    /// fewer connections.
    fn default_pool_size(self) -> u32 {
        match self {
            Dialect::Sqlite => 8,
            Dialect::Postgres => 16,
        }
    }

    /// Opens a pool of at most `size` connections (else [`Self::default_pool_size`]).
    pub(crate) async fn connect(self, url: &str, size: Option<u32>) -> Result<AnyPool, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(size.unwrap_or(self.default_pool_size()).max(1))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // Each connection's page cache, 2 MiB by default, kept to 512 KiB: the
                    // verification cache holds what is read often, the OS caches the file,
                    // and eight full page caches were ~170 bytes of every cached key's RSS.
                    if self == Dialect::Sqlite {
                        sqlx::query("PRAGMA cache_size = -512").execute(&mut *conn).await?;
                    }
                    // A node cut off from the database in the middle of a transaction (a
                    // partition that drops packets, a hung process) keeps that transaction's
                    // row locks until PostgreSQL notices, and another node's write of those
                    // rows (a revocation) waited on it without end. Ours never idle that long
                    // between statements, so the server ends such a session.
                    if self == Dialect::Postgres {
                        sqlx::query(IDLE_IN_TRANSACTION).execute(conn).await?;
                    }
                    Ok(())
                })
            })
            // A connection goes back to the pool only outside any transaction. SQLite ends a
            // transaction itself when a statement or COMMIT fails with SQLITE_FULL (also
            // IOERR, BUSY, NOMEM) and sqlx's transaction count does not see it: the ROLLBACK
            // the dropped `Transaction` queues then fails ("no transaction is active"), the
            // count stays at one, and every later `BEGIN IMMEDIATE` on that connection was
            // refused ("begin_with at non-zero transaction depth") for as long as the
            // process ran. A round trip runs the queued rollback; a connection still counted
            // inside a transaction after it is closed (a new one replaces it), never reused.
            .after_release(|conn, _| {
                Box::pin(async move {
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            // Fail fast when the database is gone so management calls answer 503 promptly.
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await?;
        if self == Dialect::Sqlite {
            // WAL lets verification reads proceed while a write commits; it persists in the file.
            // A journal-mode change is told SQLITE_BUSY at once while another process holds the
            // new file (two `init`s racing): the busy timeout does not cover it, so it waits here.
            let mut tries = 0u32;
            loop {
                match sqlx::query("PRAGMA journal_mode=WAL").execute(&pool).await {
                    Ok(_) => break,
                    Err(sqlx::Error::Database(db)) if tries < 50 && db.code().as_deref() == Some("5") => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(pool)
    }

    /// A migration's SQL for this backend. The sources are shared; the only difference is
    /// how an auto-incrementing sequence column is declared.
    pub(crate) fn migration_sql(self, shared: &str) -> String {
        let serial = match self {
            Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
        };
        shared.replace("{{SERIAL_PRIMARY_KEY}}", serial)
    }

    /// Serialises the first `init` of a database. SQLite needs nothing: the first write of a
    /// transaction takes the database's write lock.
    pub(crate) async fn lock_workspaces(self, tx: &mut AnyConnection) -> Result<(), StoreError> {
        if self == Dialect::Postgres {
            sqlx::query("LOCK TABLE workspaces IN EXCLUSIVE MODE").execute(tx).await?;
        }
        Ok(())
    }

    /// Announces a changed cache key at commit. SQLite has no push: nodes poll `key_events`.
    pub(crate) async fn notify(self, tx: &mut AnyConnection, cache_key: &str) -> Result<(), StoreError> {
        if self == Dialect::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(cache_key).execute(tx).await?;
        }
        Ok(())
    }

    /// Listens for change announcements; `None` where the backend cannot push them.
    pub(crate) async fn subscribe(self, url: &str) -> Result<Option<Subscription>, StoreError> {
        if self != Dialect::Postgres {
            return Ok(None);
        }
        let mut l = PgListener::connect(url).await?;
        l.listen(CHANNEL).await?;
        Ok(Some(Subscription(l)))
    }

    /// Appended to a `SELECT` that claims rows of `table` (its alias) for this transaction:
    /// rows another node has claimed are skipped, not waited for. SQLite needs nothing: a
    /// writing transaction holds the whole database.
    pub(crate) fn skip_locked(self, table: &str) -> String {
        match self {
            Dialect::Sqlite => String::new(),
            Dialect::Postgres => format!(" FOR UPDATE OF {table} SKIP LOCKED"),
        }
    }

    /// Every transaction of the store writes. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a writer waits its turn (busy timeout) instead of failing when
    /// a read turns into a write while another commits.
    pub(crate) async fn begin(self, pool: &AnyPool) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self {
            Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => pool.begin().await?,
        })
    }

    /// The hidden column that names a row of any table (also one with a composite key), so
    /// a batch of a table's rows can be deleted by the rows a `LIMIT`ed select found.
    pub(crate) fn row_id(self) -> &'static str {
        match self {
            Dialect::Sqlite => "rowid",
            Dialect::Postgres => "ctid",
        }
    }

    /// Can other nodes be told of changes as they commit (else they poll)?
    pub fn pushes_changes(self) -> bool {
        self == Dialect::Postgres
    }

    /// Lists `(t, c)`: every table and column of the schema, without the migrator's own.
    pub(crate) fn schema_query(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'"
            }
            Dialect::Postgres => {
                "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'"
            }
        }
    }

    /// An SQL expression folding ASCII letters of `column` to lower case, and nothing else,
    /// so a search matches the same rows on both backends (SQLite's `LOWER` folds only ASCII;
    /// PostgreSQL's folds every script, and its `LIKE` is case-sensitive).
    pub(crate) fn ascii_lower(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("LOWER({column})"),
            Dialect::Postgres => {
                format!("translate({column}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
            }
        }
    }
}

/// A stream of changed cache keys pushed by the database (PostgreSQL `LISTEN`).
pub struct Subscription(PgListener);

impl Subscription {
    /// The next announcement (see `events::parse_announcement`). `Ok(None)` means the
    /// connection dropped and notifications may have been missed: the caller must catch up
    /// from `key_events` (or forget what it cached).
    pub async fn next(&mut self) -> Result<Option<String>, StoreError> {
        match self.0.try_recv().await {
            Ok(Some(n)) => Ok(Some(n.payload().to_string())),
            Ok(None) => Ok(None),
            Err(e) => Err(StoreError::from(e)),
        }
    }

    /// A round trip on the listening connection itself. A connection that died silently (a
    /// NAT or firewall dropping it, a host gone without a reset) never delivers another
    /// notification and never says so: only a question that gets no answer tells.
    pub async fn ping(&mut self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&mut self.0).await?;
        Ok(())
    }

    /// Events after `seq`, oldest first, at most `limit`, read on the listening connection
    /// (fresh, unlike pooled connections that may have died with it).
    pub async fn events_after(&mut self, seq: i64, limit: i64) -> Result<Vec<KeyEvent>, StoreError> {
        Ok(sqlx::query_as("SELECT seq, key_hash FROM key_events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(seq)
            .bind(limit)
            .fetch_all(&mut self.0)
            .await?)
    }

    /// The oldest event kept, on the listening connection (0 when none).
    pub async fn first_event_seq(&mut self) -> Result<i64, StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM key_events").fetch_one(&mut self.0).await?;
        Ok(v.unwrap_or(0))
    }
}

/// What a database's error means for the store: unreachable, full, a typed conflict, input
/// it cannot store, or a fault.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(Conflict::from_unique(db.constraint(), db.message()))
            }
            sqlx::Error::Database(db) if db.code().as_deref().is_some_and(storage_full_code) => {
                StoreError::StorageFull(e.to_string())
            }
            sqlx::Error::Database(db) if db.code().as_deref().is_some_and(unavailable_code) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db) if db.code().as_deref().is_some_and(invalid_text_code) => StoreError::InvalidText,
            sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

/// Does a database error code mean "no space left to write" (SQLite's SQLITE_FULL, 13;
/// PostgreSQL's disk_full, 53100)? Nothing was written; the same write works once space is
/// freed.
fn storage_full_code(code: &str) -> bool {
    matches!(code, "13" | "53100")
}

/// Does a database error code mean "cannot be reached right now" (503) rather than a fault?
/// The two backends' codes cannot be confused: PostgreSQL's are five-character SQLSTATEs,
/// SQLite's are small integers.
fn unavailable_code(code: &str) -> bool {
    postgres_unavailable(code) || sqlite_unavailable(code)
}

/// Connection exceptions (class 08), insufficient resources (class 53: too many
/// connections, out of memory; a full disk is told apart first, by `storage_full_code`), the
/// database gone or not accepting connections (3D000, 55000, 57P04), server shutting down
/// (57P01–57P03), and a read-only database (25006: a failover to a standby,
/// `default_transaction_read_only`).
fn postgres_unavailable(code: &str) -> bool {
    code.len() == 5
        && (code.starts_with("08")
            || code.starts_with("53")
            || matches!(code, "3D000" | "55000" | "57P01" | "57P02" | "57P03" | "57P04" | "25006"))
}

/// Input the database cannot store as text (PostgreSQL refuses NUL in strings: 22021,
/// 22P05; and a value too large for a btree index entry: 54000). Checked at the HTTP edge
/// first; this is the backstop.
fn invalid_text_code(code: &str) -> bool {
    matches!(code, "22021" | "22P05" | "54000")
}

/// Busy or locked past the timeout (5, 6), I/O error (10), cannot open (14).
fn sqlite_unavailable(code: &str) -> bool {
    matches!(code, "5" | "6" | "10" | "14")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_dialect() {
        assert_eq!(Dialect::from_url("postgres://u@h/db").ok(), Some(Dialect::Postgres));
        assert_eq!(Dialect::from_url("postgresql://u@h/db").ok(), Some(Dialect::Postgres));
        assert_eq!(Dialect::from_url("sqlite://x.db").ok(), Some(Dialect::Sqlite));
        assert!(Dialect::from_url("mysql://u@h/db").is_err());
    }

    /// A pool holds at most the connections it is given (`--database-pool-size`): the next
    /// caller waits for one to come back.
    #[tokio::test]
    async fn a_pool_holds_at_most_its_size() {
        let url = "sqlite::memory:";
        let pool = Dialect::Sqlite.connect(url, Some(2)).await.unwrap();
        let held = [pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
        let third = tokio::time::timeout(std::time::Duration::from_millis(300), pool.acquire()).await;
        assert!(third.is_err(), "a third connection was opened");
        drop(held);
        assert!(pool.acquire().await.is_ok(), "one came back");
        let default = Dialect::Sqlite.connect(url, None).await.unwrap();
        let held: Vec<_> = futures_util::future::join_all((0..8).map(|_| default.acquire())).await;
        assert!(held.iter().all(Result::is_ok), "eight by default");
    }

    /// Every pooled PostgreSQL session has the idle-in-transaction bound (a cut-off node's
    /// locks must not block the others' writes without end); skipped without a database.
    #[tokio::test]
    async fn postgres_sessions_end_a_transaction_left_idle() {
        let Ok(url) = std::env::var("KEYWARD_TEST_DATABASE_URL") else {
            eprintln!(
                "SKIPPED dialect::postgres_sessions_end_a_transaction_left_idle: KEYWARD_TEST_DATABASE_URL is not set"
            );
            return;
        };
        let pool = Dialect::Postgres.connect(&url, None).await.unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pool.acquire().await.unwrap());
        }
        for c in &mut held {
            let (set,): (String,) = sqlx::query_as("SELECT current_setting('idle_in_transaction_session_timeout')")
                .fetch_one(&mut **c)
                .await
                .unwrap();
            assert_eq!(set, "10s");
        }
    }

    #[test]
    fn full_disk_codes_of_both_backends() {
        for c in ["13", "53100"] {
            assert!(storage_full_code(c), "{c}");
        }
        for c in ["53300", "10", "5", "23505"] {
            assert!(!storage_full_code(c), "{c}");
        }
    }

    /// Sets `PRAGMA max_page_count` on every connection the pool may hold (each held while
    /// it is set): the file cannot grow past `pages` (clamped to its size now).
    async fn limit_pages(pool: &AnyPool, pages: u64) {
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(pool.acquire().await.unwrap());
        }
        for c in &mut held {
            sqlx::query(&format!("PRAGMA max_page_count = {pages}")).execute(&mut **c).await.unwrap();
        }
    }

    async fn write_a_page(store: &crate::Store) -> Result<(), StoreError> {
        let mut tx = store.begin().await?;
        sqlx::query("INSERT INTO key_events (key_hash, created_at) VALUES (hex(randomblob(20000)), 0)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// A database that cannot grow (SQLITE_FULL, made without a small disk) refuses a write
    /// as `StorageFull`; once it can grow again every pooled connection writes.
    #[tokio::test]
    async fn a_full_database_is_storage_full_and_recovers() {
        // The time only made the folder's name unique: random characters do that without a clock.
        let at = keyward_core::random::base62_string(&keyward_core::OsRandom, 12);
        let dir = std::env::temp_dir().join(format!("kw-store-full-{}-{at}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::Store::connect(&crate::sqlite_url(&dir)).await.unwrap();
        limit_pages(&store.pool, 1).await;
        for _ in 0..3 {
            let e = write_a_page(&store).await.unwrap_err();
            assert!(matches!(e, StoreError::StorageFull(_)), "{e:?}");
        }
        limit_pages(&store.pool, 4_294_967_294).await;
        for i in 0..20 {
            write_a_page(&store).await.unwrap_or_else(|e| panic!("write {i} after the limit was lifted: {e}"));
        }
        store.health().await.unwrap();
        store.close().await;
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn unavailable_codes_of_both_backends() {
        for c in ["08006", "3D000", "57P01", "5", "14"] {
            assert!(unavailable_code(c), "{c}");
        }
        for c in ["23505", "42P01", "19", "1"] {
            assert!(!unavailable_code(c), "{c}");
        }
    }
}
