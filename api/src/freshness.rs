//! Shared version checks: one database read confirms the customer versions for every request
//! that arrived before it started.
//!
//! A request may reuse a remembered answer only if no commit visible when it arrived changed the
//! customer's rows. Reading the customer's version once per request guarantees that, at the cost
//! of one database round trip per request. Here one thread reads, in rounds, the versions that
//! changed since the last round (`Store::versions_since`: one index range, empty when nothing
//! was committed) and keeps a copy of every customer's version. A request waits for the first
//! round that *started after it arrived*; any commit visible at its arrival is then in the copy.
//! Under load one round serves every request that arrived while the previous one ran, so the
//! database sees one small read per round instead of one per request, and a hit never leaves
//! the HTTP worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstats_shared::Store;
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

/// Least time between the starts of two rounds. Under load a round is always wanted; spacing
/// them bounds the database's share of the CPU (each round serves every request that arrived
/// meanwhile) at the cost of at most this much added wait.
const ROUND_SPACING: Duration = Duration::from_micros(250);

/// Every customer's version as of one round.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    /// The round that read them (0 before the first).
    pub round: u64,
    /// Customer id to version; a customer not present has version 0 (no rows).
    pub versions: Arc<HashMap<Box<str>, i64>>,
    /// The newest version of any customer (0 before the first commit): it changes with every
    /// commit, so it versions answers about the whole fleet.
    pub newest: i64,
    /// Set when the round could not read the database: the copy may be old.
    pub error: Option<Arc<str>>,
    /// When the round ended (`None` before the first).
    pub finished: Option<Instant>,
    /// The schema as last checked (every [`SCHEMA_CHECK_EVERY`], on the reader's connection).
    pub schema: Schema,
}

/// What the last check of the database's schema found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Schema {
    /// Not checked yet, or the database did not answer.
    #[default]
    Unknown,
    /// Every migration of this build is applied.
    Current,
    /// This many migrations of this build are not applied.
    Behind(usize),
    /// A newer version of logstats migrated the database (the message says which migration):
    /// this process must not serve it.
    Newer(Arc<str>),
}

/// How often a round also checks the schema (the readiness check reads the result).
pub const SCHEMA_CHECK_EVERY: Duration = Duration::from_secs(2);

impl Versions {
    /// The version of `customer` (0 if it never had rows).
    pub fn of(&self, customer: &str) -> i64 {
        self.versions.get(customer).copied().unwrap_or(0)
    }
}

struct Shared {
    /// Rounds started so far; round `n` starts by making this `n`.
    started: AtomicU64,
    /// The highest round some request waits for, and whether to stop.
    wanted: Mutex<(u64, bool)>,
    wake: Condvar,
    published: watch::Sender<Versions>,
}

/// The handle requests use; dropping it stops the reading thread.
pub struct Freshness {
    shared: Arc<Shared>,
    versions: watch::Receiver<Versions>,
}

impl Freshness {
    /// Starts the thread that reads versions from `store` in rounds, on demand.
    pub fn start(store: Store) -> std::io::Result<Self> {
        let (published, versions) = watch::channel(Versions::default());
        let shared = Arc::new(Shared {
            started: AtomicU64::new(0),
            wanted: Mutex::new((0, false)),
            wake: Condvar::new(),
            published,
        });
        let reader = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("versions".into())
            .spawn(move || read_rounds(&reader, &store))?;
        Ok(Self { shared, versions })
    }

    /// Every customer's version, read by a round that started after this call: it includes
    /// every commit visible when the call was made. A round that fails after this call began
    /// answers too, with its error: with the database away, the caller learns it within one
    /// round (the pool's connection timeout) instead of waiting for a failing round in progress
    /// and then another.
    pub async fn current(&self) -> Versions {
        let arrived = Instant::now();
        let needed = self.shared.started.load(Ordering::SeqCst) + 1;
        {
            let mut wanted = self.shared.wanted.lock();
            if wanted.0 < needed {
                wanted.0 = needed;
                self.shared.wake.notify_one();
            }
        }
        let mut versions = self.versions.clone();
        let answers = |v: &Versions| {
            v.round >= needed || (v.error.is_some() && v.finished.is_some_and(|at| at >= arrived))
        };
        let current = match versions.wait_for(answers).await {
            Ok(current) => current.clone(),
            // The reading thread is gone (only while shutting down): report, don't hang.
            Err(_) => Versions {
                error: Some("the version reader stopped".into()),
                ..Versions::default()
            },
        };
        current
    }
}

impl Drop for Freshness {
    fn drop(&mut self) {
        self.shared.wanted.lock().1 = true;
        self.shared.wake.notify_one();
    }
}

/// The reading thread: one round whenever a request waits for a round not yet started.
fn read_rounds(shared: &Shared, store: &Store) {
    let mut reader = store.version_reader();
    let mut versions: Arc<HashMap<Box<str>, i64>> = Arc::default();
    let mut newest = 0;
    let mut done = 0;
    let mut last_start: Option<Instant> = None;
    let mut schema = Schema::Unknown;
    let mut schema_checked: Option<Instant> = None;
    loop {
        {
            let mut wanted = shared.wanted.lock();
            while wanted.0 <= done && !wanted.1 {
                shared.wake.wait(&mut wanted);
            }
            if wanted.1 {
                return;
            }
        }
        if let Some(wait) = last_start.and_then(|at| ROUND_SPACING.checked_sub(at.elapsed())) {
            std::thread::sleep(wait);
        }
        last_start = Some(Instant::now());
        let round = shared.started.fetch_add(1, Ordering::SeqCst) + 1;
        let error = match reader.since(newest) {
            Ok(changed) => {
                if !changed.is_empty() {
                    let map = Arc::make_mut(&mut versions);
                    for (customer, version) in changed {
                        newest = newest.max(version);
                        map.insert(customer.into_boxed_str(), version);
                    }
                }
                None
            }
            Err(error) => {
                log::warn!("reading customer versions: {error}");
                Some(Arc::from(error.to_string()))
            }
        };
        if error.is_some() {
            schema = Schema::Unknown;
            schema_checked = None;
        } else if schema_checked.is_none_or(|at| at.elapsed() >= SCHEMA_CHECK_EVERY) {
            schema = match reader.pending_migrations() {
                Ok(0) => Schema::Current,
                Ok(pending) => Schema::Behind(pending),
                Err(error @ logstats_shared::StorageError::SchemaNewer { .. }) => {
                    log::error!("{error}");
                    Schema::Newer(Arc::from(error.to_string()))
                }
                Err(error) => {
                    log::warn!("reading the schema's migrations: {error}");
                    Schema::Unknown
                }
            };
            schema_checked = Some(Instant::now());
        }
        shared.published.send_replace(Versions {
            round,
            versions: Arc::clone(&versions),
            newest,
            error,
            finished: Some(Instant::now()),
            schema: schema.clone(),
        });
        done = round;
    }
}
