//! Remembered response bodies, reused only while the customer's rows are unchanged.
//!
//! Every commit that changes a customer's rows bumps that customer's version in the same
//! transaction. An entry remembers the version its rows were read at (the same version was read
//! before and after the rows), and is reused only when a fresh read of the version gives that
//! number again: a committed change is visible on the very next request, and nothing can be
//! stale. What this saves is reading the rows, decoding and merging the digests and writing
//! the JSON: a hit costs one read of one small row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
}

impl Answers {
    /// Remembers up to `capacity` answers (none when 0).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AnswerKey, Arc<Answer>>> {
        // A panic while holding the lock cannot leave a half-written entry behind.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
