//! The one way the API takes its mutexes.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, going on after a panic elsewhere poisoned it: every critical section in the
/// API leaves its value whole (plain numbers, or maps updated by single inserts and removals),
/// so a poisoned value is still a consistent one.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
