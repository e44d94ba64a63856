//! One worker's share of an epoch: read its bytes, parse its lines, and pre-aggregate them into
//! per-(customer, day) deltas, with a report of what was accepted, rejected and late.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use logstats_shared::record::{is_blank, LineParser, RejectReason, MAX_LINE_BYTES};
use logstats_shared::{DayAccumulator, DayStats};

use crate::planner::EpochPlan;
use crate::source::OpenFiles;
use crate::stage::{RunShelf, RunWriter, COUNTED_REQUESTS};
use crate::summary::ReadCounter;

/// foldhash's fast hash with a fixed seed: the keys here are short customer ids and (customer,
/// day) pairs from the job's own input, so DoS-resistant hashing buys nothing, and a fixed seed
/// keeps runs repeatable.
pub(crate) type FastHash = foldhash::fast::FixedState;

/// Customer ids up to this long are packed into one `u128` key instead of being interned.
const PACKED_CUSTOMER_BYTES: usize = 16;

/// Marks a key that numbers a long customer id. A packed id never has this bit: its last byte
/// is zero or ASCII.
const LONG_CUSTOMER: u128 = 1 << 127;

/// The customer id of `len` bytes at the start of `id_and_more` as a number (little-endian,
/// zero-padded; valid ids hold no zero byte, so the padding is unambiguous), or `None` when it
/// is longer than [`PACKED_CUSTOMER_BYTES`] or fewer than 8 bytes follow it.
///
/// The id is read in whole words from the line it is part of (a line goes on at least 8 bytes
/// past its customer), not copied byte by byte: that would stall the loads that follow.
#[inline]
fn pack_customer(id_and_more: &[u8], len: usize) -> Option<u128> {
    let word = |at: usize| -> Option<u64> {
        let bytes: [u8; 8] = id_and_more.get(at..at + 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    };
    let low_bytes = |n: usize| {
        if n >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        }
    };
    let (low, high) = match len {
        0..=8 => (word(0)? & low_bytes(len), 0),
        9..=PACKED_CUSTOMER_BYTES => (word(0)?, word(8)? & low_bytes(len - 8)),
        _ => return None,
    };
    Some(u128::from(low) | (u128::from(high) << 64))
}

/// [`pack_customer`] of an id that is not followed by 8 more bytes (the end of a JSON line),
/// through a padded copy.
#[cold]
fn pack_copied(id: &[u8]) -> Option<u128> {
    let mut padded = [0u8; PACKED_CUSTOMER_BYTES + 8];
    padded.get_mut(..id.len())?.copy_from_slice(id);
    pack_customer(&padded, id.len())
}

/// The id [`pack_customer`] packed.
fn unpack_customer(packed: u128) -> String {
    let bytes = packed.to_le_bytes();
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    // Valid ids are ASCII, so this conversion never replaces a byte.
    String::from_utf8_lossy(&bytes[..len]).into_owned()
}

/// Customer ids too long to pack, numbered in the order they were first seen.
#[derive(Default)]
struct LongCustomers {
    ids: HashMap<Box<[u8]>, u32, FastHash>,
    names: Vec<Box<str>>,
}

/// The key of a customer id too long to pack: [`LONG_CUSTOMER`] and its number.
#[cold]
fn intern_long(long: &mut LongCustomers, customer: &[u8]) -> u128 {
    let id = match long.ids.get(customer) {
        Some(&id) => id,
        None => {
            let id = long.names.len() as u32;
            // Valid ids are ASCII, so this conversion never replaces a byte.
            long.names.push(String::from_utf8_lossy(customer).into());
            long.ids.insert(customer.into(), id);
            id
        }
    };
    LONG_CUSTOMER | u128::from(id)
}

/// Bytes read at a time from a share.
const WINDOW_BYTES: u64 = 1 << 20;

/// Longest part of a rejected line kept for the rejects file.
const REJECT_TEXT_BYTES: usize = 200;

/// Rejected lines a share keeps for the rejects file: at most ~250 KB. Past this it only
/// counts them, and the committer reads the share again to write them (see
/// [`ShareReader::rereading`]): 100 MB of garbage would otherwise hold 52 million of them.
pub const KEPT_REJECTS: usize = 1024;

/// Bytes read at a time when a share is read again for its rejects: a window of garbage
/// holds at most half as many rejected lines as bytes.
const REREAD_WINDOW_BYTES: u64 = 64 << 10;

/// A customer and a UTC day (days since 1970-01-01): the key stats are merged by.
pub type CustomerDay = (String, i32);

/// Pre-aggregated deltas of one share or one epoch, one per (customer, day).
pub type Deltas = Vec<(CustomerDay, DayAccumulator)>;

/// An epoch's merged deltas with their latency summaries built, one per (customer, day), in
/// the form the commit takes them.
pub type FinishedDeltas = Vec<(String, i32, DayStats)>;

/// Emptied lists of an epoch's deltas, given back by the committer once it staged them and
/// taken by the Commit operator for the next epochs: a list of a new epoch's deltas was
/// fresh memory each time (tens of MB on a fleet), and the page faults of writing into it
/// and its growth were 40 % of the page faults of the ingest of a year of 10,000 customers.
#[derive(Clone, Default)]
pub struct SpareLists(Arc<parking_lot::Mutex<Vec<FinishedDeltas>>>);

/// Lists kept spare at most: one is taken for each epoch as the one before is given back.
const SPARE_LISTS: usize = 1;

impl SpareLists {
    /// A list with room for `capacity` deltas: a spare one if there is one.
    pub fn take(&self, capacity: usize) -> FinishedDeltas {
        let spare = self.0.lock().pop();
        let mut list = spare.unwrap_or_default();
        // Exactly: `reserve` would double a spare list a little short of room.
        list.reserve_exact(capacity);
        list
    }

    /// Drops the lists kept: while the staged epochs are committed they would only hold memory.
    pub fn clear(&self) {
        let lists = std::mem::take(&mut *self.0.lock());
        drop(lists);
    }

    /// Keeps `list`, emptied, for [`SpareLists::take`] (unless enough are kept).
    pub fn give(&self, mut list: FinishedDeltas) {
        list.clear();
        let mut spare = self.0.lock();
        if spare.len() < SPARE_LISTS {
            spare.push(list);
        }
    }
}

/// A rejected line, numbered within the worker's share (0 = its first line).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RejectedLine {
    /// Lines before it in the same share.
    pub line_in_share: u64,
    /// Why it was rejected.
    pub reason: RejectReason,
    /// The start of the line, lossily decoded.
    pub text: String,
}

/// A share that could not be read. It crosses threads and processes in the worker's
/// [`ShareReport`], so the I/O error is kept as its text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("reading {path} (worker {worker}, bytes {start}..{end}): {message}")]
pub struct ReadError {
    /// The file.
    pub path: String,
    /// The worker whose share it was.
    pub worker: usize,
    /// The window that failed: its first byte and one past its last.
    pub start: u64,
    /// One past the window's last byte.
    pub end: u64,
    /// The I/O error's text.
    pub message: String,
}

impl ReadError {
    // Out of the reading loop's way: a cold, separate function keeps the hot path's code as
    // it is (measured with callgrind: inlined, it cost the parser 0.6 % more instructions).
    #[cold]
    #[inline(never)]
    fn new(plan: &EpochPlan, worker: usize, window: (u64, u64), error: &std::io::Error) -> Self {
        Self {
            path: plan.path.clone(),
            worker,
            start: window.0,
            end: window.1,
            message: error.to_string(),
        }
    }
}

/// What one worker saw in its share of one epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShareReport {
    /// The epoch.
    pub epoch: u64,
    /// The worker.
    pub worker: usize,
    /// Every line, blank ones included (for line numbers).
    pub lines_total: u64,
    /// Non-blank lines.
    pub lines: u64,
    /// Valid, on-time lines.
    pub accepted: u64,
    /// Invalid lines.
    pub rejected: u64,
    /// Valid but late lines.
    pub late: u64,
    /// Newest accepted event time (Unix seconds).
    pub max_event_time: Option<i64>,
    /// The rejected and late lines, the first [`KEPT_REJECTS`] of them.
    pub rejects: Vec<RejectedLine>,
    /// Whether rejected or late lines were left out of `rejects`.
    pub rejects_left_out: bool,
    /// Set when the share could not be read.
    pub error: Option<ReadError>,
    /// Wall time from the share's first window to its end, in microseconds (including what
    /// the worker did between its windows).
    pub micros: u64,
    /// For an epoch of pushed batches: the lines of this share in each batch of the plan, as
    /// [accepted, rejected, late].
    pub batches: Vec<[u64; 3]>,
    /// The number of the run on the [`RunShelf`] the worker wrote the share's cells to itself
    /// (see [`ShareReader::staging_into`]), if it did.
    #[serde(default)]
    pub run: Option<u64>,
}

/// A worker's share of one epoch while it is read: the windows are read one at a time, so
/// the worker can merge and commit earlier epochs in between.
pub struct Share {
    report: ShareReport,
    /// Where the next window starts.
    next: u64,
    end: u64,
    started: Instant,
}

impl Share {
    /// The rejected lines read so far, taken out of the share.
    pub fn take_rejects(&mut self) -> Vec<RejectedLine> {
        std::mem::take(&mut self.report.rejects)
    }
}

/// Per-worker reading state kept across epochs: the read buffer and the customer interner.
#[derive(Default)]
pub struct ShareReader {
    files: OpenFiles,
    /// How lines are parsed (from `files`).
    parser: Arc<LineParser>,
    window_bytes: u64,
    buffer: Vec<u8>,
    /// Customer ids longer than [`PACKED_CUSTOMER_BYTES`].
    long: LongCustomers,
    /// Index in `accumulators` by (packed customer, day): see [`pack_customer`]. Small
    /// entries, so the table stays in the cache.
    days: HashMap<(u128, i32), u32, FastHash>,
    accumulators: Vec<((u128, i32), DayAccumulator)>,
    /// Whether the share being read keeps its lines in `sorted` instead (see [`Sorted`]).
    sorting: bool,
    /// Lines and cells of the share read before: they choose how the next one is read.
    last_shape: (u64, usize),
    sorted: Sorted,
    /// Rejected lines kept per share.
    kept_rejects: usize,
    /// Where the bytes and lines read are counted, for the progress bar.
    counter: Arc<ReadCounter>,
    /// Where a [`Sorted`] share's cells are written as a run, if anywhere.
    shelf: Option<RunShelf>,
}

impl ShareReader {
    /// A reader of the files registered in `files`.
    pub fn new(files: OpenFiles) -> Self {
        Self::with_window(files, WINDOW_BYTES)
    }

    /// A reader that reads shares `window_bytes` at a time.
    pub fn with_window(files: OpenFiles, window_bytes: u64) -> Self {
        Self {
            parser: Arc::clone(files.parser()),
            files,
            window_bytes: window_bytes.max(1),
            kept_rejects: KEPT_REJECTS,
            ..Self::default()
        }
    }

    /// This reader, counting what it reads into `counter`.
    pub fn counting_into(self, counter: Arc<ReadCounter>) -> Self {
        Self { counter, ..self }
    }

    /// This reader, writing the cells of a share of many cells of a few lines each (a
    /// [`Sorted`] one) to a run of its own on `shelf`, in the report's `run`, instead of
    /// giving them back: they come out of the sort in the run's order, and written from there
    /// they are never made into accumulators, keyed by an id of their own, sent to the
    /// worker owning them, listed and sorted again (half of the workers' time on the uniform
    /// year in random order, where nearly every line is a cell of its share). Cells of a key
    /// from several workers' runs are merged at the commit.
    pub fn staging_into(self, shelf: Option<RunShelf>) -> Self {
        Self { shelf, ..self }
    }

    /// A reader that reads a share again for its rejected lines, in small windows, keeping
    /// every one: the caller takes them after each [`ShareReader::step`] with
    /// [`Share::take_rejects`].
    pub fn rereading(files: OpenFiles) -> Self {
        Self {
            kept_rejects: usize::MAX,
            ..Self::with_window(files, REREAD_WINDOW_BYTES)
        }
    }

    /// Reads and parses worker `index`'s share of `plan`; returns its deltas and report (the
    /// unit tests' way; the dataflow steps through a share with [`ShareReader::begin`]).
    #[cfg(test)]
    pub fn read(&mut self, plan: &EpochPlan, index: usize, peers: usize) -> (Deltas, ShareReport) {
        let mut share = self.begin(plan, index, peers);
        while !self.step(plan, &mut share) {}
        self.finish(share)
    }

    /// Starts reading worker `index`'s share of `plan`; [`ShareReader::step`] reads it.
    pub fn begin(&mut self, plan: &EpochPlan, index: usize, peers: usize) -> Share {
        let (next, end) = plan.share(index, peers);
        let (lines, cells) = self.last_shape;
        self.sorting = cells >= SORT_FROM_CELLS && lines < SORT_BELOW_LINES_A_CELL * cells as u64;
        Share {
            report: ShareReport {
                epoch: plan.epoch,
                worker: index,
                batches: vec![[0; 3]; plan.batches.len()],
                ..ShareReport::default()
            },
            next,
            end,
            started: Instant::now(),
        }
    }

    /// Reads the next window of `share` (of `plan`); returns whether the share is done. A
    /// read error ends the share with the error in its report.
    pub fn step(&mut self, plan: &EpochPlan, share: &mut Share) -> bool {
        if share.next >= share.end || share.report.error.is_some() {
            return true;
        }
        let window_start = share.next;
        let mut window_end = (window_start + self.window_bytes).min(share.end);
        // An epoch of pushed batches: a window stays within one batch (a batch ends just after
        // a newline, so no line spans two), whose counts it adds to.
        let batch = plan.batch_at(window_start);
        if let Some(batch) = batch {
            window_end = window_end.min(plan.batches[batch].end);
        }
        let lines_before = share.report.lines;
        let before = counts(&share.report);
        let report = &mut share.report;
        let read = self
            .files
            .for_plan(plan.read())
            .and_then(|file| self.parse_window(plan, &file, window_start, window_end, report));
        let after = counts(&share.report);
        if let Some(counted) = batch.and_then(|b| share.report.batches.get_mut(b)) {
            for ((total, was), is) in counted.iter_mut().zip(before).zip(after) {
                *total += is - was;
            }
        }
        self.counter
            .add(window_end - window_start, share.report.lines - lines_before);
        share.next = window_end;
        if let Err(e) = read {
            let worker = share.report.worker;
            share.report.error = Some(ReadError::new(plan, worker, (window_start, window_end), &e));
            return true;
        }
        share.next >= share.end
    }

    /// The deltas and report of a share [`ShareReader::step`] has read to its end.
    pub fn finish(&mut self, share: Share) -> (Deltas, ShareReport) {
        let mut report = share.report;
        report.micros = u64::try_from(share.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.days.clear();
        if report.error.is_some() {
            self.accumulators.clear();
            self.sorted.clear();
            return (Vec::new(), report);
        }
        let lines_sorted = self.sorted.keys.len() + self.sorted.long.len();
        if let Some(shelf) = self
            .shelf
            .as_ref()
            .filter(|_| self.sorting && lines_sorted > 0)
        {
            let (sorted, names) = (&mut self.sorted, &self.long.names);
            let (number, cells) = shelf.write_with(|run| sorted.write_run(run, names));
            log::debug!(
                "epoch {} worker {}: a sorted share's {cells} cells staged as run {number}",
                report.epoch,
                report.worker
            );
            report.run = Some(number);
            self.last_shape = (report.accepted, cells);
            self.forget_long_customers();
            return (Vec::new(), report);
        }
        if self.sorting {
            self.sorted
                .cells_into(&mut self.accumulators, &self.long.names);
        }
        self.last_shape = (report.accepted, self.accumulators.len());
        let long_names = &self.long.names;
        let deltas = self
            .accumulators
            .drain(..)
            .map(|((customer, day), mut acc)| {
                acc.normalize();
                let name = match customer {
                    _ if customer & LONG_CUSTOMER != 0 => {
                        long_names[(customer & !LONG_CUSTOMER) as usize].to_string()
                    }
                    _ => unpack_customer(customer),
                };
                ((name, day), acc)
            })
            .collect();
        self.forget_long_customers();
        log::debug!(
            "epoch {} worker {}: share of {} lines read in {} µs",
            report.epoch,
            report.worker,
            report.lines_total,
            report.micros
        );
        (deltas, report)
    }

    /// Keeps memory bounded by one epoch's customers, not by every customer ever seen.
    fn forget_long_customers(&mut self) {
        if self.long.names.len() > 100_000 {
            self.long = LongCustomers::default();
        }
    }

    /// Parses the lines that start in `window_start..window_end` of `plan`'s range.
    fn parse_window(
        &mut self,
        plan: &EpochPlan,
        file: &File,
        share_start: u64,
        share_end: u64,
        report: &mut ShareReport,
    ) -> io::Result<()> {
        // Read from one byte before the window (to see whether a line starts at its first
        // byte) to far enough past it to finish its last line, or to prove that line too long.
        let read_from = share_start.saturating_sub(1).max(plan.start);
        let read_to = (share_end + MAX_LINE_BYTES as u64 + 2).min(plan.end);
        self.buffer.resize((read_to - read_from) as usize, 0);
        file.read_exact_at(&mut self.buffer, read_from)?;
        let buf = &self.buffer[..];
        let owned_end = (share_end - read_from) as usize;
        let mut pos = if share_start == plan.start {
            0
        } else {
            match memchr::memchr(b'\n', buf) {
                Some(i) => i + 1,
                None => return Ok(()),
            }
        };
        let reaches_range_end = read_to == plan.end;
        let kept = self.kept_rejects;
        // One newline search over the whole window, not one call per line.
        let first = pos;
        let mut newlines = memchr::memchr_iter(b'\n', &buf[first..]);
        while pos < owned_end {
            let (line, next) = match newlines.next().map(|i| first + i) {
                Some(end) => (&buf[pos..end], end + 1),
                None if reaches_range_end => (&buf[pos..], buf.len()),
                // No newline within MAX_LINE_BYTES past the share: the line is too long.
                None => (&buf[pos..], usize::MAX),
            };
            let line_in_share = report.lines_total;
            report.lines_total += 1;
            if next == usize::MAX {
                report.lines += 1;
                report.rejected += 1;
                keep_reject(report, kept, line_in_share, RejectReason::TooLong, line);
                break;
            }
            pos = next;
            if is_blank(line) {
                continue;
            }
            report.lines += 1;
            match self.parser.parse(line) {
                Ok(record) => {
                    let event_time = record.event_time();
                    if plan.late_before.is_some_and(|limit| event_time < limit) {
                        report.late += 1;
                        keep_reject(report, kept, line_in_share, RejectReason::Late, line);
                        continue;
                    }
                    report.accepted += 1;
                    if event_time <= plan.watermark_ceiling {
                        report.max_event_time = report.max_event_time.max(Some(event_time));
                    }
                    // Where the customer starts in the line (the parser borrowed it from there).
                    let start =
                        (record.customer.as_ptr() as usize).wrapping_sub(line.as_ptr() as usize);
                    debug_assert_eq!(
                        line.get(start..start + record.customer.len()),
                        Some(record.customer)
                    );
                    let packed = line
                        .get(start..)
                        .and_then(|from| pack_customer(from, record.customer.len()))
                        .or_else(|| pack_copied(record.customer));
                    let customer = match packed {
                        Some(packed) => packed,
                        None => intern_long(&mut self.long, record.customer),
                    };
                    if self.sorting {
                        self.sorted.push(
                            customer,
                            record.day,
                            record.is_success(),
                            record.latency_us,
                        );
                        continue;
                    }
                    let key = (customer, record.day);
                    let accumulators = &mut self.accumulators;
                    let index = *self.days.entry(key).or_insert_with(|| {
                        accumulators.push((key, DayAccumulator::new()));
                        (accumulators.len() - 1) as u32
                    });
                    self.accumulators[index as usize]
                        .1
                        .add(record.is_success(), record.latency_us);
                }
                Err(reason) => {
                    report.rejected += 1;
                    keep_reject(report, kept, line_in_share, reason, line);
                }
            }
        }
        Ok(())
    }
}

/// Shares of at least this many cells, read before, make the next share [`Sorted`]...
const SORT_FROM_CELLS: usize = 4096;

/// ...unless they had this many lines a cell or more: then the table of cells is small for
/// its lines and stays in the cache, and sorted lines would take more memory than the cells.
const SORT_BELOW_LINES_A_CELL: u64 = 16;

/// A share's accepted lines as they are read, sorted into cells at its end. A line adds to its
/// cell in a table of the share's cells at a random place (two cache misses a line once the
/// share holds tens of thousands of cells: 10,000 customers' days); here it is appended, and
/// only the customer is looked up, in a table of one entry a customer. Used for shares of many
/// cells and few lines each, where it takes about the memory of the table (12 bytes a line
/// while read, 12 more while sorted).
#[derive(Default)]
struct Sorted {
    /// Each customer's number in this share, by packed id (see [`pack_customer`]).
    numbers: HashMap<u128, u32, FastHash>,
    /// The packed ids, by number.
    customers: Vec<u128>,
    /// Each line's cell: its customer number (high half) and day (low half, [`day_bits`]).
    keys: Vec<u64>,
    /// Each line's latency in microseconds, shifted left by one, and whether it succeeded
    /// (lowest bit); lines of a latency from 2^31 µs on are in `long` instead.
    values: Vec<u32>,
    /// Lines of long latencies: cell and (latency, success).
    long: Vec<(u64, u64, bool)>,
    /// The lists `keys` and `values` are sorted through.
    spare: (Vec<u64>, Vec<u32>),
}

impl Sorted {
    #[inline]
    fn push(&mut self, customer: u128, day: i32, success: bool, latency_us: u64) {
        let numbers = &mut self.numbers;
        let customers = &mut self.customers;
        let number = *numbers.entry(customer).or_insert_with(|| {
            customers.push(customer);
            (customers.len() - 1) as u32
        });
        let key = (u64::from(number) << 32) | u64::from(day_bits(day));
        match u32::try_from(latency_us) {
            Ok(short) if short < 1 << 31 => {
                self.keys.push(key);
                self.values.push((short << 1) | u32::from(success));
            }
            _ => self.long.push((key, latency_us, success)),
        }
    }

    fn clear(&mut self) {
        self.numbers.clear();
        self.customers.clear();
        self.keys.clear();
        self.values.clear();
        self.long.clear();
    }

    /// The lines as cells, in (customer id, day) order, added to `cells` (empty); clears the
    /// lines. `long_names` names the ids too long to pack.
    ///
    /// The cells come out in the order the stage writes them in (an id's bytes, then the day):
    /// the worker staging a key then receives each share's cells of it in order, and reads them
    /// in order when it writes its run (in the order the customers were first seen, each cell
    /// it read was a cache miss: a core-second of the uniform year in random order).
    fn cells_into(
        &mut self,
        cells: &mut Vec<((u128, i32), DayAccumulator)>,
        long_names: &[Box<str>],
    ) {
        let each = |customer: u128, _: &[u8], day: i32, lines: CellLines| {
            cells.push(((customer, day), lines.accumulator()));
            Ok(())
        };
        // The closure never fails.
        let _ = self.drain_cells(long_names, each);
    }

    /// The lines as cells written to `run` in (customer id, day) order, each of a few requests
    /// as those, from the lines as they are (see [`RunWriter::counted`]); clears the lines.
    fn write_run(&mut self, run: &mut RunWriter, long_names: &[Box<str>]) -> io::Result<()> {
        run.held_lines((self.keys.len() + self.long.len()) as u64);
        self.drain_cells(long_names, |_, id, day, lines| {
            let n = lines.values.len();
            if !lines.long.is_empty() || n > COUNTED_REQUESTS {
                return run.accumulated(id, day, lines.accumulator());
            }
            let successful = lines.values.iter().filter(|&&v| v & 1 == 1).count();
            // Both at most COUNTED_REQUESTS.
            let (successful, failed) = (successful as u8, (n - successful) as u8);
            run.counted(
                id,
                day,
                successful,
                failed,
                lines.values.iter().map(|&v| v >> 1),
            )
        })
    }

    /// Gives `each` the lines' cells in (customer id, day) order: its packed id, its id, its
    /// day and its lines; clears the lines, also when `each` fails (its error is returned).
    ///
    /// The customers are ranked by id, each line's customer number replaced by its rank, and
    /// the lines sorted by (rank, day).
    fn drain_cells(
        &mut self,
        long_names: &[Box<str>],
        mut each: impl FnMut(u128, &[u8], i32, CellLines) -> io::Result<()>,
    ) -> io::Result<()> {
        let id = |customer: u128| -> Vec<u8> {
            if customer & LONG_CUSTOMER != 0 {
                let name = long_names.get((customer & !LONG_CUSTOMER) as usize);
                name.map_or_else(Vec::new, |name| name.as_bytes().to_vec())
            } else {
                let bytes = customer.to_le_bytes();
                let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                bytes[..len].to_vec()
            }
        };
        let mut by_rank: Vec<u32> = (0..self.customers.len() as u32).collect();
        let ids: Vec<Vec<u8>> = self.customers.iter().map(|&c| id(c)).collect();
        by_rank.sort_unstable_by(|&a, &b| ids[a as usize].cmp(&ids[b as usize]));
        let mut rank = vec![0u32; by_rank.len()];
        for (r, &number) in by_rank.iter().enumerate() {
            rank[number as usize] = r as u32;
        }
        let ranked = |key: u64| (u64::from(rank[(key >> 32) as usize]) << 32) | (key & 0xffff_ffff);
        for key in self.keys.iter_mut() {
            *key = ranked(*key);
        }
        for line in self.long.iter_mut() {
            line.0 = ranked(line.0);
        }
        sort_by_key(&mut self.keys, &mut self.values, &mut self.spare);
        self.long.sort_unstable_by_key(|&(key, _, _)| key);
        let mut result = Ok(());
        let (mut at, mut long_at) = (0, 0);
        loop {
            // The next cell: the smaller key of the two lists' heads.
            let key = match (self.keys.get(at), self.long.get(long_at)) {
                (Some(&short), Some(&(long_key, _, _))) => short.min(long_key),
                (Some(&short), None) => short,
                (None, Some(&(long_key, _, _))) => long_key,
                (None, None) => break,
            };
            let short = self.keys[at..].iter().take_while(|&&k| k == key).count();
            let long = self.long[long_at..]
                .iter()
                .take_while(|l| l.0 == key)
                .count();
            let number = by_rank[(key >> 32) as usize] as usize;
            let lines = CellLines {
                values: &self.values[at..at + short],
                long: &self.long[long_at..long_at + long],
            };
            (at, long_at) = (at + short, long_at + long);
            result = each(
                self.customers[number],
                &ids[number],
                day_of_bits(key as u32),
                lines,
            );
            if result.is_err() {
                break;
            }
        }
        // Keep memory bounded by one share's lines and customers, not every share's.
        self.clear();
        result
    }
}

/// One cell's lines in a [`Sorted`] share: each line's latency and success as in `values`, and
/// its lines of long latencies.
struct CellLines<'a> {
    values: &'a [u32],
    long: &'a [(u64, u64, bool)],
}

impl CellLines<'_> {
    fn accumulator(&self) -> DayAccumulator {
        let mut acc = DayAccumulator::new();
        for &value in self.values {
            acc.add(value & 1 == 1, u64::from(value >> 1));
        }
        for &(_, latency_us, success) in self.long {
            acc.add(success, latency_us);
        }
        acc
    }
}

/// A day as bits that order as the days do (the sign bit flipped).
#[inline]
fn day_bits(day: i32) -> u32 {
    (day as u32) ^ (1 << 31)
}

/// The day [`day_bits`] made.
#[inline]
fn day_of_bits(bits: u32) -> i32 {
    (bits ^ (1 << 31)) as i32
}

/// Sorts `keys` and `values` together by key (least significant byte first, over the bytes
/// in which the keys differ: the day changes little within a share, and customer numbers fill
/// two or three bytes). Each pass moves them into `spare`, whose lists then change places with
/// them: the lists are kept, not allocated (and faulted in) a share.
fn sort_by_key(keys: &mut Vec<u64>, values: &mut Vec<u32>, spare: &mut (Vec<u64>, Vec<u32>)) {
    let Some(&first) = keys.first() else {
        return;
    };
    let differ = keys.iter().fold(0u64, |acc, &key| acc | (key ^ first));
    let (to_keys, to_values) = spare;
    to_keys.resize(keys.len(), 0);
    to_values.resize(values.len(), 0);
    for byte in (0..8).filter(|byte| (differ >> (8 * byte)) & 0xff != 0) {
        let digit = |key: u64| (key >> (8 * byte)) as usize & 0xff;
        let mut next = [0usize; 256];
        for &key in keys.iter() {
            next[digit(key)] += 1;
        }
        let mut at = 0;
        for slot in next.iter_mut() {
            let n = *slot;
            *slot = at;
            at += n;
        }
        for (&key, &value) in keys.iter().zip(values.iter()) {
            let slot = &mut next[digit(key)];
            to_keys[*slot] = key;
            to_values[*slot] = value;
            *slot += 1;
        }
        std::mem::swap(keys, to_keys);
        std::mem::swap(values, to_values);
    }
}

/// A report's [accepted, rejected, late].
fn counts(report: &ShareReport) -> [u64; 3] {
    [report.accepted, report.rejected, report.late]
}

/// Keeps a rejected line for the rejects file, or notes that one was left out.
fn keep_reject(
    report: &mut ShareReport,
    kept: usize,
    line_in_share: u64,
    reason: RejectReason,
    line: &[u8],
) {
    if report.rejects.len() < kept {
        report.rejects.push(rejected(line_in_share, reason, line));
    } else {
        report.rejects_left_out = true;
    }
}

fn rejected(line_in_share: u64, reason: RejectReason, line: &[u8]) -> RejectedLine {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(&line[..line.len().min(REJECT_TEXT_BYTES)]).into_owned();
    RejectedLine {
        line_in_share,
        reason,
        text,
    }
}

#[cfg(test)]
mod tests;
