//! What can go wrong in the storage layer, with messages that never show a password.

use chrono::NaiveDate;

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
    /// No connection could be taken from the pool in time (the pool's message).
    #[error("database unavailable: {0}")]
    Pool(String),
    /// Applying the embedded migrations failed.
    #[error("applying migrations failed: {0}")]
    Migration(String),
    /// The database lacks migrations of this build, and the store was opened without applying
    /// them ([`StoreOptions::apply_migrations`](super::StoreOptions::apply_migrations) false).
    #[error(
        "the database schema is not current: {pending} migration(s) of this version are not \
         applied, and this process does not apply migrations"
    )]
    SchemaNotCurrent {
        /// How many of this build's migrations the database lacks.
        pending: usize,
    },
    /// The database holds migrations this build does not know: a newer version of logstats
    /// migrated it. Nothing is read or written (an older binary could misread or damage it).
    #[error(
        "the database was migrated by a newer version of logstats ({count} migration(s) unknown \
         to this version, the newest {newest}): run that version or a later one, or restore a \
         backup taken before the upgrade"
    )]
    SchemaNewer {
        /// How many applied migrations this build does not know.
        count: usize,
        /// The newest of them.
        newest: String,
    },
    /// `backup` is for SQLite files; the server backends have their dump tools (named here).
    #[error("backup --to is for sqlite:// databases: {0}")]
    BackupUnsupported(&'static str),
    /// Writing a backup failed; no file was left behind (unless it existed before).
    #[error("cannot back up to {path}: {cause}")]
    Backup {
        /// The backup file.
        path: String,
        /// Why.
        cause: String,
    },
    /// A pushed batch's idempotency key was stored by another commit while the batch was in
    /// an epoch of several batches (two jobs taking pushes on one database, given the same
    /// key): nothing of the epoch was written.
    #[error(
        "the Idempotency-Key {key:?} was committed by another job taking pushes on this database \
         while its batch waited here; run one --listen job per database"
    )]
    PushKeyTaken {
        /// The key.
        key: String,
    },
    /// A query failed (the database's message).
    #[error("database query failed: {0}")]
    Query(String),
    /// The server cancelled a statement that ran past the statement timeout
    /// ([`StoreOptions::statement_timeout`](super::StoreOptions::statement_timeout)).
    #[error("the database cancelled a statement that ran past the statement timeout: {0}")]
    StatementTimeout(String),
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
    /// The epochs staged on disk for one commit could not be read back (see
    /// [`Store::commit_bulk`](super::Store::commit_bulk)).
    #[error("reading the staged epochs: {0}")]
    Staged(String),
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

impl StorageError {
    /// The exit status both binaries end with on [`StorageError::SchemaNewer`]: a restart cannot
    /// help (a service manager can be told not to retry it), only another binary can.
    pub const SCHEMA_NEWER_EXIT_STATUS: u8 = 3;

    /// The exit status a binary that stops on this error ends with: 3 for
    /// [`StorageError::SchemaNewer`], else 1.
    pub fn exit_status(&self) -> u8 {
        match self {
            StorageError::SchemaNewer { .. } => Self::SCHEMA_NEWER_EXIT_STATUS,
            _ => 1,
        }
    }
}

impl StorageError {
    /// Whether the database may answer if asked again: it could not be reached, a connection
    /// broke or timed out, a query failed or ran past the statement timeout. The ingest retries
    /// these with backoff and stops on any other; the API answers them 503 (the others 500).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::Connect { .. }
                | StorageError::Pool(_)
                | StorageError::Query(_)
                | StorageError::StatementTimeout(_)
        )
    }
}

// The causes are part of the messages above, so they are not also reported as `source()`:
// a printed chain would say them twice.
impl From<r2d2::Error> for StorageError {
    fn from(e: r2d2::Error) -> Self {
        match corruption(&e.to_string()) {
            Some(message) => StorageError::Corrupt(message.to_string()),
            None => StorageError::Pool(e.to_string()),
        }
    }
}

impl From<diesel::result::Error> for StorageError {
    fn from(e: diesel::result::Error) -> Self {
        let message = e.to_string();
        if let Some(message) = corruption(&message) {
            return StorageError::Corrupt(message.to_string());
        }
        match statement_timeout(&message) {
            Some(message) => StorageError::StatementTimeout(message.to_string()),
            None => StorageError::Query(message),
        }
    }
}

/// The server's message for a statement cancelled at the statement timeout, if `message` holds
/// one: PostgreSQL (SQLSTATE 57014 from `statement_timeout`), MariaDB (`max_statement_time`,
/// error 1969) and MySQL (`max_execution_time`, error 3024). diesel passes their text.
fn statement_timeout(message: &str) -> Option<&'static str> {
    [
        "canceling statement due to statement timeout",
        "max_statement_time exceeded",
        "maximum statement execution time exceeded",
    ]
    .into_iter()
    .find(|m| message.contains(m))
}

/// SQLite's message for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB) if `message` holds one:
/// diesel passes SQLite's text, not its result code.
pub(super) fn corruption(message: &str) -> Option<&'static str> {
    ["database disk image is malformed", "file is not a database"]
        .into_iter()
        .find(|m| message.contains(m))
}

#[cfg(test)]
mod transient_tests {
    use super::*;

    /// What the database may answer if asked again is transient; a lease taken, a corrupt row
    /// or file, a sum past 2^63 or a key taken by another job is not.
    #[test]
    fn outages_and_failed_queries_are_transient_and_damage_is_not() {
        for transient in [
            StorageError::Pool("timed out waiting for connection".into()),
            StorageError::Query("server closed the connection unexpectedly".into()),
            StorageError::StatementTimeout("canceling statement due to statement timeout".into()),
            StorageError::Connect {
                url: "postgres://db".into(),
                cause: "refused".into(),
            },
        ] {
            assert!(transient.is_transient(), "{transient}");
        }
        for permanent in [
            StorageError::Corrupt("database disk image is malformed".into()),
            StorageError::PushKeyTaken { key: "k".into() },
            StorageError::Migration("no".into()),
            StorageError::UnsupportedUrl("ftp://x".into()),
        ] {
            assert!(!permanent.is_transient(), "{permanent}");
        }
    }
}
