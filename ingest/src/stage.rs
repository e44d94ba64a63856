//! Staged commits of a batch run: the committer writes each epoch's deltas to a run file on
//! disk, sorted by (customer, day), and commits many epochs at once ([`Store::commit_bulk`]):
//! the runs are merged, and each (customer, day) row is written once, in primary-key order,
//! instead of once per epoch that touched it, each time after reading it back.
//!
//! What is held: the run files (unlinked at once, so nothing is left behind whatever ends the
//! process), the staged epochs' plans and reports (their kept rejected lines bounded by
//! [`MAX_STAGED_REJECTS`]), and while committing, one buffered reader a run.
//!
//! [`Store::commit_bulk`]: logstats_shared::Store::commit_bulk

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use logstats_shared::{
    DayAccumulator, DayStats, EpochCommit, Latencies, SortedDelta, SortedDeltas, StorageError,
};
use smallvec::SmallVec;

use crate::error::{IngestError, Result};
use crate::handover::ReadyEpoch;
use crate::pacing::{CELL_BYTES, SORTED_LINE_BYTES};
use crate::share::SpareLists;

/// Runs staged at most before they are committed: each is one open file and, while
/// committing, one buffered reader of 32 KiB (16 MiB for all). In one process each worker
/// writes a run an epoch (two, when its share's cells went both ways): two workers stage 128 to
/// 256 epochs (the uniform year of 10,000 customers in random order takes 17).
pub const MAX_STAGED_RUNS: usize = 512;

/// Rejected lines kept (for the rejects file) by the staged epochs' reports at most before
/// they are committed: about 250 bytes each.
pub const MAX_STAGED_REJECTS: usize = 16_384;

/// Read buffer of each run while the staged epochs are committed.
const READ_BUFFER_BYTES: usize = 32 << 10;

/// Epochs staged for one commit.
pub struct Stage {
    /// Staged bytes beyond which the epochs are committed.
    limit_bytes: u64,
    dir: PathBuf,
    runs: Vec<File>,
    bytes: u64,
    rejects: usize,
    first_day: Option<i32>,
    /// The staged epochs, in order, their deltas taken out.
    epochs: Vec<ReadyEpoch>,
    /// Where the lists of the deltas staged are given back, emptied, for later epochs.
    spares: SpareLists,
}

impl Stage {
    /// Stages epochs in run files under `dir` (created and deleted by the process) until they
    /// hold `limit_bytes`.
    pub fn new(dir: PathBuf, limit_bytes: u64) -> Self {
        Self {
            limit_bytes,
            dir,
            runs: Vec::new(),
            bytes: 0,
            rejects: 0,
            first_day: None,
            epochs: Vec::new(),
            spares: SpareLists::default(),
        }
    }

    /// This stage, giving the lists of the deltas it staged back to `spares`.
    pub fn giving_lists_to(self, spares: SpareLists) -> Self {
        Self { spares, ..self }
    }

    /// Bytes of deltas staged.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }

    /// Whether the staged epochs must be committed before another is staged.
    pub fn is_full(&self) -> bool {
        self.bytes >= self.limit_bytes
            || self.runs.len() >= MAX_STAGED_RUNS
            || self.rejects >= MAX_STAGED_REJECTS
    }

    /// Writes `epoch`'s deltas to a run file, takes the runs its workers wrote, and keeps the
    /// rest of it.
    pub fn add(&mut self, mut epoch: ReadyEpoch) -> Result<()> {
        let deltas = std::mem::take(&mut epoch.commit.deltas);
        if !deltas.is_empty() {
            let run = write_run(&self.dir, &deltas).map_err(|cause| IngestError::Io {
                what: format!("staging an epoch in {}", self.dir.display()),
                cause,
            })?;
            self.take_run(run);
        }
        for run in std::mem::take(&mut epoch.runs) {
            self.take_run(run);
        }
        self.spares.give(deltas);
        self.rejects += epoch.reports.iter().map(|r| r.rejects.len()).sum::<usize>();
        self.epochs.push(epoch);
        Ok(())
    }

    fn take_run(&mut self, run: StagedRun) {
        self.runs.push(run.file);
        self.bytes += run.bytes;
        if let Some(first) = run.first_day {
            self.first_day = Some(self.first_day.map_or(first, |day| day.min(first)));
        }
    }

    /// What the staged epochs move, as one epoch without deltas: each source's last position,
    /// the position expected before its first epoch, the newest event time, and the lease of
    /// `lease_until`.
    pub fn commit(&self, lease_until: i64) -> EpochCommit {
        let mut commit = EpochCommit::default();
        let mut checked = true;
        for epoch in &self.epochs {
            let epoch = &epoch.commit;
            let with_previous = epoch.previous.len() == epoch.sources.len();
            checked &= with_previous;
            for (i, next) in epoch.sources.iter().enumerate() {
                match commit.sources.iter().position(|s| s.source == next.source) {
                    Some(at) => commit.sources[at] = next.clone(),
                    None => {
                        commit.sources.push(next.clone());
                        if let Some(previous) = epoch.previous.get(i).filter(|_| with_previous) {
                            commit.previous.push(previous.clone());
                        }
                    }
                }
            }
            commit.max_event_time = commit.max_event_time.max(epoch.max_event_time);
            if let Some((job, _)) = &epoch.lease {
                commit.lease = Some((job.clone(), lease_until));
            }
        }
        if !checked || commit.previous.len() != commit.sources.len() {
            commit.previous.clear();
        }
        commit
    }

    /// The staged epochs, in order (their deltas taken out).
    pub fn epochs(&self) -> &[ReadyEpoch] {
        &self.epochs
    }

    /// The first day of any staged delta.
    pub fn first_day(&self) -> Option<i32> {
        self.first_day
    }

    /// The staged epochs, in order, and an empty stage in place of this one.
    pub fn take_epochs(&mut self) -> Vec<ReadyEpoch> {
        self.runs.clear();
        self.bytes = 0;
        self.rejects = 0;
        self.first_day = None;
        std::mem::take(&mut self.epochs)
    }
}

/// One epoch's deltas written to a run file of the stage, sorted by (customer, day): by the
/// committer, or by the worker that merged them (see [`RunShelf`]).
pub struct StagedRun {
    file: File,
    bytes: u64,
    first_day: Option<i32>,
    /// Deltas written (a key given twice counts twice).
    pub cells: usize,
    /// The cells the run's epoch is counted for against the epoch memory budget (see
    /// [`EpochSizer`](crate::pacing::EpochSizer)): its cells, or fewer for a run its worker
    /// wrote from sorted lines ([`RunWriter::held_lines`]).
    pub budget_cells: usize,
}

/// One run: `deltas` in (customer, day) order (a key given twice merged) in an unlinked file
/// under `dir`.
pub fn write_run(dir: &Path, deltas: &[(String, i32, DayStats)]) -> io::Result<StagedRun> {
    let order = key_order(deltas);
    let mut out = BufWriter::with_capacity(1 << 16, run_file(dir)?);
    let mut bytes = 0u64;
    let mut scratch = Vec::new();
    let mut at = 0;
    while at < order.len() {
        let first = &order[at];
        let (customer, day, _) = &deltas[first.index as usize];
        let same = order[at..]
            .iter()
            .take_while(|key| first.cmp_in(key, deltas).is_eq())
            .count();
        let stats = match same {
            1 => std::borrow::Cow::Borrowed(&deltas[first.index as usize].2),
            _ => std::borrow::Cow::Owned(DayStats::merge_all(
                order[at..at + same]
                    .iter()
                    .map(|key| &deltas[key.index as usize].2),
            )),
        };
        bytes += write_delta(&mut out, &mut scratch, customer.as_bytes(), *day, &stats)? as u64;
        at += same;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    Ok(StagedRun {
        file,
        bytes,
        first_day: deltas.iter().map(|d| d.1).min(),
        cells: deltas.len(),
        budget_cells: deltas.len(),
    })
}

/// A new run file under `dir`, unlinked at once: the open file is all there is, gone with the
/// process.
fn run_file(dir: &Path) -> io::Result<File> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(
        "logstats-run-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// One run of a worker's merged cells: `cells` (a key's accumulators from several shares given
/// as several entries) sorted by (customer, day), each key's accumulators merged and written
/// as it is written ([`RunWriter::accumulated`]), in an unlinked file under `dir`. The
/// accumulators are taken out of `cells`; a key of no request is left out.
pub fn write_accumulated_run(
    dir: &Path,
    cells: &mut [((String, i32), DayAccumulator)],
) -> io::Result<StagedRun> {
    let order = key_order(cells);
    let mut run = RunWriter::new(dir)?;
    let mut at = 0;
    while at < order.len() {
        let first = &order[at];
        let same = order[at..]
            .iter()
            .take_while(|key| first.cmp_in(key, cells).is_eq())
            .count();
        let mut merged = std::mem::take(&mut cells[first.index as usize].1);
        for key in &order[at + 1..at + same] {
            merged.merge(&cells[key.index as usize].1);
        }
        at += same;
        let (customer, day) = &cells[first.index as usize].0;
        run.accumulated(customer.as_bytes(), *day, merged)?;
    }
    run.finish()
}

/// Writes a run of cells given in (customer, day) order, each key once, into an unlinked file.
pub struct RunWriter {
    out: BufWriter<File>,
    scratch: Vec<u8>,
    bytes: u64,
    cells: usize,
    first_day: Option<i32>,
    held_lines: Option<u64>,
}

impl RunWriter {
    /// A run in a new file under `dir`.
    pub fn new(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            out: BufWriter::with_capacity(1 << 16, run_file(dir)?),
            scratch: Vec::new(),
            bytes: 0,
            cells: 0,
            first_day: None,
            held_lines: None,
        })
    }

    /// Counts the run against the epoch memory budget as `lines` lines held as sorted lines
    /// ([`SORTED_LINE_BYTES`] each), not as its cells.
    pub fn held_lines(&mut self, lines: u64) {
        self.held_lines = Some(lines);
    }

    /// Writes a cell of `successful` + `failed` requests (at most [`COUNTED_REQUESTS`]) of
    /// `latencies_us` (one each, in any order): as counted requests.
    pub fn counted(
        &mut self,
        customer: &[u8],
        day: i32,
        successful: u8,
        failed: u8,
        latencies_us: impl Iterator<Item = u32>,
    ) -> io::Result<()> {
        let (out, scratch) = (&mut self.out, &mut self.scratch);
        let written = write_counted(
            out,
            scratch,
            customer,
            day,
            successful,
            failed,
            latencies_us,
        )?;
        self.written(day, written);
        Ok(())
    }

    /// Writes a cell ([`write_accumulated`]); a cell of no request is left out.
    pub fn accumulated(
        &mut self,
        customer: &[u8],
        day: i32,
        cell: DayAccumulator,
    ) -> io::Result<()> {
        if cell.total() > 0 {
            let written = write_accumulated(&mut self.out, &mut self.scratch, customer, day, cell)?;
            self.written(day, written);
        }
        Ok(())
    }

    fn written(&mut self, day: i32, bytes: usize) {
        self.bytes += bytes as u64;
        self.cells += 1;
        self.first_day = Some(self.first_day.map_or(day, |first| first.min(day)));
    }

    /// The run written.
    pub fn finish(self) -> io::Result<StagedRun> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        let budget_cells = match self.held_lines {
            Some(lines) => {
                let cells =
                    u128::from(lines) * u128::from(SORTED_LINE_BYTES) / u128::from(CELL_BYTES);
                usize::try_from(cells).unwrap_or(usize::MAX)
            }
            None => self.cells,
        };
        Ok(StagedRun {
            file,
            bytes: self.bytes,
            first_day: self.first_day,
            cells: self.cells,
            budget_cells,
        })
    }
}

/// Where the workers of a single-process batch run leave the runs they write, under a number
/// each, for the Commit operator on worker 0 to take when their epoch is handed over: a worker
/// sorts and writes the deltas of the keys it owns itself, instead of sending each to worker 0
/// to be listed, sorted and written there on the committer's thread. (Several processes send
/// their deltas: a file cannot cross hosts.)
#[derive(Clone)]
pub struct RunShelf {
    dir: PathBuf,
    runs: Arc<parking_lot::Mutex<HashMap<u64, io::Result<StagedRun>>>>,
    next: Arc<AtomicU64>,
}

impl RunShelf {
    /// A shelf of runs written under `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            runs: Arc::default(),
            next: Arc::default(),
        }
    }

    /// Writes `deltas` as a run and shelves it, or the error writing it; returns its number.
    #[cfg(test)]
    pub fn write(&self, deltas: &[(String, i32, DayStats)]) -> u64 {
        self.shelve(write_run(&self.dir, deltas))
    }

    /// Writes `cells` as a run ([`write_accumulated_run`]) and shelves it, or the error
    /// writing it; returns its number.
    pub fn write_accumulated(&self, cells: &mut [((String, i32), DayAccumulator)]) -> u64 {
        self.shelve(write_accumulated_run(&self.dir, cells))
    }

    /// Writes a run with `write` and shelves it, or the error writing it; returns its number
    /// and the cells written.
    pub fn write_with(&self, write: impl FnOnce(&mut RunWriter) -> io::Result<()>) -> (u64, usize) {
        let run = RunWriter::new(&self.dir).and_then(|mut run| {
            write(&mut run)?;
            run.finish()
        });
        let cells = run.as_ref().map_or(0, |run| run.cells);
        (self.shelve(run), cells)
    }

    fn shelve(&self, run: io::Result<StagedRun>) -> u64 {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        self.runs.lock().insert(number, run);
        number
    }

    /// The run shelved under `number`, taken off the shelf.
    pub fn take(&self, number: u64) -> io::Result<StagedRun> {
        self.runs
            .lock()
            .remove(&number)
            .unwrap_or_else(|| Err(io::Error::other(format!("run {number} was never shelved"))))
    }
}

/// The deltas of `runs`, merged in (customer, day) order, as the commit reads them from a stage.
#[cfg(test)]
pub(crate) fn merged_runs(dir: &Path, runs: Vec<StagedRun>) -> Vec<(String, i32, DayStats)> {
    let mut stage = Stage::new(dir.to_path_buf(), u64::MAX);
    for run in runs {
        stage.take_run(run);
    }
    let merged: std::result::Result<Vec<_>, _> = stage.read().expect("read").collect();
    merged.expect("deltas")
}

impl SortedDeltas for Stage {
    fn read(
        &self,
    ) -> std::result::Result<Box<dyn Iterator<Item = SortedDelta> + '_>, StorageError> {
        self.spares.clear();
        let staged = |e: io::Error| StorageError::Staged(e.to_string());
        let mut runs = Vec::with_capacity(self.runs.len());
        for file in &self.runs {
            let mut file = file;
            file.rewind().map_err(staged)?;
            runs.push(BufReader::with_capacity(READ_BUFFER_BYTES, file));
        }
        let mut merge = Merge {
            heads: (0..runs.len()).map(|_| Head::default()).collect(),
            runs,
            heap: BinaryHeap::new(),
            counted: DayAccumulator::new(),
            same: Vec::new(),
            scratch: Vec::new(),
        };
        for run in 0..merge.runs.len() {
            merge.advance(run).map_err(staged)?;
        }
        Ok(Box::new(merge))
    }
}

/// A delta's place in the (customer, day) order of an epoch's deltas, compared as numbers: the
/// id's first [`PREFIX_BYTES`] as in a [`HeadKey`], its length, the day; the whole ids only when
/// one is longer than the prefix and the prefixes are equal. Sorting these 32-byte keys and
/// then reading the deltas in their order replaced sorting the ~130-byte deltas themselves by
/// their `String` ids: that sort (its comparisons reading both ids, its moves) took 70 % of the
/// committer's time while the workers read a year of 10,000 customers.
struct SortKey {
    prefix: u128,
    len: u32,
    day: i32,
    index: u32,
}

impl SortKey {
    /// The order of `self` and `other`, keys of `deltas`, as their (customer, day).
    #[inline]
    fn cmp_in(&self, other: &SortKey, deltas: &[impl Keyed]) -> std::cmp::Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| {
                if self.len as usize > PREFIX_BYTES || other.len as usize > PREFIX_BYTES {
                    deltas[self.index as usize]
                        .key()
                        .0
                        .cmp(deltas[other.index as usize].key().0)
                } else {
                    self.len.cmp(&other.len)
                }
            })
            .then(self.day.cmp(&other.day))
    }
}

/// A delta with its (customer, day).
trait Keyed {
    fn key(&self) -> (&str, i32);
}

impl Keyed for (String, i32, DayStats) {
    fn key(&self) -> (&str, i32) {
        (&self.0, self.1)
    }
}

impl Keyed for ((String, i32), DayAccumulator) {
    fn key(&self) -> (&str, i32) {
        (&self.0 .0, self.0 .1)
    }
}

/// The keys of `deltas` in (customer, day) order. A stable sort (its keys are unique: the same
/// order as an unstable one) because it finds the runs already in order and merges them: a
/// staging worker lists the cells of each share in arrival order, and shares of small cells give
/// theirs in (id, day) order, so an epoch's list is a few long sorted runs. The sorts of the
/// uniform year in random order took 0.17 instead of 0.39 core-seconds (perf, one run each).
fn key_order(deltas: &[impl Keyed]) -> Vec<SortKey> {
    let mut keys: Vec<SortKey> = deltas
        .iter()
        .enumerate()
        .map(|(index, delta)| {
            let (customer, day) = delta.key();
            SortKey {
                prefix: id_prefix(customer.as_bytes()),
                len: u32::try_from(customer.len()).unwrap_or(u32::MAX),
                day,
                index: index as u32,
            }
        })
        .collect();
    keys.sort_by(|a, b| a.cmp_in(b, deltas));
    keys
}

/// The first [`PREFIX_BYTES`] of `id` as a zero-padded big-endian number: ids order as these
/// numbers do, up to ids of which one begins the other (padding zeros match only zero bytes).
#[inline]
fn id_prefix(id: &[u8]) -> u128 {
    let mut prefix = [0u8; PREFIX_BYTES];
    let n = id.len().min(PREFIX_BYTES);
    prefix[..n].copy_from_slice(&id[..n]);
    u128::from_be_bytes(prefix)
}

/// The runs merged: the smallest key of every run's head, its deltas merged.
struct Merge<'a> {
    runs: Vec<BufReader<&'a File>>,
    /// Each run's next delta (its id's buffer kept from delta to delta).
    heads: Vec<Head>,
    /// The runs that have a next delta, by its key.
    heap: BinaryHeap<Reverse<HeadKey>>,
    /// The requests of the key being merged given as counted requests, kept for the next key.
    counted: DayAccumulator,
    /// The deltas of the key being merged given as stats, kept for the next key.
    same: Vec<DayStats>,
    /// A delta's encoded latencies as they are read.
    scratch: Vec<u8>,
}

/// Deltas of one key from this many other runs or more are merged all at once, fewer one at a
/// time.
const MERGE_ALL_PARTS: usize = 8;

/// Bytes of a customer id compared as one number in a [`HeadKey`].
const PREFIX_BYTES: usize = 16;

/// A run's head as the merge orders it, without a copy of its id unless the id is long:
/// (customer, day) order is the order of (the id's first [`PREFIX_BYTES`] bytes as a zero-padded
/// big-endian number, the whole id if longer than that, the id's length, the day). Ids of
/// equal prefix where one is not longer than the prefix: that one is the other's beginning
/// (padding zeros match only zero bytes), so it comes first, as `None` before `Some` and the
/// shorter before the longer put it. Cloning every head's id for the heap cost an allocation
/// and a free a delta, on the thread the commit of a log in random order waits for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct HeadKey {
    prefix: u128,
    long: Option<Box<[u8]>>,
    len: usize,
    day: i32,
    run: usize,
}

impl HeadKey {
    fn new(id: &[u8], day: i32, run: usize) -> Self {
        Self {
            prefix: id_prefix(id),
            long: (id.len() > PREFIX_BYTES).then(|| id.into()),
            len: id.len(),
            day,
            run,
        }
    }

    /// Whether two heads are the same (customer, day).
    fn same_key(&self, other: &HeadKey) -> bool {
        (self.prefix, &self.long, self.len, self.day)
            == (other.prefix, &other.long, other.len, other.day)
    }
}

impl Merge<'_> {
    /// Reads `run`'s next delta into its head and puts its key in the heap: in place of the
    /// top, when `run` is the top's run (one sift down, not a pop and a push), or dropping the
    /// top at the run's end.
    fn advance(&mut self, run: usize) -> io::Result<()> {
        let head = &mut self.heads[run];
        let more = read_delta(&mut self.runs[run], head, &mut self.scratch)?;
        let key = more.then(|| HeadKey::new(&head.customer, head.day, run));
        if let Some(mut top) = self.heap.peek_mut() {
            if top.0.run == run {
                match key {
                    Some(key) => top.0 = key,
                    None => {
                        std::collections::binary_heap::PeekMut::pop(top);
                    }
                }
                return Ok(());
            }
        }
        if let Some(key) = key {
            self.heap.push(Reverse(key));
        }
        Ok(())
    }

    /// Takes the delta of the run `run`, whose head is on top of the heap, into the key being
    /// merged, and reads the run's next.
    fn take(&mut self, run: usize) -> io::Result<()> {
        match &mut self.heads[run].part {
            Part::Counted {
                successful,
                failed,
                latencies,
            } => self.counted.add_counted(*successful, *failed, latencies),
            Part::Stats(stats) => self.same.push(std::mem::take(stats)),
        }
        self.advance(run)
    }
}

impl Iterator for Merge<'_> {
    type Item = SortedDelta;

    fn next(&mut self) -> Option<SortedDelta> {
        let first = self.heap.peek()?.0.clone();
        let staged = |e: io::Error| StorageError::Staged(e.to_string());
        let head = &self.heads[first.run];
        let customer = match String::from_utf8(head.customer.clone()) {
            Ok(customer) => customer,
            Err(e) => return Some(Err(staged(io::Error::other(e)))),
        };
        let day = head.day;
        // The key's deltas in every run: those given as counted requests (the few requests of
        // a cell of a log in random order) are added up as such and summarised once, those
        // given as stats merged one at a time while they are few, all at once past
        // MERGE_ALL_PARTS (a busy day of a log in random order is in every run: one k-way
        // merge instead of a growing histogram rebuilt once a run). One at a time was quicker
        // for a few large parts (50 customers' days of thousands of distinct latencies). Exact
        // days come out the same either way.
        self.counted = DayAccumulator::new();
        self.same.clear();
        let mut run = first.run;
        loop {
            if let Err(e) = self.take(run) {
                return Some(Err(staged(e)));
            }
            match self.heap.peek() {
                Some(top) if first.same_key(&top.0) => run = top.0.run,
                _ => break,
            }
        }
        if self.counted.total() > 0 {
            let counted = std::mem::take(&mut self.counted).finish();
            self.same.push(counted);
        }
        let stats = match self.same.len() {
            1 => self.same.pop().unwrap_or_default(),
            n if n < MERGE_ALL_PARTS => {
                let mut parts = self.same.drain(..);
                let mut stats = parts.next().unwrap_or_default();
                for more in parts {
                    stats.merge(&more);
                }
                stats
            }
            _ => DayStats::merge_all(self.same.iter()),
        };
        Some(Ok((customer, day, stats)))
    }
}

/// A run's next delta as read: its key and what it holds.
#[derive(Default)]
struct Head {
    customer: Vec<u8>,
    day: i32,
    part: Part,
}

/// What a delta of a run holds.
#[derive(Debug, PartialEq)]
enum Part {
    /// A few requests: their counts and latencies (each below 2^32 µs, ascending), as a worker
    /// read them: see [`COUNTED_REQUESTS`].
    Counted {
        successful: u64,
        failed: u64,
        latencies: SmallVec<[u32; COUNTED_REQUESTS]>,
    },
    /// Their stats.
    Stats(DayStats),
}

impl Default for Part {
    fn default() -> Self {
        Part::Stats(DayStats::empty())
    }
}

/// A worker writes a cell of at most this many requests, each below 2^32 µs, as the requests'
/// counts and latencies (4 bytes each) instead of as their stats ([`write_delta`]): on a log in
/// random order nearly every cell of an epoch is one request, which took 75 bytes on disk as
/// stats and 24 as counted, and the merge adds such parts up and summarises them once instead
/// of decoding and merging a histogram for each.
pub const COUNTED_REQUESTS: usize = 8;

/// The first byte of a delta written as stats.
const STATS_DELTA: u8 = 0;
/// The first byte of a delta written as counted requests.
const COUNTED_DELTA: u8 = 1;

/// Writes a cell: as counted requests when it is a few of them (see [`COUNTED_REQUESTS`]), else
/// summarised as stats ([`write_delta`]).
fn write_accumulated(
    out: &mut impl Write,
    scratch: &mut Vec<u8>,
    customer: &[u8],
    day: i32,
    mut cell: DayAccumulator,
) -> io::Result<usize> {
    let (successful, failed) = cell.counts();
    if cell.total() <= COUNTED_REQUESTS as u64 {
        if let Some(latencies) = cell.short_latencies() {
            // Both at most COUNTED_REQUESTS.
            let (successful, failed) = (successful as u8, failed as u8);
            let latencies = latencies.iter().copied();
            return write_counted(out, scratch, customer, day, successful, failed, latencies);
        }
    }
    write_delta(out, scratch, customer, day, &cell.finish())
}

/// Writes one delta as counted requests: [`COUNTED_DELTA`], its key ([`write_key`]), the
/// successful and failed requests (a byte each), and each request's latency in microseconds
/// (4 bytes, little-endian).
fn write_counted(
    out: &mut impl Write,
    scratch: &mut Vec<u8>,
    customer: &[u8],
    day: i32,
    successful: u8,
    failed: u8,
    latencies_us: impl Iterator<Item = u32>,
) -> io::Result<usize> {
    scratch.clear();
    scratch.push(COUNTED_DELTA);
    write_key(scratch, customer, day)?;
    scratch.push(successful);
    scratch.push(failed);
    for latency in latencies_us {
        scratch.extend_from_slice(&latency.to_le_bytes());
    }
    out.write_all(scratch)?;
    Ok(scratch.len())
}

/// Puts a delta's key in `scratch`: the customer's length and bytes, the day (little-endian).
fn write_key(scratch: &mut Vec<u8>, customer: &[u8], day: i32) -> io::Result<()> {
    let len = u32::try_from(customer.len()).map_err(|_| io::Error::other("a delta too large"))?;
    scratch.extend_from_slice(&len.to_le_bytes());
    scratch.extend_from_slice(customer);
    scratch.extend_from_slice(&day.to_le_bytes());
    Ok(())
}

/// Writes one delta as stats: [`STATS_DELTA`], its key ([`write_key`]), the counts, the
/// latency sum, minimum and maximum, and the latencies' stored form with its length
/// (little-endian). The delta is put together in `scratch` and written with one call (ten small
/// writes into the buffered writer, and the latencies encoded in a list of their own, cost the
/// committer more than the bytes).
fn write_delta(
    out: &mut impl Write,
    scratch: &mut Vec<u8>,
    customer: &[u8],
    day: i32,
    stats: &DayStats,
) -> io::Result<usize> {
    scratch.clear();
    scratch.push(STATS_DELTA);
    write_key(scratch, customer, day)?;
    scratch.extend_from_slice(&stats.successful.to_le_bytes());
    scratch.extend_from_slice(&stats.failed.to_le_bytes());
    scratch.extend_from_slice(&stats.latency_sum_us.to_le_bytes());
    scratch.extend_from_slice(&stats.latency_min_us.to_le_bytes());
    scratch.extend_from_slice(&stats.latency_max_us.to_le_bytes());
    let length_at = scratch.len();
    scratch.extend_from_slice(&[0; 4]);
    stats.latencies.encode_into(scratch);
    let latencies = u32::try_from(scratch.len() - length_at - 4)
        .map_err(|_| io::Error::other("a delta too large"))?;
    scratch[length_at..length_at + 4].copy_from_slice(&latencies.to_le_bytes());
    out.write_all(scratch)?;
    Ok(scratch.len())
}

/// Reads a delta written as counted requests from the start of `buffered` into `head`; the
/// bytes it took, or `None` when `buffered` starts with a delta of another kind or one it does
/// not hold whole, or a damaged one ([`read_delta`] then reads it piece by piece, or fails).
/// Most deltas of a run are read so, in place: reading each of their six fields through the
/// buffered reader, a copy each, was a sixth of the merge's time.
#[inline]
fn counted_in(buffered: &[u8], head: &mut Head) -> Option<usize> {
    let (&kind, rest) = buffered.split_first()?;
    if kind != COUNTED_DELTA {
        return None;
    }
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let rest = rest.get(4..)?;
    let customer = rest.get(..len)?;
    let rest = rest.get(len..)?;
    let day = i32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    let (successful, failed) = (*rest.get(4)?, *rest.get(5)?);
    let n = usize::from(successful) + usize::from(failed);
    if n > COUNTED_REQUESTS {
        return None;
    }
    let latencies = rest.get(6..6 + 4 * n)?;
    head.customer.clear();
    head.customer.extend_from_slice(customer);
    head.day = day;
    head.part = Part::Counted {
        successful: u64::from(successful),
        failed: u64::from(failed),
        latencies: latencies
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    };
    Some(1 + 4 + len + 4 + 2 + 4 * n)
}

/// Reads what [`write_delta`] or [`write_accumulated`] wrote into `head` (its id's buffer
/// reused: an id allocated and freed for each delta was a tenth of the merge's time), encoded
/// latencies through `scratch` (kept from delta to delta for the same reason); whether there
/// was one (`false` at the run's end).
fn read_delta(
    input: &mut impl BufRead,
    head: &mut Head,
    scratch: &mut Vec<u8>,
) -> io::Result<bool> {
    let buffered = input.fill_buf()?;
    if buffered.is_empty() {
        return Ok(false);
    }
    if let Some(used) = counted_in(buffered, head) {
        input.consume(used);
        return Ok(true);
    }
    let mut kind = [0u8; 1];
    match input.read_exact(&mut kind) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    head.customer.clear();
    head.customer.resize(u32::from_le_bytes(len) as usize, 0);
    input.read_exact(&mut head.customer)?;
    let mut day = [0u8; 4];
    input.read_exact(&mut day)?;
    head.day = i32::from_le_bytes(day);
    match kind[0] {
        COUNTED_DELTA => {
            let mut counts = [0u8; 2];
            input.read_exact(&mut counts)?;
            let n = usize::from(counts[0]) + usize::from(counts[1]);
            if n > COUNTED_REQUESTS {
                return Err(io::Error::other("a run's delta counts too many requests"));
            }
            let mut bytes = [0u8; 4 * COUNTED_REQUESTS];
            input.read_exact(&mut bytes[..4 * n])?;
            let latencies = bytes[..4 * n]
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            head.part = Part::Counted {
                successful: u64::from(counts[0]),
                failed: u64::from(counts[1]),
                latencies,
            };
        }
        STATS_DELTA => {
            let mut fixed = [0u8; 8 + 8 + 16 + 8 + 8 + 4];
            input.read_exact(&mut fixed)?;
            let (successful, rest) = fixed.split_at(8);
            let (failed, rest) = rest.split_at(8);
            let (sum, rest) = rest.split_at(16);
            let (min, rest) = rest.split_at(8);
            let (max, latencies_len) = rest.split_at(8);
            let array = |bytes: &[u8]| -> io::Result<[u8; 8]> {
                bytes.try_into().map_err(io::Error::other)
            };
            let latencies_len =
                u32::from_le_bytes(latencies_len.try_into().map_err(io::Error::other)?);
            scratch.clear();
            scratch.resize(latencies_len as usize, 0);
            input.read_exact(scratch)?;
            head.part = Part::Stats(DayStats {
                successful: u64::from_le_bytes(array(successful)?),
                failed: u64::from_le_bytes(array(failed)?),
                latency_sum_us: u128::from_le_bytes(sum.try_into().map_err(io::Error::other)?),
                latency_min_us: u64::from_le_bytes(array(min)?),
                latency_max_us: u64::from_le_bytes(array(max)?),
                latencies: Latencies::decode(scratch).map_err(io::Error::other)?,
            });
        }
        other => return Err(io::Error::other(format!("a run's delta of kind {other}"))),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logstats_shared::DayAccumulator;

    fn stats(latencies: &[(bool, u64)]) -> DayStats {
        let mut acc = DayAccumulator::new();
        for &(ok, us) in latencies {
            acc.add(ok, us);
        }
        acc.finish()
    }

    /// Deltas written as stats and as counted requests read back as written, a run's end reads
    /// as none, and a run cut short is an error, not a silent end.
    #[test]
    fn a_delta_reads_back_as_written() {
        let day = stats(&[(true, 1_000), (false, 2_500), (true, 1_000)]);
        let mut cell = DayAccumulator::new();
        for (ok, us) in [(true, 30), (false, 10), (true, 20)] {
            cell.add(ok, us);
        }
        let mut bytes = Vec::new();
        let written =
            write_delta(&mut bytes, &mut Vec::new(), "cust_é".as_bytes(), -3, &day).expect("write");
        assert_eq!(written, bytes.len());
        let counted = write_accumulated(&mut bytes, &mut Vec::new(), b"c", 7, cell).expect("write");
        assert_eq!(
            counted,
            1 + 4 + 1 + 4 + 2 + 3 * 4,
            "written as counted requests"
        );
        assert_eq!(written + counted, bytes.len());
        let (mut head, mut scratch) = (Head::default(), Vec::new());
        let mut input = bytes.as_slice();
        assert!(read_delta(&mut input, &mut head, &mut scratch).expect("read"));
        assert_eq!(
            (head.customer.as_slice(), head.day),
            ("cust_é".as_bytes(), -3)
        );
        assert_eq!(head.part, Part::Stats(day));
        assert!(read_delta(&mut input, &mut head, &mut scratch).expect("read"));
        assert_eq!((head.customer.as_slice(), head.day), (&b"c"[..], 7));
        assert_eq!(
            head.part,
            Part::Counted {
                successful: 2,
                failed: 1,
                latencies: SmallVec::from_slice(&[10, 20, 30]),
            }
        );
        assert!(!read_delta(&mut input, &mut head, &mut scratch).expect("end"));
        // Through a buffered reader of any size: the deltas it holds whole are read in place,
        // the others piece by piece, the same either way.
        for capacity in [1, 7, 30, 40, 64, 4096] {
            let mut input = BufReader::with_capacity(capacity, bytes.as_slice());
            let mut read = Vec::new();
            while read_delta(&mut input, &mut head, &mut scratch).expect("read") {
                read.push((
                    head.customer.clone(),
                    head.day,
                    std::mem::take(&mut head.part),
                ));
            }
            assert_eq!(read.len(), 2, "capacity {capacity}");
            assert_eq!(
                read[1].2,
                Part::Counted {
                    successful: 2,
                    failed: 1,
                    latencies: SmallVec::from_slice(&[10, 20, 30]),
                }
            );
            assert_eq!((read[1].0.as_slice(), read[1].1), (&b"c"[..], 7));
        }
        for cut in [1, counted - 1, counted + 1] {
            let mut cut = &bytes[..bytes.len() - cut];
            let mut read = || read_delta(&mut cut, &mut head, &mut scratch);
            assert!(read().and_then(|_| read()).is_err(), "cut {cut:?}");
        }
        // A delta that says it counts more requests than a counted delta holds is an error.
        let mut damaged = bytes[written..].to_vec();
        damaged[1 + 4 + 1 + 4] = COUNTED_REQUESTS as u8;
        damaged.extend_from_slice(&[0; 4 * COUNTED_REQUESTS]);
        let read = read_delta(&mut damaged.as_slice(), &mut head, &mut scratch);
        assert!(read.is_err(), "{read:?}");
    }

    /// A cell of more than COUNTED_REQUESTS requests, or of a latency of 2^32 µs or more, is
    /// written as stats.
    #[test]
    fn large_cells_are_written_as_stats() {
        let mut many = DayAccumulator::new();
        for us in 0..=COUNTED_REQUESTS as u64 {
            many.add(true, us);
        }
        let mut long = DayAccumulator::new();
        long.add(false, u64::from(u32::MAX) + 1);
        for cell in [many, long] {
            let mut bytes = Vec::new();
            let expected = cell.clone().finish();
            write_accumulated(&mut bytes, &mut Vec::new(), b"c", 1, cell).expect("write");
            let mut head = Head::default();
            assert!(read_delta(&mut bytes.as_slice(), &mut head, &mut Vec::new()).expect("read"));
            assert_eq!(head.part, Part::Stats(expected));
        }
    }

    /// Heads and an epoch's sort keys order as their (customer, day) do, and heads are the same key exactly when those are
    /// equal: ids shorter and longer than the prefix, ids sharing it, ids that begin others
    /// (zero bytes too), non-ASCII ids.
    #[test]
    fn heads_and_sort_keys_order_as_customer_and_day() {
        let long = "a".repeat(PREFIX_BYTES);
        let short = "a".repeat(PREFIX_BYTES - 1);
        let ids = [
            String::new(),
            "a".into(),
            "a\0".into(),
            "a\0b".into(),
            "ab".into(),
            "b".into(),
            "cust_1".into(),
            "cust_10".into(),
            "cust_9".into(),
            "cust_é".into(),
            "\u{7f}".into(),
            "\u{80}".into(),
            format!("{short}\0"),
            format!("{short}b"),
            short.clone(),
            long.clone(),
            format!("{long}\0"),
            format!("{long}a"),
            format!("{long}b"),
            format!("{long}ab"),
        ];
        let mut keys = Vec::new();
        for (run, id) in ids.iter().enumerate() {
            for day in [i32::MIN, -1, 0, 7, i32::MAX] {
                keys.push((id.as_str(), day, run % 3));
            }
        }
        // An epoch's deltas sort into the same order by their sort keys.
        let deltas: Vec<(String, i32, DayStats)> = keys
            .iter()
            .rev()
            .map(|&(id, day, _)| (id.to_string(), day, DayStats::empty()))
            .collect();
        let sorted: Vec<(&str, i32)> = key_order(&deltas)
            .iter()
            .map(|key| {
                (
                    deltas[key.index as usize].0.as_str(),
                    deltas[key.index as usize].1,
                )
            })
            .collect();
        let mut expected: Vec<(&str, i32)> = deltas.iter().map(|d| (d.0.as_str(), d.1)).collect();
        expected.sort();
        assert_eq!(sorted, expected);
        for a in &keys {
            for b in &keys {
                let (ha, hb) = (
                    HeadKey::new(a.0.as_bytes(), a.1, a.2),
                    HeadKey::new(b.0.as_bytes(), b.1, b.2),
                );
                assert_eq!(ha.cmp(&hb), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(
                    ha.same_key(&hb),
                    (a.0, a.1) == (b.0, b.1),
                    "{a:?} against {b:?}"
                );
            }
        }
    }

    /// Each key of `cells` (given `times` times over) with its accumulators merged and
    /// summarised, in key order; keys of no request left out.
    fn merged_cells(
        cells: &[((String, i32), DayAccumulator)],
        times: usize,
    ) -> Vec<(String, i32, DayStats)> {
        let mut merged: std::collections::BTreeMap<(String, i32), DayAccumulator> =
            Default::default();
        for _ in 0..times {
            for (key, cell) in cells.iter().filter(|(_, cell)| cell.total() > 0) {
                merged.entry(key.clone()).or_default().merge(cell);
            }
        }
        merged
            .into_iter()
            .map(|((customer, day), acc)| (customer, day, acc.finish()))
            .collect()
    }

    /// A worker's listed cells (a key in several entries, ids sharing their first 16 bytes,
    /// a day before 1970, an empty accumulator) written as one run: each key once, in order,
    /// its accumulators merged and summarised; the empty one left out and not counted (four
    /// keys of requests).
    #[test]
    fn listed_cells_are_written_merged_in_key_order() {
        let dir = std::env::temp_dir().join(format!("logstats-listed-test-{}", std::process::id()));
        let acc = |latencies: &[(bool, u64)]| {
            let mut acc = DayAccumulator::new();
            for &(ok, us) in latencies {
                acc.add(ok, us);
            }
            acc.normalize();
            acc
        };
        let long = "a-customer-id-longer-than-16";
        let mut cells = vec![
            ((format!("{long}-b"), 3), acc(&[(true, 7)])),
            (("cust_2".to_string(), -1), acc(&[(true, 4), (false, 9)])),
            ((format!("{long}-a"), 3), acc(&[(false, 8)])),
            (("cust_2".to_string(), -1), acc(&[(true, 4)])),
            (("cust_1".to_string(), 5), DayAccumulator::new()),
            ((format!("{long}-b"), 3), acc(&[(true, 1)])),
            (("cust_1".to_string(), 4), acc(&[(true, 2)])),
        ];
        let expected = merged_cells(&cells, 1);
        let again = cells.clone();
        let run = write_accumulated_run(&dir, &mut cells).expect("run");
        assert_eq!(run.cells, 4);
        assert_eq!(run.first_day, Some(-1));
        let mut stage = Stage::new(dir.clone(), 1 << 20);
        stage.take_run(run);
        let written: Vec<(String, i32, DayStats)> = stage
            .read()
            .expect("read")
            .collect::<std::result::Result<_, _>>()
            .expect("deltas");
        assert_eq!(written, expected);
        // The same cells again (written as counted requests) merged with runs of them written
        // as stats: each key's parts of both kinds add up.
        let mut stage = Stage::new(dir.clone(), 1 << 20);
        stage.take_run(write_accumulated_run(&dir, &mut again.clone()).expect("run"));
        stage.take_run(write_run(&dir, &expected).expect("run"));
        stage.take_run(write_run(&dir, &expected).expect("run"));
        let merged: Vec<(String, i32, DayStats)> = stage
            .read()
            .expect("read")
            .collect::<std::result::Result<_, _>>()
            .expect("deltas");
        assert_eq!(merged, merged_cells(&again, 3));
        std::fs::remove_dir(&dir).expect("remove dir");
    }

    /// Any number of runs (none, one, a power of two and not, some of them empty) merge into
    /// each key once, in (customer, day) order, with the deltas of every run merged: what a
    /// sorted map of the same deltas holds (ids sharing their first 16 bytes among them).
    #[test]
    fn any_number_of_runs_merge_as_a_sorted_map() {
        let dir = std::env::temp_dir().join(format!("logstats-many-runs-{}", std::process::id()));
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let long = "a-customer-id-longer-than-16";
        let ids = [
            "cust_1".to_string(),
            "cust_10".to_string(),
            "cust_2".to_string(),
            format!("{long}-a"),
            format!("{long}-b"),
            long.to_string(),
        ];
        for runs in [0, 1, 2, 3, 5, 8, 17, 34, 64] {
            let mut stage = Stage::new(dir.clone(), 1 << 30);
            let mut expected: std::collections::BTreeMap<(String, i32), DayStats> =
                Default::default();
            for run in 0..runs {
                let deltas: Vec<(String, i32, DayStats)> = (0..next() % 40 * (run % 4))
                    .map(|_| {
                        let id = ids[(next() % ids.len() as u64) as usize].clone();
                        let day = (next() % 9) as i32 - 3;
                        let requests: Vec<(bool, u64)> = (0..1 + next() % 12)
                            .map(|_| (next() % 5 != 0, 1 + next() % 50_000))
                            .collect();
                        (id, day, stats(&requests))
                    })
                    .collect();
                for (id, day, delta) in &deltas {
                    match expected.entry((id.clone(), *day)) {
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            slot.insert(delta.clone());
                        }
                        std::collections::btree_map::Entry::Occupied(mut slot) => {
                            slot.get_mut().merge(delta)
                        }
                    }
                }
                stage.take_run(write_run(&dir, &deltas).expect("run"));
            }
            let merged: Vec<(String, i32, DayStats)> = stage
                .read()
                .expect("read")
                .collect::<std::result::Result<_, _>>()
                .expect("deltas");
            let expected: Vec<(String, i32, DayStats)> = expected
                .into_iter()
                .map(|((id, day), stats)| (id, day, stats))
                .collect();
            assert_eq!(merged, expected, "{runs} runs");
        }
        let _ = std::fs::remove_dir(&dir);
    }

    /// Runs merge into one sequence in (customer, day) order, each key once with every run's
    /// deltas of it merged (a key given twice in one run too), and read again from the start.
    #[test]
    fn runs_merge_in_key_order_and_read_again() {
        let dir = std::env::temp_dir().join(format!("logstats-stage-test-{}", std::process::id()));
        let mut stage = Stage::new(dir.clone(), 1 << 20);
        let runs = [
            vec![
                ("b".to_string(), 2, stats(&[(true, 5)])),
                ("a".to_string(), 1, stats(&[(true, 1)])),
                ("a".to_string(), 1, stats(&[(false, 2)])),
            ],
            vec![
                ("a".to_string(), 1, stats(&[(true, 3)])),
                ("a".to_string(), 3, stats(&[(true, 4)])),
                ("c".to_string(), 0, stats(&[(false, 6)])),
            ],
            vec![],
        ];
        // The first run written as the committer writes one, the others as workers do:
        // through the shelf, each taken once.
        let shelf = RunShelf::new(dir.clone());
        for (i, deltas) in runs.into_iter().enumerate() {
            let run = match i {
                0 => write_run(&dir, &deltas).expect("run"),
                _ => {
                    let number = shelf.write(&deltas);
                    let run = shelf.take(number).expect("shelved run");
                    assert!(shelf.take(number).is_err(), "a run is taken once");
                    run
                }
            };
            assert_eq!(run.cells, deltas.len());
            stage.take_run(run);
        }
        assert!(shelf.take(99).is_err(), "a number never shelved");
        assert_eq!(stage.first_day(), Some(0));
        let expected = vec![
            (
                "a".to_string(),
                1,
                stats(&[(true, 1), (false, 2), (true, 3)]),
            ),
            ("a".to_string(), 3, stats(&[(true, 4)])),
            ("b".to_string(), 2, stats(&[(true, 5)])),
            ("c".to_string(), 0, stats(&[(false, 6)])),
        ];
        for _ in 0..2 {
            let merged: Vec<(String, i32, DayStats)> = stage
                .read()
                .expect("read")
                .collect::<std::result::Result<_, _>>()
                .expect("deltas");
            assert_eq!(merged, expected);
        }
        // The run files were unlinked when made: nothing is left in the directory.
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0);
        std::fs::remove_dir(&dir).expect("remove dir");
    }
}
