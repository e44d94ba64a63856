//! Storage of daily stats, source offsets and the watermark, on SQLite or PostgreSQL.
//!
//! This module is the only place that knows which backend is in use: the URL's scheme picks it,
//! and every query is written once and expanded for both connection types by `with_backend!`.

mod models;
pub mod schema;

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDate;
use diesel::connection::SimpleConnection;
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
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
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
}

/// Options for opening a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most pooled connections.
    pub pool_size: u32,
    /// How long to wait for a connection before failing.
    pub connect_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A pooled connection to the stats database.
#[derive(Clone)]
pub enum Store {
    /// SQLite file.
    Sqlite(Pool<ConnectionManager<SqliteConnection>>),
    /// PostgreSQL database.
    Postgres(Pool<ConnectionManager<PgConnection>>),
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
        match $store {
            Store::Sqlite(pool) => {
                let mut pooled = pool.get()?;
                let $conn: &mut SqliteConnection = &mut pooled;
                $body
            }
            Store::Postgres(pool) => {
                let mut pooled = pool.get()?;
                let $conn: &mut PgConnection = &mut pooled;
                $body
            }
        }
    };
}

/// Writes merged daily rows, replacing stored ones; the fastest form differs per backend.
trait UpsertRows {
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()>;

    /// Sets the version of each of `customers` to `version`.
    fn upsert_versions(&mut self, customers: &[&str], version: i64) -> QueryResult<()>;
}

impl UpsertRows for SqliteConnection {
    /// Multi-row statements written in SQL: diesel has no multi-row `INSERT .. ON CONFLICT` for
    /// SQLite, and with one statement per row, building and looking up each statement took
    /// about a third of the commit.
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Binary, Date, Text};
        for chunk in rows.chunks(SQLITE_ROWS_PER_STATEMENT) {
            let mut query = diesel::sql_query(sqlite_upsert_sql(chunk.len()))
                .into_boxed::<diesel::sqlite::Sqlite>();
            for row in chunk {
                query = query
                    .bind::<Text, _>(&row.customer_id)
                    .bind::<Date, _>(row.day)
                    .bind::<BigInt, _>(row.successful)
                    .bind::<BigInt, _>(row.failed)
                    .bind::<BigInt, _>(row.latency_sum_us)
                    .bind::<BigInt, _>(row.latency_min_us)
                    .bind::<BigInt, _>(row.latency_max_us)
                    .bind::<Binary, _>(&row.latencies)
                    .bind::<BigInt, _>(row.version);
            }
            query.execute(self)?;
        }
        Ok(())
    }

    /// One statement per customer: in process, that costs microseconds.
    fn upsert_versions(&mut self, customers: &[&str], version: i64) -> QueryResult<()> {
        for customer in customers {
            diesel::insert_into(customer_versions::table)
                .values((
                    customer_versions::customer_id.eq(customer),
                    customer_versions::version.eq(version),
                ))
                .on_conflict(customer_versions::customer_id)
                .do_update()
                .set(customer_versions::version.eq(version))
                .execute(self)?;
        }
        Ok(())
    }
}

/// Rows per SQLite upsert statement: 9 parameters each, far below SQLite's limit of 32,766.
const SQLITE_ROWS_PER_STATEMENT: usize = 200;

/// The insert target of both backends' upserts: every daily_stats column, in bind order.
const INSERT_DAILY_STATS: &str = "INSERT INTO daily_stats (customer_id, day, successful, failed, \
     latency_sum_us, latency_min_us, latency_max_us, latencies, version)";

/// What both backends' upserts do with a stored row: replace every stats column.
const ON_CONFLICT_REPLACE_STATS: &str = "ON CONFLICT (customer_id, day) DO UPDATE SET \
     successful = excluded.successful, failed = excluded.failed, \
     latency_sum_us = excluded.latency_sum_us, latency_min_us = excluded.latency_min_us, \
     latency_max_us = excluded.latency_max_us, latencies = excluded.latencies, \
     version = excluded.version";

/// `INSERT .. ON CONFLICT DO UPDATE` of `rows` daily_stats rows, replacing every stats column.
fn sqlite_upsert_sql(rows: usize) -> String {
    let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ");
    format!("{INSERT_DAILY_STATS} VALUES {values} {ON_CONFLICT_REPLACE_STATS}")
}

/// Rows per PostgreSQL upsert statement: the statement is the same for every chunk (cached), and
/// the bind buffers diesel and libpq fill hold a chunk, not an epoch (1,550 rows of up to ~4 kB
/// each on the benchmark log: about 10 MB less peak RSS).
const POSTGRES_ROWS_PER_UPSERT: usize = 256;

/// One `unnest` upsert of `rows` (see `UpsertRows for PgConnection`).
fn postgres_upsert_chunk(conn: &mut PgConnection, rows: &[DailyStatsRow]) -> QueryResult<()> {
    use diesel::sql_types::{Array, BigInt, Binary, Date, Text};
    if rows.is_empty() {
        return Ok(());
    }
    let column = |value: fn(&DailyStatsRow) -> i64| rows.iter().map(value).collect::<Vec<_>>();
    diesel::sql_query(format!(
        "{INSERT_DAILY_STATS} SELECT * FROM unnest($1::text[], $2::date[], $3::int8[], \
             $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::bytea[], $9::int8[]) \
             {ON_CONFLICT_REPLACE_STATS}"
    ))
    .bind::<Array<Text>, _>(
        rows.iter()
            .map(|r| r.customer_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Date>, _>(rows.iter().map(|r| r.day).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(column(|r| r.successful))
    .bind::<Array<BigInt>, _>(column(|r| r.failed))
    .bind::<Array<BigInt>, _>(column(|r| r.latency_sum_us))
    .bind::<Array<BigInt>, _>(column(|r| r.latency_min_us))
    .bind::<Array<BigInt>, _>(column(|r| r.latency_max_us))
    .bind::<Array<Binary>, _>(
        rows.iter()
            .map(|r| r.latencies.as_slice())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(column(|r| r.version))
    .execute(conn)?;
    Ok(())
}

impl UpsertRows for PgConnection {
    /// Statements of one array per column, [`POSTGRES_ROWS_PER_UPSERT`] rows each: PostgreSQL
    /// parses and plans the statement once (diesel caches it), where a `VALUES` list of
    /// thousands of parameters is parsed and planned anew each time.
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        for chunk in rows.chunks(POSTGRES_ROWS_PER_UPSERT) {
            postgres_upsert_chunk(self, chunk)?;
        }
        Ok(())
    }

    /// Multi-row statements: one round trip instead of one per customer.
    fn upsert_versions(&mut self, customers: &[&str], version: i64) -> QueryResult<()> {
        for chunk in customers.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|customer| {
                    (
                        customer_versions::customer_id.eq(*customer),
                        customer_versions::version.eq(version),
                    )
                })
                .collect();
            diesel::insert_into(customer_versions::table)
                .values(&rows)
                .on_conflict(customer_versions::customer_id)
                .do_update()
                .set(customer_versions::version.eq(version))
                .execute(self)?;
        }
        Ok(())
    }
}

/// Reads, merges and upserts the rows an epoch touches; expanded once per backend.
macro_rules! merge_and_upsert {
    ($conn:expr, $epoch:expr) => {{
        let conn = $conn;
        let epoch: &EpochCommit = $epoch;
        // Committed already? Every source the epoch advances is stored at its new position,
        // which differs from the one the job expected before the epoch. Only the job holding
        // the sources' leases moves them, so only an earlier attempt of this very commit (whose
        // COMMIT reply was lost) can have done that.
        if epoch.previous.len() == epoch.sources.len() && !epoch.sources.is_empty() {
            let mut replayed = true;
            for (next, previous) in epoch.sources.iter().zip(&epoch.previous) {
                let stored: Option<SourceOffsetRow> = source_offsets::table
                    .filter(source_offsets::source.eq(&next.source))
                    .select(SourceOffsetRow::as_select())
                    .first(conn)
                    .optional()?;
                if stored.map(SourceOffset::from).as_ref() != Some(next) || next == previous {
                    replayed = false;
                    break;
                }
            }
            if replayed {
                return Ok(CommitOutcome::AlreadyCommitted);
            }
        }
        let mut merged: HashMap<(String, NaiveDate), DayStats> = HashMap::new();
        for (customer, day, delta) in &epoch.deltas {
            merged
                .entry((customer.clone(), date_from_day(*day)))
                .or_insert_with(DayStats::empty)
                .merge(delta);
        }
        if let (Some(first), Some(last)) = (
            merged.keys().map(|k| k.1).min(),
            merged.keys().map(|k| k.1).max(),
        ) {
            let mut customers: Vec<&str> = epoch.deltas.iter().map(|d| d.0.as_str()).collect();
            customers.sort_unstable();
            customers.dedup();
            for chunk in customers.chunks(ROWS_PER_STATEMENT) {
                let stored: Vec<DailyStatsRow> = daily_stats::table
                    .filter(daily_stats::customer_id.eq_any(chunk))
                    .filter(daily_stats::day.between(first, last))
                    .select(DailyStatsRow::as_select())
                    .load(conn)?;
                for row in stored {
                    let key = (row.customer_id.clone(), row.day);
                    if let Some(delta) = merged.get_mut(&key) {
                        delta.merge(&row.into_stats()?);
                    }
                }
            }
        }
        // Writers are serialized (SQLite's immediate transaction, PostgreSQL's table lock),
        // so one number above every stored version orders the commits for readers. The rows
        // carry it too, so a reader can fetch just the rows changed since a version.
        let version = if merged.is_empty() {
            0
        } else {
            customer_versions::table
                .select(diesel::dsl::max(customer_versions::version))
                .first::<Option<i64>>(conn)?
                .unwrap_or(0)
                + 1
        };
        let rows: Vec<DailyStatsRow> = merged
            .into_iter()
            .map(|((customer, day), stats)| DailyStatsRow::new(customer, day, &stats, version))
            .collect::<Result<_, _>>()?;
        conn.upsert_rows(&rows)?;
        let mut touched: Vec<&str> = rows.iter().map(|r| r.customer_id.as_str()).collect();
        touched.sort_unstable();
        touched.dedup();
        if !touched.is_empty() {
            conn.upsert_versions(&touched, version)?;
        }
        for source in &epoch.sources {
            if let Some((owner, _)) = &epoch.lease {
                let holder: Option<Option<String>> = source_offsets::table
                    .filter(source_offsets::source.eq(&source.source))
                    .select(source_offsets::owner)
                    .first(conn)
                    .optional()?;
                if let Some(holder) = holder.filter(|h| h.as_ref() != Some(owner)) {
                    return Err(StorageError::LeaseLost {
                        source_name: source.source.clone(),
                        owner: holder,
                    });
                }
            }
            let row = SourceOffsetRow::from(source);
            let owner = epoch.lease.as_ref().map(|(owner, _)| owner.as_str());
            let lease_until = epoch.lease.as_ref().map(|&(_, until)| until);
            diesel::insert_into(source_offsets::table)
                .values((
                    &row,
                    source_offsets::owner.eq(owner),
                    source_offsets::lease_until.eq(lease_until),
                ))
                .on_conflict(source_offsets::source)
                .do_update()
                .set((
                    source_offsets::fingerprint.eq(excluded(source_offsets::fingerprint)),
                    source_offsets::byte_offset.eq(excluded(source_offsets::byte_offset)),
                    source_offsets::line_count.eq(excluded(source_offsets::line_count)),
                    source_offsets::owner.eq(excluded(source_offsets::owner)),
                    source_offsets::lease_until.eq(excluded(source_offsets::lease_until)),
                ))
                .execute(conn)?;
        }
        let stored_watermark: Option<i64> = ingest_watermark::table
            .select(ingest_watermark::event_time)
            .first(conn)
            .optional()?;
        if let Some(event_time) = epoch.max_event_time.filter(|&t| stored_watermark < Some(t)) {
            diesel::insert_into(ingest_watermark::table)
                .values((
                    ingest_watermark::id.eq(1),
                    ingest_watermark::event_time.eq(event_time),
                ))
                .on_conflict(ingest_watermark::id)
                .do_update()
                .set(ingest_watermark::event_time.eq(excluded(ingest_watermark::event_time)))
                .execute(conn)?;
        }
        Ok::<CommitOutcome, StorageError>(CommitOutcome::Written(rows.len()))
    }};
}

/// Runs `$body` in a transaction that excludes every other writer: SQLite's immediate
/// transaction, or on PostgreSQL a lock on the written tables that plain readers never wait for.
macro_rules! write_transaction {
    ($store:expr, $conn:ident => $body:expr) => {
        match $store {
            Store::Sqlite(pool) => pool.get()?.immediate_transaction(|$conn| $body),
            Store::Postgres(pool) => pool.get()?.transaction(|$conn| {
                $conn.batch_execute(
                    "LOCK TABLE daily_stats, source_offsets IN SHARE ROW EXCLUSIVE MODE",
                )?;
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

/// A pooled connection of either backend, kept across reads.
enum HeldConnection {
    Sqlite(PooledConnection<ConnectionManager<SqliteConnection>>),
    Postgres(PooledConnection<ConnectionManager<PgConnection>>),
}

/// Repeated [`Store::versions_since`] reads on one kept connection: no pool check-out (and no
/// liveness probe) per read. The connection is dropped after a failed read and taken afresh on
/// the next; with a pool of one connection none is kept, so other readers never starve.
pub struct VersionReader {
    store: Store,
    held: Option<HeldConnection>,
}

impl VersionReader {
    /// See [`Store::versions_since`].
    pub fn since(&mut self, after: i64) -> Result<Vec<(String, i64)>, StorageError> {
        let keep = match &self.store {
            Store::Sqlite(pool) => pool.max_size() > 1,
            Store::Postgres(pool) => pool.max_size() > 1,
        };
        let mut held = match self.held.take() {
            Some(held) => held,
            None => match &self.store {
                Store::Sqlite(pool) => HeldConnection::Sqlite(pool.get()?),
                Store::Postgres(pool) => HeldConnection::Postgres(pool.get()?),
            },
        };
        let read = match &mut held {
            HeldConnection::Sqlite(conn) => versions_since(&mut **conn, after),
            HeldConnection::Postgres(conn) => versions_since(&mut **conn, after),
        };
        if read.is_ok() && keep {
            self.held = Some(held);
        }
        Ok(read?)
    }
}

fn versions_since<C>(conn: &mut C, after: i64) -> QueryResult<Vec<(String, i64)>>
where
    C: Connection,
    C::Backend: diesel::backend::Backend,
    for<'a> diesel::dsl::Filter<
        diesel::dsl::Select<
            customer_versions::table,
            (customer_versions::customer_id, customer_versions::version),
        >,
        diesel::dsl::Gt<customer_versions::version, i64>,
    >: diesel::query_dsl::LoadQuery<'a, C, (String, i64)>,
{
    customer_versions::table
        .select((customer_versions::customer_id, customer_versions::version))
        .filter(customer_versions::version.gt(after))
        .load::<(String, i64)>(conn)
}

impl Store {
    /// Opens a pool for `url` (`sqlite://PATH` or `postgres://...`) and applies migrations.
    pub fn connect(url: &str, options: &StoreOptions) -> Result<Store, StorageError> {
        let store = match Self::backend_of(url)? {
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
                let pool = Pool::builder()
                    .max_size(options.pool_size)
                    // Opened at start-up together, connections to a new file contend for its
                    // switch to WAL and back off in SQLite's busy handler (~0.4 s): one is
                    // opened up front, the others when needed.
                    .min_idle(Some(1))
                    .connection_timeout(options.connect_timeout)
                    // Failures reach the caller, which reports them once per interval.
                    .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
                    .connection_customizer(Box::new(SqlitePragmas))
                    .build(ConnectionManager::<SqliteConnection>::new(path))
                    .map_err(|cause| StorageError::Connect {
                        url: redact(url),
                        cause: scrub(&cause.to_string(), url).into_owned(),
                    })?;
                Store::Sqlite(pool)
            }
            Backend::Postgres => {
                let pool = Pool::builder()
                    .max_size(options.pool_size)
                    .connection_timeout(options.connect_timeout)
                    // Failures reach the caller, which reports them once per interval.
                    .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
                    .build(ConnectionManager::<PgConnection>::new(url))
                    .map_err(|cause| StorageError::Connect {
                        url: redact(url),
                        cause: scrub(&cause.to_string(), url).into_owned(),
                    })?;
                Store::Postgres(pool)
            }
        };
        store.migrate()?;
        Ok(store)
    }

    /// The backend a URL selects.
    pub fn backend_of(url: &str) -> Result<Backend, StorageError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StorageError::UnsupportedUrl(redact(url)))
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrate(&self) -> Result<(), StorageError> {
        match self {
            Store::Sqlite(pool) => migrate!(pool.get()?, SQLITE_MIGRATIONS),
            Store::Postgres(pool) => {
                let mut conn = pool.get()?;
                // Serialise concurrent starts (ingest and API together) on one database.
                conn.batch_execute("SELECT pg_advisory_lock(7410202411)")?;
                let result = migrate!(conn, POSTGRES_MIGRATIONS);
                conn.batch_execute("SELECT pg_advisory_unlock(7410202411)")?;
                result
            }
        }
    }

    /// How many of this build's migrations the database lacks (0: the schema is current).
    /// Answers only when the database does: the readiness check.
    pub fn pending_migrations(&self) -> Result<usize, StorageError> {
        let pending = match self {
            Store::Sqlite(pool) => pool
                .get()?
                .pending_migrations(SQLITE_MIGRATIONS)
                .map(|p| p.len()),
            Store::Postgres(pool) => pool
                .get()?
                .pending_migrations(POSTGRES_MIGRATIONS)
                .map(|p| p.len()),
        };
        pending.map_err(|e| StorageError::Migration(e.to_string()))
    }

    /// Merges an epoch's deltas into the stored rows and records its source offsets and
    /// watermark, all in one transaction. Returns the number of rows written.
    ///
    /// Concurrent committers are serialised (SQLite: an immediate transaction; PostgreSQL: a
    /// table lock that readers do not wait for), so no merge is ever lost.
    ///
    /// A retried commit whose first attempt did commit (the reply was lost with the
    /// connection) is recognised by its sources' positions (see [`EpochCommit::previous`]) and
    /// not applied twice.
    pub fn commit_epoch(&self, epoch: &EpochCommit) -> Result<CommitOutcome, StorageError> {
        write_transaction!(self, conn => merge_and_upsert!(conn, epoch))
    }

    /// Takes the lease of `source` for `owner` until `until` (Unix seconds) when it is free,
    /// expired, already ours, or `may_take_over` says its holder is gone. A source never seen
    /// gets a row at offset 0 with `fingerprint`.
    pub fn acquire_lease(
        &self,
        source: &str,
        fingerprint: &[u8],
        owner: &str,
        now: i64,
        until: i64,
        may_take_over: &dyn Fn(&str) -> bool,
    ) -> Result<LeaseOutcome, StorageError> {
        write_transaction!(self, conn => {
            let stored: Option<(SourceOffsetRow, Option<String>, Option<i64>)> = source_offsets::table
                .filter(source_offsets::source.eq(source))
                .select((
                    SourceOffsetRow::as_select(),
                    source_offsets::owner,
                    source_offsets::lease_until,
                ))
                .first(conn)
                .optional()?;
            match stored {
                None => {
                    diesel::insert_into(source_offsets::table)
                        .values((
                            source_offsets::source.eq(source),
                            source_offsets::fingerprint.eq(fingerprint),
                            source_offsets::byte_offset.eq(0i64),
                            source_offsets::line_count.eq(0i64),
                            source_offsets::owner.eq(owner),
                            source_offsets::lease_until.eq(until),
                        ))
                        .execute(conn)?;
                    Ok(LeaseOutcome::Acquired(None))
                }
                Some((_, Some(holder), Some(holder_until)))
                    if holder != owner && holder_until > now && !may_take_over(&holder) =>
                {
                    Ok(LeaseOutcome::Held(LeaseHolder {
                        owner: holder,
                        until: holder_until,
                    }))
                }
                Some((row, _, _)) => {
                    diesel::update(source_offsets::table.filter(source_offsets::source.eq(source)))
                        .set((
                            source_offsets::owner.eq(owner),
                            source_offsets::lease_until.eq(until),
                        ))
                        .execute(conn)?;
                    Ok(LeaseOutcome::Acquired(Some(SourceOffset::from(row))))
                }
            }
        })
    }

    /// Extends every lease `owner` holds until `until` (Unix seconds).
    pub fn renew_leases(&self, owner: &str, until: i64) -> Result<usize, StorageError> {
        with_backend!(self, conn => {
            Ok(diesel::update(source_offsets::table.filter(source_offsets::owner.eq(owner)))
                .set(source_offsets::lease_until.eq(until))
                .execute(conn)?)
        })
    }

    /// Gives up every lease `owner` holds.
    pub fn release_leases(&self, owner: &str) -> Result<usize, StorageError> {
        with_backend!(self, conn => {
            Ok(diesel::update(source_offsets::table.filter(source_offsets::owner.eq(owner)))
                .set((
                    source_offsets::owner.eq(None::<String>),
                    source_offsets::lease_until.eq(None::<i64>),
                ))
                .execute(conn)?)
        })
    }

    /// The committed position of a source, if it was ever read.
    pub fn source_offset(&self, source: &str) -> Result<Option<SourceOffset>, StorageError> {
        with_backend!(self, conn => {
            let row: Option<SourceOffsetRow> = source_offsets::table
                .filter(source_offsets::source.eq(source))
                .select(SourceOffsetRow::as_select())
                .first(conn)
                .optional()?;
            Ok(row.map(SourceOffset::from))
        })
    }

    /// The committed positions of the sources whose names match the SQL `LIKE` `pattern`.
    pub fn source_offsets_like(&self, pattern: &str) -> Result<Vec<SourceOffset>, StorageError> {
        with_backend!(self, conn => {
            let rows: Vec<SourceOffsetRow> = source_offsets::table
                .filter(source_offsets::source.like(pattern))
                .select(SourceOffsetRow::as_select())
                .load(conn)?;
            Ok(rows.into_iter().map(SourceOffset::from).collect())
        })
    }

    /// The newest event time committed (Unix seconds), if any.
    pub fn watermark(&self) -> Result<Option<i64>, StorageError> {
        with_backend!(self, conn => {
            Ok(ingest_watermark::table
                .select(ingest_watermark::event_time)
                .first::<i64>(conn)
                .optional()?)
        })
    }

    /// The stored days of `customer_id` from `from` to `to` (inclusive, open-ended when `None`),
    /// ascending.
    pub fn customer_days(
        &self,
        customer_id: &str,
        from: NaiveDate,
        to: Option<NaiveDate>,
    ) -> Result<Vec<(NaiveDate, DayStats)>, StorageError> {
        let to = to.unwrap_or(LAST_DAY);
        with_backend!(self, conn => {
            let rows: Vec<DailyStatsRow> = daily_stats::table
                .filter(daily_stats::customer_id.eq(customer_id))
                .filter(daily_stats::day.between(from, to))
                .order(daily_stats::day.asc())
                .select(DailyStatsRow::as_select())
                .load(conn)?;
            rows.into_iter()
                .map(|row| Ok((row.day, row.into_stats()?)))
                .collect()
        })
    }

    /// The stored days of `customer_id` written by commits after version `after`, ascending,
    /// with the version that wrote each: read with `after` = the newest version held, it brings
    /// a copy of the customer's rows up to date. `None` when there are more than `limit`.
    pub fn customer_days_since(
        &self,
        customer_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Option<Vec<VersionedDay>>, StorageError> {
        let limit = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        with_backend!(self, conn => {
            let rows: Vec<DailyStatsRow> = daily_stats::table
                .filter(daily_stats::customer_id.eq(customer_id))
                .filter(daily_stats::version.gt(after))
                .order(daily_stats::day.asc())
                .limit(limit)
                .select(DailyStatsRow::as_select())
                .load(conn)?;
            if rows.len() as i64 == limit {
                return Ok(None);
            }
            rows.into_iter()
                .map(|row| {
                    let (day, version) = (row.day, row.version);
                    Ok(VersionedDay { day, version, stats: row.into_stats()? })
                })
                .collect::<Result<Vec<_>, StorageError>>()
                .map(Some)
        })
    }

    /// A number that changes whenever any stored day of `customer_id` changes (0 before the
    /// first). Equal versions read around a read of the rows mean the rows did not change.
    /// Versions are global: every commit gives the customers it touches one new number, above
    /// every version stored before (see [`Store::versions_since`]).
    pub fn customer_version(&self, customer_id: &str) -> Result<i64, StorageError> {
        with_backend!(self, conn => {
            Ok(customer_versions::table
                .filter(customer_versions::customer_id.eq(customer_id))
                .select(customer_versions::version)
                .first::<i64>(conn)
                .optional()?
                .unwrap_or(0))
        })
    }

    /// The customers whose rows changed in commits after version `after`, with their versions:
    /// read with `after` = the largest version seen so far, it keeps a copy of every version
    /// current. One index range; empty when nothing was committed since.
    pub fn versions_since(&self, after: i64) -> Result<Vec<(String, i64)>, StorageError> {
        with_backend!(self, conn => Ok(versions_since(conn, after)?))
    }

    /// A reader of [`Store::versions_since`] that keeps its connection between reads.
    pub fn version_reader(&self) -> VersionReader {
        VersionReader {
            store: self.clone(),
            held: None,
        }
    }

    /// The pool's connections: (open, idle among them), for monitoring.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = match self {
            Store::Sqlite(pool) => pool.state(),
            Store::Postgres(pool) => pool.state(),
        };
        (state.connections, state.idle_connections)
    }

    /// Whether any day is stored for `customer_id`.
    pub fn customer_exists(&self, customer_id: &str) -> Result<bool, StorageError> {
        with_backend!(self, conn => {
            Ok(diesel::select(diesel::dsl::exists(
                daily_stats::table.filter(daily_stats::customer_id.eq(customer_id)),
            ))
            .get_result::<bool>(conn)?)
        })
    }

    /// The last day on or after `from` with a stored row of any customer.
    pub fn last_day_from(&self, from: NaiveDate) -> Result<Option<NaiveDate>, StorageError> {
        with_backend!(self, conn => {
            Ok(daily_stats::table
                .filter(daily_stats::day.ge(from))
                .select(diesel::dsl::max(daily_stats::day))
                .first::<Option<NaiveDate>>(conn)?)
        })
    }

    /// Every customer's stored days from `from` to `to` (inclusive), ordered by day then
    /// customer, at most `limit` of them, after the row `after` (a page of a walk over the
    /// range: pass the last row of the previous page).
    pub fn days_by_day(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        after: Option<(NaiveDate, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, NaiveDate, DayStats)>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        with_backend!(self, conn => {
            let mut query = daily_stats::table
                .filter(daily_stats::day.between(from, to))
                .order((daily_stats::day.asc(), daily_stats::customer_id.asc()))
                .select(DailyStatsRow::as_select())
                .limit(limit)
                .into_boxed();
            if let Some((day, customer)) = after {
                // A row-value comparison: both backends start the scan of the (day,
                // customer_id) index right after the previous page.
                query = query.filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("(day, customer_id) > (")
                        .bind::<diesel::sql_types::Date, _>(day)
                        .sql(", ")
                        .bind::<diesel::sql_types::Text, _>(customer)
                        .sql(")"),
                );
            }
            let rows: Vec<DailyStatsRow> = query.load(conn)?;
            keyed_stats(rows)
        })
    }

    /// The stored days of `customers` from `from` to `to` (inclusive), ordered by customer then
    /// day, at most `limit` of them, after the row `after` (a page of a walk: pass the last row
    /// of the previous page).
    pub fn days_by_customer(
        &self,
        customers: &[&str],
        from: NaiveDate,
        to: NaiveDate,
        after: Option<(&str, NaiveDate)>,
        limit: usize,
    ) -> Result<Vec<(String, NaiveDate, DayStats)>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        with_backend!(self, conn => {
            let mut query = daily_stats::table
                .filter(daily_stats::customer_id.eq_any(customers))
                .filter(daily_stats::day.between(from, to))
                .order((daily_stats::customer_id.asc(), daily_stats::day.asc()))
                .select(DailyStatsRow::as_select())
                .limit(limit)
                .into_boxed();
            if let Some((customer, day)) = after {
                // A row-value comparison: the primary key's scan starts right after the
                // previous page.
                query = query.filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("(customer_id, day) > (")
                        .bind::<diesel::sql_types::Text, _>(customer)
                        .sql(", ")
                        .bind::<diesel::sql_types::Date, _>(day)
                        .sql(")"),
                );
            }
            let rows: Vec<DailyStatsRow> = query.load(conn)?;
            keyed_stats(rows)
        })
    }

    /// Every stored row, ordered by customer and day (for tests and tools).
    pub fn all_days(&self) -> Result<Vec<(String, NaiveDate, DayStats)>, StorageError> {
        with_backend!(self, conn => {
            let rows: Vec<DailyStatsRow> = daily_stats::table
                .order((daily_stats::customer_id.asc(), daily_stats::day.asc()))
                .select(DailyStatsRow::as_select())
                .load(conn)?;
            keyed_stats(rows)
        })
    }
}

/// Stored rows as (customer, day, stats), in their order.
fn keyed_stats(
    rows: Vec<DailyStatsRow>,
) -> Result<Vec<(String, NaiveDate, DayStats)>, StorageError> {
    rows.into_iter()
        .map(|row| {
            let (customer, day) = (row.customer_id.clone(), row.day);
            Ok((customer, day, row.into_stats()?))
        })
        .collect()
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

    /// Walking a range in keyset pages of any size gives every row once, in order, for both
    /// orders, however the page boundaries fall (inside a day, inside a customer).
    #[cfg(feature = "testing")]
    #[test]
    fn keyset_pages_walk_every_row_once_in_order() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let mut acc = crate::DayAccumulator::new();
            acc.add(true, 1_000);
            let stats = acc.finish();
            let mut deltas = Vec::new();
            for c in ["a", "b", "b.1", "c_2", "z"] {
                for day in [20_005, 20_006, 20_008, 20_009, 20_020] {
                    if !(c.len() + day as usize).is_multiple_of(4) {
                        deltas.push((c.to_string(), day, stats.clone()));
                    }
                }
            }
            let epoch = EpochCommit {
                deltas: deltas.clone(),
                ..EpochCommit::default()
            };
            store.commit_epoch(&epoch).expect("commit");
            let (from, to) = (date_from_day(20_006), date_from_day(20_009));
            let mut by_day: Vec<(i32, String)> = deltas
                .iter()
                .filter(|d| (20_006..=20_009).contains(&d.1))
                .map(|d| (d.1, d.0.clone()))
                .collect();
            by_day.sort();
            let mut by_customer: Vec<(String, i32)> =
                by_day.iter().map(|(day, c)| (c.clone(), *day)).collect();
            by_customer.sort();
            for limit in [1, 2, 3, 7, 100] {
                let mut walked = Vec::new();
                let mut after: Option<(NaiveDate, String)> = None;
                loop {
                    let page = store
                        .days_by_day(
                            from,
                            to,
                            after.as_ref().map(|(d, c)| (*d, c.as_str())),
                            limit,
                        )
                        .expect("page");
                    let last = page.len() < limit;
                    for (c, day, _) in page {
                        walked.push((day_from_date(day), c.clone()));
                        after = Some((day, c));
                    }
                    if last {
                        break;
                    }
                }
                assert_eq!(walked, by_day, "{db:?} by day, pages of {limit}");
                let customers = ["a", "b", "b.1", "c_2", "z"];
                let mut walked = Vec::new();
                let mut after: Option<(String, NaiveDate)> = None;
                loop {
                    let page = store
                        .days_by_customer(
                            &customers,
                            from,
                            to,
                            after.as_ref().map(|(c, d)| (c.as_str(), *d)),
                            limit,
                        )
                        .expect("page");
                    let last = page.len() < limit;
                    for (c, day, _) in page {
                        walked.push((c.clone(), day_from_date(day)));
                        after = Some((c, day));
                    }
                    if last {
                        break;
                    }
                }
                assert_eq!(walked, by_customer, "{db:?} by customer, pages of {limit}");
            }
            assert_eq!(
                store.last_day_from(from).expect("last"),
                Some(date_from_day(20_020))
            );
            assert_eq!(
                store.last_day_from(date_from_day(20_021)).expect("last"),
                None
            );
        }
    }

    /// A commit retried after its first attempt committed (the COMMIT reply lost with the
    /// connection) is recognised and not merged twice; the same positions reached from
    /// elsewhere (a file rewritten identically after a truncation) are still committed.
    #[cfg(feature = "testing")]
    #[test]
    fn a_retried_commit_that_had_committed_is_not_applied_twice() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let mut acc = crate::DayAccumulator::new();
            acc.add(true, 1_000);
            acc.add(false, 3_000);
            let stats = acc.finish();
            let at = |byte_offset, line_count| SourceOffset {
                source: "inode:1:2".to_string(),
                fingerprint: b"2024-10-10".to_vec(),
                byte_offset,
                line_count,
            };
            let epoch = |from: SourceOffset, to: SourceOffset| EpochCommit {
                deltas: vec![("cust_1".to_string(), 20_006, stats.clone())],
                sources: vec![to],
                previous: vec![from],
                ..EpochCommit::default()
            };
            let first = epoch(at(0, 0), at(100, 2));
            assert_eq!(
                store.commit_epoch(&first).expect("commit"),
                CommitOutcome::Written(1)
            );
            assert_eq!(
                store.commit_epoch(&first).expect("retry"),
                CommitOutcome::AlreadyCommitted,
                "{db:?}"
            );
            let requests = |store: &Store| {
                let days = store.all_days().expect("read");
                assert_eq!(days.len(), 1, "{db:?}");
                days[0].2.total()
            };
            assert_eq!(requests(&store), 2, "{db:?}");
            // The next epoch of the same source goes in.
            let second = epoch(at(100, 2), at(200, 4));
            assert_eq!(
                store.commit_epoch(&second).expect("commit"),
                CommitOutcome::Written(1)
            );
            assert_eq!(requests(&store), 4, "{db:?}");
            // Truncated and rewritten with the same bytes: read from 0 up to the very position
            // stored before; the job expected that position, so this is new data.
            let rewritten = epoch(at(200, 4), at(200, 4));
            assert_eq!(
                store.commit_epoch(&rewritten).expect("commit"),
                CommitOutcome::Written(1)
            );
            assert_eq!(requests(&store), 6, "{db:?}");
            // Without expectations (older callers), every commit is applied.
            let unchecked = EpochCommit {
                previous: Vec::new(),
                ..epoch(at(200, 4), at(300, 6))
            };
            store.commit_epoch(&unchecked).expect("commit");
            store.commit_epoch(&unchecked).expect("commit");
            assert_eq!(requests(&store), 10, "{db:?}");
        }
    }

    #[cfg(feature = "testing")]
    #[test]
    fn open_ended_ranges_reach_the_last_stored_day() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let mut acc = crate::DayAccumulator::new();
            acc.add(true, 1_000);
            let stats = acc.finish();
            let days = [20_006, 20_016, 2_932_896]; // 2024-10-10, 2024-10-20, 9999-12-31
            let epoch = EpochCommit {
                deltas: days
                    .iter()
                    .map(|&day| ("cust_1".to_string(), day, stats.clone()))
                    .collect(),
                ..EpochCommit::default()
            };
            store.commit_epoch(&epoch).expect("commit");
            let read: Vec<i32> = store
                .customer_days("cust_1", date_from_day(20_010), None)
                .expect("read")
                .into_iter()
                .map(|(date, _)| day_from_date(date))
                .collect();
            assert_eq!(read, [20_016, 2_932_896], "{db:?}");
        }
    }

    #[cfg(feature = "testing")]
    #[test]
    fn commits_bump_the_version_of_the_customers_they_touch() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let mut acc = crate::DayAccumulator::new();
            acc.add(true, 1_000);
            let stats = acc.finish();
            let commit = |customers: &[&str]| {
                let epoch = EpochCommit {
                    deltas: customers
                        .iter()
                        .map(|c| (c.to_string(), 20_006, stats.clone()))
                        .collect(),
                    ..EpochCommit::default()
                };
                store.commit_epoch(&epoch).expect("commit");
            };
            let versions = || ["a", "b"].map(|c| store.customer_version(c).expect("version"));
            let since = |after| {
                let mut changed = store.versions_since(after).expect("versions");
                changed.sort();
                changed
            };
            let changed = |pairs: &[(&str, i64)]| {
                pairs
                    .iter()
                    .map(|&(c, v)| (c.to_string(), v))
                    .collect::<Vec<_>>()
            };
            assert_eq!(versions(), [0, 0], "{db:?}");
            assert_eq!(since(0), changed(&[]));
            commit(&["a", "b"]);
            assert_eq!(versions(), [1, 1]);
            commit(&["a"]);
            assert_eq!(versions(), [2, 1]);
            assert_eq!(since(1), changed(&[("a", 2)]));
            commit(&["b", "b"]);
            assert_eq!(versions(), [2, 3]);
            assert_eq!(since(0), changed(&[("a", 2), ("b", 3)]));
            assert_eq!(since(2), changed(&[("b", 3)]));
            assert_eq!(since(3), changed(&[]));
            commit(&[]);
            assert_eq!(versions(), [2, 3], "an empty commit changes no version");
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
        assert!(matches!(
            Store::backend_of("mysql://h/db"),
            Err(StorageError::UnsupportedUrl(_))
        ));
        assert_eq!(sqlite_path("sqlite://data/x.db"), "data/x.db");
        assert_eq!(sqlite_path("sqlite:///tmp/x.db"), "/tmp/x.db");
    }
}
