//! The pools, opening a store, and the one `match` on the backend: [`Store::with_connection`] and
//! [`Store::write`] hand the connection of whichever backend the URL selected to code written
//! once against `&mut dyn StoreConnection`.

use diesel::connection::SimpleConnection;
#[cfg(feature = "mysql")]
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;

use super::daily_stats::DailyStatsRows;
use super::fleet_days::FleetDayRows;
use super::offsets::OffsetRows;
use super::prune::PruneRows;
use super::push_batches::PushBatchRows;
use super::upserts::Upserts;
use super::versions::VersionRows;
use super::{Backend, StorageError, Store, StoreOptions};
use crate::redact::{redact, scrub};

/// Everything the store asks of a connection: the queries of each table, written once for
/// every backend, and the writes whose form differs per backend. The commit and the reads are
/// plain functions of a `&mut dyn StoreConnection`.
pub(super) trait StoreConnection:
    DailyStatsRows + FleetDayRows + OffsetRows + PruneRows + PushBatchRows + VersionRows + Upserts
{
}

impl<
        C: DailyStatsRows
            + FleetDayRows
            + OffsetRows
            + PruneRows
            + PushBatchRows
            + VersionRows
            + Upserts,
    > StoreConnection for C
{
}

/// The pool of whichever backend the URL selected.
#[derive(Clone)]
pub(super) enum Pools {
    /// SQLite file.
    Sqlite(Pool<ConnectionManager<SqliteConnection>>),
    /// PostgreSQL database.
    Postgres(Pool<ConnectionManager<PgConnection>>),
    /// MySQL or MariaDB database.
    #[cfg(feature = "mysql")]
    Mysql(Pool<ConnectionManager<MysqlConnection>>),
}

/// A connection taken from the pool of whichever backend, which can be kept across reads.
pub(super) enum Pooled {
    Sqlite(PooledConnection<ConnectionManager<SqliteConnection>>),
    Postgres(PooledConnection<ConnectionManager<PgConnection>>),
    #[cfg(feature = "mysql")]
    Mysql(PooledConnection<ConnectionManager<MysqlConnection>>),
}

impl Pooled {
    /// The connection, as the queries take it.
    pub(super) fn connection(&mut self) -> &mut dyn StoreConnection {
        match self {
            Pooled::Sqlite(conn) => &mut **conn,
            Pooled::Postgres(conn) => &mut **conn,
            #[cfg(feature = "mysql")]
            Pooled::Mysql(conn) => &mut **conn,
        }
    }
}

impl Store {
    /// A connection from the pool (waiting at most the connect timeout).
    pub(super) fn checkout(&self) -> Result<Pooled, StorageError> {
        Ok(match &self.pools {
            Pools::Sqlite(pool) => Pooled::Sqlite(pool.get()?),
            Pools::Postgres(pool) => Pooled::Postgres(pool.get()?),
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => Pooled::Mysql(pool.get()?),
        })
    }

    /// Runs `body` on a connection from the pool, outside any explicit transaction.
    pub(super) fn with_connection<T, E>(
        &self,
        body: impl FnOnce(&mut dyn StoreConnection) -> Result<T, E>,
    ) -> Result<T, StorageError>
    where
        StorageError: From<E>,
    {
        Ok(body(self.checkout()?.connection())?)
    }

    /// Runs `body` in a transaction that excludes every other writer: SQLite's immediate
    /// transaction, on PostgreSQL a lock on the written tables that plain readers never wait for,
    /// on MySQL the lock of the one `writer_lock` row (plain reads take no locks there).
    pub(super) fn write<T>(
        &self,
        body: impl FnOnce(&mut dyn StoreConnection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        match &self.pools {
            Pools::Sqlite(pool) => {
                let mut pooled = pool.get()?;
                let conn: &mut SqliteConnection = &mut pooled;
                conn.immediate_transaction(|conn| body(conn))
            }
            Pools::Postgres(pool) => {
                locked_transaction(pool, include_str!("sql/postgres_write_lock.sql"), body)
            }
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => {
                locked_transaction(pool, include_str!("sql/mysql_write_lock.sql"), body)
            }
        }
    }

    /// Whether the pool keeps more than one connection (a reader may then hold one).
    pub(super) fn pool_holds_several(&self) -> bool {
        self.pool_size() > 1
    }

    /// The most connections the pool opens.
    pub fn pool_size(&self) -> u32 {
        match &self.pools {
            Pools::Sqlite(pool) => pool.max_size(),
            Pools::Postgres(pool) => pool.max_size(),
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => pool.max_size(),
        }
    }

    /// Opens a pool for `url` (`sqlite://PATH` or `postgres://...`) and applies the migrations
    /// the database lacks (see [`StoreOptions::apply_migrations`]); when it may, it then builds
    /// the fleet rows of the rows committed before `fleet_days` existed, once (see
    /// [`Store::fleet_days`]).
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
                    .connection_customizer(Box::new(SqlitePragmas {
                        mapped_reads: options.mapped_reads,
                        cache_bytes: options.sqlite_cache_bytes,
                    }));
                Pools::Sqlite(build_pool(builder, options, path, url)?)
            }
            Backend::Postgres => {
                let builder = Pool::builder().connection_customizer(Box::new(PgSession {
                    statement_timeout: options.statement_timeout,
                }));
                Pools::Postgres(build_pool(builder, options, url, url)?)
            }
            #[cfg(feature = "mysql")]
            Backend::Mysql => {
                let builder = Pool::builder().connection_customizer(Box::new(MysqlSession {
                    statement_timeout: options.statement_timeout,
                }));
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
                // No connection in time: applying them would wait as long again. A newer
                // schema is never touched.
                Err(error @ (StorageError::Pool(_) | StorageError::SchemaNewer { .. })) => {
                    return Err(error)
                }
                // Lacking some, or unreadable: applying them says why, or creates what was
                // missing.
                _ => store.migrate()?,
            }
            // Rows committed before fleet_days existed get their fleet rows once, here.
            store.build_pending_fleet_days()?;
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

/// Runs `body` in a transaction of a connection from `pool` whose first statement is `lock`,
/// which excludes every other writer.
fn locked_transaction<C, T>(
    pool: &Pool<ConnectionManager<C>>,
    lock: &str,
    body: impl FnOnce(&mut dyn StoreConnection) -> Result<T, StorageError>,
) -> Result<T, StorageError>
where
    C: diesel::r2d2::R2D2Connection + StoreConnection + 'static,
{
    let mut pooled = pool.get()?;
    let conn: &mut C = &mut pooled;
    conn.transaction(|conn| {
        conn.batch_execute(lock)?;
        body(conn)
    })
}

/// Session settings of every MySQL connection (see the SQL file), and its statement timeout.
#[cfg(feature = "mysql")]
#[derive(Debug)]
struct MysqlSession {
    statement_timeout: Option<std::time::Duration>,
}

#[cfg(feature = "mysql")]
impl CustomizeConnection<MysqlConnection, diesel::r2d2::Error> for MysqlSession {
    fn on_acquire(&self, conn: &mut MysqlConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(include_str!("sql/mysql_session.sql"))
            .map_err(diesel::r2d2::Error::QueryError)?;
        if let Some(timeout) = self.statement_timeout {
            // MariaDB's variable (seconds, a fraction allowed); MySQL has max_execution_time
            // (milliseconds, SELECTs only) instead.
            let mariadb = format!(
                "SET SESSION max_statement_time = {:.3}",
                timeout.as_secs_f64()
            );
            if conn.batch_execute(&mariadb).is_err() {
                conn.batch_execute(&format!(
                    "SET SESSION max_execution_time = {}",
                    timeout.as_millis().max(1)
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
            }
        }
        Ok(())
    }
}

/// The statement timeout of every PostgreSQL connection, if one is set.
#[derive(Debug)]
struct PgSession {
    statement_timeout: Option<std::time::Duration>,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for PgSession {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        match self.statement_timeout {
            Some(timeout) => conn
                .batch_execute(&format!(
                    "SET statement_timeout = {}",
                    timeout.as_millis().max(1)
                ))
                .map_err(diesel::r2d2::Error::QueryError),
            None => Ok(()),
        }
    }
}

/// Settings of every SQLite connection (see the SQL file), whether it reads through mmap, and
/// its page cache.
#[derive(Debug)]
struct SqlitePragmas {
    mapped_reads: bool,
    cache_bytes: Option<u64>,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(include_str!("sql/sqlite_pragmas.sql"))
            .map_err(diesel::r2d2::Error::QueryError)?;
        if !self.mapped_reads {
            // Each connection maps the file on its own, and every page it touches counts in
            // the process's resident memory once per mapping.
            conn.batch_execute("PRAGMA mmap_size = 0")
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        if let Some(bytes) = self.cache_bytes {
            // A negative size is in KiB. Statement journals (a multi-row statement's undo copy
            // of each page it changes) are kept in memory too, not in a temporary file.
            conn.batch_execute(&format!(
                "PRAGMA cache_size = -{}; PRAGMA temp_store = MEMORY",
                (bytes / 1024).max(1)
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
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

    /// A database the store creates gets 16 KiB pages; a file that exists keeps its page
    /// size. Either way the daily rows are one b-tree ordered by (customer, day).
    #[cfg(feature = "testing")]
    #[test]
    fn sqlite_daily_rows_are_one_b_tree_and_new_files_have_16_kib_pages() {
        use diesel::sql_types::{BigInt, Text};
        use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};

        #[derive(QueryableByName)]
        struct PageSize {
            #[diesel(sql_type = BigInt)]
            page_size: i64,
        }
        #[derive(QueryableByName)]
        struct Table {
            #[diesel(sql_type = Text)]
            sql: String,
        }
        let layout = |db: &crate::testing::TestDatabase| {
            let mut conn = SqliteConnection::establish(sqlite_path(&db.url)).expect("opens");
            let size: PageSize = diesel::sql_query("PRAGMA page_size")
                .get_result(&mut conn)
                .expect("a page size");
            let table: Table =
                diesel::sql_query("SELECT sql FROM sqlite_master WHERE name = 'daily_stats'")
                    .get_result(&mut conn)
                    .expect("the table");
            (
                size.page_size,
                table.sql.trim_end().ends_with("WITHOUT ROWID"),
            )
        };
        let new = crate::testing::TestDatabase::sqlite();
        new.connect();
        assert_eq!(layout(&new), (16384, true));

        let old = crate::testing::TestDatabase::sqlite();
        let mut conn = SqliteConnection::establish(sqlite_path(&old.url)).expect("creates");
        diesel::sql_query("PRAGMA page_size = 4096")
            .execute(&mut conn)
            .expect("set");
        diesel::sql_query("CREATE TABLE existing (x INTEGER)")
            .execute(&mut conn)
            .expect("created");
        drop(conn);
        old.connect();
        assert_eq!(layout(&old), (4096, true));
    }
}
