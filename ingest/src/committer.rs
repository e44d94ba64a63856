//! The committer thread: it commits each epoch handed to it (see `handover.rs`), in order, in
//! one transaction with the source offset, watermark and lease check, retrying while the
//! database is away, then appends the epoch's rejected lines and counts it. Worker 0 keeps
//! reading meanwhile. The thread tells the loop of each epoch committed, and of the first
//! failure, on the loop's progress channel (`pacing::Progress`), beside the Commit operator's
//! news of the epochs handed over; the [`Committer`] handle gives the totals or the first error
//! at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logstats_shared::{BatchCounts, CommitOutcome, EpochCommit, PushedBatch, StorageError, Store};

use crate::error::{IngestError, Result};
use crate::handover::{CommitJob, CommitQueue, ReadyEpoch};
use crate::metrics::IngestMetrics;
use crate::pacing::{self, Progress, ProgressSender};
use crate::planner::EpochPlan;
use crate::push::{batch_counts, PushIntake};
use crate::rejects::RejectsFile;
use crate::share::ShareReport;
use crate::source::{unix_now, LEASE_SECONDS};
use crate::stage::Stage;
use crate::summary::Totals;

/// First wait before retrying a failed commit; doubled after each failure up to the cap.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two commit attempts.
const RETRY_CAP: Duration = Duration::from_secs(5);
/// A database that keeps failing is reported at most this often.
const RETRY_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the committer thread has done, returned when it ends.
#[derive(Debug, Default)]
struct Committed {
    totals: Totals,
    /// The first error, which stops the job.
    error: Option<IngestError>,
}

/// Worker 0's handle on the committer thread: its end.
pub struct Committer {
    thread: JoinHandle<Committed>,
}

impl Committer {
    /// Starts the thread committing to `store`, appending rejected lines to `rejects` when
    /// given, counting commits in `metrics` and telling `progress` of each. Returns the handle
    /// and the queue to hand epochs into.
    pub fn start(
        store: Store,
        shutdown: Arc<AtomicBool>,
        rejects: Option<RejectsFile>,
        metrics: Arc<IngestMetrics>,
        push: Option<Arc<PushIntake>>,
        stage: Option<Stage>,
        progress: ProgressSender,
    ) -> Result<(Self, CommitQueue)> {
        let (queue, jobs) = sync_channel(pacing::COMMIT_QUEUE);
        let thread = CommitterThread {
            store,
            shutdown,
            rejects,
            committed: Committed::default(),
            progress,
            metrics,
            push,
            stage,
        };
        let thread = std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || thread.run(jobs))
            .map_err(IngestError::io("starting the committer thread"))?;
        Ok((Self { thread }, queue))
    }

    /// Waits until every handed epoch is committed (or the thread gave up) and returns the
    /// totals, or the first error. The queue must have been dropped (the Commit operator drops
    /// it once its input is done and every epoch was handed), or this waits for ever.
    pub fn finish(self) -> Result<Totals> {
        let committed = self
            .thread
            .join()
            .map_err(|_| IngestError::Internal("the committer thread panicked".into()))?;
        match committed.error {
            Some(e) => Err(e),
            None => Ok(committed.totals),
        }
    }
}

/// The committer thread: commits epochs in order, then writes their rejects and totals.
struct CommitterThread {
    store: Store,
    shutdown: Arc<AtomicBool>,
    rejects: Option<RejectsFile>,
    committed: Committed,
    /// The loop's progress channel: each epoch committed, and the first failure.
    progress: ProgressSender,
    metrics: Arc<IngestMetrics>,
    /// Told of each pushed batch's commit (`--listen`).
    push: Option<Arc<PushIntake>>,
    /// A batch run's epochs staged for one commit (see `stage.rs`); `None`: each epoch is
    /// committed on its own.
    stage: Option<Stage>,
}

/// What a commit did: rows written, lines of pruned days left out, and for a pushed batch sent
/// again, the counts its first commit stored.
struct Done {
    rows: usize,
    pruned: u64,
    replayed: Option<BatchCounts>,
}

impl CommitterThread {
    fn run(mut self, jobs: Receiver<CommitJob>) -> Committed {
        for job in jobs {
            if self.committed.error.is_some() {
                continue; // drain: nothing after a failed epoch may commit
            }
            if let Err(e) = self.take(job) {
                self.fail(e);
            }
        }
        // The input ended: what is staged is committed.
        if self.committed.error.is_none() {
            if let Err(e) = self.commit_staged() {
                self.fail(e);
            }
        }
        self.committed
    }

    /// Keeps the first error, which stops the job, and tells the loop.
    fn fail(&mut self, error: IngestError) {
        if self.committed.error.is_none() {
            self.committed.error = Some(error);
            // The loop's end outlives this thread (`Committer::finish` joins it first).
            let _ = self.progress.send(Progress::Failed);
        }
    }

    /// Tells the loop that `job`'s epoch is committed.
    fn tell_committed(&self, job: &ReadyEpoch) {
        let _ = self.progress.send(Progress::Committed {
            epoch: job.plan.epoch,
        });
    }

    /// Stages or commits an epoch. The epochs staged before an epoch that cannot be staged (a
    /// pushed batch's), or before an error, are committed first: what was read before an
    /// error is committed, as it is without staging.
    fn take(&mut self, job: CommitJob) -> Result<()> {
        match job {
            Ok(job) if job.plan.batches.is_empty() && self.stage.is_some() => {
                if let Some(stage) = self.stage.as_mut() {
                    stage.add(job)?;
                    if stage.is_full() {
                        self.commit_staged()?;
                    }
                }
                Ok(())
            }
            // Only a batch run's workers stage runs, and it stages every epoch.
            Ok(job) if !job.runs.is_empty() => Err(IngestError::Internal(format!(
                "epoch {} was staged by its workers but cannot be staged",
                job.plan.epoch
            ))),
            Ok(job) => {
                self.commit_staged()?;
                self.commit(&job)
            }
            Err(e) => {
                self.commit_staged()?;
                Err(e)
            }
        }
    }

    /// Commits the staged epochs as one, then counts each and writes its rejects.
    fn commit_staged(&mut self) -> Result<()> {
        let Some(stage) = self.stage.as_ref().filter(|stage| !stage.is_empty()) else {
            return Ok(());
        };
        let started = Instant::now();
        let commit = stage.commit(unix_now() + LEASE_SECONDS);
        let first_day = stage.first_day();
        let epochs = stage.epochs();
        let Some(last) = epochs.last() else {
            return Ok(());
        };
        let plan = last.plan.clone();
        log::info!(
            "committing {} staged epochs ({} to {}, {} bytes staged) in one transaction",
            epochs.len(),
            epochs[0].plan.epoch,
            plan.epoch,
            stage.bytes()
        );
        let outcome = self.retrying(&plan, || self.store.commit_bulk(&commit, stage, first_day))?;
        let (rows, pruned) = match outcome {
            CommitOutcome::Written(rows) => (rows, 0),
            CommitOutcome::WrittenExceptPruned { rows, pruned } => {
                log::warn!(
                    "{}: {pruned} lines of epochs {} to {} are of days pruned while they were \
                     read; counted late, not stored",
                    plan.path,
                    epochs[0].plan.epoch,
                    plan.epoch
                );
                (rows, pruned)
            }
            CommitOutcome::AlreadyCommitted => {
                log::warn!(
                    "database is back: epochs {} to {} had been committed by the attempt whose \
                     reply was lost; not applied again",
                    epochs[0].plan.epoch,
                    plan.epoch
                );
                (0, 0)
            }
            // Staged epochs hold no pushed batch.
            CommitOutcome::Replayed(_) => (0, 0),
        };
        let commit_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let epochs = match self.stage.as_mut() {
            Some(stage) => stage.take_epochs(),
            None => Vec::new(),
        };
        let count = epochs.len();
        for (i, job) in epochs.iter().enumerate() {
            // The rows, time and pruned lines are the last epoch's: the commit was theirs.
            let last = i + 1 == count;
            let (rows, pruned, micros) = match last {
                true => (rows, pruned, Some(commit_micros)),
                false => (0, 0, None),
            };
            self.record(job, rows, pruned, micros, 0)?;
        }
        Ok(())
    }

    fn commit(&mut self, job: &ReadyEpoch) -> Result<()> {
        let started = Instant::now();
        let batches = &job.plan.batches;
        let rejected_before: u64 = batches.iter().map(|b| b.ticket.rejected_before).sum();
        // Each pushed batch's own counts, from every worker's lines of it.
        let per_batch: Vec<BatchCounts> = batches
            .iter()
            .enumerate()
            .map(|(i, planned)| {
                let mut lines = [0u64; 3];
                for counted in job.reports.iter().filter_map(|r| r.batches.get(i)) {
                    for (total, n) in lines.iter_mut().zip(counted) {
                        *total += n;
                    }
                }
                let [accepted, rejected, late] = lines;
                batch_counts(accepted, rejected, late, planned.ticket.rejected_before, 0)
            })
            .collect();
        let now = unix_now();
        let mut expire_before = self.push.as_ref().and_then(|p| p.expire_before(now));
        let keyed: Vec<PushedBatch> = batches
            .iter()
            .zip(&per_batch)
            .filter_map(|(planned, counts)| {
                Some(PushedBatch {
                    key: planned.ticket.key.clone()?,
                    counts: *counts,
                    at: now,
                    expire_before: expire_before.take(),
                })
            })
            .collect();
        // A replay is answered from the stored key only for an epoch of that one batch.
        let alone = batches.len() == 1;
        let Done {
            rows,
            pruned,
            replayed,
        } = self.commit_with_retries(&job.commit, &job.plan, &keyed, alone)?;
        let commit_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        log::debug!(
            "epoch {}: {rows} rows committed in {commit_micros} µs",
            job.plan.epoch
        );
        if let Some(push) = &self.push {
            // Lines of days pruned while the epoch was read count late: the first batches'
            // accepted lines take them.
            let mut pruned_left = pruned;
            for (planned, counts) in batches.iter().zip(&per_batch) {
                let counts = match replayed {
                    Some(stored) => stored,
                    None => {
                        let moved = pruned_left.min(counts.accepted);
                        pruned_left -= moved;
                        BatchCounts {
                            accepted: counts.accepted - moved,
                            rejected: counts.rejected,
                            late: counts.late + moved,
                        }
                    }
                };
                push.finished(&planned.ticket, planned.end, Ok(counts));
            }
        }
        if replayed.is_some() {
            // A batch sent again: none of its lines were merged or are counted again.
            self.committed.totals.bytes += job.plan.end - job.plan.start;
            self.metrics.source_committed(job.plan.source, job.plan.end);
            self.tell_committed(job);
            return Ok(());
        }
        self.record(job, rows, pruned, Some(commit_micros), rejected_before)
    }

    /// Counts a committed epoch (`rows` written, `pruned` lines left out, the commit's time
    /// when it was this epoch's own) and writes its rejected lines.
    fn record(
        &mut self,
        job: &ReadyEpoch,
        rows: usize,
        pruned: u64,
        commit_micros: Option<u64>,
        rejected_before: u64,
    ) -> Result<()> {
        self.count(job, rows, pruned, commit_micros);
        self.metrics.rejected.add(rejected_before);
        if let Some(rejects) = self.rejects.as_mut() {
            rejects.append(&job.plan, job.lines_before, &job.reports)?;
        }
        let totals = &mut self.committed.totals;
        totals.rows_written += rows as u64;
        totals.bytes += job.plan.end - job.plan.start;
        totals.commit_micros += commit_micros.unwrap_or(0);
        for r in &job.reports {
            totals.read_micros += r.micros;
            totals.lines += r.lines;
            totals.accepted += r.accepted;
            totals.rejected += r.rejected;
            totals.late += r.late;
        }
        totals.lines += rejected_before;
        totals.rejected += rejected_before;
        // Accepted when read, but of days a prune removed meanwhile: counted late.
        totals.accepted -= pruned.min(totals.accepted);
        totals.late += pruned;
        self.tell_committed(job);
        Ok(())
    }

    /// Counts a committed epoch in the metrics (a scrape may see some of its numbers before
    /// the others; the lines read last).
    fn count(&self, job: &ReadyEpoch, rows: usize, pruned: u64, commit_micros: Option<u64>) {
        let metrics = &self.metrics;
        let sum = |field: fn(&ShareReport) -> u64| job.reports.iter().map(field).sum::<u64>();
        metrics
            .accepted
            .add(sum(|r| r.accepted).saturating_sub(pruned));
        metrics.rejected.add(sum(|r| r.rejected));
        metrics.late.add(sum(|r| r.late) + pruned);
        metrics.bytes.add(job.plan.end - job.plan.start);
        metrics.rows_written.add(rows as u64);
        if let Some(micros) = commit_micros {
            metrics.commit_duration.observe_micros(micros);
        }
        if let Some(event_time) = job.commit.max_event_time {
            metrics.watermark_at_least(event_time);
        }
        metrics.source_committed(job.plan.source, job.plan.end);
        metrics.committed_at(unix_now());
        metrics.lines.add(
            sum(|r| r.lines)
                + job
                    .plan
                    .batches
                    .iter()
                    .map(|b| b.ticket.rejected_before)
                    .sum::<u64>(),
        );
    }

    /// Commits, retrying with capped exponential backoff while the database is unreachable:
    /// the rows written, and the requests of days a prune removed after they were read (not
    /// stored). A lost lease, a corrupt row or a corrupt database file is not retried.
    fn commit_with_retries(
        &self,
        commit: &EpochCommit,
        plan: &EpochPlan,
        batches: &[PushedBatch],
        alone: bool,
    ) -> Result<Done> {
        let done = |rows, pruned| Done {
            rows,
            pruned,
            replayed: None,
        };
        match self.retrying(plan, || {
            self.store.commit_epoch_with_batches(commit, batches, alone)
        })? {
            CommitOutcome::Written(rows) => Ok(done(rows, 0)),
            CommitOutcome::Replayed(counts) => {
                log::info!(
                    "{}: a batch with Idempotency-Key {:?} was committed before; answered \
                     with its counts, nothing added",
                    plan.path,
                    batches.first().map_or("", |b| b.key.as_str())
                );
                Ok(Done {
                    rows: 0,
                    pruned: 0,
                    replayed: Some(counts),
                })
            }
            CommitOutcome::WrittenExceptPruned { rows, pruned } => {
                log::warn!(
                    "{}: {pruned} lines in epoch {} are of days pruned while it was read; \
                     counted late, not stored",
                    plan.path,
                    plan.epoch
                );
                Ok(done(rows, pruned))
            }
            CommitOutcome::AlreadyCommitted => {
                // The attempt that failed had committed; its reply was lost.
                log::warn!(
                    "database is back: epoch {} had been committed by the attempt whose reply was lost; not applied again",
                    plan.epoch
                );
                Ok(done(commit.deltas.len(), 0))
            }
        }
    }

    /// Runs `attempt` until it succeeds, with capped exponential backoff while the database
    /// is unreachable; `plan` (the last epoch of the commit) names it in messages. A lost
    /// lease, a corrupt row or a corrupt database file is not retried.
    fn retrying(
        &self,
        plan: &EpochPlan,
        attempt: impl Fn() -> std::result::Result<CommitOutcome, StorageError>,
    ) -> Result<CommitOutcome> {
        let mut delay = RETRY_FIRST;
        let mut failures = 0u64;
        let mut last_logged: Option<Instant> = None;
        loop {
            match attempt() {
                Ok(outcome) => {
                    log_recovery(failures, plan);
                    return Ok(outcome);
                }
                // A lost lease, a corrupt row or file, a sum too large to store, a key taken by
                // another job: asking again would not help.
                Err(cause) if !cause.is_transient() => {
                    // The lease's source is named by its key (device and inode): say the path.
                    return Err(IngestError::Commit {
                        epoch: plan.epoch,
                        path: plan.path.clone(),
                        cause,
                    });
                }
                Err(e) => {
                    failures += 1;
                    if self.shutdown.load(Ordering::Relaxed) {
                        return Err(IngestError::StoppedDuringOutage {
                            epoch: plan.epoch,
                            path: plan.path.clone(),
                            cause: e,
                        });
                    }
                    if last_logged.is_none_or(|t| t.elapsed() >= RETRY_LOG_INTERVAL) {
                        log::warn!(
                            "commit of epoch {} failed ({e}); retrying with backoff (attempt {failures})",
                            plan.epoch
                        );
                        last_logged = Some(Instant::now());
                    }
                    let deadline = Instant::now() + delay;
                    while Instant::now() < deadline && !self.shutdown.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    delay = (delay * 2).min(RETRY_CAP);
                }
            }
        }
    }
}

/// Says the database is back, if commits of `plan`'s epoch failed before this one went in.
fn log_recovery(failures: u64, plan: &EpochPlan) {
    if failures > 0 {
        log::info!(
            "database is back: committed epoch {} after {failures} failed attempts",
            plan.epoch
        );
    }
}
