//! The writes of a commit whose fastest form differs per backend: multi-row statements on SQLite
//! and MySQL, one array per column on PostgreSQL. The SQL is in `sql/`.

#[cfg(feature = "mysql")]
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::sql_types::{Array, BigInt, Binary, Date, Nullable, Text};
use diesel::sqlite::SqliteConnection;

use super::models::{DailyStatsRow, FleetDayRow, SourceOffsetRow};
use super::ROWS_PER_STATEMENT;

/// Writes merged daily rows and what goes with them, replacing stored ones.
pub(super) trait Upserts {
    /// Stores `rows` over the stored rows of the same (customer, day).
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()>;

    /// Stores `rows`, none of which has a stored row (the commit knows: their days are after
    /// the last stored day). PostgreSQL copies them in (`COPY .. FROM STDIN`, binary); the
    /// others upsert them.
    fn insert_new_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        self.upsert_rows(rows)
    }

    /// Stores `rows` over the stored fleet rows of the same days.
    fn upsert_fleet_rows(&mut self, rows: &[FleetDayRow]) -> QueryResult<()>;

    /// Sets the version of each of `customers` (no duplicates) to `version`.
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

/// Rows per SQLite upsert statement: 9 parameters each, far below SQLite's limit of 32,766.
const SQLITE_ROWS_PER_STATEMENT: usize = 200;

/// Rows per PostgreSQL upsert statement: the statement is the same for every chunk (cached), and
/// the bind buffers diesel and libpq fill hold a chunk, not an epoch (1,550 rows of up to ~4 kB
/// each on the benchmark log: about 10 MB less peak RSS).
const POSTGRES_ROWS_PER_UPSERT: usize = 256;

/// Rows per MySQL upsert statement, unless [`MYSQL_BYTES_PER_UPSERT`] ends it first.
#[cfg(feature = "mysql")]
const MYSQL_ROWS_PER_UPSERT: usize = 200;

/// Latency bytes per MySQL upsert statement: a statement must fit the server's
/// `max_allowed_packet` (16 MiB by default on MariaDB, 64 MiB on MySQL 8).
#[cfg(feature = "mysql")]
const MYSQL_BYTES_PER_UPSERT: usize = 4 << 20;

/// `template` with its `{rows}` marker replaced by `rows` groups of `group`.
fn with_rows(template: &str, group: &str, rows: usize) -> String {
    template.replace("{rows}", &vec![group; rows].join(", "))
}

/// One `VALUES` group of a daily_stats row.
const ROW_GROUP: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// One `VALUES` group of a fleet_days row.
const FLEET_GROUP: &str = "(?, ?, ?, ?, ?, ?, ?, ?)";

/// Fleet rows per SQLite or MySQL upsert statement: a fleet row's latencies take at most some
/// 80 kB (4,096 distinct values), so 32 of them stay far below MySQL's `max_allowed_packet`.
const FLEET_ROWS_PER_UPSERT: usize = 32;

/// One `VALUES` group of a customer's version.
const VERSION_GROUP: &str = "(?, ?)";

impl Upserts for SqliteConnection {
    /// Multi-row statements written in SQL: diesel has no multi-row `INSERT .. ON CONFLICT` for
    /// SQLite, and with one statement per row, building and looking up each statement took
    /// about a third of the commit.
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        let template = include_str!("sql/sqlite_upsert_daily_stats.sql");
        for chunk in rows.chunks(SQLITE_ROWS_PER_STATEMENT) {
            let query = diesel::sql_query(with_rows(template, ROW_GROUP, chunk.len())).into_boxed();
            bind_rows(query, chunk).execute(self)?;
        }
        Ok(())
    }

    fn upsert_fleet_rows(&mut self, rows: &[FleetDayRow]) -> QueryResult<()> {
        let template = include_str!("sql/sqlite_upsert_fleet_days.sql");
        execute_fleet_rows(self, template, rows)
    }

    fn upsert_versions(&mut self, customers: &[&str], version: i64) -> QueryResult<()> {
        let template = include_str!("sql/sqlite_upsert_versions.sql");
        execute_versions(self, template, customers, version)
    }

    fn upsert_source(
        &mut self,
        row: &SourceOffsetRow,
        owner: Option<&str>,
        lease_until: Option<i64>,
    ) -> QueryResult<()> {
        let sql = include_str!("sql/sqlite_upsert_source.sql");
        execute_source(self, sql, row, owner, lease_until)
    }

    fn upsert_watermark(&mut self, event_time: i64) -> QueryResult<()> {
        let sql = include_str!("sql/sqlite_upsert_watermark.sql");
        execute_watermark(self, sql, event_time)
    }
}

impl Upserts for PgConnection {
    /// Statements of one array per column, [`POSTGRES_ROWS_PER_UPSERT`] rows each: nine
    /// parameters whatever the rows, where a `VALUES` list of thousands of parameters is far
    /// longer to parse and plan. (diesel never caches a `sql_query` statement: PostgreSQL
    /// parses and plans it for each chunk.)
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        for chunk in rows.chunks(POSTGRES_ROWS_PER_UPSERT) {
            let column =
                |value: fn(&DailyStatsRow) -> i64| chunk.iter().map(value).collect::<Vec<_>>();
            diesel::sql_query(include_str!("sql/postgres_upsert_daily_stats.sql"))
                .bind::<Array<Text>, _>(
                    chunk
                        .iter()
                        .map(|r| r.customer_id.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind::<Array<Date>, _>(chunk.iter().map(|r| r.day).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(column(|r| r.successful))
                .bind::<Array<BigInt>, _>(column(|r| r.failed))
                .bind::<Array<BigInt>, _>(column(|r| r.latency_sum_us))
                .bind::<Array<BigInt>, _>(column(|r| r.latency_min_us))
                .bind::<Array<BigInt>, _>(column(|r| r.latency_max_us))
                .bind::<Array<Binary>, _>(
                    chunk
                        .iter()
                        .map(|r| r.latencies.as_slice())
                        .collect::<Vec<_>>(),
                )
                .bind::<Array<BigInt>, _>(column(|r| r.version))
                .execute(self)?;
        }
        Ok(())
    }

    /// `COPY daily_stats FROM STDIN` in the binary format: no statement to plan, no conflict
    /// to look for.
    fn insert_new_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        use super::schema::daily_stats::dsl as d;
        let columns = (
            d::customer_id,
            d::day,
            d::successful,
            d::failed,
            d::latency_sum_us,
            d::latency_min_us,
            d::latency_max_us,
            d::latencies,
            d::version,
        );
        diesel::copy_from(d::daily_stats)
            .from_raw_data(columns, |copy| {
                let mut line = String::new();
                for row in rows {
                    copy_text_line(&mut line, row);
                    copy.write_all(line.as_bytes())
                        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
                }
                QueryResult::Ok(())
            })
            .execute(self)?;
        Ok(())
    }

    /// One array per column, as the daily rows.
    fn upsert_fleet_rows(&mut self, rows: &[FleetDayRow]) -> QueryResult<()> {
        for chunk in rows.chunks(POSTGRES_ROWS_PER_UPSERT) {
            let column =
                |value: fn(&FleetDayRow) -> i64| chunk.iter().map(value).collect::<Vec<_>>();
            diesel::sql_query(include_str!("sql/postgres_upsert_fleet_days.sql"))
                .bind::<Array<Date>, _>(chunk.iter().map(|r| r.day).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(column(|r| r.successful))
                .bind::<Array<BigInt>, _>(column(|r| r.failed))
                .bind::<Array<BigInt>, _>(column(|r| r.latency_sum_us))
                .bind::<Array<BigInt>, _>(column(|r| r.latency_min_us))
                .bind::<Array<BigInt>, _>(column(|r| r.latency_max_us))
                .bind::<Array<Binary>, _>(
                    chunk
                        .iter()
                        .map(|r| r.latencies.as_slice())
                        .collect::<Vec<_>>(),
                )
                .bind::<Array<BigInt>, _>(column(|r| r.version))
                .execute(self)?;
        }
        Ok(())
    }

    /// One array of customers per statement: one round trip, and two parameters to plan.
    fn upsert_versions(&mut self, customers: &[&str], version: i64) -> QueryResult<()> {
        for chunk in customers.chunks(ROWS_PER_STATEMENT) {
            diesel::sql_query(include_str!("sql/postgres_upsert_versions.sql"))
                .bind::<Array<Text>, _>(chunk)
                .bind::<BigInt, _>(version)
                .execute(self)?;
        }
        Ok(())
    }

    fn upsert_source(
        &mut self,
        row: &SourceOffsetRow,
        owner: Option<&str>,
        lease_until: Option<i64>,
    ) -> QueryResult<()> {
        let sql = include_str!("sql/postgres_upsert_source.sql");
        execute_source(self, sql, row, owner, lease_until)
    }

    fn upsert_watermark(&mut self, event_time: i64) -> QueryResult<()> {
        let sql = include_str!("sql/postgres_upsert_watermark.sql");
        execute_watermark(self, sql, event_time)
    }
}

#[cfg(feature = "mysql")]
impl Upserts for MysqlConnection {
    /// Multi-row `INSERT .. ON DUPLICATE KEY UPDATE` statements, cut by rows and by bytes.
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        let template = include_str!("sql/mysql_upsert_daily_stats.sql");
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
            let query = diesel::sql_query(with_rows(template, ROW_GROUP, chunk.len())).into_boxed();
            bind_rows(query, chunk).execute(self)?;
        }
        Ok(())
    }

    fn upsert_fleet_rows(&mut self, rows: &[FleetDayRow]) -> QueryResult<()> {
        let template = include_str!("sql/mysql_upsert_fleet_days.sql");
        execute_fleet_rows(self, template, rows)
    }

    /// Multi-row statements: one round trip instead of one per customer.
    fn upsert_versions(&mut self, customers: &[&str], version: i64) -> QueryResult<()> {
        let template = include_str!("sql/mysql_upsert_versions.sql");
        execute_versions(self, template, customers, version)
    }

    fn upsert_source(
        &mut self,
        row: &SourceOffsetRow,
        owner: Option<&str>,
        lease_until: Option<i64>,
    ) -> QueryResult<()> {
        let sql = include_str!("sql/mysql_upsert_source.sql");
        execute_source(self, sql, row, owner, lease_until)
    }

    fn upsert_watermark(&mut self, event_time: i64) -> QueryResult<()> {
        let sql = include_str!("sql/mysql_upsert_watermark.sql");
        execute_watermark(self, sql, event_time)
    }
}

/// `row` as a line of `COPY`'s text format (tab-separated, `\\`-escaped, the latencies as
/// `\\x` and hex), in the daily rows' column order, into `line`.
fn copy_text_line(line: &mut String, row: &DailyStatsRow) {
    use std::fmt::Write as _;
    line.clear();
    for c in row.customer_id.chars() {
        match c {
            '\\' => line.push_str("\\\\"),
            '\t' => line.push_str("\\t"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
    let _ = write!(
        line,
        "\t{}\t{}\t{}\t{}\t{}\t{}\t\\\\x",
        row.day.format("%Y-%m-%d"),
        row.successful,
        row.failed,
        row.latency_sum_us,
        row.latency_min_us,
        row.latency_max_us
    );
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &byte in &row.latencies {
        line.push(HEX[usize::from(byte >> 4)] as char);
        line.push(HEX[usize::from(byte & 15)] as char);
    }
    let _ = writeln!(line, "\t{}", row.version);
}

/// The SQL types a statement of this module binds, on backend `DB`.
pub(super) trait Binds:
    diesel::backend::Backend
    + diesel::sql_types::HasSqlType<Text>
    + diesel::sql_types::HasSqlType<Date>
    + diesel::sql_types::HasSqlType<BigInt>
    + diesel::sql_types::HasSqlType<Binary>
{
}

impl<DB> Binds for DB where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<Date>
        + diesel::sql_types::HasSqlType<BigInt>
        + diesel::sql_types::HasSqlType<Binary>
{
}

/// Binds every column of `rows`, in the upsert statements' column order, to a multi-row
/// `VALUES` statement (SQLite and MySQL; PostgreSQL binds one array per column instead).
fn bind_rows<'a, DB>(
    mut query: BoxedSqlQuery<'a, DB, SqlQuery>,
    rows: &'a [DailyStatsRow],
) -> BoxedSqlQuery<'a, DB, SqlQuery>
where
    DB: Binds,
    String: diesel::serialize::ToSql<Text, DB>,
    chrono::NaiveDate: diesel::serialize::ToSql<Date, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    Vec<u8>: diesel::serialize::ToSql<Binary, DB>,
{
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

/// Runs `template` (its `{rows}` marker a `VALUES` list) once per [`FLEET_ROWS_PER_UPSERT`]
/// fleet rows, with every column of each bound (SQLite and MySQL).
fn execute_fleet_rows<C>(conn: &mut C, template: &str, rows: &[FleetDayRow]) -> QueryResult<()>
where
    C: Connection,
    C::Backend: Binds,
    chrono::NaiveDate: diesel::serialize::ToSql<Date, C::Backend>,
    i64: diesel::serialize::ToSql<BigInt, C::Backend>,
    Vec<u8>: diesel::serialize::ToSql<Binary, C::Backend>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: ExecuteDsl<C>,
{
    for chunk in rows.chunks(FLEET_ROWS_PER_UPSERT) {
        let mut query =
            diesel::sql_query(with_rows(template, FLEET_GROUP, chunk.len())).into_boxed();
        for row in chunk {
            query = query
                .bind::<Date, _>(row.day)
                .bind::<BigInt, _>(row.successful)
                .bind::<BigInt, _>(row.failed)
                .bind::<BigInt, _>(row.latency_sum_us)
                .bind::<BigInt, _>(row.latency_min_us)
                .bind::<BigInt, _>(row.latency_max_us)
                .bind::<Binary, _>(&row.latencies)
                .bind::<BigInt, _>(row.version);
        }
        query.execute(conn)?;
    }
    Ok(())
}

/// Runs `template` (its `{rows}` marker a `VALUES` list) once per [`ROWS_PER_STATEMENT`]
/// customers, with (customer, `version`) bound for each (SQLite and MySQL).
fn execute_versions<C>(
    conn: &mut C,
    template: &str,
    customers: &[&str],
    version: i64,
) -> QueryResult<()>
where
    C: Connection,
    C::Backend: Binds,
    str: diesel::serialize::ToSql<Text, C::Backend>,
    i64: diesel::serialize::ToSql<BigInt, C::Backend>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: ExecuteDsl<C>,
{
    for chunk in customers.chunks(ROWS_PER_STATEMENT) {
        let mut query =
            diesel::sql_query(with_rows(template, VERSION_GROUP, chunk.len())).into_boxed();
        for customer in chunk {
            query = query.bind::<Text, _>(*customer).bind::<BigInt, _>(version);
        }
        query.execute(conn)?;
    }
    Ok(())
}

/// Runs `sql` with a source's position and lease bound, in the source upserts' column order.
fn execute_source<C>(
    conn: &mut C,
    sql: &str,
    row: &SourceOffsetRow,
    owner: Option<&str>,
    lease_until: Option<i64>,
) -> QueryResult<()>
where
    C: Connection,
    C::Backend: Binds,
    String: diesel::serialize::ToSql<Text, C::Backend>,
    Vec<u8>: diesel::serialize::ToSql<Binary, C::Backend>,
    i64: diesel::serialize::ToSql<BigInt, C::Backend>,
    for<'a> Option<&'a str>: diesel::serialize::ToSql<Nullable<Text>, C::Backend>,
    Option<i64>: diesel::serialize::ToSql<Nullable<BigInt>, C::Backend>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: ExecuteDsl<C>,
{
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<Text, _>(&row.source)
        .bind::<Binary, _>(&row.fingerprint)
        .bind::<BigInt, _>(row.byte_offset)
        .bind::<BigInt, _>(row.line_count)
        .bind::<Nullable<Text>, _>(owner)
        .bind::<Nullable<BigInt>, _>(lease_until)
        .execute(conn)?;
    Ok(())
}

/// Runs `sql` with the watermark bound.
fn execute_watermark<C>(conn: &mut C, sql: &str, event_time: i64) -> QueryResult<()>
where
    C: Connection,
    i64: diesel::serialize::ToSql<BigInt, C::Backend>,
    C::Backend: Binds,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: ExecuteDsl<C>,
{
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<BigInt, _>(event_time)
        .execute(conn)?;
    Ok(())
}
