//! The writes of a commit whose fastest form differs per backend: daily rows one prepared
//! statement a row on SQLite, multi-row statements on MySQL, one array per column (and `COPY`
//! for new rows) on PostgreSQL. The SQL is in `sql/`.

use diesel::connection::SimpleConnection;
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

/// Bytes of new rows (their latencies and [`NEW_ROW_BYTES`] each) written at once, by one
/// statement or a statement's executions (on PostgreSQL one `COPY`).
pub(super) const NEW_ROWS_BYTES: usize = 8 << 20;

/// A new row's bytes besides its latencies, for [`NEW_ROWS_BYTES`].
pub(super) const NEW_ROW_BYTES: usize = 128;

/// Writes merged daily rows and what goes with them, replacing stored ones.
pub(super) trait Upserts {
    /// Stores `rows` over the stored rows of the same (customer, day).
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()>;

    /// Stores `rows`, none of which has a stored row (the commit knows: their days are after
    /// the last stored day). PostgreSQL copies them in (`COPY .. FROM STDIN`), SQLite inserts
    /// them, MySQL upserts them.
    fn insert_new_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        self.upsert_rows(rows)
    }

    /// Rows [`Upserts::insert_all_new_rows`] writes at a time, at most (unless
    /// [`NEW_ROWS_BYTES`] ends them first).
    fn new_rows_per_write(&self) -> usize {
        usize::MAX
    }

    /// Stores every row `next` makes until it makes none, none of which has a stored row;
    /// returns how many. By default [`Upserts::new_rows_per_write`] or [`NEW_ROWS_BYTES`] of
    /// them at a time through [`Upserts::insert_new_rows`]: `next` runs ahead on another
    /// thread by a few rounds, so a write of few rows lets the two work at once, where a
    /// write of 8 MiB of rows had them take turns (each waited about 2 s on the uniform year of
    /// 10,000 customers). PostgreSQL streams them all through one `COPY`.
    ///
    /// `load` is what [`Upserts::begin_first_load`] returned when this is a first load.
    fn insert_all_new_rows(
        &mut self,
        next: &mut dyn FnMut() -> Option<DailyStatsRow>,
        load: Option<&FirstLoad>,
    ) -> QueryResult<usize> {
        let _ = load;
        let mut rows = Vec::new();
        let mut bytes = 0;
        let mut written = 0;
        while let Some(row) = next() {
            bytes += row.latencies.len() + NEW_ROW_BYTES;
            rows.push(row);
            if bytes >= NEW_ROWS_BYTES || rows.len() >= self.new_rows_per_write() {
                self.insert_new_rows(&rows)?;
                written += rows.len();
                rows.clear();
                bytes = 0;
            }
        }
        if !rows.is_empty() {
            self.insert_new_rows(&rows)?;
            written += rows.len();
        }
        Ok(written)
    }

    /// Before a bulk commit writes rows of which none is stored: when `daily_stats` holds no
    /// row at all (a first load), prepares the backend to load it whole and returns what
    /// [`Upserts::end_first_load`] needs to finish it; `None` otherwise, and by default: SQLite
    /// and MySQL/MariaDB keep their rows in the key's b-tree itself, appended in key order.
    /// (MariaDB's bulk insert into an empty table, with `unique_checks` and
    /// `foreign_key_checks` off, made no difference on MariaDB 10.11: 7.3 s either way for an
    /// `INSERT ... SELECT` of the uniform year's rows.)
    ///
    /// PostgreSQL drops the table's primary key (its name is returned), so that the rows are
    /// copied into a bare heap and the key is built once at the end, sorted, in whole pages.
    /// Inserted into the key row by row, each new row cost the server's backend a b-tree
    /// search and a WAL record of its own: the uniform year of 10,000 customers (3.4M new rows)
    /// took 7.2 s to commit, 2.8 s copied into the bare table and 1.2 s for the key built
    /// after. The drop takes the table's `ACCESS EXCLUSIVE` lock: readers wait for the commit.
    ///
    /// It then truncates the (empty) table, when it may (see [`FirstLoad::frozen`]), so that
    /// the rows are copied in frozen (`COPY .. FREEZE`).
    fn begin_first_load(&mut self) -> QueryResult<Option<FirstLoad>> {
        Ok(None)
    }

    /// Finishes what [`Upserts::begin_first_load`] began (PostgreSQL: adds the primary key back
    /// under its name).
    fn end_first_load(&mut self, load: &FirstLoad) -> QueryResult<()> {
        let _ = load;
        Ok(())
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

/// Rows per PostgreSQL upsert statement: the statement is the same for every chunk (cached), and
/// the bind buffers diesel and libpq fill hold a chunk, not an epoch (1,550 rows of up to ~4 kB
/// each on the benchmark log: about 10 MB less peak RSS).
const POSTGRES_ROWS_PER_UPSERT: usize = 256;

/// Rows per SQLite insert of new rows (9 parameters each; SQLite allows 32,766). One statement
/// keeps its b-tree cursor from row to row, so a row in key order is appended to the page the
/// cursor is on, where each one-row statement descended the whole tree again, comparing keys:
/// the uniform year of 10,000 customers (3.4M new rows) 9.2-9.7 s with one row a statement,
/// 8.0-8.6 s with 16, 64 or 256 (on 4 KiB pages and a rowid table, multi-row statements were
/// slower than single rows).
const SQLITE_ROWS_PER_INSERT: usize = 256;

/// Rows per SQLite upsert statement: the skewed year of 10,000 customers in random order, in
/// 64 MiB stages (each later stage upserting into the rows of the ones before), 11.7 s with one
/// row a statement, 11.3 s with 64.
const SQLITE_ROWS_PER_UPSERT: usize = 64;

/// Rows per MySQL upsert statement, unless [`MYSQL_BYTES_PER_UPSERT`] ends it first.
#[cfg(feature = "mysql")]
const MYSQL_ROWS_PER_UPSERT: usize = 200;

/// Rows per MySQL insert of new rows, unless [`MYSQL_BYTES_PER_UPSERT`] ends it first.
#[cfg(feature = "mysql")]
const MYSQL_ROWS_PER_INSERT: usize = 1000;

/// Multi-row statements `K` of `N` rows, cut by rows and by bytes: a full statement is prepared
/// once; a shorter one (the last, or large rows) is prepared for itself.
#[cfg(feature = "mysql")]
fn execute_mysql_rows<K: PreparedRows + 'static, const N: usize>(
    conn: &mut MysqlConnection,
    rows: &[DailyStatsRow],
) -> QueryResult<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let mut bytes = 0;
        let take = rest
            .iter()
            .take(N)
            .take_while(|row| {
                bytes += row.latencies.len();
                bytes <= MYSQL_BYTES_PER_UPSERT
            })
            .count()
            .max(1);
        let (chunk, next) = rest.split_at(take);
        rest = next;
        match <&[DailyStatsRow; N]>::try_from(chunk) {
            Ok(full) => RowsStatement::<K, N>::new(full).execute(conn)?,
            Err(_) => {
                let query =
                    diesel::sql_query(with_rows(K::TEMPLATE, ROW_GROUP, chunk.len())).into_boxed();
                bind_rows(query, chunk).execute(conn)?
            }
        };
    }
    Ok(())
}

/// Latency bytes per MySQL upsert statement: a statement must fit the server's
/// `max_allowed_packet` (16 MiB by default on MariaDB, 64 MiB on MySQL 8).
#[cfg(feature = "mysql")]
const MYSQL_BYTES_PER_UPSERT: usize = 4 << 20;

/// `template` with its `{rows}` marker replaced by `rows` groups of `group`.
fn with_rows(template: &str, group: &str, rows: usize) -> String {
    template.replace("{rows}", &vec![group; rows].join(", "))
}

/// One `VALUES` group of a daily_stats row.
#[cfg(feature = "mysql")]
const ROW_GROUP: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// One `VALUES` group of a fleet_days row.
const FLEET_GROUP: &str = "(?, ?, ?, ?, ?, ?, ?, ?)";

/// Fleet rows per SQLite or MySQL upsert statement: a fleet row's latencies take at most some
/// 80 kB (4,096 distinct values), so 32 of them stay far below MySQL's `max_allowed_packet`.
const FLEET_ROWS_PER_UPSERT: usize = 32;

/// One `VALUES` group of a customer's version.
const VERSION_GROUP: &str = "(?, ?)";

impl Upserts for SqliteConnection {
    /// [`SQLITE_ROWS_PER_UPSERT`] rows a prepared statement (see [`PreparedRows`]).
    fn upsert_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        execute_prepared_chunks::<_, SqliteUpsert, SQLITE_ROWS_PER_UPSERT>(self, rows)
    }

    fn new_rows_per_write(&self) -> usize {
        4 * SQLITE_ROWS_PER_INSERT
    }

    /// Plain inserts, [`SQLITE_ROWS_PER_INSERT`] rows a statement: no conflict to look for.
    fn insert_new_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        execute_prepared_chunks::<_, SqliteInsert, SQLITE_ROWS_PER_INSERT>(self, rows)
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

    /// `COPY daily_stats FROM STDIN` in the binary format: no statement to plan, no conflict to
    /// look for.
    fn insert_new_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        let mut rows = rows.iter();
        copy_new_rows(self, &mut || rows.next(), false).map(|_| ())
    }

    /// One `COPY` for all of them: libpq sends the lines as they are written, and the server
    /// inserts them while the next ones are made (in `COPY`s of 8 MiB the server waited while
    /// this thread made each batch, and this thread while the server finished it).
    fn insert_all_new_rows(
        &mut self,
        next: &mut dyn FnMut() -> Option<DailyStatsRow>,
        load: Option<&FirstLoad>,
    ) -> QueryResult<usize> {
        copy_new_rows(self, next, load.is_some_and(|load| load.frozen))
    }

    fn begin_first_load(&mut self) -> QueryResult<Option<FirstLoad>> {
        #[derive(QueryableByName)]
        struct Key {
            #[diesel(sql_type = Text)]
            name: String,
        }
        use super::schema::daily_stats::dsl as d;
        let stored = diesel::select(diesel::dsl::exists(d::daily_stats.select(d::day)))
            .get_result::<bool>(self)?;
        if stored {
            return Ok(None);
        }
        let Some(Key { name }) = diesel::sql_query(include_str!("sql/postgres_daily_key.sql"))
            .get_result::<Key>(self)
            .optional()?
        else {
            return Ok(None);
        };
        self.batch_execute(&format!(
            "ALTER TABLE daily_stats DROP CONSTRAINT {}",
            quote_identifier(&name)
        ))?;
        Ok(Some(FirstLoad {
            key: name,
            frozen: truncate_for_freeze(self)?,
        }))
    }

    fn end_first_load(&mut self, load: &FirstLoad) -> QueryResult<()> {
        self.batch_execute(&format!(
            "ALTER TABLE daily_stats ADD CONSTRAINT {} PRIMARY KEY (customer_id, day)",
            quote_identifier(&load.key)
        ))
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
        execute_mysql_rows::<MysqlUpsert, MYSQL_ROWS_PER_UPSERT>(self, rows)
    }

    fn new_rows_per_write(&self) -> usize {
        4 * MYSQL_ROWS_PER_INSERT
    }

    /// Plain multi-row `INSERT`s of [`MYSQL_ROWS_PER_INSERT`] rows: no conflict to handle,
    /// and a fifth of the round trips.
    fn insert_new_rows(&mut self, rows: &[DailyStatsRow]) -> QueryResult<()> {
        execute_mysql_rows::<MysqlInsert, MYSQL_ROWS_PER_INSERT>(self, rows)
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

/// A first load under way: what [`Upserts::end_first_load`] finishes.
#[derive(Debug)]
pub(super) struct FirstLoad {
    /// The name of the primary key dropped (PostgreSQL), added back at the end.
    key: String,
    /// Whether the (empty) table was truncated in this transaction, so that its rows are
    /// copied in frozen (`COPY .. FREEZE`): written as visible to every transaction, where
    /// otherwise the first reads after the commit (the API's, a vacuum's) set each page's hint
    /// bits and write the whole table again, and an anti-wraparound vacuum later rewrites it
    /// to freeze it. The key built after scans the frozen heap faster too: the uniform year of
    /// 10,000 customers (3.4M rows) copied in 4.13-4.46 s instead of 4.36-4.56 s, its key
    /// built in 2.65-2.74 s instead of 3.00-3.07 s. PostgreSQL allows `FREEZE` only into a
    /// table created or truncated in the same transaction (in any isolation level: a
    /// `REPEATABLE READ` transaction's own snapshot is allowed).
    frozen: bool,
}

/// Truncates the empty `daily_stats` in a savepoint, so that the transaction may copy into it
/// frozen (see [`FirstLoad::frozen`]); whether it did. A `TRUNCATE` refused (no `TRUNCATE`
/// privilege, a `BEFORE TRUNCATE` trigger raising an error) is rolled back to the savepoint,
/// and the rows are copied in as usual.
fn truncate_for_freeze(conn: &mut PgConnection) -> QueryResult<bool> {
    let truncated = conn.transaction(|conn| conn.batch_execute("TRUNCATE daily_stats"));
    match truncated {
        Ok(()) => Ok(true),
        Err(e) => {
            log::debug!("daily_stats is copied in without FREEZE: its TRUNCATE failed: {e}");
            Ok(false)
        }
    }
}

/// `name` as a PostgreSQL identifier: in double quotes, each double quote doubled.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `COPY daily_stats FROM STDIN` (binary format) of every row `next` gives; returns how many.
fn copy_new_rows<R: std::borrow::Borrow<DailyStatsRow>>(
    conn: &mut PgConnection,
    next: &mut dyn FnMut() -> Option<R>,
    freeze: bool,
) -> QueryResult<usize> {
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
    // The callback is `Fn`: the row source and the count are reached through cells.
    let next = std::cell::RefCell::new(next);
    let written = std::cell::Cell::new(0);
    let io = |e: std::io::Error| diesel::result::Error::SerializationError(Box::new(e));
    let copy = diesel::copy_from(d::daily_stats)
        .from_raw_data(columns, |copy| {
            let mut next = next.borrow_mut();
            let mut buffer = Vec::with_capacity(COPY_BUFFER_BYTES + 4096);
            // The binary format's header: signature, flags, no extension.
            buffer.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
            buffer.extend_from_slice(&[0; 8]);
            while let Some(row) = next() {
                copy_binary_row(&mut buffer, row.borrow());
                written.set(written.get() + 1);
                if buffer.len() >= COPY_BUFFER_BYTES {
                    copy.write_all(&buffer).map_err(io)?;
                    buffer.clear();
                }
            }
            // The trailer: a tuple of -1 fields.
            buffer.extend_from_slice(&(-1i16).to_be_bytes());
            copy.write_all(&buffer).map_err(io)?;
            QueryResult::Ok(())
        })
        .with_format(diesel::pg::CopyFormat::Binary);
    if freeze {
        copy.with_freeze(true).execute(conn)?;
    } else {
        copy.execute(conn)?;
    }
    Ok(written.get())
}

/// Bytes of `COPY` data handed to libpq at a time.
const COPY_BUFFER_BYTES: usize = 64 << 10;

/// `row` as a tuple of `COPY`'s binary format (each field its length and its bytes, big-endian;
/// a date is days since 2000-01-01), in the daily rows' column order, appended to `buffer`.
/// The server then parses no text: the text format's dates, numbers and hex-escaped latencies
/// were a fifth of its time in a year's commit.
fn copy_binary_row(buffer: &mut Vec<u8>, row: &DailyStatsRow) {
    const POSTGRES_EPOCH_DAYS: i32 = 730_120; // 2000-01-01 from 0001-01-01 (day 1)
    use chrono::Datelike as _;
    buffer.extend_from_slice(&9i16.to_be_bytes());
    let mut field = |bytes: &[u8]| {
        // A field's length is an i32: a daily row's latencies take at most some 80 kB.
        buffer.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        buffer.extend_from_slice(bytes);
    };
    field(row.customer_id.as_bytes());
    field(&(row.day.num_days_from_ce() - POSTGRES_EPOCH_DAYS).to_be_bytes());
    for value in [
        row.successful,
        row.failed,
        row.latency_sum_us,
        row.latency_min_us,
        row.latency_max_us,
    ] {
        field(&value.to_be_bytes());
    }
    field(&row.latencies);
    field(&row.version.to_be_bytes());
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
/// `VALUES` statement of MySQL (SQLite runs a prepared statement a row; PostgreSQL binds one
/// array per column).
#[cfg(feature = "mysql")]
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

/// A statement of daily rows that the connection keeps prepared: its SQL is the same each time,
/// so diesel caches it by type, where a `sql_query` is parsed again for every execution (on
/// SQLite, parsing multi-row statements and binding through boxed binds took about a third of a
/// bulk commit; on MariaDB, parsing took a sixth of the server's time).
///
/// SQLite inserts new rows [`SQLITE_ROWS_PER_INSERT`] at a time and upserts
/// [`SQLITE_ROWS_PER_UPSERT`]. MySQL writes [`MYSQL_ROWS_PER_UPSERT`] rows a statement: each statement is a
/// round trip.
trait PreparedRows: 'static {
    /// The statement, its `{rows}` marker where the `VALUES` groups go.
    const TEMPLATE: &'static str;
    /// [`PreparedRows::TEMPLATE`] before and after the marker.
    const PARTS: (&'static str, &'static str) = split_at_marker(Self::TEMPLATE);
}

/// `template` before and after its `{rows}` marker (all of it before, if it has none).
const fn split_at_marker(template: &str) -> (&str, &str) {
    const MARKER: &[u8] = b"{rows}";
    let bytes = template.as_bytes();
    let mut at = 0;
    while at + MARKER.len() <= bytes.len() {
        let mut same = 0;
        while same < MARKER.len() && bytes[at + same] == MARKER[same] {
            same += 1;
        }
        if same == MARKER.len() {
            let (head, rest) = template.split_at(at);
            let (_, tail) = rest.split_at(MARKER.len());
            return (head, tail);
        }
        at += 1;
    }
    (template, "")
}

/// SQLite: a row over the stored one.
struct SqliteUpsert;

impl PreparedRows for SqliteUpsert {
    const TEMPLATE: &'static str = include_str!("sql/sqlite_upsert_daily_stats.sql");
}

/// SQLite: a row of a key that cannot be stored yet.
struct SqliteInsert;

impl PreparedRows for SqliteInsert {
    const TEMPLATE: &'static str = include_str!("sql/sqlite_insert_daily_stats.sql");
}

/// MySQL: rows over the stored ones.
#[cfg(feature = "mysql")]
struct MysqlUpsert;

#[cfg(feature = "mysql")]
impl PreparedRows for MysqlUpsert {
    const TEMPLATE: &'static str = include_str!("sql/mysql_upsert_daily_stats.sql");
}

/// MySQL: rows of keys that cannot be stored yet.
#[cfg(feature = "mysql")]
struct MysqlInsert;

#[cfg(feature = "mysql")]
impl PreparedRows for MysqlInsert {
    const TEMPLATE: &'static str = include_str!("sql/mysql_insert_daily_stats.sql");
}

/// Statement `K` of exactly `N` rows, bound as diesel builds its own statements (the SQL with a
/// placeholder pushed for each bind), cached by the type of its [`QueryId`]: one prepared
/// statement per kind and number of rows.
///
/// [`QueryId`]: diesel::query_builder::QueryId
struct RowsStatement<'a, K, const N: usize> {
    rows: &'a [DailyStatsRow; N],
    /// The days as text (`YYYY-MM-DD`, as SQLite stores a `Date`; MySQL converts it), formatted
    /// here: chrono's formatting of each bound date was a tenth of a SQLite commit.
    days: [DayText; N],
    kind: std::marker::PhantomData<K>,
}

impl<'a, K, const N: usize> RowsStatement<'a, K, N> {
    fn new(rows: &'a [DailyStatsRow; N]) -> Self {
        Self {
            rows,
            days: std::array::from_fn(|i| DayText::new(rows[i].day)),
            kind: std::marker::PhantomData,
        }
    }
}

/// The cache key of [`RowsStatement`].
struct RowsStatementId<K, const N: usize>(std::marker::PhantomData<K>);

/// A date as `YYYY-MM-DD` text (years 0 to 9999).
struct DayText([u8; 10]);

impl DayText {
    fn new(day: chrono::NaiveDate) -> Self {
        use chrono::Datelike;
        let mut text = *b"0000-00-00";
        let year = day.year().clamp(0, 9999) as u32;
        let digits = [
            year / 1000,
            year / 100 % 10,
            year / 10 % 10,
            year % 10,
            day.month() / 10,
            day.month() % 10,
            day.day() / 10,
            day.day() % 10,
        ];
        for (at, digit) in [0, 1, 2, 3, 5, 6, 8, 9].into_iter().zip(digits) {
            text[at] = b'0' + digit as u8;
        }
        Self(text)
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and dashes are written.
        std::str::from_utf8(&self.0).unwrap_or("0000-00-00")
    }
}

impl<K: PreparedRows, const N: usize> diesel::query_builder::QueryId for RowsStatement<'_, K, N> {
    type QueryId = RowsStatementId<K, N>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<K, DB, const N: usize> diesel::query_builder::QueryFragment<DB> for RowsStatement<'_, K, N>
where
    K: PreparedRows,
    DB: Binds,
    String: diesel::serialize::ToSql<Text, DB>,
    str: diesel::serialize::ToSql<Text, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    Vec<u8>: diesel::serialize::ToSql<Binary, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        let (head, tail) = K::PARTS;
        out.push_sql(head);
        for (i, (row, day)) in self.rows.iter().zip(&self.days).enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<Text, _>(&row.customer_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(day.as_str())?;
            for value in [
                &row.successful,
                &row.failed,
                &row.latency_sum_us,
                &row.latency_min_us,
                &row.latency_max_us,
            ] {
                out.push_sql(", ");
                out.push_bind_param::<BigInt, _>(value)?;
            }
            out.push_sql(", ");
            out.push_bind_param::<Binary, _>(&row.latencies)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&row.version)?;
            out.push_sql(")");
        }
        out.push_sql(tail);
        Ok(())
    }
}

impl<K, C: Connection, const N: usize> RunQueryDsl<C> for RowsStatement<'_, K, N> {}

/// Writes `rows` with statement `K`, `N` rows a statement and the rest one at a time, each
/// statement prepared once per connection.
fn execute_prepared_chunks<C, K, const N: usize>(
    conn: &mut C,
    rows: &[DailyStatsRow],
) -> QueryResult<()>
where
    C: Connection,
    K: PreparedRows,
    for<'a> RowsStatement<'a, K, N>: ExecuteDsl<C>,
    for<'a> RowsStatement<'a, K, 1>: ExecuteDsl<C>,
{
    let mut chunks = rows.chunks_exact(N);
    for chunk in &mut chunks {
        if let Ok(full) = <&[DailyStatsRow; N]>::try_from(chunk) {
            RowsStatement::<K, N>::new(full).execute(conn)?;
        }
    }
    execute_prepared(conn, chunks.remainder())
}

/// Writes `rows` with statement `K`, one row at a time, the statement prepared once per
/// connection.
fn execute_prepared<C, K>(conn: &mut C, rows: &[DailyStatsRow]) -> QueryResult<()>
where
    C: Connection,
    K: PreparedRows,
    for<'a> RowsStatement<'a, K, 1>: ExecuteDsl<C>,
{
    for row in rows {
        RowsStatement::<K, 1>::new(std::array::from_ref(row)).execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_bound_as_chrono_formats_them() {
        let mut day = chrono::NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        let last = chrono::NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        while day < last {
            assert_eq!(
                DayText::new(day).as_str(),
                day.format("%Y-%m-%d").to_string()
            );
            day += chrono::Duration::days(17);
        }
        assert_eq!(DayText::new(last).as_str(), "9999-12-31");
    }

    /// SQLite's insert of new rows rolls the whole transaction back on a conflict (`INSERT OR
    /// ROLLBACK`, which spares every statement its journal): the commit fails, nothing of it is
    /// stored, and the connection takes the next transaction as usual.
    #[test]
    fn a_conflicting_new_row_rolls_back_the_whole_sqlite_transaction() {
        use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
        const SQLITE: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
        let mut conn = SqliteConnection::establish(":memory:").expect("open");
        conn.run_pending_migrations(SQLITE).expect("migrate");
        let row = |customer: &str| DailyStatsRow {
            customer_id: customer.to_string(),
            day: chrono::NaiveDate::from_ymd_opt(2024, 10, 10).unwrap(),
            successful: 1,
            failed: 0,
            latency_sum_us: 5,
            latency_min_us: 5,
            latency_max_us: 5,
            latencies: Vec::new(),
            version: 1,
        };
        let count = |conn: &mut SqliteConnection| -> i64 {
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = BigInt)]
                n: i64,
            }
            diesel::sql_query("SELECT COUNT(*) AS n FROM daily_stats")
                .get_result::<Count>(conn)
                .expect("count")
                .n
        };
        let rows: Vec<DailyStatsRow> = (0..300).map(|i| row(&format!("c{i:03}"))).collect();
        let failed = conn.immediate_transaction(|conn| {
            conn.insert_new_rows(&rows)?;
            // A full statement of new rows, one of which is stored already.
            let again: Vec<DailyStatsRow> = (299..299 + SQLITE_ROWS_PER_INSERT)
                .map(|i| row(&format!("c{i:03}")))
                .collect();
            conn.insert_new_rows(&again)
        });
        assert!(failed.is_err());
        assert_eq!(count(&mut conn), 0, "nothing of the transaction is stored");
        conn.immediate_transaction(|conn| conn.insert_new_rows(&rows))
            .expect("the next transaction");
        assert_eq!(count(&mut conn), 300);
    }

    #[test]
    fn statement_templates_split_at_their_marker() {
        let (head, tail) = SqliteInsert::PARTS;
        assert!(head.trim_end().ends_with("VALUES"), "{head}");
        assert_eq!(tail.trim(), "");
        let (head, tail) = SqliteUpsert::PARTS;
        assert!(head.trim_end().ends_with("VALUES"), "{head}");
        assert!(tail.trim_start().starts_with("ON CONFLICT"), "{tail}");
        assert_eq!(split_at_marker("a {rows} b {rows}"), ("a ", " b {rows}"));
        assert_eq!(split_at_marker("no marker"), ("no marker", ""));
    }
}
