//! Back-pressure, in one place: when worker 0 may plan the next epoch, and how many epochs may
//! wait for the database.
//!
//! Three rules bound the work in flight:
//! - at most [`PIPELINE_DEPTH`] epochs are planned ahead of the last one handed to the committer
//!   (and lateness is judged against the watermark that far back, so it never depends on
//!   timing);
//! - at most [`COMMIT_QUEUE`] handed epochs wait for the database: the handing over blocks
//!   beyond that, which holds the workers while the database is away;
//! - following, appends smaller than an epoch are held back while an epoch is being committed,
//!   so that the next epoch takes them all: epochs grow with the commit latency instead of
//!   queueing up behind it.

/// How many epochs may be planned ahead of the last one handed to the committer. Epoch `e` is
/// judged late against the watermark after epoch `e - PIPELINE_DEPTH`, whatever the timing, so
/// the set of late lines never depends on scheduling.
pub const PIPELINE_DEPTH: u64 = 2;

/// Epochs handed over but not yet committed; beyond this, handing over waits. With
/// [`PIPELINE_DEPTH`] this bounds the memory held while the database is away.
pub const COMMIT_QUEUE: usize = 2;

/// Whether epoch `epoch` may be planned once `handed` epochs were handed to the committer.
pub fn may_plan(epoch: u64, handed: u64) -> bool {
    epoch < PIPELINE_DEPTH || handed > epoch - PIPELINE_DEPTH
}

/// Whether, following, planning waits for the commit in progress: epochs before `next_epoch`
/// are not all committed (`committed` of them are) and fewer than `epoch_bytes` wait to be read.
pub fn hold_for_commit(
    follow: bool,
    committed: u64,
    next_epoch: u64,
    pending_bytes: u64,
    epoch_bytes: u64,
) -> bool {
    follow && committed < next_epoch && pending_bytes < epoch_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planning_runs_at_most_pipeline_depth_epochs_ahead_of_the_committer() {
        assert!(may_plan(0, 0));
        assert!(may_plan(PIPELINE_DEPTH - 1, 0));
        assert!(!may_plan(PIPELINE_DEPTH, 0));
        assert!(may_plan(PIPELINE_DEPTH, 1));
        assert!(!may_plan(PIPELINE_DEPTH + 5, 5));
        assert!(may_plan(PIPELINE_DEPTH + 5, 6));
    }

    #[test]
    fn following_holds_small_appends_while_a_commit_is_in_progress() {
        // Committing (1 of 2 epochs committed), a small append: held.
        assert!(hold_for_commit(true, 1, 2, 100, 1_000));
        // A full epoch's worth waiting: planned at once.
        assert!(!hold_for_commit(true, 1, 2, 1_000, 1_000));
        // Nothing being committed: planned at once.
        assert!(!hold_for_commit(true, 2, 2, 100, 1_000));
        // Not following: never held.
        assert!(!hold_for_commit(false, 1, 2, 100, 1_000));
    }
}
