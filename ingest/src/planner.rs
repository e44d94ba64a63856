//! Cuts the sources into epochs: line-aligned byte ranges that every worker reads a share of.
//! In follow mode it also notices growth, new files, rotation and truncation.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstats_shared::{SourceOffset, Store};

use crate::inputs::Inputs;
use crate::metrics::IngestMetrics;
use crate::source::{
    complete_lines_end, fingerprint, fingerprint_len, io_error, same_start, unix_now, JobId,
    OpenFiles, PlannedRead, Resume, Source, SourceError, SourceId, FINGERPRINT_BYTES,
};
use crate::spool::{BatchTicket, Spool};

/// How far past the wall clock an event time may move the watermark.
pub const WATERMARK_LEAD_SECONDS: i64 = 86_400;

/// How long a file rotated away is still followed, for writers that finish a line or two into
/// the old file after the rename.
pub const ROTATION_GRACE: Duration = Duration::from_secs(2);

/// What every worker reads in one epoch: a line-aligned byte range of one source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpochPlan {
    /// The epoch (the dataflow's time).
    pub epoch: u64,
    /// The source, by id (its open handle is in [`OpenFiles`]).
    pub source: SourceId,
    /// Path of the source, for messages.
    pub path: String,
    /// The source's key in the offsets table.
    pub key: String,
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte; just after a newline, or the end of a finished file.
    pub end: u64,
    /// Records with an event time before this (Unix seconds) are late.
    pub late_before: Option<i64>,
    /// Event times after this (Unix seconds) are counted but do not move the watermark, so one
    /// line from the far future cannot make every later line late.
    pub watermark_ceiling: i64,
    /// Fingerprint of the source's first bytes to store with the offset.
    pub fingerprint: Option<Vec<u8>>,
    /// Set on the source's first epoch of this run: what was committed of it before, which
    /// the commits of its epochs continue from.
    pub first: Option<SourceStart>,
    /// The pushed batches (`--listen`) the epoch is made of, in order, each with the end of
    /// its bytes (the last one's is `end`); empty for other sources. They are committed in
    /// one transaction, and each is answered with its own counts.
    pub batches: Vec<PlannedBatch>,
}

/// A pushed batch in an epoch: where its bytes end, and who waits for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedBatch {
    /// One past its last byte (it starts where the one before ended, or at the epoch's start).
    pub end: u64,
    /// Who waits for it.
    pub ticket: BatchTicket,
}

impl EpochPlan {
    /// What the workers open to read it (see [`OpenFiles::for_plan`]).
    pub fn read(&self) -> PlannedRead<'_> {
        PlannedRead {
            source: self.source,
            path: &self.path,
            fingerprint: self.fingerprint.as_deref(),
            end: self.end,
        }
    }

    /// The batch of `plan.batches` whose bytes hold `offset`, if the epoch is made of batches.
    pub fn batch_at(&self, offset: u64) -> Option<usize> {
        if self.batches.is_empty() {
            return None;
        }
        Some(self.batches.partition_point(|b| b.end <= offset))
    }
}

/// What was committed of a source when the job opened it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceStart {
    /// Lines committed (blank ones included), for the line numbers of rejected lines.
    pub line_count: u64,
    /// Its offsets row, which the first commit replaces (see `EpochCommit::previous`).
    pub stored: SourceOffset,
}

impl EpochPlan {
    /// The part of the range worker `index` of `peers` owns: lines that *start* in it.
    pub fn share(&self, index: usize, peers: usize) -> (u64, u64) {
        let len = u128::from(self.end - self.start);
        let at = |k: usize| self.start + (len * k as u128 / peers as u128) as u64;
        (at(index), at(index + 1))
    }
}

/// A source and how far it is planned.
#[derive(Debug)]
struct Tracked {
    source: Source,
    planned_to: u64,
    /// Bytes that may be planned: the size at start (batch), the end of the last complete
    /// line (follow), or the final size of a file rotated away.
    readable_to: u64,
    /// Rotated away or truncated: nothing more will be appended to this handle.
    retired: bool,
    /// A rotated file's complete lines are still followed until then; after it, its unterminated
    /// tail too, and it is finished.
    grace_until: Option<Instant>,
    /// Standard input's spool, when this source is it: it grows until the pipe ends.
    stream: Option<Stream>,
}

/// A spool the planner follows, and how much of it was found committed.
#[derive(Debug)]
struct Stream {
    spool: Arc<Spool>,
    /// The committed offset seen at the last look: every commit before the next one has
    /// written its rejects, so the spool may be freed up to it.
    committed_seen: u64,
    /// Pushed batches taken from the spool, whose bytes end at `readable_to`, until they are
    /// planned (as one epoch).
    batches: Vec<PlannedBatch>,
}

impl Tracked {
    /// Makes the complete lines up to `size` readable; a partial last line waits.
    fn extend_to_complete_lines(&mut self, size: u64) -> Result<(), SourceError> {
        self.readable_to = complete_lines_end(&self.source.file, self.readable_to, size)
            .map_err(io_error(self.source.path.as_ref()))?;
        Ok(())
    }
}

/// Plans epochs of about `epoch_bytes` (at most 1.5 times that) over the sources, in order.
pub struct Planner {
    inputs: Inputs,
    epoch_bytes: u64,
    files: OpenFiles,
    tracked: Vec<Tracked>,
    /// Bytes planned in this run, for progress.
    planned_bytes: u64,
    /// Where each source's size is reported (see [`Planner::with_metrics`]).
    metrics: Arc<IngestMetrics>,
}

impl Planner {
    /// A planner over `sources` (already opened), reading each from its committed offset.
    pub fn new(inputs: Inputs, sources: Vec<Source>, epoch_bytes: u64, files: OpenFiles) -> Self {
        let mut planner = Self {
            inputs,
            epoch_bytes: epoch_bytes.max(1),
            files,
            tracked: Vec::new(),
            planned_bytes: 0,
            metrics: Arc::default(),
        };
        for source in sources {
            planner.track(source);
        }
        planner
    }

    /// Plans the next epochs over about `epoch_bytes` each.
    pub fn set_epoch_bytes(&mut self, epoch_bytes: u64) {
        self.epoch_bytes = epoch_bytes.max(1);
    }

    /// Reports the sources' sizes to `metrics` (the committer reports how far they are
    /// committed), from now on.
    pub fn with_metrics(mut self, metrics: Arc<IngestMetrics>) -> Self {
        for (id, tracked) in self.tracked.iter().enumerate() {
            let source = &tracked.source;
            metrics.source_opened(id, &source.path, source.offset, source.size);
        }
        self.metrics = metrics;
        self
    }

    fn track(&mut self, source: Source) -> SourceId {
        let id = self.tracked.len();
        self.metrics
            .source_opened(id, &source.path, source.offset, source.size);
        self.files.insert(id, source.file.clone());
        // Only complete lines are read, in batch mode too: a writer may be in the middle of
        // the last one.
        let readable_to =
            complete_lines_end(&source.file, source.offset, source.size).unwrap_or(source.offset);
        self.tracked.push(Tracked {
            planned_to: source.offset,
            readable_to,
            retired: false,
            grace_until: None,
            stream: None,
            source,
        });
        id
    }

    /// Adds standard input, read from `spool` until the pipe ends.
    /// Also adds the spool of pushed batches: the batches waiting when an epoch is planned are
    /// planned together, up to the epoch's size.
    pub fn track_stdin(&mut self, source: Source, spool: Arc<Spool>) {
        let id = self.track(source);
        self.tracked[id].stream = Some(Stream {
            spool,
            committed_seen: 0,
            batches: Vec::new(),
        });
    }

    /// Whether standard input may still bring lines: its pipe is open, or it holds bytes not
    /// yet planned (the spool of pushed batches is open until the job stops).
    pub fn stdin_open(&self) -> bool {
        self.tracked.iter().any(|t| {
            t.stream
                .as_ref()
                .is_some_and(|s| s.spool.ended().is_none() || t.planned_to < s.spool.spooled())
        })
    }

    /// Makes what standard input brought readable, and frees what was committed.
    fn refresh_stdin(&mut self) -> Result<(), SourceError> {
        for (id, tracked) in self.tracked.iter_mut().enumerate() {
            let Some(stream) = tracked.stream.as_mut() else {
                continue;
            };
            if let Some(Err(message)) = stream.spool.ended() {
                return Err(SourceError::Io {
                    path: tracked.source.path.clone(),
                    cause: io::Error::other(message),
                });
            }
            if !stream.spool.is_push() {
                tracked.readable_to = stream
                    .spool
                    .readable_end(tracked.readable_to)
                    .map_err(io_error(tracked.source.path.as_ref()))?;
            } else if tracked.planned_to >= tracked.readable_to && stream.batches.is_empty() {
                // The batches waiting, whole, up to an epoch's bytes (at least one).
                while let Some(next) = stream.spool.next_batch_within(
                    tracked.readable_to,
                    tracked.planned_to + self.epoch_bytes,
                    stream.batches.is_empty(),
                ) {
                    tracked.readable_to = next.end;
                    stream.batches.push(PlannedBatch {
                        end: next.end,
                        ticket: next.ticket,
                    });
                }
            }
            self.metrics.source_size(id, stream.spool.spooled());
            let committed = self.metrics.committed_to(id).unwrap_or(0);
            if committed > stream.committed_seen {
                stream.spool.release_to(stream.committed_seen);
                stream.committed_seen = committed;
            }
        }
        Ok(())
    }

    /// Bytes planned in this run, for progress.
    pub fn planned_bytes(&self) -> u64 {
        self.planned_bytes
    }

    /// Bytes known and not yet planned, for progress.
    pub fn pending_bytes(&self) -> u64 {
        self.tracked
            .iter()
            .map(|t| match &t.stream {
                // Pushed batches spooled and not planned yet.
                Some(stream) if stream.spool.is_push() => {
                    stream.spool.spooled().saturating_sub(t.planned_to)
                }
                _ => t.readable_to.saturating_sub(t.planned_to),
            })
            .sum()
    }

    /// Sources whose last bytes are an unterminated line, held until its newline arrives:
    /// (path, bytes held).
    pub fn held_tails(&self) -> Vec<(String, u64)> {
        self.tracked
            .iter()
            .filter(|t| !t.retired && t.source.size > t.readable_to)
            .map(|t| (t.source.path.clone(), t.source.size - t.readable_to))
            .collect()
    }

    /// The next epoch's range, or `None` when nothing readable is left to plan.
    pub fn next_plan(
        &mut self,
        epoch: u64,
        late_before: Option<i64>,
    ) -> Result<Option<EpochPlan>, SourceError> {
        self.refresh_stdin()?;
        for (id, tracked) in self.tracked.iter_mut().enumerate() {
            if tracked.planned_to >= tracked.readable_to {
                continue;
            }
            let limit = tracked.readable_to;
            let batches = tracked
                .stream
                .as_mut()
                .map(|s| std::mem::take(&mut s.batches))
                .unwrap_or_default();
            // A rest shorter than half an epoch joins this epoch instead of making its own:
            // every epoch costs a commit of all the rows it touches, however few its lines.
            // Pushed batches are never cut: each key is stored with its whole batch's commit.
            let tentative =
                if !batches.is_empty() || limit - tracked.planned_to <= self.epoch_bytes / 2 * 3 {
                    limit
                } else {
                    tracked.planned_to + self.epoch_bytes
                };
            let end = if tentative < limit {
                next_line_start(&tracked.source.file, tentative, limit)
                    .map_err(io_error(tracked.source.path.as_ref()))?
            } else {
                limit
            };
            // A file opened short (or empty) gets a longer fingerprint as it grows, so that a
            // rewrite of it is noticed.
            let known = fingerprint_len(&tracked.source.fingerprint).unwrap_or(0);
            if known < FINGERPRINT_BYTES && end > known {
                tracked.source.fingerprint =
                    fingerprint(&tracked.source.file, end.min(FINGERPRINT_BYTES))
                        .map_err(io_error(tracked.source.path.as_ref()))?;
            }
            let plan = EpochPlan {
                // A file rotated away keeps its own row (its key is its inode), so that the
                // next run knows how far it was read under its new name.
                fingerprint: Some(tracked.source.fingerprint.clone()),
                epoch,
                source: id,
                path: tracked.source.path.clone(),
                key: tracked.source.key.clone(),
                start: tracked.planned_to,
                end,
                late_before,
                watermark_ceiling: unix_now() + WATERMARK_LEAD_SECONDS,
                // Nothing planned yet in this run (every plan moves `planned_to` on): the
                // first plan carries where the source's commits continue from.
                first: (tracked.planned_to == tracked.source.offset).then(|| SourceStart {
                    line_count: tracked.source.line_count,
                    stored: tracked.source.stored.clone(),
                }),
                batches,
            };
            tracked.planned_to = end;
            if let Some(stream) = &tracked.stream {
                stream.spool.planned_to(end);
            }
            self.planned_bytes += plan.end - plan.start;
            return Ok(Some(plan));
        }
        Ok(None)
    }

    /// Follow mode: looks for growth, rotation, truncation and new files. Returns how many
    /// sources this poll opened (each tells the committer where it starts in its first plan).
    pub fn poll(
        &mut self,
        store: &Store,
        job: &JobId,
        shutdown: &AtomicBool,
    ) -> Result<usize, SourceError> {
        let mut truncated = Vec::new();
        let now = Instant::now();
        for (id, tracked) in self.tracked.iter_mut().enumerate() {
            // Standard input has no path to look at; `next_plan` follows its spool.
            if (tracked.retired && tracked.grace_until.is_none()) || tracked.stream.is_some() {
                continue;
            }
            let path = tracked.source.path.clone();
            let size = tracked
                .source
                .file
                .metadata()
                .map_err(io_error(path.as_ref()))?
                .len();
            self.metrics.source_size(id, size);
            if let Some(until) = tracked.grace_until {
                if now < until {
                    tracked.extend_to_complete_lines(size)?;
                } else {
                    tracked.readable_to = size.max(tracked.planned_to);
                    tracked.grace_until = None;
                    self.metrics.source_retired(id, tracked.readable_to);
                }
                continue;
            }
            let same_file =
                std::fs::metadata(&path).is_ok_and(|m| (m.dev(), m.ino()) == tracked.source.inode);
            if !same_file {
                // Renamed or removed: finish the old file; the new one is found below.
                log::info!("{path}: rotated; finishing the old file");
                tracked.retired = true;
                tracked.grace_until = Some(now + ROTATION_GRACE);
                tracked.extend_to_complete_lines(size)?;
            } else if size < tracked.planned_to
                || !same_start(&tracked.source.file, size, &tracked.source.fingerprint)
            {
                log::warn!("{path}: truncated or rewritten; reading it again from the start");
                tracked.retired = true;
                tracked.readable_to = tracked.planned_to;
                self.metrics.source_retired(id, tracked.readable_to);
                truncated.push(path);
            } else if size > tracked.readable_to {
                tracked.extend_to_complete_lines(size)?;
            }
        }
        let mut opened = 0;
        for path in self.inputs.expand_present() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let inode = (meta.dev(), meta.ino());
            let canonical = std::fs::canonicalize(&path)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let known = self
                .tracked
                .iter()
                .any(|t| (!t.retired && t.source.path == canonical) || t.source.inode == inode);
            let is_truncated = truncated.contains(&canonical);
            if known && !is_truncated {
                continue;
            }
            let resume = if is_truncated {
                Resume::FromStart
            } else {
                Resume::FromCommitted
            };
            let source = Source::open(&path, store, job, resume, shutdown)?;
            log::info!("{}: following from byte {}", source.path, source.offset);
            self.track(source);
            opened += 1;
        }
        Ok(opened)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    fn source_over(content: &[u8]) -> (tempfile::NamedTempFile, Source) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        let handle = File::open(file.path()).unwrap();
        let meta = handle.metadata().unwrap();
        let source = Source {
            path: file.path().display().to_string(),
            key: String::new(),
            fingerprint: Vec::new(),
            offset: 0,
            line_count: 0,
            file: Arc::new(handle),
            inode: (meta.dev(), meta.ino()),
            size: content.len() as u64,
            stored: logstats_shared::SourceOffset {
                source: String::new(),
                fingerprint: Vec::new(),
                byte_offset: 0,
                line_count: 0,
            },
        };
        (file, source)
    }

    #[test]
    fn planner_cuts_after_newlines() {
        let line = b"2024-10-10 12:00:00 cust_1 /p 200 0.100\n";
        let content: Vec<u8> = line.repeat(100);
        let (_file, source) = source_over(&content);
        let mut planner = Planner::new(
            Inputs::new(Vec::new(), None),
            vec![source],
            1000,
            OpenFiles::default(),
        );
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
    fn only_a_sources_first_plan_says_where_its_commits_continue_from() {
        let line = b"2024-10-10 12:00:00 cust_1 /p 200 0.100\n";
        let (_file, mut source) = source_over(&line.repeat(10));
        source.line_count = 7;
        source.stored.byte_offset = 0;
        let mut planner = Planner::new(
            Inputs::new(Vec::new(), None),
            vec![source.clone()],
            line.len() as u64,
            OpenFiles::default(),
        );
        let first = planner.next_plan(0, None).unwrap().unwrap();
        assert_eq!(
            first.first,
            Some(SourceStart {
                line_count: 7,
                stored: source.stored.clone()
            })
        );
        let second = planner.next_plan(1, None).unwrap().unwrap();
        assert_eq!(second.first, None);
    }

    #[test]
    fn a_short_rest_joins_the_last_epoch() {
        let line = b"2024-10-10 12:00:00 cust_1 /p 200 0.100\n";
        let content: Vec<u8> = line.repeat(100);
        let (_file, source) = source_over(&content);
        let mut planner = Planner::new(
            Inputs::new(Vec::new(), None),
            vec![source],
            1300,
            OpenFiles::default(),
        );
        let mut ranges = Vec::new();
        while let Some(plan) = planner.next_plan(ranges.len() as u64, None).unwrap() {
            ranges.push((plan.start, plan.end));
        }
        // Not 1320, 2640, 3960 and a last epoch of one line.
        assert_eq!(ranges, [(0, 1320), (1320, 2640), (2640, 4000)]);
    }

    #[test]
    fn a_partial_last_line_is_held() {
        let content = b"2024-10-10 12:00:00 cust_1 /p 200 0.100\n2024-10-10 12:00:01 cust";
        let (_file, source) = source_over(content);
        let mut planner = Planner::new(
            Inputs::new(Vec::new(), None),
            vec![source],
            1 << 20,
            OpenFiles::default(),
        );
        let plan = planner.next_plan(0, None).unwrap().unwrap();
        assert_eq!((plan.start, plan.end), (0, 40));
        assert_eq!(planner.next_plan(1, None).unwrap(), None);
        assert_eq!(planner.held_tails()[0].1, content.len() as u64 - 40);
    }

    #[test]
    fn a_short_fingerprint_grows_with_the_file() {
        let (_file, mut source) = source_over(b"");
        source.fingerprint = fingerprint(&source.file, 0).unwrap();
        let mut planner = Planner::new(
            Inputs::new(Vec::new(), None),
            vec![source],
            1 << 20,
            OpenFiles::default(),
        );
        let line = b"2024-10-10 12:00:00 cust_1 /p 200 0.100\n";
        std::fs::OpenOptions::new()
            .append(true)
            .open(_file.path())
            .unwrap()
            .write_all(line)
            .unwrap();
        planner.tracked[0].readable_to = line.len() as u64;
        let plan = planner.next_plan(0, None).unwrap().unwrap();
        let stored = plan.fingerprint.expect("fingerprint");
        assert_eq!(fingerprint_len(&stored), Some(line.len() as u64));
    }
}
