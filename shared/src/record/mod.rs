//! Parsing one request-log line into a `Record`, or the reason it is rejected.
//!
//! The parser works on bytes, allocates nothing and uses no regex: the date and time sit at fixed
//! positions, the other fields are found with `memchr`.

use std::fmt;

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
    /// Customer id is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    InvalidCustomer,
    /// Status is not an integer 100-599.
    InvalidStatus,
    /// Duration is not a finite, non-negative decimal number of seconds.
    InvalidDuration,
    /// Duration is a number of seconds above [`MAX_DURATION_US`] (one day).
    DurationTooLong,
    /// Older than the watermark minus the allowed lateness.
    Late,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            RejectReason::TooLong => "line longer than 4096 bytes",
            RejectReason::InvalidUtf8 => "invalid UTF-8",
            RejectReason::FieldCount => "expected 6 fields separated by single spaces",
            RejectReason::InvalidDate => "invalid date (expected a real YYYY-MM-DD)",
            RejectReason::InvalidTime => "invalid time (expected a real HH:MM:SS)",
            RejectReason::InvalidCustomer => "invalid customer id (1-64 of A-Z a-z 0-9 . _ -)",
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

/// Whether `id` is a well-formed customer id: 1-64 bytes of ASCII letters, digits, `.`, `_`, `-`.
pub fn is_valid_customer_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CUSTOMER_ID_BYTES
        && id.iter().all(|&b| CUSTOMER_BYTE[usize::from(b)])
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
/// Whatever this accepts, `parse_checked` accepts as the same record (tested below).
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

/// `YYYY-MM-DD HH:MM:SS` to (days since 1970-01-01, seconds since midnight): what
/// [`parse_date`] and [`parse_time`] give, with one test for all fourteen digits.
#[inline]
fn parse_timestamp(s: &[u8]) -> Option<(i32, u32)> {
    let s: &[u8; 19] = s.try_into().ok()?;
    let d = |i: usize| u32::from(s[i].wrapping_sub(b'0'));
    let mut bad = (s[4] != b'-') | (s[7] != b'-') | (s[10] != b' ');
    bad |= (s[13] != b':') | (s[16] != b':');
    for i in [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18] {
        bad |= d(i) > 9;
    }
    if bad {
        return None;
    }
    let year = d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3);
    let month = d(5) * 10 + d(6);
    let day = d(8) * 10 + d(9);
    let (hour, minute, second) = (d(11) * 10 + d(12), d(14) * 10 + d(15), d(17) * 10 + d(18));
    if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour >= 24 || minute >= 60 || second >= 60 {
        return None;
    }
    Some((
        days_before_year(year) + days_before_month(year, month) + day as i32 - 1,
        hour * 3600 + minute * 60 + second,
    ))
}

fn digit(b: u8) -> Option<u32> {
    b.is_ascii_digit().then(|| u32::from(b - b'0'))
}

fn two_digits(s: &[u8]) -> Option<u32> {
    Some(digit(s[0])? * 10 + digit(s[1])?)
}

/// `YYYY-MM-DD` to days since 1970-01-01, or `None` when it is not a real date.
pub fn parse_date(s: &[u8]) -> Option<i32> {
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let year = two_digits(&s[0..2])? * 100 + two_digits(&s[2..4])?;
    let month = two_digits(&s[5..7])?;
    let day = two_digits(&s[8..10])?;
    if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_before_year(year) + days_before_month(year, month) + day as i32 - 1)
}

/// Days from 1970-01-01 to January 1st of `year` (1 or later), proleptic Gregorian. With
/// [`days_before_month`] this is what [`days_from_civil`] gives for the years a log line can
/// hold, without its era arithmetic: `parse_line` was ~5 % slower through `days_from_civil`.
/// Both are checked against chrono in the tests.
fn days_before_year(year: u32) -> i32 {
    // Leap days in years 1..year, less those in 1..1970 (477).
    let before = year - 1;
    let leap_days = (before / 4 - before / 100 + before / 400) as i32 - 477;
    365 * (year as i32 - 1970) + leap_days
}

/// Days from January 1st to the first of `month` (1-12) in `year`.
fn days_before_month(year: u32, month: u32) -> i32 {
    const BEFORE: [u16; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let leap = month > 2 && is_leap_year(year);
    i32::from(BEFORE[month as usize - 1]) + i32::from(leap)
}

fn is_leap_year(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `HH:MM:SS` to seconds since midnight, or `None` when it is not a real time of day.
pub fn parse_time(s: &[u8]) -> Option<u32> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (
        two_digits(&s[0..2])?,
        two_digits(&s[3..5])?,
        two_digits(&s[6..8])?,
    );
    (h < 24 && m < 60 && sec < 60).then_some(h * 3600 + m * 60 + sec)
}

fn parse_status(s: &[u8]) -> Option<u16> {
    if s.len() != 3 {
        return None;
    }
    let value = digit(s[0])? * 100 + two_digits(&s[1..3])?;
    (100..=599).contains(&value).then_some(value as u16)
}

/// The longest duration accepted: one day, in microseconds. Longer ones are rejected
/// ([`RejectReason::DurationTooLong`]): no request of an API lasts a day, and the bound keeps
/// every customer-day's exact latency sum far inside what the database stores (2^63 µs: more
/// than 100 million requests of a day each).
pub const MAX_DURATION_US: u64 = 86_400 * 1_000_000;

/// Most digits read before the decimal point (just under 32 years of seconds), so the
/// arithmetic below cannot overflow.
const MAX_DURATION_INTEGER_DIGITS: usize = 9;

/// A decimal number of seconds (`12`, `0.847`, `.5`, `3.`) to microseconds, rounded half up,
/// at most [`MAX_DURATION_US`]. Signs, exponents, `inf` and `nan` are not accepted.
#[inline]
pub fn parse_duration_us(s: &[u8]) -> Option<u64> {
    parse_any_duration_us(s).filter(|&us| us <= MAX_DURATION_US)
}

/// [`parse_duration_us`] without the one-day bound (still under 10^9 s).
#[inline]
fn parse_any_duration_us(s: &[u8]) -> Option<u64> {
    // The common millisecond form `S.mmm`.
    if let [a, b'.', b, c, d] = *s {
        let digits = [a, b, c, d].map(|x| u64::from(x.wrapping_sub(b'0')));
        if digits.iter().all(|&x| x <= 9) {
            let [a, b, c, d] = digits;
            return Some(a * 1_000_000 + b * 100_000 + c * 10_000 + d * 1_000);
        }
        return None;
    }
    let mut seconds: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i] != b'.' {
        if i == MAX_DURATION_INTEGER_DIGITS {
            return None;
        }
        seconds = seconds * 10 + u64::from(digit(s[i])?);
        i += 1;
    }
    let int_digits = i;
    let mut micros: u64 = 0;
    let mut frac_digits = 0;
    let mut round_up = false;
    if i < s.len() {
        i += 1; // the '.'
        while i < s.len() {
            let d = u64::from(digit(s[i])?);
            match frac_digits {
                0..=5 => micros = micros * 10 + d,
                6 => round_up = d >= 5,
                _ => {}
            }
            frac_digits += 1;
            i += 1;
        }
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    for _ in frac_digits.min(6)..6 {
        micros *= 10;
    }
    Some(seconds * 1_000_000 + micros + u64::from(round_up))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Record<'_> {
        parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?} rejected: {e}"))
    }

    fn err(line: &[u8]) -> RejectReason {
        match parse_line(line) {
            Ok(r) => panic!("{:?} accepted as {r:?}", String::from_utf8_lossy(line)),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_the_reference_line() {
        let r = ok("2024-10-10 12:50:18 cust_14 /api/v1/resource3 401 0.847");
        assert_eq!(r.customer, b"cust_14");
        assert_eq!(r.day, days_from_civil(2024, 10, 10));
        assert_eq!(r.day, 20_006);
        assert_eq!(r.second_of_day, 12 * 3600 + 50 * 60 + 18);
        assert_eq!(r.status, 401);
        assert!(!r.is_success());
        assert_eq!(r.latency_us, 847_000);
        assert_eq!(r.event_time(), 1_728_564_618);
    }

    #[test]
    fn tolerates_trailing_carriage_return() {
        let r = ok("2024-10-10 00:00:00 c /p 200 1.5\r");
        assert_eq!(r.latency_us, 1_500_000);
        assert!(r.is_success());
    }

    #[test]
    fn accepts_edge_values() {
        assert_eq!(ok("2024-02-29 23:59:59 c /p 100 0").latency_us, 0);
        assert_eq!(ok("2000-02-29 00:00:00 c /p 599 .5").latency_us, 500_000);
        assert_eq!(ok("2024-01-01 00:00:00 c /p 399 3.").latency_us, 3_000_000);
        assert_eq!(ok("2024-01-01 00:00:00 c /p 200 0.0000015").latency_us, 2);
        assert_eq!(ok("2024-01-01 00:00:00 c /p 200 0.0000014").latency_us, 1);
        assert_eq!(ok("1970-01-01 00:00:00 c /p 200 1").day, 0);
        assert_eq!(ok("1969-12-31 00:00:00 c /p 200 1").day, -1);
    }

    #[test]
    fn rejects_unreal_dates_and_times() {
        assert_eq!(
            err(b"2024-10-32 12:00:00 c /p 200 1"),
            RejectReason::InvalidDate
        );
        assert_eq!(
            err(b"2023-02-29 12:00:00 c /p 200 1"),
            RejectReason::InvalidDate
        );
        assert_eq!(
            err(b"1900-02-29 12:00:00 c /p 200 1"),
            RejectReason::InvalidDate
        );
        assert_eq!(
            err(b"2024-13-01 12:00:00 c /p 200 1"),
            RejectReason::InvalidDate
        );
        assert_eq!(
            err(b"2024-00-01 12:00:00 c /p 200 1"),
            RejectReason::InvalidDate
        );
        assert_eq!(
            err(b"2024/10/01 12:00:00 c /p 200 1"),
            RejectReason::InvalidDate
        );
        assert_eq!(
            err(b"2024-10-10 25:00:00 c /p 200 1"),
            RejectReason::InvalidTime
        );
        assert_eq!(
            err(b"2024-10-10 12:60:00 c /p 200 1"),
            RejectReason::InvalidTime
        );
        assert_eq!(
            err(b"2024-10-10 12:00:60 c /p 200 1"),
            RejectReason::InvalidTime
        );
        assert_eq!(
            err(b"2024-10-10 1:00:00 c /p 200 1 x"),
            RejectReason::FieldCount
        );
    }

    #[test]
    fn rejects_bad_fields() {
        assert_eq!(
            err(b"2024-10-10 12:00:00 c /p 200"),
            RejectReason::FieldCount
        );
        assert_eq!(
            err(b"2024-10-10 12:00:00 c /p 200 1 extra"),
            RejectReason::FieldCount
        );
        assert_eq!(
            err(b"2024-10-10 12:00:00  c /p 200 1"),
            RejectReason::FieldCount
        );
        assert_eq!(
            err(b"2024-10-10 12:00:00 c /p 200 1 "),
            RejectReason::FieldCount
        );
        assert_eq!(
            err(b"2024-10-10 12:00:00 c\t/p 200 1"),
            RejectReason::FieldCount
        );
        assert_eq!(err(b"garbage"), RejectReason::FieldCount);
        assert_eq!(
            err(b"2024-10-10 12:00:00 c!x /p 200 1"),
            RejectReason::InvalidCustomer
        );
        let long_customer = format!("2024-10-10 12:00:00 {} /p 200 1", "c".repeat(65));
        assert_eq!(err(long_customer.as_bytes()), RejectReason::InvalidCustomer);
        assert_eq!(
            err(b"2024-10-10 12:00:00 c /p 600 1"),
            RejectReason::InvalidStatus
        );
        assert_eq!(
            err(b"2024-10-10 12:00:00 c /p 099 1"),
            RejectReason::InvalidStatus
        );
        assert_eq!(
            err(b"2024-10-10 12:00:00 c /p 2000 1"),
            RejectReason::InvalidStatus
        );
        assert_eq!(
            err(b"2024-10-10 12:00:00 c /p abc 1"),
            RejectReason::InvalidStatus
        );
        for bad in [
            "-1",
            "+1",
            "1e3",
            "inf",
            "nan",
            "NaN",
            "1.2.3",
            ".",
            "0x10",
            "1,5",
            "1234567890",
        ] {
            let line = format!("2024-10-10 12:00:00 c /p 200 {bad}");
            assert_eq!(err(line.as_bytes()), RejectReason::InvalidDuration, "{bad}");
        }
    }

    #[test]
    fn rejects_invalid_utf8_and_long_lines() {
        assert_eq!(
            err(b"2024-10-10 12:00:00 c /p\xff 200 1"),
            RejectReason::InvalidUtf8
        );
        assert_eq!(err(b"\xff\xfe"), RejectReason::InvalidUtf8);
        let long = format!(
            "2024-10-10 12:00:00 c /{} 200 1",
            "p".repeat(MAX_LINE_BYTES)
        );
        assert_eq!(err(long.as_bytes()), RejectReason::TooLong);
        // Non-ASCII but valid UTF-8 paths are fine.
        assert_eq!(ok("2024-10-10 12:00:00 c /é 200 1").status, 200);
    }

    #[test]
    fn blank_lines() {
        assert!(is_blank(b""));
        assert!(is_blank(b" \t\r"));
        assert!(!is_blank(b" x"));
    }

    /// The fast path never accepts a line the checked parser rejects, nor reads it differently;
    /// and it does take the common lines.
    #[test]
    fn fast_path_agrees_with_the_checked_parser() {
        let mut rng = crate::xorshift(0x2545_F491_4F6C_DD1D);
        let mut next = move |n: u64| rng() % n;
        const NOISE: &[u8] = b" .\r\t0159:-_/xZ\xff\xc3\xa9";
        let bases: &[&[u8]] = &[
            b"2024-10-10 12:50:18 cust_14 /api/v1/resource3 401 0.847",
            b"2024-02-29 23:59:59 c /p 100 0",
            b"2000-02-29 00:00:00 a.b-c_D /x/y 599 .5",
            b"1999-12-31 00:00:00 c /p 399 3.",
            b"2024-01-01 00:00:00 c /p 200 0.0000015",
            b"2024-10-10 00:00:00 c /p 200 86399.9999995",
        ];
        for base in bases {
            let record = parse_well_formed(base).expect("common lines take the fast path");
            assert_eq!(parse_checked(base), Ok(record));
        }
        let mut accepted_mutants = 0;
        for _ in 0..200_000 {
            let mut line = bases[next(bases.len() as u64) as usize].to_vec();
            for _ in 0..=next(3) {
                let at = next(line.len() as u64 + 1) as usize;
                let byte = NOISE[next(NOISE.len() as u64) as usize];
                match next(3) {
                    0 if at < line.len() => line[at] = byte,
                    1 if at < line.len() => {
                        line.remove(at);
                    }
                    _ => line.insert(at, byte),
                }
            }
            if let Some(record) = parse_well_formed(&line) {
                accepted_mutants += 1;
                assert_eq!(
                    parse_checked(&line),
                    Ok(record),
                    "{:?}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
        assert!(
            accepted_mutants > 1000,
            "only {accepted_mutants} mutants parsed"
        );
    }

    #[test]
    fn long_durations_are_rejected_not_overflowed() {
        for bad in ["99999999999999999999999", "0000000000.5", "1234567890."] {
            assert_eq!(parse_duration_us(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(
            parse_duration_us(b"000000001.5"),
            Some(1_500_000),
            "nine integer digits are fine"
        );
    }

    #[test]
    fn durations_past_a_day_are_rejected_with_their_reason() {
        assert_eq!(parse_duration_us(b"86400"), Some(MAX_DURATION_US));
        assert_eq!(parse_duration_us(b"86400.0000004"), Some(MAX_DURATION_US));
        assert_eq!(parse_duration_us(b"86400.0000005"), None);
        assert_eq!(parse_duration_us(b"86400.000001"), None);
        for duration in ["999999999.999", "86401", "100000.5"] {
            let line = format!("2024-10-10 12:50:18 cust_14 /api/v1/resource3 401 {duration}");
            assert_eq!(
                parse_line(line.as_bytes()).map(|r| r.latency_us),
                Err(RejectReason::DurationTooLong),
                "{duration}"
            );
        }
        let line = b"2024-10-10 12:50:18 cust_14 /api/v1/resource3 401 86400.000";
        assert_eq!(parse_line(line).map(|r| r.latency_us), Ok(MAX_DURATION_US));
    }

    #[test]
    fn parse_timestamp_matches_date_and_time() {
        let mut rng = crate::xorshift(0x0123_4567_89AB_CDEF);
        let mut next = move |n: u64| rng() % n;
        for _ in 0..200_000 {
            let mut text = format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                next(10_000),
                next(14),
                next(33),
                next(26),
                next(62),
                next(62)
            )
            .into_bytes();
            if next(4) == 0 {
                text[next(19) as usize] = b"0 9:-/a\xff"[next(8) as usize];
            }
            let expect = parse_date(&text[..10]).zip(parse_time(&text[11..19]));
            let expect = expect.filter(|_| text[10] == b' ');
            assert_eq!(
                parse_timestamp(&text),
                expect,
                "{}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn millisecond_durations_take_the_short_path() {
        assert_eq!(parse_duration_us(b"0.847"), Some(847_000));
        assert_eq!(parse_duration_us(b"9.999"), Some(9_999_000));
        assert_eq!(parse_duration_us(b"1.0x0"), None);
        assert_eq!(parse_duration_us(b"-.500"), None);
        assert_eq!(parse_duration_us(b"1.2.3"), None);
        assert_eq!(parse_duration_us(b"10.50"), Some(10_500_000));
    }

    #[test]
    fn parse_date_matches_chrono() {
        use chrono::{Datelike, NaiveDate};
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        while date.year() < 2600 {
            let text = date.format("%Y-%m-%d").to_string();
            let expect = (date - epoch).num_days() as i32;
            assert_eq!(parse_date(text.as_bytes()), Some(expect), "{text}");
            date = date.succ_opt().unwrap();
        }
    }

    #[test]
    fn days_from_civil_matches_chrono() {
        use chrono::{Datelike, NaiveDate};
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut date = NaiveDate::from_ymd_opt(1600, 1, 1).unwrap();
        while date.year() < 2500 {
            let expect = (date - epoch).num_days() as i32;
            assert_eq!(
                days_from_civil(date.year(), date.month(), date.day()),
                expect
            );
            date = date.succ_opt().unwrap();
        }
    }
}
