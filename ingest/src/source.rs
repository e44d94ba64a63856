//! Which bytes to read: source files, their fingerprints and committed offsets, the plan of
//! each epoch, and reading one worker's share of an epoch into per-(customer, day) deltas.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use logstats_shared::record::{is_blank, parse_line, RejectReason, MAX_LINE_BYTES};
use logstats_shared::{DayAccumulator, SourceOffset, StorageError, Store};

/// Bytes of a file's start that identify it (a rotated or truncated file changes them).
pub const FINGERPRINT_BYTES: u64 = 256;

/// Longest part of a rejected line kept for the rejects file.
const REJECT_TEXT_BYTES: usize = 200;

/// A customer and a UTC day (days since 1970-01-01): the key stats are merged by.
pub type CustomerDay = (String, i32);

/// Pre-aggregated deltas of one share or one epoch, one per (customer, day).
pub type Deltas = Vec<(CustomerDay, DayAccumulator)>;

/// Errors while finding or opening sources.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The stored offsets could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Expands the command line's paths: files as given, directories to their `*.log` files (sorted).
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(io_error(path))?;
        if meta.is_dir() {
            let mut logs: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io_error(path))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|ext| ext == "log") && p.is_file())
                .collect();
            logs.sort();
            files.extend(logs);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// FNV-1a, enough to tell files apart by their first bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Fingerprint of a file's first `len` bytes: the length (u16 LE) then the FNV-1a hash (u64 LE).
fn fingerprint(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; len as usize];
    file.read_exact_at(&mut head, 0)?;
    let mut out = (len as u16).to_le_bytes().to_vec();
    out.extend_from_slice(&fnv1a(&head).to_le_bytes());
    Ok(out)
}

fn fingerprint_len(stored: &[u8]) -> Option<u64> {
    let raw: [u8; 2] = stored.get(..2)?.try_into().ok()?;
    Some(u64::from(u16::from_le_bytes(raw)))
}

/// One source file as the job will read it.
#[derive(Debug, Clone)]
pub struct Source {
    /// Canonical path, also the source's key in the offsets table.
    pub path: String,
    /// Fingerprint of the first bytes, stored with the offset.
    pub fingerprint: Vec<u8>,
    /// Committed position to resume from.
    pub offset: u64,
    /// Lines before `offset`, for line numbers.
    pub line_count: u64,
    /// File size when the job looked.
    pub size: u64,
}

impl Source {
    /// Opens `path`, and resumes from its committed offset when the stored fingerprint still
    /// matches the file's first bytes; otherwise (new, rotated or truncated file) from the start.
    pub fn open(path: &Path, store: &Store) -> Result<Source, SourceError> {
        let canonical = std::fs::canonicalize(path).map_err(io_error(path))?;
        let file = File::open(&canonical).map_err(io_error(path))?;
        let size = file.metadata().map_err(io_error(path))?.len();
        let key = canonical.display().to_string();
        let current = fingerprint(&file, size.min(FINGERPRINT_BYTES)).map_err(io_error(path))?;
        let stored = store.source_offset(&key)?;
        let resume = stored.filter(|s| {
            let same_start = fingerprint_len(&s.fingerprint)
                .filter(|&len| len <= size)
                .and_then(|len| fingerprint(&file, len).ok())
                .is_some_and(|fp| fp == s.fingerprint);
            same_start && s.byte_offset <= size
        });
        Ok(Source {
            path: key,
            fingerprint: current,
            offset: resume.as_ref().map_or(0, |s| s.byte_offset),
            line_count: resume.as_ref().map_or(0, |s| s.line_count),
            size,
        })
    }

    /// The offset row to store once everything up to `offset` (holding `line_count` lines) is
    /// committed.
    pub fn committed(&self, offset: u64, line_count: u64) -> SourceOffset {
        SourceOffset {
            source: self.path.clone(),
            fingerprint: self.fingerprint.clone(),
            byte_offset: offset,
            line_count,
        }
    }
}

/// What every worker reads in one epoch: a line-aligned byte range of one source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpochPlan {
    /// The epoch (the dataflow's time).
    pub epoch: u64,
    /// Index of the source in the job's source list.
    pub source: usize,
    /// Path of the source.
    pub path: String,
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte; just after a newline, or the end of the file.
    pub end: u64,
    /// Records with an event time before this (Unix seconds) are late.
    pub late_before: Option<i64>,
}

impl EpochPlan {
    /// The part of the range worker `index` of `peers` owns: lines that *start* in it.
    pub fn share(&self, index: usize, peers: usize) -> (u64, u64) {
        let len = u128::from(self.end - self.start);
        let at = |k: usize| self.start + (len * k as u128 / peers as u128) as u64;
        (at(index), at(index + 1))
    }
}

/// Cuts sources into epochs of about `epoch_bytes`, each ending just after a newline.
pub struct Planner {
    sources: Vec<Source>,
    epoch_bytes: u64,
    current: usize,
    next_start: u64,
}

impl Planner {
    /// Plans `sources` in order, each from its committed offset up to its size when opened.
    pub fn new(sources: Vec<Source>, epoch_bytes: u64) -> Self {
        let next_start = sources.first().map_or(0, |s| s.offset);
        Self {
            sources,
            epoch_bytes: epoch_bytes.max(1),
            current: 0,
            next_start,
        }
    }

    /// The sources being planned.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The next epoch's range, or `None` when every source is planned to its end.
    pub fn next_plan(
        &mut self,
        epoch: u64,
        late_before: Option<i64>,
    ) -> Result<Option<EpochPlan>, SourceError> {
        loop {
            let Some(source) = self.sources.get(self.current) else {
                return Ok(None);
            };
            if self.next_start >= source.size {
                self.current += 1;
                self.next_start = self.sources.get(self.current).map_or(0, |s| s.offset);
                continue;
            }
            let tentative = (self.next_start + self.epoch_bytes).min(source.size);
            let end = if tentative < source.size {
                let path = Path::new(&source.path);
                let file = File::open(path).map_err(io_error(path))?;
                next_line_start(&file, tentative, source.size).map_err(io_error(path))?
            } else {
                source.size
            };
            let plan = EpochPlan {
                epoch,
                source: self.current,
                path: source.path.clone(),
                start: self.next_start,
                end,
                late_before,
            };
            self.next_start = end;
            return Ok(Some(plan));
        }
    }

    /// Bytes left to plan, for progress.
    pub fn total_bytes(&self) -> u64 {
        self.sources
            .iter()
            .map(|s| s.size - s.offset.min(s.size))
            .sum()
    }
}

/// The position just after the first newline at or after `from - 1`, or `size` when none.
fn next_line_start(file: &File, from: u64, size: u64) -> io::Result<u64> {
    let mut pos = from.saturating_sub(1);
    let mut buf = vec![0u8; 64 * 1024];
    while pos < size {
        let want = buf.len().min((size - pos) as usize);
        file.read_exact_at(&mut buf[..want], pos)?;
        if let Some(i) = memchr::memchr(b'\n', &buf[..want]) {
            return Ok(pos + i as u64 + 1);
        }
        pos += want as u64;
    }
    Ok(size)
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
    /// The rejected and late lines.
    pub rejects: Vec<RejectedLine>,
    /// Set when the share could not be read.
    pub error: Option<String>,
}

/// Per-worker reading state kept across epochs: the read buffer and the customer interner.
#[derive(Default)]
pub struct ShareReader {
    buffer: Vec<u8>,
    customers: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    days: HashMap<(u32, i32), DayAccumulator>,
}

impl ShareReader {
    /// Reads and parses worker `index`'s share of `plan`; returns its deltas and report.
    pub fn read(&mut self, plan: &EpochPlan, index: usize, peers: usize) -> (Deltas, ShareReport) {
        let mut report = ShareReport {
            epoch: plan.epoch,
            worker: index,
            ..ShareReport::default()
        };
        if let Err(e) = self.parse_share(plan, index, peers, &mut report) {
            report.error = Some(format!("reading {}: {e}", plan.path));
            self.days.clear();
            return (Vec::new(), report);
        }
        let deltas = self
            .days
            .drain()
            .map(|((customer, day), mut acc)| {
                acc.normalize();
                ((self.names[customer as usize].to_string(), day), acc)
            })
            .collect();
        // Keep memory bounded by one epoch's customers, not by every customer ever seen.
        if self.names.len() > 100_000 {
            self.customers.clear();
            self.names.clear();
        }
        (deltas, report)
    }

    fn parse_share(
        &mut self,
        plan: &EpochPlan,
        index: usize,
        peers: usize,
        report: &mut ShareReport,
    ) -> io::Result<()> {
        let (share_start, share_end) = plan.share(index, peers);
        if share_start == share_end {
            return Ok(());
        }
        // Read from one byte before the share (to see whether a line starts at its first
        // byte) to far enough past it to finish its last line, or to prove that line too long.
        let read_from = share_start.saturating_sub(1).max(plan.start);
        let read_to = (share_end + MAX_LINE_BYTES as u64 + 2).min(plan.end);
        self.buffer.resize((read_to - read_from) as usize, 0);
        File::open(&plan.path)?.read_exact_at(&mut self.buffer, read_from)?;
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
        while pos < owned_end {
            let (line, next) = match memchr::memchr(b'\n', &buf[pos..]) {
                Some(i) => (&buf[pos..pos + i], pos + i + 1),
                None if reaches_range_end => (&buf[pos..], buf.len()),
                // No newline within MAX_LINE_BYTES past the share: the line is too long.
                None => (&buf[pos..], usize::MAX),
            };
            let line_in_share = report.lines_total;
            report.lines_total += 1;
            if next == usize::MAX {
                report.lines += 1;
                report.rejected += 1;
                report
                    .rejects
                    .push(rejected(line_in_share, RejectReason::TooLong, line));
                break;
            }
            pos = next;
            if is_blank(line) {
                continue;
            }
            report.lines += 1;
            match parse_line(line) {
                Ok(record) => {
                    let event_time = record.event_time();
                    if plan.late_before.is_some_and(|limit| event_time < limit) {
                        report.late += 1;
                        report
                            .rejects
                            .push(rejected(line_in_share, RejectReason::Late, line));
                        continue;
                    }
                    report.accepted += 1;
                    report.max_event_time = report.max_event_time.max(Some(event_time));
                    let customer = match self.customers.get(record.customer) {
                        Some(&id) => id,
                        None => {
                            let id = self.names.len() as u32;
                            self.names.push(record.customer.into());
                            self.customers.insert(record.customer.into(), id);
                            id
                        }
                    };
                    self.days
                        .entry((customer, record.day))
                        .or_default()
                        .add(record.is_success(), record.latency_us);
                }
                Err(reason) => {
                    report.rejected += 1;
                    report.rejects.push(rejected(line_in_share, reason, line));
                }
            }
        }
        Ok(())
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
mod tests {
    use super::*;
    use std::io::Write;

    fn plan_for(path: &Path, start: u64, end: u64) -> EpochPlan {
        EpochPlan {
            epoch: 0,
            source: 0,
            path: path.display().to_string(),
            start,
            end,
            late_before: None,
        }
    }

    fn write(content: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        file
    }

    /// Every line is read by exactly one worker, whatever the split.
    #[test]
    fn shares_cover_every_line_once() {
        let mut content = Vec::new();
        for i in 0..500 {
            if i % 50 == 7 {
                content.extend_from_slice(b"\n");
            }
            writeln!(
                content,
                "2024-10-10 12:00:{:02} cust_{} /p 200 0.{:03}",
                i % 60,
                i % 7,
                i
            )
            .unwrap();
        }
        content.extend_from_slice(b"not a line\n");
        let file = write(&content);
        for peers in 1..=5 {
            let plan = plan_for(file.path(), 0, content.len() as u64);
            let mut totals = ShareReport::default();
            let mut requests = 0;
            for index in 0..peers {
                let mut reader = ShareReader::default();
                let (deltas, report) = reader.read(&plan, index, peers);
                assert_eq!(report.error, None);
                totals.lines_total += report.lines_total;
                totals.lines += report.lines;
                totals.accepted += report.accepted;
                totals.rejected += report.rejected;
                requests += deltas.iter().map(|(_, acc)| acc.total()).sum::<u64>();
            }
            assert_eq!(totals.lines_total, 511, "peers={peers}");
            assert_eq!(totals.lines, 501);
            assert_eq!(totals.accepted, 500);
            assert_eq!(totals.rejected, 1);
            assert_eq!(requests, 500);
        }
    }

    #[test]
    fn planner_cuts_after_newlines() {
        let line = b"2024-10-10 12:00:00 cust_1 /p 200 0.100\n";
        let content: Vec<u8> = line.repeat(100);
        let file = write(&content);
        let source = Source {
            path: file.path().display().to_string(),
            fingerprint: Vec::new(),
            offset: 0,
            line_count: 0,
            size: content.len() as u64,
        };
        let mut planner = Planner::new(vec![source], 1000);
        let mut start = 0;
        let mut epoch = 0;
        while let Some(plan) = planner.next_plan(epoch, None).unwrap() {
            assert_eq!(plan.start, start);
            assert_eq!(plan.end % line.len() as u64, 0, "{plan:?}");
            start = plan.end;
            epoch += 1;
        }
        assert_eq!(start, content.len() as u64);
        assert_eq!(epoch, 4);
    }

    #[test]
    fn overlong_lines_are_rejected_in_bounded_memory() {
        let mut content = b"2024-10-10 12:00:00 cust_1 /p 200 0.100\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE_BYTES));
        content.extend_from_slice(b"\n2024-10-10 12:00:01 cust_2 /p 500 0.200\n");
        let file = write(&content);
        for peers in 1..=4 {
            let plan = plan_for(file.path(), 0, content.len() as u64);
            let (mut accepted, mut too_long) = (0, 0);
            for index in 0..peers {
                let (_, report) = ShareReader::default().read(&plan, index, peers);
                accepted += report.accepted;
                too_long += report
                    .rejects
                    .iter()
                    .filter(|r| r.reason == RejectReason::TooLong)
                    .count();
            }
            assert_eq!((accepted, too_long), (2, 1), "peers={peers}");
        }
    }

    #[test]
    fn late_records_are_counted_not_merged() {
        let content = b"2024-10-10 00:00:00 a /p 200 1\n2024-10-01 00:00:00 a /p 200 1\n";
        let file = write(content);
        let mut plan = plan_for(file.path(), 0, content.len() as u64);
        plan.late_before = Some(1_728_000_000); // 2024-10-04
        let (deltas, report) = ShareReader::default().read(&plan, 0, 1);
        assert_eq!((report.accepted, report.late), (1, 1));
        assert_eq!(report.rejects[0].line_in_share, 1);
        assert_eq!(deltas.len(), 1);
        assert_eq!(report.max_event_time, Some(1_728_518_400));
    }
}
