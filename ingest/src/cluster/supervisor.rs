//! Running this process's workers in a cluster, and stopping them when another process is lost.
//!
//! Timely does not recover a lost worker: when a connection to another process breaks, its
//! receive (or send) thread panics with "timely communication error: ...". Left to unwind, that
//! thread poisons the queues it shares with the workers, which panic in turn ("MergeQueue
//! poisoned."), and a worker unwinding with data still buffered for a poisoned queue panics
//! again in a destructor, which aborts the whole process (seen in some test runs). A
//! worker may also be busy elsewhere (waiting for the database, say) and not see the loss for a
//! while, and joining the communication threads can wait on a third process that is still
//! alive.
//!
//! So a panic hook records which process was lost (the communication threads are named
//! `timely:recv-N` and `timely:send-N`) and then parks the panicking thread for good instead of
//! letting it unwind: nothing is poisoned, nothing cascades, nothing aborts. The main thread,
//! which waits for the workers' results in steps of [`POLL`] instead of joining them, returns
//! an error naming the lost process as soon as one is recorded, and the process exits with
//! the parked threads.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};
use timely::worker::Worker;
use timely::WorkerConfig;

use super::Cluster;
use crate::error::{IngestError, Result};

/// How often the main thread looks for a lost process while the workers run.
pub const POLL: Duration = Duration::from_millis(50);

/// A process other than 0 that is asked to stop (SIGINT, SIGTERM) keeps reading this long for
/// process 0 to end the job (a `docker compose stop` signals every process at once), then
/// stops anyway.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// The thread that joins the workers and the communication threads.
const JOINER: &str = "cluster-join";

/// Prefix of the panics of timely's communication threads.
const COMMUNICATION_ERROR: &str = "timely communication error: ";

/// The first process found lost, and how.
static LOST: OnceLock<(usize, String)> = OnceLock::new();

/// Installs, once, a panic hook that records a lost process and parks the threads of its
/// panics and of the panics that follow from it (quietly); any other panic is printed and
/// unwinds as before.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            if let (Some(cause), Some(process)) =
                (message.strip_prefix(COMMUNICATION_ERROR), remote_of(name))
            {
                if LOST.set((process, cause.to_string())).is_ok() {
                    log::debug!("cluster: {name}: {message}");
                }
                park_for_good();
            }
            // After another thread's panic: a queue it poisoned, or any timely thread once a
            // process is lost.
            let follow_on = message.starts_with("MergeQueue poisoned")
                || (LOST.get().is_some() && (name.starts_with("timely:") || name == JOINER));
            if follow_on {
                park_for_good();
            }
            previous(info);
        }));
    });
}

/// Parks the current thread until the process exits: a panicking thread of timely's that is
/// not allowed to unwind (see the module's documentation).
fn park_for_good() -> ! {
    loop {
        std::thread::park();
    }
}

/// The remote process of a timely communication thread (`timely:recv-1`, `timely:send-1`).
fn remote_of(thread_name: &str) -> Option<usize> {
    thread_name
        .strip_prefix("timely:recv-")
        .or_else(|| thread_name.strip_prefix("timely:send-"))?
        .parse()
        .ok()
}

/// Sets its flag when dropped by a panicking thread.
struct PanicFlag(Arc<AtomicBool>);

impl Drop for PanicFlag {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// The error of a lost process.
fn lost(cluster: &Cluster, process: usize, cause: &str) -> IngestError {
    IngestError::Cluster(format!(
        "lost {}: its connection broke ({cause}); if it stopped on an error, its own log says \
         which. Timely cannot replace a lost worker, so the whole job stops; what was committed \
         stays committed: restart every process to resume from the last commit",
        cluster.describe(process)
    ))
}

/// Runs `func` on each worker thread of this process, over the connections to the other
/// processes in `sockets` (see [`super::connect::connect`]), and returns the workers' results;
/// or an error as soon as another process is lost. `stop`, on processes other than 0: once it
/// is set, the job has [`STOP_GRACE`] to end before this process stops with an error.
pub fn execute<T, F>(
    cluster: &Cluster,
    sockets: Vec<Option<TcpStream>>,
    stop: Option<&AtomicBool>,
    func: F,
) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(&mut Worker) -> T + Send + Sync + 'static,
{
    install_panic_hook();
    let hooks = Hooks::default();
    let local = ProcessBuilder::new_typed_vector(
        cluster.workers,
        hooks.refill.clone(),
        hooks.spill.clone(),
    );
    let (builders, communication) =
        initialize_networking_from_sockets(local, sockets, cluster.process, cluster.workers, hooks)
            .map_err(IngestError::io(
                "starting the cluster's communication threads",
            ))?;
    let builders = builders.into_iter().map(AllocatorBuilder::Tcp).collect();
    let panicked = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&panicked);
    let guards = timely::execute::execute_from(
        builders,
        Box::new(communication),
        WorkerConfig::default(),
        move |worker| {
            let _flag = PanicFlag(Arc::clone(&flag));
            func(worker)
        },
    )
    .map_err(IngestError::workers_not_started)?;
    let (sender, joined) = mpsc::channel();
    std::thread::Builder::new()
        .name(JOINER.to_string())
        .spawn(move || {
            let _ = sender.send(guards.join());
        })
        .map_err(IngestError::io(
            "starting the thread that waits for the workers",
        ))?;
    let mut stop_seen: Option<Instant> = None;
    loop {
        if let Some((process, cause)) = LOST.get() {
            return Err(lost(cluster, *process, cause));
        }
        if panicked.load(Ordering::SeqCst) {
            if let Some((process, cause)) = LOST.get() {
                return Err(lost(cluster, *process, cause));
            }
            return Err(IngestError::Cluster(format!(
                "a worker of process {} failed (the panic is above); the whole job stops. What \
                 was committed stays committed: restart every process to resume",
                cluster.process
            )));
        }
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            let seen = *stop_seen.get_or_insert_with(|| {
                log::info!(
                    "cluster: stopping when process 0 ends the job (stop process 0 to end it), \
                     at most {} s from now",
                    STOP_GRACE.as_secs()
                );
                Instant::now()
            });
            if seen.elapsed() >= STOP_GRACE {
                return Err(IngestError::Cluster(
                    "stopped by a signal while process 0 was still running the job; it stops \
                     too. What was committed stays committed"
                        .into(),
                ));
            }
        }
        match joined.recv_timeout(POLL) {
            Ok(results) => {
                return results
                    .into_iter()
                    .map(|r| r.map_err(IngestError::worker_failed))
                    .collect();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if let Some((process, cause)) = LOST.get() {
                    return Err(lost(cluster, *process, cause));
                }
                return Err(IngestError::Cluster(
                    "the cluster's communication threads failed".into(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communication_threads_name_their_remote_process() {
        assert_eq!(remote_of("timely:recv-1"), Some(1));
        assert_eq!(remote_of("timely:send-12"), Some(12));
        assert_eq!(remote_of("timely:work-0"), None);
        assert_eq!(remote_of("main"), None);
    }
}
