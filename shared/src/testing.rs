//! Test support (feature `testing`): a fresh, private database per test on every backend.
//!
//! `TestDatabase::sqlite()` is a new file in a temporary directory; `TestDatabase::postgres()`
//! creates a uniquely named database on the server at `TEST_POSTGRES_URL` and drops it again when
//! the value is dropped; `TestDatabase::mysql()` (cargo feature `mysql`) does the same on the
//! MySQL or MariaDB server at `TEST_MYSQL_URL`. `backends()` gives one of each, so the same test
//! body runs on every backend.
//!
//! [`outage`] puts a database server away and back, the same on every server backend.
//!
//! [`spawn`] is how every integration test runs a real binary: a free port, output in files of
//! a temporary directory, a readiness wait, signals by name, killed when dropped.
//!
//! [`help`] and [`docs`] hold the docs to the binaries and to themselves: the `--help` blocks,
//! the flags the docs name, their links.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::pg::PgConnection;
use diesel::{Connection, RunQueryDsl};

use crate::storage::{redact, Backend, Store, StoreOptions};

pub mod docs;
pub mod help;
pub mod outage;
pub mod spawn;

/// Everything `stream` receives until the other side closes it (a reset with bytes unread counts
/// as closed); a failure if it is still open after `limit`.
pub fn received_until_closed(
    stream: &mut std::net::TcpStream,
    limit: std::time::Duration,
) -> Vec<u8> {
    use std::io::Read;
    stream
        .set_read_timeout(Some(limit))
        .expect("a read timeout");
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return bytes,
            Err(e) => panic!("still open after {limit:?} ({e}), having received {bytes:?}"),
        }
    }
}

/// Environment variable naming the PostgreSQL server (any database on it) tests may use.
pub const TEST_POSTGRES_URL_ENV: &str = "TEST_POSTGRES_URL";

/// Server used when `TEST_POSTGRES_URL` is not set.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Environment variable naming the MySQL or MariaDB server (any database on it) tests may use.
pub const TEST_MYSQL_URL_ENV: &str = "TEST_MYSQL_URL";

/// Server used when `TEST_MYSQL_URL` is not set.
pub const DEFAULT_TEST_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/mysql";

/// Seconds to wait for the PostgreSQL server before calling it unreachable.
const CONNECT_TIMEOUT_SECONDS: u32 = 5;

/// Distinguishes databases created by one process within the same nanosecond.
static DATABASE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty database that lives as long as this value.
pub struct TestDatabase {
    /// URL to pass to [`Store::connect`] or to a binary's `--database-url`.
    pub url: String,
    /// Which backend this database is on.
    pub backend: Backend,
    lifetime: Lifetime,
}

/// What has to be cleaned up when a [`TestDatabase`] is dropped.
enum Lifetime {
    /// The temporary directory holding the SQLite file; removed with it.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    /// A database created on a PostgreSQL server, dropped through `admin_url`.
    Postgres { admin_url: String, name: String },
    /// A database created on a MySQL server, dropped through `admin_url`.
    #[cfg(feature = "mysql")]
    Mysql { admin_url: String, name: String },
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("url", &redact(&self.url))
            .field("backend", &self.backend)
            .finish()
    }
}

impl TestDatabase {
    /// A new SQLite file (not yet created) in a fresh temporary directory.
    ///
    /// Panics when no temporary directory can be made: a test cannot run without one.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::Builder::new()
            .prefix("logstats-test-")
            .tempdir()
            .expect("cannot create a temporary directory for a test database");
        let url = format!("sqlite://{}", dir.path().join("logstats.db").display());
        TestDatabase {
            url,
            backend: Backend::Sqlite,
            lifetime: Lifetime::Sqlite(dir),
        }
    }

    /// A new database on the PostgreSQL server at `TEST_POSTGRES_URL` (default
    /// [`DEFAULT_TEST_POSTGRES_URL`]), dropped again when the value is dropped.
    ///
    /// When the server is unreachable this panics if the environment variable `CI` is set (a CI
    /// run must test both backends), and otherwise prints a loud warning and returns `None` so
    /// the caller can skip the PostgreSQL half of a test.
    pub fn postgres() -> Option<TestDatabase> {
        Self::postgres_created_with("")
    }

    /// [`TestDatabase::postgres`], the database created with `options` after its name (say
    /// `LOCALE_PROVIDER icu ICU_LOCALE 'en-US' TEMPLATE template0`).
    pub fn postgres_created_with(options: &str) -> Option<TestDatabase> {
        let server_url = std::env::var(TEST_POSTGRES_URL_ENV)
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| DEFAULT_TEST_POSTGRES_URL.to_string());
        let admin_url = with_connect_timeout(&server_url);
        let mut admin = match PgConnection::establish(&admin_url) {
            Ok(conn) => conn,
            Err(error) => {
                let message = format!(
                    "PostgreSQL at {} is unreachable ({}); set {TEST_POSTGRES_URL_ENV} to a \
                     reachable server",
                    redact(&server_url),
                    error.to_string().trim()
                );
                if running_in_ci() {
                    panic!("{message} (CI is set, so PostgreSQL tests may not be skipped)");
                }
                eprintln!(
                    "\n==================== WARNING ====================\n\
                     {message}.\nSKIPPING the PostgreSQL half of this test.\n\
                     =================================================\n"
                );
                return None;
            }
        };
        let name = unique_database_name();
        diesel::sql_query(format!("CREATE DATABASE \"{name}\" {options}"))
            .execute(&mut admin)
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        Some(TestDatabase {
            url: with_database(&server_url, &name),
            backend: Backend::Postgres,
            lifetime: Lifetime::Postgres { admin_url, name },
        })
    }

    /// A new database on the MySQL or MariaDB server at `TEST_MYSQL_URL` (default
    /// [`DEFAULT_TEST_MYSQL_URL`]), dropped again when the value is dropped; `None` (with a loud
    /// warning) when the server is unreachable, a panic instead when `CI` is set.
    #[cfg(feature = "mysql")]
    pub fn mysql() -> Option<TestDatabase> {
        use diesel::mysql::MysqlConnection;
        let server_url = std::env::var(TEST_MYSQL_URL_ENV)
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| DEFAULT_TEST_MYSQL_URL.to_string());
        let mut admin = match MysqlConnection::establish(&server_url) {
            Ok(conn) => conn,
            Err(error) => {
                let message = format!(
                    "MySQL at {} is unreachable ({}); set {TEST_MYSQL_URL_ENV} to a reachable \
                     server",
                    redact(&server_url),
                    error.to_string().trim()
                );
                if running_in_ci() {
                    panic!("{message} (CI is set, so MySQL tests may not be skipped)");
                }
                eprintln!(
                    "\n==================== WARNING ====================\n\
                     {message}.\nSKIPPING the MySQL half of this test.\n\
                     =================================================\n"
                );
                return None;
            }
        };
        let name = unique_database_name();
        diesel::sql_query(format!("CREATE DATABASE `{name}`"))
            .execute(&mut admin)
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        Some(TestDatabase {
            url: with_database(&server_url, &name),
            backend: Backend::Mysql,
            lifetime: Lifetime::Mysql {
                admin_url: server_url,
                name,
            },
        })
    }

    /// Opens a [`Store`] on this database (applying migrations), panicking on failure.
    pub fn connect(&self) -> Store {
        Store::connect(&self.url, &StoreOptions::default())
            .unwrap_or_else(|e| panic!("cannot open test database {:?}: {e}", self.backend))
    }

    /// Runs `sql` (statements separated by `;`) on a connection of its own, panicking on
    /// failure: for tests that damage or alter a database behind a binary's back.
    pub fn execute(&self, sql: &str) {
        let result = match self.backend {
            Backend::Sqlite => {
                let path = self.url.strip_prefix("sqlite://").unwrap_or(&self.url);
                batch_execute::<diesel::sqlite::SqliteConnection>(path, sql)
            }
            Backend::Postgres => batch_execute::<PgConnection>(&self.url, sql),
            #[cfg(feature = "mysql")]
            Backend::Mysql => batch_execute::<diesel::mysql::MysqlConnection>(&self.url, sql),
            #[cfg(not(feature = "mysql"))]
            Backend::Mysql => Err("this build has no MySQL backend".to_string()),
        };
        if let Err(error) = result {
            panic!("{sql}: {error}");
        }
    }

    /// The number a PostgreSQL query of one row gives in its column `value` (a `BIGINT`), on a
    /// connection of its own, panicking on failure: for tests that look at the server's own
    /// view of a table (its pages, its visibility map).
    pub fn postgres_number(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Number {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            value: i64,
        }
        assert_eq!(
            self.backend,
            Backend::Postgres,
            "{sql}: not a PostgreSQL database"
        );
        PgConnection::establish(&self.url)
            .map_err(|e| e.to_string())
            .and_then(|mut conn| {
                diesel::sql_query(sql)
                    .get_result::<Number>(&mut conn)
                    .map_err(|e| e.to_string())
            })
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
            .value
    }
}

/// Runs `sql` on a new connection of type `C` to `url`; the error as text.
fn batch_execute<C: Connection>(url: &str, sql: &str) -> Result<(), String> {
    C::establish(url)
        .map_err(|e| e.to_string())
        .and_then(|mut conn| conn.batch_execute(sql).map_err(|e| e.to_string()))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        #[cfg(feature = "mysql")]
        if let Lifetime::Mysql { admin_url, name } = &self.lifetime {
            let drop = format!("DROP DATABASE IF EXISTS `{name}`");
            if let Err(error) = batch_execute::<diesel::mysql::MysqlConnection>(admin_url, &drop) {
                eprintln!("warning: cannot drop test database {name}: {error}");
            }
            return;
        }
        let Lifetime::Postgres { admin_url, name } = &self.lifetime else {
            return;
        };
        // Never panic in drop: a leftover database is a nuisance, a double panic is an abort.
        let result = PgConnection::establish(admin_url)
            .map_err(|e| e.to_string())
            .and_then(|mut admin| drop_database(&mut admin, name).map_err(|e| e.to_string()));
        if let Err(error) = result {
            eprintln!("warning: cannot drop test database {name}: {error}");
        }
    }
}

/// Drops `name`, disconnecting whatever pools the test left open.
fn drop_database(admin: &mut PgConnection, name: &str) -> diesel::QueryResult<()> {
    let force = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(admin);
    if force.is_ok() {
        return Ok(());
    }
    // Servers before PostgreSQL 13 know no FORCE: end the other sessions by hand.
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .execute(admin)?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\"")).execute(admin)?;
    Ok(())
}

/// SplitMix64: reproducible pseudo-random numbers for tests, without a dependency.
#[derive(Debug, Clone)]
pub struct Random(pub u64);

impl Random {
    /// The next number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// `numpy.percentile(values, p)` (method "linear": h = (n - 1) p / 100, then numpy's `_lerp`
/// between the closest ranks), rounded to the microsecond: the oracle the tests compare the
/// product's percentiles with. `None` for no values.
pub fn numpy_percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut x = values.to_vec();
    x.sort_by(f64::total_cmp);
    let h = (x.len() - 1) as f64 * (p / 100.0);
    let below = h.floor() as usize;
    let (a, b) = (x[below], x[(below + 1).min(x.len() - 1)]);
    let t = h - h.floor();
    let value = if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    };
    Some((value * 1e6).round() / 1e6)
}

/// A fresh SQLite database, plus a fresh PostgreSQL database (and with the `mysql` feature a
/// MySQL one) when its server is reachable.
pub fn backends() -> Vec<TestDatabase> {
    let mut databases = vec![TestDatabase::sqlite()];
    databases.extend(servers());
    databases
}

/// The server backends of [`backends`]: PostgreSQL, and MySQL with the `mysql` feature, each
/// when its server is reachable.
pub fn servers() -> Vec<TestDatabase> {
    let databases = TestDatabase::postgres().into_iter();
    #[cfg(feature = "mysql")]
    let databases = databases.chain(TestDatabase::mysql());
    databases.collect()
}

/// Whether the tests run in CI, where skipping a backend is an error.
fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// `logstats_test_<pid>_<nanos>_<counter>`: unique across processes and within one.
fn unique_database_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let counter = DATABASE_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("logstats_test_{}_{nanos}_{counter}", std::process::id())
}

/// `url` with its database (the path) replaced by `database`, keeping any query string.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// `url` with a libpq `connect_timeout`, so an unreachable server fails instead of hanging.
fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&connect_timeout={CONNECT_TIMEOUT_SECONDS}")
    } else {
        format!("{url}?connect_timeout={CONNECT_TIMEOUT_SECONDS}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{CommitOutcome, EpochCommit};
    use crate::DayAccumulator;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db"),
            "postgres://h/db?connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?sslmode=disable"),
            "postgres://h/db?sslmode=disable&connect_timeout=5"
        );
    }

    #[test]
    fn database_names_are_unique() {
        let a = unique_database_name();
        let b = unique_database_name();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("logstats_test_{}_", std::process::id())));
    }

    #[test]
    fn every_backend_starts_empty_and_is_private() {
        let databases = backends();
        assert_eq!(databases[0].backend, Backend::Sqlite);
        for db in &databases {
            let store = db.connect();
            assert!(
                store.all_days().expect("read").is_empty(),
                "{db:?} not empty"
            );
            let mut acc = DayAccumulator::new();
            acc.add(true, 1_000);
            let epoch = EpochCommit {
                deltas: vec![("cust_1".to_string(), 20_000, acc.finish())],
                ..EpochCommit::default()
            };
            assert_eq!(
                store.commit_epoch(&epoch).expect("commit"),
                CommitOutcome::Written(1)
            );
            assert_eq!(store.all_days().expect("read").len(), 1);
        }
        // A second set of databases sees none of the first one's rows.
        for db in backends() {
            assert!(db.connect().all_days().expect("read").is_empty());
        }
    }

    #[test]
    fn postgres_database_is_dropped_with_its_value() {
        let Some(db) = TestDatabase::postgres() else {
            return;
        };
        let Lifetime::Postgres { admin_url, name } = &db.lifetime else {
            panic!("postgres() gave a non-PostgreSQL database");
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // An open pool must not stop the drop.
        let store = db.connect();
        assert!(!store.customer_exists("cust_1").expect("query"));
        drop(db);
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut admin = PgConnection::establish(&admin_url).expect("admin connection");
        let count: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM pg_database WHERE datname = '{name}'"
        ))
        .get_result(&mut admin)
        .expect("count databases");
        assert_eq!(count.n, 0, "{name} still exists");
    }
}
