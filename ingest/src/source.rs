//! Which file is this, and where do we resume: source files, their fingerprints, their leases
//! and committed offsets, and the open handles the workers read through.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logstats_shared::record::LineParser;
use logstats_shared::{LeaseOutcome, SourceOffset, StorageError, Store};
use parking_lot::Mutex;

use crate::inputs::{file_id, file_kind, FileId};

/// Bytes of a file's start that identify it (a rotated or truncated file changes them).
pub const FINGERPRINT_BYTES: u64 = 256;

/// How long a lease lasts unless renewed; commits and the follow loop renew it.
pub const LEASE_SECONDS: i64 = 30;

/// Index of a source in the job's list; new files and rotated files get new ids.
pub type SourceId = usize;

/// Errors while finding or opening sources.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error (in the message, not repeated as a source).
        cause: io::Error,
    },
    /// The stored offsets could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A FIFO, device, socket or pseudo-file: opening or reading it could block forever or
    /// never end.
    #[error("cannot read {path}: not a regular file ({kind})")]
    NotRegular {
        /// The path.
        path: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// Stopped by a signal while waiting for a lease.
    #[error("stopped while waiting for the lease on {0}")]
    Interrupted(String),
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SourceError + '_ {
    move |cause| SourceError::Io {
        path: path.display().to_string(),
        cause,
    }
}

/// A source's key in the offsets table: its device and inode. A file keeps its committed
/// offset under any name (a hard link, `d/../d/a.log`, a rename by rotation, a name that is not
/// UTF-8); the fingerprint stored with it tells a reused inode from the file it had.
pub fn source_key(id: FileId) -> String {
    format!("inode:{}:{}", id.0, id.1)
}

/// The key [`source_key`] gives the file at `path`.
pub fn source_key_of(path: &Path) -> io::Result<String> {
    std::fs::metadata(path).map(|m| source_key(file_id(&m)))
}

/// FNV-1a 64, enough to tell files apart by their first bytes. Fingerprints are stored, so the
/// algorithm must never change (a test pins it to FNV-1a's published values).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut hasher, bytes);
    std::hash::Hasher::finish(&hasher)
}

/// Fingerprint of a file's first `len` bytes: the length (u16 LE) then the FNV-1a hash (u64 LE).
pub(crate) fn fingerprint(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; len as usize];
    file.read_exact_at(&mut head, 0)?;
    let mut out = (len as u16).to_le_bytes().to_vec();
    out.extend_from_slice(&fnv1a(&head).to_le_bytes());
    Ok(out)
}

pub(crate) fn fingerprint_len(stored: &[u8]) -> Option<u64> {
    let raw: [u8; 2] = stored.get(..2)?.try_into().ok()?;
    Some(u64::from(u16::from_le_bytes(raw)))
}

/// Whether `file` still starts with the bytes `stored` fingerprinted.
pub(crate) fn same_start(file: &File, size: u64, stored: &[u8]) -> bool {
    fingerprint_len(stored)
        .filter(|&len| len <= size)
        .and_then(|len| fingerprint(file, len).ok())
        .is_some_and(|fp| fp == stored)
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// This job's identity in the lease table: host, process id and start time.
#[derive(Debug, Clone)]
pub struct JobId {
    id: String,
    host: String,
}

impl JobId {
    /// The id of the current process.
    pub fn current() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            id: format!("{host}:{}:{nanos}", std::process::id()),
            host,
        }
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Whether the holder of a lease is a process of this host that no longer runs: a job
    /// killed with SIGKILL never released its leases, and its restart should not wait them out.
    pub fn holder_is_gone(&self, holder: &str) -> bool {
        let mut parts = holder.split(':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
            return false;
        };
        // A holder with our own pid that is not us is an earlier incarnation (a container
        // restarted as pid 1, say): the pid is ours now, so that process is gone.
        host == self.host
            && holder != self.id
            && pid.parse::<u32>().is_ok_and(|pid| {
                pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists()
            })
    }
}

/// Open files shared by the workers of this process, by source id, and how their lines are
/// parsed. Reading through the handle keeps reading the same file after it is renamed away by
/// rotation.
#[derive(Debug, Clone, Default)]
pub struct OpenFiles {
    files: Arc<Mutex<HashMap<SourceId, Arc<File>>>>,
    /// Set in a cluster process other than 0 (its index): it opens each source itself, by the
    /// path in the plan, and checks that it is the file process 0 planned.
    by_path_in: Option<usize>,
    /// The format of every source's lines.
    parser: Arc<LineParser>,
}

impl OpenFiles {
    /// These files, their lines read by `parser`.
    pub fn parsed_by(self, parser: Arc<LineParser>) -> Self {
        Self { parser, ..self }
    }

    /// How the sources' lines are parsed.
    pub fn parser(&self) -> &Arc<LineParser> {
        &self.parser
    }

    /// The files of cluster process `process` (not 0), opened by path as plans name them.
    pub fn by_path(process: usize) -> Self {
        Self {
            by_path_in: Some(process),
            ..Self::default()
        }
    }

    /// Registers the handle of source `id`.
    pub fn insert(&self, id: SourceId, file: Arc<File>) {
        self.files.lock().insert(id, file);
    }

    /// The handle of source `id`.
    pub fn get(&self, id: SourceId) -> Option<Arc<File>> {
        self.files.lock().get(&id).cloned()
    }

    /// The handle of the source `plan` reads; in a cluster process other than 0, opened on
    /// first use and checked to hold the planned bytes.
    pub fn for_plan(&self, plan: &crate::planner::EpochPlan) -> io::Result<Arc<File>> {
        let Some(process) = self.by_path_in else {
            return self.get(plan.source).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "source is not open in this process",
                )
            });
        };
        let file = match self.get(plan.source) {
            Some(file) => Ok(file),
            None => crate::cluster::reader::open_planned(plan, process).inspect(|file| {
                self.insert(plan.source, Arc::clone(file));
            }),
        };
        file.and_then(|file| {
            crate::cluster::reader::check_length(&file, plan, process)?;
            Ok(file)
        })
        // Process 0 fails the job with this error; say it here too.
        .inspect_err(|e| log::error!("{}: {e}", plan.path))
    }
}

/// One source file as the job reads it.
#[derive(Debug, Clone)]
pub struct Source {
    /// Canonical path, for messages and the rejects file.
    pub path: String,
    /// The source's key in the offsets table: see [`source_key`].
    pub key: String,
    /// Fingerprint of the first bytes, stored with the offset.
    pub fingerprint: Vec<u8>,
    /// Committed position to resume from.
    pub offset: u64,
    /// Lines before `offset`, for line numbers.
    pub line_count: u64,
    /// The open file.
    pub file: Arc<File>,
    /// (device, inode) of the open file, to notice rotation.
    pub inode: (u64, u64),
    /// File size when opened.
    pub size: u64,
    /// The offsets row stored under `key` when the source was opened (a new source gets one at
    /// offset 0): what its first commit expects to replace.
    pub stored: SourceOffset,
}

/// How [`Source::open`] treats a committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Resume from the stored offset when the file still starts with the same bytes.
    FromCommitted,
    /// Read from the start (the file was just seen being truncated).
    FromStart,
}

impl Source {
    /// Opens `path` (a regular file only) and takes the lease of its key (device and inode)
    /// for `job`, waiting (with a message) while another live job holds it. Resumes from the
    /// committed offset when the stored fingerprint still matches the file's first bytes, also
    /// one committed under an older key (the path, or another device number); a new, rewritten
    /// or truncated file is read from its start.
    pub fn open(
        path: &Path,
        store: &Store,
        job: &JobId,
        resume: Resume,
        shutdown: &AtomicBool,
    ) -> Result<Source, SourceError> {
        let canonical = std::fs::canonicalize(path).map_err(io_error(path))?;
        let file = open_regular(&canonical).map_err(|e| match e {
            OpenError::Io(cause) => io_error(path)(cause),
            OpenError::NotRegular(kind) => SourceError::NotRegular {
                path: path.display().to_string(),
                kind,
            },
        })?;
        let meta = file.metadata().map_err(io_error(path))?;
        let size = meta.len();
        let name = canonical.display().to_string();
        let key = source_key(file_id(&meta));
        let current = fingerprint(&file, size.min(FINGERPRINT_BYTES)).map_err(io_error(path))?;
        let stored = acquire_lease(store, &key, &name, &current, job, shutdown)?;
        let stored_row = stored.clone().unwrap_or_else(|| SourceOffset {
            source: key.clone(),
            fingerprint: current.clone(),
            byte_offset: 0,
            line_count: 0,
        });
        let resumable =
            |s: &SourceOffset| same_start(&file, size, &s.fingerprint) && s.byte_offset <= size;
        let mut resume_from = stored.filter(|s| resume == Resume::FromCommitted && resumable(s));
        if resume == Resume::FromCommitted
            && resume_from.as_ref().is_none_or(|s| s.byte_offset == 0)
        {
            // Committed under another key: by path (before keys were inodes), or under another
            // device number for the same inode (a remount, a restarted container).
            let mut earlier = store.source_offsets_like(&format!("inode:%:{}", meta.ino()))?;
            earlier.extend(store.source_offset(&name)?);
            let earlier = earlier
                .into_iter()
                .filter(|s| s.source != key && resumable(s))
                .max_by_key(|s| s.byte_offset);
            if earlier.is_some() {
                resume_from = earlier;
            }
        }
        Ok(Source {
            path: name,
            key,
            fingerprint: current,
            offset: resume_from.as_ref().map_or(0, |s| s.byte_offset),
            line_count: resume_from.as_ref().map_or(0, |s| s.line_count),
            file: Arc::new(file),
            inode: (meta.dev(), meta.ino()),
            size,
            stored: stored_row,
        })
    }
}

/// Why [`open_regular`] refused a path.
#[derive(Debug)]
pub enum OpenError {
    /// The I/O error.
    Io(io::Error),
    /// Not a regular file; what it is instead.
    NotRegular(&'static str),
}

/// Opens `path` for reading if it is a regular file, never blocking: a FIFO without a writer
/// would block `open` forever (and signals with it), `/dev/zero` would never end, and a
/// `/proc` or `/sys` file claims size 0 whatever it holds.
pub fn open_regular(path: &Path) -> Result<File, OpenError> {
    let meta = std::fs::metadata(path).map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular(file_kind(meta.file_type())));
    }
    // Non-blocking, in case the path was swapped for a FIFO since: the checks below see it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(OpenError::Io)?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular(file_kind(meta.file_type())));
    }
    if is_pseudo_file_system(&file) {
        return Err(OpenError::NotRegular("a /proc or /sys pseudo-file"));
    }
    Ok(file)
}

/// Whether `file` lives on procfs or sysfs, whose files are not logs that grow.
fn is_pseudo_file_system(file: &File) -> bool {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    const SYSFS_MAGIC: i64 = 0x6265_6572;
    match rustix::fs::fstatfs(file) {
        // `f_type`'s type differs between platforms.
        #[allow(clippy::unnecessary_cast)]
        Ok(stat) => {
            let kind = stat.f_type as i64;
            kind == PROC_SUPER_MAGIC || kind == SYSFS_MAGIC
        }
        Err(_) => false,
    }
}

/// Takes the lease of `key` for `job`, waiting (with a message) while another live job holds
/// it; returns the offsets row stored under the key.
pub(crate) fn acquire_lease(
    store: &Store,
    key: &str,
    name: &str,
    fingerprint: &[u8],
    job: &JobId,
    shutdown: &AtomicBool,
) -> Result<Option<SourceOffset>, SourceError> {
    let mut last_message: Option<Instant> = None;
    loop {
        let now = unix_now();
        let outcome = store.acquire_lease(
            key,
            fingerprint,
            job.as_str(),
            now,
            now + LEASE_SECONDS,
            &|holder| job.holder_is_gone(holder),
        )?;
        match outcome {
            LeaseOutcome::Acquired(stored) => return Ok(stored),
            LeaseOutcome::Held(holder) => {
                if last_message.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    log::warn!(
                        "{name} is being ingested by job {} (lease until {}); waiting for it",
                        holder.owner,
                        holder.until
                    );
                    last_message = Some(Instant::now());
                }
            }
        }
        for _ in 0..10 {
            if shutdown.load(Ordering::Relaxed) {
                return Err(SourceError::Interrupted(name.to_string()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logstats_shared::testing::backends;
    use logstats_shared::EpochCommit;

    /// Stored fingerprints stay valid: the hash is FNV-1a 64, pinned to its published values.
    #[test]
    fn fingerprints_hash_with_fnv1a_64() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// A committed offset found under an older key is resumed from: the path (rows written
    /// before keys were inodes) or the same inode on another device number (a remount).
    #[test]
    fn offsets_committed_under_an_older_key_are_resumed() {
        for db in backends() {
            let store = db.connect();
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("a.log");
            std::fs::write(&path, "2024-10-10 12:00:00 c /p 200 1\n".repeat(20)).expect("write");
            let meta = std::fs::metadata(&path).expect("meta");
            let file = File::open(&path).expect("open");
            let name = std::fs::canonicalize(&path).expect("canonical");
            let older = [
                (name.display().to_string(), 31 * 3),
                (format!("inode:{}:{}", meta.dev() + 1, meta.ino()), 31 * 5),
            ];
            for (i, (key, offset)) in older.into_iter().enumerate() {
                let commit = EpochCommit {
                    sources: vec![SourceOffset {
                        source: key.clone(),
                        fingerprint: fingerprint(&file, FINGERPRINT_BYTES).expect("fp"),
                        byte_offset: offset,
                        line_count: offset / 31,
                    }],
                    ..EpochCommit::default()
                };
                store.commit_epoch(&commit).expect("commit");
                let job = JobId::current();
                let shutdown = AtomicBool::new(false);
                let source = Source::open(&path, &store, &job, Resume::FromCommitted, &shutdown)
                    .expect("open source");
                assert_eq!(source.key, source_key(file_id(&meta)));
                // The furthest of the rows committed so far.
                let expected = [31 * 3, 31 * 5][i];
                assert_eq!(source.offset, expected, "{db:?} {key}");
                assert_eq!(source.line_count, expected / 31);
                store.release_leases(job.as_str()).expect("release");
            }
        }
    }
}
