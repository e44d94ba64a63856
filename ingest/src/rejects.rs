//! The rejects file: every rejected or late line, appended with its file and line number once
//! its epoch is committed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{IngestError, Result};
use crate::planner::EpochPlan;
use crate::share::{RejectedLine, ShareReader, ShareReport};
use crate::source::OpenFiles;

/// The open rejects file.
pub struct RejectsFile {
    /// Its path, for messages.
    path: String,
    out: BufWriter<File>,
    /// The open sources, for reading a share again for its rejects.
    files: OpenFiles,
}

impl RejectsFile {
    /// Opens (or creates, with its directory) the rejects file at `path`; shares whose rejects
    /// did not all fit in memory are read again from `files`.
    pub fn open(path: &Path, files: OpenFiles) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(IngestError::io(format!(
                "cannot create the directory of the rejects file {}",
                path.display()
            )))?;
        }
        Ok(Self {
            path: path.display().to_string(),
            out: BufWriter::new(open_private(path)?),
            files,
        })
    }

    /// Appends the epoch's rejected and late lines, numbered. A share that kept only some of
    /// them is read again, window by window, so that memory never holds more than a window's.
    pub fn append(
        &mut self,
        plan: &EpochPlan,
        lines_before: u64,
        reports: &[ShareReport],
    ) -> Result<()> {
        let (path, out) = (&self.path, &mut self.out);
        let written = |cause| IngestError::Io {
            what: format!("writing rejects file {path}"),
            cause,
        };
        let mut first_line_of_share = lines_before;
        for report in reports {
            let mut write = |rejects: &[RejectedLine]| {
                for reject in rejects {
                    let line_number = first_line_of_share + reject.line_in_share + 1;
                    writeln!(
                        out,
                        "{}:{}: {}: {}",
                        plan.path, line_number, reject.reason, reject.text
                    )
                    .map_err(written)?;
                }
                Ok::<(), IngestError>(())
            };
            if report.rejects_left_out {
                let mut reader = ShareReader::rereading(self.files.clone());
                let mut share = reader.begin(plan, report.worker, reports.len());
                loop {
                    let done = reader.step(plan, &mut share);
                    write(&share.take_rejects())?;
                    if done {
                        break;
                    }
                }
                let (_, reread) = reader.finish(share);
                if let Some(e) = reread.error {
                    return Err(IngestError::Reread(e));
                }
            } else {
                write(&report.rejects)?;
            }
            first_line_of_share += report.lines_total;
        }
        out.flush().map_err(written)
    }
}

/// Opens (or creates, readable by its owner only: it holds copies of log lines) the rejects
/// file for appending. It must be a regular file: a FIFO without a reader would block.
fn open_private(path: &Path) -> Result<File> {
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .and_then(|file| {
            let meta = file.metadata()?;
            if !meta.is_file() {
                let kind = crate::source::file_kind(meta.file_type());
                return Err(std::io::Error::other(format!(
                    "not a regular file ({kind})"
                )));
            }
            Ok(file)
        });
    opened.map_err(IngestError::io(format!(
        "cannot open rejects file {}",
        path.display()
    )))
}
