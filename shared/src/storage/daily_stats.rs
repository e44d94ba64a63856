//! The `daily_stats` table: its queries, written once for every backend, and the reads the API
//! answers from.

use chrono::NaiveDate;
use diesel::dsl;
use diesel::dsl::AsExprOf;
use diesel::expression::SqlLiteral;
use diesel::expression::{AsExpression, UncheckedBind};
use diesel::prelude::*;
use diesel::query_dsl::LoadQuery;
use diesel::sql_types::{Bool, Date, SingleValue, Text};

use super::connection::StoreConnection;
use super::models::DailyStatsRow;
use super::schema::daily_stats;
use super::{StorageError, Store, LAST_DAY};
use crate::stats::DayStats;

/// The queries of `daily_stats`. Rows come back in the table's column order, which is
/// [`DailyStatsRow`]'s field order.
pub(super) trait DailyStatsRows {
    /// The stored rows of any of `customers` on any of `days`, in no order.
    fn rows_on(
        &mut self,
        customers: &[&str],
        days: &[NaiveDate],
    ) -> QueryResult<Vec<DailyStatsRow>>;

    /// The stored rows of `customer` from `from` to `to` (inclusive), by day.
    fn customer_rows(
        &mut self,
        customer: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> QueryResult<Vec<DailyStatsRow>>;

    /// The first `limit` rows of `customer` written after version `after`, by day.
    fn customer_rows_since(
        &mut self,
        customer: &str,
        after: i64,
        limit: i64,
    ) -> QueryResult<Vec<DailyStatsRow>>;

    /// One stored day of `customer`, if it has any.
    fn any_day_of(&mut self, customer: &str) -> QueryResult<Option<NaiveDate>>;

    /// The last day on or after `from` with a row, from a scan of every row (no index is
    /// ordered by day): see [`last_day_from`] for the read that serves it.
    fn scan_last_day_from(&mut self, from: NaiveDate) -> QueryResult<Option<NaiveDate>>;

    /// The first and the last day with a row, from a scan of every row.
    fn scan_day_span(&mut self) -> QueryResult<(Option<NaiveDate>, Option<NaiveDate>)>;

    /// A page of the rows of `customers` from `from` to `to` by (customer, day), at most
    /// `limit`, after the key `after` (the first page when `None`).
    fn page_by_customer(
        &mut self,
        customers: &[&str],
        from: NaiveDate,
        to: NaiveDate,
        after: Option<(&str, NaiveDate)>,
        limit: i64,
    ) -> QueryResult<Vec<DailyStatsRow>>;

    /// [`DailyStatsRows::page_by_customer`] without the latencies: each row's key, counts and
    /// latency sum.
    fn counts_page_by_customer(
        &mut self,
        customers: &[&str],
        from: NaiveDate,
        to: NaiveDate,
        after: Option<(&str, NaiveDate)>,
        limit: i64,
    ) -> QueryResult<Vec<CountsRow>>;

    /// Every row, by (customer, day).
    fn all_rows(&mut self) -> QueryResult<Vec<DailyStatsRow>>;
}

/// A row-value comparison `(a, b) > (?, ?)` with the previous page's last key, of values `A`
/// and `B` bound as SQL types `SA` and `SB`: the scan of the index on those columns starts right
/// there on every backend.
type KeysetAfter<A, SA, B, SB> = SqlLiteral<
    Bool,
    UncheckedBind<
        SqlLiteral<Bool, UncheckedBind<SqlLiteral<Bool>, AsExprOf<A, SA>>>,
        AsExprOf<B, SB>,
    >,
>;

/// `(columns) > (first, second)`.
fn keyset_after<A, SA, B, SB>(columns: &str, first: A, second: B) -> KeysetAfter<A, SA, B, SB>
where
    A: AsExpression<SA>,
    B: AsExpression<SB>,
    SA: SingleValue,
    SB: SingleValue,
{
    dsl::sql::<Bool>(&format!("({columns}) > ("))
        .bind::<SA, _>(first)
        .sql(", ")
        .bind::<SB, _>(second)
        .sql(")")
}

#[dsl::auto_type]
fn rows_on_query(customers: Vec<String>, days: Vec<NaiveDate>) -> _ {
    daily_stats::table
        .filter(daily_stats::customer_id.eq_any(customers))
        .filter(daily_stats::day.eq_any(days))
}

#[dsl::auto_type]
fn customer_rows_query<'a>(customer: &'a str, from: NaiveDate, to: NaiveDate) -> _ {
    daily_stats::table
        .filter(daily_stats::customer_id.eq(customer))
        .filter(daily_stats::day.between(from, to))
        .order(daily_stats::day.asc())
}

#[dsl::auto_type]
fn customer_rows_since_query<'a>(customer: &'a str, after: i64, limit: i64) -> _ {
    daily_stats::table
        .filter(daily_stats::customer_id.eq(customer))
        .filter(daily_stats::version.gt(after))
        .order(daily_stats::day.asc())
        .limit(limit)
}

#[dsl::auto_type]
fn any_day_query<'a>(customer: &'a str) -> _ {
    daily_stats::table
        .filter(daily_stats::customer_id.eq(customer))
        .select(daily_stats::day)
}

/// The last day first (a scan: no index is ordered by day).
#[dsl::auto_type]
fn last_day_query(from: NaiveDate) -> _ {
    daily_stats::table
        .filter(daily_stats::day.ge(from))
        .order(daily_stats::day.desc())
        .select(daily_stats::day)
}

/// The first day first (a scan).
#[dsl::auto_type]
fn first_day_query() -> _ {
    daily_stats::table
        .order(daily_stats::day.asc())
        .select(daily_stats::day)
}

#[dsl::auto_type]
fn first_page_by_customer_query(
    customers: Vec<String>,
    from: NaiveDate,
    to: NaiveDate,
    limit: i64,
) -> _ {
    daily_stats::table
        .filter(daily_stats::customer_id.eq_any(customers))
        .filter(daily_stats::day.between(from, to))
        .order((daily_stats::customer_id.asc(), daily_stats::day.asc()))
        .limit(limit)
}

#[dsl::auto_type]
fn page_by_customer_query(
    customers: Vec<String>,
    from: NaiveDate,
    to: NaiveDate,
    keyset: KeysetAfter<String, Text, NaiveDate, Date>,
    limit: i64,
) -> _ {
    daily_stats::table
        .filter(daily_stats::customer_id.eq_any(customers))
        .filter(daily_stats::day.between(from, to))
        .filter(keyset)
        .order((daily_stats::customer_id.asc(), daily_stats::day.asc()))
        .limit(limit)
}

/// A row's key, counts and latency sum: what ranking by a count or an average needs.
pub(super) type CountsRow = (String, NaiveDate, i64, i64, i64);

#[dsl::auto_type]
fn first_counts_page_query(
    customers: Vec<String>,
    from: NaiveDate,
    to: NaiveDate,
    limit: i64,
) -> _ {
    daily_stats::table
        .filter(daily_stats::customer_id.eq_any(customers))
        .filter(daily_stats::day.between(from, to))
        .order((daily_stats::customer_id.asc(), daily_stats::day.asc()))
        .select((
            daily_stats::customer_id,
            daily_stats::day,
            daily_stats::successful,
            daily_stats::failed,
            daily_stats::latency_sum_us,
        ))
        .limit(limit)
}

#[dsl::auto_type]
fn counts_page_query(
    customers: Vec<String>,
    from: NaiveDate,
    to: NaiveDate,
    keyset: KeysetAfter<String, Text, NaiveDate, Date>,
    limit: i64,
) -> _ {
    daily_stats::table
        .filter(daily_stats::customer_id.eq_any(customers))
        .filter(daily_stats::day.between(from, to))
        .filter(keyset)
        .order((daily_stats::customer_id.asc(), daily_stats::day.asc()))
        .select((
            daily_stats::customer_id,
            daily_stats::day,
            daily_stats::successful,
            daily_stats::failed,
            daily_stats::latency_sum_us,
        ))
        .limit(limit)
}

#[dsl::auto_type]
fn all_rows_query() -> _ {
    daily_stats::table.order((daily_stats::customer_id.asc(), daily_stats::day.asc()))
}

/// Customer ids to bind as a list. (Queries bind owned values: with borrowed ones, the bounds
/// below would need to hold for every lifetime, which rustc cannot prove for `eq_any`.)
fn owned(customers: &[&str]) -> Vec<String> {
    customers.iter().map(|c| c.to_string()).collect()
}

impl<C> DailyStatsRows for C
where
    C: Connection,
    for<'a> rows_on_query: LoadQuery<'a, C, DailyStatsRow>,
    for<'a> customer_rows_query<'a>: LoadQuery<'a, C, DailyStatsRow>,
    for<'a> customer_rows_since_query<'a>: LoadQuery<'a, C, DailyStatsRow>,
    for<'a> dsl::Limit<any_day_query<'a>>: LoadQuery<'a, C, NaiveDate>,
    for<'a> dsl::Limit<last_day_query>: LoadQuery<'a, C, NaiveDate>,
    for<'a> dsl::Limit<first_day_query>: LoadQuery<'a, C, NaiveDate>,
    for<'a> first_page_by_customer_query: LoadQuery<'a, C, DailyStatsRow>,
    for<'a> page_by_customer_query: LoadQuery<'a, C, DailyStatsRow>,
    for<'a> first_counts_page_query: LoadQuery<'a, C, CountsRow>,
    for<'a> counts_page_query: LoadQuery<'a, C, CountsRow>,
    for<'a> all_rows_query: LoadQuery<'a, C, DailyStatsRow>,
{
    fn rows_on(
        &mut self,
        customers: &[&str],
        days: &[NaiveDate],
    ) -> QueryResult<Vec<DailyStatsRow>> {
        rows_on_query(owned(customers), days.to_vec()).load(self)
    }

    fn customer_rows(
        &mut self,
        customer: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> QueryResult<Vec<DailyStatsRow>> {
        customer_rows_query(customer, from, to).load(self)
    }

    fn customer_rows_since(
        &mut self,
        customer: &str,
        after: i64,
        limit: i64,
    ) -> QueryResult<Vec<DailyStatsRow>> {
        customer_rows_since_query(customer, after, limit).load(self)
    }

    fn any_day_of(&mut self, customer: &str) -> QueryResult<Option<NaiveDate>> {
        any_day_query(customer).first(self).optional()
    }

    fn scan_last_day_from(&mut self, from: NaiveDate) -> QueryResult<Option<NaiveDate>> {
        last_day_query(from).first(self).optional()
    }

    fn scan_day_span(&mut self) -> QueryResult<(Option<NaiveDate>, Option<NaiveDate>)> {
        let Some(first) = first_day_query().first(self).optional()? else {
            return Ok((None, None));
        };
        let last = last_day_query(first).first(self).optional()?;
        Ok((Some(first), last))
    }

    fn page_by_customer(
        &mut self,
        customers: &[&str],
        from: NaiveDate,
        to: NaiveDate,
        after: Option<(&str, NaiveDate)>,
        limit: i64,
    ) -> QueryResult<Vec<DailyStatsRow>> {
        let Some((customer, day)) = after else {
            return first_page_by_customer_query(owned(customers), from, to, limit).load(self);
        };
        // Only the customers from the page's last one on, for the reason `page_by_day` bounds
        // its days.
        let rest: Vec<&str> = customers
            .iter()
            .copied()
            .filter(|listed| *listed >= customer)
            .collect();
        let customers = owned(&rest);
        let keyset =
            keyset_after::<_, Text, _, Date>("customer_id, day", customer.to_string(), day);
        page_by_customer_query(customers, from, to, keyset, limit).load(self)
    }

    fn counts_page_by_customer(
        &mut self,
        customers: &[&str],
        from: NaiveDate,
        to: NaiveDate,
        after: Option<(&str, NaiveDate)>,
        limit: i64,
    ) -> QueryResult<Vec<CountsRow>> {
        let Some((customer, day)) = after else {
            return first_counts_page_query(owned(customers), from, to, limit).load(self);
        };
        let rest: Vec<&str> = customers
            .iter()
            .copied()
            .filter(|listed| *listed >= customer)
            .collect();
        let keyset =
            keyset_after::<_, Text, _, Date>("customer_id, day", customer.to_string(), day);
        counts_page_query(owned(&rest), from, to, keyset, limit).load(self)
    }

    fn all_rows(&mut self) -> QueryResult<Vec<DailyStatsRow>> {
        all_rows_query().load(self)
    }
}

/// The last day on or after `from` with a stored row of any customer: the last fleet row's day
/// (one row a day with rows, written in the transaction that writes the day's rows), or while
/// the fleet rows are pending, a scan of every customer's rows.
pub(super) fn last_day_from(
    conn: &mut dyn StoreConnection,
    from: NaiveDate,
) -> Result<Option<NaiveDate>, StorageError> {
    if conn.fleet_days_pending()? {
        return Ok(conn.scan_last_day_from(from)?);
    }
    Ok(conn.last_fleet_day_from(from)?)
}

impl Store {
    /// The stored days of `customer_id` from `from` to `to` (inclusive, open-ended when `None`),
    /// ascending.
    pub fn customer_days(
        &self,
        customer_id: &str,
        from: NaiveDate,
        to: Option<NaiveDate>,
    ) -> Result<Vec<(NaiveDate, DayStats)>, StorageError> {
        let to = to.unwrap_or(LAST_DAY);
        let rows = self.with_connection(|conn| conn.customer_rows(customer_id, from, to))?;
        rows.into_iter()
            .map(|row| Ok((row.day, row.into_stats()?)))
            .collect()
    }

    /// The stored days of `customer_id` written by commits after version `after`, ascending,
    /// with the version that wrote each: read with `after` = the newest version held, it brings
    /// a copy of the customer's rows up to date. `None` when there are more than `limit`.
    pub fn customer_days_since(
        &self,
        customer_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Option<Vec<super::VersionedDay>>, StorageError> {
        let limit = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows =
            self.with_connection(|conn| conn.customer_rows_since(customer_id, after, limit))?;
        if rows.len() as i64 == limit {
            return Ok(None);
        }
        rows.into_iter()
            .map(|row| {
                let (day, version) = (row.day, row.version);
                Ok(super::VersionedDay {
                    day,
                    version,
                    stats: row.into_stats()?,
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()
            .map(Some)
    }

    /// Whether any day is stored for `customer_id`.
    pub fn customer_exists(&self, customer_id: &str) -> Result<bool, StorageError> {
        self.with_connection(|conn| conn.any_day_of(customer_id).map(|day| day.is_some()))
    }

    /// The last day on or after `from` with a stored row of any customer.
    pub fn last_day_from(&self, from: NaiveDate) -> Result<Option<NaiveDate>, StorageError> {
        self.with_connection(|conn| last_day_from(conn, from))
    }

    /// The stored days of `customers` from `from` to `to` (inclusive), ordered by customer then
    /// day, at most `limit` of them, after the row `after` (a page of a walk: pass the last row
    /// of the previous page).
    pub fn days_by_customer(
        &self,
        customers: &[&str],
        from: NaiveDate,
        to: NaiveDate,
        after: Option<(&str, NaiveDate)>,
        limit: usize,
    ) -> Result<Vec<(String, NaiveDate, DayStats)>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        keyed_stats(
            self.with_connection(|conn| conn.page_by_customer(customers, from, to, after, limit))?,
        )
    }

    /// [`Store::days_by_customer`] without the latencies: each day's counts and latency sum
    /// (its latency summary empty, its extremes unknown), for ranking customers by a count or
    /// an average without reading or merging their latencies.
    pub fn day_counts_by_customer(
        &self,
        customers: &[&str],
        from: NaiveDate,
        to: NaiveDate,
        after: Option<(&str, NaiveDate)>,
        limit: usize,
    ) -> Result<Vec<(String, NaiveDate, DayStats)>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.with_connection(|conn| {
            conn.counts_page_by_customer(customers, from, to, after, limit)
        })?;
        Ok(rows
            .into_iter()
            .map(|(customer, day, successful, failed, sum)| {
                let stats = DayStats {
                    successful: successful.max(0).unsigned_abs(),
                    failed: failed.max(0).unsigned_abs(),
                    latency_sum_us: u128::from(sum.max(0).unsigned_abs()),
                    ..DayStats::empty()
                };
                (customer, day, stats)
            })
            .collect())
    }

    /// Every stored row, ordered by customer and day (for tests and tools).
    pub fn all_days(&self) -> Result<Vec<(String, NaiveDate, DayStats)>, StorageError> {
        keyed_stats(self.with_connection(|conn| conn.all_rows())?)
    }
}

/// Stored rows as (customer, day, stats), in their order.
fn keyed_stats(
    rows: Vec<DailyStatsRow>,
) -> Result<Vec<(String, NaiveDate, DayStats)>, StorageError> {
    rows.into_iter()
        .map(|row| {
            let (customer, day) = (row.customer_id.clone(), row.day);
            Ok((customer, day, row.into_stats()?))
        })
        .collect()
}

#[cfg(test)]
mod tests;
