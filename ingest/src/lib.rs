//! The logstats ingest job: request logs in, per-customer daily stats rows out.

// The modules `main.rs`, `bin/generate.rs` or the integration tests name are `pub`; the rest
// are the library's own.
pub mod backfill;
pub mod cluster;
pub(crate) mod committer;
pub(crate) mod dataflow;
pub(crate) mod error;
pub mod generate;
pub(crate) mod handover;
pub mod inputs;
pub mod metrics;
pub(crate) mod pacing;
pub(crate) mod planner;
pub mod push;
pub(crate) mod rejects;
pub mod retention;
pub(crate) mod share;
pub(crate) mod source;
pub(crate) mod spool;
pub(crate) mod stage;
pub(crate) mod summary;
pub(crate) mod watch;
pub(crate) mod watermark;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstats_shared::record::LineParser;
use logstats_shared::{Store, StoreOptions};
use parking_lot::Mutex;

use crate::cluster::Cluster;
use crate::committer::Committer;
pub use crate::error::{IngestError, Result};
use crate::handover::Handover;
use crate::inputs::{Inputs, NamePattern};
use crate::metrics::IngestMetrics;
use crate::pacing::{Handed, InFlight};
use crate::planner::Planner;
use crate::push::server::{PushServer, PushState};
use crate::push::PushIntake;
use crate::rejects::RejectsFile;
use crate::retention::Retention;
use crate::share::SpareLists;
/// The offsets table's key of a file (the integration tests look rows up by it).
pub use crate::source::source_key_of;
use crate::source::{unix_now, JobId, OpenFiles, Resume, Source, LEASE_SECONDS};
/// Whether a path names standard input (`-`), which `main` checks before it runs the job.
pub use crate::spool::is_stdin;
use crate::spool::Spool;
use crate::stage::{RunShelf, Stage};
use crate::summary::{Progress, ReadCounter, Summary};
use crate::watermark::Lateness;

/// Default largest epoch: the most bytes of input committed together.
pub const DEFAULT_EPOCH_BYTES: u64 = 128 << 20;

/// Default budget of an epoch's open (customer, day) cells, in bytes (`--epoch-memory`): epochs
/// are sized to hold about this much (see `pacing::EpochSizer`).
pub const DEFAULT_EPOCH_MEMORY: u64 = 24 << 20;

/// Default bytes of a batch run's epochs staged on disk before they are committed together
/// (`--stage-bytes`; see `stage.rs`).
pub const DEFAULT_STAGE_BYTES: u64 = 1 << 30;

/// Follow mode looks again at most this often, however many notifications arrive.
const FOLLOW_MIN_POLL_GAP: Duration = Duration::from_millis(50);

/// How often the job renews its leases, for sources no commit has renewed lately.
const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);

/// Everything one run needs; built by `main` from the command line.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// Timely worker threads.
    pub workers: usize,
    /// Records older than the watermark minus this many seconds are late.
    pub allowed_lateness_secs: i64,
    /// `--retain DAYS`: keep today and the days before it, pruning the older ones at start
    /// and, in follow mode, as they age out (see [`retention`]).
    pub retain_days: Option<u32>,
    /// Where rejected and late lines are appended, if anywhere.
    pub rejects: Option<PathBuf>,
    /// Files, or directories whose files matching `include` are read.
    pub paths: Vec<PathBuf>,
    /// Names of a directory's files that are inputs (empty: `*.log`).
    pub include: Vec<NamePattern>,
    /// How lines are parsed: the format and the JSON fields.
    pub parser: Arc<LineParser>,
    /// Stop before committing the epoch that takes the run's share of rejected lines above
    /// this (0 to 1).
    pub max_rejected_ratio: Option<f64>,
    /// Most bytes an epoch spans.
    pub epoch_bytes: u64,
    /// Bytes of open cells an epoch is sized to hold (0: every epoch `epoch_bytes`).
    pub epoch_memory: u64,
    /// A batch run stages its epochs' deltas on disk up to this many bytes and commits them
    /// together (0: each epoch committed on its own). Not used while following or taking
    /// pushes.
    pub stage_bytes: u64,
    /// Keep reading as the files grow, until SIGINT or SIGTERM.
    pub follow: bool,
    /// In follow mode, poll every 100 ms instead of using filesystem notifications.
    pub poll_only: bool,
    /// Draw a progress line on a terminal.
    pub progress: bool,
    /// Where the run's counts are kept for `--metrics-bind` (updated whether served or not).
    pub metrics: Arc<IngestMetrics>,
    /// This process's place in a cluster of several, if it is one.
    pub cluster: Option<Cluster>,
    /// `--listen`: take pushed batches too.
    pub push: Option<PushConfig>,
    /// `--backfill`: no line is late by the watermark (only those of pruned days), and the
    /// stored watermark is left where it is, for a live job beside this run.
    pub backfill: bool,
}

/// `--listen`: where pushes are taken, who may push, and the limits.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Bound by `main`, so that a taken address is an error before anything starts.
    pub listener: Arc<std::net::TcpListener>,
    /// `--tokens`: required on every push when set.
    pub tokens: Option<Arc<logstats_shared::tokens::Tokens>>,
    /// The limits of a push.
    pub limits: push::PushLimits,
    /// `--push-key-from-body`: a batch without an `Idempotency-Key` is keyed by its body.
    pub key_from_body: bool,
}

/// Sets the returned flag on SIGINT or SIGTERM, so the job can commit what it read and stop.
pub fn shutdown_on_signals() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .map_err(IngestError::io("installing the signal handler"))?;
    }
    Ok(flag)
}

/// Runs the job to the end of its inputs (or, with `follow`, until `shutdown` is set) and
/// returns the summary; `None` on a cluster process other than 0, which only reads its shares
/// (process 0 commits and counts).
pub fn run(config: &IngestConfig, shutdown: Arc<AtomicBool>) -> Result<Option<Summary>> {
    let started = Instant::now();
    let cluster = config.cluster.as_ref().filter(|c| c.processes > 1);
    if let Some(cluster) = cluster.filter(|c| !c.is_leader()) {
        cluster::reader::run(cluster, &config.parser, &shutdown)?;
        return Ok(None);
    }
    let store = Store::connect(
        &config.database_url,
        &StoreOptions {
            pool_size: 2,
            // SQLite's mapped pages count in the job's resident memory (up to the map's 256
            // MiB) without making its commits faster: the rows it reads are few and recent.
            mapped_reads: false,
            // A commit of staged epochs writes rows in key order into the table's three
            // b-trees; with SQLite's 2 MB cache it spilled and re-read pages all along (16 MiB:
            // a fifth less time; more did not help).
            sqlite_cache_bytes: Some(16 << 20),
            ..StoreOptions::default()
        },
    )?;
    // Connected before the sources are opened: waiting for a lease happens with every process
    // connected, not against the others' connect timeout.
    let sockets = match cluster {
        Some(cluster) => Some((cluster, cluster::connect::connect(cluster, &shutdown)?)),
        None => None,
    };
    let job = JobId::current();
    let result = run_with_leases(config, &store, &job, shutdown, started, sockets);
    if let Err(e) = store.release_leases(job.as_str()) {
        log::warn!("could not release the leases of job {}: {e}", job.as_str());
    }
    result.map(Some)
}

/// Runs `func` on every worker of this process: threads of one process, or (with `sockets`
/// connected to the other processes) this process's part of a cluster.
fn execute<T, F>(
    workers: usize,
    sockets: Option<(&Cluster, Vec<Option<std::net::TcpStream>>)>,
    func: F,
) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(&mut timely::worker::Worker) -> T + Send + Sync + 'static,
{
    match sockets {
        Some((cluster, sockets)) => cluster::supervisor::execute(cluster, sockets, None, func),
        None => timely::execute(timely::Config::process(workers), func)
            .map_err(IngestError::workers_not_started)?
            .join()
            .into_iter()
            .map(|r| r.map_err(IngestError::worker_failed))
            .collect(),
    }
}

fn run_with_leases(
    config: &IngestConfig,
    store: &Store,
    job: &JobId,
    shutdown: Arc<AtomicBool>,
    started: Instant,
    sockets: Option<(&Cluster, Vec<Option<std::net::TcpStream>>)>,
) -> Result<Summary> {
    let (stdin_paths, paths): (Vec<PathBuf>, Vec<PathBuf>) = config
        .paths
        .iter()
        .cloned()
        .partition(|p| spool::is_stdin(p));
    let mut inputs = Inputs::new(paths, config.rejects.clone()).including(config.include.clone());
    let files = inputs.expand()?;
    let sources = files
        .iter()
        .map(|path| Source::open(path, store, job, Resume::FromCommitted, &shutdown))
        .collect::<Result<Vec<_>, _>>()?;
    for source in &sources {
        if source.offset > 0 {
            log::info!("{}: resuming at byte {}", source.path, source.offset);
        }
    }
    let open_files = OpenFiles::default().parsed_by(Arc::clone(&config.parser));
    let counter = Arc::new(ReadCounter::default());
    let mut planner = Planner::new(inputs, sources, config.epoch_bytes, open_files.clone())
        .with_metrics(Arc::clone(&config.metrics));
    if !stdin_paths.is_empty() {
        let spool = Spool::start(std::io::stdin(), std::env::temp_dir())
            .map_err(IngestError::io("spooling standard input"))?;
        let source = spool.source(store, job, &shutdown)?;
        planner.track_stdin(source, spool);
    }
    let intake = match &config.push {
        Some(push) => {
            let spool = Spool::for_pushes(&std::env::temp_dir())
                .map_err(IngestError::io("making the spool of pushed batches"))?;
            let source = spool.source(store, job, &shutdown)?;
            planner.track_stdin(source, Arc::clone(&spool));
            Some(Arc::new(PushIntake::new(spool, push.limits)))
        }
        None => None,
    };
    // Made before the workers start: a worker that failed to set up would leave the others
    // waiting for its dataflow forever.
    let watermark = store.watermark()?;
    if let Some(watermark) = watermark {
        config.metrics.watermark_at_least(watermark);
    }
    let mut lateness = match config.backfill {
        true => Lateness::backfill(config.allowed_lateness_secs),
        false => Lateness::new(watermark, config.allowed_lateness_secs),
    };
    let mut retention = Retention::new(config.retain_days);
    if let Some(first) = retention.apply(store)? {
        lateness.set_floor(retention::day_start(first));
    }
    // What the Commit operator hands over and what the committer thread commits, the loop
    // learns here.
    let (progress_to, progress) = channel();
    let rejects = (config.rejects.as_deref())
        .map(|path| RejectsFile::open(path, open_files.clone()))
        .transpose()?;
    // The lists of epochs' deltas, given back by the stage to the Commit operator.
    let spares = SpareLists::default();
    // A batch run's epochs are staged and committed together; following, taking pushes or
    // reading standard input (a stream, seen as it arrives), each is committed as soon as it
    // is read.
    let staging = !config.follow
        && config.push.is_none()
        && !config.paths.iter().any(|p| spool::is_stdin(p))
        && config.stage_bytes > 0;
    // In one process the workers stage the deltas of the keys they own themselves.
    let shelf = (staging && sockets.is_none()).then(|| RunShelf::new(std::env::temp_dir()));
    let (committer, queue) = Committer::start(
        store.clone(),
        Arc::clone(&shutdown),
        rejects,
        Arc::clone(&config.metrics),
        intake.clone(),
        staging.then(|| {
            Stage::new(std::env::temp_dir(), config.stage_bytes).giving_lists_to(spares.clone())
        }),
        progress_to.clone(),
    )?;
    let handover = Handover::new(
        job.clone(),
        config.allowed_lateness_secs,
        queue,
        progress_to,
    )
    .with_max_rejected_ratio(config.max_rejected_ratio)
    .keeping_the_watermark(config.backfill)
    .with_spare_lists(spares);
    let feed = Feed {
        config: config.clone(),
        counter: Arc::clone(&counter),
        store: store.clone(),
        job: job.clone(),
        shutdown,
        planner,
        lateness,
        retention,
        progress,
        in_flight: InFlight::default(),
        sizer: pacing::EpochSizer::new(config.epoch_bytes, config.epoch_memory),
        committer,
        intake: intake.clone(),
    };
    let server = match (&config.push, &intake) {
        (Some(push), Some(intake)) => {
            let listener = push
                .listener
                .try_clone()
                .map_err(IngestError::io("taking the push listener"))?;
            let state = PushState {
                intake: Arc::clone(intake),
                store: store.clone(),
                tokens: push.tokens.clone(),
                parser: Arc::clone(&config.parser),
                metrics: Arc::clone(&config.metrics),
                in_memory: Default::default(),
                key_from_body: push.key_from_body,
            };
            Some(
                PushServer::start(listener, Arc::new(state))
                    .map_err(IngestError::io("starting the push server"))?,
            )
        }
        _ => None,
    };
    let worker_zero = Arc::new(Mutex::new(Some((feed, handover))));
    let results = execute(
        config.workers.max(1),
        sockets,
        move |worker| -> Result<Option<Summary>> {
            let parts = match worker.index() {
                0 => worker_zero.lock().take(),
                _ => None,
            };
            let Some((feed, handover)) = parts else {
                let input = dataflow::build(
                    worker,
                    None,
                    open_files.clone(),
                    Arc::clone(&counter),
                    shelf.clone(),
                );
                drop(input);
                while worker.step_or_park(Some(Duration::from_millis(10))) {}
                return Ok(None);
            };
            let input = dataflow::build(
                worker,
                Some(handover),
                open_files.clone(),
                Arc::clone(&counter),
                shelf.clone(),
            );
            let peers = worker.peers();
            if let Some(intake) = &feed.intake {
                intake.planned_by(std::thread::current());
            }
            let totals = feed.run(worker, input)?;
            // Every worker of every process read shares.
            Ok(Some(Summary::new(&totals, started.elapsed(), peers)))
        },
    );
    // The batches not planned are answered 503 (send again); then the server stops, once the
    // requests in progress are answered.
    if let Some(intake) = &intake {
        intake.close();
    }
    if let Some(server) = server {
        server.stop();
    }
    let results = results?;
    let mut summary = None;
    for result in results {
        if let Some(s) = result? {
            summary = Some(s);
        }
    }
    summary.ok_or_else(|| IngestError::Internal("worker 0 produced no summary".into()))
}

/// Worker 0's loop: plans epochs into the dataflow as fast as the handing over allows, keeps
/// the watermark, polls for new data in follow mode, and drains the dataflow at the end. It
/// owns the planning side; the Commit operator owns the [`Handover`], and the committer thread
/// its commits. It learns how far the epochs got from one channel, which both write to
/// (`pacing::Progress`), and never waits on either: it steps the workers, parking briefly,
/// whatever the database does.
struct Feed {
    config: IngestConfig,
    counter: Arc<ReadCounter>,
    store: Store,
    job: JobId,
    shutdown: Arc<AtomicBool>,
    planner: Planner,
    /// The watermark, from the newest event times of the epochs handed over, and the first
    /// kept day's floor under it.
    lateness: Lateness,
    /// `--retain`, and the first kept day another process's prune may move.
    retention: Retention,
    /// The epochs handed over, from the Commit operator, and those committed and the first
    /// failure, from the committer thread.
    progress: Receiver<pacing::Progress>,
    /// How far the epochs got, from what `progress` said.
    in_flight: InFlight,
    /// Sizes the epochs from the cells of those handed over.
    sizer: pacing::EpochSizer,
    /// The committer thread, for its totals or first error at the end.
    committer: Committer,
    /// `--listen`: the pushed batches, whose arrival wakes this loop.
    intake: Option<Arc<PushIntake>>,
}

impl Feed {
    /// Runs the job to its end; returns the totals of what was committed, or the first error
    /// (the loop's own before the committer's).
    fn run(
        mut self,
        worker: &mut timely::worker::Worker,
        input: timely::dataflow::InputHandleVec<dataflow::Epoch, planner::EpochPlan>,
    ) -> Result<summary::Totals> {
        let outcome = self.feed(worker, input);
        let totals = self.committer.finish();
        outcome?;
        totals
    }

    fn feed(
        &mut self,
        worker: &mut timely::worker::Worker,
        mut input: timely::dataflow::InputHandleVec<dataflow::Epoch, planner::EpochPlan>,
    ) -> Result<()> {
        let mut progress = Progress::new(self.config.progress);
        let mut next_epoch = 0;
        let watcher = self.config.follow.then(|| match self.config.poll_only {
            true => watch::ChangeWatcher::polling(),
            false => watch::ChangeWatcher::new(
                &(self.config.paths.iter())
                    .filter(|p| !spool::is_stdin(p))
                    .cloned()
                    .collect::<Vec<_>>(),
            ),
        });
        // Poll once right after the watcher starts: what changed before it is seen too.
        let mut last_poll = Instant::now()
            .checked_sub(watch::POLL_WITH_NOTIFICATIONS)
            .unwrap_or_else(Instant::now);
        let mut last_renew = Instant::now();
        let mut failure = None;
        loop {
            self.hear_progress();
            if self.shutdown.load(Ordering::Relaxed) || self.in_flight.failed {
                break;
            }
            let mut caught_up = false;
            // Standard input arrives as it comes, like a followed file.
            let streaming = self.config.follow || self.planner.stdin_open();
            // Pushed batches wait too: those that arrive meanwhile are committed together.
            let hold = pacing::hold_for_commit(
                streaming,
                self.in_flight.committed,
                next_epoch,
                self.planner.pending_bytes(),
                self.sizer.next_bytes(),
            );
            while !hold && pacing::may_plan(next_epoch, self.in_flight.handed) {
                let late_before = self.lateness.late_before(next_epoch);
                self.planner.set_epoch_bytes(self.sizer.next_bytes());
                match self.planner.next_plan(next_epoch, late_before) {
                    Ok(Some(plan)) => {
                        self.sizer.planned(plan.end - plan.start);
                        input.send(plan);
                        next_epoch += 1;
                        input.advance_to(next_epoch);
                    }
                    Ok(None) => {
                        caught_up = true;
                        break;
                    }
                    Err(e) => {
                        failure = Some(e.into());
                        break;
                    }
                }
            }
            if failure.is_some() || (caught_up && !streaming) {
                break;
            }
            let poll_due = watcher.as_ref().is_some_and(|w| {
                last_poll.elapsed() >= w.poll_interval()
                    || (last_poll.elapsed() >= FOLLOW_MIN_POLL_GAP && w.changed())
            });
            if poll_due {
                last_poll = Instant::now();
                // The sources it opens announce themselves to the Handover in their first plan.
                match self.planner.poll(&self.store, &self.job, &self.shutdown) {
                    Ok(0) => {}
                    Ok(opened) => log::debug!("follow: {opened} new sources"),
                    Err(source::SourceError::Interrupted(_)) => break,
                    Err(e) => log::warn!("follow: {e}"),
                }
            }
            if self.config.follow && self.retention.due() {
                match self.retention.apply(&self.store) {
                    Ok(Some(first)) => self.lateness.set_floor(retention::day_start(first)),
                    Ok(None) => {}
                    Err(e) => log::warn!("retention: {e}"),
                }
            }
            // Leases are renewed by every commit; this covers files still waiting for theirs.
            if last_renew.elapsed() >= LEASE_RENEW_INTERVAL {
                last_renew = Instant::now();
                let until = unix_now() + LEASE_SECONDS;
                if let Err(e) = self.store.renew_leases(self.job.as_str(), until) {
                    log::warn!("renewing leases: {e}");
                }
            }
            let park = if caught_up { 10 } else { 1 };
            worker.step_or_park(Some(Duration::from_millis(park)));
            self.show_progress(&mut progress);
        }
        if !self.config.follow {
            for (path, bytes) in self.planner.held_tails() {
                log::warn!(
                    "{path}: the last {bytes} bytes are a line without a newline yet; it is held \
                     (not counted) until it is complete and is read by the next run"
                );
            }
        }
        // Commit what has been read, then stop: once the dataflow is done, the Commit
        // operator has closed the committer's queue.
        drop(input);
        while worker.step_or_park(Some(Duration::from_millis(1))) {
            self.show_progress(&mut progress);
        }
        progress.finish();
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Counts what the Commit operator and the committer thread said since the last look: the
    /// epochs handed over move the watermark and size the next epochs.
    fn hear_progress(&mut self) {
        for progress in self.progress.try_iter() {
            if let Some(Handed {
                epoch,
                max_event_time,
                bytes,
                cells,
            }) = self.in_flight.hear(progress)
            {
                self.lateness.advance(epoch, max_event_time);
                self.sizer.observe(bytes, cells);
            }
        }
    }

    fn show_progress(&self, progress: &mut Progress) {
        let known = self.planner.planned_bytes() + self.planner.pending_bytes();
        progress.update(&self.counter, known);
    }
}

/// Parses a lateness such as `31d`, `12h`, `30m`, `45s` or `3600` (seconds).
pub fn parse_duration_secs(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let value: i64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 31d, 12h, 30m, 45s"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}: use s, m, h or d"
            ))
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lateness() {
        assert_eq!(parse_duration_secs("31d"), Ok(31 * 86_400));
        assert_eq!(parse_duration_secs("12h"), Ok(43_200));
        assert_eq!(parse_duration_secs("30m"), Ok(1_800));
        assert_eq!(parse_duration_secs("45s"), Ok(45));
        assert_eq!(parse_duration_secs("3600"), Ok(3600));
        assert!(parse_duration_secs("3w").is_err());
        assert!(parse_duration_secs("d").is_err());
        assert!(parse_duration_secs("-1d").is_err());
    }
}
