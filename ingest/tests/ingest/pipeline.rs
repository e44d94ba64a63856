//! End to end, on SQLite and PostgreSQL: the real `logstats-ingest` binary reads a generated log,
//! the real API app answers over HTTP, and every answer is checked against statistics computed
//! here, independently, from the same log.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::support::{expected_stats, generate, ingest, ingest_ok, job, temp_dir, Api, Expected};
use chrono::NaiveDate;
use logstats_shared::testing::spawn::RUN_TIMEOUT;
use logstats_shared::testing::{backends, TestDatabase};
use logstats_shared::{Store, StoreOptions};
use serde_json::Value;

/// Checks one `Stats` object of the API against exact values.
fn assert_stats(json: &Value, expected: &Expected, what: &str) {
    let total = expected.successful + expected.failed;
    assert_eq!(json["total_requests"], total, "{what}");
    assert_eq!(json["successful_requests"], expected.successful, "{what}");
    assert_eq!(json["failed_requests"], expected.failed, "{what}");
    let uptime = expected.successful as f64 * 100.0 / total as f64;
    assert_eq!(json["uptime"].as_f64(), Some(uptime), "{what} uptime");
    let mean = expected.latencies_ms.iter().sum::<u64>() as f64 / total as f64 / 1000.0;
    let average = json["average_latency"].as_f64().expect("average");
    assert!(
        (average - mean).abs() < 1e-6,
        "{what}: average {average} != {mean}"
    );
    // Exact: numpy's percentile of the durations as written, to the microsecond.
    assert_eq!(
        json["median_latency"].as_f64(),
        expected.percentile(50.0),
        "{what} median"
    );
    assert_eq!(
        json["p99_latency"].as_f64(),
        expected.percentile(99.0),
        "{what} p99"
    );
}

/// Generated log plus broken lines; returns (log path, number of bad lines).
fn log_with_bad_lines(dir: &Path) -> (PathBuf, u64) {
    let log = dir.join("api_requests.log");
    generate(&log, 20_000, 11);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open");
    file.write_all(
        b"\n2024-10-32 12:00:00 cust_1 /p 200 0.100\n\
          this is not a log line\n\
          \n\
          2024-10-20 12:00:00 cust_1 /p 700 0.100\n\
          2024-10-20 12:00:00 cust_1 /p 200 -1\n\
          2024-10-20 12:00:00 cust_1 /p\xff 200 0.100\n\
          2024-10-20 12:00:00 cust_9 /p 200 0.250\r\n",
    )
    .expect("append");
    (log, 5)
}

#[test]
fn ingested_stats_match_the_log_exactly_through_the_api() {
    for db in backends() {
        let dir = temp_dir();
        let (log, bad) = log_with_bad_lines(dir.path());
        let rejects = dir.path().join("rejects.txt");
        let summary = ingest_ok(
            &db,
            &[
                "--workers",
                "2",
                "--epoch-bytes",
                "100000",
                "--rejects",
                rejects.to_str().expect("utf8 path"),
                log.to_str().expect("utf8 path"),
            ],
        );
        let expected = expected_stats(&log);
        let accepted: u64 = expected.values().map(|e| e.successful + e.failed).sum();
        assert_eq!(accepted, 20_001, "{:?}", db.backend);
        assert_eq!(summary["lines"], accepted + bad);
        assert_eq!(summary["accepted"], accepted);
        assert_eq!(summary["rejected"], bad);
        assert_eq!(summary["late"], 0);
        // Small epochs, staged and committed together: each row written once.
        let rows_written = summary["rows_written"].as_u64().expect("rows_written");
        assert_eq!(rows_written, expected.len() as u64);
        // Both stages took time, and neither more than the whole run.
        let seconds = summary["seconds"].as_f64().expect("seconds");
        for stage in ["read_seconds_per_worker", "commit_seconds"] {
            let spent = summary["stages"][stage].as_f64().expect(stage);
            assert!(
                spent > 0.0 && spent <= seconds,
                "{stage}: {spent} of {seconds}"
            );
        }
        let store = Store::connect(&db.url, &StoreOptions::default()).expect("connect");
        assert_eq!(store.all_days().expect("rows").len(), expected.len());

        let rejects = std::fs::read_to_string(&rejects).expect("rejects file");
        let path = std::fs::canonicalize(&log).expect("canonical");
        let path = path.display();
        let numbered: Vec<String> = rejects
            .lines()
            .map(|l| l.split(": ").take(2).collect::<Vec<_>>().join(": "))
            .collect();
        assert_eq!(
            numbered,
            vec![
                format!("{path}:20002: invalid date (expected a real YYYY-MM-DD)"),
                format!("{path}:20003: expected 6 fields separated by single spaces"),
                format!("{path}:20005: invalid status (expected an integer 100-599)"),
                format!(
                    "{path}:20006: invalid duration (expected a finite non-negative decimal number of seconds)"
                ),
                format!("{path}:20007: invalid UTF-8"),
            ],
            "{:?}",
            db.backend
        );

        let api = Api::start(&db.url);
        for customer in ["cust_1", "cust_9", "cust_22", "cust_50"] {
            let (status, body) = api.get(&format!("/customers/{customer}/stats?from=2024-10-10"));
            assert_eq!(status, 200, "{body}");
            let days: Vec<_> = expected
                .iter()
                .filter(|((c, _), _)| c == customer)
                .collect();
            assert_eq!(body["customer_id"], customer);
            assert_eq!(body["from"], "2024-10-10");
            assert_eq!(body["to"], "2024-11-09");
            let json_days = body["days"].as_array().expect("days");
            assert_eq!(json_days.len(), days.len(), "{customer}");
            let mut total = Expected::default();
            for (json_day, ((_, date), exp)) in json_days.iter().zip(&days) {
                assert_eq!(json_day["date"], date.to_string());
                assert_stats(json_day, exp, &format!("{customer} {date}"));
                total.add(exp);
            }
            assert_stats(&body["total"], &total, &format!("{customer} total"));

            // A sub-range merges just its rows.
            let (status, body) = api.get(&format!(
                "/customers/{customer}/stats?from=2024-10-15&to=2024-10-21"
            ));
            assert_eq!(status, 200);
            let mut week = Expected::default();
            let from = NaiveDate::from_ymd_opt(2024, 10, 15).expect("date");
            let to = NaiveDate::from_ymd_opt(2024, 10, 21).expect("date");
            for ((_, date), exp) in &days {
                if (from..=to).contains(date) {
                    week.add(exp);
                }
            }
            assert_stats(&body["total"], &week, &format!("{customer} week"));
        }
    }
}

#[test]
fn rerunning_the_same_file_adds_nothing() {
    for db in backends() {
        let dir = temp_dir();
        let log = dir.path().join("a.log");
        generate(&log, 5_000, 5);
        let log = log.to_str().expect("utf8 path");
        let first = ingest_ok(&db, &["--epoch-bytes", "50000", log]);
        assert_eq!(first["accepted"], 5_000);
        let store = Store::connect(&db.url, &StoreOptions::default()).expect("connect");
        let before = store.all_days().expect("rows");
        let again = ingest_ok(&db, &[log]);
        assert_eq!(again["lines"], 0, "{:?}", db.backend);
        assert_eq!(again["rows_written"], 0);
        assert_eq!(store.all_days().expect("rows"), before);

        // Appended lines are read on the next run, and only they.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(log)
            .expect("open");
        file.write_all(b"2024-11-09 10:00:00 cust_1 /p 500 1.000\n")
            .expect("append");
        let third = ingest_ok(&db, &[log]);
        assert_eq!(
            (third["lines"].as_u64(), third["accepted"].as_u64()),
            (Some(1), Some(1))
        );
        let after = store.all_days().expect("rows");
        let total = |rows: &[(String, NaiveDate, logstats_shared::DayStats)]| {
            rows.iter().map(|r| r.2.total()).sum::<u64>()
        };
        assert_eq!(total(&after), total(&before) + 1);
    }
}

#[test]
fn results_do_not_depend_on_the_number_of_workers() {
    let dir = temp_dir();
    let log = dir.path().join("a.log");
    generate(&log, 30_000, 21);
    let log = log.to_str().expect("utf8 path");
    let mut results = Vec::new();
    for workers in ["1", "2", "3"] {
        let db = TestDatabase::sqlite();
        ingest_ok(&db, &["--workers", workers, "--epoch-bytes", "300000", log]);
        let store = Store::connect(&db.url, &StoreOptions::default()).expect("connect");
        results.push(store.all_days().expect("rows"));
    }
    assert_eq!(results[0].len(), 1_550);
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}

#[test]
fn late_lines_are_counted_and_kept_out_of_the_stats() {
    for db in backends() {
        let dir = temp_dir();
        let first = dir.path().join("first.log");
        std::fs::write(&first, "2024-11-09 12:00:00 cust_1 /p 200 0.100\n").expect("write");
        ingest_ok(&db, &[first.to_str().expect("utf8")]);
        // Watermark is now 2024-11-09 12:00:00; with 3 days of lateness the limit is
        // 2024-11-06 12:00:00: the first two lines below are on time, the last two are late.
        let second = dir.path().join("second.log");
        std::fs::write(
            &second,
            "2024-11-06 12:00:00 cust_1 /p 200 0.200\n\
             2024-11-08 00:00:00 cust_1 /p 404 0.300\n\
             2024-11-06 11:59:59 cust_1 /p 200 0.400\n\
             2024-10-01 00:00:00 cust_2 /p 200 0.500\n",
        )
        .expect("write");
        let rejects = dir.path().join("rejects.txt");
        let summary = ingest_ok(
            &db,
            &[
                "--allowed-lateness",
                "3d",
                "--rejects",
                rejects.to_str().expect("utf8"),
                second.to_str().expect("utf8"),
            ],
        );
        assert_eq!(summary["accepted"], 2, "{:?}", db.backend);
        assert_eq!(summary["late"], 2);
        let rejects = std::fs::read_to_string(&rejects).expect("rejects");
        let late_lines: Vec<&str> = rejects
            .lines()
            .filter_map(|l| l.split(": ").next().and_then(|p| p.rsplit(':').next()))
            .collect();
        assert_eq!(late_lines, vec!["3", "4"]);
        let store = Store::connect(&db.url, &StoreOptions::default()).expect("connect");
        let rows = store.all_days().expect("rows");
        let summary: Vec<(String, String, u64, u64)> = rows
            .iter()
            .map(|(c, d, s)| (c.clone(), d.to_string(), s.successful, s.failed))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("cust_1".to_string(), "2024-11-06".to_string(), 1, 0),
                ("cust_1".to_string(), "2024-11-08".to_string(), 0, 1),
                ("cust_1".to_string(), "2024-11-09".to_string(), 1, 0),
            ]
        );
    }
}

#[test]
fn failures_exit_non_zero_with_a_clear_message() {
    let db = TestDatabase::sqlite();
    let missing = ingest(&db, &["/nonexistent/api_requests.log"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("cannot read /nonexistent/api_requests.log"),
        "{stderr}"
    );

    let dir = temp_dir();
    let log = dir.path().join("a.log");
    generate(&log, 10, 1);
    let unreachable = job("postgres://nobody@127.0.0.1:1/none")
        .arg(log.to_str().expect("utf8"))
        .run(RUN_TIMEOUT);
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.contains("cannot connect to postgres://nobody@127.0.0.1:1/none"),
        "{stderr}"
    );

    let bad_scheme = job("oracle://x")
        .arg(log.to_str().expect("utf8"))
        .run(RUN_TIMEOUT);
    assert!(!bad_scheme.status.success());
    let stderr = String::from_utf8_lossy(&bad_scheme.stderr);
    assert!(
        stderr.contains("unsupported database URL \"oracle://x\""),
        "{stderr}"
    );

    // MySQL: unreachable with the `mysql` feature, a pointer to the feature without it; the
    // password is never shown either way.
    let mysql = job("mysql://nobody:S3cr3tPW@127.0.0.1:1/none")
        .arg(log.to_str().expect("utf8"))
        .run(RUN_TIMEOUT);
    assert!(!mysql.status.success());
    let stderr = String::from_utf8_lossy(&mysql.stderr);
    assert!(!stderr.contains("S3cr3tPW"), "{stderr}");
    let expected = if cfg!(feature = "mysql") {
        "cannot connect to mysql://nobody:***@127.0.0.1:1/none"
    } else {
        "need a build with the cargo feature `mysql`"
    };
    assert!(stderr.contains(expected), "{stderr}");
}
