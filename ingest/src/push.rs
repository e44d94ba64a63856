//! Lines pushed over HTTP (`--listen ADDR`, `POST /v1/lines`) into the same exactly-once
//! pipeline as files: each batch is appended to a spool (see `spool.rs`), planned whole into an
//! epoch, and its request is answered once that epoch is committed. A batch sent
//! with an `Idempotency-Key` stores the key and its counts in the transaction that commits its
//! lines, so the same batch sent again (after a lost reply, a timeout, or a restart of the job)
//! is answered from the table and adds nothing; a key whose batch is still in flight waits for
//! that batch's answer, and a key committed lately is answered from memory.
//!
//! The batches that arrive while a commit is in progress are planned together as the next
//! epoch (up to its size), each still answered with its own counts: one commit for many
//! batches.
//!
//! `PushIntake` is what the HTTP handlers (`push/server.rs`) and the committer share: the
//! spool, the requests waiting for their batches, and the keys in flight.

pub(crate) mod body;
pub(crate) mod server;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::Instant;

use logstats_shared::BatchCounts;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::spool::{BatchTicket, Spool};

/// How often at most a commit also deletes the keys older than `--push-key-ttl`.
const EXPIRY_INTERVAL_SECS: i64 = 60;

/// Limits of `--listen` (each a flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushLimits {
    /// Largest request body as sent (compressed or not): 413 beyond.
    pub max_body: u64,
    /// Largest batch once decompressed: 413 beyond (a gzip bomb stops here).
    pub max_batch: u64,
    /// Most lines in a batch: 413 beyond.
    pub max_lines: u64,
    /// Bytes of request bodies held in memory at once, all requests together: 503 beyond.
    pub memory: u64,
    /// Bytes of batches accepted and not yet committed (in the spool, on disk): 503 beyond.
    pub backlog: u64,
    /// Seconds a request may take to send its body: 408 beyond.
    pub body_timeout_secs: u64,
    /// Seconds an idempotency key is remembered after its batch was committed.
    pub key_ttl_secs: i64,
}

impl Default for PushLimits {
    fn default() -> Self {
        Self {
            max_body: 16 << 20,
            max_batch: 64 << 20,
            max_lines: 1_000_000,
            memory: 256 << 20,
            backlog: 1 << 30,
            body_timeout_secs: 30,
            key_ttl_secs: 86_400,
        }
    }
}

/// What a waiting request learns of its batch: its counts, or why it was not committed.
pub(crate) type BatchOutcome = Result<BatchCounts, String>;

/// Why a batch was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SubmitError {
    /// The spool holds `backlog` bytes not yet committed, over the limit.
    #[error("{backlog} bytes of pushed lines wait for their commit (limit {limit}); retry later")]
    Backlog {
        /// Bytes waiting.
        backlog: u64,
        /// `--push-backlog`.
        limit: u64,
    },
    /// The job is stopping.
    #[error("the ingest job is stopping; retry later")]
    Closed,
    /// The spool could not be written.
    #[error("cannot spool the batch: {0}")]
    Spool(String),
}

/// How long, and how many, keys of committed batches are remembered in memory (besides the
/// table): a request that looked its key up in the table just before that batch's commit
/// finds it here instead of spooling the batch a second time.
const RECENT_KEYS_SECS: u64 = 600;
const RECENT_KEYS: usize = 100_000;

/// The requests waiting for their batches, the keys in flight, and the keys just committed.
#[derive(Default)]
struct Waiting {
    /// Batch id to the requests waiting for it (the first, and any sent with its key since).
    requests: HashMap<u64, Vec<oneshot::Sender<BatchOutcome>>>,
    /// Idempotency keys of the batches in flight, to their ids.
    keys: HashMap<String, u64>,
    /// Keys of batches committed lately, with their counts.
    recent: HashMap<String, BatchCounts>,
    /// The same keys, oldest first, with when they were committed.
    recent_order: VecDeque<(Instant, String)>,
}

/// A batch taken: waiting for its commit, or already committed under its key.
pub(crate) enum Submitted {
    /// Its outcome comes once it is committed.
    Waiting(oneshot::Receiver<BatchOutcome>),
    /// A batch with the same key was committed: its counts.
    Replayed(BatchCounts),
}

impl Waiting {
    /// The batch with `key`: in flight (a receiver for its outcome) or just committed.
    fn find(&mut self, key: &str) -> Option<Submitted> {
        if let Some(counts) = self.recent.get(key) {
            return Some(Submitted::Replayed(*counts));
        }
        let id = *self.keys.get(key)?;
        let (sender, receiver) = oneshot::channel();
        self.requests.entry(id).or_default().push(sender);
        Some(Submitted::Waiting(receiver))
    }

    /// Remembers `key`, committed with `counts`, forgetting the oldest keys.
    fn remember(&mut self, key: &str, counts: BatchCounts) {
        let now = Instant::now();
        self.recent.insert(key.to_string(), counts);
        self.recent_order.push_back((now, key.to_string()));
        while let Some((at, oldest)) = self.recent_order.front() {
            let expired = now.duration_since(*at).as_secs() >= RECENT_KEYS_SECS;
            if !expired && self.recent_order.len() <= RECENT_KEYS {
                break;
            }
            self.recent.remove(oldest);
            self.recent_order.pop_front();
        }
    }
}

/// What the HTTP handlers and the committer share.
pub(crate) struct PushIntake {
    spool: Arc<Spool>,
    limits: PushLimits,
    next_id: AtomicU64,
    waiting: Mutex<Waiting>,
    /// Bytes of the spool committed.
    committed: AtomicU64,
    /// Cleared when the job stops: no batch is taken any more.
    open: AtomicBool,
    /// When keys were last expired (Unix seconds).
    last_expiry: AtomicI64,
    /// Worker 0, woken when a batch arrives (it parks while there is nothing to plan).
    planner: Mutex<Option<Thread>>,
}

impl PushIntake {
    /// An intake appending to `spool`.
    pub fn new(spool: Arc<Spool>, limits: PushLimits) -> Self {
        Self {
            spool,
            limits,
            next_id: AtomicU64::new(0),
            waiting: Mutex::new(Waiting::default()),
            committed: AtomicU64::new(0),
            open: AtomicBool::new(true),
            last_expiry: AtomicI64::new(i64::MIN),
            planner: Mutex::new(None),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &PushLimits {
        &self.limits
    }

    /// The thread that plans epochs: woken whenever a batch arrives.
    pub fn planned_by(&self, thread: Thread) {
        *self.planner.lock() = Some(thread);
    }

    /// The batch with idempotency key `key`, in flight or just committed, if there is one.
    pub fn follow(&self, key: &str) -> Option<Submitted> {
        self.waiting.lock().find(key)
    }

    /// Appends `lines` (ending with a newline) as a batch of its own, with `key`, and
    /// `rejected_before` lines already rejected; the receiver gets its outcome once committed.
    /// A batch with the same key in flight is followed instead of appending this one.
    pub fn submit(
        &self,
        lines: &[u8],
        key: Option<String>,
        rejected_before: u64,
    ) -> Result<Submitted, SubmitError> {
        if !self.open.load(Ordering::Acquire) {
            return Err(SubmitError::Closed);
        }
        let backlog = self.spool.backlog(self.committed.load(Ordering::Acquire));
        if backlog > self.limits.backlog {
            return Err(SubmitError::Backlog {
                backlog,
                limit: self.limits.backlog,
            });
        }
        let (sender, receiver) = oneshot::channel();
        {
            // Held while appending: a second request with the same key finds this one in
            // flight, never spools the batch twice.
            let mut waiting = self.waiting.lock();
            if let Some(found) = key.as_deref().and_then(|k| waiting.find(k)) {
                return Ok(found);
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let ticket = BatchTicket {
                id,
                key: key.clone(),
                rejected_before,
            };
            self.spool
                .append_batch(lines, ticket)
                .map_err(|e| SubmitError::Spool(e.to_string()))?;
            waiting.requests.insert(id, vec![sender]);
            if let Some(key) = key {
                waiting.keys.insert(key, id);
            }
        }
        if let Some(planner) = self.planner.lock().as_ref() {
            planner.unpark();
        }
        Ok(Submitted::Waiting(receiver))
    }

    /// The committer's word on batch `ticket`, whose epoch ended at spool byte `end`.
    pub fn finished(&self, ticket: &BatchTicket, end: u64, outcome: BatchOutcome) {
        if outcome.is_ok() {
            self.committed.fetch_max(end, Ordering::AcqRel);
        }
        let requests = {
            let mut waiting = self.waiting.lock();
            if let Some(key) = &ticket.key {
                waiting.keys.remove(key);
                if let Ok(counts) = &outcome {
                    waiting.remember(key, *counts);
                }
            }
            waiting.requests.remove(&ticket.id).unwrap_or_default()
        };
        for request in requests {
            // A request that gave up (its client went away) has dropped its receiver.
            let _ = request.send(outcome.clone());
        }
    }

    /// Keys committed before this (Unix seconds) are to be deleted by the commit at `now`,
    /// at most once a minute.
    pub fn expire_before(&self, now: i64) -> Option<i64> {
        let last = self.last_expiry.load(Ordering::Relaxed);
        if last != i64::MIN && now - last < EXPIRY_INTERVAL_SECS {
            return None;
        }
        self.last_expiry.store(now, Ordering::Relaxed);
        Some(now.saturating_sub(self.limits.key_ttl_secs))
    }

    /// The job stops: no batch is taken any more, and the requests whose batches were not
    /// planned are answered 503 (their receivers see the senders dropped).
    pub fn close(&self) {
        self.open.store(false, Ordering::Release);
        let mut waiting = self.waiting.lock();
        waiting.requests.clear();
        waiting.keys.clear();
    }
}

/// The counts a batch's commit answers with: its lines' counts, `rejected_before` lines
/// rejected before spooling, and `pruned` lines of days pruned meanwhile counted late.
pub(crate) fn batch_counts(
    accepted: u64,
    rejected: u64,
    late: u64,
    rejected_before: u64,
    pruned: u64,
) -> BatchCounts {
    BatchCounts {
        accepted: accepted.saturating_sub(pruned),
        rejected: rejected + rejected_before,
        late: late + pruned,
    }
}
