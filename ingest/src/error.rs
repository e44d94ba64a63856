//! What can stop an ingest job: one typed error for the library, which `main.rs` prints. Every
//! message carries its cause in its text (no `source()` chain), so it is printed once.
//!
//! (Named as `api/src/error.rs` and `shared/src/storage/error.rs`: each is its own crate's or
//! layer's one error type.)

use std::io;

use logstats_shared::StorageError;

use crate::share::ReadError;
use crate::source::SourceError;

/// An error that stops the job (or, in a cluster, this process).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database could not be opened or read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An input could not be found, opened, read or leased.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An epoch cannot be committed, and retrying cannot help (a lost lease, a corrupt row or
    /// database file, a number too large to store exactly).
    #[error("epoch {epoch} of {path}: {cause}")]
    Commit {
        /// The epoch.
        epoch: u64,
        /// The file it read.
        path: String,
        /// Why.
        cause: StorageError,
    },
    /// A signal stopped the job while the database was away: the epoch will be read again.
    #[error(
        "stopped while the database was unavailable ({cause}); epoch {epoch} of {path} was not \
         committed and will be read again on the next run"
    )]
    StoppedDuringOutage {
        /// The epoch that was not committed.
        epoch: u64,
        /// The file it read.
        path: String,
        /// The last failure.
        cause: StorageError,
    },
    /// A file, socket, signal handler or thread of the job failed.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        cause: io::Error,
    },
    /// The processes of a cluster could not connect, or one of them was lost.
    #[error("{0}")]
    Cluster(String),
    /// Timely's workers could not start, or one failed.
    #[error("{0}")]
    Workers(String),
    /// A worker could not read its share of a file (it says so in its report, which may come
    /// from another process).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Reading a share again for its rejected lines failed.
    #[error("{0}, again for its rejected lines")]
    Reread(ReadError),
    /// More of the run's lines were rejected than `--max-rejected-ratio` allows: the epoch
    /// that went over was not committed.
    #[error(
        "{rejected} of the {lines} lines read in this run were rejected, more than \
         --max-rejected-ratio {max} allows; epoch {epoch} of {path} was not committed and is \
         read again by the next run (earlier epochs stay committed)"
    )]
    TooManyRejected {
        /// The epoch that was not committed.
        epoch: u64,
        /// The file it read.
        path: String,
        /// Rejected lines of the run, that epoch included.
        rejected: u64,
        /// Non-blank lines of the run, that epoch included.
        lines: u64,
        /// The ratio allowed.
        max: f64,
    },
    /// A broken invariant of the pipeline (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl IngestError {
    /// Timely's workers could not start (`timely::execute` failed).
    pub fn workers_not_started(error: impl std::fmt::Display) -> Self {
        IngestError::Workers(format!("starting timely workers: {error}"))
    }

    /// A timely worker thread failed (its `join` returned an error).
    pub fn worker_failed(error: impl std::fmt::Display) -> Self {
        IngestError::Workers(format!("timely worker failed: {error}"))
    }

    /// The exit status of a job this error stops: 3 when a newer version migrated the database
    /// (see [`StorageError::exit_status`]), else 1.
    pub fn exit_status(&self) -> u8 {
        match self {
            IngestError::Storage(error) => error.exit_status(),
            IngestError::TooManyRejected { .. } => EXIT_TOO_MANY_REJECTED,
            _ => 1,
        }
    }

    /// An [`IngestError::Io`] while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> IngestError {
        let what = what.into();
        move |cause| IngestError::Io { what, cause }
    }
}

/// Exit status of a run stopped by `--max-rejected-ratio` (3 is a database migrated by a newer
/// version).
pub const EXIT_TOO_MANY_REJECTED: u8 = 4;

/// The result of the ingest library's fallible steps.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;
