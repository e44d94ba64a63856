//! Cluster processes for the tests: free local ports, a hostfile, and `logstats-ingest`
//! processes whose output goes to files (a full pipe would block them), killed when dropped.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logstats_shared::testing::{Random, TestDatabase};
use serde_json::Value;

use super::INGEST;

/// A port nobody listens on now (the listener is closed again at once). Below Linux's
/// ephemeral range (32768-60999), so that no outgoing connection of a concurrent test takes it
/// before the process listening on it starts.
pub fn free_port() -> u16 {
    static SEED: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut random =
        Random(nanos ^ u64::from(std::process::id()) ^ SEED.fetch_add(1, Ordering::Relaxed) << 40);
    loop {
        let port = 20_000 + random.below(12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A hostfile for `processes` processes on free local ports, with a comment and a blank line.
pub fn hostfile(dir: &Path, processes: usize) -> PathBuf {
    let path = dir.join("hosts");
    let mut text = String::from("# logstats cluster, one host:port a line\n\n");
    for _ in 0..processes {
        text.push_str(&format!("127.0.0.1:{}\n", free_port()));
    }
    std::fs::write(&path, text).expect("write hostfile");
    path
}

pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf8 path")
}

/// A running `logstats-ingest`, its stdout and stderr in files; killed if the test ends first.
pub struct Process {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Process {
    /// Starts `logstats-ingest --json ARGS` with its output in `dir/NAME.out` and `.err`.
    pub fn start(dir: &Path, name: &str, db: &TestDatabase, args: &[&str]) -> Process {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let child = Command::new(INGEST)
            .args(["--database-url", &db.url, "--json"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(File::create(&stdout).expect("stdout file")))
            .stderr(Stdio::from(File::create(&stderr).expect("stderr file")))
            .spawn()
            .expect("spawn logstats-ingest");
        Process {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Process `process` of the cluster in `hosts`, one worker, reading `args`.
    pub fn member(
        dir: &Path,
        db: &TestDatabase,
        hosts: &Path,
        processes: usize,
        process: usize,
        args: &[&str],
    ) -> Process {
        let (n, i) = (processes.to_string(), process.to_string());
        let mut all = vec![
            "--workers",
            "1",
            "--processes",
            &n,
            "--process",
            &i,
            "--hostfile",
            s(hosts),
        ];
        all.extend_from_slice(args);
        Process::start(dir, &format!("process-{process}"), db, &all)
    }

    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("running")
    }

    /// Waits up to `timeout` for the exit; its status, or `None` if it still runs.
    pub fn wait_for(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child().try_wait().expect("wait") {
                self.child = None;
                return Some(status);
            }
            if started.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for a successful exit; the JSON summary it printed, if any.
    pub fn succeed(mut self, timeout: Duration) -> Option<Value> {
        let status = self.wait_for(timeout);
        assert!(
            status.is_some_and(|s| s.success()),
            "{status:?}: {}",
            self.stderr()
        );
        let out = self.stdout();
        (!out.trim().is_empty())
            .then(|| serde_json::from_str(&out).unwrap_or_else(|e| panic!("summary {out:?}: {e}")))
    }

    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
