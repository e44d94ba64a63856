//! A cluster process other than 0: it opens no database, plans nothing and commits nothing. Its
//! workers read their shares of each epoch process 0 plans, opening each source by the path
//! named in the plan, and send their deltas and reports on through the dataflow.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use logstats_shared::record::LineParser;

use super::{connect, supervisor, Cluster};
use crate::dataflow;
use crate::planner::EpochPlan;
use crate::source::{open_regular, same_start, OpenError, OpenFiles};
use crate::summary::ReadCounter;

/// Runs process `cluster.process` (not 0) until process 0 ends the job.
pub fn run(
    cluster: &Cluster,
    parser: &Arc<LineParser>,
    shutdown: &AtomicBool,
) -> crate::Result<()> {
    let sockets = connect::connect(cluster, shutdown)?;
    let files = OpenFiles::by_path(cluster.process).parsed_by(Arc::clone(parser));
    let counter = Arc::new(ReadCounter::default());
    let read = Arc::clone(&counter);
    supervisor::execute(cluster, sockets, Some(shutdown), move |worker| {
        let (input, _) = dataflow::build(worker, None, files.clone(), Arc::clone(&read));
        // Plans come from process 0's worker 0 only.
        drop(input);
        while worker.step_or_park(Some(Duration::from_millis(10))) {}
    })?;
    let (bytes, lines) = counter.get();
    log::info!(
        "cluster: process {} of {}: the job ended; {lines} lines ({bytes} bytes) read here, \
         committed by process 0",
        cluster.process,
        cluster.processes
    );
    Ok(())
}

/// Opens, on the host of process `process`, the source `plan` reads: the file at the plan's
/// path when it starts with the bytes process 0 fingerprinted, else the file beside it that
/// does (the source was rotated away since process 0 opened it).
pub(crate) fn open_planned(plan: &EpochPlan, process: usize) -> io::Result<Arc<File>> {
    let path = Path::new(&plan.path);
    let same = |file: &File| match &plan.fingerprint {
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
pub(crate) fn check_length(file: &File, plan: &EpochPlan, process: usize) -> io::Result<()> {
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
    use crate::source::{fingerprint, FINGERPRINT_BYTES};

    fn plan_of(path: &Path, end: u64) -> EpochPlan {
        let file = File::open(path).expect("open");
        let len = file.metadata().expect("meta").len().min(FINGERPRINT_BYTES);
        EpochPlan {
            epoch: 0,
            source: 0,
            path: path.display().to_string(),
            key: String::new(),
            start: 0,
            end,
            late_before: None,
            watermark_ceiling: i64::MAX,
            fingerprint: Some(fingerprint(&file, len).expect("fingerprint")),
            first: None,
            batches: Vec::new(),
        }
    }

    #[test]
    fn the_planned_file_is_found_at_its_path_or_beside_it_after_a_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.log");
        std::fs::write(&path, "2024-10-10 12:00:00 c /p 200 1\n".repeat(20)).expect("write");
        let plan = plan_of(&path, 31 * 20);
        assert!(open_planned(&plan, 1).is_ok());
        // Rotated away since process 0 opened it: a new file at the path, the old one beside.
        std::fs::rename(&path, dir.path().join("api.log.1")).expect("rename");
        std::fs::write(&path, "2024-10-11 00:00:00 d /q 500 2\n").expect("write");
        let file = open_planned(&plan, 1).expect("found beside");
        assert_eq!(file.metadata().expect("meta").len(), 31 * 20);
        check_length(&file, &plan, 1).expect("long enough");
        let longer = EpochPlan {
            end: 31 * 21,
            ..plan.clone()
        };
        let short = check_length(&file, &longer, 1).unwrap_err().to_string();
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
        let plan = plan_of(&path, 31);
        std::fs::write(&path, "2024-10-10 12:00:00 x /p 200 1\n").expect("rewrite");
        let different = open_planned(&plan, 2).unwrap_err().to_string();
        assert!(
            different.contains("on process 2's host it holds other bytes")
                && different.contains("every process needs the same input files"),
            "{different}"
        );
        std::fs::remove_file(&path).expect("remove");
        let missing = open_planned(&plan, 2).unwrap_err().to_string();
        assert!(missing.contains("process 2 cannot open it"), "{missing}");
    }
}
