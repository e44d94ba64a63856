//! Storage of daily stats, source offsets and the watermark, on SQLite, PostgreSQL or (cargo
//! feature `mysql`) MySQL/MariaDB.
//!
//! [`Store`] is the only type the other crates see; which backend the URL selected stays inside
//! this module. Its parts, by concern:
//!
//! - `connection`: the pools, [`Store::connect`], and the one `match` on the backend that hands
//!   a connection to a read or a write transaction as `&mut dyn StoreConnection`;
//! - `migrations`: applying and counting this build's migrations;
//! - `daily_stats`, `offsets`, `versions`: the queries of each table, written once with diesel's
//!   DSL for every backend, and the [`Store`] methods that read them;
//! - `upserts`: the writes whose fastest form differs per backend, their SQL in `sql/`;
//! - `fleet_days`: one row per day of every customer's rows merged, which each commit keeps
//!   and `GET /stats` reads, and their one-time build for rows committed before it existed;
//! - `commit`: the commit of an epoch, one plain function over those queries;
//! - `backup`: an online copy of a SQLite database;
//! - `prune`: retention, the days before a first kept day removed with what derives from them.

mod backup;
mod commit;
mod connection;
mod daily_stats;
mod error;
mod fleet_days;
mod migrations;
mod models;
mod offsets;
mod prune;
mod push_batches;
mod schema;
mod upserts;
mod versions;

use std::time::Duration;

use chrono::NaiveDate;

pub use crate::redact::redact;
use crate::stats::DayStats;
pub use commit::{SortedDelta, SortedDeltas};
use connection::Pools;
pub use error::StorageError;
pub use models::{date_from_day, day_from_date, SourceOffset};
pub use prune::Pruned;
pub use push_batches::{is_valid_push_key, BatchCounts, PushedBatch, MAX_PUSH_KEY_BYTES};
pub use versions::VersionReader;

/// The last day a stored row can have. SQLite keeps dates as `YYYY-MM-DD` text, so an open-ended
/// range must end on a four-digit year: `NaiveDate::MAX` renders as `+262142-12-31`, which sorts
/// before every real date.
const LAST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(day) => day,
    None => NaiveDate::MAX,
};

/// Rows (or customers) per multi-row statement; keeps SQLite under its bind-parameter limit.
const ROWS_PER_STATEMENT: usize = 1000;

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
    /// SQLite: read the file through mmap (fewer copies, but each pooled connection maps the
    /// file anew and its pages count in the process's resident memory once per connection).
    /// Other backends ignore it.
    pub mapped_reads: bool,
    /// SQLite: each connection's page cache, in bytes (`None`: SQLite's default, 2 MB). A
    /// writer whose transactions touch more pages than its cache holds spills them to the log
    /// mid-transaction and reads them back. Other backends ignore it.
    pub sqlite_cache_bytes: Option<u64>,
    /// PostgreSQL and MySQL/MariaDB: the server cancels a statement that runs longer
    /// ([`StorageError::StatementTimeout`]). SQLite has no such limit (its statements are
    /// bounded by the rows they are asked for). `None`: no limit.
    pub statement_timeout: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
            apply_migrations: true,
            mapped_reads: true,
            sqlite_cache_bytes: None,
            statement_timeout: None,
        }
    }
}

/// A pooled connection to the stats database. Which backend it is stays inside this module
/// ([`Store::backend`] names it, for messages and tests).
#[derive(Clone)]
pub struct Store {
    pools: Pools,
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
    /// Merged in, except the deltas of days a prune removed after the epoch was read (see
    /// [`Store::prune_before`]): `rows` rows written, `pruned` requests left out.
    WrittenExceptPruned {
        /// (customer, day) rows written.
        rows: usize,
        /// Requests of pruned days, not stored.
        pruned: u64,
    },
    /// A pushed batch whose idempotency key was already stored: nothing merged, the sources
    /// moved on; what the batch counted when it was first committed.
    Replayed(BatchCounts),
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
