//! The timely/differential graph, top to bottom (docs/ARCHITECTURE.md tells why):
//!
//! ```text
//! plans (worker 0) ─▶ Broadcast ─▶ ReadShare (every worker its share, pre-aggregated)
//!   ─▶ deltas: consolidate (exchange by customer, merge per (customer, day) and epoch)
//!   ─▶ latency summary built by the worker owning the key
//!   ─▶ Commit (worker 0: hands each epoch whose data all arrived to the committer thread,
//!      which merges and upserts it with its offsets in one transaction) ─▶ probe
//! ```
//!
//! The plans reach the Commit operator through the dataflow too. Its output carries no data:
//! its frontier passes an epoch once the epoch was handed over, and the probe on it is what
//! paces worker 0's planning (see `pacing.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use differential_dataflow::difference::{IsZero, Semigroup};
use differential_dataflow::AsCollection;
use logstats_shared::{DayAccumulator, DayStats};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Broadcast, Input, Map};
use timely::dataflow::operators::{Capability, Concat, OkErr, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};
use timely::worker::Worker;

use crate::handover::Handover;
use crate::planner::EpochPlan;
use crate::share::{CustomerDay, FinishedDeltas, Share, ShareReader, ShareReport};
use crate::source::OpenFiles;
use crate::summary::ReadCounter;

/// The dataflow's time: the input epoch, not the event day (the day is part of the key).
pub type Epoch = u64;

/// A stats delta as the difference type of a differential collection keyed by `CustomerDay`:
/// `consolidate()` then exchanges deltas by key and merges them per epoch.
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
/// its share.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum CommitInput {
    /// The plan, from worker 0's input.
    Plan(EpochPlan),
    /// A (customer, day)'s merged delta of an epoch, summarised by the worker owning it.
    Delta(CustomerDay, Epoch, DayStats),
    Report(ShareReport),
}

/// An epoch the Commit operator is collecting, until the frontier passes it.
struct Collecting {
    /// Holds the operator's output at the epoch until it is handed over.
    _capability: Capability<Epoch>,
    plan: Option<EpochPlan>,
    deltas: FinishedDeltas,
    reports: Vec<ShareReport>,
}

/// A share's output: its deltas, then its report (boxed: it is far larger than a delta).
type ShareOutput = Result<(CustomerDay, Epoch, StatsDelta), Box<ShareReport>>;

/// Builds the ingest dataflow on `worker`; returns the input that plans are sent into and the
/// probe whose frontier passes an epoch once it was handed to the committer. `handover` is
/// `Some` on worker 0 only: the one that commits. `files` holds the open sources; `counter`
/// counts what the workers read, for the progress bar.
pub fn build(
    worker: &mut Worker,
    handover: Option<Handover>,
    files: OpenFiles,
    counter: Arc<ReadCounter>,
) -> (InputHandleVec<Epoch, EpochPlan>, ProbeHandle<Epoch>) {
    let index = worker.index();
    let peers = worker.peers();
    worker.dataflow::<Epoch, _, _>(|scope| {
        let (input, plans) = scope.new_input::<EpochPlan>();
        let planned = plans.clone().map(CommitInput::Plan);

        let activations = plans.scope();
        let (deltas, reports) = plans
            .broadcast()
            .unary::<CapacityContainerBuilder<Vec<ShareOutput>>, _, _, _>(
                Pipeline,
                "ReadShare",
                move |_capability, info| {
                    let activator = activations.activator_for(info.address);
                    let mut reader = ShareReader::new(files).counting_into(counter);
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

        let merged = deltas
            .as_collection()
            .consolidate()
            .inner
            .map(|(key, epoch, delta)| CommitInput::Delta(key, epoch, delta.0.finish()));

        let mut handover = handover;
        let (handed, _) = merged
            .concat(reports.map(|report| CommitInput::Report(*report)))
            .concat(planned)
            .unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                Exchange::new(|_: &CommitInput| 0),
                "Commit",
                |_capability, _info| {
                    let mut collecting: BTreeMap<Epoch, Collecting> = BTreeMap::new();
                    move |(input, frontier), _output| {
                        input.for_each_stamp(|capability, data| {
                            let Some(capability) = capability.retain_least(0) else {
                                return;
                            };
                            // A batch of the consolidated deltas may span several epochs, sent
                            // at the earliest: each item says its own epoch.
                            for item in data.flat_map(|d| d.drain(..)) {
                                let epoch = match &item {
                                    CommitInput::Plan(plan) => plan.epoch,
                                    CommitInput::Delta(_, epoch, _) => *epoch,
                                    CommitInput::Report(report) => report.epoch,
                                };
                                let entry = collecting.entry(epoch).or_insert_with(|| Collecting {
                                    _capability: capability.delayed(&epoch),
                                    plan: None,
                                    deltas: Vec::new(),
                                    reports: Vec::new(),
                                });
                                match item {
                                    CommitInput::Plan(plan) => entry.plan = Some(plan),
                                    CommitInput::Delta(key, _, delta) => {
                                        entry.deltas.push((key, delta))
                                    }
                                    CommitInput::Report(report) => entry.reports.push(report),
                                }
                            }
                        });
                        // Hand over, in order, every epoch the frontier has passed; dropping
                        // its capability lets the output frontier (the probe) pass it.
                        while let Some(entry) = collecting.first_entry() {
                            if frontier.frontier().less_equal(entry.key()) {
                                break;
                            }
                            let (epoch, epoch_data) = entry.remove_entry();
                            if let Some(handover) = &mut handover {
                                let Collecting {
                                    plan,
                                    deltas,
                                    reports,
                                    ..
                                } = epoch_data;
                                handover.hand(epoch, plan, deltas, reports);
                            }
                        }
                        if frontier.frontier().is_empty() {
                            if let Some(handover) = &mut handover {
                                handover.close();
                            }
                        }
                    }
                },
            )
            .probe();

        (input, handed)
    })
}
