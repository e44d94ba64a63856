//! The `source_offsets` and `ingest_watermark` tables: how far each source is committed, the
//! lease that keeps two jobs off one source, and the newest event time committed. The ingest
//! job reads them back to resume.

use diesel::dsl;
use diesel::prelude::*;
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::query_dsl::LoadQuery;

use super::models::{SourceOffset, SourceOffsetRow};
use super::schema::{ingest_watermark, source_offsets};
use super::{LeaseHolder, LeaseOutcome, StorageError, Store};

/// A source's stored row: its position, and the lease's holder and end.
type LeaseRow = (SourceOffsetRow, Option<String>, Option<i64>);

/// The queries of `source_offsets` and `ingest_watermark`.
pub(super) trait OffsetRows {
    /// The stored position of `source`.
    fn offset_of(&mut self, source: &str) -> QueryResult<Option<SourceOffsetRow>>;

    /// The stored position of `source` with its lease.
    fn lease_of(&mut self, source: &str) -> QueryResult<Option<LeaseRow>>;

    /// The holder of `source`'s lease: `None` when the source has no row.
    fn owner_of(&mut self, source: &str) -> QueryResult<Option<Option<String>>>;

    /// A new source at offset 0, leased to `owner` until `until`.
    fn insert_source(
        &mut self,
        source: &str,
        fingerprint: &[u8],
        owner: &str,
        until: i64,
    ) -> QueryResult<usize>;

    /// Gives `source`'s lease to `owner` until `until`.
    fn lease_to(&mut self, source: &str, owner: &str, until: i64) -> QueryResult<usize>;

    /// Extends every lease `owner` holds until `until`.
    fn renew(&mut self, owner: &str, until: i64) -> QueryResult<usize>;

    /// Clears every lease `owner` holds.
    fn release(&mut self, owner: &str) -> QueryResult<usize>;

    /// The positions of the sources whose names match the SQL `LIKE` `pattern`.
    fn offsets_like(&mut self, pattern: &str) -> QueryResult<Vec<SourceOffsetRow>>;

    /// The stored watermark.
    fn stored_watermark(&mut self) -> QueryResult<Option<i64>>;
}

/// The columns of [`SourceOffsetRow`], in its field order.
type OffsetColumns = (
    source_offsets::source,
    source_offsets::fingerprint,
    source_offsets::byte_offset,
    source_offsets::line_count,
);

const OFFSET_COLUMNS: OffsetColumns = (
    source_offsets::source,
    source_offsets::fingerprint,
    source_offsets::byte_offset,
    source_offsets::line_count,
);

#[dsl::auto_type]
fn offset_of_query<'a>(source: &'a str) -> _ {
    let columns: OffsetColumns = OFFSET_COLUMNS;
    source_offsets::table
        .filter(source_offsets::source.eq(source))
        .select(columns)
}

#[dsl::auto_type]
fn lease_of_query<'a>(source: &'a str) -> _ {
    let columns: OffsetColumns = OFFSET_COLUMNS;
    source_offsets::table
        .filter(source_offsets::source.eq(source))
        .select((columns, source_offsets::owner, source_offsets::lease_until))
}

#[dsl::auto_type]
fn owner_of_query<'a>(source: &'a str) -> _ {
    source_offsets::table
        .filter(source_offsets::source.eq(source))
        .select(source_offsets::owner)
}

#[dsl::auto_type]
fn offsets_like_query<'a>(pattern: &'a str) -> _ {
    let columns: OffsetColumns = OFFSET_COLUMNS;
    source_offsets::table
        .filter(source_offsets::source.like(pattern))
        .select(columns)
}

#[dsl::auto_type]
fn watermark_query() -> _ {
    ingest_watermark::table.select(ingest_watermark::event_time)
}

#[dsl::auto_type]
fn insert_source_query(source: String, fingerprint: Vec<u8>, owner: String, until: i64) -> _ {
    let zero: i64 = 0;
    dsl::insert_into(source_offsets::table).values((
        source_offsets::source.eq(source),
        source_offsets::fingerprint.eq(fingerprint),
        source_offsets::byte_offset.eq(zero),
        source_offsets::line_count.eq(zero),
        source_offsets::owner.eq(owner),
        source_offsets::lease_until.eq(until),
    ))
}

/// `UPDATE source_offsets SET <changes> WHERE <filter>`.
type UpdateOffsets<Filter, Changes> =
    dsl::Update<dsl::Filter<source_offsets::table, Filter>, Changes>;

/// The changes that give a lease to an owner until a time. (Statements that write bind owned
/// values: with borrowed ones, the bounds below would need to hold for every lifetime, which
/// rustc cannot prove for diesel's insert and update statements.)
type LeaseChanges = (
    dsl::Eq<source_offsets::owner, String>,
    dsl::Eq<source_offsets::lease_until, i64>,
);

/// The changes that clear a lease.
type NoLease = (
    dsl::Eq<source_offsets::owner, Option<String>>,
    dsl::Eq<source_offsets::lease_until, Option<i64>>,
);

impl<C> OffsetRows for C
where
    C: Connection,
    for<'a> dsl::Limit<offset_of_query<'a>>: LoadQuery<'a, C, SourceOffsetRow>,
    for<'a> dsl::Limit<lease_of_query<'a>>: LoadQuery<'a, C, LeaseRow>,
    for<'a> dsl::Limit<owner_of_query<'a>>: LoadQuery<'a, C, Option<String>>,
    for<'a> offsets_like_query<'a>: LoadQuery<'a, C, SourceOffsetRow>,
    for<'a> dsl::Limit<watermark_query>: LoadQuery<'a, C, i64>,
    insert_source_query: ExecuteDsl<C>,
    UpdateOffsets<dsl::Eq<source_offsets::source, String>, LeaseChanges>: ExecuteDsl<C>,
    UpdateOffsets<
        dsl::Eq<source_offsets::owner, String>,
        dsl::Eq<source_offsets::lease_until, i64>,
    >: ExecuteDsl<C>,
    UpdateOffsets<dsl::Eq<source_offsets::owner, String>, NoLease>: ExecuteDsl<C>,
{
    fn offset_of(&mut self, source: &str) -> QueryResult<Option<SourceOffsetRow>> {
        offset_of_query(source).first(self).optional()
    }

    fn lease_of(&mut self, source: &str) -> QueryResult<Option<LeaseRow>> {
        lease_of_query(source).first(self).optional()
    }

    fn owner_of(&mut self, source: &str) -> QueryResult<Option<Option<String>>> {
        owner_of_query(source).first(self).optional()
    }

    fn insert_source(
        &mut self,
        source: &str,
        fingerprint: &[u8],
        owner: &str,
        until: i64,
    ) -> QueryResult<usize> {
        insert_source_query(source.into(), fingerprint.into(), owner.into(), until).execute(self)
    }

    fn lease_to(&mut self, source: &str, owner: &str, until: i64) -> QueryResult<usize> {
        diesel::update(source_offsets::table.filter(source_offsets::source.eq(source.to_string())))
            .set((
                source_offsets::owner.eq(owner.to_string()),
                source_offsets::lease_until.eq(until),
            ))
            .execute(self)
    }

    fn renew(&mut self, owner: &str, until: i64) -> QueryResult<usize> {
        diesel::update(source_offsets::table.filter(source_offsets::owner.eq(owner.to_string())))
            .set(source_offsets::lease_until.eq(until))
            .execute(self)
    }

    fn release(&mut self, owner: &str) -> QueryResult<usize> {
        diesel::update(source_offsets::table.filter(source_offsets::owner.eq(owner.to_string())))
            .set((
                source_offsets::owner.eq(None::<String>),
                source_offsets::lease_until.eq(None::<i64>),
            ))
            .execute(self)
    }

    fn offsets_like(&mut self, pattern: &str) -> QueryResult<Vec<SourceOffsetRow>> {
        offsets_like_query(pattern).load(self)
    }

    fn stored_watermark(&mut self) -> QueryResult<Option<i64>> {
        watermark_query().first(self).optional()
    }
}

impl Store {
    /// Takes the lease of `source` for `owner` until `until` (Unix seconds) when it is free,
    /// expired, already ours, or `may_take_over` says its holder is gone. A source never seen
    /// gets a row at offset 0 with `fingerprint`.
    pub fn acquire_lease(
        &self,
        source: &str,
        fingerprint: &[u8],
        owner: &str,
        now: i64,
        until: i64,
        may_take_over: &dyn Fn(&str) -> bool,
    ) -> Result<LeaseOutcome, StorageError> {
        self.write(|conn| match conn.lease_of(source)? {
            None => {
                conn.insert_source(source, fingerprint, owner, until)?;
                Ok(LeaseOutcome::Acquired(None))
            }
            Some((_, Some(holder), Some(holder_until)))
                if holder != owner && holder_until > now && !may_take_over(&holder) =>
            {
                Ok(LeaseOutcome::Held(LeaseHolder {
                    owner: holder,
                    until: holder_until,
                }))
            }
            Some((row, _, _)) => {
                conn.lease_to(source, owner, until)?;
                Ok(LeaseOutcome::Acquired(Some(SourceOffset::from(row))))
            }
        })
    }

    /// Extends every lease `owner` holds until `until` (Unix seconds).
    pub fn renew_leases(&self, owner: &str, until: i64) -> Result<usize, StorageError> {
        self.with_connection(|conn| conn.renew(owner, until))
    }

    /// Gives up every lease `owner` holds.
    pub fn release_leases(&self, owner: &str) -> Result<usize, StorageError> {
        self.with_connection(|conn| conn.release(owner))
    }

    /// The committed position of a source, if it was ever read.
    pub fn source_offset(&self, source: &str) -> Result<Option<SourceOffset>, StorageError> {
        self.with_connection(|conn| {
            conn.offset_of(source)
                .map(|row| row.map(SourceOffset::from))
        })
    }

    /// The committed positions of the sources keyed by inode `ino` on any device (the keys
    /// `inode:DEV:INO` with that `INO`): a file's rows from before a remount or a container
    /// restart gave it another device number.
    pub fn offsets_of_inode(&self, ino: u64) -> Result<Vec<SourceOffset>, StorageError> {
        // `%` stands for any device number; the rest is digits and `:`, which `LIKE` matches
        // as themselves.
        let pattern = format!("inode:%:{ino}");
        let rows = self.with_connection(|conn| conn.offsets_like(&pattern))?;
        Ok(rows.into_iter().map(SourceOffset::from).collect())
    }

    /// The newest event time committed (Unix seconds), if any.
    pub fn watermark(&self) -> Result<Option<i64>, StorageError> {
        self.with_connection(|conn| conn.stored_watermark())
    }
}
