//! Unit tests of the line parser: accepted and rejected lines with their reasons, the fast path
//! against the checked one, and the date, time and duration parsers against chrono and each other.

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
    // Ids a URL path cannot carry: clients resolve `.` and `..` segments away.
    for id in [".", ".."] {
        let line = format!("2024-10-10 12:00:00 {id} /api/v1/resource3 200 0.001");
        assert_eq!(err(line.as_bytes()), RejectReason::InvalidCustomer, "{id}");
    }
    for id in ["...", ".a", "a.", "._", "-"] {
        let line = format!("2024-10-10 12:00:00 {id} /api/v1/resource3 200 0.001");
        assert!(parse_line(line.as_bytes()).is_ok(), "{id}");
    }
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
