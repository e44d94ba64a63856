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
use super::schema::{daily_stats, fleet_days, fleet_days_pending};
use super::{StorageError, Store, LAST_DAY};
use crate::stats::DayStats;

/// The first day a stored row can have (a log line's year has four digits).
const FIRST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(1, 1, 1) {
    Some(day) => day,
    None => NaiveDate::MIN,
};

/// Customers' rows of one day read per round trip while building the fleet rows.
const ROWS_PER_READ: i64 = 2048;

/// Rows of one day gathered before they are merged into one, as the API's walk of
/// `daily_stats` does: a day built here holds what that walk computes, digests included.
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

    /// The first day on or after `from` with a customer's row.
    fn first_day_from(&mut self, from: NaiveDate) -> QueryResult<Option<NaiveDate>>;

    /// The first `limit` customers' rows of `day` after customer `after`, by customer.
    fn rows_of_day(
        &mut self,
        day: NaiveDate,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<DailyStatsRow>>;
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

/// The first day first: the index on (day, customer_id) answers it with one probe.
#[dsl::auto_type]
fn first_day_query(from: NaiveDate) -> _ {
    daily_stats::table
        .filter(daily_stats::day.ge(from))
        .order(daily_stats::day.asc())
        .select(daily_stats::day)
}

#[dsl::auto_type]
fn first_rows_of_day_query(day: NaiveDate, limit: i64) -> _ {
    daily_stats::table
        .filter(daily_stats::day.eq(day))
        .order(daily_stats::customer_id.asc())
        .limit(limit)
}

/// One day's rows past a customer: a range of the index on (day, customer_id) on every
/// backend (a row-value comparison over both columns is not one on MariaDB).
#[dsl::auto_type]
fn rows_of_day_query(day: NaiveDate, after: String, limit: i64) -> _ {
    daily_stats::table
        .filter(daily_stats::day.eq(day))
        .filter(daily_stats::customer_id.gt(after))
        .order(daily_stats::customer_id.asc())
        .limit(limit)
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
    for<'a> dsl::Limit<first_day_query>: LoadQuery<'a, C, NaiveDate>,
    for<'a> first_rows_of_day_query: LoadQuery<'a, C, DailyStatsRow>,
    for<'a> rows_of_day_query: LoadQuery<'a, C, DailyStatsRow>,
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

    fn first_day_from(&mut self, from: NaiveDate) -> QueryResult<Option<NaiveDate>> {
        first_day_query(from).first(self).optional()
    }

    fn rows_of_day(
        &mut self,
        day: NaiveDate,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<DailyStatsRow>> {
        match after {
            None => first_rows_of_day_query(day, limit).load(self),
            Some(after) => rows_of_day_query(day, after.to_string(), limit).load(self),
        }
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
    let mut built = Vec::new();
    let mut from = FIRST_DAY;
    while let Some(day) = conn.first_day_from(from)? {
        match merge_day(conn, day) {
            Ok(row) => built.push(row),
            // A day whose fleet sum passes what a row holds (2^63 - 1 µs): the marker stays,
            // and `GET /stats` keeps walking every customer's rows, whose sums it adds exactly.
            Err(StorageError::Unrepresentable { .. }) => return Ok(false),
            Err(error) => return Err(error),
        }
        if built.len() >= DAYS_PER_WRITE {
            conn.upsert_fleet_rows(&built)?;
            built.clear();
        }
        match day.succ_opt() {
            Some(next) if next <= LAST_DAY => from = next,
            _ => break,
        }
    }
    conn.upsert_fleet_rows(&built)?;
    conn.clear_fleet_days_pending()?;
    Ok(true)
}

/// Every customer's row of `day` merged, with the newest version among them.
fn merge_day(conn: &mut dyn StoreConnection, day: NaiveDate) -> Result<FleetDayRow, StorageError> {
    let mut pending: Vec<DayStats> = Vec::new();
    let mut version = 0;
    let mut after: Option<String> = None;
    loop {
        let rows = conn.rows_of_day(day, after.as_deref(), ROWS_PER_READ)?;
        let last_page = rows.len() < usize::try_from(ROWS_PER_READ).unwrap_or(usize::MAX);
        for row in rows {
            version = version.max(row.version);
            after = Some(row.customer_id.clone());
            pending.push(row.into_stats()?);
            if pending.len() >= COMPACT_EVERY {
                let merged = DayStats::merge_all(&pending);
                pending.clear();
                pending.push(merged);
            }
        }
        if last_page {
            break;
        }
    }
    let merged = match pending.len() {
        1 => pending.pop().unwrap_or_default(),
        _ => DayStats::merge_all(&pending),
    };
    FleetDayRow::new(day, &merged, version)
}

#[cfg(all(test, feature = "testing"))]
mod tests;
