//! The timely/differential graph, top to bottom (docs/ARCHITECTURE.md tells why):
//!
//! ```text
//! plans (worker 0) ─▶ Broadcast ─▶ ReadShare (every worker its share, pre-aggregated)
//!   ─▶ deltas: consolidate (exchange by customer, merge per (customer, day) and epoch)
//!   ─▶ latency summary built by the worker owning the key
//!   ─▶ Commit (worker 0: hands each epoch whose data all arrived to the committer thread,
//!      which merges and upserts it with its offsets in one transaction)
//! ```
//!
//! The plans reach the Commit operator through the dataflow too. The operator never waits for
//! the committer: an epoch the commit queue has no room for stays in the operator, holding its
//! capability, and the operator runs again after `pacing::QUEUE_RETRY` to offer it again. What
//! it handed over, the loop learns on its progress channel (see `pacing.rs`); the operator's
//! output carries nothing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use differential_dataflow::difference::{IsZero, Semigroup};
use differential_dataflow::Hashable;
use indexmap::map::Entry;
use indexmap::IndexMap;
use logstats_shared::{DayAccumulator, DayStats};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Broadcast, Input, Map};
use timely::dataflow::operators::{Capability, Concat, OkErr};
use timely::dataflow::{InputHandleVec, StreamVec};
use timely::scheduling::Activator;
use timely::worker::Worker;

use crate::handover::Handover;
use crate::pacing;
use crate::planner::EpochPlan;
use crate::share::{CustomerDay, FastHash, FinishedDeltas, Share, ShareReader, ShareReport};
use crate::source::OpenFiles;
use crate::stage::RunShelf;
use crate::summary::ReadCounter;

/// The dataflow's time: the input epoch, not the event day (the day is part of the key).
pub type Epoch = u64;

/// A stats delta as a differential difference type (`Semigroup`, `IsZero`) of updates keyed by
/// `CustomerDay`: [`consolidate`] exchanges them by key and merges them per epoch with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct StatsDelta(pub DayAccumulator);

impl IsZero for StatsDelta {
    fn is_zero(&self) -> bool {
        self.0.total() == 0
    }
}

impl Semigroup for StatsDelta {
    fn plus_equals(&mut self, rhs: &Self) {
        self.0.merge(&rhs.0);
    }
}

/// What reaches the commit operator: an epoch's plan, a merged delta or a worker's report on
/// its share. The plan and the report are boxed: every delta of the epoch moves through the
/// exchange and into the epoch's list at the size of the largest variant.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum CommitInput {
    /// The plan, from worker 0's input.
    Plan(Box<EpochPlan>),
    /// A (customer, day)'s merged delta of an epoch, summarised by the worker owning it.
    Delta(CustomerDay, Epoch, DayStats),
    /// The number of a run on the [`RunShelf`] holding the merged deltas of an epoch's keys
    /// one worker owns.
    Run(Epoch, u64),
    Report(Box<ShareReport>),
}

/// An epoch the Commit operator is collecting, until the frontier passes it.
struct Collecting {
    /// Holds the operator's output at the epoch until it is handed over.
    capability: Capability<Epoch>,
    plan: Option<EpochPlan>,
    deltas: FinishedDeltas,
    /// Numbers of the epoch's runs on the shelf.
    runs: Vec<u64>,
    reports: Vec<ShareReport>,
}

/// A share's output: its deltas, then its report (boxed: it is far larger than a delta).
type ShareOutput = Result<(CustomerDay, Epoch, StatsDelta), Box<ShareReport>>;

/// Builds the ingest dataflow on `worker`; returns the input that plans are sent into.
/// `handover` is `Some` on worker 0 only: the one that commits. `files` holds the open sources;
/// `counter` counts what the workers read, for the progress bar. With a `shelf`, each worker
/// stages the merged deltas of the keys it owns in a run of its own (a batch run in one
/// process); without, the deltas go to worker 0.
pub fn build(
    worker: &mut Worker,
    handover: Option<Handover>,
    files: OpenFiles,
    counter: Arc<ReadCounter>,
    shelf: Option<RunShelf>,
) -> InputHandleVec<Epoch, EpochPlan> {
    let index = worker.index();
    let peers = worker.peers();
    worker.dataflow::<Epoch, _, _>(|scope| {
        let (input, plans) = scope.new_input::<EpochPlan>();
        let planned = plans.clone().map(|plan| CommitInput::Plan(Box::new(plan)));

        let activations = plans.scope();
        let shelf_of_reader = shelf.clone();
        let (deltas, reports) = plans
            .broadcast()
            .unary::<CapacityContainerBuilder<Vec<ShareOutput>>, _, _, _>(
                Pipeline,
                "ReadShare",
                move |_capability, info| {
                    let activator = activations.activator_for(info.address);
                    let mut reader = ShareReader::new(files)
                        .counting_into(counter)
                        .staging_into(shelf_of_reader);
                    let mut queued: VecDeque<(Capability<Epoch>, EpochPlan)> = VecDeque::new();
                    let mut current: Option<(Capability<Epoch>, EpochPlan, Share)> = None;
                    move |input, output| {
                        input.for_each_stamp(|capability, data| {
                            if let Some(capability) = capability.retain_least(0) {
                                for plan in data.flat_map(|d| d.drain(..)) {
                                    queued.push_back((capability.clone(), plan));
                                }
                            }
                        });
                        // One window per activation: between windows the worker merges and
                        // hands on the epochs already read, so the committer and the planner
                        // never wait for a whole share.
                        if current.is_none() {
                            current = queued.pop_front().map(|(capability, plan)| {
                                let share = reader.begin(&plan, index, peers);
                                (capability, plan, share)
                            });
                        }
                        let done = current
                            .as_mut()
                            .is_some_and(|(_, plan, share)| reader.step(plan, share));
                        if let Some((capability, plan, share)) = current.take_if(|_| done) {
                            let (deltas, report) = reader.finish(share);
                            let mut session = output.session(&capability);
                            for (key, acc) in deltas {
                                session.give(Ok((key, plan.epoch, StatsDelta(acc))));
                            }
                            session.give(Err(Box::new(report)));
                        }
                        if current.is_some() || !queued.is_empty() {
                            activator.activate();
                        }
                    }
                },
            )
            .ok_err::<Vec<_>, _, Vec<_>, _, _>(|x| x);

        let merged = match shelf.clone() {
            Some(shelf) => stage_keys(deltas, shelf),
            None => consolidate(deltas),
        };

        let inputs = merged
            .concat(reports.map(CommitInput::Report))
            .concat(planned);
        commit(inputs, handover, shelf);
        input
    })
}

/// Consolidates the deltas of each epoch: exchanges them by the key's differential hash (as
/// `Collection::consolidate` does) and merges them per (customer, day) with the delta's
/// `Semigroup::plus_equals`; once the frontier passed an epoch, the worker owning each key
/// builds its summary and sends it on. The merged deltas are those `consolidate()` gives, but
/// held in a hash map per epoch: `consolidate()` arranged every delta into a trace (its batcher
/// sorting and merging ~130-byte updates, then each key and delta cloned back out), which took
/// a third of the workers' time on a year of 10,000 customers. The map is an `IndexMap`: as it
/// grows from empty each epoch its table moves 8-byte indices, not the ~130-byte cells (a
/// `HashMap`'s rehashing of them was 5 % of the ingest's CPU). An epoch's map, emptied, is kept
/// for a later epoch's: growing a new one each epoch was a tenth of the page faults.
fn consolidate<'scope>(
    deltas: StreamVec<'scope, Epoch, (CustomerDay, Epoch, StatsDelta)>,
) -> StreamVec<'scope, Epoch, CommitInput> {
    type Cells = IndexMap<CustomerDay, StatsDelta, FastHash>;
    let route = |(key, _, _): &(CustomerDay, Epoch, StatsDelta)| key.hashed();
    deltas.unary_frontier::<CapacityContainerBuilder<Vec<CommitInput>>, _, _, _>(
        Exchange::new(route),
        "Consolidate",
        |_capability, _info| {
            let mut epochs: BTreeMap<Epoch, (Capability<Epoch>, Cells)> = BTreeMap::new();
            // The cells of the epoch sent on last: a new epoch's map starts with room for as
            // many (epochs are sized to hold about as many), not growing from empty.
            let mut last_cells = 0usize;
            move |(input, frontier), output| {
                input.for_each_stamp(|capability, data| {
                    let Some(capability) = capability.retain_least(0) else {
                        return;
                    };
                    for (key, epoch, delta) in data.flat_map(|d| d.drain(..)) {
                        let (_, cells) = epochs.entry(epoch).or_insert_with(|| {
                            let cells =
                                Cells::with_capacity_and_hasher(last_cells, FastHash::default());
                            (capability.delayed(&epoch), cells)
                        });
                        match cells.entry(key) {
                            Entry::Occupied(mut cell) => cell.get_mut().plus_equals(&delta),
                            Entry::Vacant(cell) => {
                                cell.insert(delta);
                            }
                        }
                    }
                });
                while let Some(entry) = epochs.first_entry() {
                    if frontier.frontier().less_equal(entry.key()) {
                        break;
                    }
                    let (epoch, (capability, cells)) = entry.remove_entry();
                    last_cells = cells.len();
                    let mut session = output.session(&capability);
                    for (key, delta) in cells {
                        if !delta.is_zero() {
                            session.give(CommitInput::Delta(key, epoch, delta.0.finish()));
                        }
                    }
                }
            }
        },
    )
}

/// What [`consolidate`] does, for a batch run in one process, where each worker stages the keys
/// it owns (see [`RunShelf`]): the deltas are exchanged by the same hash, but each epoch's are
/// only listed as they arrive, and once the frontier passed the epoch they are sorted by key,
/// merged per (customer, day), summarised and written to a run in one pass. Worker 0 is sent
/// the run's number. (Merging them in a table first, then listing the merged cells for the
/// run, moved every cell twice more and hashed it; on a log in random order nearly every line
/// is its own cell of its epoch.)
fn stage_keys<'scope>(
    deltas: StreamVec<'scope, Epoch, (CustomerDay, Epoch, StatsDelta)>,
    shelf: RunShelf,
) -> StreamVec<'scope, Epoch, CommitInput> {
    type Listed = Vec<(CustomerDay, DayAccumulator)>;
    let route = |(key, _, _): &(CustomerDay, Epoch, StatsDelta)| key.hashed();
    deltas.unary_frontier::<CapacityContainerBuilder<Vec<CommitInput>>, _, _, _>(
        Exchange::new(route),
        "StageKeys",
        |_capability, _info| {
            let mut epochs: BTreeMap<Epoch, (Capability<Epoch>, Listed)> = BTreeMap::new();
            // The list of the epoch staged last, emptied, for the next epoch's (a new list an
            // epoch would be fresh memory to fault in each time).
            let mut spare: Listed = Vec::new();
            move |(input, frontier), output| {
                input.for_each_stamp(|capability, data| {
                    let Some(capability) = capability.retain_least(0) else {
                        return;
                    };
                    for (key, epoch, delta) in data.flat_map(|d| d.drain(..)) {
                        let (_, listed) = epochs.entry(epoch).or_insert_with(|| {
                            (capability.delayed(&epoch), std::mem::take(&mut spare))
                        });
                        listed.push((key, delta.0));
                    }
                });
                while let Some(entry) = epochs.first_entry() {
                    if frontier.frontier().less_equal(entry.key()) {
                        break;
                    }
                    let (epoch, (capability, mut listed)) = entry.remove_entry();
                    if !listed.is_empty() {
                        let number = shelf.write_accumulated(&mut listed);
                        output
                            .session(&capability)
                            .give(CommitInput::Run(epoch, number));
                    }
                    listed.clear();
                    if listed.capacity() > spare.capacity() {
                        spare = listed;
                    }
                }
            }
        },
    )
}

/// The Commit operator: collects each epoch's plan, deltas and reports on worker 0 and, once
/// the frontier passed the epoch, hands it over, in order. It holds an epoch's capability until
/// the commit queue took the epoch, so the dataflow is not done while an epoch waits in it.
fn commit(
    inputs: StreamVec<'_, Epoch, CommitInput>,
    handover: Option<Handover>,
    shelf: Option<RunShelf>,
) {
    let scope = inputs.scope();
    inputs.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Exchange::new(|_: &CommitInput| 0),
        "Commit",
        |_capability, info| {
            let mut retry = Retry::new(scope.activator_for(info.address));
            let mut collecting: BTreeMap<Epoch, Collecting> = BTreeMap::new();
            // The cells of the epoch handed over last: the next epoch's deltas are collected
            // in a list of that size, not one that doubles from empty (each doubling copied the
            // list: 0.46 s of worker 0, which does this besides its share, on the uniform year;
            // epochs are sized to hold about as many cells as the one before).
            let mut last_cells = 0usize;
            let mut handover = handover;
            // The capabilities of the epochs handed to the Handover, oldest first, until the
            // commit queue took them.
            let mut held: VecDeque<Capability<Epoch>> = VecDeque::new();
            move |(input, frontier), _output| {
                input.for_each_stamp(|capability, data| {
                    let Some(capability) = capability.retain_least(0) else {
                        return;
                    };
                    // A batch of the consolidated deltas may span several epochs, sent at the
                    // earliest: each item says its own epoch.
                    for item in data.flat_map(|d| d.drain(..)) {
                        let list = |cells| match &handover {
                            Some(handover) => handover.list(cells),
                            None => Vec::with_capacity(cells),
                        };
                        collect(&mut collecting, &capability, item, last_cells, list);
                    }
                });
                // Hand over, in order, every epoch the frontier has passed.
                while let Some(entry) = collecting.first_entry() {
                    if frontier.frontier().less_equal(entry.key()) {
                        break;
                    }
                    let (epoch, epoch_data) = entry.remove_entry();
                    last_cells = epoch_data.deltas.len();
                    if let Some(handover) = &mut handover {
                        let Collecting {
                            capability,
                            plan,
                            deltas,
                            runs,
                            reports,
                        } = epoch_data;
                        held.push_back(capability);
                        let runs = runs
                            .into_iter()
                            .map(|number| match &shelf {
                                Some(shelf) => shelf.take(number),
                                None => Err(std::io::Error::other("a run without a shelf")),
                            })
                            .collect();
                        handover.hand_staged(epoch, plan, deltas, runs, reports);
                    }
                }
                let Some(handover) = &mut handover else {
                    return;
                };
                handover.hand_waiting();
                if frontier.frontier().is_empty() {
                    handover.close();
                }
                // The epochs the queue took are done here.
                let waiting = handover.first_waiting();
                while held
                    .front()
                    .is_some_and(|c| waiting.is_none_or(|first| *c.time() < first))
                {
                    held.pop_front();
                }
                if waiting.is_some() {
                    retry.arm();
                }
            }
        },
    );
}

/// Adds `item` to its epoch, which holds a capability from `capability` until handed over; a
/// new epoch collects its deltas in `list(expected_cells)`, a list with room for that many.
fn collect(
    collecting: &mut BTreeMap<Epoch, Collecting>,
    capability: &Capability<Epoch>,
    item: CommitInput,
    expected_cells: usize,
    list: impl FnOnce(usize) -> FinishedDeltas,
) {
    let epoch = match &item {
        CommitInput::Plan(plan) => plan.epoch,
        CommitInput::Delta(_, epoch, _) | CommitInput::Run(epoch, _) => *epoch,
        CommitInput::Report(report) => report.epoch,
    };
    let entry = collecting.entry(epoch).or_insert_with(|| Collecting {
        capability: capability.delayed(&epoch),
        plan: None,
        deltas: list(expected_cells),
        runs: Vec::new(),
        reports: Vec::new(),
    });
    match item {
        CommitInput::Plan(plan) => entry.plan = Some(*plan),
        CommitInput::Delta((customer, day), _, delta) => entry.deltas.push((customer, day, delta)),
        CommitInput::Run(_, number) => entry.runs.push(number),
        CommitInput::Report(mut report) => {
            entry.runs.extend(report.run.take());
            entry.reports.push(*report)
        }
    }
}

/// Runs the Commit operator again [`pacing::QUEUE_RETRY`] after an epoch found the commit
/// queue full: timely runs an operator only when its input or frontier changed or it was
/// activated, and nothing else tells it the queue has room. One activation is pending at a
/// time, however often the operator runs meanwhile.
struct Retry {
    activator: Activator,
    /// When the pending activation is due.
    due: Option<Instant>,
}

impl Retry {
    fn new(activator: Activator) -> Self {
        Self {
            activator,
            due: None,
        }
    }

    /// Asks for a run after [`pacing::QUEUE_RETRY`], unless one is pending.
    fn arm(&mut self) {
        let now = Instant::now();
        if self.due.is_none_or(|due| due <= now) {
            self.activator.activate_after(pacing::QUEUE_RETRY);
            self.due = Some(now + pacing::QUEUE_RETRY);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, TryRecvError};
    use std::time::Duration;

    use super::*;
    use crate::handover::tests::{first_plan, handed, plan, report};
    use crate::handover::CommitJob;
    use crate::source::JobId;

    /// Steps `worker` until `done` or 10 s passed; whether `done`.
    fn step_until(worker: &mut Worker, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() && Instant::now() < deadline {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
        done()
    }

    /// The epoch of the next job in the commit queue.
    fn queued(jobs: &Receiver<CommitJob>) -> Option<Epoch> {
        match jobs.try_recv() {
            Ok(Ok(ready)) => Some(ready.plan.epoch),
            Ok(Err(e)) => panic!("expected a ready epoch, got {e}"),
            Err(_) => None,
        }
    }

    /// Three epochs into a Commit operator whose queue has room for one and that nobody reads
    /// until told: the worker keeps stepping, the epochs are handed in order as room appears,
    /// with no new input to wake the operator, and the queue closes after the last.
    fn commit_with_a_full_queue(worker: &mut Worker) {
        let (queue, jobs) = sync_channel(1);
        let (progress_to, progress) = channel();
        let handover = Handover::new(JobId::current(), 60, queue, progress_to);
        let mut input = worker.dataflow::<Epoch, _, _>(|scope| {
            let (input, inputs) = scope.new_input::<CommitInput>();
            commit(inputs, Some(handover), None);
            input
        });
        for epoch in 0..3 {
            let first = (epoch == 0).then(first_plan);
            input.send(CommitInput::Plan(Box::new(plan(
                epoch,
                epoch * 10,
                epoch * 10 + 10,
                first,
            ))));
            input.send(CommitInput::Report(Box::new(report(epoch, 0, 2, None))));
            input.advance_to(epoch + 1);
        }
        let mut heard = Vec::new();
        assert!(
            step_until(worker, || {
                heard.extend(handed(&progress));
                !heard.is_empty()
            }),
            "epoch 0 was handed"
        );
        // The queue is full: epochs 1 and 2 wait in the operator, and the worker steps on.
        for _ in 0..20 {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
        heard.extend(handed(&progress));
        assert_eq!(heard, [0]);
        // No more input: the dataflow ends only once every epoch was handed.
        drop(input);
        for _ in 0..20 {
            assert!(
                worker.step_or_park(Some(Duration::from_millis(1))),
                "the dataflow waits for the epochs in the operator"
            );
        }
        for expected in 0..3 {
            assert_eq!(queued(&jobs), Some(expected));
            if expected < 2 {
                let mut heard = Vec::new();
                assert!(
                    step_until(worker, || {
                        heard.extend(handed(&progress));
                        !heard.is_empty()
                    }),
                    "epoch {} was offered again once the queue had room",
                    expected + 1
                );
                assert_eq!(heard, [expected + 1]);
            }
        }
        while worker.step_or_park(Some(Duration::from_millis(1))) {}
        assert_eq!(jobs.try_recv().err(), Some(TryRecvError::Disconnected));
    }

    #[test]
    fn the_commit_operator_never_blocks_and_hands_epochs_in_order() {
        // On a thread of its own, so that an operator that blocked fails the test.
        let (done_to, done) = channel();
        let worker = std::thread::spawn(move || {
            timely::execute_directly(commit_with_a_full_queue);
            let _ = done_to.send(());
        });
        match done.recv_timeout(Duration::from_secs(60)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Err(panic) = worker.join() {
                    std::panic::resume_unwind(panic);
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!("the worker blocked"),
        }
    }
}
