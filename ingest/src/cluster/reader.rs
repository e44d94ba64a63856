//! A cluster process other than 0: it opens no database, plans nothing and commits nothing. Its
//! workers read their shares of each epoch process 0 plans, opening each source by the path
//! named in the plan (see `OpenFiles::by_path`), and send their deltas and reports on through the
//! dataflow.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use logstats_shared::record::LineParser;

use super::{connect, supervisor, Cluster};
use crate::dataflow;
use crate::source::OpenFiles;
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
        let input = dataflow::build(worker, None, files.clone(), Arc::clone(&read), None);
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
