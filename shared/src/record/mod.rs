//! Parsing one request-log line into a `Record`, or the reason it is rejected.
//!
//! The parser works on bytes, allocates nothing and uses no regex: the date and time sit at fixed
//! positions; the fast path finds the customer id with a byte table and the status and duration
//! from the line's end, the checked path splits the rest at spaces.
//!
//! This file holds [`Record`], [`RejectReason`] and the line as a whole (its shape, the fast and
//! the checked path); `fields.rs` parses each field, `json.rs` reads JSON lines, `format.rs`
//! picks the parser of a line, `tests.rs` holds the unit tests.

use std::fmt;

mod fields;
mod format;
mod json;
#[cfg(test)]
mod tests;

pub use fields::{days_from_civil, parse_date, parse_duration_us, parse_time, MAX_DURATION_US};
use fields::{parse_any_duration_us, parse_status, parse_timestamp};
pub use format::{InputFormat, LineParser};
pub use json::{DurationUnit, FieldPathError, JsonField, JsonFields};

/// Lines longer than this many bytes (without the newline) are rejected as too long.
pub const MAX_LINE_BYTES: usize = 4096;

/// Longest customer id accepted, in bytes.
pub const MAX_CUSTOMER_ID_BYTES: usize = 64;

/// Seconds in one UTC day.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// One valid request, borrowing the customer id from the line it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Customer id, already checked by [`is_valid_customer_id`]: 1-64 ASCII bytes, so
    /// `std::str::from_utf8` never fails on it. Kept as bytes: the hot path interns it by bytes
    /// and converts only a customer it has not seen before.
    pub customer: &'a [u8],
    /// UTC day as days since 1970-01-01.
    pub day: i32,
    /// Seconds since midnight UTC.
    pub second_of_day: u32,
    /// HTTP status, 100-599.
    pub status: u16,
    /// Request duration in whole microseconds (rounded half up).
    pub latency_us: u64,
}

impl Record<'_> {
    /// Event time as seconds since the Unix epoch.
    pub fn event_time(&self) -> i64 {
        i64::from(self.day) * SECONDS_PER_DAY + i64::from(self.second_of_day)
    }

    /// Status 100-399 counts as a success, 400-599 as a failure.
    pub fn is_success(&self) -> bool {
        self.status < 400
    }
}

/// Why a line was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RejectReason {
    /// Longer than [`MAX_LINE_BYTES`].
    TooLong,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Not six non-empty fields separated by single spaces.
    FieldCount,
    /// Date is not a real `YYYY-MM-DD` calendar date.
    InvalidDate,
    /// Time is not a real `HH:MM:SS` time of day.
    InvalidTime,
    /// Customer id is empty, too long, has characters outside `[A-Za-z0-9._-]`, or is `.` or
    /// `..` (which every HTTP client rewrites out of a URL path).
    InvalidCustomer,
    /// Status is not an integer 100-599.
    InvalidStatus,
    /// Duration is not a finite, non-negative decimal number of seconds.
    InvalidDuration,
    /// Duration is a number of seconds above [`MAX_DURATION_US`] (one day).
    DurationTooLong,
    /// Older than the watermark minus the allowed lateness.
    Late,
    /// A JSON line that is not one well-formed JSON object.
    NotJsonObject,
    /// A JSON line without this field (or with `null`; for the path, not a non-empty string).
    MissingField(JsonField),
    /// A JSON timestamp that is neither RFC 3339 nor Unix seconds, or outside years 1-9999.
    InvalidTimestamp,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            RejectReason::MissingField(field) => {
                return write!(
                    f,
                    "missing JSON field: {field} (its name is set by --json-{})",
                    field.default_name().replace('_', "-")
                )
            }
            RejectReason::NotJsonObject => "not a JSON object (invalid JSON, or not an object)",
            RejectReason::InvalidTimestamp => {
                "invalid timestamp (expected RFC 3339 or Unix seconds, years 0001-9999)"
            }
            RejectReason::TooLong => "line longer than 4096 bytes",
            RejectReason::InvalidUtf8 => "invalid UTF-8",
            RejectReason::FieldCount => "expected 6 fields separated by single spaces",
            RejectReason::InvalidDate => "invalid date (expected a real YYYY-MM-DD)",
            RejectReason::InvalidTime => "invalid time (expected a real HH:MM:SS)",
            RejectReason::InvalidCustomer => {
                "invalid customer id (1-64 of A-Z a-z 0-9 . _ -, not . or ..)"
            }
            RejectReason::InvalidStatus => "invalid status (expected an integer 100-599)",
            RejectReason::InvalidDuration => {
                "invalid duration (expected a finite non-negative decimal number of seconds)"
            }
            RejectReason::DurationTooLong => "duration longer than one day (86400 s)",
            RejectReason::Late => "late: older than the watermark minus the allowed lateness",
        };
        f.write_str(text)
    }
}

/// The bytes a customer id may hold: ASCII letters, digits, `.`, `_`, `-`.
static CUSTOMER_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-';
        b += 1;
    }
    table
};

/// Whether `id` is a well-formed customer id: 1-64 bytes of ASCII letters, digits, `.`, `_`, `-`,
/// and not `.` or `..`. Such an id round-trips through a URL path segment unchanged: clients
/// resolve `.` and `..` segments away (`/customers/../stats` is sent as `/stats`).
pub fn is_valid_customer_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CUSTOMER_ID_BYTES
        && id.iter().all(|&b| CUSTOMER_BYTE[usize::from(b)])
        && !is_dot_segment(id)
}

/// `.` or `..`: a URL path segment clients remove.
#[inline]
fn is_dot_segment(id: &[u8]) -> bool {
    matches!(id, b"." | b"..")
}

/// Whether a line (without its newline) is blank: empty or only spaces, tabs and `\r`.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// Parses one line (without its trailing `\n`). A trailing `\r` is tolerated.
///
/// Blank lines must be filtered out with [`is_blank`] first; here they are rejected.
#[inline]
pub fn parse_line(line: &[u8]) -> Result<Record<'_>, RejectReason> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match parse_well_formed(line) {
        Some(record) => Ok(record),
        None => parse_checked(line),
    }
}

/// The fast path: one pass over a line in the common shape (ASCII path, three-digit status),
/// `None` for anything else, which [`parse_checked`] then accepts or rejects with its reason.
/// Whatever this accepts, `parse_checked` accepts as the same record (tested in `tests.rs`).
#[inline]
fn parse_well_formed(line: &[u8]) -> Option<Record<'_>> {
    // "YYYY-MM-DD HH:MM:SS c /p 200 1" is the shortest line: 30 bytes.
    if line.len() < 30 || line.len() > MAX_LINE_BYTES || line[19] != b' ' {
        return None;
    }
    let (day, second_of_day) = parse_timestamp(&line[0..19])?;
    let rest = &line[20..];
    let customer_len = rest.iter().position(|&b| !CUSTOMER_BYTE[usize::from(b)])?;
    if customer_len == 0 || customer_len > MAX_CUSTOMER_ID_BYTES || rest[customer_len] != b' ' {
        return None;
    }
    let customer = &rest[..customer_len];
    if is_dot_segment(customer) {
        return None;
    }
    let rest = &rest[customer_len + 1..];
    // From the end: the duration after the last space, then " NNN" before it.
    let duration_start = rest.len() - rest.iter().rev().position(|&b| b == b' ')?;
    if duration_start < 6 || rest[duration_start - 5] != b' ' {
        return None;
    }
    let path = &rest[..duration_start - 5];
    // Printable ASCII without spaces (others go the checked way); no early exit, so it is
    // vectorized.
    if !path
        .iter()
        .fold(true, |ok, &b| ok & (b > b' ') & (b < 0x7f))
    {
        return None;
    }
    let status = parse_status(&rest[duration_start - 4..duration_start - 1])?;
    let latency_us = parse_duration_us(&rest[duration_start..])?;
    Some(Record {
        customer,
        day,
        second_of_day,
        status,
        latency_us,
    })
}

/// Parses a line field by field, telling why it is rejected.
fn parse_checked(line: &[u8]) -> Result<Record<'_>, RejectReason> {
    if line.len() > MAX_LINE_BYTES {
        return Err(RejectReason::TooLong);
    }
    // "YYYY-MM-DD HH:MM:SS " is 20 bytes.
    if line.len() < 20 || line[10] != b' ' || line[19] != b' ' {
        return Err(field_or_utf8(line));
    }
    let day = parse_date(&line[0..10]).ok_or(RejectReason::InvalidDate)?;
    let second_of_day = parse_time(&line[11..19]).ok_or(RejectReason::InvalidTime)?;

    let rest = &line[20..];
    let mut fields = rest.split(|&b| b == b' ');
    let (Some(customer), Some(path), Some(status), Some(duration), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(field_or_utf8(line));
    };
    if customer.is_empty() || path.is_empty() || status.is_empty() || duration.is_empty() {
        return Err(RejectReason::FieldCount);
    }
    if !is_valid_customer_id(customer) {
        return Err(if std::str::from_utf8(customer).is_err() {
            RejectReason::InvalidUtf8
        } else {
            RejectReason::InvalidCustomer
        });
    }
    if !path.is_ascii() && std::str::from_utf8(path).is_err() {
        return Err(RejectReason::InvalidUtf8);
    }
    let status = parse_status(status).ok_or(RejectReason::InvalidStatus)?;
    let latency_us = parse_duration_us(duration).ok_or_else(|| {
        if parse_any_duration_us(duration).is_some() {
            RejectReason::DurationTooLong
        } else {
            RejectReason::InvalidDuration
        }
    })?;
    Ok(Record {
        customer,
        day,
        second_of_day,
        status,
        latency_us,
    })
}

/// A line with the wrong shape is reported as invalid UTF-8 when that is what it is.
fn field_or_utf8(line: &[u8]) -> RejectReason {
    if std::str::from_utf8(line).is_err() {
        RejectReason::InvalidUtf8
    } else {
        RejectReason::FieldCount
    }
}
