//! The commit of an epoch: one write transaction that merges the epoch's deltas into the stored
//! rows and into the fleet rows of their days, bumps the touched customers' versions, checks
//! the leases and moves the sources' offsets and the watermark (see [`Store::commit_epoch`]).

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use super::connection::StoreConnection;
use super::models::{date_from_day, DailyStatsRow, FleetDayRow, SourceOffset, SourceOffsetRow};
use super::{
    BatchCounts, CommitOutcome, EpochCommit, PushedBatch, StorageError, Store, ROWS_PER_STATEMENT,
};
use crate::stats::DayStats;

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
}

/// The body of [`Store::commit_epoch`], inside its write transaction.
///
/// Memory: besides the epoch itself, only the stored rows the epoch merges into and one
/// statement's rows at a time are held (the rows are encoded a statement at a time, in
/// primary-key order, straight from the epoch's deltas).
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
    let mut stored = stored_rows(conn, epoch, &order)?;
    // Writers are serialized, so one number above every stored version orders the commits for
    // readers. The rows carry it too, so a reader can fetch just the rows changed since a
    // version.
    let version = if order.is_empty() {
        0
    } else {
        conn.max_version()?.unwrap_or(0) + 1
    };
    let mut written = 0;
    let mut touched: Vec<&str> = Vec::new();
    let mut statement: Vec<DailyStatsRow> = Vec::with_capacity(ROWS_PER_STATEMENT);
    let mut at = 0;
    while at < order.len() {
        let (customer, day) = key(order[at]);
        let same = order[at..]
            .iter()
            .take_while(|&&i| key(i) == (customer, day))
            .count();
        let date = date_from_day(day);
        let stored_row = match stored.is_empty() {
            true => None,
            false => stored.remove(&(customer.to_string(), date)),
        };
        let row = if same == 1 && stored_row.is_none() {
            DailyStatsRow::new(
                customer.to_string(),
                date,
                &epoch.deltas[order[at]].2,
                version,
            )?
        } else {
            let mut merged = stored_row.unwrap_or_else(DayStats::empty);
            for &i in &order[at..at + same] {
                merged.merge(&epoch.deltas[i].2);
            }
            DailyStatsRow::new(customer.to_string(), date, &merged, version)?
        };
        statement.push(row);
        if touched.last() != Some(&customer) {
            touched.push(customer);
        }
        at += same;
        if statement.len() == ROWS_PER_STATEMENT || at == order.len() {
            conn.upsert_rows(&statement)?;
            written += statement.len();
            statement.clear();
        }
    }
    // In the same transaction: a fleet row never holds more or less than its day's rows, even
    // when the process is killed mid-commit.
    merge_fleet_days(conn, epoch, version)?;
    if !touched.is_empty() {
        conn.upsert_versions(&touched, version)?;
    }
    move_sources(conn, epoch)?;
    let stored_watermark = conn.stored_watermark()?;
    if let Some(event_time) = epoch.max_event_time.filter(|&t| stored_watermark < Some(t)) {
        conn.upsert_watermark(event_time)?;
    }
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
        0 => CommitOutcome::Written(written),
        pruned => CommitOutcome::WrittenExceptPruned {
            rows: written,
            pruned,
        },
    })
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

/// The stored rows of the epoch's (customer, day) keys; `order` sorts the epoch's deltas by
/// key.
fn stored_rows(
    conn: &mut dyn StoreConnection,
    epoch: &EpochCommit,
    order: &[usize],
) -> Result<HashMap<(String, NaiveDate), DayStats>, StorageError> {
    let mut stored = HashMap::new();
    let (Some(first), Some(last)) = (
        epoch.deltas.iter().map(|d| d.1).min(),
        epoch.deltas.iter().map(|d| d.1).max(),
    ) else {
        return Ok(stored);
    };
    let (first, last) = (date_from_day(first), date_from_day(last));
    let mut customers: Vec<&str> = order.iter().map(|&i| epoch.deltas[i].0.as_str()).collect();
    customers.dedup();
    for chunk in customers.chunks(ROWS_PER_STATEMENT) {
        for row in conn.rows_of(chunk, first, last)? {
            let wanted = order
                .binary_search_by(|&i| {
                    let (customer, day, _) = &epoch.deltas[i];
                    (customer.as_str(), date_from_day(*day))
                        .cmp(&(row.customer_id.as_str(), row.day))
                })
                .is_ok();
            if wanted {
                stored.insert((row.customer_id.clone(), row.day), row.into_stats()?);
            }
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
    let mut merged: BTreeMap<NaiveDate, DayStats> = by_day
        .into_iter()
        .map(|(day, deltas)| (day, DayStats::merge_all(deltas.iter().copied())))
        .collect();
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
            let stored_busy = &days[299].2;
            assert_eq!(days[299].0, "busy_299");
            assert_eq!(stored_busy.total(), busy.total(), "{db:?}");
            assert_eq!(
                stored_busy.latencies.encode(),
                busy.latencies.encode(),
                "{db:?}"
            );
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
}
