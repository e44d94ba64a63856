//! Cluster processes for the tests: a hostfile of free local ports with a secret file beside
//! it, and `logstats-ingest` processes started through the shared harness
//! (`logstats_shared::testing::spawn`).

use std::fs::Permissions;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use logstats_shared::testing::spawn::{free_port, Spawned};
use logstats_shared::testing::TestDatabase;
use serde_json::Value;

use super::{job, s};

/// A hostfile for `processes` processes on free local ports, with a comment and a blank line;
/// and the cluster's secret file beside it ([`secret_file`]).
pub fn hostfile(dir: &Path, processes: usize) -> PathBuf {
    let path = dir.join("hosts");
    let mut text = String::from("# logstats cluster, one host:port a line\n\n");
    for _ in 0..processes {
        text.push_str(&format!("127.0.0.1:{}\n", free_port()));
    }
    std::fs::write(&path, text).expect("write hostfile");
    // 32 random bytes, as text (hex here, base64 in the docs), and a newline.
    let mut random = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut random))
        .expect("random bytes");
    let secret: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let secret_path = secret_file(&path);
    std::fs::write(&secret_path, format!("{secret}\n")).expect("write secret");
    std::fs::set_permissions(&secret_path, Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// The secret file of the cluster whose hostfile is `hosts`, written by [`hostfile`].
pub fn secret_file(hosts: &Path) -> PathBuf {
    hosts.with_file_name("cluster.secret")
}

/// The addresses in the hostfile `hosts`, in order.
pub fn addresses(hosts: &Path) -> Vec<String> {
    std::fs::read_to_string(hosts)
        .expect("hosts")
        .lines()
        .filter(|l| l.starts_with("127."))
        .map(String::from)
        .collect()
}

/// A running `logstats-ingest --json`, through the shared harness: its stdout and stderr in
/// files, killed if the test ends first.
pub struct Process(Spawned);

impl Process {
    /// Starts `logstats-ingest --json ARGS` on `db`, with `RUST_LOG=info`.
    pub fn start(db: &TestDatabase, args: &[&str]) -> Process {
        Process(
            job(&db.url)
                .arg("--json")
                .args(args)
                .env("RUST_LOG", "info")
                .start(),
        )
    }

    /// Process `process` of the cluster in `hosts` (with its [`secret_file`]), one worker,
    /// reading `args`.
    pub fn member(
        db: &TestDatabase,
        hosts: &Path,
        processes: usize,
        process: usize,
        args: &[&str],
    ) -> Process {
        let (n, i) = (processes.to_string(), process.to_string());
        let secret = secret_file(hosts);
        let mut all = vec![
            "--workers",
            "1",
            "--processes",
            &n,
            "--process",
            &i,
            "--hostfile",
            s(hosts),
            "--cluster-secret-file",
            s(&secret),
        ];
        all.extend_from_slice(args);
        Process::start(db, &all)
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Waits up to `timeout` for the exit; its status, or `None` if it still runs.
    pub fn wait_for(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.0.wait_for(timeout)
    }

    pub fn stdout(&self) -> String {
        self.0.stdout()
    }

    pub fn stderr(&self) -> String {
        self.0.stderr()
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

    /// Sends `signal` (`TERM`, ...).
    pub fn signal(&self, signal: &str) {
        self.0.signal(signal);
    }
}
