//! Lines counted late, recovered for a `--backfill` run: `logstats-ingest late-lines REJECTS
//! --output FILE` reads a rejects file (`--rejects`), and for every line it lists as late, copies
//! that line, whole, from the log file it names (by path and line number) into FILE. A
//! `--backfill` run of FILE then stores them into their days, once: FILE's offsets are committed
//! like any file's.
//!
//! The rejects file lists a source's lines in increasing order (epochs are committed in order),
//! so each log file is read once, forward, in bounded memory, whatever the number of late lines.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use logstats_shared::RejectReason;

use crate::error::{IngestError, Result};
use crate::spool::{PUSH_NAME, STDIN_NAME};

/// What [`late_lines`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recovered {
    /// Late lines copied into the output.
    pub lines: u64,
    /// Log files they were copied from.
    pub files: usize,
    /// Late lines of standard input or of pushes: their source cannot be read again.
    pub unrecoverable: u64,
}

/// A log file being copied from: where it is read to.
struct Reading {
    lines: std::io::Split<BufReader<File>>,
    /// Lines read so far (the last one read is this number).
    at: u64,
}

/// Copies every late line the rejects file at `rejects` lists into a new file at `output`
/// (never an existing one: a second copy would count them twice).
pub fn late_lines(rejects: &Path, output: &Path) -> Result<Recovered> {
    let marker = format!(": {}: ", RejectReason::Late);
    let input = File::open(rejects).map_err(IngestError::io(format!(
        "cannot read the rejects file {}",
        rejects.display()
    )))?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output)
        .map_err(IngestError::io(format!(
            "cannot create {} (it must not exist yet: a second copy of the same late lines \
             would count them twice)",
            output.display()
        )))?;
    let mut out = BufWriter::new(out);
    let mut reading: HashMap<String, Reading> = HashMap::new();
    let mut recovered = Recovered::default();
    for (index, entry) in BufReader::new(input).split(b'\n').enumerate() {
        let entry = entry.map_err(IngestError::io(format!(
            "reading the rejects file {}",
            rejects.display()
        )))?;
        let entry = String::from_utf8_lossy(&entry);
        let Some(at) = entry.find(&marker) else {
            continue; // a rejected line, not a late one
        };
        let malformed = || {
            IngestError::Internal(format!(
                "{}:{}: not a line of a rejects file (PATH:LINE: reason: text)",
                rejects.display(),
                index + 1
            ))
        };
        let (path, line) = entry[..at].rsplit_once(':').ok_or_else(malformed)?;
        let line: u64 = line.parse().map_err(|_| malformed())?;
        if path == STDIN_NAME || path == PUSH_NAME {
            recovered.unrecoverable += 1;
            continue;
        }
        if !reading.contains_key(path) {
            let file = File::open(path).map_err(IngestError::io(format!(
                "cannot read {path}, which the rejects file names (rotated or removed? its \
                 late lines cannot be copied)"
            )))?;
            reading.insert(
                path.to_string(),
                Reading {
                    lines: BufReader::new(file).split(b'\n'),
                    at: 0,
                },
            );
        }
        let Some(source) = reading.get_mut(path) else {
            continue;
        };
        if line <= source.at {
            return Err(IngestError::Internal(format!(
                "{}:{}: line {line} of {path} comes after line {} of the same file: it was \
                 truncated or replaced after those lines were read, and its earlier lines \
                 cannot be read again",
                rejects.display(),
                index + 1,
                source.at
            )));
        }
        let text = loop {
            let next = source
                .lines
                .next()
                .transpose()
                .map_err(IngestError::io(format!("reading {path}")))?;
            source.at += 1;
            match next {
                Some(text) if source.at == line => break text,
                Some(_) => {}
                None => {
                    return Err(IngestError::Internal(format!(
                        "{path} has fewer than {line} lines: it changed since its late lines \
                         were read"
                    )))
                }
            }
        };
        out.write_all(&text)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(IngestError::io(format!("writing {}", output.display())))?;
        recovered.lines += 1;
    }
    out.flush()
        .map_err(IngestError::io(format!("writing {}", output.display())))?;
    recovered.files = reading.len();
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_the_late_lines_named_by_the_rejects_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        std::fs::write(&a, "a1\na2 late\n\na4 late\na5\n").expect("a");
        std::fs::write(&b, "b1 late\r\nb2\n").expect("b");
        let late = RejectReason::Late;
        let rejects = dir.path().join("rejects");
        std::fs::write(
            &rejects,
            format!(
                "{a}:2: {late}: a2 late\n{b}:1: {late}: b1 late\n{a}:3: invalid status: x\n\
                 -:9: {late}: from a pipe\n{a}:4: {late}: a4 l\n",
                a = a.display(),
                b = b.display()
            ),
        )
        .expect("rejects");
        let output = dir.path().join("late.log");
        let recovered = late_lines(&rejects, &output).expect("late lines");
        assert_eq!(
            recovered,
            Recovered {
                lines: 3,
                files: 2,
                unrecoverable: 1
            }
        );
        assert_eq!(
            std::fs::read_to_string(&output).expect("output"),
            "a2 late\nb1 late\r\na4 late\n"
        );
        // Never over an existing file.
        assert!(late_lines(&rejects, &output).is_err());
        // A file that changed: lines missing.
        std::fs::write(&b, "").expect("b");
        assert!(late_lines(&rejects, &dir.path().join("again.log")).is_err());
    }
}
