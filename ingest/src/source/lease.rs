//! Who reads a source: the job's identity in the lease table ([`JobId`]: host, process id and
//! start time, and whether a holder on this host is gone, by `/proc`), and taking a source's
//! lease, waiting while another live job holds it ([`acquire_lease`]). Commits and the follow
//! loop renew the leases; a lease not renewed lapses after [`LEASE_SECONDS`].

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logstats_shared::{LeaseOutcome, SourceOffset, Store};

use super::SourceError;

/// How long a lease lasts unless renewed; commits and the follow loop renew it.
pub const LEASE_SECONDS: i64 = 30;

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// This job's identity in the lease table: host, process id and start time.
#[derive(Debug, Clone)]
pub struct JobId {
    id: String,
    host: String,
}

impl JobId {
    /// The id of the current process.
    pub fn current() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            id: format!("{host}:{}:{nanos}", std::process::id()),
            host,
        }
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Whether the holder of a lease is a process of this host that no longer runs: a job
    /// killed with SIGKILL never released its leases, and its restart should not wait them out.
    pub fn holder_is_gone(&self, holder: &str) -> bool {
        let mut parts = holder.split(':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
            return false;
        };
        // A holder with our own pid that is not us is an earlier incarnation (a container
        // restarted as pid 1, say): the pid is ours now, so that process is gone.
        host == self.host
            && holder != self.id
            && pid.parse::<u32>().is_ok_and(|pid| {
                pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists()
            })
    }
}

/// Takes the lease of `key` for `job`, waiting (with a message) while another live job holds
/// it; returns the offsets row stored under the key.
pub(crate) fn acquire_lease(
    store: &Store,
    key: &str,
    name: &str,
    fingerprint: &[u8],
    job: &JobId,
    shutdown: &AtomicBool,
) -> Result<Option<SourceOffset>, SourceError> {
    let mut last_message: Option<Instant> = None;
    loop {
        let now = unix_now();
        let outcome = store.acquire_lease(
            key,
            fingerprint,
            job.as_str(),
            now,
            now + LEASE_SECONDS,
            &|holder| job.holder_is_gone(holder),
        )?;
        match outcome {
            LeaseOutcome::Acquired(stored) => return Ok(stored),
            LeaseOutcome::Held(holder) => {
                if last_message.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    log::warn!(
                        "{name} is being ingested by job {} (lease until {}); waiting for it",
                        holder.owner,
                        holder.until
                    );
                    last_message = Some(Instant::now());
                }
            }
        }
        for _ in 0..10 {
            if shutdown.load(Ordering::Relaxed) {
                return Err(SourceError::Interrupted(name.to_string()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
