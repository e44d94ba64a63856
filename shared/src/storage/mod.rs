//! Storage of daily stats, source offsets and the watermark, on SQLite, PostgreSQL or (cargo
//! feature `mysql`) MySQL/MariaDB.
//!
//! This module is the only place that knows which backend is in use: the URL's scheme picks it,
//! and every query is written once and expanded for each connection type by `with_backend!`.

mod models;
pub mod schema;

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDate;
use diesel::connection::SimpleConnection;
#[cfg(feature = "mysql")]
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel::upsert::excluded;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use crate::redact::redact;
use crate::redact::scrub;
use crate::stats::DayStats;
pub use models::{date_from_day, day_from_date, SourceOffset};
use models::{DailyStatsRow, SourceOffsetRow};
use schema::{customer_versions, daily_stats, ingest_watermark, source_offsets};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/mysql");

/// The last day a stored row can have. SQLite keeps dates as `YYYY-MM-DD` text, so an open-ended
/// range must end on a four-digit year: `NaiveDate::MAX` renders as `+262142-12-31`, which sorts
/// before every real date.
const LAST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(day) => day,
    None => NaiveDate::MAX,
};

/// Rows per multi-row statement; keeps SQLite under its bind-parameter limit.
const ROWS_PER_STATEMENT: usize = 1000;

/// Errors from the database layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The URL names no supported backend.
    #[error(
        "unsupported database URL {0:?}: expected sqlite://PATH, postgres://... or mysql://..."
    )]
    UnsupportedUrl(String),
    /// The URL names a backend this build leaves out (a cargo feature).
    #[error(
        "{backend} URLs need a build with the cargo feature `{feature}` (for example `make \
         ingest FEATURES={feature}`, which links the C client library: Debian's libmariadb-dev)"
    )]
    NotBuilt {
        /// The backend's name.
        backend: &'static str,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
    /// The database could not be reached.
    #[error("cannot connect to {url}: {cause}")]
    Connect {
        /// The URL without credentials.
        url: String,
        /// What the pool said, with any echoed password masked.
        cause: String,
    },
    /// No connection could be taken from the pool in time.
    #[error("database unavailable: {0}")]
    Pool(r2d2::Error),
    /// Applying the embedded migrations failed.
    #[error("applying migrations failed: {0}")]
    Migration(String),
    /// The database lacks migrations of this build, and the store was opened without applying
    /// them ([`StoreOptions::apply_migrations`] false).
    #[error(
        "the database schema is not current: {pending} migration(s) of this version are not \
         applied, and this process does not apply migrations"
    )]
    SchemaNotCurrent {
        /// How many of this build's migrations the database lacks.
        pending: usize,
    },
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(diesel::result::Error),
    /// A stored row could not be decoded.
    #[error("stored row for {customer_id} on {day} is corrupt: {reason}")]
    CorruptRow {
        /// Customer of the row.
        customer_id: String,
        /// Day of the row.
        day: NaiveDate,
        /// What is wrong.
        reason: String,
    },
    /// A merged row holds a number the database cannot store exactly (a count or latency sum
    /// past 2^63 - 1): the commit is refused rather than store a wrong number.
    #[error("stats for {customer_id} on {day} cannot be stored exactly: {reason}")]
    Unrepresentable {
        /// Customer of the row.
        customer_id: String,
        /// Day of the row.
        day: NaiveDate,
        /// Which number is too large.
        reason: String,
    },
    /// Another job took over a source's lease; this job must not commit it.
    #[error("lease on {source_name} lost to {owner:?}: another ingest job is reading it")]
    LeaseLost {
        /// The source.
        source_name: String,
        /// Who holds it now.
        owner: Option<String>,
    },
    /// The database file is damaged (SQLite's "database disk image is malformed"): retrying
    /// cannot help.
    #[error(
        "the database is corrupt ({0}); restore it from a backup, or move it away and ingest \
         the logs again"
    )]
    Corrupt(String),
    /// Creating the SQLite file or its directory failed.
    #[error("cannot create the SQLite file {path} or its directory: {cause}")]
    Directory {
        /// The SQLite file.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
}

// The causes are part of the messages above, so they are not also reported as `source()`:
// a printed chain would say them twice.
impl From<r2d2::Error> for StorageError {
    fn from(e: r2d2::Error) -> Self {
        match corruption(&e.to_string()) {
            Some(message) => StorageError::Corrupt(message.to_string()),
            None => StorageError::Pool(e),
        }
    }
}

impl From<diesel::result::Error> for StorageError {
    fn from(e: diesel::result::Error) -> Self {
        match corruption(&e.to_string()) {
            Some(message) => StorageError::Corrupt(message.to_string()),
            None => StorageError::Query(e),
        }
    }
}

/// SQLite's message for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB) if `message` holds one:
/// diesel passes SQLite's text, not its result code.
fn corruption(message: &str) -> Option<&'static str> {
    ["database disk image is malformed", "file is not a database"]
        .into_iter()
        .find(|m| message.contains(m))
}

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
    /// MySQL or MariaDB server (cargo feature `mysql`).
    Mysql,
}

/// Options for opening a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most pooled connections.
    pub pool_size: u32,
    /// How long to wait for a connection before failing.
    pub connect_timeout: Duration,
    /// Apply this build's migrations the database lacks (`true`), or refuse to open a database
    /// that lacks any ([`StorageError::SchemaNotCurrent`]): for a role that may only read.
    /// Either way a database that has them all is not changed (see [`Store::connect`]).
    pub apply_migrations: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
            apply_migrations: true,
        }
    }
}

/// A pooled connection to the stats database. Which backend it is stays inside this module
/// ([`Store::backend`] names it, for messages and tests).
#[derive(Clone)]
pub struct Store {
    pools: Pools,
}

/// The pool of whichever backend the URL selected.
#[derive(Clone)]
enum Pools {
    /// SQLite file.
    Sqlite(Pool<ConnectionManager<SqliteConnection>>),
    /// PostgreSQL database.
    Postgres(Pool<ConnectionManager<PgConnection>>),
    /// MySQL or MariaDB database.
    #[cfg(feature = "mysql")]
    Mysql(Pool<ConnectionManager<MysqlConnection>>),
}

/// One committed epoch: stats deltas plus the source offsets and watermark that produced them.
#[derive(Debug, Default)]
pub struct EpochCommit {
    /// Deltas per (customer, day as days since 1970-01-01), merged into the stored rows.
    pub deltas: Vec<(String, i32, DayStats)>,
    /// New committed position of every source read in the epoch.
    pub sources: Vec<SourceOffset>,
    /// What the committing job expects each of `sources` (same order) to hold before this
    /// epoch: the position it resumed from, or its previous epoch's. A source found already at
    /// its new position instead was moved there by an earlier attempt of this very commit (whose
    /// COMMIT reply was lost), and the epoch is not applied twice. Empty: no such check.
    pub previous: Vec<SourceOffset>,
    /// Newest event time (Unix seconds) accepted in the epoch.
    pub max_event_time: Option<i64>,
    /// The job committing: it must hold the lease of every source in `sources`, which is
    /// renewed until `lease_until` (Unix seconds).
    pub lease: Option<(String, i64)>,
}

/// What [`Store::commit_epoch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The epoch was merged in: this many (customer, day) rows written.
    Written(usize),
    /// An earlier attempt of the same epoch had committed (its reply was lost before it
    /// reached the job): nothing was written again.
    AlreadyCommitted,
}

/// A stored day with the version of the commit that last wrote it.
#[derive(Debug, Clone)]
pub struct VersionedDay {
    /// The UTC day.
    pub day: NaiveDate,
    /// The commit version that wrote it (see [`Store::customer_version`]).
    pub version: i64,
    /// Its stats.
    pub stats: DayStats,
}

/// The job holding a source's lease, and until when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// The holder's job id.
    pub owner: String,
    /// When the lease runs out unless renewed.
    pub until: i64,
}

/// The answer to [`Store::acquire_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The lease is ours; the source's committed position, if it was ever read.
    Acquired(Option<SourceOffset>),
    /// Another live job holds the lease.
    Held(LeaseHolder),
}

/// Runs `$body` with `$conn` bound to a connection of whichever backend `$store` uses.
macro_rules! with_backend {
    ($store:expr, $conn:ident => $body:expr) => {
        match &$store.pools {
            Pools::Sqlite(pool) => {
                let mut pooled = pool.get()?;
                let $conn: &mut SqliteConnection = &mut pooled;
                $body
            }
            Pools::Postgres(pool) => {
                let mut pooled = pool.get()?;
                let $conn: &mut PgConnection = &mut pooled;
                $body
            }
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => {
                let mut pooled = pool.get()?;
                let $conn: &mut MysqlConnection = &mut pooled;
                $body
            }
        }
    };
}

/// Runs `$body` in a transaction that excludes every other writer: SQLite's immediate
/// transaction, on PostgreSQL a lock on the written tables that plain readers never wait for, on
/// MySQL the lock of the one `writer_lock` row (plain reads take no locks there).
macro_rules! write_transaction {
    ($store:expr, $conn:ident => $body:expr) => {
        match &$store.pools {
            Pools::Sqlite(pool) => pool.get()?.immediate_transaction(|$conn| $body),
            Pools::Postgres(pool) => pool.get()?.transaction(|$conn| {
                $conn.batch_execute(
                    "LOCK TABLE daily_stats, source_offsets IN SHARE ROW EXCLUSIVE MODE",
                )?;
                $body
            }),
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => pool.get()?.transaction(|$conn| {
                diesel::sql_query("UPDATE writer_lock SET writes = writes + 1 WHERE id = 1")
                    .execute($conn)?;
                $body
            }),
        }
    };
}

/// Applies pending migrations; a concurrent start of another binary may win the race, so retry.
macro_rules! migrate {
    ($conn:expr, $migrations:expr) => {{
        let mut attempt = 0;
        loop {
            match $conn.run_pending_migrations($migrations) {
                Ok(_) => break Ok(()),
                Err(_) if attempt < 3 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(200 * attempt));
                }
                Err(e) => {
                    let message = e.to_string();
                    break Err(match corruption(&message) {
                        Some(corrupt) => StorageError::Corrupt(corrupt.to_string()),
                        None => StorageError::Migration(message),
                    });
                }
            }
        }
    }};
}

mod commit;
mod offsets;
mod reads;

pub use reads::VersionReader;

/// The versions recorded in diesel's migrations table (none when there is no such table yet):
/// `$exists` counts the tables of that name the connection sees.
macro_rules! applied_migrations {
    ($conn:expr, $exists:expr) => {{
        #[derive(QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        #[derive(QueryableByName)]
        struct Applied {
            #[diesel(sql_type = diesel::sql_types::Text)]
            version: String,
        }
        let conn = $conn;
        let found = diesel::sql_query($exists).get_result::<Found>(conn)?;
        if found.n == 0 {
            Ok::<_, StorageError>(std::collections::HashSet::new())
        } else {
            Ok(
                diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
                    .load::<Applied>(conn)?
                    .into_iter()
                    .map(|row| row.version)
                    .collect::<std::collections::HashSet<String>>(),
            )
        }
    }};
}

/// The versions of this build's migrations for one backend, as diesel records them.
fn migration_versions<DB: diesel::backend::Backend>(
    migrations: &EmbeddedMigrations,
) -> Result<Vec<String>, StorageError>
where
    EmbeddedMigrations: diesel::migration::MigrationSource<DB>,
{
    diesel::migration::MigrationSource::<DB>::migrations(migrations)
        .map(|all| {
            all.iter()
                .map(|migration| migration.name().version().to_string())
                .collect()
        })
        .map_err(|e| StorageError::Migration(e.to_string()))
}

/// Session settings of every MySQL connection: each statement reads the newest committed rows,
/// as on PostgreSQL (InnoDB's default, REPEATABLE READ, would keep a transaction's first
/// snapshot), and a writer waits for another's commit as long as a slow commit can take.
#[cfg(feature = "mysql")]
#[derive(Debug)]
struct MysqlSession;

#[cfg(feature = "mysql")]
impl CustomizeConnection<MysqlConnection, diesel::r2d2::Error> for MysqlSession {
    fn on_acquire(&self, conn: &mut MysqlConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
             SET SESSION innodb_lock_wait_timeout = 600; SET time_zone = '+00:00'",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "PRAGMA busy_timeout = 30000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA wal_autocheckpoint = 16384; PRAGMA mmap_size = 268435456;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

impl Store {
    /// Opens a pool for `url` (`sqlite://PATH` or `postgres://...`) and applies the migrations
    /// the database lacks (see [`StoreOptions::apply_migrations`]).
    ///
    /// Whether any is lacking is read first, without writing anything, so a database that has
    /// them all can be opened by a role that may only read it.
    pub fn connect(url: &str, options: &StoreOptions) -> Result<Store, StorageError> {
        let pools = match Self::backend_of(url)? {
            Backend::Sqlite => {
                let path = sqlite_path(url);
                if let Some(dir) = std::path::Path::new(path).parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|cause| StorageError::Directory {
                            path: path.to_string(),
                            cause,
                        })?;
                    }
                }
                create_private(path).map_err(|cause| StorageError::Directory {
                    path: path.to_string(),
                    cause,
                })?;
                let builder = Pool::builder()
                    // Opened at start-up together, connections to a new file contend for its
                    // switch to WAL and back off in SQLite's busy handler (~0.4 s): one is
                    // opened up front, the others when needed.
                    .min_idle(Some(1))
                    .connection_customizer(Box::new(SqlitePragmas));
                Pools::Sqlite(build_pool(builder, options, path, url)?)
            }
            Backend::Postgres => Pools::Postgres(build_pool(Pool::builder(), options, url, url)?),
            #[cfg(feature = "mysql")]
            Backend::Mysql => {
                let builder = Pool::builder().connection_customizer(Box::new(MysqlSession));
                Pools::Mysql(build_pool(builder, options, url, url)?)
            }
            #[cfg(not(feature = "mysql"))]
            Backend::Mysql => {
                return Err(StorageError::NotBuilt {
                    backend: "mysql://",
                    feature: "mysql",
                })
            }
        };
        let store = Store { pools };
        let pending = store.pending_migrations();
        if options.apply_migrations {
            match pending {
                Ok(0) => {}
                // No connection in time: applying them would wait as long again.
                Err(error @ StorageError::Pool(_)) => return Err(error),
                // Lacking some, or unreadable: applying them says why, or creates what was
                // missing.
                _ => store.migrate()?,
            }
        } else {
            match pending? {
                0 => {}
                pending => return Err(StorageError::SchemaNotCurrent { pending }),
            }
        }
        Ok(store)
    }

    /// The backend a URL selects.
    pub fn backend_of(url: &str) -> Result<Backend, StorageError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("mysql://") {
            Ok(Backend::Mysql)
        } else {
            Err(StorageError::UnsupportedUrl(redact(url)))
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match &self.pools {
            Pools::Sqlite(_) => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "mysql")]
            Pools::Mysql(_) => Backend::Mysql,
        }
    }

    fn migrate(&self) -> Result<(), StorageError> {
        match &self.pools {
            Pools::Sqlite(pool) => migrate!(pool.get()?, SQLITE_MIGRATIONS),
            Pools::Postgres(pool) => {
                let mut conn = pool.get()?;
                // Serialise concurrent starts (ingest and API together) on one database.
                conn.batch_execute("SELECT pg_advisory_lock(7410202411)")?;
                let result = migrate!(conn, POSTGRES_MIGRATIONS);
                conn.batch_execute("SELECT pg_advisory_unlock(7410202411)")?;
                result
            }
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => {
                let mut conn = pool.get()?;
                // Serialise concurrent starts; the lock ends with the session at the latest.
                conn.batch_execute("DO GET_LOCK('logstats_migrate', 60)")?;
                let result = migrate!(conn, MYSQL_MIGRATIONS);
                conn.batch_execute("DO RELEASE_LOCK('logstats_migrate')")?;
                result
            }
        }
    }

    /// How many of this build's migrations the database lacks (0: the schema is current).
    /// Answers only when the database does: the readiness check.
    ///
    /// Only reads: diesel's own check first creates its migrations table if missing, which a
    /// role that may only read is refused even when the table exists (PostgreSQL checks the
    /// schema's CREATE privilege before it looks).
    pub fn pending_migrations(&self) -> Result<usize, StorageError> {
        let (known, applied) = match &self.pools {
            Pools::Sqlite(pool) => (
                migration_versions::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS)?,
                applied_migrations!(
                    &mut *pool.get()?,
                    "SELECT count(*) AS n FROM sqlite_master \
                     WHERE type = 'table' AND name = '__diesel_schema_migrations'"
                )?,
            ),
            Pools::Postgres(pool) => (
                migration_versions::<diesel::pg::Pg>(&POSTGRES_MIGRATIONS)?,
                applied_migrations!(
                    &mut *pool.get()?,
                    "SELECT count(*) AS n FROM (SELECT to_regclass('__diesel_schema_migrations') \
                     AS t) found WHERE t IS NOT NULL"
                )?,
            ),
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => (
                migration_versions::<diesel::mysql::Mysql>(&MYSQL_MIGRATIONS)?,
                applied_migrations!(
                    &mut *pool.get()?,
                    "SELECT count(*) AS n FROM information_schema.tables \
                     WHERE table_schema = DATABASE() AND table_name = '__diesel_schema_migrations'"
                )?,
            ),
        };
        Ok(known
            .iter()
            .filter(|version| !applied.contains(*version))
            .count())
    }

    /// The pool's connections: (open, idle among them), for monitoring.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = match &self.pools {
            Pools::Sqlite(pool) => pool.state(),
            Pools::Postgres(pool) => pool.state(),
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => pool.state(),
        };
        (state.connections, state.idle_connections)
    }
}

/// Finishes `builder` with the settings every backend shares and opens the pool on `target`
/// (the URL, or SQLite's file path); errors name `url` without its password.
fn build_pool<C>(
    builder: diesel::r2d2::Builder<ConnectionManager<C>>,
    options: &StoreOptions,
    target: &str,
    url: &str,
) -> Result<Pool<ConnectionManager<C>>, StorageError>
where
    C: diesel::r2d2::R2D2Connection + 'static,
{
    builder
        .max_size(options.pool_size)
        .connection_timeout(options.connect_timeout)
        // Failures reach the caller, which reports them once per interval.
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
        .build(ConnectionManager::<C>::new(target))
        .map_err(|cause| StorageError::Connect {
            url: redact(url),
            cause: scrub(&cause.to_string(), url).into_owned(),
        })
}

/// Creates the SQLite file readable by its owner only, if it does not exist yet: SQLite would
/// create it world-readable, and its journal files take its mode.
fn create_private(path: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.is_empty() || path.starts_with(':') || path.starts_with("file:") {
        return Ok(()); // in memory, or a URI SQLite opens itself
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// The file path of a `sqlite://PATH` (or `sqlite:PATH`) URL.
fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema is read without writing; a store that may not migrate refuses a database
    /// that lacks migrations, and opens one that has them all.
    #[cfg(feature = "testing")]
    #[test]
    fn missing_migrations_are_counted_and_applied_only_when_allowed() {
        for db in crate::testing::backends() {
            let read_only = StoreOptions {
                apply_migrations: false,
                ..StoreOptions::default()
            };
            let all = match db.backend {
                Backend::Sqlite => migration_versions::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS),
                Backend::Postgres => migration_versions::<diesel::pg::Pg>(&POSTGRES_MIGRATIONS),
                #[cfg(feature = "mysql")]
                Backend::Mysql => migration_versions::<diesel::mysql::Mysql>(&MYSQL_MIGRATIONS),
                #[cfg(not(feature = "mysql"))]
                Backend::Mysql => unreachable!("no MySQL test database without the feature"),
            }
            .expect("the embedded migrations")
            .len();
            assert!(all >= 1);
            match Store::connect(&db.url, &read_only) {
                Err(StorageError::SchemaNotCurrent { pending }) => {
                    assert_eq!(pending, all, "{db:?}")
                }
                other => panic!("{db:?}: {:?}", other.err()),
            }
            let store = db.connect();
            assert_eq!(store.pending_migrations().expect("readable"), 0);
            db.execute(
                "DELETE FROM __diesel_schema_migrations \
                 WHERE version = (SELECT MAX(version) FROM __diesel_schema_migrations)",
            );
            assert_eq!(store.pending_migrations().expect("readable"), 1);
            match Store::connect(&db.url, &read_only) {
                Err(StorageError::SchemaNotCurrent { pending: 1 }) => {}
                other => panic!("{db:?}: {:?}", other.err()),
            }
            db.connect();
            let reader = Store::connect(&db.url, &read_only).expect("a current schema opens");
            assert_eq!(reader.pending_migrations().expect("readable"), 0);
        }
    }

    #[test]
    fn backend_follows_the_scheme() {
        assert_eq!(
            Store::backend_of("sqlite://data/x.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Store::backend_of("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Store::backend_of("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(Store::backend_of("mysql://u@h/db").unwrap(), Backend::Mysql);
        assert!(matches!(
            Store::backend_of("mariadb://h/db"),
            Err(StorageError::UnsupportedUrl(_))
        ));
        assert_eq!(sqlite_path("sqlite://data/x.db"), "data/x.db");
        assert_eq!(sqlite_path("sqlite:///tmp/x.db"), "/tmp/x.db");
    }
}
