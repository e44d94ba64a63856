//! The commit of each epoch. Worker 0 numbers the rejects, advances the watermark and hands the
//! epoch to the committer thread, which merges its deltas into the stored rows together with the
//! source offset, watermark and lease check in one transaction, retrying while the database is
//! away. Worker 0 keeps reading meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logstats_shared::{CommitOutcome, EpochCommit, SourceOffset, StorageError, Store};
use parking_lot::Mutex;

use crate::error::{IngestError, Result};
use crate::metrics::IngestMetrics;
use crate::pacing;
use crate::planner::EpochPlan;
use crate::rejects::RejectsFile;
use crate::share::{FinishedDeltas, ShareReport};
use crate::source::{unix_now, JobId, OpenFiles, Source, SourceId, LEASE_SECONDS};
use crate::summary::Totals;
use crate::watermark::Lateness;

/// First wait before retrying a failed commit; doubled after each failure up to the cap.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two commit attempts.
const RETRY_CAP: Duration = Duration::from_secs(5);
/// A database that keeps failing is reported at most this often.
const RETRY_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the committer thread reports back.
#[derive(Debug, Default)]
struct Committed {
    totals: Totals,
    epochs: u64,
    /// The first error, which stops the job; taken by [`Leader::finish`].
    error: Option<IngestError>,
}

/// One epoch ready to commit.
struct CommitJob {
    commit: EpochCommit,
    plan: EpochPlan,
    lines_before: u64,
    reports: Vec<ShareReport>,
}

/// State of the job kept by worker 0: what is planned, the watermark, and the committer.
pub struct Leader {
    job: JobId,
    /// Committed lines per source, for line numbers: seeded on registration.
    line_counts: HashMap<SourceId, u64>,
    /// The offsets row each source will hold once the epochs handed over so far are committed:
    /// what the next epoch's commit expects to replace (see [`EpochCommit::previous`]).
    stored_offsets: HashMap<SourceId, SourceOffset>,
    plans: BTreeMap<u64, EpochPlan>,
    lateness: Lateness,
    handed_epochs: u64,
    queue: Option<SyncSender<CommitJob>>,
    committer: Option<JoinHandle<()>>,
    committed: Arc<Mutex<Committed>>,
}

impl Leader {
    /// A leader committing to `store`, appending rejected lines to `rejects_path` when given
    /// (read again from `files` when a share kept only some), counting commits in `metrics`.
    pub fn new(
        store: Store,
        job: JobId,
        shutdown: Arc<AtomicBool>,
        allowed_lateness_secs: i64,
        rejects_path: Option<&Path>,
        files: OpenFiles,
        metrics: Arc<IngestMetrics>,
    ) -> Result<Self> {
        let watermark = store.watermark()?;
        if let Some(watermark) = watermark {
            metrics.watermark_at_least(watermark);
        }
        let rejects = rejects_path
            .map(|path| RejectsFile::open(path, files))
            .transpose()?;
        let committed = Arc::new(Mutex::new(Committed::default()));
        let (queue, jobs) = sync_channel(pacing::COMMIT_QUEUE);
        let committer = Committer {
            store,
            shutdown,
            rejects,
            committed: Arc::clone(&committed),
            metrics,
        };
        let committer = std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || committer.run(jobs))
            .map_err(IngestError::io("starting the committer thread"))?;
        Ok(Self {
            job,
            line_counts: HashMap::new(),
            stored_offsets: HashMap::new(),
            plans: BTreeMap::new(),
            lateness: Lateness::new(watermark, allowed_lateness_secs),
            handed_epochs: 0,
            queue: Some(queue),
            committer: Some(committer),
            committed,
        })
    }

    /// Whether epoch `epoch` may be planned now (see [`pacing::may_plan`]).
    pub fn may_plan(&self, epoch: u64) -> bool {
        pacing::may_plan(epoch, self.handed_epochs)
    }

    /// The event time before which records of `epoch` are late.
    pub fn late_before(&self, epoch: u64) -> Option<i64> {
        self.lateness.late_before(epoch)
    }

    /// Registers a source the planner opened.
    pub fn add_source(&mut self, id: SourceId, source: &Source) {
        self.line_counts.insert(id, source.line_count);
        self.stored_offsets.insert(id, source.stored.clone());
    }

    /// Remembers a plan sent to the workers.
    pub fn planned(&mut self, plan: EpochPlan) {
        self.plans.insert(plan.epoch, plan);
    }

    /// Whether an error stopped the job ([`Leader::finish`] returns it).
    pub fn failed(&self) -> bool {
        self.committed.lock().error.is_some()
    }

    /// Epochs committed so far.
    pub fn committed_epochs(&self) -> u64 {
        self.committed.lock().epochs
    }

    /// Totals of the epochs committed so far.
    pub fn totals(&self) -> Totals {
        self.committed.lock().totals.clone()
    }

    fn fail(&self, error: IngestError) {
        self.committed.lock().error.get_or_insert(error);
    }

    /// Hands `epoch` to the committer once every worker's deltas and report for it arrived.
    /// Waits while [`COMMIT_QUEUE`](pacing::COMMIT_QUEUE) epochs are already waiting for the
    /// database.
    pub fn commit(&mut self, epoch: u64, deltas: FinishedDeltas, mut reports: Vec<ShareReport>) {
        if self.failed() {
            return;
        }
        let keys = deltas.len();
        match self.prepare(epoch, deltas, &mut reports) {
            Ok(job) => {
                log::debug!("epoch {epoch}: {keys} merged deltas handed to the committer");
                let sent = self
                    .queue
                    .as_ref()
                    .is_some_and(|queue| queue.send(job).is_ok());
                if !sent {
                    self.fail(IngestError::Internal("the committer thread stopped".into()));
                }
            }
            Err(e) => self.fail(e),
        }
    }

    fn prepare(
        &mut self,
        epoch: u64,
        deltas: FinishedDeltas,
        reports: &mut Vec<ShareReport>,
    ) -> Result<CommitJob> {
        let plan = self
            .plans
            .remove(&epoch)
            .ok_or_else(|| IngestError::Internal(format!("epoch {epoch} was never planned")))?;
        if let Some(error) = reports.iter().find_map(|r| r.error.clone()) {
            return Err(IngestError::Share(error));
        }
        reports.sort_by_key(|r| r.worker);
        let lines_before = *self.line_counts.get(&plan.source).ok_or_else(|| {
            IngestError::Internal(format!("source {} was never registered", plan.path))
        })?;
        let lines_in_epoch: u64 = reports.iter().map(|r| r.lines_total).sum();
        let max_event_time = reports.iter().filter_map(|r| r.max_event_time).max();
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
        let previous = match (sources.first(), self.stored_offsets.get(&plan.source)) {
            (Some(next), Some(stored)) => {
                let previous = stored.clone();
                self.stored_offsets.insert(plan.source, next.clone());
                vec![previous]
            }
            _ => Vec::new(),
        };
        let commit = EpochCommit {
            deltas: deltas
                .into_iter()
                .map(|((customer, day), stats)| (customer, day, stats))
                .collect(),
            sources,
            previous,
            max_event_time,
            lease: Some((self.job.as_str().to_string(), unix_now() + LEASE_SECONDS)),
        };
        self.line_counts
            .insert(plan.source, lines_before + lines_in_epoch);
        self.lateness.advance(epoch, max_event_time);
        self.handed_epochs += 1;
        let late: u64 = reports.iter().map(|r| r.late).sum();
        if late > 0 {
            log::warn!(
                "{}: {late} late lines in epoch {epoch} (older than {} s before the watermark)",
                plan.path,
                self.lateness.allowed_secs()
            );
        }
        Ok(CommitJob {
            commit,
            plan,
            lines_before,
            reports: std::mem::take(reports),
        })
    }

    /// Waits until every handed epoch is committed (or the committer gave up) and returns the
    /// totals, or the first error.
    pub fn finish(&mut self) -> Result<Totals> {
        drop(self.queue.take());
        if let Some(committer) = self.committer.take() {
            if committer.join().is_err() {
                self.fail(IngestError::Internal(
                    "the committer thread panicked".into(),
                ));
            }
        }
        let mut committed = self.committed.lock();
        match committed.error.take() {
            Some(e) => Err(e),
            None => Ok(committed.totals.clone()),
        }
    }
}

/// The committer thread: commits epochs in order, then writes their rejects and totals.
struct Committer {
    store: Store,
    shutdown: Arc<AtomicBool>,
    rejects: Option<RejectsFile>,
    committed: Arc<Mutex<Committed>>,
    metrics: Arc<IngestMetrics>,
}

impl Committer {
    fn run(mut self, jobs: Receiver<CommitJob>) {
        for job in jobs {
            if self.committed.lock().error.is_some() {
                continue; // drain: nothing after a failed epoch may commit
            }
            if let Err(e) = self.commit(&job) {
                self.committed.lock().error.get_or_insert(e);
            }
        }
    }

    fn commit(&mut self, job: &CommitJob) -> Result<()> {
        let started = Instant::now();
        let rows = self.commit_with_retries(&job.commit, &job.plan)?;
        let commit_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        log::debug!(
            "epoch {}: {rows} rows committed in {commit_micros} µs",
            job.plan.epoch
        );
        self.count(job, rows, commit_micros);
        if let Some(rejects) = self.rejects.as_mut() {
            rejects.append(&job.plan, job.lines_before, &job.reports)?;
        }
        let mut committed = self.committed.lock();
        committed.epochs += 1;
        let totals = &mut committed.totals;
        totals.rows_written += rows as u64;
        totals.bytes += job.plan.end - job.plan.start;
        totals.commit_micros += commit_micros;
        for r in &job.reports {
            totals.read_micros += r.micros;
            totals.lines += r.lines;
            totals.accepted += r.accepted;
            totals.rejected += r.rejected;
            totals.late += r.late;
        }
        Ok(())
    }

    /// Counts a committed epoch in the metrics (a scrape may see some of its numbers before
    /// the others; the lines read last).
    fn count(&self, job: &CommitJob, rows: usize, commit_micros: u64) {
        let metrics = &self.metrics;
        let sum = |field: fn(&ShareReport) -> u64| job.reports.iter().map(field).sum::<u64>();
        metrics.accepted.add(sum(|r| r.accepted));
        metrics.rejected.add(sum(|r| r.rejected));
        metrics.late.add(sum(|r| r.late));
        metrics.bytes.add(job.plan.end - job.plan.start);
        metrics.rows_written.add(rows as u64);
        metrics.commit_duration.observe_micros(commit_micros);
        if let Some(event_time) = job.commit.max_event_time {
            metrics.watermark_at_least(event_time);
        }
        metrics.source_committed(job.plan.source, job.plan.end);
        metrics.committed_at(unix_now());
        metrics.lines.add(sum(|r| r.lines));
    }

    /// Commits, retrying with capped exponential backoff while the database is unreachable.
    /// A lost lease, a corrupt row or a corrupt database file is not retried.
    fn commit_with_retries(&self, commit: &EpochCommit, plan: &EpochPlan) -> Result<usize> {
        let mut delay = RETRY_FIRST;
        let mut failures = 0u64;
        let mut last_logged: Option<Instant> = None;
        loop {
            match self.store.commit_epoch(commit) {
                Ok(CommitOutcome::Written(rows)) => {
                    if failures > 0 {
                        log::info!(
                            "database is back: committed epoch {} after {failures} failed attempts",
                            plan.epoch
                        );
                    }
                    return Ok(rows);
                }
                Ok(CommitOutcome::AlreadyCommitted) => {
                    // The attempt that failed had committed; its reply was lost.
                    log::warn!(
                        "database is back: epoch {} had been committed by the attempt whose reply was lost; not applied again",
                        plan.epoch
                    );
                    return Ok(commit.deltas.len());
                }
                Err(
                    cause @ (StorageError::LeaseLost { .. }
                    | StorageError::CorruptRow { .. }
                    | StorageError::Unrepresentable { .. }
                    | StorageError::Corrupt(_)),
                ) => {
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
