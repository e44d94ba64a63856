//! The logstats domain: records, parsing, daily stats, the digest codec and storage.

pub mod digest;
pub mod latency;
pub mod logging;
pub mod metrics;
pub mod record;
pub mod redact;
pub mod stats;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
pub mod units;

pub use digest::LatencyDigest;
pub use latency::Latencies;

/// A seeded xorshift64 sequence: the unit tests' generated inputs.
#[cfg(test)]
pub(crate) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
pub use record::{parse_line, Record, RejectReason};
pub use stats::{DayAccumulator, DayStats, LatencyPercentiles, StatsSummary};
pub use storage::{
    is_valid_push_key, Backend, BatchCounts, CommitOutcome, EpochCommit, LeaseHolder, LeaseOutcome,
    Pruned, PushedBatch, SortedDelta, SortedDeltas, SourceOffset, StorageError, Store,
    StoreOptions, VersionedDay, MAX_PUSH_KEY_BYTES,
};
