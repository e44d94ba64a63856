//! Remembered response bodies, reused only while the customer's rows are unchanged.
//!
//! Every commit that changes a customer's rows bumps that customer's version in the same
//! transaction. An entry remembers the version its rows were read at (the same version was read
//! before and after the rows), and is reused only when a fresh read of the version gives that
//! number again: a committed change is visible on the very next request, and nothing can be
//! stale. What this saves is reading the rows, decoding and merging the digests and writing
//! the JSON: a hit costs one read of one small row.
//!
//! Misses fly once: while one request builds the body of a key at a version, the others that
//! miss on the same key and version wait for it and then look again, instead of each reading
//! the same rows (after a start or a commit, every connection asking about the customer would
//! otherwise miss at once). A waiter only takes a body remembered at its own version, so
//! waiting never makes an answer stale; when the builder fails, is cancelled or could not
//! remember its body, each waiter builds its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::web::Bytes;
use chrono::NaiveDate;

use crate::domain::{CustomerId, RequestedRange};

/// Default number of remembered answers (`--answer-cache` overrides; 0 turns it off).
pub const DEFAULT_ANSWERS: usize = 1024;

/// One stored row as read: day, successful, failed, latency sum, min, max, digest blob.
pub type StoredDay = (NaiveDate, i64, i64, i64, i64, i64, Vec<u8>);

/// What a body answers: the customer and the requested range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    /// The customer id.
    pub customer: Box<str>,
    /// First day asked for.
    pub from: NaiveDate,
    /// Last day asked for, if given.
    pub to: Option<NaiveDate>,
}

impl AnswerKey {
    /// The key of `customer` over `range`.
    pub fn new(customer: &CustomerId, range: &RequestedRange) -> Self {
        Self {
            customer: customer.as_str().into(),
            from: range.from,
            to: range.to,
        }
    }
}

struct Answer {
    version: i64,
    body: Bytes,
}

/// At most `capacity` bodies with the rows they were built from; shared by all workers.
pub struct Answers {
    capacity: usize,
    entries: Mutex<HashMap<AnswerKey, Arc<Answer>>>,
    /// Bodies being built, by key and version: closed when the build ends.
    flights: Mutex<HashMap<(AnswerKey, i64), tokio::sync::watch::Receiver<()>>>,
}

/// A miss's part in building a body (see the module documentation).
pub enum Flight {
    /// This request builds the body; waiters wake when the guard is dropped.
    Build(FlightGuard),
    /// Another request is building it: wait with [`Flight::landed`], then look again.
    Wait(tokio::sync::watch::Receiver<()>),
}

impl Flight {
    /// Waits until the body this request waits for is built (or its build ended otherwise).
    pub async fn landed(self) {
        if let Flight::Wait(mut done) = self {
            // Nothing is ever sent: the builder's guard closes the channel when it ends.
            while done.changed().await.is_ok() {}
        }
    }
}

/// Held by the request building a body; dropping it wakes the waiters.
pub struct FlightGuard {
    answers: Arc<Answers>,
    key: Option<(AnswerKey, i64)>,
    _done: tokio::sync::watch::Sender<()>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.answers.flights).remove(&key);
        }
    }
}

impl Answers {
    /// Remembers up to `capacity` answers (none when 0).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// Joins the build of `key`'s body at `version`: builds it if no other request does.
    pub fn fly(self: &Arc<Self>, key: &AnswerKey, version: i64) -> Flight {
        let mut flights = lock(&self.flights);
        let flight = (key.clone(), version);
        if let Some(done) = flights.get(&flight) {
            return Flight::Wait(done.clone());
        }
        let (sender, receiver) = tokio::sync::watch::channel(());
        flights.insert(flight.clone(), receiver);
        Flight::Build(FlightGuard {
            answers: Arc::clone(self),
            key: Some(flight),
            _done: sender,
        })
    }

    /// Whether answers are remembered at all.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The body remembered for `key`, if it was built at the customer's `version`.
    pub fn get(&self, key: &AnswerKey, version: i64) -> Option<Bytes> {
        if self.capacity == 0 {
            return None;
        }
        let answer = self.lock().get(key).cloned()?;
        (answer.version == version).then(|| answer.body.clone())
    }

    /// Remembers `body` as the answer for `key` at `version`; forgets everything when full.
    pub fn put(&self, key: AnswerKey, version: i64, body: Bytes) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, Arc::new(Answer { version, body }));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AnswerKey, Arc<Answer>>> {
        lock(&self.entries)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a half-written entry behind.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(customer: &str) -> AnswerKey {
        AnswerKey {
            customer: customer.into(),
            from: NaiveDate::from_ymd_opt(2024, 10, 10).expect("valid date"),
            to: None,
        }
    }

    #[test]
    fn reuses_a_body_only_at_the_same_version() {
        let answers = Answers::new(4);
        answers.put(key("a"), 7, Bytes::from_static(b"one"));
        assert_eq!(answers.get(&key("a"), 7), Some(Bytes::from_static(b"one")));
        assert_eq!(answers.get(&key("a"), 8), None);
        assert_eq!(answers.get(&key("b"), 7), None);
        let mut other_range = key("a");
        other_range.to = other_range.from.succ_opt();
        assert_eq!(answers.get(&other_range, 7), None);
    }

    /// One build per key and version; the others wait for it, and wake when it ends.
    #[actix_web::test]
    async fn misses_fly_once_per_key_and_version() {
        let answers = Arc::new(Answers::new(4));
        let Flight::Build(guard) = answers.fly(&key("a"), 7) else {
            panic!("the first miss builds");
        };
        let waiter = answers.fly(&key("a"), 7);
        assert!(matches!(waiter, Flight::Wait(_)));
        assert!(matches!(answers.fly(&key("a"), 8), Flight::Build(_)));
        assert!(matches!(answers.fly(&key("b"), 7), Flight::Build(_)));
        let woke = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let woke_in_task = Arc::clone(&woke);
        let waiting = actix_web::rt::spawn(async move {
            waiter.landed().await;
            woke_in_task.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            !woke.load(std::sync::atomic::Ordering::SeqCst),
            "woke before the build ended"
        );
        answers.put(key("a"), 7, Bytes::from_static(b"built"));
        drop(guard);
        waiting.await.expect("waiter");
        assert!(woke.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(
            answers.get(&key("a"), 7),
            Some(Bytes::from_static(b"built"))
        );
        // The flight has ended: the next miss builds again.
        assert!(matches!(answers.fly(&key("a"), 7), Flight::Build(_)));
    }

    #[test]
    fn stays_bounded_and_can_be_off() {
        let answers = Answers::new(2);
        for customer in ["a", "b", "c"] {
            answers.put(key(customer), 1, Bytes::from_static(b"{}"));
        }
        assert!(answers.lock().len() <= 2);
        assert!(answers.get(&key("c"), 1).is_some());
        let off = Answers::new(0);
        off.put(key("a"), 1, Bytes::from_static(b"{}"));
        assert_eq!(off.get(&key("a"), 1), None);
    }
}
