//! Row types of the stats tables and their conversion to and from the domain types.

use chrono::NaiveDate;
use diesel::prelude::*;

use super::schema::{daily_stats, fleet_days, source_offsets};
use super::StorageError;
use crate::latency::Latencies;
use crate::stats::DayStats;

/// Days since 1970-01-01 of 0001-01-01 counted by chrono's `num_days_from_ce`.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A day as days since 1970-01-01 to a date (saturating at chrono's range).
pub fn date_from_day(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day.saturating_add(UNIX_EPOCH_DAYS_FROM_CE)).unwrap_or(
        if day < 0 {
            NaiveDate::MIN
        } else {
            NaiveDate::MAX
        },
    )
}

/// A date to days since 1970-01-01.
pub fn day_from_date(date: NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_DAYS_FROM_CE
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = daily_stats)]
pub(super) struct DailyStatsRow {
    pub customer_id: String,
    pub day: NaiveDate,
    pub successful: i64,
    pub failed: i64,
    pub latency_sum_us: i64,
    pub latency_min_us: i64,
    pub latency_max_us: i64,
    pub latencies: Vec<u8>,
    pub version: i64,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl DailyStatsRow {
    /// The row holding `stats`, or [`StorageError::Unrepresentable`] when a count or the
    /// latency sum does not fit the column's signed 64 bits: never a clamped, wrong number.
    pub(super) fn new(
        customer_id: String,
        day: NaiveDate,
        stats: &DayStats,
        version: i64,
    ) -> Result<Self, StorageError> {
        let exact = |value: u128, what: &str| {
            i64::try_from(value).map_err(|_| StorageError::Unrepresentable {
                customer_id: customer_id.clone(),
                day,
                reason: format!("{what} {value} exceeds 2^63 - 1"),
            })
        };
        Ok(Self {
            successful: exact(stats.successful.into(), "successful requests")?,
            failed: exact(stats.failed.into(), "failed requests")?,
            latency_sum_us: exact(stats.latency_sum_us, "latency sum (µs)")?,
            // Both are single latencies, at most a day (`record::MAX_DURATION_US`); an empty
            // day's minimum (u64::MAX) is stored as i64::MAX, as it always was.
            latency_min_us: to_i64(stats.latency_min_us),
            latency_max_us: to_i64(stats.latency_max_us),
            latencies: stats.latencies.encode(),
            version,
            customer_id,
            day,
        })
    }

    pub(super) fn into_stats(self) -> Result<DayStats, StorageError> {
        let latencies =
            Latencies::decode(&self.latencies).map_err(|e| StorageError::CorruptRow {
                customer_id: self.customer_id.clone(),
                day: self.day,
                reason: e.to_string(),
            })?;
        Ok(DayStats {
            successful: to_u64(self.successful),
            failed: to_u64(self.failed),
            latency_sum_us: u128::from(to_u64(self.latency_sum_us)),
            latency_min_us: if self.latency_min_us == i64::MAX {
                u64::MAX
            } else {
                to_u64(self.latency_min_us)
            },
            latency_max_us: to_u64(self.latency_max_us),
            latencies,
        })
    }
}

/// What errors name as the customer of a fleet row (every customer's rows of a day merged).
const FLEET: &str = "(every customer)";

/// One row of `fleet_days`: every customer's row of a day merged, with the version of the
/// commit that last wrote the day.
#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = fleet_days)]
pub(super) struct FleetDayRow {
    pub day: NaiveDate,
    pub successful: i64,
    pub failed: i64,
    pub latency_sum_us: i64,
    pub latency_min_us: i64,
    pub latency_max_us: i64,
    pub latencies: Vec<u8>,
    pub version: i64,
}

impl FleetDayRow {
    /// The row holding `stats`, stored as a daily row is (see [`DailyStatsRow::new`]).
    pub(super) fn new(
        day: NaiveDate,
        stats: &DayStats,
        version: i64,
    ) -> Result<Self, StorageError> {
        let row = DailyStatsRow::new(FLEET.to_string(), day, stats, version)?;
        Ok(Self {
            day: row.day,
            successful: row.successful,
            failed: row.failed,
            latency_sum_us: row.latency_sum_us,
            latency_min_us: row.latency_min_us,
            latency_max_us: row.latency_max_us,
            latencies: row.latencies,
            version: row.version,
        })
    }

    /// The stats the row holds, read as a daily row is (see [`DailyStatsRow::into_stats`]).
    pub(super) fn into_stats(self) -> Result<DayStats, StorageError> {
        DailyStatsRow {
            customer_id: FLEET.to_string(),
            day: self.day,
            successful: self.successful,
            failed: self.failed,
            latency_sum_us: self.latency_sum_us,
            latency_min_us: self.latency_min_us,
            latency_max_us: self.latency_max_us,
            latencies: self.latencies,
            version: self.version,
        }
        .into_stats()
    }
}

/// How far one source has been committed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceOffset {
    /// The source's key: its device and inode (`inode:DEV:INO`), or its path in rows of older
    /// versions.
    pub source: String,
    /// Fingerprint of the file's first bytes, to notice rotation and truncation.
    pub fingerprint: Vec<u8>,
    /// Bytes committed.
    pub byte_offset: u64,
    /// Lines (including blank ones) committed, for line numbers in reject reports.
    pub line_count: u64,
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = source_offsets)]
pub(super) struct SourceOffsetRow {
    pub source: String,
    pub fingerprint: Vec<u8>,
    pub byte_offset: i64,
    pub line_count: i64,
}

impl From<&SourceOffset> for SourceOffsetRow {
    fn from(s: &SourceOffset) -> Self {
        Self {
            source: s.source.clone(),
            fingerprint: s.fingerprint.clone(),
            byte_offset: to_i64(s.byte_offset),
            line_count: to_i64(s.line_count),
        }
    }
}

impl From<SourceOffsetRow> for SourceOffset {
    fn from(r: SourceOffsetRow) -> Self {
        Self {
            source: r.source,
            fingerprint: r.fingerprint,
            byte_offset: to_u64(r.byte_offset),
            line_count: to_u64(r.line_count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip() {
        for day in [-1, 0, 1, 20_006, 2_932_896] {
            assert_eq!(day_from_date(date_from_day(day)), day);
        }
        assert_eq!(
            date_from_day(20_006),
            NaiveDate::from_ymd_opt(2024, 10, 10).unwrap()
        );
    }
}
