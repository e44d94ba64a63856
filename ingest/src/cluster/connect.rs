//! Connecting the processes of a cluster before timely takes the connections over. Every
//! process listens on its own address, connects to the processes before it and accepts those
//! after it (timely's order). On each connection the two ends first check that they were started
//! alike (version, `--processes`, `--workers`, hostfile): timely would otherwise mix up worker
//! indices. Waiting is logged on stderr (timely's own set-up prints on stdout, where `--json`
//! writes the summary), bounded by `--connect-timeout`, and stopped by SIGINT or SIGTERM.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Cluster;
use crate::error::{IngestError, Result};

/// Marks the first message on a connection as ours.
const MAGIC: &str = "logstats-cluster";

/// Longest handshake message read from a connection.
const MAX_MESSAGE_BYTES: u32 = 64 << 10;

/// How long a connected peer may take to send its handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// How often waiting for a process is logged.
const WAIT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// An idle connection is probed after this long without traffic, then every
/// [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_PROBES`] times: a host that vanished without closing its
/// connections (power loss, partition) is noticed within about 11 s on an idle connection.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_PROBES: u32 = 3;

/// What a connecting process says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Hello {
    magic: String,
    version: String,
    process: usize,
    processes: usize,
    workers: usize,
    addresses: Vec<String>,
}

impl Hello {
    fn of(cluster: &Cluster) -> Hello {
        Hello {
            magic: MAGIC.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            process: cluster.process,
            processes: cluster.processes,
            workers: cluster.workers,
            addresses: cluster.addresses.clone(),
        }
    }
}

/// The answer to a [`Hello`]: `error` when the two processes cannot run one job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Reply {
    error: Option<String>,
}

/// Why two processes cannot run one job together, or `None` when they can. `ours` accepted a
/// connection from `theirs`.
fn mismatch(ours: &Hello, theirs: &Hello) -> Option<String> {
    let (me, them) = (ours.process, theirs.process);
    if theirs.version != ours.version {
        return Some(format!(
            "process {them} runs logstats-ingest {}, process {me} runs {}: every process needs \
             the same version",
            theirs.version, ours.version
        ));
    }
    if theirs.processes != ours.processes {
        return Some(format!(
            "process {them} was started with --processes {}, process {me} with --processes {}",
            theirs.processes, ours.processes
        ));
    }
    if theirs.addresses != ours.addresses {
        return Some(format!(
            "process {them}'s hostfile lists {}, process {me}'s lists {}: every process needs \
             the same hostfile",
            theirs.addresses.join(" "),
            ours.addresses.join(" ")
        ));
    }
    if theirs.workers != ours.workers {
        return Some(format!(
            "process {them} was started with --workers {}, process {me} with --workers {}: \
             every process needs the same --workers",
            theirs.workers, ours.workers
        ));
    }
    if them <= me || them >= ours.processes {
        return Some(format!(
            "a process started as --process {them} connected to process {me}, which waits for \
             processes {} to {} only: check each process's --process",
            me + 1,
            ours.processes - 1
        ));
    }
    None
}

/// Connects this process to every other one of `cluster`: the result holds a stream per
/// process, `None` at this process's own index, as timely expects.
pub fn connect(cluster: &Cluster, shutdown: &AtomicBool) -> Result<Vec<Option<TcpStream>>> {
    let me = cluster.process;
    let deadline = Instant::now() + cluster.connect_timeout;
    // Only processes with a later one accept connections.
    let listener = if me + 1 < cluster.processes {
        let address = &cluster.addresses[me];
        let cannot_listen =
            || format!("process {me} cannot listen on {address}, its address in the hostfile");
        let listener = TcpListener::bind(address.as_str())
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(IngestError::io(cannot_listen()))?;
        Some(listener)
    } else {
        None
    };
    log::info!(
        "cluster: process {me} of {}, waiting for the others",
        cluster.processes
    );
    let hello = Hello::of(cluster);
    let (earlier, later) = std::thread::scope(|scope| {
        let accepting = scope.spawn(|| match &listener {
            Some(listener) => accept_later(listener, cluster, &hello, deadline, shutdown),
            None => Ok(Vec::new()),
        });
        let earlier = (0..me)
            .map(|index| connect_to(index, cluster, &hello, deadline, shutdown))
            .collect::<Result<Vec<_>>>();
        let later = accepting.join().unwrap_or_else(|_| {
            Err(IngestError::Cluster(
                "the thread accepting connections failed".into(),
            ))
        });
        (earlier, later)
    });
    let mut sockets: Vec<Option<TcpStream>> = earlier?.into_iter().map(Some).collect();
    sockets.push(None);
    sockets.extend(later?.into_iter().map(Some));
    for stream in sockets.iter().flatten() {
        prepare(stream).map_err(IngestError::io("preparing a connection to another process"))?;
    }
    log::info!("cluster: all {} processes connected", cluster.processes);
    Ok(sockets)
}

/// Connects to earlier process `index`, retrying until `deadline`.
fn connect_to(
    index: usize,
    cluster: &Cluster,
    hello: &Hello,
    deadline: Instant,
    shutdown: &AtomicBool,
) -> Result<TcpStream> {
    let address = &cluster.addresses[index];
    let peer = cluster.describe(index);
    // The first message after a second: processes started together need no mention.
    let mut next_log = Instant::now() + Duration::from_secs(1);
    loop {
        if shutdown.load(Ordering::Relaxed) {
            return Err(IngestError::Cluster(format!(
                "stopped while waiting for {peer}"
            )));
        }
        let error = match dial(address) {
            Ok(mut stream) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                stream
                    .set_read_timeout(Some(remaining.max(HELLO_TIMEOUT)))
                    .and_then(|()| write_message(&mut stream, hello))
                    .map_err(IngestError::io(format!("sending the handshake to {peer}")))?;
                let reply: Reply = read_message(&mut stream).map_err(IngestError::io(format!(
                    "reading the handshake reply of {peer}"
                )))?;
                if let Some(error) = reply.error {
                    return Err(IngestError::Cluster(format!(
                        "{peer} refused this process: {error}"
                    )));
                }
                return Ok(stream);
            }
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(IngestError::Cluster(format!(
                "{peer} could not be reached within {} s ({error}): is it running, with the same \
                 hostfile?",
                cluster.connect_timeout.as_secs()
            )));
        }
        if Instant::now() >= next_log {
            log::info!("cluster: waiting for {peer} ({error})");
            next_log = Instant::now() + WAIT_LOG_INTERVAL;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One attempt to connect to `address` (resolved afresh: a container's name may appear late).
fn dial(address: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address");
    let resolved: Vec<SocketAddr> = address.to_socket_addrs()?.collect();
    for socket_address in resolved {
        match TcpStream::connect_timeout(&socket_address, Duration::from_secs(1)) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Accepts the processes after this one, until each has connected or `deadline` passes. A
/// connection that does not say it is one of them is ignored; one that was started unlike this
/// process is told why and fails the start.
fn accept_later(
    listener: &TcpListener,
    cluster: &Cluster,
    hello: &Hello,
    deadline: Instant,
    shutdown: &AtomicBool,
) -> Result<Vec<TcpStream>> {
    let me = cluster.process;
    let mut later: Vec<Option<TcpStream>> = (me + 1..cluster.processes).map(|_| None).collect();
    let mut last_logged = Instant::now();
    while later.iter().any(Option::is_none) {
        if shutdown.load(Ordering::Relaxed) {
            return Err(IngestError::Cluster(
                "stopped while waiting for the other processes".into(),
            ));
        }
        let missing = || {
            (me + 1..cluster.processes)
                .filter(|&i| later[i - me - 1].is_none())
                .map(|i| cluster.describe(i))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if Instant::now() >= deadline {
            return Err(IngestError::Cluster(format!(
                "{} did not connect within {} s: is each running, with the same hostfile?",
                missing(),
                cluster.connect_timeout.as_secs()
            )));
        }
        if last_logged.elapsed() >= WAIT_LOG_INTERVAL {
            log::info!("cluster: waiting for {} to connect", missing());
            last_logged = Instant::now();
        }
        let (mut stream, from) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => {
                return Err(IngestError::io(
                    "accepting a connection from another process",
                )(e))
            }
        };
        stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_read_timeout(Some(HELLO_TIMEOUT)))
            .map_err(IngestError::io(format!("a connection from {from}")))?;
        let theirs = match read_message::<Hello>(&mut stream) {
            Ok(theirs) if theirs.magic == MAGIC => theirs,
            Ok(_) | Err(_) => {
                log::warn!("cluster: ignored a connection from {from}: not a logstats process");
                continue;
            }
        };
        let error = mismatch(hello, &theirs).or_else(|| {
            later[theirs.process - me - 1].is_some().then(|| {
                format!(
                    "two processes were started as --process {}: check each process's --process",
                    theirs.process
                )
            })
        });
        // Best effort: the refused process reports the reason too.
        let _ = write_message(
            &mut stream,
            &Reply {
                error: error.clone(),
            },
        );
        if let Some(error) = error {
            return Err(IngestError::Cluster(format!(
                "refused a process connecting from {from}: {error}"
            )));
        }
        later[theirs.process - me - 1] = Some(stream);
    }
    Ok(later.into_iter().flatten().collect())
}

/// Makes a connected stream ready for timely: blocking, no read timeout, no delay, keepalive.
fn prepare(stream: &TcpStream) -> io::Result<()> {
    stream.set_read_timeout(None)?;
    stream.set_nodelay(true)?;
    use rustix::net::sockopt;
    let keepalive = sockopt::set_socket_keepalive(stream, true)
        .and_then(|()| sockopt::set_tcp_keepidle(stream, KEEPALIVE_IDLE))
        .and_then(|()| sockopt::set_tcp_keepintvl(stream, KEEPALIVE_INTERVAL))
        .and_then(|()| sockopt::set_tcp_keepcnt(stream, KEEPALIVE_PROBES));
    if let Err(e) = keepalive {
        log::debug!("cluster: TCP keepalive not set: {e}");
    }
    Ok(())
}

/// Writes `message` as a length-prefixed JSON document.
fn write_message(stream: &mut TcpStream, message: &impl serde::Serialize) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    stream.write_all(&len.to_be_bytes())?;
    stream.write_all(&body)?;
    stream.flush()
}

/// Reads one message [`write_message`] wrote, and nothing past it: timely reads what follows.
fn read_message<T: serde::de::DeserializeOwned>(stream: &mut TcpStream) -> io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "handshake message too long",
        ));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn free_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }

    fn cluster(process: usize, addresses: &[String], workers: usize) -> Cluster {
        Cluster {
            processes: addresses.len(),
            process,
            addresses: addresses.to_vec(),
            workers,
            connect_timeout: Duration::from_secs(10),
        }
    }

    fn start(
        clusters: Vec<Cluster>,
    ) -> Vec<std::thread::JoinHandle<Result<Vec<Option<TcpStream>>>>> {
        let shutdown = Arc::new(AtomicBool::new(false));
        clusters
            .into_iter()
            .map(|c| {
                let shutdown = Arc::clone(&shutdown);
                std::thread::spawn(move || connect(&c, &shutdown))
            })
            .collect()
    }

    #[test]
    fn three_processes_connect_in_any_order() {
        let addresses: Vec<String> = (0..3)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        // The last first: it retries until the others listen.
        let handles = start((0..3).rev().map(|i| cluster(i, &addresses, 2)).collect());
        for (handle, process) in handles.into_iter().zip((0..3).rev()) {
            let sockets = handle.join().expect("thread").expect("connected");
            assert_eq!(sockets.len(), 3);
            for (index, socket) in sockets.iter().enumerate() {
                assert_eq!(socket.is_none(), index == process);
            }
        }
    }

    #[test]
    fn processes_started_unlike_each_other_are_refused_with_the_reason() {
        let addresses: Vec<String> = (0..2)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let handles = start(vec![cluster(0, &addresses, 2), cluster(1, &addresses, 1)]);
        for handle in handles {
            let error = format!("{:#}", handle.join().expect("thread").unwrap_err());
            assert!(
                error
                    .contains("process 1 was started with --workers 1, process 0 with --workers 2"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_missing_process_is_named_after_the_timeout() {
        let addresses: Vec<String> = (0..2)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut only = cluster(0, &addresses, 1);
        only.connect_timeout = Duration::from_millis(300);
        let error = connect(&only, &AtomicBool::new(false))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!(
                "process 1 ({}) did not connect within",
                addresses[1]
            )),
            "{error}"
        );
    }
}
