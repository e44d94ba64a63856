//! The one way the integration tests run a real program (`logstats-api`, `logstats-ingest`,
//! chromedriver, Chromium, Schemathesis): a [`Binary`] is the program with its arguments and
//! environment; started, it is a [`Spawned`] process whose stdout and stderr go to files in a
//! temporary directory of its own (a pipe nobody reads would block it once full), that can be
//! waited on until it is ready or has exited, signalled by name, and is killed when dropped.
//!
//! ```no_run
//! use std::time::Duration;
//! use logstats_shared::testing::spawn::{accepts, free_port, Binary};
//!
//! let port = free_port();
//! let api = Binary::new("target/debug/logstats-api")
//!     .args(["--bind", &format!("127.0.0.1:{port}")])
//!     .env("RUST_LOG", "info")
//!     .start_ready(Duration::from_secs(30), |_| accepts(port));
//! api.signal("TERM");
//! let output = api.finish(Duration::from_secs(10));
//! assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
//! ```

use std::ffi::OsStr;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Random;

/// How often the waits below look at the process (and at the caller's readiness check).
const POLL: Duration = Duration::from_millis(20);

/// How long a test lets a program it runs to its exit take ([`Binary::run`],
/// [`Spawned::finish`]) before killing it and failing with its stderr: every wait of a test is
/// bounded, so a hang fails the test instead of stalling the suite. Far above what any of them
/// takes (the longest, a few seconds in a debug build).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// A port nobody listens on now on 127.0.0.1 (the listener is closed again at once), for a
/// process to `--bind`. Picked at random below Linux's ephemeral range (32768-60999), so that no
/// outgoing connection of a concurrent test takes it before the process listening on it starts.
pub fn free_port() -> u16 {
    static SEED: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut random =
        Random(nanos ^ u64::from(std::process::id()) ^ SEED.fetch_add(1, Ordering::Relaxed) << 40);
    loop {
        let port = 20_000 + random.below(12_000) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` (within a second): a
/// readiness check for [`Binary::start_ready`].
pub fn accepts(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

/// A program to start: its path, arguments, environment and working directory.
#[derive(Debug)]
pub struct Binary {
    command: Command,
    name: String,
    /// Standard input, when not empty.
    stdin: Option<Stdio>,
}

impl Binary {
    /// The program at `program` (a path, e.g. `env!("CARGO_BIN_EXE_logstats-api")`, or a name
    /// looked up on `PATH`), with no arguments and the test's environment.
    pub fn new(program: impl AsRef<OsStr>) -> Binary {
        let program = program.as_ref();
        let name = Path::new(program)
            .file_name()
            .unwrap_or(program)
            .to_string_lossy()
            .into_owned();
        Binary {
            command: Command::new(program),
            name,
            stdin: None,
        }
    }

    /// Gives the program `stdin` (the read end of a pipe, say) as its standard input.
    pub fn stdin(mut self, stdin: impl Into<Stdio>) -> Binary {
        self.stdin = Some(stdin.into());
        self
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Binary {
        self.command.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Binary
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Binary {
        self.command.env(key, value);
        self
    }

    /// Sets environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Binary
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.command.envs(vars);
        self
    }

    /// Removes an environment variable the test process may have.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Binary {
        self.command.env_remove(key);
        self
    }

    /// Runs the program in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Binary {
        self.command.current_dir(dir);
        self
    }

    /// Starts the program, stdin empty unless given, stdout and stderr in files of a new
    /// temporary directory.
    /// Panics when it cannot be started.
    pub fn start(mut self) -> Spawned {
        let dir = tempfile::Builder::new()
            .prefix("logstats-spawn-")
            .tempdir()
            .expect("a temporary directory for a process's output");
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let create = |path: &Path| {
            File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
        };
        let child = self
            .command
            .stdin(self.stdin.take().unwrap_or_else(Stdio::null))
            .stdout(create(&stdout))
            .stderr(create(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        Spawned {
            child,
            status: None,
            name: self.name,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// [`Binary::start`], then [`Spawned::wait_ready`]: returns once `ready` holds.
    pub fn start_ready(self, timeout: Duration, ready: impl FnMut(&Spawned) -> bool) -> Spawned {
        let mut spawned = self.start();
        spawned.wait_ready(timeout, ready);
        spawned
    }

    /// Runs the program to its exit within `timeout` ([`Spawned::finish`]): its status, stdout
    /// and stderr.
    pub fn run(self, timeout: Duration) -> Output {
        self.start().finish(timeout)
    }
}

/// A started program; killed (SIGKILL) and reaped when dropped before it has exited.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    /// Its exit status, once reaped.
    status: Option<ExitStatus>,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
    // Holds the output files; removed with the value.
    _dir: tempfile::TempDir,
}

impl Spawned {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The program's file name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the program has written to stdout so far (invalid UTF-8 replaced).
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout)
    }

    /// What the program has written to stderr so far (invalid UTF-8 replaced).
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// The file the program's stdout goes to.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    /// The file the program's stderr goes to.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// Its exit status if it has exited, without waiting.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.name));
        }
        self.status
    }

    /// Waits up to `timeout` for the exit: its status, or `None` if it still runs.
    pub fn wait_for(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if started.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `ready` holds, checking every 20 ms; panics, with its stderr, when the
    /// program exits first or `ready` still fails after `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut(&Spawned) -> bool) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_status() {
                panic!(
                    "{} exited with {status} before it was ready: {}",
                    self.name,
                    self.stderr()
                );
            }
            if ready(self) {
                return;
            }
            if started.elapsed() >= timeout {
                panic!(
                    "{} not ready after {timeout:?}: {}",
                    self.name,
                    self.stderr()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends `signal` (`TERM`, `HUP`, `KILL`, ...; a leading `-` or `SIG` is ignored) with
    /// `kill -s`; panics if the program has already been reaped or `kill` fails.
    pub fn signal(&self, signal: &str) {
        assert!(
            self.status.is_none(),
            "{} has already exited ({:?}): cannot send it {signal}",
            self.name,
            self.status
        );
        let name = signal.trim_start_matches('-');
        let name = name.strip_prefix("SIG").unwrap_or(name);
        let pid = self.id().to_string();
        let status = Command::new("kill")
            .args(["-s", name, &pid])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(
            status.success(),
            "kill -s {name} {pid} ({}) failed",
            self.name
        );
    }

    /// Kills the program (SIGKILL) and reaps it, if it still runs.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Waits up to `timeout` for the exit; its status, stdout and stderr. If it still runs
    /// then, it is killed and this panics with its stderr.
    pub fn finish(mut self, timeout: Duration) -> Output {
        if self.wait_for(timeout).is_none() {
            self.kill();
            panic!(
                "{} still running after {timeout:?}: {}",
                self.name,
                self.stderr()
            );
        }
        self.output()
    }

    /// The output of a reaped program.
    fn output(&self) -> Output {
        Output {
            status: self.status.expect("the program has exited"),
            stdout: std::fs::read(&self.stdout).unwrap_or_default(),
            stderr: std::fs::read(&self.stderr).unwrap_or_default(),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Binary {
        Binary::new("sh").args(["-c", script])
    }

    #[test]
    fn a_run_gives_status_stdout_and_stderr() {
        let output = shell("echo out; echo err >&2; echo \"$GREETING\"; exit 3")
            .env("GREETING", "hello")
            .run(Duration::from_secs(10));
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\nhello\n");
        assert_eq!(output.stderr, b"err\n");
    }

    #[test]
    fn the_last_environment_change_wins_in_the_given_directory() {
        let dir = tempfile::tempdir().expect("a directory");
        let output = shell("pwd; echo \"${LOGSTATS_SPAWN_TEST:-removed}\"")
            .env("LOGSTATS_SPAWN_TEST", "set")
            .env_remove("LOGSTATS_SPAWN_TEST")
            .current_dir(dir.path())
            .run(Duration::from_secs(10));
        let canonical = std::fs::canonicalize(dir.path()).expect("canonical");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("{}\nremoved\n", canonical.display())
        );
    }

    #[test]
    fn a_signal_by_name_reaches_the_program() {
        let mut job =
            shell("trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done")
                .start_ready(Duration::from_secs(10), |job| {
                    job.stdout().contains("ready")
                });
        job.signal("TERM");
        let status = job.wait_for(Duration::from_secs(10)).expect("an exit");
        assert_eq!(status.code(), Some(7));
        assert!(job.stdout().ends_with("got TERM\n"), "{}", job.stdout());
        assert_eq!(job.finish(Duration::ZERO).status.code(), Some(7));
    }

    #[test]
    #[should_panic(expected = "sh exited with exit status: 2 before it was ready: gone")]
    fn an_exit_before_ready_panics_with_stderr() {
        shell("echo gone >&2; exit 2").start_ready(Duration::from_secs(10), |_| false);
    }

    #[test]
    #[should_panic(expected = "sleep not ready after")]
    fn never_ready_panics_after_the_timeout() {
        Binary::new("sleep")
            .arg("30")
            .start_ready(Duration::from_millis(200), |_| false);
    }

    #[test]
    #[should_panic(expected = "sleep still running after")]
    fn finish_past_the_timeout_kills_and_panics() {
        Binary::new("sleep")
            .arg("30")
            .run(Duration::from_millis(200));
    }

    #[test]
    fn a_dropped_process_is_killed() {
        let job = Binary::new("sleep").arg("30").start();
        let pid = job.id();
        drop(job);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} still runs"
        );
    }

    #[test]
    fn a_free_port_can_be_listened_on_and_then_accepts() {
        let port = free_port();
        assert!((20_000..32_000).contains(&port), "{port}");
        assert!(!accepts(port), "{port} is taken");
        let _listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind");
        assert!(accepts(port));
    }
}
