//! Remembered response bodies, reused only for exactly the rows they were built from.
//!
//! The handler always reads the range's rows; what this saves is decoding the digests, merging
//! them and writing the JSON. An entry is reused only when the rows just read are equal, column
//! by column and byte by byte, to the rows it was built from, so a committed change is visible
//! on the very next request: there is nothing to invalidate and nothing can be stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::web::Bytes;
use chrono::NaiveDate;

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

struct Answer {
    rows: Vec<StoredDay>,
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

    /// The body remembered for `key`, if it was built from exactly `rows`.
    pub fn get(&self, key: &AnswerKey, rows: &[StoredDay]) -> Option<Bytes> {
        if self.capacity == 0 {
            return None;
        }
        let answer = self.lock().get(key).cloned()?;
        (answer.rows == rows).then(|| answer.body.clone())
    }

    /// Remembers `body` as the answer for `key` over `rows`; forgets everything when full.
    pub fn put(&self, key: AnswerKey, rows: Vec<StoredDay>, body: Bytes) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, Arc::new(Answer { rows, body }));
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

    fn row(successful: i64, digest: &[u8]) -> StoredDay {
        let day = NaiveDate::from_ymd_opt(2024, 10, 10).expect("valid date");
        (day, successful, 0, 1, 1, 1, digest.to_vec())
    }

    #[test]
    fn reuses_a_body_only_for_identical_rows() {
        let answers = Answers::new(4);
        answers.put(key("a"), vec![row(1, b"x")], Bytes::from_static(b"one"));
        assert_eq!(
            answers.get(&key("a"), &[row(1, b"x")]),
            Some(Bytes::from_static(b"one"))
        );
        assert_eq!(answers.get(&key("a"), &[row(2, b"x")]), None);
        assert_eq!(answers.get(&key("a"), &[row(1, b"y")]), None);
        assert_eq!(answers.get(&key("a"), &[row(1, b"x"), row(1, b"x")]), None);
        assert_eq!(answers.get(&key("b"), &[row(1, b"x")]), None);
    }

    #[test]
    fn stays_bounded_and_can_be_off() {
        let answers = Answers::new(2);
        for customer in ["a", "b", "c"] {
            answers.put(key(customer), vec![], Bytes::from_static(b"{}"));
        }
        assert!(answers.lock().len() <= 2);
        assert!(answers.get(&key("c"), &[]).is_some());
        let off = Answers::new(0);
        off.put(key("a"), vec![], Bytes::from_static(b"{}"));
        assert_eq!(off.get(&key("a"), &[]), None);
    }
}
