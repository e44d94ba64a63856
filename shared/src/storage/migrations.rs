//! This build's migrations: applied at start-up (once, whichever binary starts first), or only
//! counted by a process that may not change the schema.

use std::collections::HashSet;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::query_builder::SqlQuery;
use diesel::query_dsl::LoadQuery;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::connection::{Pooled, Pools};
use super::{StorageError, Store};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/mysql");

impl Store {
    /// Applies the migrations the database lacks, one process at a time.
    pub(super) fn migrate(&self) -> Result<(), StorageError> {
        match &self.pools {
            Pools::Sqlite(pool) => apply(&mut *pool.get()?, || SQLITE_MIGRATIONS),
            Pools::Postgres(pool) => {
                let mut conn = pool.get()?;
                // Serialise concurrent starts (ingest and API together) on one database.
                conn.batch_execute("SELECT pg_advisory_lock(7410202411)")?;
                let result = apply(&mut *conn, || POSTGRES_MIGRATIONS);
                conn.batch_execute("SELECT pg_advisory_unlock(7410202411)")?;
                result
            }
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => {
                let mut conn = pool.get()?;
                // Serialise concurrent starts; the lock ends with the session at the latest.
                conn.batch_execute("DO GET_LOCK('logstats_migrate', 60)")?;
                let result = apply(&mut *conn, || MYSQL_MIGRATIONS);
                conn.batch_execute("DO RELEASE_LOCK('logstats_migrate')")?;
                result
            }
        }
    }

    /// How many of this build's migrations the database lacks (0: the schema is current).
    /// Answers only when the database does: the readiness check. A database that holds
    /// migrations this build does not know (a newer version migrated it) is
    /// [`StorageError::SchemaNewer`].
    ///
    /// Only reads: diesel's own check first creates its migrations table if missing, which a
    /// role that may only read is refused even when the table exists (PostgreSQL checks the
    /// schema's CREATE privilege before it looks).
    pub fn pending_migrations(&self) -> Result<usize, StorageError> {
        pending_on(&mut self.checkout()?)
    }
}

/// [`Store::pending_migrations`] on a connection already held.
pub(super) fn pending_on(conn: &mut Pooled) -> Result<usize, StorageError> {
    let (known, applied) = match conn {
        Pooled::Sqlite(conn) => (
            versions_of::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS)?,
            applied(&mut **conn, include_str!("sql/sqlite_migrations_table.sql"))?,
        ),
        Pooled::Postgres(conn) => (
            versions_of::<diesel::pg::Pg>(&POSTGRES_MIGRATIONS)?,
            applied(
                &mut **conn,
                include_str!("sql/postgres_migrations_table.sql"),
            )?,
        ),
        #[cfg(feature = "mysql")]
        Pooled::Mysql(conn) => (
            versions_of::<diesel::mysql::Mysql>(&MYSQL_MIGRATIONS)?,
            applied(&mut **conn, include_str!("sql/mysql_migrations_table.sql"))?,
        ),
    };
    let newer: Vec<&String> = applied
        .iter()
        .filter(|version| !known.contains(*version))
        .collect();
    if let Some(newest) = newer.iter().max() {
        return Err(StorageError::SchemaNewer {
            count: newer.len(),
            newest: newest.to_string(),
        });
    }
    Ok(known
        .iter()
        .filter(|version| !applied.contains(*version))
        .count())
}

/// Applies pending migrations; a concurrent start of another binary may win the race, so retry.
fn apply<C, DB>(conn: &mut C, migrations: fn() -> EmbeddedMigrations) -> Result<(), StorageError>
where
    C: MigrationHarness<DB>,
    DB: diesel::backend::Backend,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let mut attempt = 0;
    loop {
        match conn.run_pending_migrations(migrations()) {
            Ok(_) => return Ok(()),
            Err(_) if attempt < 3 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(200 * attempt));
            }
            Err(e) => {
                let message = e.to_string();
                return Err(match super::error::corruption(&message) {
                    Some(corrupt) => StorageError::Corrupt(corrupt.to_string()),
                    None => StorageError::Migration(message),
                });
            }
        }
    }
}

/// How many tables of a name the connection sees.
#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// One migration diesel recorded as applied.
#[derive(QueryableByName)]
struct Applied {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// The versions recorded in diesel's migrations table (none when there is no such table yet):
/// `exists` counts the tables of that name the connection sees.
fn applied<C>(conn: &mut C, exists: &str) -> Result<HashSet<String>, StorageError>
where
    C: Connection,
    for<'a> SqlQuery: LoadQuery<'a, C, Found> + LoadQuery<'a, C, Applied>,
{
    let found: Found = diesel::sql_query(exists).get_result(conn)?;
    if found.n == 0 {
        return Ok(HashSet::new());
    }
    let applied: Vec<Applied> =
        diesel::sql_query(include_str!("sql/applied_migrations.sql")).load(conn)?;
    Ok(applied.into_iter().map(|row| row.version).collect())
}

/// The versions of this build's migrations for one backend, as diesel records them.
fn versions_of<DB: diesel::backend::Backend>(
    migrations: &EmbeddedMigrations,
) -> Result<Vec<String>, StorageError>
where
    EmbeddedMigrations: MigrationSource<DB>,
{
    MigrationSource::<DB>::migrations(migrations)
        .map(|all| {
            all.iter()
                .map(|migration| migration.name().version().to_string())
                .collect()
        })
        .map_err(|e| StorageError::Migration(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Backend, StoreOptions};

    /// The schema is read without writing; a store that may not migrate refuses a database
    /// that lacks migrations, and opens one that has them all.
    #[cfg(feature = "testing")]
    #[test]
    fn missing_migrations_are_counted_and_applied_only_when_allowed() {
        for db in crate::testing::backends() {
            let read_only = StoreOptions {
                apply_migrations: false,
                ..StoreOptions::default()
            };
            let all = match db.backend {
                Backend::Sqlite => versions_of::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS),
                Backend::Postgres => versions_of::<diesel::pg::Pg>(&POSTGRES_MIGRATIONS),
                #[cfg(feature = "mysql")]
                Backend::Mysql => versions_of::<diesel::mysql::Mysql>(&MYSQL_MIGRATIONS),
                #[cfg(not(feature = "mysql"))]
                Backend::Mysql => unreachable!("no MySQL test database without the feature"),
            }
            .expect("the embedded migrations")
            .len();
            assert!(all >= 1);
            match Store::connect(&db.url, &read_only) {
                Err(StorageError::SchemaNotCurrent { pending }) => {
                    assert_eq!(pending, all, "{db:?}")
                }
                other => panic!("{db:?}: {:?}", other.err()),
            }
            let store = db.connect();
            assert_eq!(store.pending_migrations().expect("readable"), 0);
            db.execute(
                "DELETE FROM __diesel_schema_migrations \
                 WHERE version = (SELECT MAX(version) FROM __diesel_schema_migrations)",
            );
            assert_eq!(store.pending_migrations().expect("readable"), 1);
            match Store::connect(&db.url, &read_only) {
                Err(StorageError::SchemaNotCurrent { pending: 1 }) => {}
                other => panic!("{db:?}: {:?}", other.err()),
            }
            db.connect();
            let reader = Store::connect(&db.url, &read_only).expect("a current schema opens");
            assert_eq!(reader.pending_migrations().expect("readable"), 0);
        }
    }

    /// A database holding a migration this build does not know (a newer version migrated it)
    /// is refused whether or not the store may migrate, and nothing is applied to it.
    #[cfg(feature = "testing")]
    #[test]
    fn a_schema_migrated_by_a_newer_version_is_refused_and_left_alone() {
        for db in crate::testing::backends() {
            let store = db.connect();
            let applied_count = || {
                let mut pooled = store.checkout().expect("a connection");
                match &mut pooled {
                    Pooled::Sqlite(conn) => {
                        applied(&mut **conn, include_str!("sql/sqlite_migrations_table.sql"))
                    }
                    Pooled::Postgres(conn) => applied(
                        &mut **conn,
                        include_str!("sql/postgres_migrations_table.sql"),
                    ),
                    #[cfg(feature = "mysql")]
                    Pooled::Mysql(conn) => {
                        applied(&mut **conn, include_str!("sql/mysql_migrations_table.sql"))
                    }
                }
                .expect("readable")
                .len()
            };
            // This build's newest migration unapplied, and one it does not know applied.
            db.execute(if db.backend == Backend::Mysql {
                "DELETE FROM __diesel_schema_migrations ORDER BY version DESC LIMIT 1"
            } else {
                "DELETE FROM __diesel_schema_migrations \
                 WHERE version = (SELECT MAX(version) FROM __diesel_schema_migrations)"
            });
            db.execute(
                "INSERT INTO __diesel_schema_migrations (version) VALUES ('99991231000000')",
            );
            let before = applied_count();
            for apply_migrations in [true, false] {
                let options = StoreOptions {
                    apply_migrations,
                    ..StoreOptions::default()
                };
                match Store::connect(&db.url, &options) {
                    Err(StorageError::SchemaNewer { count: 1, newest }) => {
                        assert_eq!(newest, "99991231000000", "{db:?}")
                    }
                    other => panic!("{db:?}: {:?}", other.err()),
                }
            }
            assert_eq!(applied_count(), before, "{db:?}: nothing applied");
            assert!(matches!(
                store.pending_migrations(),
                Err(StorageError::SchemaNewer { .. })
            ));
        }
    }
}
