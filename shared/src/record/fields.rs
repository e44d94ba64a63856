//! A line's fields, each from its bytes: the date and time (with the proleptic Gregorian day
//! arithmetic they need), the status and the duration.

/// `YYYY-MM-DD HH:MM:SS` to (days since 1970-01-01, seconds since midnight): what
/// [`parse_date`] and [`parse_time`] give, with one test for all fourteen digits.
#[inline]
pub(super) fn parse_timestamp(s: &[u8]) -> Option<(i32, u32)> {
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

pub(super) fn parse_status(s: &[u8]) -> Option<u16> {
    if s.len() != 3 {
        return None;
    }
    let value = digit(s[0])? * 100 + two_digits(&s[1..3])?;
    (100..=599).contains(&value).then_some(value as u16)
}

/// The longest duration accepted: one day, in microseconds. Longer ones are rejected
/// ([`RejectReason::DurationTooLong`](super::RejectReason::DurationTooLong)): no request of an
/// API lasts a day, and the bound keeps every customer-day's exact latency sum far inside what
/// the database stores (2^63 µs: more than 100 million requests of a day each).
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
pub(super) fn parse_any_duration_us(s: &[u8]) -> Option<u64> {
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
