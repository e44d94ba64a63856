//! Batches pushed over HTTP with an idempotency key: the key and what the batch counted,
//! stored in the transaction that commits the batch's lines (see
//! [`Store::commit_epoch_with_batch`]), so that the same batch sent again, after a lost reply,
//! a timeout or a restart of the job, is answered from the table and adds nothing.

use diesel::dsl;
use diesel::prelude::*;
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::query_dsl::LoadQuery;

use super::schema::push_batches;
use super::{StorageError, Store};

/// Longest idempotency key, in bytes.
pub const MAX_PUSH_KEY_BYTES: usize = 128;

/// What one pushed batch counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchCounts {
    /// Lines merged into the daily stats.
    pub accepted: u64,
    /// Invalid lines, and lines of customers outside the pushing token's scope.
    pub rejected: u64,
    /// Valid lines too old for the watermark (or of pruned days).
    pub late: u64,
}

/// A pushed batch committed with an epoch: its key, its counts and when it was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedBatch {
    /// The client's idempotency key (1 to [`MAX_PUSH_KEY_BYTES`] visible ASCII characters).
    pub key: String,
    /// What the batch counted, before the commit moved lines of pruned days to late.
    pub counts: BatchCounts,
    /// The commit's time (Unix seconds).
    pub at: i64,
    /// Keys committed before this (Unix seconds) are deleted in the same transaction.
    pub expire_before: Option<i64>,
}

/// Whether `key` can be an idempotency key: 1 to [`MAX_PUSH_KEY_BYTES`] visible ASCII characters.
pub fn is_valid_push_key(key: &str) -> bool {
    (1..=MAX_PUSH_KEY_BYTES).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The queries of the pushed batches' table.
pub(super) trait PushBatchRows {
    /// The counts stored for `key`, if it was committed.
    fn find_push_batch(&mut self, key: &str) -> QueryResult<Option<BatchCounts>>;

    /// Stores `batch` with `counts`.
    fn insert_push_batch(&mut self, batch: &PushedBatch, counts: BatchCounts)
        -> QueryResult<usize>;

    /// Deletes the keys committed before `at`.
    fn expire_push_batches(&mut self, at: i64) -> QueryResult<usize>;
}

#[dsl::auto_type]
fn batch_query(key: String) -> _ {
    push_batches::table
        .filter(push_batches::batch_key.eq(key))
        .select((
            push_batches::accepted,
            push_batches::rejected,
            push_batches::late,
        ))
}

#[dsl::auto_type]
fn expired(at: i64) -> _ {
    push_batches::table.filter(push_batches::committed_at.lt(at))
}

type InsertQuery = dsl::Values<
    diesel::query_builder::IncompleteInsertStatement<push_batches::table>,
    (
        dsl::Eq<push_batches::batch_key, String>,
        dsl::Eq<push_batches::accepted, i64>,
        dsl::Eq<push_batches::rejected, i64>,
        dsl::Eq<push_batches::late, i64>,
        dsl::Eq<push_batches::committed_at, i64>,
    ),
>;

/// A count as stored (BIGINT): counts of one batch never come near `i64::MAX`.
fn stored(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl<C> PushBatchRows for C
where
    C: Connection,
    for<'a> dsl::Limit<batch_query>: LoadQuery<'a, C, (i64, i64, i64)>,
    InsertQuery: ExecuteDsl<C>,
    dsl::delete<expired>: ExecuteDsl<C>,
{
    fn find_push_batch(&mut self, key: &str) -> QueryResult<Option<BatchCounts>> {
        let row: Option<(i64, i64, i64)> = batch_query(key.to_string()).first(self).optional()?;
        Ok(row.map(|(accepted, rejected, late)| BatchCounts {
            accepted: accepted.max(0).unsigned_abs(),
            rejected: rejected.max(0).unsigned_abs(),
            late: late.max(0).unsigned_abs(),
        }))
    }

    fn insert_push_batch(
        &mut self,
        batch: &PushedBatch,
        counts: BatchCounts,
    ) -> QueryResult<usize> {
        diesel::insert_into(push_batches::table)
            .values((
                push_batches::batch_key.eq(batch.key.clone()),
                push_batches::accepted.eq(stored(counts.accepted)),
                push_batches::rejected.eq(stored(counts.rejected)),
                push_batches::late.eq(stored(counts.late)),
                push_batches::committed_at.eq(batch.at),
            ))
            .execute(self)
    }

    fn expire_push_batches(&mut self, at: i64) -> QueryResult<usize> {
        diesel::delete(expired(at)).execute(self)
    }
}

impl Store {
    /// What the batch pushed with idempotency key `key` counted, if it was committed (and its
    /// key has not expired).
    pub fn push_batch(&self, key: &str) -> Result<Option<BatchCounts>, StorageError> {
        self.with_connection(|conn| conn.find_push_batch(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_visible_ascii() {
        assert!(is_valid_push_key("a"));
        assert!(is_valid_push_key("0f1e-batch/42:retry"));
        assert!(is_valid_push_key(&"k".repeat(MAX_PUSH_KEY_BYTES)));
        assert!(!is_valid_push_key(""));
        assert!(!is_valid_push_key(&"k".repeat(MAX_PUSH_KEY_BYTES + 1)));
        assert!(!is_valid_push_key("has space"));
        assert!(!is_valid_push_key("tab\there"));
        assert!(!is_valid_push_key("é"));
    }
}
