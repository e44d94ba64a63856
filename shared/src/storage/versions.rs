//! The `customer_versions` table: one number per customer that changes with every commit that
//! touches the customer, which the API's caches compare to know their copy is current.

use diesel::dsl;
use diesel::prelude::*;
use diesel::query_dsl::LoadQuery;

use super::connection::{Pooled, StoreConnection};
use super::schema::customer_versions;
use super::{StorageError, Store};

/// The queries of `customer_versions`.
pub(super) trait VersionRows {
    /// The largest version stored (`None` before the first commit).
    fn max_version(&mut self) -> QueryResult<Option<i64>>;

    /// The version of `customer`, if it has one.
    fn version_of(&mut self, customer: &str) -> QueryResult<Option<i64>>;

    /// The customers whose versions are above `after`, with their versions.
    fn versions_above(&mut self, after: i64) -> QueryResult<Vec<(String, i64)>>;
}

/// The largest version first: the index on version answers it with one probe.
#[dsl::auto_type]
fn max_version_query() -> _ {
    customer_versions::table
        .order(customer_versions::version.desc())
        .select(customer_versions::version)
}

#[dsl::auto_type]
fn version_of_query<'a>(customer: &'a str) -> _ {
    customer_versions::table
        .filter(customer_versions::customer_id.eq(customer))
        .select(customer_versions::version)
}

#[dsl::auto_type]
fn versions_above_query(after: i64) -> _ {
    customer_versions::table
        .select((customer_versions::customer_id, customer_versions::version))
        .filter(customer_versions::version.gt(after))
}

impl<C> VersionRows for C
where
    C: Connection,
    for<'a> dsl::Limit<max_version_query>: LoadQuery<'a, C, i64>,
    for<'a> dsl::Limit<version_of_query<'a>>: LoadQuery<'a, C, i64>,
    for<'a> versions_above_query: LoadQuery<'a, C, (String, i64)>,
{
    fn max_version(&mut self) -> QueryResult<Option<i64>> {
        max_version_query().first(self).optional()
    }

    fn version_of(&mut self, customer: &str) -> QueryResult<Option<i64>> {
        version_of_query(customer).first(self).optional()
    }

    fn versions_above(&mut self, after: i64) -> QueryResult<Vec<(String, i64)>> {
        versions_above_query(after).load(self)
    }
}

/// Every customer with a version, sorted by id. Every customer with rows has one (a commit
/// writes the versions of the customers it touches; a migration gave one to those before), so
/// this lists whose rows to walk through the primary key.
pub(super) fn every_customer(conn: &mut dyn StoreConnection) -> Result<Vec<String>, StorageError> {
    let mut customers: Vec<String> = conn
        .versions_above(i64::MIN)?
        .into_iter()
        .map(|(customer, _)| customer)
        .collect();
    customers.sort_unstable();
    Ok(customers)
}

/// Repeated [`Store::versions_since`] reads on one kept connection: no pool check-out (and no
/// liveness probe) per read. The connection is dropped after a failed read and taken afresh on
/// the next; with a pool of one connection none is kept, so other readers never starve.
pub struct VersionReader {
    store: Store,
    held: Option<Pooled>,
}

impl VersionReader {
    /// See [`Store::versions_since`].
    pub fn since(&mut self, after: i64) -> Result<Vec<(String, i64)>, StorageError> {
        let mut held = match self.held.take() {
            Some(held) => held,
            None => self.store.checkout()?,
        };
        let read = held.connection().versions_above(after);
        if read.is_ok() && self.store.pool_holds_several() {
            self.held = Some(held);
        }
        Ok(read?)
    }

    /// [`Store::pending_migrations`] on the kept connection (taken afresh if none is kept), so
    /// a readiness check never waits for the pool.
    pub fn pending_migrations(&mut self) -> Result<usize, StorageError> {
        let mut held = match self.held.take() {
            Some(held) => held,
            None => self.store.checkout()?,
        };
        let pending = super::migrations::pending_on(&mut held);
        if pending.is_ok() && self.store.pool_holds_several() {
            self.held = Some(held);
        }
        pending
    }
}

impl Store {
    /// A number that changes whenever any stored day of `customer_id` changes (0 before the
    /// first). Equal versions read around a read of the rows mean the rows did not change.
    /// Versions are global: every commit gives the customers it touches one new number, above
    /// every version stored before (see [`Store::versions_since`]).
    pub fn customer_version(&self, customer_id: &str) -> Result<i64, StorageError> {
        self.with_connection(|conn| {
            conn.version_of(customer_id)
                .map(|version| version.unwrap_or(0))
        })
    }

    /// The customers whose rows changed in commits after version `after`, with their versions:
    /// read with `after` = the largest version seen so far, it keeps a copy of every version
    /// current. One index range; empty when nothing was committed since.
    pub fn versions_since(&self, after: i64) -> Result<Vec<(String, i64)>, StorageError> {
        self.with_connection(|conn| conn.versions_above(after))
    }

    /// A reader of [`Store::versions_since`] that keeps its connection between reads.
    pub fn version_reader(&self) -> VersionReader {
        VersionReader {
            store: self.clone(),
            held: None,
        }
    }
}
