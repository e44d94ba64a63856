//! Cluster mode: the same job run as N timely processes (`--processes N --process I --hostfile
//! PATH`), each with `--workers` threads. Process 0 plans the epochs and commits, exactly as a
//! single process does; the others read their shares of each epoch's bytes, by the path process
//! 0 names in the plan, and exchange their deltas with it.
//!
//! Timely does not replace a lost worker, so a lost process stops the whole job: `supervisor`
//! notices the broken connection and ends this process with an error naming the lost one. The
//! commits were atomic, so a restart of every process resumes from the last of them.

pub(crate) mod connect;
pub(crate) mod hostfile;
pub(crate) mod reader;
pub mod secret;
pub(crate) mod supervisor;

use std::path::Path;
use std::time::Duration;

use secret::ClusterSecret;

/// Where this process stands in a cluster; built by `main` from the command line.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Number of processes.
    pub processes: usize,
    /// This process's index, below `processes`; process 0 plans and commits.
    pub process: usize,
    /// `host:port` of every process, in order (this one's is where it listens).
    pub addresses: Vec<String>,
    /// Worker threads in every process (each must be started with the same number).
    pub workers: usize,
    /// How long to wait for the other processes to connect.
    pub connect_timeout: Duration,
    /// The secret every process proves to the others before anything else crosses a
    /// connection; `None` only in a cluster of one process, which connects to nobody.
    pub secret: Option<ClusterSecret>,
}

impl Cluster {
    /// The cluster of `--processes`, `--process`, the hostfile at `hostfile` (already read
    /// into `text`) and the secret of `--cluster-secret-file` (already read), or a message
    /// saying what is wrong with them.
    pub fn from_flags(
        processes: usize,
        process: usize,
        hostfile: &Path,
        text: &str,
        workers: usize,
        connect_timeout: Duration,
        secret: Option<ClusterSecret>,
    ) -> Result<Cluster, String> {
        let file = hostfile.display();
        let addresses =
            hostfile::parse(text).map_err(|e| format!("invalid hostfile {file}: {e}"))?;
        if processes != addresses.len() {
            return Err(format!(
                "--processes {processes} does not match the hostfile {file}, which lists {} \
                 process addresses (one host:port a line)",
                addresses.len()
            ));
        }
        if process >= processes {
            return Err(format!(
                "--process {process} is out of range: with --processes {processes} it is 0 to {}",
                processes - 1
            ));
        }
        if processes > 1 && secret.is_none() {
            return Err(format!(
                "--processes {processes} needs --cluster-secret-file PATH (or \
                 LOGSTATS_CLUSTER_SECRET_FILE): the same secret for every process, which they \
                 prove to each other before anything else; make one with `head -c 32 \
                 /dev/urandom | base64 > cluster.secret; chmod 600 cluster.secret`"
            ));
        }
        Ok(Cluster {
            processes,
            process,
            addresses,
            workers: workers.max(1),
            connect_timeout,
            secret,
        })
    }

    /// Whether this process plans and commits (process 0).
    pub fn is_leader(&self) -> bool {
        self.process == 0
    }

    /// Process `index` as messages name it: `process 1 (10.0.0.2:2101)`.
    pub fn describe(&self, index: usize) -> String {
        match self.addresses.get(index) {
            Some(address) => format!("process {index} ({address})"),
            None => format!("process {index}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(processes: usize, process: usize, text: &str) -> Result<Cluster, String> {
        Cluster::from_flags(
            processes,
            process,
            Path::new("hosts"),
            text,
            2,
            Duration::from_secs(60),
            ClusterSecret::new(b"0123456789abcdef"),
        )
    }

    #[test]
    fn flags_and_hostfile_must_agree() {
        let two = "127.0.0.1:2101\n127.0.0.1:2102\n";
        let ok = cluster(2, 1, two).expect("valid");
        assert_eq!(ok.addresses.len(), 2);
        assert!(!ok.is_leader());
        assert_eq!(ok.describe(1), "process 1 (127.0.0.1:2102)");
        let count = cluster(3, 0, two).unwrap_err();
        assert!(count.contains("lists 2 process addresses"), "{count}");
        let range = cluster(2, 2, two).unwrap_err();
        assert!(range.contains("--process 2 is out of range"), "{range}");
        let bad = cluster(2, 0, "127.0.0.1:2101\nnope\n").unwrap_err();
        assert!(bad.contains("hosts: line 2"), "{bad}");
    }

    #[test]
    fn several_processes_need_a_secret_and_one_does_not() {
        let flags = |processes: usize, text: &str| {
            Cluster::from_flags(
                processes,
                0,
                Path::new("hosts"),
                text,
                1,
                Duration::from_secs(60),
                None,
            )
        };
        let missing = flags(2, "127.0.0.1:2101\n127.0.0.1:2102\n").unwrap_err();
        assert!(
            missing.contains("--processes 2 needs --cluster-secret-file PATH"),
            "{missing}"
        );
        let alone = flags(1, "127.0.0.1:2101\n").expect("one process needs no secret");
        assert!(alone.secret.is_none());
    }
}
