//! Opening sources: a path is opened only if it is a regular file ([`open_regular`]: no FIFO,
//! device, socket or `/proc`/`/sys` pseudo-file, which could block or never end), and
//! [`OpenFiles`] holds the handles the workers of this process read through, by source id. In a
//! cluster process other than 0 it opens each source itself, by the path process 0 planned, and
//! checks that it is the same file ([`PlannedRead`]).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use logstats_shared::record::LineParser;
use parking_lot::Mutex;

use super::fingerprint::same_start;
use super::SourceId;

/// What a non-regular file is, for messages.
pub fn file_kind(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
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

/// What the workers open to read an epoch's plan (`planner::EpochPlan::read`): its source, and
/// what process 0 saw of it when it planned.
#[derive(Debug, Clone, Copy)]
pub struct PlannedRead<'a> {
    /// The source, by id.
    pub source: SourceId,
    /// Its path, as process 0 named it.
    pub path: &'a str,
    /// The fingerprint of its first bytes, if process 0 took one.
    pub fingerprint: Option<&'a [u8]>,
    /// One past the last byte the plan reads.
    pub end: u64,
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
    pub fn for_plan(&self, plan: PlannedRead<'_>) -> io::Result<Arc<File>> {
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
            None => open_planned(plan, process).inspect(|file| {
                self.insert(plan.source, Arc::clone(file));
            }),
        };
        file.and_then(|file| {
            check_length(&file, plan, process)?;
            Ok(file)
        })
        // Process 0 fails the job with this error; say it here too.
        .inspect_err(|e| log::error!("{}: {e}", plan.path))
    }
}

/// Opens, on the host of process `process`, the source `plan` reads: the file at the plan's
/// path when it starts with the bytes process 0 fingerprinted, else the file beside it that
/// does (the source was rotated away since process 0 opened it).
fn open_planned(plan: PlannedRead<'_>, process: usize) -> io::Result<Arc<File>> {
    let path = Path::new(plan.path);
    let same = |file: &File| match plan.fingerprint {
        Some(fingerprint) => file
            .metadata()
            .is_ok_and(|meta| same_start(file, meta.len(), fingerprint)),
        None => true,
    };
    let at_path = match open_regular(path) {
        Ok(file) if same(&file) => return Ok(Arc::new(file)),
        other => other,
    };
    let beside = path.parent().and_then(|dir| std::fs::read_dir(dir).ok());
    for entry in beside.into_iter().flatten().flatten() {
        if let Ok(file) = open_regular(&entry.path()) {
            if same(&file) {
                log::info!(
                    "{}: read as {} on this host (rotated since process 0 opened it)",
                    plan.path,
                    entry.path().display()
                );
                return Ok(Arc::new(file));
            }
        }
    }
    let why = match at_path {
        Err(OpenError::Io(e)) => format!("process {process} cannot open it ({e})"),
        Err(OpenError::NotRegular(kind)) => format!("on process {process}'s host it is {kind}"),
        Ok(_) => format!(
            "on process {process}'s host it holds other bytes than the file process 0 read, and \
             no file beside it starts with those"
        ),
    };
    Err(not_the_same_inputs(why))
}

/// Checks that `file`, read by process `process`, holds the bytes `plan` covers.
fn check_length(file: &File, plan: PlannedRead<'_>, process: usize) -> io::Result<()> {
    let size = file.metadata()?.len();
    if size < plan.end {
        return Err(not_the_same_inputs(format!(
            "on process {process}'s host it is {size} bytes long, but process 0 planned to read \
             it up to byte {}",
            plan.end
        )));
    }
    Ok(())
}

fn not_the_same_inputs(why: String) -> io::Error {
    io::Error::other(format!(
        "{why}: every process needs the same input files at the same paths (a shared volume, or \
         identical copies)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fingerprint::{fingerprint, FINGERPRINT_BYTES};

    /// The fingerprint process 0 would plan `path` with.
    fn fingerprint_of(path: &Path) -> Vec<u8> {
        let file = File::open(path).expect("open");
        let len = file.metadata().expect("meta").len().min(FINGERPRINT_BYTES);
        fingerprint(&file, len).expect("fingerprint")
    }

    fn plan_of<'a>(path: &'a str, fingerprint: &'a [u8], end: u64) -> PlannedRead<'a> {
        PlannedRead {
            source: 0,
            path,
            fingerprint: Some(fingerprint),
            end,
        }
    }

    #[test]
    fn the_planned_file_is_found_at_its_path_or_beside_it_after_a_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.log");
        std::fs::write(&path, "2024-10-10 12:00:00 c /p 200 1\n".repeat(20)).expect("write");
        let (name, fingerprint) = (path.display().to_string(), fingerprint_of(&path));
        let plan = plan_of(&name, &fingerprint, 31 * 20);
        assert!(open_planned(plan, 1).is_ok());
        // Rotated away since process 0 opened it: a new file at the path, the old one beside.
        std::fs::rename(&path, dir.path().join("api.log.1")).expect("rename");
        std::fs::write(&path, "2024-10-11 00:00:00 d /q 500 2\n").expect("write");
        let file = open_planned(plan, 1).expect("found beside");
        assert_eq!(file.metadata().expect("meta").len(), 31 * 20);
        check_length(&file, plan, 1).expect("long enough");
        let longer = PlannedRead {
            end: 31 * 21,
            ..plan
        };
        let short = check_length(&file, longer, 1).unwrap_err().to_string();
        assert!(
            short.contains("on process 1's host it is 620 bytes long, but process 0 planned"),
            "{short}"
        );
    }

    #[test]
    fn a_missing_or_different_file_is_an_error_naming_the_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.log");
        std::fs::write(&path, "2024-10-10 12:00:00 c /p 200 1\n").expect("write");
        let (name, fingerprint) = (path.display().to_string(), fingerprint_of(&path));
        let plan = plan_of(&name, &fingerprint, 31);
        std::fs::write(&path, "2024-10-10 12:00:00 x /p 200 1\n").expect("rewrite");
        let different = open_planned(plan, 2).unwrap_err().to_string();
        assert!(
            different.contains("on process 2's host it holds other bytes")
                && different.contains("every process needs the same input files"),
            "{different}"
        );
        std::fs::remove_file(&path).expect("remove");
        let missing = open_planned(plan, 2).unwrap_err().to_string();
        assert!(missing.contains("process 2 cannot open it"), "{missing}");
    }
}
