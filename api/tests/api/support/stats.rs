//! Requests generated here, stored through `Store::commit_epoch`, and the oracle every stats
//! answer is compared with: counts, uptime, average and numpy's linear percentiles computed from
//! the raw values (`stats.rs`, `freshness.rs`, `errors.rs`, `health.rs`, `bounds.rs`,
//! `fleet.rs`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use logstats_shared::storage::day_from_date;
use logstats_shared::testing::{backends, numpy_percentile, Random, TestDatabase};
use logstats_shared::{DayAccumulator, EpochCommit, Store};
use serde_json::{json, Value};

use super::Api;

/// One request: customer, UTC day, success, latency in microseconds.
#[derive(Debug, Clone)]
pub struct Request {
    pub customer: String,
    pub day: NaiveDate,
    pub ok: bool,
    pub us: u64,
}

impl Request {
    pub fn new(customer: &str, day: NaiveDate, ok: bool, us: u64) -> Request {
        Request {
            customer: customer.to_string(),
            day,
            ok,
            us,
        }
    }
}

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("valid test date")
}

/// The requests the endpoint tests start from. cust_1 has days 10-10, 10-11, 10-13 and 10-20
/// (none on 10-12, where cust_2 has some); 10-11 holds five known values.
pub fn generated_requests() -> Vec<Request> {
    let mut random = Random(20_241_010);
    let mut requests = Vec::new();
    // Millisecond latencies, as in typical logs: many repeats.
    for _ in 0..1500 {
        let latency_us = (1 + random.below(1200)) * 1000;
        requests.push(Request::new(
            "cust_1",
            date("2024-10-10"),
            random.below(100) < 85,
            latency_us,
        ));
    }
    for (success, latency_ms) in [
        (true, 300),
        (false, 100),
        (true, 500),
        (true, 200),
        (false, 400),
    ] {
        requests.push(Request::new(
            "cust_1",
            date("2024-10-11"),
            success,
            latency_ms * 1000,
        ));
    }
    // Microsecond latencies with a heavy tail: a different shape, so merged quantiles differ.
    for _ in 0..800 {
        let latency_us = if random.below(10) == 0 {
            2_000_000 + random.below(3_000_000)
        } else {
            50_000 + random.below(450_000)
        };
        requests.push(Request::new(
            "cust_1",
            date("2024-10-13"),
            random.below(100) < 60,
            latency_us,
        ));
    }
    for _ in 0..300 {
        let latency_us = 1 + random.below(90_000);
        requests.push(Request::new(
            "cust_1",
            date("2024-10-20"),
            random.below(100) < 97,
            latency_us,
        ));
    }
    for day in ["2024-10-10", "2024-10-12"] {
        for _ in 0..200 {
            requests.push(Request::new(
                "cust_2",
                date(day),
                random.below(2) == 0,
                7_000_000,
            ));
        }
    }
    requests
}

/// Writes `requests` through `Store::commit_epoch` in two epochs, so every stored row is the
/// merge of two deltas, as when ingestion adds late data.
pub fn store_requests(store: &Store, requests: &[Request]) {
    for epoch in [0, 1] {
        let mut accumulators: BTreeMap<(&str, NaiveDate), DayAccumulator> = BTreeMap::new();
        for (i, request) in requests.iter().enumerate() {
            if i % 2 == epoch {
                accumulators
                    .entry((&request.customer, request.day))
                    .or_default()
                    .add(request.ok, request.us);
            }
        }
        let commit = EpochCommit {
            deltas: accumulators
                .into_iter()
                .map(|((customer, day), acc)| {
                    (customer.to_string(), day_from_date(day), acc.finish())
                })
                .collect(),
            ..EpochCommit::default()
        };
        store.commit_epoch(&commit).expect("commit an epoch");
    }
}

/// A fresh database on every backend, seeded with [`generated_requests`], served by the API in
/// this process.
pub fn seeded_apps() -> Vec<(TestDatabase, Api, Vec<Request>)> {
    backends()
        .into_iter()
        .map(|db| {
            let requests = generated_requests();
            store_requests(&db.connect(), &requests);
            let app = Api::spawn(&db);
            (db, app, requests)
        })
        .collect()
}

/// The requests of `customer` from `from` to `to`, inclusive.
pub fn select<'a>(
    requests: &'a [Request],
    customer: &str,
    from: &str,
    to: &str,
) -> Vec<&'a Request> {
    let (from, to) = (date(from), date(to));
    requests
        .iter()
        .filter(|r| r.customer == customer && from <= r.day && r.day <= to)
        .collect()
}

/// The requests of every customer from `from` to `to`, inclusive.
pub fn within<'a>(requests: &'a [Request], from: &str, to: &str) -> Vec<&'a Request> {
    let (from, to) = (date(from), date(to));
    requests
        .iter()
        .filter(|r| from <= r.day && r.day <= to)
        .collect()
}

/// numpy's default percentile `p` of `sorted` (µs), in seconds rounded to the microsecond.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    let seconds: Vec<f64> = sorted.iter().map(|&us| us as f64 / 1e6).collect();
    numpy_percentile(&seconds, p).expect("some latencies")
}

/// Asserts that `actual` is exactly the Stats of `requests`, computed here from the raw values:
/// its fields (besides a day's `date`) are the seven of every Stats, plus `latency_percentiles`
/// holding exactly `extra` when given.
pub fn assert_stats(actual: &Value, requests: &[&Request], extra: &[(&str, f64)], context: &str) {
    let keys: BTreeSet<&str> = actual
        .as_object()
        .unwrap_or_else(|| panic!("{context}: stats are not an object: {actual}"))
        .keys()
        .map(String::as_str)
        .filter(|&key| key != "date")
        .collect();
    let mut expected_keys = BTreeSet::from([
        "average_latency",
        "failed_requests",
        "median_latency",
        "p99_latency",
        "successful_requests",
        "total_requests",
        "uptime",
    ]);
    if !extra.is_empty() {
        expected_keys.insert("latency_percentiles");
    }
    assert_eq!(keys, expected_keys, "{context}");

    let total = requests.len() as u64;
    let ok = requests.iter().filter(|r| r.ok).count() as u64;
    assert_eq!(
        actual["total_requests"],
        json!(total),
        "{context}: {actual}"
    );
    assert_eq!(actual["successful_requests"], json!(ok), "{context}");
    assert_eq!(actual["failed_requests"], json!(total - ok), "{context}");
    if total == 0 {
        for key in ["uptime", "average_latency", "median_latency", "p99_latency"] {
            assert_eq!(actual[key], Value::Null, "{context}: {key}");
        }
        return;
    }
    assert_eq!(
        actual["uptime"].as_f64(),
        Some(ok as f64 * 100.0 / total as f64),
        "{context}: uptime"
    );
    let sum: u64 = requests.iter().map(|r| r.us).sum();
    // The nearest microsecond; half a microsecond rounds either way in floating point, so both
    // neighbours are accepted then.
    let (down, up) = (sum / total, sum.div_ceil(total));
    let nearest = if 2 * (sum % total) > total { up } else { down };
    let average = actual["average_latency"].as_f64().expect("an average");
    let tie = 2 * (sum % total) == total;
    assert!(
        average == nearest as f64 / 1e6 || (tie && average == up as f64 / 1e6),
        "{context}: average {average}, expected {nearest} µs"
    );
    let mut sorted: Vec<u64> = requests.iter().map(|r| r.us).collect();
    sorted.sort_unstable();
    assert_quantile(&actual["median_latency"], &sorted, 0.5, context);
    assert_quantile(&actual["p99_latency"], &sorted, 0.99, context);
    if extra.is_empty() {
        assert!(actual.get("latency_percentiles").is_none(), "{context}");
    } else {
        let object = actual["latency_percentiles"]
            .as_object()
            .expect("latency_percentiles");
        let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        let expected_keys: BTreeSet<&str> = extra.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, expected_keys, "{context}");
        for (key, p) in extra {
            assert_eq!(
                object[*key].as_f64(),
                Some(percentile(&sorted, *p)),
                "{context}: p{key}"
            );
        }
    }
}

/// Asserts that `actual` (seconds) is numpy's default percentile `q` (linear interpolation
/// between the closest ranks, as `numpy.percentile(x, 100 q)`) of `sorted_us`, computed here in
/// seconds and rounded to the microsecond.
pub fn assert_quantile(actual: &Value, sorted_us: &[u64], q: f64, context: &str) {
    let seconds: Vec<f64> = sorted_us.iter().map(|&us| us as f64 / 1e6).collect();
    let h = (seconds.len() - 1) as f64 * q;
    let (below, t) = (h.floor() as usize, h - h.floor());
    let (a, b) = (seconds[below], seconds[(below + 1).min(seconds.len() - 1)]);
    let exact = if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    };
    let expected = (exact * 1e6).round() / 1e6;
    assert_eq!(actual.as_f64(), Some(expected), "{context}: q{q}");
}

/// Asserts the dates of `body["days"]` and that each day's stats match the requests of that day.
pub fn assert_days(body: &Value, requests: &[Request], customer: &str, dates: &[&str]) {
    let days = body["days"].as_array().expect("days is an array");
    let actual_dates: Vec<&str> = days
        .iter()
        .map(|d| d["date"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(actual_dates, dates);
    for (day, &day_date) in days.iter().zip(dates) {
        let expected = select(requests, customer, day_date, day_date);
        assert_stats(day, &expected, &[], &format!("{customer} on {day_date}"));
    }
}
