//! The end of the dataflow on worker 0: once timely's frontier says every worker's deltas and
//! report of an epoch arrived, the Commit operator hands the epoch over. [`Handover`] turns
//! the epoch's plan, merged deltas and reports into a commit (line numbers, the offsets row it
//! replaces, the lease) and queues it for the committer thread.
//!
//! Handing over never waits: when [`COMMIT_QUEUE`](crate::pacing::COMMIT_QUEUE) epochs already
//! wait for the database, the epoch waits here, behind any other, and the Commit operator
//! offers them again ([`Handover::hand_waiting`]) until the queue takes them, oldest first. Only
//! then is the epoch handed: the loop hears it on its progress channel
//! ([`Progress::Handed`](crate::pacing::Progress::Handed)), with the epoch's newest event time,
//! from which it keeps the watermark, and the operator lets the epoch's capability go.
//!
//! The Commit operator owns the `Handover`; the loop owns the planner and the watermark. They
//! share nothing: plans reach the operator through the dataflow, and what the loop learns comes
//! back through the progress channel, which the committer thread writes to as well.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{SyncSender, TrySendError};

use logstats_shared::{EpochCommit, RejectReason, SourceOffset};

use crate::error::{IngestError, Result};
use crate::pacing::{Handed, Progress, ProgressSender};
use crate::planner::EpochPlan;
use crate::share::{FinishedDeltas, ShareReport, SpareLists};
use crate::source::{unix_now, JobId, SourceId, LEASE_SECONDS};
use crate::stage::StagedRun;

/// One epoch ready to commit, or the error that kept it from being ready (which stops the
/// job as a failed commit would).
pub type CommitJob = Result<ReadyEpoch>;

/// One epoch ready to commit.
pub struct ReadyEpoch {
    /// The rows, offsets, watermark and lease to write.
    pub commit: EpochCommit,
    /// The epoch's plan.
    pub plan: EpochPlan,
    /// Lines of the source committed before this epoch, for the rejects' line numbers.
    pub lines_before: u64,
    /// Every worker's report, in worker order.
    pub reports: Vec<ShareReport>,
    /// The epoch's deltas as the workers staged them, when they did (`commit.deltas` then
    /// holds none).
    pub runs: Vec<StagedRun>,
}

/// Where epochs are handed to the committer thread: it holds
/// [`COMMIT_QUEUE`](crate::pacing::COMMIT_QUEUE) epochs waiting for the database; dropping it
/// lets the thread finish.
pub type CommitQueue = SyncSender<CommitJob>;

/// An epoch prepared but not yet taken by the commit queue, and what the loop will hear of it.
struct Waiting {
    job: CommitJob,
    handed: Handed,
}

/// Worker 0's Commit operator state: what each source's next commit continues from.
pub struct Handover {
    job: JobId,
    /// Committed lines per source, for line numbers: from the source's first plan on.
    line_counts: HashMap<SourceId, u64>,
    /// The offsets row each source will hold once the epochs handed over so far are committed:
    /// what the next epoch's commit expects to replace (see [`EpochCommit::previous`]).
    stored_offsets: HashMap<SourceId, SourceOffset>,
    /// For the late-lines warning.
    allowed_lateness_secs: i64,
    /// `None` once closed and every epoch was handed.
    queue: Option<CommitQueue>,
    /// Epochs the queue had no room for yet, oldest first.
    waiting: VecDeque<Waiting>,
    /// No more epochs will come: the queue is dropped once none waits.
    closing: bool,
    progress: ProgressSender,
    /// Each source's first lines, until they are known not to be mostly rejected.
    first_lines: HashMap<SourceId, FirstLines>,
    /// Lines and rejected lines of the epochs handed over in this run.
    run_lines: u64,
    run_rejected: u64,
    /// `--max-rejected-ratio`: the epoch that takes the run's share of rejected lines above
    /// it is not committed, and the job stops.
    max_rejected_ratio: Option<f64>,
    /// `--backfill`: the commits leave the stored watermark where it is.
    keep_watermark: bool,
    /// Where the committer gives back the lists of epochs it staged.
    spares: SpareLists,
}

/// Lines of a source's first epochs that are looked at for the wrong-format warning.
pub const FIRST_LINES: u64 = 100;

/// Distinct reasons the wrong-format warning names.
const FIRST_REASONS: usize = 3;

/// What a source's first epochs held, for the wrong-format warning.
#[derive(Debug, Default)]
struct FirstLines {
    lines: u64,
    rejected: u64,
    /// The first distinct reasons, each with the line number it was first given for.
    reasons: Vec<(RejectReason, u64)>,
    /// Warned, or enough lines seen without cause.
    done: bool,
}

impl Handover {
    /// Hands epochs of job `job` into `queue` and reports each on `progress` once the queue
    /// took it.
    pub fn new(
        job: JobId,
        allowed_lateness_secs: i64,
        queue: CommitQueue,
        progress: ProgressSender,
    ) -> Self {
        Self {
            job,
            line_counts: HashMap::new(),
            stored_offsets: HashMap::new(),
            allowed_lateness_secs,
            queue: Some(queue),
            waiting: VecDeque::new(),
            closing: false,
            progress,
            first_lines: HashMap::new(),
            run_lines: 0,
            run_rejected: 0,
            max_rejected_ratio: None,
            keep_watermark: false,
            spares: SpareLists::default(),
        }
    }

    /// Takes the lists of an epoch's deltas from `spares`, where the committer gives them back.
    pub fn with_spare_lists(self, spares: SpareLists) -> Self {
        Self { spares, ..self }
    }

    /// A list for an epoch's deltas with room for `cells`: one the committer gave back if any.
    pub fn list(&self, cells: usize) -> FinishedDeltas {
        self.spares.take(cells)
    }

    /// `--backfill`: commits do not move the stored watermark (a live job's keeps counting).
    pub fn keeping_the_watermark(self, keep: bool) -> Self {
        Self {
            keep_watermark: keep,
            ..self
        }
    }

    /// Stops the job before committing the epoch that takes the share of rejected lines
    /// among the lines of this run above `ratio` (0 to 1).
    pub fn with_max_rejected_ratio(self, ratio: Option<f64>) -> Self {
        Self {
            max_rejected_ratio: ratio,
            ..self
        }
    }

    /// Hands `epoch` over: every worker's `deltas` and `reports` for it arrived, and so did
    /// its `plan` (`None` would be a bug). Never waits: when the commit queue is full, the
    /// epoch waits here behind the others ([`Handover::first_waiting`]) for
    /// [`Handover::hand_waiting`].
    #[cfg(test)]
    pub fn hand(
        &mut self,
        epoch: u64,
        plan: Option<EpochPlan>,
        deltas: FinishedDeltas,
        reports: Vec<ShareReport>,
    ) {
        self.hand_staged(epoch, plan, deltas, Vec::new(), reports);
    }

    /// [`Handover::hand`] of an epoch whose workers staged its deltas in `runs`, or failed to.
    pub fn hand_staged(
        &mut self,
        epoch: u64,
        plan: Option<EpochPlan>,
        deltas: FinishedDeltas,
        runs: Vec<std::io::Result<StagedRun>>,
        reports: Vec<ShareReport>,
    ) {
        let max_event_time = reports.iter().filter_map(|r| r.max_event_time).max();
        let staged: std::io::Result<Vec<StagedRun>> = runs.into_iter().collect();
        let cells = deltas.len()
            + staged
                .as_ref()
                .map_or(0, |runs| runs.iter().map(|run| run.budget_cells).sum());
        let bytes = plan.as_ref().map_or(0, |plan| plan.end - plan.start);
        let job = plan
            .ok_or_else(|| IngestError::Internal(format!("epoch {epoch} was never planned")))
            .and_then(|plan| {
                let runs = staged.map_err(IngestError::io(format!(
                    "staging the deltas of epoch {epoch} in {}",
                    std::env::temp_dir().display()
                )))?;
                self.prepare(plan, deltas, reports, max_event_time)
                    .map(|ready| ReadyEpoch { runs, ..ready })
            });
        let handed = Handed {
            epoch,
            max_event_time,
            bytes,
            cells,
        };
        self.waiting.push_back(Waiting { job, handed });
        self.hand_waiting();
    }

    /// Moves the waiting epochs into the commit queue, oldest first, as far as it has room, and
    /// tells the loop of each; never waits. Drops the queue once closed and none waits.
    pub fn hand_waiting(&mut self) {
        while let Some(Waiting { job, handed }) = self.waiting.pop_front() {
            let ready = job.is_ok();
            let sent = match &self.queue {
                Some(queue) => queue.try_send(job),
                None => Err(TrySendError::Disconnected(job)),
            };
            match sent {
                Ok(()) if ready => log::debug!(
                    "epoch {}: {} merged deltas handed to the committer",
                    handed.epoch,
                    handed.cells
                ),
                Ok(()) => {}
                Err(TrySendError::Full(job)) => {
                    self.waiting.push_front(Waiting { job, handed });
                    break;
                }
                // The committer thread is gone, which only a panic does (`Committer::finish`
                // reports it): nothing will be committed, so the job stops.
                Err(TrySendError::Disconnected(_)) => {
                    let _ = self.progress.send(Progress::Failed);
                }
            }
            // The loop drops its end last: it cannot be gone while the dataflow runs.
            let _ = self.progress.send(Progress::Handed(handed));
        }
        if self.closing && self.waiting.is_empty() {
            self.queue = None;
        }
    }

    /// The oldest epoch still waiting for room in the commit queue, if any.
    pub fn first_waiting(&self) -> Option<u64> {
        self.waiting.front().map(|waiting| waiting.handed.epoch)
    }

    /// No more epochs: lets the committer thread finish once it committed the queued ones,
    /// after the waiting ones entered the queue.
    pub fn close(&mut self) {
        self.closing = true;
        self.hand_waiting();
    }

    fn prepare(
        &mut self,
        plan: EpochPlan,
        deltas: FinishedDeltas,
        mut reports: Vec<ShareReport>,
        max_event_time: Option<i64>,
    ) -> Result<ReadyEpoch> {
        if let Some(error) = reports.iter().find_map(|r| r.error.clone()) {
            return Err(error.into());
        }
        reports.sort_by_key(|r| r.worker);
        if let Some(first) = &plan.first {
            self.line_counts.insert(plan.source, first.line_count);
            self.stored_offsets
                .insert(plan.source, first.stored.clone());
        }
        let lines_before = *self.line_counts.get(&plan.source).ok_or_else(|| {
            IngestError::Internal(format!("source {} was never registered", plan.path))
        })?;
        let lines_in_epoch: u64 = reports.iter().map(|r| r.lines_total).sum();
        self.check_first_lines(&plan, lines_before, &reports);
        self.check_rejected_ratio(&plan, &reports)?;
        let sources: Vec<SourceOffset> = plan
            .fingerprint
            .iter()
            .map(|fingerprint| SourceOffset {
                source: plan.key.clone(),
                fingerprint: fingerprint.clone(),
                byte_offset: plan.end,
                line_count: lines_before + lines_in_epoch,
            })
            .collect();
        let previous = match sources.first() {
            Some(next) => self
                .stored_offsets
                .insert(plan.source, next.clone())
                .into_iter()
                .collect(),
            None => Vec::new(),
        };
        let commit = EpochCommit {
            deltas,
            sources,
            previous,
            max_event_time: max_event_time.filter(|_| !self.keep_watermark),
            lease: Some((self.job.as_str().to_string(), unix_now() + LEASE_SECONDS)),
        };
        self.line_counts
            .insert(plan.source, lines_before + lines_in_epoch);
        let late: u64 = reports.iter().map(|r| r.late).sum();
        if late > 0 {
            log::warn!(
                "{}: {late} late lines in epoch {} (older than {} s before the watermark)",
                plan.path,
                plan.epoch,
                self.allowed_lateness_secs
            );
        }
        Ok(ReadyEpoch {
            commit,
            plan,
            lines_before,
            reports,
            runs: Vec::new(),
        })
    }
}

impl Handover {
    /// Warns, once per source, when most of its first lines are rejected: the input is
    /// likely in another format than the one expected.
    fn check_first_lines(&mut self, plan: &EpochPlan, lines_before: u64, reports: &[ShareReport]) {
        let first = self.first_lines.entry(plan.source).or_default();
        if first.done {
            return;
        }
        let mut first_line_of_share = lines_before;
        for report in reports {
            first.lines += report.lines;
            first.rejected += report.rejected;
            for reject in &report.rejects {
                let new = !first.reasons.iter().any(|(r, _)| *r == reject.reason);
                if new && reject.reason != RejectReason::Late && first.reasons.len() < FIRST_REASONS
                {
                    let line = first_line_of_share + reject.line_in_share + 1;
                    first.reasons.push((reject.reason, line));
                }
            }
            first_line_of_share += report.lines_total;
        }
        if first.rejected * 2 > first.lines {
            first.done = true;
            let reasons: Vec<String> = first
                .reasons
                .iter()
                .map(|(reason, line)| format!("line {line}: {reason}"))
                .collect();
            log::warn!(
                "{}: {} of its first {} lines were rejected ({}); is it in the format --format \
                 expects? (the rejects file, --rejects, has every line and its reason)",
                plan.path,
                first.rejected,
                first.lines,
                reasons.join("; ")
            );
        } else if first.lines >= FIRST_LINES {
            first.done = true;
        }
    }

    /// The error that stops the job when this epoch takes the run's share of rejected lines
    /// above `--max-rejected-ratio`.
    fn check_rejected_ratio(&mut self, plan: &EpochPlan, reports: &[ShareReport]) -> Result<()> {
        self.run_lines += reports.iter().map(|r| r.lines).sum::<u64>();
        self.run_rejected += reports.iter().map(|r| r.rejected).sum::<u64>();
        match self.max_rejected_ratio {
            Some(max) if self.run_rejected as f64 > max * self.run_lines as f64 => {
                Err(IngestError::TooManyRejected {
                    epoch: plan.epoch,
                    path: plan.path.clone(),
                    rejected: self.run_rejected,
                    lines: self.run_lines,
                    max,
                })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::mpsc::{channel, sync_channel, Receiver, TryRecvError};

    use super::CommitJob;
    use super::*;
    use crate::planner::SourceStart;
    use crate::share::ReadError;

    /// Epoch `epoch`'s plan of bytes `start..end` of one source; its first carries `first`.
    pub(crate) fn plan(epoch: u64, start: u64, end: u64, first: Option<SourceStart>) -> EpochPlan {
        EpochPlan {
            epoch,
            source: 3,
            path: "api.log".into(),
            key: "inode:1:2".into(),
            start,
            end,
            late_before: None,
            watermark_ceiling: i64::MAX,
            fingerprint: Some(vec![1, 2, 3]),
            first,
            batches: Vec::new(),
        }
    }

    /// `worker`'s report of `lines_total` lines of `epoch`, all accepted, the newest at `max`.
    pub(crate) fn report(
        epoch: u64,
        worker: usize,
        lines_total: u64,
        max: Option<i64>,
    ) -> ShareReport {
        ShareReport {
            epoch,
            worker,
            lines_total,
            lines: lines_total,
            accepted: lines_total,
            max_event_time: max,
            ..ShareReport::default()
        }
    }

    /// Where an epoch of [`plan`] continues from: nothing of its source committed yet.
    pub(crate) fn first_plan() -> SourceStart {
        SourceStart {
            line_count: 0,
            stored: SourceOffset {
                source: "inode:1:2".into(),
                fingerprint: Vec::new(),
                byte_offset: 0,
                line_count: 0,
            },
        }
    }

    /// A handover into a queue of `room` epochs, and what the loop hears of it.
    fn handover_with_room(room: usize) -> (Handover, Receiver<CommitJob>, Receiver<Progress>) {
        let (queue, jobs) = sync_channel(room);
        let (progress_to, progress) = channel();
        let handover = Handover::new(JobId::current(), 60, queue, progress_to);
        (handover, jobs, progress)
    }

    fn handover() -> (Handover, Receiver<CommitJob>, Receiver<Progress>) {
        handover_with_room(8)
    }

    /// The epochs `progress` said were handed over since the last look, in the order it said
    /// them.
    pub(crate) fn handed(progress: &Receiver<Progress>) -> Vec<u64> {
        progress
            .try_iter()
            .filter_map(|p| match p {
                Progress::Handed(handed) => Some(handed.epoch),
                _ => None,
            })
            .collect()
    }

    fn ready(jobs: &Receiver<CommitJob>) -> ReadyEpoch {
        match jobs.try_recv().expect("a job was queued") {
            Ok(ready) => ready,
            Err(e) => panic!("expected a ready epoch, got {e}"),
        }
    }

    #[test]
    fn each_commit_continues_from_the_one_before() {
        let (mut handover, jobs, progress) = handover();
        let stored = SourceOffset {
            source: "inode:1:2".into(),
            fingerprint: vec![1, 2, 3],
            byte_offset: 100,
            line_count: 10,
        };
        let first = SourceStart {
            line_count: 10,
            stored: stored.clone(),
        };
        // Reports arrive in any worker order; the line numbers follow the workers' order.
        let reports = vec![report(0, 1, 5, Some(2_000)), report(0, 0, 4, Some(1_000))];
        handover.hand(0, Some(plan(0, 100, 400, Some(first))), Vec::new(), reports);
        let epoch0 = ready(&jobs);
        assert_eq!(epoch0.lines_before, 10);
        assert_eq!(epoch0.reports[0].worker, 0);
        assert_eq!(epoch0.commit.previous, vec![stored]);
        assert_eq!(epoch0.commit.sources[0].byte_offset, 400);
        assert_eq!(epoch0.commit.sources[0].line_count, 19);
        assert_eq!(epoch0.commit.max_event_time, Some(2_000));

        handover.hand(
            1,
            Some(plan(1, 400, 500, None)),
            Vec::new(),
            vec![report(1, 0, 2, None)],
        );
        let epoch1 = ready(&jobs);
        assert_eq!(epoch1.lines_before, 19);
        assert_eq!(epoch1.commit.previous, epoch0.commit.sources);
        assert_eq!(epoch1.commit.sources[0].line_count, 21);

        let seen: Vec<Progress> = progress.try_iter().collect();
        assert_eq!(
            seen,
            [
                Progress::Handed(Handed {
                    epoch: 0,
                    max_event_time: Some(2_000),
                    bytes: 300,
                    cells: 0,
                }),
                Progress::Handed(Handed {
                    epoch: 1,
                    max_event_time: None,
                    bytes: 100,
                    cells: 0,
                })
            ]
        );
    }

    #[test]
    fn an_epoch_that_cannot_be_committed_queues_its_error() {
        let (mut handover, jobs, progress) = handover();
        // A worker could not read its share: the job stops with what it said.
        let mut broken = report(0, 1, 0, None);
        broken.error = Some(ReadError {
            path: "api.log".into(),
            worker: 1,
            start: 0,
            end: 10,
            message: "failed to fill whole buffer".into(),
        });
        handover.hand(
            0,
            Some(plan(0, 0, 10, Some(first_plan()))),
            Vec::new(),
            vec![broken],
        );
        let error = jobs.try_recv().expect("queued").err().expect("an error");
        assert_eq!(
            error.to_string(),
            "reading api.log (worker 1, bytes 0..10): failed to fill whole buffer"
        );
        // An epoch without a plan, or a source never announced, is a bug, said as one.
        handover.hand(1, None, Vec::new(), Vec::new());
        let error = jobs.try_recv().expect("queued").err().expect("an error");
        assert_eq!(
            error.to_string(),
            "internal error: epoch 1 was never planned"
        );
        handover.hand(2, Some(plan(2, 0, 10, None)), Vec::new(), Vec::new());
        let error = jobs.try_recv().expect("queued").err().expect("an error");
        assert!(error.to_string().contains("never registered"), "{error}");
        // The loop hears of every epoch all the same, so its pacing goes on until it stops.
        assert_eq!(handed(&progress), [0, 1, 2]);
        // Closed: the committer thread's queue ends.
        handover.close();
        assert!(jobs.recv().is_err());
    }

    /// Hands epoch `epoch` of bytes `epoch * 10..epoch * 10 + 10`, one worker's 2 lines.
    fn hand_next(handover: &mut Handover, epoch: u64) {
        let first = (epoch == 0).then(first_plan);
        let plan = plan(epoch, epoch * 10, epoch * 10 + 10, first);
        let reports = vec![report(epoch, 0, 2, Some(1_000 + epoch as i64))];
        handover.hand(epoch, Some(plan), Vec::new(), reports);
    }

    #[test]
    fn epochs_the_queue_has_no_room_for_wait_in_order_without_blocking() {
        let (mut handover, jobs, progress) = handover_with_room(1);
        // The committer takes nothing: epoch 0 fills the queue, 1 and 2 wait (a blocking send
        // would never return here).
        for epoch in 0..3 {
            hand_next(&mut handover, epoch);
        }
        assert_eq!(handed(&progress), [0]);
        assert_eq!(handover.first_waiting(), Some(1));
        // Asked again with the queue still full: nothing moves.
        handover.hand_waiting();
        assert_eq!(handed(&progress), Vec::<u64>::new());
        // No more epochs, but two wait: the queue stays open.
        handover.close();
        assert_eq!(ready(&jobs).plan.epoch, 0);
        assert_eq!(jobs.try_recv().err(), Some(TryRecvError::Empty));
        // Room for one: the oldest waiting goes, and only then is it said to be handed.
        handover.hand_waiting();
        assert_eq!(handed(&progress), [1]);
        assert_eq!(handover.first_waiting(), Some(2));
        assert_eq!(ready(&jobs).plan.epoch, 1);
        handover.hand_waiting();
        assert_eq!(handed(&progress), [2]);
        assert_eq!(handover.first_waiting(), None);
        // Each commit continues from the epoch before, whatever the wait.
        let epoch2 = ready(&jobs);
        assert_eq!(epoch2.plan.epoch, 2);
        assert_eq!(epoch2.lines_before, 4);
        // The last one handed, the closed queue ends.
        assert!(jobs.recv().is_err());
    }

    #[test]
    fn a_committer_gone_stops_the_job() {
        let (mut handover, jobs, progress) = handover_with_room(1);
        drop(jobs);
        hand_next(&mut handover, 0);
        let seen: Vec<Progress> = progress.try_iter().collect();
        assert_eq!(seen[0], Progress::Failed);
        assert!(matches!(seen[1], Progress::Handed(Handed { epoch: 0, .. })));
        assert_eq!(handover.first_waiting(), None);
    }
}
