//! Bounds of the API: the real binary's memory (its process's peak RSS) on ten years of days
//! asked with many ranges; in-process, the rank error of ranges of days stored as t-digests,
//! answers past the row budget, and the statement timeout.

use crate::support::stats::{assert_quantile, date};
use crate::support::Api;
use logstats_shared::storage::day_from_date;
use logstats_shared::testing::{backends, Random, TestDatabase};
use logstats_shared::{DayAccumulator, EpochCommit};
use serde_json::json;

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
    let baseline = peak_rss_bytes(api.process().id());
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
    let peak = peak_rss_bytes(api.process().id());
    api.process_mut().kill();
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
        let app = Api::spawn(&db);
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

/// More customers than the row copy holds, each asked about in turn, twice: once the copy is
/// full a customer is copied only on its second request, and answered from the database before
/// that. Every answer, whichever way it was made, is byte for byte the answer of an API that
/// copies nothing and of one that copies everything.
#[test]
fn customers_beyond_the_row_budget_get_the_same_answers() {
    for db in backends() {
        let store = db.connect();
        let first = date("2024-01-01");
        let mut random = Random(77);
        let mut deltas = Vec::new();
        for customer in 0..60u64 {
            for d in 0..20u64 {
                let mut acc = DayAccumulator::new();
                for _ in 0..(1 + random.below(30)) {
                    acc.add(random.below(10) != 0, 1_000 * (1 + random.below(400)));
                }
                let day = day_from_date(first + chrono::Days::new(d));
                deltas.push((format!("c{customer}"), day, acc.finish()));
            }
        }
        store
            .commit_epoch(&EpochCommit {
                deltas,
                ..EpochCommit::default()
            })
            .expect("commit");
        // Room for about a third of the customers (each about 1 kB packed): filled at start,
        // then evicting.
        let small = Api::spawn_with(&db, &["--row-cache-bytes", "30000"]);
        let none = Api::spawn_with(
            &db,
            &["--row-cache-bytes", "0", "--answer-cache-bytes", "0"],
        );
        let all = Api::spawn_with(&db, &["--row-cache-bytes", "100000000"]);
        for round in 0..2 {
            for customer in 0..60u64 {
                let from = random.below(10);
                let path = format!(
                    "/customers/c{customer}/stats?from={}&to={}&percentiles=90",
                    first + chrono::Days::new(from),
                    first + chrono::Days::new(from + random.below(10))
                );
                let expected = none.get(&path);
                assert_eq!(expected.status, 200, "{db:?} {path}");
                assert_eq!(
                    small.get(&path).body,
                    expected.body,
                    "{db:?} round {round} {path}"
                );
                assert_eq!(
                    all.get(&path).body,
                    expected.body,
                    "{db:?} round {round} {path}"
                );
            }
        }
        let metrics = small.get("/metrics").text();
        let rows: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("logstats_api_cache_bytes{cache=\"rows\"} "))
            .and_then(|v| v.parse().ok())
            .expect("the rows gauge");
        assert!(rows <= 30_000.0, "{db:?}: {rows}");
        // Not every customer fits: some answers came from the database.
        let copied: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("logstats_api_cache_entries{cache=\"rows\"} "))
            .and_then(|v| v.parse().ok())
            .expect("the rows entries gauge");
        assert!((1.0..60.0).contains(&copied), "{db:?}: {copied}");
        small.shutdown();
        none.shutdown();
        all.shutdown();
    }
}

/// `--statement-timeout` on the server backends: a fleet view whose query runs past it gets a
/// 503 with a JSON error (and `Retry-After`), the connection is freed, and the same request with
/// a generous timeout answers every customer. SQLite has no statement timeout (documented).
#[test]
fn a_query_past_the_statement_timeout_gets_a_503() {
    for db in backends()
        .into_iter()
        .filter(|db| db.backend != logstats_shared::Backend::Sqlite)
    {
        let store = db.connect();
        let first = date("2024-01-01");
        let mut deltas = Vec::new();
        for c in 0..4_000u64 {
            for d in 0..30u64 {
                let mut acc = DayAccumulator::new();
                acc.add(true, (1 + (c * 7 + d) % 900) * 1000);
                let day = first + chrono::Days::new(d);
                deltas.push((format!("cust_{c:05}"), day_from_date(day), acc.finish()));
            }
        }
        store
            .commit_epoch(&EpochCommit {
                deltas,
                ..EpochCommit::default()
            })
            .expect("commit");
        let path = "/customers?from=2024-01-01&to=2024-01-30&sort=p99_latency&limit=5";
        // Without the copy's fill, so the list walks the database (a filled copy answers it
        // from memory, with no statement to time out).
        let quick = Api::spawn_with(
            &db,
            &[
                "--statement-timeout",
                "1ms",
                "--answer-cache-bytes",
                "0",
                "--no-row-cache-warm",
            ],
        );
        let refused = quick.get(path);
        assert_eq!(refused.status, 503, "{:?}: {}", db.backend, refused.text());
        assert!(
            refused.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("--statement-timeout")),
            "{}",
            refused.text()
        );
        assert_eq!(refused.header("retry-after"), Some("5"));
        assert_eq!(quick.get("/health").status, 200);
        drop(quick);
        let patient = Api::spawn_with(&db, &["--statement-timeout", "60s"]);
        let (status, body) = patient.get_json(path);
        assert_eq!(status, 200, "{:?}: {body}", db.backend);
        assert_eq!(body["count"], json!(4_000));
    }
}
