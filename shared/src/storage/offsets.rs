//! Source offsets and their leases, and the watermark: what the ingest job reads back to resume
//! and to keep two jobs off the same file.

use super::*;

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
        write_transaction!(self, conn => {
            let stored: Option<(SourceOffsetRow, Option<String>, Option<i64>)> = source_offsets::table
                .filter(source_offsets::source.eq(source))
                .select((
                    SourceOffsetRow::as_select(),
                    source_offsets::owner,
                    source_offsets::lease_until,
                ))
                .first(conn)
                .optional()?;
            match stored {
                None => {
                    diesel::insert_into(source_offsets::table)
                        .values((
                            source_offsets::source.eq(source),
                            source_offsets::fingerprint.eq(fingerprint),
                            source_offsets::byte_offset.eq(0i64),
                            source_offsets::line_count.eq(0i64),
                            source_offsets::owner.eq(owner),
                            source_offsets::lease_until.eq(until),
                        ))
                        .execute(conn)?;
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
                    diesel::update(source_offsets::table.filter(source_offsets::source.eq(source)))
                        .set((
                            source_offsets::owner.eq(owner),
                            source_offsets::lease_until.eq(until),
                        ))
                        .execute(conn)?;
                    Ok(LeaseOutcome::Acquired(Some(SourceOffset::from(row))))
                }
            }
        })
    }

    /// Extends every lease `owner` holds until `until` (Unix seconds).
    pub fn renew_leases(&self, owner: &str, until: i64) -> Result<usize, StorageError> {
        with_backend!(self, conn => {
            Ok(diesel::update(source_offsets::table.filter(source_offsets::owner.eq(owner)))
                .set(source_offsets::lease_until.eq(until))
                .execute(conn)?)
        })
    }

    /// Gives up every lease `owner` holds.
    pub fn release_leases(&self, owner: &str) -> Result<usize, StorageError> {
        with_backend!(self, conn => {
            Ok(diesel::update(source_offsets::table.filter(source_offsets::owner.eq(owner)))
                .set((
                    source_offsets::owner.eq(None::<String>),
                    source_offsets::lease_until.eq(None::<i64>),
                ))
                .execute(conn)?)
        })
    }

    /// The committed position of a source, if it was ever read.
    pub fn source_offset(&self, source: &str) -> Result<Option<SourceOffset>, StorageError> {
        with_backend!(self, conn => {
            let row: Option<SourceOffsetRow> = source_offsets::table
                .filter(source_offsets::source.eq(source))
                .select(SourceOffsetRow::as_select())
                .first(conn)
                .optional()?;
            Ok(row.map(SourceOffset::from))
        })
    }

    /// The committed positions of the sources whose names match the SQL `LIKE` `pattern`.
    pub fn source_offsets_like(&self, pattern: &str) -> Result<Vec<SourceOffset>, StorageError> {
        with_backend!(self, conn => {
            let rows: Vec<SourceOffsetRow> = source_offsets::table
                .filter(source_offsets::source.like(pattern))
                .select(SourceOffsetRow::as_select())
                .load(conn)?;
            Ok(rows.into_iter().map(SourceOffset::from).collect())
        })
    }

    /// The newest event time committed (Unix seconds), if any.
    pub fn watermark(&self) -> Result<Option<i64>, StorageError> {
        with_backend!(self, conn => {
            Ok(ingest_watermark::table
                .select(ingest_watermark::event_time)
                .first::<i64>(conn)
                .optional()?)
        })
    }
}
