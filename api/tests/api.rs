//! End-to-end tests of the API: the real binary on a free port, over HTTP, against a fresh
//! database on every backend, with expected values computed independently from the generated
//! requests.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use logstats_shared::storage::day_from_date;
use logstats_shared::testing::{backends, Random, TestDatabase};
use logstats_shared::{DayAccumulator, EpochCommit, Store};
use serde_json::{json, Value};
use support::Api;

/// One generated request: customer, UTC day, success, latency in microseconds.
type Request = (&'static str, NaiveDate, bool, u64);

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("valid test date")
}

/// The requests every test starts from. cust_1 has days 10-10, 10-11, 10-13 and 10-20 (none on
/// 10-12, where cust_2 has some); 10-11 holds five known values.
fn generated_requests() -> Vec<Request> {
    let mut random = Random(20_241_010);
    let mut requests = Vec::new();
    // Millisecond latencies, as in typical logs: many repeats.
    for _ in 0..1500 {
        let latency_us = (1 + random.below(1200)) * 1000;
        requests.push((
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
        requests.push(("cust_1", date("2024-10-11"), success, latency_ms * 1000));
    }
    // Microsecond latencies with a heavy tail: a different shape, so merged quantiles differ.
    for _ in 0..800 {
        let latency_us = if random.below(10) == 0 {
            2_000_000 + random.below(3_000_000)
        } else {
            50_000 + random.below(450_000)
        };
        requests.push((
            "cust_1",
            date("2024-10-13"),
            random.below(100) < 60,
            latency_us,
        ));
    }
    for _ in 0..300 {
        let latency_us = 1 + random.below(90_000);
        requests.push((
            "cust_1",
            date("2024-10-20"),
            random.below(100) < 97,
            latency_us,
        ));
    }
    for day in ["2024-10-10", "2024-10-12"] {
        for _ in 0..200 {
            requests.push(("cust_2", date(day), random.below(2) == 0, 7_000_000));
        }
    }
    requests
}

/// Writes `requests` through `Store::commit_epoch` in two epochs, so every stored row is the
/// merge of two deltas, as when ingestion adds late data.
fn store_requests(store: &Store, requests: &[Request]) {
    for epoch in [0, 1] {
        let mut accumulators: BTreeMap<(&str, NaiveDate), DayAccumulator> = BTreeMap::new();
        for (i, &(customer, day, success, latency_us)) in requests.iter().enumerate() {
            if i % 2 == epoch {
                accumulators
                    .entry((customer, day))
                    .or_default()
                    .add(success, latency_us);
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

/// A fresh database on every backend, seeded with `generated_requests`, served by the real
/// binary.
fn seeded_apps() -> Vec<(TestDatabase, Api, Vec<Request>)> {
    backends()
        .into_iter()
        .map(|db| {
            let store = db.connect();
            let requests = generated_requests();
            store_requests(&store, &requests);
            let app = Api::start(&db);
            (db, app, requests)
        })
        .collect()
}

/// The requests of `customer` from `from` to `to`, inclusive.
fn select<'a>(requests: &'a [Request], customer: &str, from: &str, to: &str) -> Vec<&'a Request> {
    let (from, to) = (date(from), date(to));
    requests
        .iter()
        .filter(|r| r.0 == customer && from <= r.1 && r.1 <= to)
        .collect()
}

/// Asserts that `actual` is exactly the Stats of `requests`, computed here from the raw values.
fn assert_stats(actual: &Value, requests: &[&Request], context: &str) {
    let keys: Vec<&str> = actual
        .as_object()
        .unwrap_or_else(|| panic!("{context}: stats are not an object: {actual}"))
        .keys()
        .map(String::as_str)
        .filter(|&key| key != "date")
        .collect();
    let mut expected_keys = vec![
        "average_latency",
        "failed_requests",
        "median_latency",
        "p99_latency",
        "successful_requests",
        "total_requests",
        "uptime",
    ];
    expected_keys.sort_unstable();
    let mut sorted_keys = keys.clone();
    sorted_keys.sort_unstable();
    assert_eq!(sorted_keys, expected_keys, "{context}");

    let total = requests.len() as u64;
    let successful = requests.iter().filter(|r| r.2).count() as u64;
    assert_eq!(actual["total_requests"], json!(total), "{context}");
    assert_eq!(
        actual["successful_requests"],
        json!(successful),
        "{context}"
    );
    assert_eq!(
        actual["failed_requests"],
        json!(total - successful),
        "{context}"
    );
    if total == 0 {
        for key in ["uptime", "average_latency", "median_latency", "p99_latency"] {
            assert_eq!(actual[key], Value::Null, "{context}: {key}");
        }
        return;
    }
    assert_eq!(
        actual["uptime"].as_f64(),
        Some(successful as f64 * 100.0 / total as f64),
        "{context}: uptime"
    );
    let sum_us: u64 = requests.iter().map(|r| r.3).sum();
    // Rounded half up in integers; a tie would make the float rounding ambiguous, so avoid one.
    assert_ne!(
        2 * (sum_us % total),
        total,
        "{context}: pick data without a rounding tie"
    );
    let average_us = (2 * sum_us + total) / (2 * total);
    assert_eq!(
        actual["average_latency"].as_f64(),
        Some(average_us as f64 / 1e6),
        "{context}: average"
    );
    let mut sorted_us: Vec<u64> = requests.iter().map(|r| r.3).collect();
    sorted_us.sort_unstable();
    assert_quantile(&actual["median_latency"], &sorted_us, 0.5, context);
    assert_quantile(&actual["p99_latency"], &sorted_us, 0.99, context);
}

/// Asserts that `actual` (seconds) is numpy's default percentile `q` (linear interpolation
/// between the closest ranks, as `numpy.percentile(x, 100 q)`) of `sorted_us`, computed here in
/// seconds and rounded to the microsecond.
fn assert_quantile(actual: &Value, sorted_us: &[u64], q: f64, context: &str) {
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
fn assert_days(body: &Value, requests: &[Request], customer: &str, dates: &[&str]) {
    let days = body["days"].as_array().expect("days is an array");
    let actual_dates: Vec<&str> = days
        .iter()
        .map(|d| d["date"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(actual_dates, dates);
    for (day, &day_date) in days.iter().zip(dates) {
        let expected = select(requests, customer, day_date, day_date);
        assert_stats(day, &expected, &format!("{customer} on {day_date}"));
    }
}

#[test]
fn a_range_is_the_merge_of_its_days() {
    for (db, app, requests) in seeded_apps() {
        let body = app.stats("cust_1", "from=2024-10-01&to=2024-10-31");
        assert_eq!(body["customer_id"], "cust_1", "{db:?}");
        assert_eq!(body["from"], "2024-10-01");
        assert_eq!(body["to"], "2024-10-31");
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 5, "{keys:?}");
        let all = select(&requests, "cust_1", "2024-10-01", "2024-10-31");
        assert_eq!(all.len(), 2605);
        assert_stats(&body["total"], &all, &format!("{db:?} total"));
        assert_days(
            &body,
            &requests,
            "cust_1",
            &["2024-10-10", "2024-10-11", "2024-10-13", "2024-10-20"],
        );
        // Five distinct values: the digest is exact.
        assert_eq!(body["days"][1]["median_latency"], json!(0.3));
        assert_eq!(body["days"][1]["uptime"], json!(60.0));
        assert_eq!(body["days"][1]["average_latency"], json!(0.3));

        let other = app.stats("cust_2", "from=2024-10-01&to=2024-10-31");
        assert_stats(
            &other["total"],
            &select(&requests, "cust_2", "2024-10-01", "2024-10-31"),
            "cust_2",
        );
        assert_eq!(other["total"]["median_latency"], json!(7.0));
        assert_days(&other, &requests, "cust_2", &["2024-10-10", "2024-10-12"]);
    }
}

#[test]
fn a_commit_is_visible_on_the_next_request() {
    for db in backends() {
        let store = db.connect();
        let mut requests = generated_requests();
        store_requests(&store, &requests);
        let app = Api::start(&db);
        for query in ["from=2024-10-01&to=2024-10-31", "from=2024-10-01"] {
            // Asked twice, so the second answer may be a remembered one.
            for _ in 0..2 {
                let body = app.stats("cust_1", query);
                let all = select(&requests, "cust_1", "2024-10-01", "2024-10-31");
                assert_stats(&body["total"], &all, &format!("{db:?} {query}"));
            }
        }
        // Late data for a stored day, and a new day: both must show at once.
        let late: Vec<Request> = (0..30)
            .map(|i| {
                (
                    "cust_1",
                    date("2024-10-11"),
                    i % 3 == 0,
                    1_500_000 + i * 1000,
                )
            })
            .chain((0..5).map(|i| ("cust_1", date("2024-10-25"), true, 900_000 + i)))
            .collect();
        let mut accumulators: BTreeMap<NaiveDate, DayAccumulator> = BTreeMap::new();
        for &(_, day, success, latency_us) in &late {
            accumulators
                .entry(day)
                .or_default()
                .add(success, latency_us);
        }
        store
            .commit_epoch(&EpochCommit {
                deltas: accumulators
                    .into_iter()
                    .map(|(day, acc)| ("cust_1".to_string(), day_from_date(day), acc.finish()))
                    .collect(),
                ..EpochCommit::default()
            })
            .expect("commit late data");
        requests.extend(late);
        for query in ["from=2024-10-01&to=2024-10-31", "from=2024-10-01"] {
            let body = app.stats("cust_1", query);
            let all = select(&requests, "cust_1", "2024-10-01", "2024-10-31");
            assert_stats(
                &body["total"],
                &all,
                &format!("{db:?} {query} after the commit"),
            );
            assert_days(
                &body,
                &requests,
                "cust_1",
                &[
                    "2024-10-10",
                    "2024-10-11",
                    "2024-10-13",
                    "2024-10-20",
                    "2024-10-25",
                ],
            );
        }
    }
}

/// Commits and requests in turn, each request asked twice (the second may be remembered): every
/// answer counts every commit made before it was asked, so no answer is ever stale.
#[test]
fn every_answer_counts_every_commit_made_before_it() {
    for db in backends() {
        let store = db.connect();
        let app = Api::start(&db);
        for i in 1..=40u64 {
            let mut acc = DayAccumulator::new();
            acc.add(i % 4 != 0, 1_000 * i);
            store
                .commit_epoch(&EpochCommit {
                    deltas: vec![(
                        "cust_7".to_string(),
                        day_from_date(date("2024-10-10")),
                        acc.finish(),
                    )],
                    ..EpochCommit::default()
                })
                .expect("commit");
            for ask in 0..2 {
                let body = app.stats("cust_7", "from=2024-10-10");
                assert_eq!(
                    body["total"]["total_requests"], i,
                    "{db:?}: commit {i}, ask {ask}"
                );
                assert_eq!(body["total"]["failed_requests"], i / 4, "{db:?}");
            }
        }
    }
}

/// Many askers at once, while commits land: misses of one key share one read (see
/// `answers.rs`), and still no answer misses a commit that finished before it was asked.
#[test]
fn concurrent_askers_never_miss_a_finished_commit() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let commit = |store: &Store, i: u64| {
        let mut acc = DayAccumulator::new();
        acc.add(true, 1_000 * i);
        store
            .commit_epoch(&EpochCommit {
                deltas: vec![(
                    "cust_8".to_string(),
                    day_from_date(date("2024-10-10")),
                    acc.finish(),
                )],
                ..EpochCommit::default()
            })
            .expect("commit");
    };
    for db in backends() {
        let store = db.connect();
        let app = Api::start(&db);
        commit(&store, 1);
        let committed = AtomicU64::new(1);
        let asked = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    while committed.load(Ordering::SeqCst) < 25 {
                        let before = committed.load(Ordering::SeqCst);
                        let body = app.stats("cust_8", "from=2024-10-10");
                        let total = body["total"]["total_requests"].as_u64().expect("total");
                        assert!(total >= before, "{db:?}: {total} after {before} commits");
                        assert!(total <= 25, "{db:?}: {total}");
                        asked.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            for i in 2..=25 {
                std::thread::sleep(Duration::from_millis(10));
                commit(&store, i);
                committed.store(i, Ordering::SeqCst);
            }
        });
        assert!(asked.load(Ordering::SeqCst) >= 8, "{db:?}: too few answers");
        let body = app.stats("cust_8", "from=2024-10-10");
        assert_eq!(body["total"]["total_requests"], 25, "{db:?}");
    }
}

#[test]
fn to_defaults_to_the_last_day_with_data() {
    for (db, app, requests) in seeded_apps() {
        let body = app.stats("cust_1", "from=2024-10-11");
        assert_eq!(
            (&body["from"], &body["to"]),
            (&json!("2024-10-11"), &json!("2024-10-20")),
            "{db:?}"
        );
        assert_stats(
            &body["total"],
            &select(&requests, "cust_1", "2024-10-11", "2024-10-20"),
            "from 10-11",
        );
        assert_days(
            &body,
            &requests,
            "cust_1",
            &["2024-10-11", "2024-10-13", "2024-10-20"],
        );

        let last = app.stats("cust_1", "from=2024-10-20");
        assert_eq!(last["to"], "2024-10-20");
        assert_days(&last, &requests, "cust_1", &["2024-10-20"]);

        // No data on or after `from`: the range is the single day `from`, and empty.
        let after = app.stats("cust_1", "from=2024-10-21");
        assert_eq!(
            (&after["from"], &after["to"]),
            (&json!("2024-10-21"), &json!("2024-10-21"))
        );
        assert_stats(&after["total"], &[], "after the last day");
        assert_eq!(after["days"], json!([]));
    }
}

#[test]
fn range_bounds_are_inclusive() {
    for (db, app, requests) in seeded_apps() {
        let body = app.stats("cust_1", "from=2024-10-11&to=2024-10-13");
        assert_eq!(
            (&body["from"], &body["to"]),
            (&json!("2024-10-11"), &json!("2024-10-13")),
            "{db:?}"
        );
        assert_stats(
            &body["total"],
            &select(&requests, "cust_1", "2024-10-11", "2024-10-13"),
            "10-11..10-13",
        );
        assert_days(&body, &requests, "cust_1", &["2024-10-11", "2024-10-13"]);

        let one_day = app.stats("cust_1", "from=2024-10-13&to=2024-10-13");
        assert_stats(
            &one_day["total"],
            &select(&requests, "cust_1", "2024-10-13", "2024-10-13"),
            "10-13",
        );
        assert_days(&one_day, &requests, "cust_1", &["2024-10-13"]);
        // A single day's total is that day.
        assert_eq!(
            one_day["total"]["median_latency"],
            one_day["days"][0]["median_latency"]
        );

        let before = app.stats("cust_1", "from=2024-01-01&to=2024-10-10");
        assert_days(&before, &requests, "cust_1", &["2024-10-10"]);
        assert_eq!(before["total"]["total_requests"], json!(1500));
    }
}

#[test]
fn a_range_without_requests_has_zero_counts_and_null_ratios() {
    for (db, app, _) in seeded_apps() {
        // cust_2 has requests on 10-12, cust_1 none.
        let body = app.stats("cust_1", "from=2024-10-12&to=2024-10-12");
        assert_eq!(
            body,
            json!({
                "customer_id": "cust_1",
                "from": "2024-10-12",
                "to": "2024-10-12",
                "total": {
                    "total_requests": 0,
                    "successful_requests": 0,
                    "failed_requests": 0,
                    "uptime": null,
                    "average_latency": null,
                    "median_latency": null,
                    "p99_latency": null
                },
                "days": []
            }),
            "{db:?}"
        );
        let before = app.stats("cust_1", "from=2023-01-01&to=2023-12-31");
        assert_eq!(before["total"]["total_requests"], json!(0));
        assert_eq!(before["days"], json!([]));
    }
}

#[test]
fn malformed_requests_are_400_with_the_reason() {
    let missing = "missing query parameter `from` (expected YYYY-MM-DD)";
    let bad_customer = "invalid customer id: expected 1-64 characters of A-Z a-z 0-9 . _ -";
    let bad_from =
        |v: &str| format!("invalid `from` date \"{v}\": expected a real date as YYYY-MM-DD");
    let bad_to = |v: &str| format!("invalid `to` date \"{v}\": expected a real date as YYYY-MM-DD");
    let long_id = "x".repeat(65);
    let cases: Vec<(String, String)> = vec![
        ("/customers/cust_1/stats".into(), missing.into()),
        (
            "/customers/cust_1/stats?to=2024-10-10".into(),
            missing.into(),
        ),
        ("/customers/cust_1/stats?from=".into(), bad_from("")),
        (
            "/customers/cust_1/stats?from=2024-13-01".into(),
            bad_from("2024-13-01"),
        ),
        (
            "/customers/cust_1/stats?from=2024-02-30".into(),
            bad_from("2024-02-30"),
        ),
        (
            "/customers/cust_1/stats?from=2023-02-29".into(),
            bad_from("2023-02-29"),
        ),
        (
            "/customers/cust_1/stats?from=2024-1-05".into(),
            bad_from("2024-1-05"),
        ),
        (
            "/customers/cust_1/stats?from=2024-10-10T00:00:00".into(),
            bad_from("2024-10-10T00:00:00"),
        ),
        (
            "/customers/cust_1/stats?from=yesterday".into(),
            bad_from("yesterday"),
        ),
        (
            "/customers/cust_1/stats?from=2024-10-10&to=2024-10-32".into(),
            bad_to("2024-10-32"),
        ),
        (
            "/customers/cust_1/stats?from=2024-10-10&to=".into(),
            bad_to(""),
        ),
        (
            "/customers/cust_1/stats?from=2024-10-10&to=2024-10-09".into(),
            "`to` (2024-10-09) is before `from` (2024-10-10)".into(),
        ),
        (
            "/customers/cust_1/stats?from=2024-10-10&from=2024-10-11".into(),
            "invalid query string: duplicate field `from`".into(),
        ),
        (
            "/customers/cust!1/stats?from=2024-10-10".into(),
            bad_customer.into(),
        ),
        (
            "/customers/cust%201/stats?from=2024-10-10".into(),
            bad_customer.into(),
        ),
        (
            "/customers/%FF/stats?from=2024-10-10".into(),
            bad_customer.into(),
        ),
        (
            format!("/customers/{long_id}/stats?from=2024-10-10"),
            bad_customer.into(),
        ),
        // Input is checked before existence: an unknown customer with a bad date is a 400.
        (
            "/customers/cust_404/stats?from=2024-10".into(),
            bad_from("2024-10"),
        ),
    ];
    for (db, app, _) in seeded_apps() {
        for (path, message) in &cases {
            let (status, body) = app.get_json(path);
            assert_eq!(
                (status, &body),
                (400, &json!({ "error": message })),
                "{db:?} {path}"
            );
        }
    }
}

#[test]
fn unknown_query_parameters_are_ignored() {
    for (db, app, requests) in seeded_apps() {
        let body = app.stats(
            "cust_1",
            "utm_source=x&from=2024-10-11&to=2024-10-11&format=csv",
        );
        assert_days(&body, &requests, "cust_1", &["2024-10-11"]);
        assert_eq!(body["to"], "2024-10-11", "{db:?}");
    }
}

#[test]
fn a_customer_without_data_is_404() {
    for (db, app, _) in seeded_apps() {
        let (status, body) = app.get_json("/customers/cust_404/stats?from=2024-10-10");
        assert_eq!(
            (status, body),
            (404, json!({ "error": "no data for customer \"cust_404\"" })),
            "{db:?}"
        );
        // Case matters: ids are stored as written.
        let (status, _) = app.get_json("/customers/CUST_1/stats?from=2024-10-10");
        assert_eq!(status, 404);
    }
}

#[test]
fn health_is_ok_and_other_paths_are_json_404() {
    for db in backends() {
        let app = Api::start(&db);
        assert_eq!(
            app.get_json("/health"),
            (200, json!({ "status": "ok" })),
            "{db:?}"
        );
        for path in [
            "/nothing",
            "/customers/cust_1",
            "/customers/cust_1/stats/extra",
        ] {
            assert_eq!(
                app.get_json(path),
                (404, json!({ "error": "not found" })),
                "{path}"
            );
        }
    }
}

/// Peak resident memory of a process, in bytes (VmHWM).
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

/// Ten years of days for one customer, asked with hundreds of different `to` values: every
/// answer exact, and the API's memory stays within its budgets (48 MiB of rows, 16 MiB of
/// answers) instead of growing with the number of different ranges.
#[test]
fn memory_stays_bounded_on_years_of_days_and_many_ranges() {
    let db = TestDatabase::sqlite();
    let store = db.connect();
    let first = date("2015-01-01");
    let mut random = Random(3650);
    let mut per_day: Vec<(u64, Vec<u64>)> = Vec::new();
    for year in 0..10u64 {
        let mut deltas = Vec::new();
        for d in 0..365u64 {
            let day = first + chrono::Days::new(year * 365 + d);
            let mut acc = DayAccumulator::new();
            let mut latencies = Vec::new();
            let mut successful = 0;
            for _ in 0..(400 + random.below(400)) {
                let ok = random.below(10) < 9;
                let latency_us = (100 + random.below(1901)) * 1000;
                acc.add(ok, latency_us);
                successful += u64::from(ok);
                latencies.push(latency_us);
            }
            per_day.push((successful, latencies));
            deltas.push(("cust_long".to_string(), day_from_date(day), acc.finish()));
        }
        store
            .commit_epoch(&EpochCommit {
                deltas,
                ..EpochCommit::default()
            })
            .expect("commit a year");
    }
    let mut api = Api::start_with(&db, &[], &[("RUST_LOG", "warn")]);
    let baseline = peak_rss_bytes(api.process.id());
    for k in 0..120u64 {
        let days = 3650 - k * 30;
        let to = first + chrono::Days::new(days - 1);
        let (status, body) =
            api.get_json(&format!("/customers/cust_long/stats?from={first}&to={to}"));
        assert_eq!(status, 200, "to {to}");
        let selected = &per_day[..days as usize];
        let total: u64 = selected.iter().map(|d| d.1.len() as u64).sum();
        let successful: u64 = selected.iter().map(|d| d.0).sum();
        assert_eq!(body["total"]["total_requests"], json!(total), "to {to}");
        assert_eq!(
            body["total"]["successful_requests"],
            json!(successful),
            "to {to}"
        );
        assert_eq!(body["days"].as_array().map(Vec::len), Some(days as usize));
        if k % 40 == 0 {
            let mut all: Vec<u64> = selected.iter().flat_map(|d| d.1.clone()).collect();
            all.sort_unstable();
            assert_quantile(&body["total"]["median_latency"], &all, 0.5, "years");
            assert_quantile(&body["total"]["p99_latency"], &all, 0.99, "years");
        }
    }
    let peak = peak_rss_bytes(api.process.id());
    api.process.kill();
    assert!(
        peak <= 128 << 20,
        "peak RSS {} MB (at start {} MB)",
        peak >> 20,
        baseline >> 20
    );
}

/// Days past 4,096 distinct latencies are stored as t-digests: a range of them is answered
/// within the documented rank bound (0.5 % of n on 31-day ranges; docs/BENCHMARKS.md).
#[test]
fn ranges_of_days_past_the_exact_limit_stay_within_the_rank_bound() {
    for db in backends() {
        let store = db.connect();
        let mut random = Random(4_097);
        let mut all: Vec<u64> = Vec::new();
        let first = date("2024-10-01");
        let deltas = (0..31u64)
            .map(|d| {
                let mut acc = DayAccumulator::new();
                for _ in 0..6_000 {
                    // Microsecond resolution: a day has far more than 4,096 distinct values.
                    let latency_us = 20_000 + random.below(2_000_000);
                    acc.add(true, latency_us);
                    all.push(latency_us);
                }
                let day = first + chrono::Days::new(d);
                ("cust_wide".to_string(), day_from_date(day), acc.finish())
            })
            .collect();
        store
            .commit_epoch(&EpochCommit {
                deltas,
                ..EpochCommit::default()
            })
            .expect("commit");
        all.sort_unstable();
        let app = Api::start(&db);
        let body = app.stats("cust_wide", "from=2024-10-01&to=2024-10-31");
        let n = all.len() as f64;
        for (field, q) in [("median_latency", 0.5), ("p99_latency", 0.99)] {
            let seconds = body["total"][field].as_f64().expect(field);
            let us = (seconds * 1e6).round() as u64;
            let below = all.partition_point(|&v| v < us) as f64 / n;
            let at_or_below = all.partition_point(|&v| v <= us) as f64 / n;
            let error = (below - q).max(q - at_or_below).max(0.0);
            assert!(
                error <= 0.005,
                "{db:?} {field}: {seconds} s is {:.3} % of n from rank {q}",
                error * 100.0
            );
        }
    }
}

/// With the database away, a request is answered 503 within one connection timeout (5 s), not
/// two; once it is back, answers are 200 again.
#[test]
fn a_database_outage_is_503_within_the_connection_timeout() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let requests = generated_requests();
    store_requests(&db.connect(), &requests);
    let app = Api::start(&db);
    app.stats("cust_1", "from=2024-10-10");
    db.set_reachable(false);
    for customer in ["cust_1", "cust_2"] {
        let started = Instant::now();
        let (status, body) = app.get_json(&format!("/customers/{customer}/stats?from=2024-10-10"));
        let took = started.elapsed();
        assert_eq!(
            (status, body),
            (503, json!({ "error": "database unavailable" }))
        );
        assert!(took < Duration::from_secs(7), "503 after {took:?}");
    }
    db.set_reachable(true);
    let started = Instant::now();
    loop {
        let (status, body) = app.get_json("/customers/cust_1/stats?from=2024-10-10");
        if status == 200 {
            assert_stats(
                &body["total"],
                &select(&requests, "cust_1", "2024-10-10", "2024-10-20"),
                "after the outage",
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still {status} 30 s after the database came back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_binary_serves_and_exits_cleanly_on_sigterm() {
    let db = TestDatabase::sqlite();
    let requests = generated_requests();
    store_requests(&db.connect(), &requests);
    let api = Api::start_with(&db, &[], &[("RUST_LOG", "warn")]);

    let (status, body) = api.get_json("/customers/cust_1/stats?from=2024-10-10");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["to"], "2024-10-20");
    assert_stats(
        &body["total"],
        &select(&requests, "cust_1", "2024-10-10", "2024-10-20"),
        "binary",
    );

    api.signal("TERM");
    let mut process = api.process;
    let status = process
        .wait_for(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("logstats-api did not stop within 10s of SIGTERM"));
    assert!(status.success(), "logstats-api exited with {status}");
    assert_eq!(status.code(), Some(0));
}
