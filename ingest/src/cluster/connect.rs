//! Connecting the processes of a cluster before timely takes the connections over. Every
//! process listens on its own address, connects to the processes before it and accepts those
//! after it (timely's order). On each connection the two ends first prove to each other that
//! they know the cluster's secret ([`secret`]): before that, the accepting end sends nothing but
//! a random nonce, and it drops, with a warning, a connection that does not prove the secret,
//! and keeps waiting for the real processes. Each accepted connection is authenticated on a
//! thread of its own, so a silent stranger does not hold up the others. Only then do the two
//! ends check that they were started alike (version, `--processes`, `--workers`, hostfile):
//! timely would otherwise mix up worker indices. Waiting is logged on stderr (timely's own
//! set-up prints on stdout, where `--json` writes the summary), bounded by `--connect-timeout`,
//! and stopped by SIGINT or SIGTERM.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::secret::{self, AuthError, ClusterSecret};
use super::Cluster;
use crate::error::{IngestError, Result};

/// Marks the first message on a connection as ours.
const MAGIC: &str = "logstats-cluster";

/// Longest handshake message read from a connection.
const MAX_MESSAGE_BYTES: u32 = 64 << 10;

/// How long a connected peer may take to prove the secret, and then to send its handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// The most accepted connections authenticated at once; more wait in the listen backlog.
const MAX_PENDING_HANDSHAKES: usize = 64;

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
    let secret = match &cluster.secret {
        Some(secret) => secret,
        None if cluster.processes == 1 => return Ok(vec![None]),
        None => {
            return Err(IngestError::Internal(
                "a cluster of several processes without a secret".into(),
            ))
        }
    };
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
            Some(listener) => accept_later(listener, cluster, secret, &hello, deadline, shutdown),
            None => Ok(Vec::new()),
        });
        let earlier = (0..me)
            .map(|index| connect_to(index, cluster, secret, &hello, deadline, shutdown))
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

/// Connects to earlier process `index`, retrying until `deadline`: proves the secret to it,
/// checks its proof, and only then sends it this process's [`Hello`].
fn connect_to(
    index: usize,
    cluster: &Cluster,
    secret: &ClusterSecret,
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
                let waiting = remaining.max(HELLO_TIMEOUT);
                secret::authenticate_acceptor(&mut stream, secret, Instant::now() + waiting)
                    .map_err(|e| unauthenticated(&peer, e))?;
                stream
                    .set_read_timeout(Some(waiting))
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

/// Why `peer`, an earlier process this one connected to, could not be authenticated.
fn unauthenticated(peer: &str, error: AuthError) -> IngestError {
    match error {
        AuthError::Random(e) => IngestError::Cluster(format!(
            "cannot authenticate with {peer}: no random bytes from the OS: {e}"
        )),
        AuthError::Io(cause) => IngestError::Io {
            what: format!("authenticating with {peer}"),
            cause,
        },
        error @ (AuthError::WrongProof | AuthError::Closed | AuthError::TimedOut) => {
            IngestError::Cluster(format!(
                "cannot authenticate with {peer} ({error}): is every process started with the \
                 same --cluster-secret-file (and the same version of logstats-ingest)?"
            ))
        }
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

/// Accepts the processes after this one, until each has connected or `deadline` passes. Each
/// accepted connection is authenticated on a thread of its own ([`handshake`]); one that does
/// not prove the secret is dropped there with a warning and changes nothing here. A proven
/// process that was started unlike this one is told why and fails the start.
fn accept_later(
    listener: &TcpListener,
    cluster: &Cluster,
    secret: &ClusterSecret,
    hello: &Hello,
    deadline: Instant,
    shutdown: &AtomicBool,
) -> Result<Vec<TcpStream>> {
    let me = cluster.process;
    let mut later: Vec<Option<TcpStream>> = (me + 1..cluster.processes).map(|_| None).collect();
    let mut last_logged = Instant::now();
    let (proven, arrivals) = mpsc::channel();
    let pending = Arc::new(AtomicUsize::new(0));
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
                "{} did not connect within {} s: is each running, with the same hostfile and \
                 --cluster-secret-file?",
                missing(),
                cluster.connect_timeout.as_secs()
            )));
        }
        if last_logged.elapsed() >= WAIT_LOG_INTERVAL {
            log::info!("cluster: waiting for {} to connect", missing());
            last_logged = Instant::now();
        }
        // At the limit, further connections wait in the backlog until a handshake ends.
        let accepted = if pending.load(Ordering::Relaxed) < MAX_PENDING_HANDSHAKES {
            match listener.accept() {
                Ok(accepted) => Some(accepted),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                Err(e) => {
                    return Err(IngestError::io(
                        "accepting a connection from another process",
                    )(e))
                }
            }
        } else {
            None
        };
        let wait = match accepted {
            Some((stream, from)) => {
                start_handshake(stream, from, secret, &proven, &pending);
                Duration::ZERO
            }
            None => Duration::from_millis(50),
        };
        let (mut stream, from, theirs) = match arrivals.recv_timeout(wait) {
            Ok(arrival) => arrival,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => continue,
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

/// A connection accepted from another process that proved the secret, with its [`Hello`].
type Arrival = (TcpStream, SocketAddr, Hello);

/// Counts a handshake thread as pending while it lives.
struct Pending(Arc<AtomicUsize>);

impl Pending {
    fn new(count: &Arc<AtomicUsize>) -> Pending {
        count.fetch_add(1, Ordering::Relaxed);
        Pending(Arc::clone(count))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Authenticates the connection accepted from `from` on a thread of its own ([`handshake`]);
/// a proven process's [`Hello`] is sent to `proven`.
fn start_handshake(
    stream: TcpStream,
    from: SocketAddr,
    secret: &ClusterSecret,
    proven: &Sender<Arrival>,
    pending: &Arc<AtomicUsize>,
) {
    let (secret, proven, pending) = (secret.clone(), proven.clone(), Pending::new(pending));
    let spawned = std::thread::Builder::new()
        .name("cluster-handshake".into())
        .spawn(move || {
            let _pending = pending;
            if let Some(arrival) = handshake(stream, from, &secret) {
                // Nobody listens once every process is connected: this one is then dropped.
                let _ = proven.send(arrival);
            }
        });
    if let Err(e) = spawned {
        log::warn!("cluster: dropped a connection from {from}: cannot start a thread for it: {e}");
    }
}

/// The accepting side of a connection from `from`: the secret's challenge-response first, then,
/// from a process that proved it, its [`Hello`]. `None`, with a warning, for anything else;
/// the connection is then closed, and the other side learned nothing but a random nonce.
fn handshake(mut stream: TcpStream, from: SocketAddr, secret: &ClusterSecret) -> Option<Arrival> {
    let authenticated = stream
        .set_nonblocking(false)
        .map_err(AuthError::from)
        .and_then(|()| {
            secret::authenticate_dialer(&mut stream, secret, Instant::now() + HELLO_TIMEOUT)
        });
    match authenticated {
        Ok(()) => {}
        Err(AuthError::Random(e)) => {
            log::error!("cluster: dropped a connection from {from}: no random bytes for it: {e}");
            return None;
        }
        Err(e) => {
            log::warn!(
                "cluster: dropped a connection from {from} that did not prove the cluster secret"
            );
            log::debug!("cluster: the connection from {from}: {e}");
            return None;
        }
    }
    let hello = stream
        .set_read_timeout(Some(HELLO_TIMEOUT))
        .and_then(|()| read_message::<Hello>(&mut stream));
    match hello {
        Ok(theirs) if theirs.magic == MAGIC => Some((stream, from, theirs)),
        Ok(_) | Err(_) => {
            log::warn!(
                "cluster: ignored a connection from {from}: it proved the cluster secret but sent \
                 no logstats handshake"
            );
            None
        }
    }
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

    const SECRET: &[u8] = b"the cluster's secret, 32 bytes..";

    fn cluster(process: usize, addresses: &[String], workers: usize) -> Cluster {
        Cluster {
            processes: addresses.len(),
            process,
            addresses: addresses.to_vec(),
            workers,
            connect_timeout: Duration::from_secs(10),
            secret: ClusterSecret::new(SECRET),
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

    /// Connects to `address` once something listens there.
    fn dial_when_listening(address: &str) -> TcpStream {
        let started = Instant::now();
        loop {
            match TcpStream::connect(address) {
                Ok(stream) => return stream,
                Err(e) => {
                    assert!(started.elapsed() < Duration::from_secs(5), "{address}: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// Everything `stream` receives until it is closed (or 10 s pass, a failure).
    fn received(stream: &mut TcpStream) -> Vec<u8> {
        logstats_shared::testing::received_until_closed(stream, Duration::from_secs(10))
    }

    /// What a stranger received: the nonce at most, nothing naming the job.
    fn assert_learned_nothing(bytes: &[u8], addresses: &[String]) {
        assert!(bytes.len() <= secret::NONCE_BYTES, "{bytes:?}");
        let text = String::from_utf8_lossy(bytes);
        for word in [
            "logstats",
            env!("CARGO_PKG_VERSION"),
            "127.0.0.1",
            "\"error\"",
        ]
        .into_iter()
        .chain(addresses.iter().map(String::as_str))
        {
            assert!(!text.contains(word), "{word:?} in {text:?}");
        }
    }

    #[test]
    fn strangers_are_dropped_and_learn_nothing_and_the_real_process_still_connects() {
        let addresses: Vec<String> = (0..2)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let shutdown = Arc::new(AtomicBool::new(false));
        let zero = {
            let (c, shutdown) = (cluster(0, &addresses, 1), Arc::clone(&shutdown));
            std::thread::spawn(move || connect(&c, &shutdown))
        };
        // The plain hello of a process without the secret, as the connection once began.
        let mut hello = dial_when_listening(&addresses[0]);
        let plain = Hello {
            magic: MAGIC.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            process: 1,
            processes: 2,
            workers: 1,
            addresses: vec![],
        };
        write_message(&mut hello, &plain).expect("send");
        assert_learned_nothing(&received(&mut hello), &addresses);
        // Garbage, longer than a proof.
        let mut garbage = dial_when_listening(&addresses[0]);
        garbage.write_all(&[0xa5; 300]).expect("send");
        assert_learned_nothing(&received(&mut garbage), &addresses);
        // A process that knows another secret: refused, and gets no proof back.
        let mut wrong = dial_when_listening(&addresses[0]);
        let other = ClusterSecret::new(b"another secret, 32 bytes long...").expect("secret");
        let refused = secret::authenticate_acceptor(
            &mut wrong,
            &other,
            Instant::now() + Duration::from_secs(10),
        );
        assert!(matches!(refused, Err(AuthError::Closed)), "{refused:?}");
        // One that says nothing and stays connected.
        let mut silent = dial_when_listening(&addresses[0]);

        // The real process 1 connects at once: the silent stranger does not hold it up.
        let started = Instant::now();
        let one = connect(&cluster(1, &addresses, 1), &shutdown).expect("process 1 connected");
        assert!(one[0].is_some());
        assert!(started.elapsed() < HELLO_TIMEOUT, "{:?}", started.elapsed());
        let zero = zero.join().expect("thread").expect("process 0 connected");
        assert!(zero[1].is_some());
        // The silent stranger is dropped after HELLO_TIMEOUT, having received a nonce only.
        assert_learned_nothing(&received(&mut silent), &addresses);
        assert!(started.elapsed() >= HELLO_TIMEOUT / 2, "dropped too soon");
    }

    #[test]
    fn a_process_with_another_secret_is_refused_and_the_other_keeps_waiting() {
        let addresses: Vec<String> = (0..2)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut zero = cluster(0, &addresses, 1);
        zero.connect_timeout = Duration::from_secs(3);
        let zero = std::thread::spawn(move || connect(&zero, &AtomicBool::new(false)));
        let mut one = cluster(1, &addresses, 1);
        one.secret = ClusterSecret::new(b"another secret, 32 bytes long...");
        let error = connect(&one, &AtomicBool::new(false))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!(
                "cannot authenticate with process 0 ({}) (it closed the connection): is every \
                 process started with the same --cluster-secret-file",
                addresses[0]
            )),
            "{error}"
        );
        // Process 0 was not stopped by it: it waited for a real process 1 until its timeout.
        let error = zero.join().expect("thread").unwrap_err().to_string();
        assert!(
            error.contains(&format!(
                "process 1 ({}) did not connect within 3 s",
                addresses[1]
            )),
            "{error}"
        );
    }
}
