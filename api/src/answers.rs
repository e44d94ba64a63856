//! Remembered response bodies, reused only while the customer's rows are unchanged.
//!
//! Every commit that changes a customer's rows bumps that customer's version in the same
//! transaction. An entry remembers the version the copy of the rows it was built from was
//! current at, and is reused only while the request's version (see `crate::freshness`) is that
//! number: a committed change is visible on the very next request, and nothing can be stale.
//! What this saves is merging the range's days and writing the JSON: the whole answer to a
//! repeated URL. Entries are bounded in bytes, not in number.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::web::Bytes;
use chrono::NaiveDate;
use parking_lot::Mutex;

use logstats_shared::metrics::Counter;

use crate::domain::{CustomerId, RequestedRange};

/// Default byte budget of remembered answers (`--answer-cache-bytes` overrides; 0 turns it off).
pub const DEFAULT_ANSWER_BYTES: usize = 16 << 20;

/// Bytes an entry costs beyond its body and customer id (map slot, key, allocations).
const ENTRY_OVERHEAD_BYTES: usize = 128;

/// What a body answers: the subject (a customer id, or an endpoint and its options) and the
/// requested range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    /// The customer id alone for a plain customer answer; anything else (a fleet endpoint, extra
    /// percentiles) contains characters a customer id cannot, so keys never collide.
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

    /// The key of another answer over `range`: `subject` names it (an endpoint and its options)
    /// and must contain a character no customer id has (`/`, `?`, `=`).
    pub fn subject(subject: String, range: &RequestedRange) -> Self {
        Self {
            customer: subject.into_boxed_str(),
            from: range.from,
            to: range.to,
        }
    }
}

struct Answer {
    version: i64,
    body: Bytes,
}

/// Bodies of at most `budget` bytes in all, with the versions they were built at; shared by all
/// workers.
pub struct Answers {
    budget: usize,
    entries: Mutex<Entries>,
    /// Lookups that found a body current at the version asked for.
    hits: Counter,
    /// Lookups that did not (none while the budget is 0: nothing is looked up).
    misses: Counter,
}

#[derive(Default)]
struct Entries {
    map: HashMap<AnswerKey, Arc<Answer>>,
    /// Bytes of every entry held.
    bytes: usize,
}

impl Answers {
    /// Remembers answers of up to `budget` bytes in all (none when 0).
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            entries: Mutex::new(Entries::default()),
            hits: Counter::new(),
            misses: Counter::new(),
        }
    }

    /// The body remembered for `key`, if it was built at the customer's `version`.
    pub fn get(&self, key: &AnswerKey, version: i64) -> Option<Bytes> {
        if self.budget == 0 {
            return None;
        }
        let answer = self.entries.lock().map.get(key).cloned();
        let body = answer
            .filter(|answer| answer.version == version)
            .map(|answer| answer.body.clone());
        match body {
            Some(_) => self.hits.inc(),
            None => self.misses.inc(),
        }
        body
    }

    /// (hits, misses) of [`Answers::get`] so far.
    pub fn lookups(&self) -> (u64, u64) {
        (self.hits.get(), self.misses.get())
    }

    /// Remembers `body` as the answer for `key` at `version`; forgets everything when the budget
    /// would be exceeded (a body larger than a quarter of it is not remembered).
    pub fn put(&self, key: AnswerKey, version: i64, body: Bytes) {
        let bytes = ENTRY_OVERHEAD_BYTES + key.customer.len() + body.len();
        if bytes > self.budget / 4 {
            return;
        }
        let mut entries = self.entries.lock();
        if let Some(old) = entries.map.remove(&key) {
            entries.bytes -= ENTRY_OVERHEAD_BYTES + key.customer.len() + old.body.len();
        }
        if entries.bytes + bytes > self.budget {
            entries.map.clear();
            entries.bytes = 0;
        }
        entries.bytes += bytes;
        entries.map.insert(key, Arc::new(Answer { version, body }));
    }

    /// Bytes held now.
    pub fn used_bytes(&self) -> usize {
        self.entries.lock().bytes
    }

    /// Answers remembered now.
    pub fn len(&self) -> usize {
        self.entries.lock().map.len()
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
        let answers = Answers::new(1 << 20);
        answers.put(key("a"), 7, Bytes::from_static(b"one"));
        assert_eq!(answers.get(&key("a"), 7), Some(Bytes::from_static(b"one")));
        assert_eq!(answers.get(&key("a"), 8), None);
        assert_eq!(answers.get(&key("b"), 7), None);
        let mut other_range = key("a");
        other_range.to = other_range.from.succ_opt();
        assert_eq!(answers.get(&other_range, 7), None);
        assert_eq!(answers.lookups(), (1, 3));
        let off = Answers::new(0);
        assert_eq!(off.get(&key("a"), 7), None);
        assert_eq!(off.lookups(), (0, 0), "nothing is looked up while off");
    }

    #[test]
    fn stays_within_its_bytes_and_can_be_off() {
        let body = Bytes::from(vec![b' '; 1000]);
        let budget = 10 * (ENTRY_OVERHEAD_BYTES + 1 + body.len());
        let answers = Answers::new(budget);
        for i in 0..100u8 {
            let customer = char::from(b'A' + i % 50).to_string();
            answers.put(key(&customer), i64::from(i), body.clone());
            assert!(answers.used_bytes() <= budget);
            assert!(answers.get(&key(&customer), i64::from(i)).is_some());
        }
        answers.put(key("big"), 1, Bytes::from(vec![b' '; budget / 4]));
        assert_eq!(answers.get(&key("big"), 1), None, "too large to remember");
        answers.put(key("A"), 1, body.clone());
        let before = answers.used_bytes();
        answers.put(key("A"), 2, body.clone());
        assert_eq!(
            answers.used_bytes(),
            before,
            "a replaced entry is not counted twice"
        );
        let off = Answers::new(0);
        off.put(key("a"), 1, Bytes::from_static(b"{}"));
        assert_eq!(off.get(&key("a"), 1), None);
    }
}
