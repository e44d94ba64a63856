//! The `fleet_days` table: one row per UTC day, every customer's row of that day merged, kept
//! by each commit in the same transaction as the customers' rows (see `commit`), so the fleet
//! view of a range (`GET /stats`) reads one row a day.
//!
//! Rows committed before the table existed are merged into it once, by the first process that
//! may write ([`Store::connect`] with migrations allowed): the migration leaves a row in
//! `fleet_days_pending` saying they are not there yet, and the build deletes it in its own
//! transaction. While it is there, [`Store::fleet_days`] answers `None` and the API walks
//! `daily_stats` as it did before.

use chrono::NaiveDate;
use diesel::dsl;
use diesel::prelude::*;
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::query_dsl::LoadQuery;

use super::connection::StoreConnection;
use super::models::{DailyStatsRow, FleetDayRow};
use super::schema::{fleet_days, fleet_days_pending};
use super::{StorageError, Store};
use crate::stats::DayStats;

/// Rows read per round trip while merging customers' rows by day.
const ROWS_PER_READ: i64 = 2048;

/// Customers whose rows one read asks for, so that a pass's rows of a chunk of customers
/// ([`DAYS_PER_PASS`] days, at most one row a customer and day) fit one read.
const CUSTOMERS_PER_READ: usize = 256;

/// Days merged per pass over every customer.
const DAYS_PER_PASS: u64 = 8;

/// Rows of one day gathered before they are merged into one.
const COMPACT_EVERY: usize = 256;

/// Fleet rows written per upsert while building them.
const DAYS_PER_WRITE: usize = 64;

/// The queries of `fleet_days`, of its marker, and the reads of `daily_stats` that build it.
pub(super) trait FleetDayRows {
    /// The fleet rows from `from` to `to` (inclusive), by day.
    fn fleet_rows(&mut self, from: NaiveDate, to: NaiveDate) -> QueryResult<Vec<FleetDayRow>>;

    /// The fleet rows of `days`, in no order.
    fn fleet_rows_on(&mut self, days: &[NaiveDate]) -> QueryResult<Vec<FleetDayRow>>;

    /// Whether the fleet rows of the rows committed before `fleet_days` existed are still to
    /// be built.
    fn fleet_days_pending(&mut self) -> QueryResult<bool>;

    /// Deletes the marker of [`FleetDayRows::fleet_days_pending`].
    fn clear_fleet_days_pending(&mut self) -> QueryResult<usize>;

    /// Sets the marker of [`FleetDayRows::fleet_days_pending`] (it must not be set).
    fn set_fleet_days_pending(&mut self) -> QueryResult<usize>;

    /// Deletes every fleet row.
    fn delete_fleet_rows(&mut self) -> QueryResult<usize>;

    /// The last day on or after `from` with a fleet row.
    fn last_fleet_day_from(&mut self, from: NaiveDate) -> QueryResult<Option<NaiveDate>>;

    /// Whether a fleet row is older than `day`.
    fn any_fleet_day_before(&mut self, day: NaiveDate) -> QueryResult<bool>;
}

#[dsl::auto_type]
fn fleet_rows_query(from: NaiveDate, to: NaiveDate) -> _ {
    fleet_days::table
        .filter(fleet_days::day.between(from, to))
        .order(fleet_days::day.asc())
}

#[dsl::auto_type]
fn fleet_rows_on_query(days: Vec<NaiveDate>) -> _ {
    fleet_days::table.filter(fleet_days::day.eq_any(days))
}

#[dsl::auto_type]
fn pending_query() -> _ {
    fleet_days_pending::table.select(fleet_days_pending::id)
}

type ClearPendingQuery = dsl::delete<fleet_days_pending::table>;

/// Sets the marker (plain SQL, the same on every backend).
const SET_PENDING: &str = "INSERT INTO fleet_days_pending (id) VALUES (1)";

type DeleteFleetQuery = dsl::delete<fleet_days::table>;

#[dsl::auto_type]
fn last_fleet_day_query(from: NaiveDate) -> _ {
    fleet_days::table
        .filter(fleet_days::day.ge(from))
        .order(fleet_days::day.desc())
        .select(fleet_days::day)
}

#[dsl::auto_type]
fn fleet_day_before_query(day: NaiveDate) -> _ {
    fleet_days::table
        .filter(fleet_days::day.lt(day))
        .select(fleet_days::day)
}

impl<C> FleetDayRows for C
where
    C: Connection,
    for<'a> fleet_rows_query: LoadQuery<'a, C, FleetDayRow>,
    for<'a> fleet_rows_on_query: LoadQuery<'a, C, FleetDayRow>,
    for<'a> dsl::Limit<pending_query>: LoadQuery<'a, C, i32>,
    ClearPendingQuery: ExecuteDsl<C>,
    diesel::query_builder::SqlQuery: ExecuteDsl<C>,
    DeleteFleetQuery: ExecuteDsl<C>,
    for<'a> dsl::Limit<last_fleet_day_query>: LoadQuery<'a, C, NaiveDate>,
    for<'a> dsl::Limit<fleet_day_before_query>: LoadQuery<'a, C, NaiveDate>,
{
    fn fleet_rows(&mut self, from: NaiveDate, to: NaiveDate) -> QueryResult<Vec<FleetDayRow>> {
        fleet_rows_query(from, to).load(self)
    }

    fn fleet_rows_on(&mut self, days: &[NaiveDate]) -> QueryResult<Vec<FleetDayRow>> {
        fleet_rows_on_query(days.to_vec()).load(self)
    }

    fn fleet_days_pending(&mut self) -> QueryResult<bool> {
        Ok(pending_query().first(self).optional()?.is_some())
    }

    fn clear_fleet_days_pending(&mut self) -> QueryResult<usize> {
        diesel::delete(fleet_days_pending::table).execute(self)
    }

    fn set_fleet_days_pending(&mut self) -> QueryResult<usize> {
        diesel::sql_query(SET_PENDING).execute(self)
    }

    fn delete_fleet_rows(&mut self) -> QueryResult<usize> {
        diesel::delete(fleet_days::table).execute(self)
    }

    fn last_fleet_day_from(&mut self, from: NaiveDate) -> QueryResult<Option<NaiveDate>> {
        last_fleet_day_query(from).first(self).optional()
    }

    fn any_fleet_day_before(&mut self, day: NaiveDate) -> QueryResult<bool> {
        Ok(fleet_day_before_query(day)
            .first(self)
            .optional()?
            .is_some())
    }
}

impl Store {
    /// Every customer's requests of each day from `from` to `to` (inclusive) merged, by day:
    /// the stored fleet rows. `None` while the rows committed before `fleet_days` existed are
    /// not in them yet (see the module's documentation): read `daily_stats` then.
    pub fn fleet_days(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Option<Vec<(NaiveDate, DayStats)>>, StorageError> {
        // The marker is deleted in the transaction that completes the rows: once it is gone,
        // every read sees them complete.
        let rows = self.with_connection(|conn| -> Result<_, StorageError> {
            if conn.fleet_days_pending()? {
                return Ok(None);
            }
            Ok(Some(conn.fleet_rows(from, to)?))
        })?;
        rows.map(|rows| {
            rows.into_iter()
                .map(|row| Ok((row.day, row.into_stats()?)))
                .collect()
        })
        .transpose()
    }

    /// Builds the fleet rows of the rows committed before `fleet_days` existed, if the
    /// migration left them to build, in one write transaction. Returns whether it did.
    pub(super) fn build_pending_fleet_days(&self) -> Result<bool, StorageError> {
        if !self.with_connection(|conn| conn.fleet_days_pending())? {
            return Ok(false);
        }
        self.write(build_fleet_days)
    }
}

/// Rebuilds every fleet row from `daily_stats` and deletes the marker, inside a write
/// transaction; nothing when another process did it first.
fn build_fleet_days(conn: &mut dyn StoreConnection) -> Result<bool, StorageError> {
    if !conn.fleet_days_pending()? {
        return Ok(false);
    }
    conn.delete_fleet_rows()?;
    let (Some(first), Some(last)) = conn.scan_day_span()? else {
        conn.clear_fleet_days_pending()?;
        return Ok(true);
    };
    let customers = super::versions::every_customer(conn)?;
    let customers: Vec<&str> = customers.iter().map(String::as_str).collect();
    let mut built = Vec::new();
    let mut unrepresentable = false;
    let conn = std::cell::RefCell::new(conn);
    merge_by_day(
        &customers,
        (first, last),
        &mut |chunk, from, to, after, limit| {
            Ok(conn
                .borrow_mut()
                .page_by_customer(chunk, from, to, after, limit)?)
        },
        &mut |day, merged, version| {
            match FleetDayRow::new(day, &merged, version) {
                Ok(row) => built.push(row),
                // A day whose fleet sum passes what a row holds (2^63 - 1 µs): the marker
                // stays, and `GET /stats` keeps walking every customer's rows, whose sums it
                // adds exactly.
                Err(StorageError::Unrepresentable { .. }) => unrepresentable = true,
                Err(error) => return Err(error),
            }
            if built.len() >= DAYS_PER_WRITE {
                conn.borrow_mut().upsert_fleet_rows(&built)?;
                built.clear();
            }
            Ok(())
        },
    )?;
    let conn = conn.into_inner();
    if unrepresentable {
        return Ok(false);
    }
    conn.upsert_fleet_rows(&built)?;
    conn.clear_fleet_days_pending()?;
    Ok(true)
}

/// Reads a page of rows of some customers (sorted) from one day to another, by (customer,
/// day), after a key, at most a number of them: [`DailyStatsRows::page_by_customer`].
type ReadPage<'r, E> = dyn FnMut(
        &[&str],
        NaiveDate,
        NaiveDate,
        Option<(&str, NaiveDate)>,
        i64,
    ) -> Result<Vec<DailyStatsRow>, E>
    + 'r;

/// Merges the rows of `customers` (sorted ids) of each day from `from` to `to` and gives each
/// day with rows, in day order, to `day_done` with the newest version among them. No index is
/// ordered by day: the rows are read by customer through the primary key, [`DAYS_PER_PASS`]
/// days at a time, so at most that many days' pending rows are held.
pub(super) fn merge_by_day<E: From<StorageError>>(
    customers: &[&str],
    (from, to): (NaiveDate, NaiveDate),
    read: &mut ReadPage<'_, E>,
    day_done: &mut dyn FnMut(NaiveDate, DayStats, i64) -> Result<(), E>,
) -> Result<(), E> {
    let mut start = from;
    while start <= to {
        let end = start
            .checked_add_days(chrono::Days::new(DAYS_PER_PASS - 1))
            .map_or(to, |end| end.min(to));
        let mut days: std::collections::BTreeMap<NaiveDate, (Vec<DayStats>, i64)> =
            std::collections::BTreeMap::new();
        for chunk in customers.chunks(CUSTOMERS_PER_READ) {
            let mut after: Option<(String, NaiveDate)> = None;
            loop {
                let keyset = after
                    .as_ref()
                    .map(|(customer, day)| (customer.as_str(), *day));
                let rows = read(chunk, start, end, keyset, ROWS_PER_READ)?;
                let last_page = rows.len() < usize::try_from(ROWS_PER_READ).unwrap_or(usize::MAX);
                for row in rows {
                    after = Some((row.customer_id.clone(), row.day));
                    let (pending, version) = days.entry(row.day).or_default();
                    *version = (*version).max(row.version);
                    pending.push(row.into_stats()?);
                    if pending.len() >= COMPACT_EVERY {
                        let merged = DayStats::merge_all(&*pending);
                        pending.clear();
                        pending.push(merged);
                    }
                }
                if last_page {
                    break;
                }
            }
        }
        for (day, (mut pending, version)) in days {
            let merged = match pending.len() {
                1 => pending.pop().unwrap_or_default(),
                _ => DayStats::merge_all(&pending),
            };
            day_done(day, merged, version)?;
        }
        match end.succ_opt() {
            Some(next) if end < to => start = next,
            _ => break,
        }
    }
    Ok(())
}

impl Store {
    /// The rows of `customers` (sorted ids) of each day from `from` to `to` merged, given to
    /// `on_day` in day order (days with rows only): `GET /stats` while the fleet rows are
    /// pending. `check` runs before each read (a deadline); each read takes a connection of
    /// its own.
    pub fn walk_days<E: From<StorageError>>(
        &self,
        customers: &[&str],
        from: NaiveDate,
        to: NaiveDate,
        mut check: impl FnMut() -> Result<(), E>,
        mut on_day: impl FnMut(NaiveDate, DayStats) -> Result<(), E>,
    ) -> Result<(), E> {
        merge_by_day(
            customers,
            (from, to),
            &mut |chunk, from, to, after, limit| {
                check()?;
                Ok(self
                    .with_connection(|conn| conn.page_by_customer(chunk, from, to, after, limit))?)
            },
            &mut |day, merged, _| on_day(day, merged),
        )
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests;
