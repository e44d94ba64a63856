//! Retention: the days before a first kept day removed, with everything derived from them, in
//! one write transaction that also stores that day (the prune horizon) and bumps the versions
//! of the customers whose rows went, so every API replica drops them on its next version round
//! (see [`Store::prune_before`]). Each commit reads the horizon in its own transaction and drops
//! the deltas of earlier days: a pruned day is never stored again.

use chrono::NaiveDate;
use diesel::dsl;
use diesel::prelude::*;
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::query_dsl::LoadQuery;

use super::connection::StoreConnection;
use super::models::date_from_day;
use super::schema::{customer_versions, daily_stats, fleet_days, prune_horizon};
use super::{EpochCommit, StorageError, Store};

/// Customers whose rows one statement of a prune looks for.
const CUSTOMERS_PER_STATEMENT: usize = 256;

/// What [`Store::prune_before`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// The first day kept from now on: every day before it is gone (a later day than the one
    /// asked for when an earlier prune went further).
    pub first_kept_day: NaiveDate,
    /// Customers' (customer, day) rows removed.
    pub customer_days: u64,
    /// Per-day fleet rows removed.
    pub fleet_days: u64,
    /// Customers that had rows removed (each got a new version).
    pub customers: u64,
}

/// The queries of retention.
pub(super) trait PruneRows {
    /// The first day kept (`None`: nothing was ever pruned).
    fn first_kept_day(&mut self) -> QueryResult<Option<NaiveDate>>;

    /// Stores `day` as the first day kept.
    fn set_first_kept_day(&mut self, day: NaiveDate) -> QueryResult<usize>;

    /// Sets the version of those of `customers` with a row before `day` to `version`.
    fn bump_customers_with_days_before(
        &mut self,
        customers: &[&str],
        day: NaiveDate,
        version: i64,
    ) -> QueryResult<usize>;

    /// Deletes the rows of `customers` before `day`.
    fn delete_days_before(&mut self, customers: &[&str], day: NaiveDate) -> QueryResult<usize>;

    /// Deletes the fleet rows before `day`.
    fn delete_fleet_days_before(&mut self, day: NaiveDate) -> QueryResult<usize>;
}

#[dsl::auto_type]
fn horizon_query() -> _ {
    prune_horizon::table.select(prune_horizon::first_day)
}

type SetHorizonQuery =
    dsl::Update<prune_horizon::table, dsl::Eq<prune_horizon::first_day, NaiveDate>>;

/// A range of the primary key (customer_id, day) per customer: no index is ordered by day.
#[dsl::auto_type]
fn days_before(customers: Vec<String>, day: NaiveDate) -> _ {
    daily_stats::table
        .filter(daily_stats::customer_id.eq_any(customers))
        .filter(daily_stats::day.lt(day))
}

/// The versions of those of `customers` with a row before `day`: one probe of the primary key
/// each (a `DISTINCT` over their rows took MariaDB 80 ms a chunk).
#[dsl::auto_type]
fn versions_with_days_before(customers: Vec<String>, day: NaiveDate) -> _ {
    let rows = daily_stats::table
        .filter(daily_stats::customer_id.eq(customer_versions::customer_id))
        .filter(daily_stats::day.lt(day));
    customer_versions::table
        .filter(customer_versions::customer_id.eq_any(customers))
        .filter(dsl::exists(rows))
}

type BumpQuery = dsl::Update<versions_with_days_before, dsl::Eq<customer_versions::version, i64>>;

#[dsl::auto_type]
fn fleet_days_before(day: NaiveDate) -> _ {
    fleet_days::table.filter(fleet_days::day.lt(day))
}

fn owned(customers: &[&str]) -> Vec<String> {
    customers.iter().map(|c| c.to_string()).collect()
}

impl<C> PruneRows for C
where
    C: Connection,
    for<'a> dsl::Limit<horizon_query>: LoadQuery<'a, C, Option<NaiveDate>>,
    SetHorizonQuery: ExecuteDsl<C>,
    BumpQuery: ExecuteDsl<C>,
    dsl::delete<days_before>: ExecuteDsl<C>,
    dsl::delete<fleet_days_before>: ExecuteDsl<C>,
{
    fn first_kept_day(&mut self) -> QueryResult<Option<NaiveDate>> {
        // No row at all (the migration inserts it) reads as never pruned.
        Ok(horizon_query().first(self).optional()?.flatten())
    }

    fn set_first_kept_day(&mut self, day: NaiveDate) -> QueryResult<usize> {
        diesel::update(prune_horizon::table)
            .set(prune_horizon::first_day.eq(day))
            .execute(self)
    }

    fn bump_customers_with_days_before(
        &mut self,
        customers: &[&str],
        day: NaiveDate,
        version: i64,
    ) -> QueryResult<usize> {
        diesel::update(versions_with_days_before(owned(customers), day))
            .set(customer_versions::version.eq(version))
            .execute(self)
    }

    fn delete_days_before(&mut self, customers: &[&str], day: NaiveDate) -> QueryResult<usize> {
        diesel::delete(days_before(owned(customers), day)).execute(self)
    }

    fn delete_fleet_days_before(&mut self, day: NaiveDate) -> QueryResult<usize> {
        diesel::delete(fleet_days_before(day)).execute(self)
    }
}

impl Store {
    /// The first day kept: every day before it was pruned and is never stored again (`None`
    /// before the first prune).
    pub fn first_kept_day(&self) -> Result<Option<NaiveDate>, StorageError> {
        self.with_connection(|conn| conn.first_kept_day())
    }

    /// Removes every day before `first_kept_day`, in one write transaction: the customers' rows
    /// of those days, the fleet rows of those days, a new version for each customer that had
    /// such rows (the API's copies and remembered answers follow versions) and the first kept
    /// day itself, which commits read to drop later deltas of pruned days. The first kept day
    /// only moves forward: asking for an earlier one than stored removes nothing.
    pub fn prune_before(&self, first_kept_day: NaiveDate) -> Result<Pruned, StorageError> {
        self.write(|conn| prune(conn, first_kept_day))
    }
}

/// The body of [`Store::prune_before`], inside its write transaction.
fn prune(conn: &mut dyn StoreConnection, day: NaiveDate) -> Result<Pruned, StorageError> {
    let stored = conn.first_kept_day()?;
    if let Some(stored) = stored.filter(|&stored| stored >= day) {
        return Ok(Pruned {
            first_kept_day: stored,
            customer_days: 0,
            fleet_days: 0,
            customers: 0,
        });
    }
    // No index of the customers' rows is ordered by day: they are found customer by customer
    // through the primary key. The fleet rows (one a day with rows, unless pending) say first
    // whether there is anything to find.
    if !conn.fleet_days_pending()? && !conn.any_fleet_day_before(day)? {
        conn.set_first_kept_day(day)?;
        return Ok(Pruned {
            first_kept_day: day,
            customer_days: 0,
            fleet_days: 0,
            customers: 0,
        });
    }
    // Writers are serialized: one number above every stored version, as a commit's.
    let version = conn.max_version()?.unwrap_or(0) + 1;
    // Every customer with rows has a version (see `versions`): the customers are read from
    // there, and in each chunk those with rows before `day` get the new version (before the
    // rows go: the statement finds them through their rows), then the rows go.
    let all = super::versions::every_customer(conn)?;
    let (mut customers, mut customer_days) = (0, 0);
    for chunk in all.chunks(CUSTOMERS_PER_STATEMENT) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let bumped = conn.bump_customers_with_days_before(&chunk, day, version)?;
        if bumped > 0 {
            customers += bumped;
            customer_days += conn.delete_days_before(&chunk, day)?;
        }
    }
    let fleet_days = conn.delete_fleet_days_before(day)?;
    conn.set_first_kept_day(day)?;
    Ok(Pruned {
        first_kept_day: day,
        customer_days: customer_days as u64,
        fleet_days: fleet_days as u64,
        customers: customers as u64,
    })
}

/// `epoch` without its deltas of days before the stored first kept day (a prune committed
/// after the epoch was read), and the requests those deltas held; `None` when it has none.
/// Called by the commit, in its transaction.
pub(super) fn without_pruned_days(
    conn: &mut dyn StoreConnection,
    epoch: &EpochCommit,
) -> Result<Option<(EpochCommit, u64)>, StorageError> {
    let Some(first) = conn.first_kept_day()? else {
        return Ok(None);
    };
    let pruned = |day: i32| date_from_day(day) < first;
    if !epoch.deltas.iter().any(|(_, day, _)| pruned(*day)) {
        return Ok(None);
    }
    let mut requests = 0;
    let mut deltas = Vec::with_capacity(epoch.deltas.len());
    for (customer, day, stats) in &epoch.deltas {
        if pruned(*day) {
            requests += stats.total();
        } else {
            deltas.push((customer.clone(), *day, stats.clone()));
        }
    }
    let kept = EpochCommit {
        deltas,
        sources: epoch.sources.clone(),
        previous: epoch.previous.clone(),
        max_event_time: epoch.max_event_time,
        lease: epoch.lease.clone(),
    };
    Ok(Some((kept, requests)))
}

#[cfg(test)]
mod tests;
