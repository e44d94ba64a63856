//! Spools: standard input (`-` on the command line) and the batches pushed over HTTP
//! (`--listen`) as sources. The workers read sources by offset, from any thread, so what comes
//! through a pipe or a request is appended to a spool file: an unlinked file in the temporary
//! directory that the planner reads like a file that grows. For standard input a thread copies
//! the pipe, at most [`SPOOL_AHEAD_BYTES`] ahead of what was planned; pushed batches are
//! appended whole by the HTTP handlers, and each is planned as an epoch of its own (see
//! `push.rs`). What every commit has read is punched out of the file, so a spool holds only
//! the bytes in flight.
//!
//! A pipe or a request cannot be read again: a spool's offset is stored (under a key of this
//! run, so that a commit retried after a lost reply is not applied twice), but no later run
//! resumes from it. A pushed batch is answered only once committed; what a client was not
//! answered it sends again.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use logstats_shared::{SourceOffset, Store};
use parking_lot::Mutex;
use rustix::fs::FallocateFlags;

use crate::source::{
    acquire_lease, complete_lines_end, fingerprint, JobId, Source, SourceError, FINGERPRINT_BYTES,
};

/// How far the copy may run ahead of what was planned, in bytes.
pub const SPOOL_AHEAD_BYTES: u64 = 64 << 20;

/// Bytes read from the pipe at a time.
const CHUNK_BYTES: usize = 64 << 10;

/// The name standard input goes by in messages and the rejects file.
pub const STDIN_NAME: &str = "-";

/// Whether a command-line path names standard input.
pub fn is_stdin(path: &std::path::Path) -> bool {
    path.as_os_str() == STDIN_NAME
}

/// The name pushed batches go by in messages and the rejects file.
pub const PUSH_NAME: &str = "push";

/// A pushed batch, as its epoch carries it to the committer, which answers the request that
/// waits for it (see `push.rs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchTicket {
    /// The batch, among this run's.
    pub id: u64,
    /// Its `Idempotency-Key`, stored with its commit.
    pub key: Option<String>,
    /// Lines the HTTP handler rejected before spooling the batch (customers outside the
    /// pushing token's scope): counted with the batch's own rejected lines.
    pub rejected_before: u64,
}

/// A pushed batch appended to the spool and not yet planned.
#[derive(Debug)]
pub struct QueuedBatch {
    /// One past its last byte in the spool (it starts where the one before ended).
    pub end: u64,
    /// Who waits for it.
    pub ticket: BatchTicket,
}

/// Standard input copied into a spool file by a thread of its own, or the pushed batches
/// appended to one.
#[derive(Debug)]
pub struct Spool {
    /// Messages and the rejects file name it by this: `-` or `push`.
    name: &'static str,
    /// Pushed batches appended and not yet planned, in spool order; `None` for standard input.
    batches: Option<Mutex<VecDeque<QueuedBatch>>>,
    file: Arc<File>,
    /// Bytes copied so far.
    spooled: AtomicU64,
    /// Bytes the planner has planned; the copy waits while it is far ahead of them.
    planned: AtomicU64,
    /// The pipe ended (or failed: see `error`).
    ended: AtomicBool,
    error: Mutex<Option<io::Error>>,
}

impl Spool {
    /// Starts copying `input` (standard input) into a new spool file in `dir`.
    pub fn start(input: impl Read + Send + 'static, dir: PathBuf) -> io::Result<Arc<Spool>> {
        let file = Arc::new(spool_file(&dir)?);
        let spool = Arc::new(Spool {
            name: STDIN_NAME,
            batches: None,
            file,
            spooled: AtomicU64::new(0),
            planned: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            error: Mutex::new(None),
        });
        let copier = Arc::clone(&spool);
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || copier.copy(input))?;
        Ok(spool)
    }

    /// A new spool in `dir` for pushed batches ([`Spool::append_batch`]).
    pub fn for_pushes(dir: &std::path::Path) -> io::Result<Arc<Spool>> {
        Ok(Arc::new(Spool {
            name: PUSH_NAME,
            batches: Some(Mutex::new(VecDeque::new())),
            file: Arc::new(spool_file(dir)?),
            spooled: AtomicU64::new(0),
            planned: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            error: Mutex::new(None),
        }))
    }

    /// Appends a pushed batch: `lines`, which end with a newline, planned as one epoch.
    pub fn append_batch(&self, lines: &[u8], ticket: BatchTicket) -> io::Result<()> {
        let Some(batches) = &self.batches else {
            return Err(io::Error::other("not a spool of pushed batches"));
        };
        // Held while writing: batches lie in the file in the order they are queued.
        let mut batches = batches.lock();
        (&*self.file).write_all(lines)?;
        let end = self.spooled.fetch_add(lines.len() as u64, Ordering::AcqRel) + lines.len() as u64;
        batches.push_back(QueuedBatch { end, ticket });
        Ok(())
    }

    /// The next pushed batch to plan, which starts at `from`: when it ends by `limit`, or
    /// whatever its size when `first` (an epoch holds at least one batch).
    pub fn next_batch_within(&self, from: u64, limit: u64, first: bool) -> Option<QueuedBatch> {
        let mut batches = self.batches.as_ref()?.lock();
        let next = batches.front()?;
        debug_assert!(next.end > from);
        if !first && next.end > limit {
            return None;
        }
        batches.pop_front()
    }

    /// Whether this spool takes pushed batches (else it copies standard input).
    pub fn is_push(&self) -> bool {
        self.batches.is_some()
    }

    /// Bytes appended and not yet committed, given what was committed.
    pub fn backlog(&self, committed: u64) -> u64 {
        self.spooled().saturating_sub(committed)
    }

    fn copy(&self, mut input: impl Read) {
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut out = &*self.file;
        let outcome = loop {
            while self.spooled() > self.planned.load(Ordering::Acquire) + SPOOL_AHEAD_BYTES {
                std::thread::sleep(Duration::from_millis(5));
            }
            let read = match input.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            if let Err(e) = out.write_all(&buffer[..read]) {
                break Err(e);
            }
            self.spooled.fetch_add(read as u64, Ordering::Release);
        };
        if let Err(e) = outcome {
            *self.error.lock() = Some(e);
        }
        self.ended.store(true, Ordering::Release);
    }

    /// Bytes copied so far: the spool file's readable size.
    pub fn spooled(&self) -> u64 {
        self.spooled.load(Ordering::Acquire)
    }

    /// Whether the pipe ended, with its error if reading it failed; `None` while it is open.
    pub fn ended(&self) -> Option<Result<(), String>> {
        if !self.ended.load(Ordering::Acquire) {
            return None;
        }
        Some(match self.error.lock().as_ref() {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        })
    }

    /// The planner planned up to `offset`.
    pub fn planned_to(&self, offset: u64) {
        self.planned.store(offset, Ordering::Release);
    }

    /// Frees the spool's bytes before `offset` (read and committed, rejects written), except
    /// the first [`FINGERPRINT_BYTES`]: they read as zeros from then on, and offsets do not move.
    pub fn release_to(&self, offset: u64) {
        let len = offset.saturating_sub(FINGERPRINT_BYTES);
        if len == 0 {
            return;
        }
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        if let Err(e) = rustix::fs::fallocate(&*self.file, flags, FINGERPRINT_BYTES, len) {
            log::debug!("stdin: cannot free the spool's first {offset} bytes: {e}");
        }
    }

    /// Where standard input's readable lines end, planned from `from` on: every byte once the
    /// pipe ended (its last line needs no newline then), else up to the last complete line.
    pub fn readable_end(&self, from: u64) -> io::Result<u64> {
        let ended = self.ended().is_some();
        let size = self.spooled();
        if ended {
            return Ok(size);
        }
        complete_lines_end(&self.file, from, size)
    }

    /// The source that reads the spool, with its lease: a key of this run alone, so that no
    /// later run resumes from it.
    pub fn source(
        &self,
        store: &Store,
        job: &JobId,
        shutdown: &AtomicBool,
    ) -> Result<Source, SourceError> {
        let name = self.name;
        let meta = self.file.metadata().map_err(|cause| SourceError::Io {
            path: name.to_string(),
            cause,
        })?;
        let prefix = if self.is_push() { "push" } else { "stdin" };
        let key = format!("{prefix}:{}", job.as_str());
        let empty = fingerprint(&self.file, 0).map_err(|cause| SourceError::Io {
            path: name.to_string(),
            cause,
        })?;
        acquire_lease(store, &key, name, &empty, job, shutdown)?;
        Ok(Source {
            path: name.to_string(),
            key: key.clone(),
            fingerprint: empty.clone(),
            offset: 0,
            line_count: 0,
            file: Arc::clone(&self.file),
            inode: (meta.dev(), meta.ino()),
            size: 0,
            stored: SourceOffset {
                source: key,
                fingerprint: empty,
                byte_offset: 0,
                line_count: 0,
            },
        })
    }
}

/// A new file in `dir`, readable and writable by this process alone, already unlinked: it
/// goes away with the process, however it ends.
fn spool_file(dir: &std::path::Path) -> io::Result<File> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = dir.join(format!(".logstats-stdin-{}-{nanos}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    /// The copy follows the pipe to its end, and what is released reads as zeros without
    /// moving the rest.
    #[test]
    fn the_spool_copies_the_pipe_and_frees_what_was_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let spool =
            Spool::start(io::Cursor::new(content.clone()), dir.path().into()).expect("spool");
        while spool.ended().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(spool.ended(), Some(Ok(())));
        assert_eq!(spool.spooled(), content.len() as u64);
        // Unlinked: nothing is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
        spool.release_to(131_072);
        let mut read = vec![0u8; content.len()];
        spool.file.read_exact_at(&mut read, 0).expect("read");
        assert_eq!(read[..256], content[..256]);
        assert!(read[256..131_072].iter().all(|&b| b == 0));
        assert_eq!(read[131_072..], content[131_072..]);
    }
}
