//! Back-pressure, in one place: when worker 0 may plan the next epoch, and how many epochs may
//! wait for the database.
//!
//! Three rules bound the work in flight:
//! - at most [`PIPELINE_DEPTH`] epochs are planned ahead of the last one handed to the committer
//!   (and lateness is judged against the watermark that far back, so it never depends on
//!   timing); how far epochs were handed over is read from timely's progress tracking, a probe
//!   on the Commit operator's output ([`handed`]);
//! - at most [`COMMIT_QUEUE`] handed epochs wait for the database: the handing over blocks
//!   beyond that, which holds the workers while the database is away;
//! - following, appends smaller than an epoch are held back while an epoch is being committed,
//!   so that the next epoch takes them all: epochs grow with the commit latency instead of
//!   queueing up behind it.

use timely::dataflow::ProbeHandle;

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

/// How many epochs were handed to the committer, by timely's progress tracking: the Commit
/// operator holds its output at an epoch until it handed the epoch over, so every epoch before
/// the probe's frontier was handed over (all of them once the frontier is empty).
pub fn handed(probe: &ProbeHandle<u64>) -> u64 {
    probe.with_frontier(|frontier| frontier.iter().min().copied().unwrap_or(u64::MAX))
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
    fn the_probe_counts_an_epoch_handed_once_an_operator_stops_holding_it() {
        use timely::dataflow::channels::pact::Pipeline;
        use timely::dataflow::operators::generic::Operator;
        use timely::dataflow::operators::vec::Input;
        use timely::dataflow::operators::{Capability, Probe};

        timely::execute_directly(|worker| {
            // An operator that holds each epoch's capability until told to let it go, as the
            // Commit operator holds an epoch until it handed it over.
            let release = std::rc::Rc::new(std::cell::Cell::new(0u64));
            let released = std::rc::Rc::clone(&release);
            let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, stream) = scope.new_input::<u64>();
                let (probe, _) = stream
                    .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _>(
                        Pipeline,
                        "Hold",
                        |_, _| {
                            let mut held: Vec<Capability<u64>> = Vec::new();
                            move |(input, _frontier), _output| {
                                input.for_each_stamp(|capability, _data| {
                                    held.extend(capability.retain_least(0));
                                });
                                held.retain(|c| *c.time() >= released.get());
                            }
                        },
                    )
                    .probe();
                (input, probe)
            });
            assert_eq!(handed(&probe), 0);
            for epoch in 0..3u64 {
                input.send(epoch);
                input.advance_to(epoch + 1);
            }
            for _ in 0..10 {
                worker.step();
            }
            // The input is at 3, but the operator still holds epoch 0.
            assert_eq!(handed(&probe), 0);
            // Let epochs 0 and 1 go; a new epoch's data schedules the operator.
            release.set(2);
            input.send(3);
            input.advance_to(4);
            for _ in 0..10 {
                worker.step();
            }
            assert_eq!(handed(&probe), 2);
            release.set(u64::MAX);
            drop(input);
            while worker.step() {}
            assert_eq!(handed(&probe), u64::MAX);
        });
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
