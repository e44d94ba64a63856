//! The commit of an epoch: one write transaction that merges the epoch's deltas into the stored
//! rows and into the fleet rows of their days, bumps the touched customers' versions, checks
//! the leases and moves the sources' offsets and the watermark (see [`Store::commit_epoch`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use super::connection::StoreConnection;
use super::daily_stats::last_day_from;
use super::models::{date_from_day, DailyStatsRow, FleetDayRow, SourceOffset, SourceOffsetRow};
use super::upserts::FirstLoad;
use super::{
    BatchCounts, CommitOutcome, EpochCommit, PushedBatch, StorageError, Store, ROWS_PER_STATEMENT,
};
use crate::latency::Latencies;
use crate::stats::{DayAccumulator, DayStats};

impl Store {
    /// Merges an epoch's deltas into the stored rows and records its source offsets and
    /// watermark, all in one transaction. Returns the number of rows written.
    ///
    /// Concurrent committers are serialised (SQLite: an immediate transaction; PostgreSQL: a
    /// table lock that readers do not wait for; MySQL: a lock row), so no merge is ever lost.
    ///
    /// A retried commit whose first attempt did commit (the reply was lost with the
    /// connection) is recognised by its sources' positions (see [`EpochCommit::previous`]) and
    /// not applied twice.
    pub fn commit_epoch(&self, epoch: &EpochCommit) -> Result<CommitOutcome, StorageError> {
        self.write(|conn| commit(conn, epoch, &[], false))
    }

    /// [`Store::commit_epoch`] for an epoch of batches pushed with idempotency keys: each key
    /// and its batch's counts are stored in the same transaction, and keys committed before a
    /// batch's `expire_before` are deleted. A key already stored is a batch sent again: when
    /// the epoch is that batch `alone`, nothing of it is merged, its sources still move on, and
    /// the stored counts come back as [`CommitOutcome::Replayed`]; in an epoch of several
    /// batches it cannot be left out, and nothing is written
    /// ([`StorageError::PushKeyTaken`]).
    pub fn commit_epoch_with_batches(
        &self,
        epoch: &EpochCommit,
        batches: &[PushedBatch],
        alone: bool,
    ) -> Result<CommitOutcome, StorageError> {
        self.write(|conn| commit(conn, epoch, batches, alone))
    }

    /// Commits several epochs as one transaction (see [`Store::commit_epoch`]): their deltas
    /// come from `deltas`, every key once, in (customer, day) order, and are written in that
    /// order, each row once; `epochs` holds what they move (sources, positions expected before
    /// the first, watermark, lease) and no deltas. `first_day` is the first day of any delta.
    /// A failed attempt can be retried: `deltas` is read again from the start.
    pub fn commit_bulk(
        &self,
        epochs: &EpochCommit,
        deltas: &dyn SortedDeltas,
        first_day: Option<i32>,
    ) -> Result<CommitOutcome, StorageError> {
        self.write(|conn| commit_bulk(conn, epochs, deltas, first_day))
    }
}

/// A (customer, day) key's delta read back in key order.
pub type SortedDelta = Result<(String, i32, DayStats), StorageError>;

/// Deltas in (customer, day) order, each key at most once, that can be read again from the
/// start: a commit that failed is retried whole. Read on a thread of the commit's own.
pub trait SortedDeltas: Sync {
    /// The deltas, from the first.
    fn read(&self) -> Result<Box<dyn Iterator<Item = SortedDelta> + '_>, StorageError>;
}

/// A key's delta as the commit writes it: borrowed from an epoch, or owned (read back).
type KeyDelta<'a> = (Cow<'a, str>, i32, Cow<'a, DayStats>);

/// The body of [`Store::commit_bulk`], inside its write transaction. Memory: three rounds of
/// keys (one with its stored rows), one statement's rows, and the fleet deltas of each day
/// (merged every [`FLEET_PENDING`] deltas).
fn commit_bulk(
    conn: &mut dyn StoreConnection,
    epochs: &EpochCommit,
    deltas: &dyn SortedDeltas,
    first_day: Option<i32>,
) -> Result<CommitOutcome, StorageError> {
    if already_committed(conn, epochs)? {
        return Ok(CommitOutcome::AlreadyCommitted);
    }
    let first_kept = conn.first_kept_day()?;
    let last_stored = match first_day {
        Some(first) => last_day_from(conn, date_from_day(first))?,
        None => None,
    };
    let version = conn.max_version()?.unwrap_or(0) + 1;
    // The runs are read, merged, screened for pruned days and added to the fleet totals on a
    // second thread, a round of keys at a time, while this one reads the stored rows, merges
    // and writes (at most two rounds wait between them). When no key can have a stored row,
    // that thread also makes the rows (encodes their latencies), and this one only writes.
    let (written, fleet, pruned) = match (first_day, last_stored) {
        (_, None) => {
            // Into an empty table, the key is built once the rows are in (see
            // `Upserts::begin_first_load`).
            let first_load = conn.begin_first_load()?;
            let pass = write_staged_new(
                conn,
                deltas,
                first_kept,
                version,
                first_load.as_ref(),
                |_| true,
            )?;
            if let Some(load) = &first_load {
                conn.end_first_load(load)?;
            }
            pass
        }
        // Stored rows reach at most the stage's second day (a stage after another of a log in
        // time order, the day it was cut on; a day's log into a year of them): the keys after
        // them are written as new rows first, in one pass, then the runs are read again for
        // the few keys of those first days, merged into their stored rows. In one pass, each
        // round of keys waited for a read of its few stored rows and the new rows were written
        // by the thread that made them: a stage cut mid-day took about a second more on a year
        // of 10,000 customers.
        (Some(first), Some(last)) if date_from_day(first.saturating_add(1)) >= last => {
            log::info!("rows are stored up to {last}: later days written first, then {last} and before merged");
            let after = |day: i32| date_from_day(day) > last;
            let (mut written, mut fleet, mut pruned) =
                write_staged_new(conn, deltas, first_kept, version, None, after)?;
            let (stored, stored_fleet, stored_pruned) =
                write_staged_merged(conn, deltas, first_kept, last, version, |day| !after(day))?;
            written.absorb(stored);
            fleet.extend(stored_fleet);
            pruned += stored_pruned;
            (written, fleet, pruned)
        }
        (_, Some(last)) => write_staged_merged(conn, deltas, first_kept, last, version, |_| true)?,
    };
    if written.rows > 0 && !conn.fleet_days_pending()? {
        store_fleet_days(conn, fleet, version)?;
    }
    finish_commit(conn, epochs, &written, version)?;
    Ok(match pruned {
        0 => CommitOutcome::Written(written.rows),
        pruned => CommitOutcome::WrittenExceptPruned {
            rows: written.rows,
            pruned,
        },
    })
}

/// What a pass over the staged runs wrote, each day's fleet delta of it, and the requests of
/// pruned days it left out.
type StagedPass = (Written, BTreeMap<NaiveDate, DayStats>, u64);

/// Writes the staged deltas of the days `keep` takes, none of which has a stored row, as new
/// rows: made (their latencies encoded) on the thread that reads the runs, written on this one.
fn write_staged_new(
    conn: &mut dyn StoreConnection,
    deltas: &dyn SortedDeltas,
    first_kept: Option<NaiveDate>,
    version: i64,
    load: Option<&FirstLoad>,
    keep: impl Fn(i32) -> bool + Send,
) -> Result<StagedPass, StorageError> {
    let (rounds, received) = std::sync::mpsc::sync_channel(2);
    let row = |customer, day, stats: &DayStats| {
        DailyStatsRow::new(customer, date_from_day(day), stats, version)
    };
    let (written, produced) = std::thread::scope(|scope| {
        let producer = scope.spawn(move || produce_rounds(deltas, first_kept, &rounds, row, keep));
        let written = write_new_rows(conn, flatten_rounds(received), load);
        (written, producer.join())
    });
    staged_pass(written, produced)
}

/// Writes the staged deltas of the days `keep` takes merged into their stored rows (those on
/// or before `last_stored`; the others are new rows).
fn write_staged_merged(
    conn: &mut dyn StoreConnection,
    deltas: &dyn SortedDeltas,
    first_kept: Option<NaiveDate>,
    last_stored: NaiveDate,
    version: i64,
    keep: impl Fn(i32) -> bool + Send,
) -> Result<StagedPass, StorageError> {
    let (rounds, received) = std::sync::mpsc::sync_channel(2);
    let delta = |customer, day, stats: &DayStats| -> Result<OwnedDelta, StorageError> {
        Ok((customer, day, stats.clone()))
    };
    let (written, produced) = std::thread::scope(|scope| {
        let producer =
            scope.spawn(move || produce_rounds(deltas, first_kept, &rounds, delta, keep));
        let keys = flatten_rounds(received).map(|key| {
            key.map(|(customer, day, stats)| (Cow::Owned(customer), day, Cow::Owned(stats)))
        });
        // Returns once every round was written or one failed; either way `keys` (the
        // receiving end) is dropped, so the producer stops at its next round.
        let written = write_sorted(conn, keys, Some(last_stored), version);
        (written, producer.join())
    });
    staged_pass(written, produced)
}

/// A pass's outcome from what its writer and its producer thread returned.
fn staged_pass(
    written: Result<Written, StorageError>,
    produced: std::thread::Result<(FleetDeltas, u64)>,
) -> Result<StagedPass, StorageError> {
    let written = written?;
    let Ok((fleet, pruned)) = produced else {
        return Err(StorageError::Staged(
            "the thread merging the runs panicked".into(),
        ));
    };
    Ok((written, fleet.finish(), pruned))
}

/// A key's delta, owned.
type OwnedDelta = (String, i32, DayStats);

/// A round of what [`produce_rounds`] makes, or the error that ended it.
type Round<T> = Result<Vec<T>, StorageError>;

/// The items of the rounds `received`, up to and including the first error.
fn flatten_rounds<T: 'static>(
    received: std::sync::mpsc::Receiver<Round<T>>,
) -> impl Iterator<Item = Result<T, StorageError>> {
    received.into_iter().flat_map(
        |round| -> Box<dyn Iterator<Item = Result<T, StorageError>>> {
            match round {
                Ok(round) => Box::new(round.into_iter().map(Ok)),
                Err(e) => Box::new(std::iter::once(Err(e))),
            }
        },
    )
}

/// Reads `deltas` of the days `keep` takes, leaving out days before `first_kept` (a prune removed them after they were
/// read: counted, as late, not stored) and adding the others to each day's fleet totals, and
/// sends what `make` makes of them to `rounds` [`ROWS_PER_STATEMENT`] at a time; returns those
/// totals and the requests left out. Stops at the first error (sent on) or when the receiver
/// is gone. The fleet totals are merged on a thread of their own, a round of deltas at a time:
/// in a log read in random order this thread's merge of the runs is what the commit waits
/// for, and the fleet totals were a fifth of its work.
fn produce_rounds<T>(
    deltas: &dyn SortedDeltas,
    first_kept: Option<NaiveDate>,
    rounds: &std::sync::mpsc::SyncSender<Round<T>>,
    make: impl Fn(String, i32, &DayStats) -> Result<T, StorageError>,
    keep: impl Fn(i32) -> bool,
) -> (FleetDeltas, u64) {
    std::thread::scope(|scope| {
        let (to_fleet, fleet_rounds) =
            std::sync::mpsc::sync_channel::<Vec<(NaiveDate, DayStats)>>(2);
        let fleet = scope.spawn(move || {
            let mut fleet = FleetDeltas::default();
            for round in fleet_rounds {
                for (date, delta) in round {
                    fleet.add(date, delta);
                }
            }
            fleet
        });
        let pruned = produce_into(deltas, first_kept, rounds, make, keep, &to_fleet);
        drop(to_fleet);
        let fleet = fleet
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (fleet, pruned)
    })
}

/// The body of [`produce_rounds`]: sends the deltas kept to `to_fleet` a round at a time and
/// returns the requests left out.
fn produce_into<T>(
    deltas: &dyn SortedDeltas,
    first_kept: Option<NaiveDate>,
    rounds: &std::sync::mpsc::SyncSender<Round<T>>,
    make: impl Fn(String, i32, &DayStats) -> Result<T, StorageError>,
    keep: impl Fn(i32) -> bool,
    to_fleet: &std::sync::mpsc::SyncSender<Vec<(NaiveDate, DayStats)>>,
) -> u64 {
    let mut pruned = 0;
    let mut round = Vec::with_capacity(ROWS_PER_STATEMENT);
    let mut kept = Vec::with_capacity(ROWS_PER_STATEMENT);
    let read = match deltas.read() {
        Ok(read) => read,
        Err(e) => {
            let _ = rounds.send(Err(e));
            return pruned;
        }
    };
    for delta in read {
        let (customer, day, stats) = match delta {
            Ok(delta) => delta,
            Err(e) => {
                let _ = rounds.send(Err(e));
                return pruned;
            }
        };
        if !keep(day) {
            continue;
        }
        let date = date_from_day(day);
        if first_kept.is_some_and(|first| date < first) {
            pruned += stats.total();
            continue;
        }
        match make(customer, day, &stats) {
            Ok(made) => round.push(made),
            Err(e) => {
                let _ = rounds.send(Err(e));
                return pruned;
            }
        }
        kept.push((date, stats));
        if round.len() == ROWS_PER_STATEMENT {
            let full = std::mem::replace(&mut round, Vec::with_capacity(ROWS_PER_STATEMENT));
            let deltas = std::mem::replace(&mut kept, Vec::with_capacity(ROWS_PER_STATEMENT));
            if to_fleet.send(deltas).is_err() || rounds.send(Ok(full)).is_err() {
                return pruned;
            }
        }
    }
    if !kept.is_empty() {
        let _ = to_fleet.send(kept);
    }
    if !round.is_empty() {
        let _ = rounds.send(Ok(round));
    }
    pruned
}

/// The body of [`Store::commit_epoch`], inside its write transaction.
///
/// Memory: besides the epoch itself, only one round's stored rows and one statement's rows at
/// a time are held (the rows are read, merged and encoded [`ROWS_PER_STATEMENT`] keys at a
/// time, in primary-key order, straight from the epoch's deltas).
fn commit(
    conn: &mut dyn StoreConnection,
    epoch: &EpochCommit,
    batches: &[PushedBatch],
    alone: bool,
) -> Result<CommitOutcome, StorageError> {
    if already_committed(conn, epoch)? {
        return Ok(CommitOutcome::AlreadyCommitted);
    }
    for batch in batches {
        if let Some(counts) = conn.find_push_batch(&batch.key)? {
            if alone && batches.len() == 1 {
                move_sources(conn, epoch)?;
                return Ok(CommitOutcome::Replayed(counts));
            }
            return Err(StorageError::PushKeyTaken {
                key: batch.key.clone(),
            });
        }
    }
    // Days a prune removed after the epoch was read are not stored again.
    let kept = super::prune::without_pruned_days(conn, epoch)?;
    let (epoch, pruned) = kept
        .as_ref()
        .map_or((epoch, 0), |(kept, pruned)| (kept, *pruned));
    // The deltas in primary-key order: each statement then writes neighbouring keys, on pages
    // already in the database's cache, where the epoch's order sent every row to a page of its
    // own. A key given twice is merged.
    let key = |i: usize| {
        let (customer, day, _) = &epoch.deltas[i];
        (customer.as_str(), *day)
    };
    let mut order: Vec<usize> = (0..epoch.deltas.len()).collect();
    order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
    // No row is stored after the last stored day (writers are serialized, so none appears
    // during this transaction): the keys past it are written without being read, which in a
    // log read in time order is nearly all of them.
    let last_stored = match epoch.deltas.iter().map(|d| d.1).min() {
        Some(first) => last_day_from(conn, date_from_day(first))?,
        None => None,
    };
    // Writers are serialized, so one number above every stored version orders the commits for
    // readers. The rows carry it too, so a reader can fetch just the rows changed since a
    // version.
    let version = if order.is_empty() {
        0
    } else {
        conn.max_version()?.unwrap_or(0) + 1
    };
    let mut at = 0;
    let keys = std::iter::from_fn(|| {
        let first = *order.get(at)?;
        let same = order[at..]
            .iter()
            .take_while(|&&i| key(i) == key(first))
            .count();
        let (customer, day, stats) = &epoch.deltas[first];
        let stats = match same {
            1 => Cow::Borrowed(stats),
            _ => Cow::Owned(DayStats::merge_all(
                order[at..at + same].iter().map(|&i| &epoch.deltas[i].2),
            )),
        };
        at += same;
        Some(Ok((Cow::Borrowed(customer.as_str()), *day, stats)))
    });
    let written = write_sorted(conn, keys, last_stored, version)?;
    // In the same transaction: a fleet row never holds more or less than its day's rows, even
    // when the process is killed mid-commit.
    merge_fleet_days(conn, epoch, version)?;
    finish_commit(conn, epoch, &written, version)?;
    // Lines of pruned days count late: the first batches' accepted lines take them, as the
    // job's answers do.
    let mut pruned_left = pruned;
    for batch in batches {
        if let Some(before) = batch.expire_before {
            conn.expire_push_batches(before)?;
        }
        let moved = pruned_left.min(batch.counts.accepted);
        pruned_left -= moved;
        let counts = BatchCounts {
            accepted: batch.counts.accepted - moved,
            rejected: batch.counts.rejected,
            late: batch.counts.late + moved,
        };
        conn.insert_push_batch(batch, counts)?;
    }
    Ok(match pruned {
        0 => CommitOutcome::Written(written.rows),
        pruned => CommitOutcome::WrittenExceptPruned {
            rows: written.rows,
            pruned,
        },
    })
}

use super::upserts::{NEW_ROWS_BYTES, NEW_ROW_BYTES};

/// What [`write_sorted`] wrote: rows, and the customers they belong to (each once, in order).
struct Written {
    rows: usize,
    touched: Vec<String>,
}

impl Written {
    /// Adds what another pass wrote: its rows, and its customers among these (each once, in
    /// order).
    fn absorb(&mut self, other: Written) {
        self.rows += other.rows;
        let mine = std::mem::take(&mut self.touched);
        let mut theirs = other.touched.into_iter().peekable();
        let mut merged = Vec::with_capacity(mine.len() + theirs.len());
        for customer in mine {
            while let Some(before) = theirs.next_if(|c| *c < customer) {
                merged.push(before);
            }
            theirs.next_if(|c| *c == customer);
            merged.push(customer);
        }
        merged.extend(theirs);
        self.touched = merged;
    }
}

/// Writes the keys' deltas (in primary-key order, each key once) merged into their stored rows,
/// a round of [`ROWS_PER_STATEMENT`] keys at a time: the round's stored rows are read (only
/// those on or before `last_stored`, the last day any row is stored for), merged and written,
/// so the stored rows held at once are one round's whatever the number of keys and their
/// order.
fn write_sorted<'a>(
    conn: &mut dyn StoreConnection,
    mut keys: impl Iterator<Item = Result<KeyDelta<'a>, StorageError>>,
    last_stored: Option<NaiveDate>,
    version: i64,
) -> Result<Written, StorageError> {
    let mut written = Written {
        rows: 0,
        touched: Vec::new(),
    };
    if last_stored.is_none() {
        // No key can have a stored row (an empty table, or days after the last stored one, as
        // a log read in time order commits them): every row is new.
        return write_new_rows(
            conn,
            keys.map(|key| {
                key.and_then(|(customer, day, delta)| {
                    DailyStatsRow::new(customer.into_owned(), date_from_day(day), &delta, version)
                })
            }),
            None,
        );
    }
    let mut round: Vec<KeyDelta<'a>> = Vec::with_capacity(ROWS_PER_STATEMENT);
    // Rows of keys that may have a stored row, and rows of keys that cannot.
    let mut upserts: Vec<DailyStatsRow> = Vec::with_capacity(ROWS_PER_STATEMENT);
    let mut inserts: Vec<DailyStatsRow> = Vec::new();
    let mut insert_bytes = 0;
    loop {
        round.clear();
        for key in keys.by_ref().take(ROWS_PER_STATEMENT) {
            round.push(key?);
        }
        if round.is_empty() {
            break;
        }
        let wanted: Vec<(&str, NaiveDate)> = round
            .iter()
            .map(|(customer, day, _)| (customer.as_ref(), date_from_day(*day)))
            .filter(|&(_, date)| last_stored.is_some_and(|last| date <= last))
            .collect();
        let mut stored = stored_rows(conn, &wanted)?;
        for (customer, day, delta) in round.drain(..) {
            let date = date_from_day(day);
            // The key's string is moved into the row, not copied (it is owned when the deltas
            // were read back from a stage).
            let key = (customer.into_owned(), date);
            let stored_row = match stored.is_empty() {
                true => None,
                false => stored.remove(&key),
            };
            let (customer, _) = key;
            if written.touched.last() != Some(&customer) {
                written.touched.push(customer.clone());
            }
            let row = match stored_row {
                None => DailyStatsRow::new(customer, date, &delta, version)?,
                Some(mut merged) => {
                    merged.merge(&delta);
                    DailyStatsRow::new(customer, date, &merged, version)?
                }
            };
            // A row of a day after the last stored one is new: inserted, not upserted.
            if last_stored.is_none_or(|last| date > last) {
                insert_bytes += row.latencies.len() + NEW_ROW_BYTES;
                inserts.push(row);
                if insert_bytes >= NEW_ROWS_BYTES {
                    conn.insert_new_rows(&inserts)?;
                    written.rows += inserts.len();
                    inserts.clear();
                    insert_bytes = 0;
                }
            } else {
                upserts.push(row);
                if upserts.len() == ROWS_PER_STATEMENT {
                    conn.upsert_rows(&upserts)?;
                    written.rows += upserts.len();
                    upserts.clear();
                }
            }
        }
    }
    if !inserts.is_empty() {
        conn.insert_new_rows(&inserts)?;
        written.rows += inserts.len();
    }
    if !upserts.is_empty() {
        conn.upsert_rows(&upserts)?;
        written.rows += upserts.len();
    }
    Ok(written)
}

/// Writes `rows` (in primary-key order, none of them stored) as one stream (PostgreSQL: one
/// `COPY`, which the server inserts while the rows after are made).
fn write_new_rows(
    conn: &mut dyn StoreConnection,
    mut rows: impl Iterator<Item = Result<DailyStatsRow, StorageError>>,
    load: Option<&FirstLoad>,
) -> Result<Written, StorageError> {
    let mut touched: Vec<String> = Vec::new();
    let mut failed = None;
    let mut next = || -> Option<DailyStatsRow> {
        match rows.next()? {
            Ok(row) => {
                if touched.last() != Some(&row.customer_id) {
                    touched.push(row.customer_id.clone());
                }
                Some(row)
            }
            Err(e) => {
                failed = Some(e);
                None
            }
        }
    };
    let written = conn.insert_all_new_rows(&mut next, load);
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Written {
        rows: written?,
        touched,
    })
}

/// After the rows: the touched customers' versions, the sources' positions (checking the
/// leases) and the watermark, in the same transaction.
fn finish_commit(
    conn: &mut dyn StoreConnection,
    epoch: &EpochCommit,
    written: &Written,
    version: i64,
) -> Result<(), StorageError> {
    if !written.touched.is_empty() {
        let touched: Vec<&str> = written.touched.iter().map(String::as_str).collect();
        conn.upsert_versions(&touched, version)?;
    }
    move_sources(conn, epoch)?;
    let stored_watermark = conn.stored_watermark()?;
    if let Some(event_time) = epoch.max_event_time.filter(|&t| stored_watermark < Some(t)) {
        conn.upsert_watermark(event_time)?;
    }
    Ok(())
}

/// Deltas a fleet day pending its merge, beyond which they are merged into the day's total:
/// merged a few hundred at a time, as a whole epoch's are, not one by one into a large day.
const FLEET_PENDING: usize = 256;

/// Requests a delta may count to be added to its fleet day as those requests (see
/// [`FleetDay::requests`]).
const FLEET_SMALL_DELTA: u64 = 8;

/// Requests a fleet day holds as such before they are summarised into one pending part.
const FLEET_REQUESTS: u64 = 4096;

/// Each day's deltas across customers, merged as they come (see [`FLEET_PENDING`]).
#[derive(Default)]
struct FleetDeltas {
    days: BTreeMap<NaiveDate, FleetDay>,
}

/// A fleet day being merged.
#[derive(Default)]
struct FleetDay {
    /// What was merged so far.
    total: DayStats,
    /// Deltas (and summarised requests) waiting to be merged into `total`.
    pending: Vec<DayStats>,
    /// The requests of small deltas (at most [`FLEET_SMALL_DELTA`] requests, each below
    /// 2^32 µs: nearly every customer's day of a fleet of small ones), added as requests, 4
    /// bytes each, and summarised once [`FLEET_REQUESTS`] are held, where each such delta
    /// (about 100 bytes) had been kept in `pending` and merged among 256 (the fleet thread's
    /// CPU on a year of 10,000 customers in random order a fifth lower). The day's counts, sum, extremes and,
    /// while it has at most 4,096 distinct latencies, its exact histogram come out the same
    /// whichever way its requests were grouped; past that its t-digest is built from other
    /// groups of them (within the same rank bound).
    requests: DayAccumulator,
}

impl FleetDay {
    fn add(&mut self, delta: DayStats) {
        if let Latencies::Exact(histogram) = &delta.latencies {
            if delta.total() <= FLEET_SMALL_DELTA
                && histogram.count() == delta.total()
                && delta.latency_max_us <= u64::from(u32::MAX)
            {
                let mut latencies = [0u32; FLEET_SMALL_DELTA as usize];
                let mut n = 0;
                for (value, count) in histogram.iter() {
                    for _ in 0..count {
                        latencies[n] = value as u32;
                        n += 1;
                    }
                }
                self.requests
                    .add_counted(delta.successful, delta.failed, &latencies[..n]);
                if self.requests.total() >= FLEET_REQUESTS {
                    // Merged at once, with whatever else is pending: left pending, the
                    // summarised parts were all merged at the end, on the thread writing.
                    let part = std::mem::take(&mut self.requests).finish();
                    self.pending.push(part);
                    self.merge_pending();
                }
                return;
            }
        }
        self.push(delta);
    }

    fn push(&mut self, part: DayStats) {
        self.pending.push(part);
        if self.pending.len() >= FLEET_PENDING {
            self.merge_pending();
        }
    }

    fn merge_pending(&mut self) {
        self.total = DayStats::merge_all(std::iter::once(&self.total).chain(&self.pending));
        self.pending.clear();
    }

    /// The day's merged deltas.
    fn finish(mut self) -> DayStats {
        if self.requests.total() > 0 {
            let part = std::mem::take(&mut self.requests).finish();
            self.pending.push(part);
        }
        DayStats::merge_all(std::iter::once(&self.total).chain(&self.pending))
    }
}

impl FleetDeltas {
    fn add(&mut self, day: NaiveDate, delta: DayStats) {
        self.days.entry(day).or_default().add(delta);
    }

    /// Each day's merged deltas.
    fn finish(self) -> BTreeMap<NaiveDate, DayStats> {
        self.days
            .into_iter()
            .map(|(day, fleet_day)| (day, fleet_day.finish()))
            .collect()
    }
}

/// Whether an earlier attempt of this very commit did commit: every source the epoch advances
/// is stored at its new position, which differs from the one the job expected before the epoch.
/// Only the job holding the sources' leases moves them, so only an earlier attempt (whose COMMIT
/// reply was lost) can have done that.
fn already_committed(
    conn: &mut dyn StoreConnection,
    epoch: &EpochCommit,
) -> Result<bool, StorageError> {
    if epoch.previous.len() != epoch.sources.len() || epoch.sources.is_empty() {
        return Ok(false);
    }
    for (next, previous) in epoch.sources.iter().zip(&epoch.previous) {
        let stored = conn.offset_of(&next.source)?.map(SourceOffset::from);
        if stored.as_ref() != Some(next) || next == previous {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The stored rows of `wanted` (keys in primary-key order, no duplicates). One query for all
/// when their customers and days cross into few more pairs than the keys (a log in time order:
/// every customer's boundary day), else one query per customer for its days (a log in random
/// order, whose keys of a customer lie anywhere in the year): a key's row is never read
/// together with a whole range of rows it does not need.
fn stored_rows(
    conn: &mut dyn StoreConnection,
    wanted: &[(&str, NaiveDate)],
) -> Result<HashMap<(String, NaiveDate), DayStats>, StorageError> {
    let mut stored = HashMap::new();
    if wanted.is_empty() {
        return Ok(stored);
    }
    let mut customers: Vec<&str> = wanted.iter().map(|&(customer, _)| customer).collect();
    customers.dedup();
    let mut days: Vec<NaiveDate> = wanted.iter().map(|&(_, day)| day).collect();
    days.sort_unstable();
    days.dedup();
    let mut keep = |rows: Vec<DailyStatsRow>| -> Result<(), StorageError> {
        for row in rows {
            let key = (row.customer_id.as_str(), row.day);
            if wanted.binary_search(&key).is_ok() {
                stored.insert((row.customer_id.clone(), row.day), row.into_stats()?);
            }
        }
        Ok(())
    };
    if customers.len() * days.len() <= 2 * wanted.len() {
        keep(conn.rows_on(&customers, &days)?)?;
    } else {
        let mut at = 0;
        while at < wanted.len() {
            let customer = wanted[at].0;
            let days: Vec<NaiveDate> = wanted[at..]
                .iter()
                .take_while(|&&(c, _)| c == customer)
                .map(|&(_, day)| day)
                .collect();
            at += days.len();
            keep(conn.rows_on(&[customer], &days)?)?;
        }
    }
    Ok(stored)
}

/// Merges the epoch's deltas of each day, across customers, into that day's stored fleet row,
/// and stores the rows with the commit's version.
fn merge_fleet_days(
    conn: &mut dyn StoreConnection,
    epoch: &EpochCommit,
    version: i64,
) -> Result<(), StorageError> {
    if conn.fleet_days_pending()? {
        // Not in use: they are rebuilt whole from the customers' rows before they are.
        return Ok(());
    }
    let mut by_day: BTreeMap<NaiveDate, Vec<&DayStats>> = BTreeMap::new();
    for (_, day, delta) in &epoch.deltas {
        by_day.entry(date_from_day(*day)).or_default().push(delta);
    }
    if by_day.is_empty() {
        return Ok(());
    }
    let merged: BTreeMap<NaiveDate, DayStats> = by_day
        .into_iter()
        .map(|(day, deltas)| (day, DayStats::merge_all(deltas.iter().copied())))
        .collect();
    store_fleet_days(conn, merged, version)
}

/// Merges each day's deltas across customers into its stored fleet row and stores the rows
/// with the commit's version.
fn store_fleet_days(
    conn: &mut dyn StoreConnection,
    mut merged: BTreeMap<NaiveDate, DayStats>,
    version: i64,
) -> Result<(), StorageError> {
    let days: Vec<NaiveDate> = merged.keys().copied().collect();
    for chunk in days.chunks(ROWS_PER_STATEMENT) {
        for row in conn.fleet_rows_on(chunk)? {
            let day = row.day;
            if let Some(delta) = merged.get_mut(&day) {
                let mut stored = row.into_stats()?;
                stored.merge(delta);
                *delta = stored;
            }
        }
    }
    let rows: Result<Vec<FleetDayRow>, StorageError> = merged
        .iter()
        .map(|(&day, stats)| FleetDayRow::new(day, stats, version))
        .collect();
    match rows {
        Ok(rows) => conn.upsert_fleet_rows(&rows)?,
        // Every customer's rows hold their sums, but the day's total passes what a row holds
        // (2^63 - 1 µs): the fleet rows are set aside (the marker), and `GET /stats` walks the
        // customers' rows, adding their sums exactly, rather than the commit failing.
        Err(StorageError::Unrepresentable { .. }) => {
            conn.set_fleet_days_pending()?;
        }
        Err(error) => return Err(error),
    }
    Ok(())
}

/// Stores the epoch's source positions, after checking that the job still holds their leases.
fn move_sources(conn: &mut dyn StoreConnection, epoch: &EpochCommit) -> Result<(), StorageError> {
    let owner = epoch.lease.as_ref().map(|(owner, _)| owner.as_str());
    let lease_until = epoch.lease.as_ref().map(|&(_, until)| until);
    for source in &epoch.sources {
        if let Some(owner) = owner {
            let holder = conn.owner_of(&source.source)?;
            if let Some(holder) = holder.filter(|h| h.as_deref() != Some(owner)) {
                return Err(StorageError::LeaseLost {
                    source_name: source.source.clone(),
                    owner: holder,
                });
            }
        }
        conn.upsert_source(&SourceOffsetRow::from(source), owner, lease_until)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::day_from_date;

    /// A fleet day fed deltas one by one (small ones added as their requests, large ones, one
    /// past 2^32 µs, more than [`FLEET_PENDING`] of them and more than [`FLEET_REQUESTS`]
    /// requests) holds what merging all the deltas at once holds: the same counts, sum,
    /// extremes and, while the day has at most 4,096 distinct latencies, the same exact
    /// histogram; past that a t-digest whose median and p99 are within 1 % in rank of the
    /// exact ones.
    #[test]
    fn a_fleet_day_merged_as_it_comes_holds_all_its_deltas() {
        let mut next = crate::xorshift(0xF1EE_7DA7_0000_0023);
        for distinct in [1_000u64, 1_000_000] {
            let mut deltas = Vec::new();
            let mut all: Vec<u64> = Vec::new();
            for i in 0..3_000u64 {
                let n = match i % 10 {
                    0 => 9 + next() % 40,
                    _ => 1 + next() % 8,
                };
                let mut acc = DayAccumulator::new();
                for _ in 0..n {
                    let us = match next() % 1_000 {
                        0 => (1 << 32) + next() % 5,
                        _ => 1_000 * (1 + next() % distinct),
                    };
                    acc.add(!next().is_multiple_of(7), us);
                    all.push(us);
                }
                deltas.push(acc.finish());
            }
            let mut day = FleetDay::default();
            for delta in &deltas {
                day.add(delta.clone());
            }
            let merged = day.finish();
            let at_once = DayStats::merge_all(&deltas);
            assert_eq!(
                (
                    merged.successful,
                    merged.failed,
                    merged.latency_sum_us,
                    merged.latency_min_us,
                    merged.latency_max_us
                ),
                (
                    at_once.successful,
                    at_once.failed,
                    at_once.latency_sum_us,
                    at_once.latency_min_us,
                    at_once.latency_max_us
                )
            );
            match &at_once.latencies {
                Latencies::Exact(_) => assert_eq!(merged, at_once, "{distinct} distinct"),
                Latencies::Estimated(_) => {
                    all.sort_unstable();
                    let n = all.len() as f64;
                    for (p, estimate) in [0.5, 0.99]
                        .into_iter()
                        .zip(merged.latencies.percentiles(&[50.0, 99.0]))
                    {
                        let estimate_us = (estimate.expect("a percentile") * 1e6).round() as u64;
                        let rank = all.partition_point(|&us| us < estimate_us) as f64 / n;
                        assert!((rank - p).abs() <= 0.01, "p{p}: rank {rank}");
                    }
                }
            }
        }
    }

    /// A commit retried after its first attempt committed (the COMMIT reply lost with the
    /// connection) is recognised and not merged twice; the same positions reached from
    /// elsewhere (a file rewritten identically after a truncation) are still committed.
    #[cfg(feature = "testing")]
    #[test]
    fn a_retried_commit_that_had_committed_is_not_applied_twice() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let mut acc = crate::DayAccumulator::new();
            acc.add(true, 1_000);
            acc.add(false, 3_000);
            let stats = acc.finish();
            let at = |byte_offset, line_count| SourceOffset {
                source: "inode:1:2".to_string(),
                fingerprint: b"2024-10-10".to_vec(),
                byte_offset,
                line_count,
            };
            let epoch = |from: SourceOffset, to: SourceOffset| EpochCommit {
                deltas: vec![("cust_1".to_string(), 20_006, stats.clone())],
                sources: vec![to],
                previous: vec![from],
                ..EpochCommit::default()
            };
            let first = epoch(at(0, 0), at(100, 2));
            assert_eq!(
                store.commit_epoch(&first).expect("commit"),
                CommitOutcome::Written(1)
            );
            assert_eq!(
                store.commit_epoch(&first).expect("retry"),
                CommitOutcome::AlreadyCommitted,
                "{db:?}"
            );
            let requests = |store: &Store| {
                let days = store.all_days().expect("read");
                assert_eq!(days.len(), 1, "{db:?}");
                days[0].2.total()
            };
            assert_eq!(requests(&store), 2, "{db:?}");
            // The next epoch of the same source goes in.
            let second = epoch(at(100, 2), at(200, 4));
            assert_eq!(
                store.commit_epoch(&second).expect("commit"),
                CommitOutcome::Written(1)
            );
            assert_eq!(requests(&store), 4, "{db:?}");
            // Truncated and rewritten with the same bytes: read from 0 up to the very position
            // stored before; the job expected that position, so this is new data.
            let rewritten = epoch(at(200, 4), at(200, 4));
            assert_eq!(
                store.commit_epoch(&rewritten).expect("commit"),
                CommitOutcome::Written(1)
            );
            assert_eq!(requests(&store), 6, "{db:?}");
            // Without expectations (older callers), every commit is applied.
            let unchecked = EpochCommit {
                previous: Vec::new(),
                ..epoch(at(200, 4), at(300, 6))
            };
            store.commit_epoch(&unchecked).expect("commit");
            store.commit_epoch(&unchecked).expect("commit");
            assert_eq!(requests(&store), 10, "{db:?}");
        }
    }

    /// What a backend could get wrong in its own column types: customer ids that differ only in
    /// case (a case-insensitive collation would merge them), the first and last days a log line
    /// can have, a day with the most distinct latencies an exact row keeps, and many of those in
    /// one commit (MySQL cuts its statements by bytes).
    #[cfg(feature = "testing")]
    #[test]
    fn every_backend_keeps_keys_days_and_large_rows_exactly() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let mut busy = crate::DayAccumulator::new();
            for i in 0..crate::latency::EXACT_DISTINCT_VALUES as u64 {
                busy.add(i % 7 != 0, 1_000 + i * 997);
            }
            let busy = busy.finish();
            let mut one = crate::DayAccumulator::new();
            one.add(true, 250_000);
            let one = one.finish();
            let first = day_from_date(NaiveDate::from_ymd_opt(1, 1, 1).expect("date"));
            let last = day_from_date(NaiveDate::from_ymd_opt(9999, 12, 31).expect("date"));
            let mut deltas = vec![
                ("cust_a".to_string(), first, one.clone()),
                ("cust_A".to_string(), first, one.clone()),
                ("cust_a".to_string(), last, one.clone()),
            ];
            for customer in 0..300 {
                deltas.push((format!("busy_{customer:03}"), 20_000, busy.clone()));
            }
            let epoch = EpochCommit {
                deltas,
                ..EpochCommit::default()
            };
            assert_eq!(
                store.commit_epoch(&epoch).expect("commit"),
                CommitOutcome::Written(303),
                "{db:?}"
            );
            let days = store.all_days().expect("read");
            assert_eq!(days.len(), 303, "{db:?}");
            let order: Vec<&str> = days[298..].iter().map(|d| d.0.as_str()).collect();
            assert_eq!(
                order,
                ["busy_298", "busy_299", "cust_A", "cust_a", "cust_a"],
                "{db:?}: byte order"
            );
            let cust = |id: &str| {
                days.iter()
                    .filter(|d| d.0 == id)
                    .map(|d| (day_from_date(d.1), d.2.total()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(cust("cust_A"), [(first, 1)], "{db:?}");
            assert_eq!(cust("cust_a"), [(first, 1), (last, 1)], "{db:?}");
            // Every row of every statement (MySQL writes 200 a statement, the rest apart).
            for (at, (customer, date, stored_busy)) in days[..300].iter().enumerate() {
                assert_eq!(customer, &format!("busy_{at:03}"), "{db:?}");
                assert_eq!(day_from_date(*date), 20_000, "{db:?}");
                assert_eq!(stored_busy.total(), busy.total(), "{db:?}");
                assert_eq!(
                    stored_busy.latencies.encode(),
                    busy.latencies.encode(),
                    "{db:?}: {customer}"
                );
            }
        }
    }

    /// A day of one request, and one whose latency sum no backend can store (past 2^63 - 1).
    #[cfg(feature = "testing")]
    fn one_request_and_unstorable() -> (DayStats, DayStats) {
        let mut one = crate::DayAccumulator::new();
        one.add(true, 250_000);
        let one = one.finish();
        let mut huge = one.clone();
        huge.latency_sum_us = u128::from(u64::MAX);
        (one, huge)
    }

    /// A row that cannot be stored exactly, amid rows that are new (written as one stream: on
    /// PostgreSQL one `COPY`), fails the commit with its reason, and none of the rows before
    /// or after it is stored.
    #[cfg(feature = "testing")]
    #[test]
    fn a_row_that_cannot_be_stored_fails_the_stream_of_new_rows_and_stores_nothing() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let (one, huge) = one_request_and_unstorable();
            let mut deltas: Vec<_> = (0..5_000)
                .map(|i| (format!("cust_{i:05}"), 20_000, one.clone()))
                .collect();
            deltas[2_500].2 = huge;
            let epoch = EpochCommit {
                deltas,
                ..EpochCommit::default()
            };
            match store.commit_epoch(&epoch) {
                Err(StorageError::Unrepresentable { customer_id, .. }) => {
                    assert_eq!(customer_id, "cust_02500", "{db:?}")
                }
                other => panic!("{db:?}: {other:?}"),
            }
            assert_eq!(store.all_days().expect("read").len(), 0, "{db:?}");
        }
    }

    /// New rows (on PostgreSQL one binary `COPY`) come back as they went in: customer ids
    /// with tabs, backslashes, quotes and non-ASCII letters, days on both sides of 2000-01-01
    /// (PostgreSQL's day 0) and of 1970-01-01, counts and sums past 2^32, and latencies of
    /// thousands of distinct values.
    #[cfg(feature = "testing")]
    #[test]
    fn new_rows_come_back_as_they_went_in() {
        let ids = [
            "a\tb\\c",
            "quote'\"x",
            "zürich-ü",
            "cust_1",
            "n\nl",
            "\\x00",
        ];
        let days = [-1, 0, 1, 10_956, 10_957, 10_958, 19_000, 2_932_896];
        for db in crate::testing::backends() {
            let store = db.connect();
            let mut expected = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                for (j, &day) in days.iter().enumerate() {
                    let mut acc = crate::DayAccumulator::new();
                    for k in 0..(1 + (i * 7 + j * 131) % 5_000) as u64 {
                        acc.add(k % 3 != 0, 1 + k * 997 % 4_000_000 + (i as u64) * 13);
                    }
                    let mut stats = acc.finish();
                    if j == 2 {
                        stats.successful += 5_000_000_000;
                        stats.latency_sum_us += 7_000_000_000_000;
                    }
                    expected.push((id.to_string(), day, stats));
                }
            }
            let epoch = EpochCommit {
                deltas: expected.clone(),
                ..EpochCommit::default()
            };
            store.commit_epoch(&epoch).expect("commit");
            let mut stored = store.all_days().expect("read");
            stored.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            let mut expected: Vec<_> = expected
                .into_iter()
                .map(|(id, day, stats)| (id, date_from_day(day), stats))
                .collect();
            expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            assert_eq!(stored.len(), expected.len(), "{db:?}");
            for (stored, expected) in stored.iter().zip(&expected) {
                assert_eq!(stored, expected, "{db:?}");
            }
        }
    }

    #[cfg(feature = "testing")]
    #[test]
    fn commits_bump_the_version_of_the_customers_they_touch() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let mut acc = crate::DayAccumulator::new();
            acc.add(true, 1_000);
            let stats = acc.finish();
            let commit = |customers: &[&str]| {
                let epoch = EpochCommit {
                    deltas: customers
                        .iter()
                        .map(|c| (c.to_string(), 20_006, stats.clone()))
                        .collect(),
                    ..EpochCommit::default()
                };
                store.commit_epoch(&epoch).expect("commit");
            };
            let versions = || ["a", "b"].map(|c| store.customer_version(c).expect("version"));
            let since = |after| {
                let mut changed = store.versions_since(after).expect("versions");
                changed.sort();
                changed
            };
            let changed = |pairs: &[(&str, i64)]| {
                pairs
                    .iter()
                    .map(|&(c, v)| (c.to_string(), v))
                    .collect::<Vec<_>>()
            };
            assert_eq!(versions(), [0, 0], "{db:?}");
            assert_eq!(since(0), changed(&[]));
            commit(&["a", "b"]);
            assert_eq!(versions(), [1, 1]);
            commit(&["a"]);
            assert_eq!(versions(), [2, 1]);
            assert_eq!(since(1), changed(&[("a", 2)]));
            commit(&["b", "b"]);
            assert_eq!(versions(), [2, 3]);
            assert_eq!(since(0), changed(&[("a", 2), ("b", 3)]));
            assert_eq!(since(2), changed(&[("b", 3)]));
            assert_eq!(since(3), changed(&[]));
            commit(&[]);
            assert_eq!(versions(), [2, 3], "an empty commit changes no version");
        }
    }

    /// Deltas held in memory, sorted, for [`Store::commit_bulk`].
    struct InMemory(Vec<(String, i32, DayStats)>);

    impl SortedDeltas for InMemory {
        fn read(&self) -> Result<Box<dyn Iterator<Item = SortedDelta> + '_>, StorageError> {
            Ok(Box::new(self.0.iter().cloned().map(Ok)))
        }
    }

    /// A bulk commit into an empty table (its rows made on the thread merging the runs) that
    /// meets a row it cannot store fails with that row's reason, stores nothing and moves no
    /// source; the same bulk without that row then commits whole.
    #[cfg(feature = "testing")]
    #[test]
    fn a_bulk_commit_of_new_rows_fails_whole_on_a_row_it_cannot_store() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let (one, huge) = one_request_and_unstorable();
            let mut bulk: Vec<_> = (0..5_000)
                .map(|i| (format!("cust_{:03}", i / 10), 20_000 + i % 10, one.clone()))
                .collect();
            bulk[3_333].2 = huge;
            let at = |byte_offset| SourceOffset {
                source: "inode:1:7".to_string(),
                fingerprint: b"y".to_vec(),
                byte_offset,
                line_count: byte_offset / 10,
            };
            let epochs = EpochCommit {
                sources: vec![at(900)],
                previous: vec![at(0)],
                ..EpochCommit::default()
            };
            match store.commit_bulk(&epochs, &InMemory(bulk.clone()), Some(20_000)) {
                Err(StorageError::Unrepresentable { customer_id, .. }) => {
                    assert_eq!(customer_id, "cust_333", "{db:?}")
                }
                other => panic!("{db:?}: {other:?}"),
            }
            assert_eq!(store.all_days().expect("read").len(), 0, "{db:?}");
            bulk.remove(3_333);
            assert_eq!(
                store
                    .commit_bulk(&epochs, &InMemory(bulk), Some(20_000))
                    .expect("bulk"),
                CommitOutcome::Written(4_999),
                "{db:?}"
            );
            assert_eq!(store.all_days().expect("read").len(), 4_999, "{db:?}");
        }
    }

    /// A bulk commit into an empty table (on PostgreSQL the primary key is dropped for it and
    /// built again once the rows are in) leaves the key in place whether it fails or commits:
    /// the rows it wrote are merged into by the next commit, and a key stored twice is refused.
    #[cfg(feature = "testing")]
    #[test]
    fn a_bulk_commit_into_an_empty_table_keeps_the_primary_key() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let key_holds = || {
                if db.backend == crate::storage::Backend::Postgres {
                    db.execute(
                        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_constraint \
                         WHERE conname = 'daily_stats_pkey' AND contype = 'p' \
                         AND conrelid = 'daily_stats'::regclass) \
                         THEN RAISE EXCEPTION 'no primary key'; END IF; END $$",
                    );
                }
                let twice = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    db.execute("INSERT INTO daily_stats SELECT * FROM daily_stats LIMIT 1")
                }));
                assert!(twice.is_err(), "{db:?}: a key stored twice");
            };
            let (one, huge) = one_request_and_unstorable();
            let mut bulk: Vec<_> = (0..3_000)
                .map(|i| (format!("cust_{:03}", i / 10), 20_000 + i % 10, one.clone()))
                .collect();
            bulk[1_500].2 = huge;
            let failed = store.commit_bulk(
                &EpochCommit::default(),
                &InMemory(bulk.clone()),
                Some(20_000),
            );
            assert!(
                matches!(failed, Err(StorageError::Unrepresentable { .. })),
                "{db:?}: {failed:?}"
            );
            bulk[1_500].2 = one.clone();
            let written = store
                .commit_bulk(
                    &EpochCommit::default(),
                    &InMemory(bulk.clone()),
                    Some(20_000),
                )
                .expect("bulk");
            assert_eq!(written, CommitOutcome::Written(3_000), "{db:?}");
            key_holds();
            let again = EpochCommit {
                deltas: bulk,
                ..EpochCommit::default()
            };
            assert_eq!(
                store.commit_epoch(&again).expect("commit"),
                CommitOutcome::Written(3_000),
                "{db:?}"
            );
            let rows = store.all_days().expect("rows");
            assert_eq!(rows.len(), 3_000, "{db:?}");
            assert!(
                rows.iter().all(|(_, _, stats)| stats.total() == 2),
                "{db:?}"
            );
            key_holds();
        }
    }

    /// A bulk commit merges into stored rows (of days before, on and after the last stored
    /// day) and fleet rows exactly, writes each key once, leaves out days a prune removed and
    /// counts their requests, and is not applied twice when retried after it committed.
    #[cfg(feature = "testing")]
    #[test]
    fn a_bulk_commit_merges_into_stored_rows_and_fleet_days_exactly() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let stats = |latencies: &[u64]| {
                let mut acc = crate::DayAccumulator::new();
                for (i, &us) in latencies.iter().enumerate() {
                    acc.add(i % 3 != 0, us);
                }
                acc.finish()
            };
            let day = |d: i32| 20_000 + d;
            // Stored first, one epoch: days 0 and 2 of "a", day 2 of "b".
            let stored = vec![
                ("a".to_string(), day(0), stats(&[1_000, 2_000])),
                ("a".to_string(), day(2), stats(&[3_000])),
                ("b".to_string(), day(2), stats(&[4_000, 4_000, 9_000])),
            ];
            let epoch = EpochCommit {
                deltas: stored.clone(),
                ..EpochCommit::default()
            };
            assert_eq!(
                store.commit_epoch(&epoch).expect("commit"),
                CommitOutcome::Written(3)
            );
            // The bulk: before the last stored day (stored and not), on it, after it.
            let bulk = vec![
                ("a".to_string(), day(1), stats(&[5_000])),
                ("a".to_string(), day(2), stats(&[6_000, 7_000])),
                ("a".to_string(), day(5), stats(&[8_000])),
                ("b".to_string(), day(0), stats(&[1_500])),
                ("b".to_string(), day(2), stats(&[4_000])),
                ("c".to_string(), day(9), stats(&[2_500, 2_600])),
            ];
            let at = |byte_offset| SourceOffset {
                source: "inode:1:9".to_string(),
                fingerprint: b"x".to_vec(),
                byte_offset,
                line_count: byte_offset / 10,
            };
            let epochs = EpochCommit {
                sources: vec![at(500)],
                previous: vec![at(0)],
                max_event_time: Some(1_728_000_000),
                ..EpochCommit::default()
            };
            let deltas = InMemory(bulk.clone());
            assert_eq!(
                store
                    .commit_bulk(&epochs, &deltas, Some(day(0)))
                    .expect("bulk"),
                CommitOutcome::Written(6),
                "{db:?}"
            );
            // Every key: the stored delta and the bulk's merged, computed here.
            let mut expected: BTreeMap<(String, i32), DayStats> = BTreeMap::new();
            for (customer, d, delta) in stored.iter().chain(&bulk) {
                expected
                    .entry((customer.clone(), *d))
                    .or_insert_with(DayStats::empty)
                    .merge(delta);
            }
            let rows: Vec<((String, i32), DayStats)> = store
                .all_days()
                .expect("rows")
                .into_iter()
                .map(|(customer, date, stats)| ((customer, day_from_date(date)), stats))
                .collect();
            assert_eq!(
                rows,
                expected.clone().into_iter().collect::<Vec<_>>(),
                "{db:?}"
            );
            // Each day's fleet row: every customer's row of the day merged.
            let mut fleet: BTreeMap<NaiveDate, DayStats> = BTreeMap::new();
            for ((_, d), stats) in &expected {
                fleet
                    .entry(date_from_day(*d))
                    .or_insert_with(DayStats::empty)
                    .merge(stats);
            }
            let first = date_from_day(day(0));
            let fleet_rows = store
                .fleet_days(first, date_from_day(day(9)))
                .expect("fleet")
                .expect("fleet rows in use");
            assert_eq!(fleet_rows, fleet.into_iter().collect::<Vec<_>>(), "{db:?}");
            // Retried after it committed (the reply lost): not applied again.
            assert_eq!(
                store
                    .commit_bulk(&epochs, &deltas, Some(day(0)))
                    .expect("retry"),
                CommitOutcome::AlreadyCommitted,
                "{db:?}"
            );
            // Days a prune removed since they were read: counted, not stored.
            store.prune_before(date_from_day(day(3))).expect("prune");
            let late = InMemory(vec![
                ("a".to_string(), day(1), stats(&[1_000, 2_000])),
                ("a".to_string(), day(6), stats(&[3_000])),
            ]);
            let next = EpochCommit {
                sources: vec![at(600)],
                previous: vec![at(500)],
                ..EpochCommit::default()
            };
            assert_eq!(
                store.commit_bulk(&next, &late, Some(day(1))).expect("bulk"),
                CommitOutcome::WrittenExceptPruned { rows: 1, pruned: 2 },
                "{db:?}"
            );
            let kept: Vec<i32> = store
                .all_days()
                .expect("rows")
                .into_iter()
                .map(|(_, date, _)| day_from_date(date))
                .collect();
            assert_eq!(kept, vec![day(5), day(6), day(9)], "{db:?}");
        }
    }
}
