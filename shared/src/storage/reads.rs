//! Reads of the stored days and of the customers' versions: what the API answers from.

use super::*;

/// A pooled connection of either backend, kept across reads.
enum HeldConnection {
    Sqlite(PooledConnection<ConnectionManager<SqliteConnection>>),
    Postgres(PooledConnection<ConnectionManager<PgConnection>>),
    #[cfg(feature = "mysql")]
    Mysql(PooledConnection<ConnectionManager<MysqlConnection>>),
}

/// Repeated [`Store::versions_since`] reads on one kept connection: no pool check-out (and no
/// liveness probe) per read. The connection is dropped after a failed read and taken afresh on
/// the next; with a pool of one connection none is kept, so other readers never starve.
pub struct VersionReader {
    store: Store,
    held: Option<HeldConnection>,
}

impl VersionReader {
    /// See [`Store::versions_since`].
    pub fn since(&mut self, after: i64) -> Result<Vec<(String, i64)>, StorageError> {
        let keep = match &self.store.pools {
            Pools::Sqlite(pool) => pool.max_size() > 1,
            Pools::Postgres(pool) => pool.max_size() > 1,
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => pool.max_size() > 1,
        };
        let mut held = match self.held.take() {
            Some(held) => held,
            None => match &self.store.pools {
                Pools::Sqlite(pool) => HeldConnection::Sqlite(pool.get()?),
                Pools::Postgres(pool) => HeldConnection::Postgres(pool.get()?),
                #[cfg(feature = "mysql")]
                Pools::Mysql(pool) => HeldConnection::Mysql(pool.get()?),
            },
        };
        let read = match &mut held {
            HeldConnection::Sqlite(conn) => versions_since(&mut **conn, after),
            HeldConnection::Postgres(conn) => versions_since(&mut **conn, after),
            #[cfg(feature = "mysql")]
            HeldConnection::Mysql(conn) => versions_since(&mut **conn, after),
        };
        if read.is_ok() && keep {
            self.held = Some(held);
        }
        Ok(read?)
    }
}

fn versions_since<C>(conn: &mut C, after: i64) -> QueryResult<Vec<(String, i64)>>
where
    C: Connection,
    C::Backend: diesel::backend::Backend,
    for<'a> diesel::dsl::Filter<
        diesel::dsl::Select<
            customer_versions::table,
            (customer_versions::customer_id, customer_versions::version),
        >,
        diesel::dsl::Gt<customer_versions::version, i64>,
    >: diesel::query_dsl::LoadQuery<'a, C, (String, i64)>,
{
    customer_versions::table
        .select((customer_versions::customer_id, customer_versions::version))
        .filter(customer_versions::version.gt(after))
        .load::<(String, i64)>(conn)
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
        with_backend!(self, conn => {
            let rows: Vec<DailyStatsRow> = daily_stats::table
                .filter(daily_stats::customer_id.eq(customer_id))
                .filter(daily_stats::day.between(from, to))
                .order(daily_stats::day.asc())
                .select(DailyStatsRow::as_select())
                .load(conn)?;
            rows.into_iter()
                .map(|row| Ok((row.day, row.into_stats()?)))
                .collect()
        })
    }

    /// The stored days of `customer_id` written by commits after version `after`, ascending,
    /// with the version that wrote each: read with `after` = the newest version held, it brings
    /// a copy of the customer's rows up to date. `None` when there are more than `limit`.
    pub fn customer_days_since(
        &self,
        customer_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Option<Vec<VersionedDay>>, StorageError> {
        let limit = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        with_backend!(self, conn => {
            let rows: Vec<DailyStatsRow> = daily_stats::table
                .filter(daily_stats::customer_id.eq(customer_id))
                .filter(daily_stats::version.gt(after))
                .order(daily_stats::day.asc())
                .limit(limit)
                .select(DailyStatsRow::as_select())
                .load(conn)?;
            if rows.len() as i64 == limit {
                return Ok(None);
            }
            rows.into_iter()
                .map(|row| {
                    let (day, version) = (row.day, row.version);
                    Ok(VersionedDay { day, version, stats: row.into_stats()? })
                })
                .collect::<Result<Vec<_>, StorageError>>()
                .map(Some)
        })
    }

    /// A number that changes whenever any stored day of `customer_id` changes (0 before the
    /// first). Equal versions read around a read of the rows mean the rows did not change.
    /// Versions are global: every commit gives the customers it touches one new number, above
    /// every version stored before (see [`Store::versions_since`]).
    pub fn customer_version(&self, customer_id: &str) -> Result<i64, StorageError> {
        with_backend!(self, conn => {
            Ok(customer_versions::table
                .filter(customer_versions::customer_id.eq(customer_id))
                .select(customer_versions::version)
                .first::<i64>(conn)
                .optional()?
                .unwrap_or(0))
        })
    }

    /// The customers whose rows changed in commits after version `after`, with their versions:
    /// read with `after` = the largest version seen so far, it keeps a copy of every version
    /// current. One index range; empty when nothing was committed since.
    pub fn versions_since(&self, after: i64) -> Result<Vec<(String, i64)>, StorageError> {
        with_backend!(self, conn => Ok(versions_since(conn, after)?))
    }

    /// A reader of [`Store::versions_since`] that keeps its connection between reads.
    pub fn version_reader(&self) -> VersionReader {
        VersionReader {
            store: self.clone(),
            held: None,
        }
    }

    /// Whether any day is stored for `customer_id`.
    pub fn customer_exists(&self, customer_id: &str) -> Result<bool, StorageError> {
        with_backend!(self, conn => {
            Ok(diesel::select(diesel::dsl::exists(
                daily_stats::table.filter(daily_stats::customer_id.eq(customer_id)),
            ))
            .get_result::<bool>(conn)?)
        })
    }

    /// The last day on or after `from` with a stored row of any customer.
    pub fn last_day_from(&self, from: NaiveDate) -> Result<Option<NaiveDate>, StorageError> {
        with_backend!(self, conn => {
            Ok(daily_stats::table
                .filter(daily_stats::day.ge(from))
                .select(diesel::dsl::max(daily_stats::day))
                .first::<Option<NaiveDate>>(conn)?)
        })
    }

    /// Every customer's stored days from `from` to `to` (inclusive), ordered by day then
    /// customer, at most `limit` of them, after the row `after` (a page of a walk over the
    /// range: pass the last row of the previous page).
    pub fn days_by_day(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        after: Option<(NaiveDate, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, NaiveDate, DayStats)>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        with_backend!(self, conn => {
            let mut query = daily_stats::table
                .filter(daily_stats::day.between(from, to))
                .order((daily_stats::day.asc(), daily_stats::customer_id.asc()))
                .select(DailyStatsRow::as_select())
                .limit(limit)
                .into_boxed();
            if let Some((day, customer)) = after {
                // A row-value comparison: both backends start the scan of the (day,
                // customer_id) index right after the previous page.
                query = query.filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("(day, customer_id) > (")
                        .bind::<diesel::sql_types::Date, _>(day)
                        .sql(", ")
                        .bind::<diesel::sql_types::Text, _>(customer)
                        .sql(")"),
                );
            }
            let rows: Vec<DailyStatsRow> = query.load(conn)?;
            keyed_stats(rows)
        })
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
        with_backend!(self, conn => {
            let mut query = daily_stats::table
                .filter(daily_stats::customer_id.eq_any(customers))
                .filter(daily_stats::day.between(from, to))
                .order((daily_stats::customer_id.asc(), daily_stats::day.asc()))
                .select(DailyStatsRow::as_select())
                .limit(limit)
                .into_boxed();
            if let Some((customer, day)) = after {
                // A row-value comparison: the primary key's scan starts right after the
                // previous page.
                query = query.filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("(customer_id, day) > (")
                        .bind::<diesel::sql_types::Text, _>(customer)
                        .sql(", ")
                        .bind::<diesel::sql_types::Date, _>(day)
                        .sql(")"),
                );
            }
            let rows: Vec<DailyStatsRow> = query.load(conn)?;
            keyed_stats(rows)
        })
    }

    /// Every stored row, ordered by customer and day (for tests and tools).
    pub fn all_days(&self) -> Result<Vec<(String, NaiveDate, DayStats)>, StorageError> {
        with_backend!(self, conn => {
            let rows: Vec<DailyStatsRow> = daily_stats::table
                .order((daily_stats::customer_id.asc(), daily_stats::day.asc()))
                .select(DailyStatsRow::as_select())
                .load(conn)?;
            keyed_stats(rows)
        })
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
mod tests {
    use super::*;

    /// Walking a range in keyset pages of any size gives every row once, in order, for both
    /// orders, however the page boundaries fall (inside a day, inside a customer).
    #[cfg(feature = "testing")]
    #[test]
    fn keyset_pages_walk_every_row_once_in_order() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let mut acc = crate::DayAccumulator::new();
            acc.add(true, 1_000);
            let stats = acc.finish();
            let mut deltas = Vec::new();
            for c in ["a", "b", "b.1", "c_2", "z"] {
                for day in [20_005, 20_006, 20_008, 20_009, 20_020] {
                    if !(c.len() + day as usize).is_multiple_of(4) {
                        deltas.push((c.to_string(), day, stats.clone()));
                    }
                }
            }
            let epoch = EpochCommit {
                deltas: deltas.clone(),
                ..EpochCommit::default()
            };
            store.commit_epoch(&epoch).expect("commit");
            let (from, to) = (date_from_day(20_006), date_from_day(20_009));
            let mut by_day: Vec<(i32, String)> = deltas
                .iter()
                .filter(|d| (20_006..=20_009).contains(&d.1))
                .map(|d| (d.1, d.0.clone()))
                .collect();
            by_day.sort();
            let mut by_customer: Vec<(String, i32)> =
                by_day.iter().map(|(day, c)| (c.clone(), *day)).collect();
            by_customer.sort();
            for limit in [1, 2, 3, 7, 100] {
                let mut walked = Vec::new();
                let mut after: Option<(NaiveDate, String)> = None;
                loop {
                    let page = store
                        .days_by_day(
                            from,
                            to,
                            after.as_ref().map(|(d, c)| (*d, c.as_str())),
                            limit,
                        )
                        .expect("page");
                    let last = page.len() < limit;
                    for (c, day, _) in page {
                        walked.push((day_from_date(day), c.clone()));
                        after = Some((day, c));
                    }
                    if last {
                        break;
                    }
                }
                assert_eq!(walked, by_day, "{db:?} by day, pages of {limit}");
                let customers = ["a", "b", "b.1", "c_2", "z"];
                let mut walked = Vec::new();
                let mut after: Option<(String, NaiveDate)> = None;
                loop {
                    let page = store
                        .days_by_customer(
                            &customers,
                            from,
                            to,
                            after.as_ref().map(|(c, d)| (c.as_str(), *d)),
                            limit,
                        )
                        .expect("page");
                    let last = page.len() < limit;
                    for (c, day, _) in page {
                        walked.push((c.clone(), day_from_date(day)));
                        after = Some((c, day));
                    }
                    if last {
                        break;
                    }
                }
                assert_eq!(walked, by_customer, "{db:?} by customer, pages of {limit}");
            }
            assert_eq!(
                store.last_day_from(from).expect("last"),
                Some(date_from_day(20_020))
            );
            assert_eq!(
                store.last_day_from(date_from_day(20_021)).expect("last"),
                None
            );
        }
    }

    #[cfg(feature = "testing")]
    #[test]
    fn open_ended_ranges_reach_the_last_stored_day() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let mut acc = crate::DayAccumulator::new();
            acc.add(true, 1_000);
            let stats = acc.finish();
            let days = [20_006, 20_016, 2_932_896]; // 2024-10-10, 2024-10-20, 9999-12-31
            let epoch = EpochCommit {
                deltas: days
                    .iter()
                    .map(|&day| ("cust_1".to_string(), day, stats.clone()))
                    .collect(),
                ..EpochCommit::default()
            };
            store.commit_epoch(&epoch).expect("commit");
            let read: Vec<i32> = store
                .customer_days("cust_1", date_from_day(20_010), None)
                .expect("read")
                .into_iter()
                .map(|(date, _)| day_from_date(date))
                .collect();
            assert_eq!(read, [20_016, 2_932_896], "{db:?}");
        }
    }
}
