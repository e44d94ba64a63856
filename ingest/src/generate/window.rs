//! [`TimeWindow`]: the UTC seconds timestamps are drawn from, built from an end instant, a day or
//! a command-line end, and the [`WindowError`] when one is refused.

use logstats_shared::record::{parse_date, parse_time, SECONDS_PER_DAY};

use super::WINDOW_SECONDS;

/// Seconds since the Unix epoch of 9999-12-31T23:59:59, the last instant a 4-digit year can show.
const LAST_FORMATTABLE_SECOND: i64 = 253_402_300_799;

/// Why an end time or window was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Not `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS` with a real date and time.
    #[error("invalid end {0:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC)")]
    InvalidEnd(String),
    /// The window would start before 1970-01-01 or end after 9999-12-31.
    #[error("window {start}..={end} (Unix seconds) is outside 1970-01-01..9999-12-31")]
    OutOfRange {
        /// First second of the window.
        start: i64,
        /// Last second of the window.
        end: i64,
    },
}

/// An inclusive range of UTC seconds since the Unix epoch that timestamps are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub(super) start: i64,
    pub(super) end: i64,
}

impl TimeWindow {
    /// The window `start..=end` in Unix seconds; both within 1970-01-01..9999-12-31.
    pub fn new(start: i64, end: i64) -> Result<Self, WindowError> {
        if start < 0 || end > LAST_FORMATTABLE_SECOND || start > end {
            return Err(WindowError::OutOfRange { start, end });
        }
        Ok(TimeWindow { start, end })
    }

    /// The 30 days before `end` (Unix seconds), both ends included, like the reference generator.
    pub fn ending_at(end: i64) -> Result<Self, WindowError> {
        TimeWindow::new(end - WINDOW_SECONDS, end)
    }

    /// Whole UTC days: 00:00:00 thirty days before `day` through 23:59:59 on `day` itself
    /// (`day` in days since 1970-01-01), so that `2024-11-09` covers 2024-10-10..=2024-11-09.
    pub fn through_day(day: i32) -> Result<Self, WindowError> {
        let day_start = i64::from(day) * SECONDS_PER_DAY;
        TimeWindow::new(day_start - WINDOW_SECONDS, day_start + SECONDS_PER_DAY - 1)
    }

    /// The 30 days before the current wall-clock time.
    pub fn ending_now() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        // The clock is after 1970 + 30 days and before year 10000 on any machine that runs this.
        TimeWindow::ending_at(now).unwrap_or(TimeWindow {
            start: 0,
            end: WINDOW_SECONDS,
        })
    }

    /// Parses an end given on the command line: `YYYY-MM-DD` means [`TimeWindow::through_day`],
    /// `YYYY-MM-DDTHH:MM:SS` (a space instead of `T` and a trailing `Z` are accepted) means
    /// [`TimeWindow::ending_at`] that instant. Always UTC.
    pub fn parse_end(text: &str) -> Result<Self, WindowError> {
        let invalid = || WindowError::InvalidEnd(text.to_owned());
        let bytes = text.trim().as_bytes();
        let bytes = bytes.strip_suffix(b"Z").unwrap_or(bytes);
        match bytes.len() {
            10 => TimeWindow::through_day(parse_date(bytes).ok_or_else(invalid)?),
            19 if matches!(bytes[10], b'T' | b' ') => {
                let day = parse_date(&bytes[..10]).ok_or_else(invalid)?;
                let second = parse_time(&bytes[11..]).ok_or_else(invalid)?;
                TimeWindow::ending_at(i64::from(day) * SECONDS_PER_DAY + i64::from(second))
            }
            _ => Err(invalid()),
        }
    }

    /// The same window with its start moved so that it spans `days` days instead of 30 (the end
    /// stays): `--days 365 --end 2024-11-09` covers 2023-11-10..=2024-11-09.
    pub fn spanning_days(self, days: u32) -> Result<Self, WindowError> {
        let shift = (i64::from(days) - WINDOW_SECONDS / SECONDS_PER_DAY) * SECONDS_PER_DAY;
        TimeWindow::new(self.start - shift, self.end)
    }

    /// First second of the window, Unix seconds.
    pub fn start(&self) -> i64 {
        self.start
    }

    /// Last second of the window (included), Unix seconds.
    pub fn end(&self) -> i64 {
        self.end
    }
}
