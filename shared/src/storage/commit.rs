//! The commit of an epoch: one write transaction that merges the epoch's deltas into the stored
//! rows, bumps the touched customers' versions, checks the leases and moves the sources' offsets
//! and the watermark (see [`Store::commit_epoch`]).

use super::*;

/// Writes merged daily rows, replacing stored ones; the fastest form differs per backend.
trait UpsertRows {
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()>;

    /// Sets the version of each of `customers` to `version`.
    fn upsert_versions(&mut self, customers: &[&str], version: i64) -> QueryResult<()>;

    /// Stores a source's new position and its lease.
    fn upsert_source(
        &mut self,
        row: &SourceOffsetRow,
        owner: Option<&str>,
        lease_until: Option<i64>,
    ) -> QueryResult<()>;

    /// Stores the watermark.
    fn upsert_watermark(&mut self, event_time: i64) -> QueryResult<()>;
}

/// `upsert_source` and `upsert_watermark` as `INSERT .. ON CONFLICT DO UPDATE`, which SQLite
/// and PostgreSQL share (MySQL has its own form).
macro_rules! on_conflict_upserts {
    () => {
        fn upsert_source(
            &mut self,
            row: &SourceOffsetRow,
            owner: Option<&str>,
            lease_until: Option<i64>,
        ) -> QueryResult<()> {
            diesel::insert_into(source_offsets::table)
                .values((
                    row,
                    source_offsets::owner.eq(owner),
                    source_offsets::lease_until.eq(lease_until),
                ))
                .on_conflict(source_offsets::source)
                .do_update()
                .set((
                    source_offsets::fingerprint.eq(excluded(source_offsets::fingerprint)),
                    source_offsets::byte_offset.eq(excluded(source_offsets::byte_offset)),
                    source_offsets::line_count.eq(excluded(source_offsets::line_count)),
                    source_offsets::owner.eq(excluded(source_offsets::owner)),
                    source_offsets::lease_until.eq(excluded(source_offsets::lease_until)),
                ))
                .execute(self)?;
            Ok(())
        }

        fn upsert_watermark(&mut self, event_time: i64) -> QueryResult<()> {
            diesel::insert_into(ingest_watermark::table)
                .values((
                    ingest_watermark::id.eq(1),
                    ingest_watermark::event_time.eq(event_time),
                ))
                .on_conflict(ingest_watermark::id)
                .do_update()
                .set(ingest_watermark::event_time.eq(excluded(ingest_watermark::event_time)))
                .execute(self)?;
            Ok(())
        }
    };
}

impl UpsertRows for SqliteConnection {
    on_conflict_upserts!();

    /// Multi-row statements written in SQL: diesel has no multi-row `INSERT .. ON CONFLICT` for
    /// SQLite, and with one statement per row, building and looking up each statement took
    /// about a third of the commit.
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        for chunk in rows.chunks(SQLITE_ROWS_PER_STATEMENT) {
            let query = diesel::sql_query(sqlite_upsert_sql(chunk.len())).into_boxed();
            bind_rows(query, chunk).execute(self)?;
        }
        Ok(())
    }

    /// One statement per customer: in process, that costs microseconds.
    fn upsert_versions(&mut self, customers: &[&str], version: i64) -> QueryResult<()> {
        for customer in customers {
            diesel::insert_into(customer_versions::table)
                .values((
                    customer_versions::customer_id.eq(customer),
                    customer_versions::version.eq(version),
                ))
                .on_conflict(customer_versions::customer_id)
                .do_update()
                .set(customer_versions::version.eq(version))
                .execute(self)?;
        }
        Ok(())
    }
}

/// Binds every column of `rows`, in [`INSERT_DAILY_STATS`]'s order, to a multi-row `VALUES`
/// statement (SQLite and MySQL; PostgreSQL binds one array per column instead).
fn bind_rows<'a, DB>(
    mut query: diesel::query_builder::BoxedSqlQuery<'a, DB, diesel::query_builder::SqlQuery>,
    rows: &'a [DailyStatsRow],
) -> diesel::query_builder::BoxedSqlQuery<'a, DB, diesel::query_builder::SqlQuery>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<diesel::sql_types::Text>
        + diesel::sql_types::HasSqlType<diesel::sql_types::Date>
        + diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>
        + diesel::sql_types::HasSqlType<diesel::sql_types::Binary>,
    String: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    NaiveDate: diesel::serialize::ToSql<diesel::sql_types::Date, DB>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    Vec<u8>: diesel::serialize::ToSql<diesel::sql_types::Binary, DB>,
{
    use diesel::sql_types::{BigInt, Binary, Date, Text};
    for row in rows {
        query = query
            .bind::<Text, _>(&row.customer_id)
            .bind::<Date, _>(row.day)
            .bind::<BigInt, _>(row.successful)
            .bind::<BigInt, _>(row.failed)
            .bind::<BigInt, _>(row.latency_sum_us)
            .bind::<BigInt, _>(row.latency_min_us)
            .bind::<BigInt, _>(row.latency_max_us)
            .bind::<Binary, _>(&row.latencies)
            .bind::<BigInt, _>(row.version);
    }
    query
}

/// Rows per SQLite upsert statement: 9 parameters each, far below SQLite's limit of 32,766.
const SQLITE_ROWS_PER_STATEMENT: usize = 200;

/// The insert target of both backends' upserts: every daily_stats column, in bind order.
const INSERT_DAILY_STATS: &str = "INSERT INTO daily_stats (customer_id, day, successful, failed, \
     latency_sum_us, latency_min_us, latency_max_us, latencies, version)";

/// What both backends' upserts do with a stored row: replace every stats column.
const ON_CONFLICT_REPLACE_STATS: &str = "ON CONFLICT (customer_id, day) DO UPDATE SET \
     successful = excluded.successful, failed = excluded.failed, \
     latency_sum_us = excluded.latency_sum_us, latency_min_us = excluded.latency_min_us, \
     latency_max_us = excluded.latency_max_us, latencies = excluded.latencies, \
     version = excluded.version";

/// `INSERT .. ON CONFLICT DO UPDATE` of `rows` daily_stats rows, replacing every stats column.
fn sqlite_upsert_sql(rows: usize) -> String {
    let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ");
    format!("{INSERT_DAILY_STATS} VALUES {values} {ON_CONFLICT_REPLACE_STATS}")
}

/// Rows per PostgreSQL upsert statement: the statement is the same for every chunk (cached), and
/// the bind buffers diesel and libpq fill hold a chunk, not an epoch (1,550 rows of up to ~4 kB
/// each on the benchmark log: about 10 MB less peak RSS).
const POSTGRES_ROWS_PER_UPSERT: usize = 256;

/// One `unnest` upsert of `rows` (see `UpsertRows for PgConnection`).
fn postgres_upsert_chunk(conn: &mut PgConnection, rows: &[DailyStatsRow]) -> QueryResult<()> {
    use diesel::sql_types::{Array, BigInt, Binary, Date, Text};
    if rows.is_empty() {
        return Ok(());
    }
    let column = |value: fn(&DailyStatsRow) -> i64| rows.iter().map(value).collect::<Vec<_>>();
    diesel::sql_query(format!(
        "{INSERT_DAILY_STATS} SELECT * FROM unnest($1::text[], $2::date[], $3::int8[], \
             $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::bytea[], $9::int8[]) \
             {ON_CONFLICT_REPLACE_STATS}"
    ))
    .bind::<Array<Text>, _>(
        rows.iter()
            .map(|r| r.customer_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Date>, _>(rows.iter().map(|r| r.day).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(column(|r| r.successful))
    .bind::<Array<BigInt>, _>(column(|r| r.failed))
    .bind::<Array<BigInt>, _>(column(|r| r.latency_sum_us))
    .bind::<Array<BigInt>, _>(column(|r| r.latency_min_us))
    .bind::<Array<BigInt>, _>(column(|r| r.latency_max_us))
    .bind::<Array<Binary>, _>(
        rows.iter()
            .map(|r| r.latencies.as_slice())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(column(|r| r.version))
    .execute(conn)?;
    Ok(())
}

impl UpsertRows for PgConnection {
    on_conflict_upserts!();

    /// Statements of one array per column, [`POSTGRES_ROWS_PER_UPSERT`] rows each: PostgreSQL
    /// parses and plans the statement once (diesel caches it), where a `VALUES` list of
    /// thousands of parameters is parsed and planned anew each time.
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        for chunk in rows.chunks(POSTGRES_ROWS_PER_UPSERT) {
            postgres_upsert_chunk(self, chunk)?;
        }
        Ok(())
    }

    /// Multi-row statements: one round trip instead of one per customer.
    fn upsert_versions(&mut self, customers: &[&str], version: i64) -> QueryResult<()> {
        for chunk in customers.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|customer| {
                    (
                        customer_versions::customer_id.eq(*customer),
                        customer_versions::version.eq(version),
                    )
                })
                .collect();
            diesel::insert_into(customer_versions::table)
                .values(&rows)
                .on_conflict(customer_versions::customer_id)
                .do_update()
                .set(customer_versions::version.eq(version))
                .execute(self)?;
        }
        Ok(())
    }
}

/// Rows per MySQL upsert statement, unless [`MYSQL_BYTES_PER_UPSERT`] ends it first.
#[cfg(feature = "mysql")]
const MYSQL_ROWS_PER_UPSERT: usize = 200;

/// Latency bytes per MySQL upsert statement: a statement must fit the server's
/// `max_allowed_packet` (16 MiB by default on MariaDB, 64 MiB on MySQL 8).
#[cfg(feature = "mysql")]
const MYSQL_BYTES_PER_UPSERT: usize = 4 << 20;

/// What MySQL's upserts do with a stored row: replace every stats column.
#[cfg(feature = "mysql")]
const ON_DUPLICATE_REPLACE_STATS: &str = "ON DUPLICATE KEY UPDATE \
     successful = VALUES(successful), failed = VALUES(failed), \
     latency_sum_us = VALUES(latency_sum_us), latency_min_us = VALUES(latency_min_us), \
     latency_max_us = VALUES(latency_max_us), latencies = VALUES(latencies), \
     version = VALUES(version)";

#[cfg(feature = "mysql")]
impl UpsertRows for MysqlConnection {
    /// Multi-row `INSERT .. ON DUPLICATE KEY UPDATE` statements, cut by rows and by bytes.
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        let mut rest = rows;
        while !rest.is_empty() {
            let mut bytes = 0;
            let take = rest
                .iter()
                .take(MYSQL_ROWS_PER_UPSERT)
                .take_while(|row| {
                    bytes += row.latencies.len();
                    bytes <= MYSQL_BYTES_PER_UPSERT
                })
                .count()
                .max(1);
            let (chunk, next) = rest.split_at(take);
            rest = next;
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let query = diesel::sql_query(format!(
                "{INSERT_DAILY_STATS} VALUES {values} {ON_DUPLICATE_REPLACE_STATS}"
            ))
            .into_boxed();
            bind_rows(query, chunk).execute(self)?;
        }
        Ok(())
    }

    /// Multi-row statements: one round trip instead of one per customer.
    fn upsert_versions(&mut self, customers: &[&str], version: i64) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Text};
        for chunk in customers.chunks(ROWS_PER_STATEMENT) {
            let values = vec!["(?, ?)"; chunk.len()].join(", ");
            let mut query = diesel::sql_query(format!(
                "INSERT INTO customer_versions (customer_id, version) VALUES {values} \
                 ON DUPLICATE KEY UPDATE version = VALUES(version)"
            ))
            .into_boxed::<diesel::mysql::Mysql>();
            for customer in chunk {
                query = query.bind::<Text, _>(*customer).bind::<BigInt, _>(version);
            }
            query.execute(self)?;
        }
        Ok(())
    }

    fn upsert_source(
        &mut self,
        row: &SourceOffsetRow,
        owner: Option<&str>,
        lease_until: Option<i64>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Binary, Nullable, Text};
        diesel::sql_query(
            "INSERT INTO source_offsets \
             (source, fingerprint, byte_offset, line_count, owner, lease_until) \
             VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
             fingerprint = VALUES(fingerprint), byte_offset = VALUES(byte_offset), \
             line_count = VALUES(line_count), owner = VALUES(owner), \
             lease_until = VALUES(lease_until)",
        )
        .bind::<Text, _>(&row.source)
        .bind::<Binary, _>(&row.fingerprint)
        .bind::<BigInt, _>(row.byte_offset)
        .bind::<BigInt, _>(row.line_count)
        .bind::<Nullable<Text>, _>(owner)
        .bind::<Nullable<BigInt>, _>(lease_until)
        .execute(self)?;
        Ok(())
    }

    fn upsert_watermark(&mut self, event_time: i64) -> QueryResult<()> {
        diesel::sql_query(
            "INSERT INTO ingest_watermark (id, event_time) VALUES (1, ?) \
             ON DUPLICATE KEY UPDATE event_time = VALUES(event_time)",
        )
        .bind::<diesel::sql_types::BigInt, _>(event_time)
        .execute(self)?;
        Ok(())
    }
}

/// Reads, merges and upserts the rows an epoch touches; expanded once per backend.
macro_rules! merge_and_upsert {
    ($conn:expr, $epoch:expr) => {{
        let conn = $conn;
        let epoch: &EpochCommit = $epoch;
        // Committed already? Every source the epoch advances is stored at its new position,
        // which differs from the one the job expected before the epoch. Only the job holding
        // the sources' leases moves them, so only an earlier attempt of this very commit (whose
        // COMMIT reply was lost) can have done that.
        if epoch.previous.len() == epoch.sources.len() && !epoch.sources.is_empty() {
            let mut replayed = true;
            for (next, previous) in epoch.sources.iter().zip(&epoch.previous) {
                let stored: Option<SourceOffsetRow> = source_offsets::table
                    .filter(source_offsets::source.eq(&next.source))
                    .select(SourceOffsetRow::as_select())
                    .first(conn)
                    .optional()?;
                if stored.map(SourceOffset::from).as_ref() != Some(next) || next == previous {
                    replayed = false;
                    break;
                }
            }
            if replayed {
                return Ok(CommitOutcome::AlreadyCommitted);
            }
        }
        let mut merged: HashMap<(String, NaiveDate), DayStats> = HashMap::new();
        for (customer, day, delta) in &epoch.deltas {
            merged
                .entry((customer.clone(), date_from_day(*day)))
                .or_insert_with(DayStats::empty)
                .merge(delta);
        }
        if let (Some(first), Some(last)) = (
            merged.keys().map(|k| k.1).min(),
            merged.keys().map(|k| k.1).max(),
        ) {
            let mut customers: Vec<&str> = epoch.deltas.iter().map(|d| d.0.as_str()).collect();
            customers.sort_unstable();
            customers.dedup();
            for chunk in customers.chunks(ROWS_PER_STATEMENT) {
                let stored: Vec<DailyStatsRow> = daily_stats::table
                    .filter(daily_stats::customer_id.eq_any(chunk))
                    .filter(daily_stats::day.between(first, last))
                    .select(DailyStatsRow::as_select())
                    .load(conn)?;
                for row in stored {
                    let key = (row.customer_id.clone(), row.day);
                    if let Some(delta) = merged.get_mut(&key) {
                        delta.merge(&row.into_stats()?);
                    }
                }
            }
        }
        // Writers are serialized (SQLite's immediate transaction, PostgreSQL's table lock),
        // so one number above every stored version orders the commits for readers. The rows
        // carry it too, so a reader can fetch just the rows changed since a version.
        let version = if merged.is_empty() {
            0
        } else {
            customer_versions::table
                .select(diesel::dsl::max(customer_versions::version))
                .first::<Option<i64>>(conn)?
                .unwrap_or(0)
                + 1
        };
        let rows: Vec<DailyStatsRow> = merged
            .into_iter()
            .map(|((customer, day), stats)| DailyStatsRow::new(customer, day, &stats, version))
            .collect::<Result<_, _>>()?;
        conn.upsert_rows(&rows)?;
        let mut touched: Vec<&str> = rows.iter().map(|r| r.customer_id.as_str()).collect();
        touched.sort_unstable();
        touched.dedup();
        if !touched.is_empty() {
            conn.upsert_versions(&touched, version)?;
        }
        for source in &epoch.sources {
            if let Some((owner, _)) = &epoch.lease {
                let holder: Option<Option<String>> = source_offsets::table
                    .filter(source_offsets::source.eq(&source.source))
                    .select(source_offsets::owner)
                    .first(conn)
                    .optional()?;
                if let Some(holder) = holder.filter(|h| h.as_ref() != Some(owner)) {
                    return Err(StorageError::LeaseLost {
                        source_name: source.source.clone(),
                        owner: holder,
                    });
                }
            }
            let owner = epoch.lease.as_ref().map(|(owner, _)| owner.as_str());
            let lease_until = epoch.lease.as_ref().map(|&(_, until)| until);
            conn.upsert_source(&SourceOffsetRow::from(source), owner, lease_until)?;
        }
        let stored_watermark: Option<i64> = ingest_watermark::table
            .select(ingest_watermark::event_time)
            .first(conn)
            .optional()?;
        if let Some(event_time) = epoch.max_event_time.filter(|&t| stored_watermark < Some(t)) {
            conn.upsert_watermark(event_time)?;
        }
        Ok::<CommitOutcome, StorageError>(CommitOutcome::Written(rows.len()))
    }};
}

impl Store {
    /// Merges an epoch's deltas into the stored rows and records its source offsets and
    /// watermark, all in one transaction. Returns the number of rows written.
    ///
    /// Concurrent committers are serialised (SQLite: an immediate transaction; PostgreSQL: a
    /// table lock that readers do not wait for), so no merge is ever lost.
    ///
    /// A retried commit whose first attempt did commit (the reply was lost with the
    /// connection) is recognised by its sources' positions (see [`EpochCommit::previous`]) and
    /// not applied twice.
    pub fn commit_epoch(&self, epoch: &EpochCommit) -> Result<CommitOutcome, StorageError> {
        write_transaction!(self, conn => merge_and_upsert!(conn, epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
