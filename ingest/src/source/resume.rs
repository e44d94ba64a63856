//! Where a source resumes: [`Source::open`] opens a file, takes its lease and finds the offset
//! committed for it, also one committed under an older key, when the file still starts with
//! the bytes fingerprinted then.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use logstats_shared::{SourceOffset, Store};

use super::fingerprint::{file_id, fingerprint, same_start, source_key, FINGERPRINT_BYTES};
use super::lease::{acquire_lease, JobId};
use super::open::{open_regular, OpenError};
use super::{io_error, SourceError};

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
            let mut earlier = store.offsets_of_inode(meta.ino())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use logstats_shared::testing::backends;
    use logstats_shared::EpochCommit;

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
