//! The logstats domain: records, parsing, daily stats, the digest codec and storage.

pub mod digest;
pub mod record;
pub mod stats;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;

pub use digest::LatencyDigest;
pub use record::{parse_line, Record, RejectReason};
pub use stats::{DayAccumulator, DayStats, StatsSummary};
pub use storage::{
    Backend, EpochCommit, LeaseHolder, LeaseOutcome, SourceOffset, StorageError, Store,
    StoreOptions,
};
