//! Which file is this, and where do we resume: the files the job reads (sources), in five
//! parts, each owning one concern:
//!
//! - `fingerprint.rs`: a file's identity: its key in the offsets table (device and inode,
//!   [`source_key`](fingerprint::source_key)) and the fingerprint of its first bytes
//!   ([`FINGERPRINT_BYTES`]).
//! - `lease.rs`: the job's identity ([`JobId`], and whether a lease's holder on this host is
//!   gone, by `/proc`) and a source's lease ([`LEASE_SECONDS`], taken or waited for).
//! - `open.rs`: opening regular files only ([`open_regular`](open::open_regular)), and
//!   [`OpenFiles`], the handles the workers read through (opened by the plan's path in a
//!   cluster process other than 0).
//! - `lines.rs`: where a source's complete lines end (a partial last line waits for its
//!   newline).
//! - `resume.rs`: [`Source::open`]: a file leased, and the committed offset it resumes from.
//!
//! This module holds what they share, [`SourceId`] and [`SourceError`], and names their items
//! for the rest of the crate.

mod fingerprint;
mod lease;
mod lines;
mod open;
mod resume;

use std::io;
use std::path::Path;

use logstats_shared::StorageError;

pub use fingerprint::{file_id, source_key_of, FileId, FINGERPRINT_BYTES};
pub(crate) use fingerprint::{fingerprint, fingerprint_len, same_start};
pub(crate) use lease::acquire_lease;
pub use lease::{unix_now, JobId, LEASE_SECONDS};
pub(crate) use lines::complete_lines_end;
pub use open::{file_kind, OpenFiles, PlannedRead};
pub use resume::{Resume, Source};

/// Index of a source in the job's list; new files and rotated files get new ids.
pub type SourceId = usize;

/// Errors while finding or opening sources.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error (in the message, not repeated as a source).
        cause: io::Error,
    },
    /// The stored offsets could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A FIFO, device, socket or pseudo-file: opening or reading it could block forever or
    /// never end.
    #[error("cannot read {path}: not a regular file ({kind})")]
    NotRegular {
        /// The path.
        path: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// Stopped by a signal while waiting for a lease.
    #[error("stopped while waiting for the lease on {0}")]
    Interrupted(String),
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SourceError + '_ {
    move |cause| SourceError::Io {
        path: path.display().to_string(),
        cause,
    }
}
