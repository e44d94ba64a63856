//! Unit tests of the generator: the reference format, reproducibility per seed, chunking, windows
//! and their ends, coverage and uniformity of the drawn fields.
//! (`tests.rs`, as `share/tests.rs`: a module's unit tests in a file of their own.)

use super::*;
use logstats_shared::record::{days_from_civil, parse_line};
use std::collections::BTreeSet;

fn window_2024_11_09() -> TimeWindow {
    TimeWindow::parse_end("2024-11-09").expect("valid end")
}

fn generate(lines: u64, seed: u64, window: TimeWindow) -> Vec<u8> {
    let mut out = Vec::new();
    let config = GeneratorConfig {
        lines,
        seed,
        window,
        customers: CUSTOMERS,
    };
    let bytes = write_lines(&config, &mut out).expect("writing to a Vec");
    assert_eq!(bytes, out.len() as u64);
    out
}

/// `--customers` past 99: every customer number is written whole (a two-digit table wrote
/// garbage for three digits and more), and every line is accepted.
#[test]
fn many_customers_are_written_whole() {
    let mut out = Vec::new();
    let config = GeneratorConfig {
        lines: 200_000,
        seed: 7,
        window: window_2024_11_09(),
        customers: 10_000,
    };
    write_lines(&config, &mut out).expect("writing to a Vec");
    let mut seen = std::collections::BTreeSet::new();
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let record = parse_line(line).unwrap_or_else(|r| panic!("{line:?} rejected: {r}"));
        let n: u32 = record
            .customer
            .strip_prefix(b"cust_")
            .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
            .expect("cust_N");
        assert!((1..=10_000).contains(&n), "{n}");
        seen.insert(n);
    }
    assert_eq!(
        seen.len(),
        10_000,
        "every customer appears in 200,000 lines"
    );
    let mut big = Vec::new();
    LineGenerator::new(1, window_2024_11_09())
        .customers(u32::MAX)
        .push_line(&mut big);
    assert!(parse_line(&big[..big.len() - 1]).is_ok(), "{big:?}");
}

#[test]
fn every_line_has_the_reference_format_and_is_accepted() {
    let window = window_2024_11_09();
    let out = generate(100_000, 7, window);
    assert_eq!(out.last(), Some(&b'\n'));
    let lines: Vec<&[u8]> = out[..out.len() - 1].split(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 100_000);
    for line in lines {
        let text = std::str::from_utf8(line).expect("ASCII");
        let record = parse_line(line).unwrap_or_else(|r| panic!("{text:?} rejected: {r}"));
        let fields: Vec<&str> = text.split(' ').collect();
        assert_eq!(fields.len(), 6, "{text:?}");
        assert_eq!(fields[0].len(), 10, "{text:?}");
        assert_eq!(fields[1].len(), 8, "{text:?}");
        let n: u32 = fields[2]
            .strip_prefix("cust_")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("customer in {text:?}"));
        assert!((1..=CUSTOMERS).contains(&n) && !fields[2].starts_with("cust_0"));
        let k: u32 = fields[3]
            .strip_prefix("/api/v1/resource")
            .and_then(|k| k.parse().ok())
            .unwrap_or_else(|| panic!("path in {text:?}"));
        assert!((1..=RESOURCES).contains(&k));
        assert!(STATUSES.contains(&record.status), "{text:?}");
        let duration = fields[5].as_bytes();
        assert!(duration.len() == 5 && duration[1] == b'.', "{text:?}");
        assert!(
            (100_000..=2_000_000).contains(&record.latency_us),
            "{text:?}"
        );
        assert_eq!(record.latency_us % 1_000, 0);
        let t = record.event_time();
        assert!(window.start() <= t && t <= window.end(), "{text:?}");
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let window = window_2024_11_09();
    assert_eq!(generate(5_000, 42, window), generate(5_000, 42, window));
    assert_ne!(generate(5_000, 42, window), generate(5_000, 43, window));
}

#[test]
fn output_does_not_depend_on_chunking() {
    let window = window_2024_11_09();
    let whole = generate(50_000, 9, window);
    let mut generator = LineGenerator::new(9, window);
    let mut buf = Vec::new();
    let mut parts = Vec::new();
    for _ in 0..10 {
        generator
            .write_batch(5_000, &mut buf, &mut parts)
            .expect("writing to a Vec");
    }
    assert_eq!(whole, parts);
    let mut again = LineGenerator::new(9, window);
    let first = again.next_line();
    assert_eq!(first.as_bytes(), &whole[..first.len()]);
}

#[test]
fn a_window_can_span_other_than_30_days() {
    let window = TimeWindow::parse_end("2024-11-09").expect("end");
    let year = window.spanning_days(365).expect("in range");
    assert_eq!(year.end(), window.end());
    assert_eq!(
        year.start(),
        i64::from(days_from_civil(2023, 11, 10)) * SECONDS_PER_DAY
    );
    assert_eq!(window.spanning_days(30), Ok(window));
    let one = window.spanning_days(0).expect("in range");
    assert_eq!(
        one.start(),
        i64::from(days_from_civil(2024, 11, 9)) * SECONDS_PER_DAY
    );
    let early = TimeWindow::parse_end("1971-01-05").expect("end");
    assert!(early.spanning_days(365).is_ok());
    assert!(early.spanning_days(400).is_err(), "before 1970");
}

#[test]
fn all_customers_paths_statuses_and_days_appear() {
    let window = window_2024_11_09();
    let out = generate(100_000, 42, window);
    let (mut customers, mut paths, mut statuses, mut days) = (
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
    );
    let (mut shortest, mut longest) = (u64::MAX, 0);
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let record = parse_line(line).expect("accepted");
        customers.insert(record.customer.to_owned());
        paths.insert(line.split(|&b| b == b' ').nth(3).map(<[u8]>::to_vec));
        statuses.insert(record.status);
        days.insert(record.day);
        shortest = shortest.min(record.latency_us);
        longest = longest.max(record.latency_us);
    }
    assert_eq!(customers.len(), CUSTOMERS as usize);
    assert_eq!(paths.len(), RESOURCES as usize);
    assert_eq!(statuses, STATUSES.into_iter().collect());
    let first = days_from_civil(2024, 10, 10);
    let last = days_from_civil(2024, 11, 9);
    assert_eq!(days, (first..=last).collect());
    assert!(shortest < 110_000 && longest > 1_990_000);
}

#[test]
fn statuses_are_roughly_uniform() {
    let out = generate(70_000, 1, window_2024_11_09());
    let mut counts = [0u32; STATUSES.len()];
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let status = parse_line(line).expect("accepted").status;
        let index = STATUSES.iter().position(|&s| s == status).expect("known");
        counts[index] += 1;
    }
    // Expect 10,000 each; 5 standard deviations is about 450.
    assert!(
        counts.iter().all(|&c| (9_500..=10_500).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn end_date_covers_thirty_days_before_it_and_the_day_itself() {
    let window = window_2024_11_09();
    let start = i64::from(days_from_civil(2024, 10, 10)) * SECONDS_PER_DAY;
    let end = i64::from(days_from_civil(2024, 11, 10)) * SECONDS_PER_DAY - 1;
    assert_eq!((window.start(), window.end()), (start, end));
}

#[test]
fn end_instant_gives_the_thirty_days_before_it() {
    let end = i64::from(days_from_civil(2024, 11, 9)) * SECONDS_PER_DAY + 12 * 3600 + 30;
    for text in [
        "2024-11-09T12:00:30",
        "2024-11-09 12:00:30",
        "2024-11-09T12:00:30Z",
    ] {
        let window = TimeWindow::parse_end(text).expect("valid end");
        assert_eq!((window.start(), window.end()), (end - WINDOW_SECONDS, end));
    }
}

#[test]
fn bad_ends_are_refused() {
    for text in [
        "",
        "2024-13-01",
        "2024-11-31",
        "2024-11-09T24:00:00",
        "2024-11-09X12:00:00",
        "09/11/2024",
        "1970-01-15",
    ] {
        assert!(TimeWindow::parse_end(text).is_err(), "{text:?}");
    }
}

#[test]
fn a_one_second_window_gives_that_second() {
    let t = i64::from(days_from_civil(2000, 2, 29)) * SECONDS_PER_DAY + 86_399;
    let mut generator = LineGenerator::new(3, TimeWindow::new(t, t).expect("valid"));
    for line in generator.by_ref().take(100) {
        assert!(line.starts_with("2000-02-29 23:59:59 cust_"), "{line}");
    }
}

#[test]
fn civil_from_days_inverts_days_from_civil() {
    for (y, m, d) in [(1970, 1, 1), (2000, 2, 29), (2024, 12, 31), (9999, 12, 31)] {
        let days = days_from_civil(y, m, d);
        assert_eq!(civil_from_days(i64::from(days)), (i64::from(y), m, d));
    }
    for days in 0..200_000 {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(i64::from(days_from_civil(y as i32, m, d)), days);
    }
}
