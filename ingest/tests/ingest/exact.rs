//! Exact percentiles end to end, on SQLite and PostgreSQL: the real `logstats-ingest` binary,
//! killed with SIGKILL mid-run and restarted, then given late lines, must store the very rows a
//! single one-worker pass stores; and the real API must answer every day and random ranges with
//! numpy's percentiles of the durations as written, computed here from the raw lines.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::{expected_stats, generate, ingest_ok, job, temp_dir, Api, Expected};
use chrono::{Days, NaiveDate};
use logstats_shared::testing::{backends, TestDatabase};
use logstats_shared::{Store, StoreOptions};
use serde_json::Value;

type ExpectedDays = BTreeMap<(String, NaiveDate), Expected>;

/// SplitMix64: reproducible pseudo-random numbers without a dependency.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 10, 10).expect("date")
}

/// Lines for days already ingested, some with microsecond durations (another resolution, so
/// merged histograms have mixed units), in no particular order.
fn write_late_lines(path: &Path, count: u64) {
    let mut random = Random(0x1A7E);
    let mut text = String::new();
    for _ in 0..count {
        let day = first_day() + Days::new(random.below(31));
        let duration = if random.below(3) == 0 {
            format!("{}.{:06}", random.below(3), random.below(1_000_000))
        } else {
            format!("{}.{:03}", random.below(2), random.below(1000))
        };
        text.push_str(&format!(
            "{day} {:02}:{:02}:{:02} cust_{} /api/v1/late {} {duration}\n",
            random.below(24),
            random.below(60),
            random.below(60),
            1 + random.below(50),
            [200, 201, 302, 404, 500][random.below(5) as usize],
        ));
    }
    std::fs::write(path, text).expect("write late lines");
}

fn merged(into: &mut ExpectedDays, from: ExpectedDays) {
    for (key, value) in from {
        into.entry(key).or_default().add(&value);
    }
}

/// Checks one Stats object against the exact values, percentiles to the microsecond.
fn assert_exact(json: &Value, expected: &Expected, what: &str) {
    let total = expected.successful + expected.failed;
    assert_eq!(json["total_requests"], total, "{what}");
    assert_eq!(json["successful_requests"], expected.successful, "{what}");
    if total == 0 {
        assert_eq!(json["median_latency"], Value::Null, "{what}");
        return;
    }
    for (field, p) in [("median_latency", 50.0), ("p99_latency", 99.0)] {
        assert_eq!(
            json[field].as_f64(),
            expected.percentile(p),
            "{what} {field} (n = {total})"
        );
    }
}

#[test]
fn percentiles_equal_numpy_after_kills_restarts_late_lines_and_any_range() {
    let dir = temp_dir();
    let log = dir.path().join("a.log");
    generate(&log, 300_000, 77);
    let late = dir.path().join("late.log");
    write_late_lines(&late, 4_000);
    let mut expected = expected_stats(&log);
    merged(&mut expected, expected_stats(&late));
    let (log, late) = (
        log.to_str().expect("utf8 path"),
        late.to_str().expect("utf8 path"),
    );

    // The reference: one worker, one pass over both files, on SQLite.
    let reference = TestDatabase::sqlite();
    ingest_ok(&reference, &["--workers", "1", log, late]);
    let reference_rows = Store::connect(&reference.url, &StoreOptions::default())
        .expect("connect")
        .all_days()
        .expect("rows");
    assert_eq!(reference_rows.len(), expected.len());

    for db in backends() {
        // Two workers and small epochs, killed twice mid-run, then run to the end; then the
        // late lines, merged into rows committed long before.
        for delay_ms in [150, 600] {
            let mut child = job(&db.url)
                .args(["--workers", "2"])
                .args(["--epoch-bytes", "400000", log])
                .env("RUST_LOG", "error")
                .start();
            std::thread::sleep(Duration::from_millis(delay_ms));
            child.kill();
        }
        ingest_ok(&db, &["--workers", "2", "--epoch-bytes", "400000", log]);
        ingest_ok(&db, &["--workers", "2", late]);
        let store = Store::connect(&db.url, &StoreOptions::default()).expect("connect");
        let rows = store.all_days().expect("rows");
        assert!(
            rows.iter().all(|(_, _, stats)| stats.latencies.is_exact()),
            "{:?}: every day is small enough to be exact",
            db.backend
        );
        assert_eq!(
            rows, reference_rows,
            "{:?}: identical to one pass with one worker",
            db.backend
        );

        let api = Api::start(&db.url);
        // Every day of every customer, through one full-range request per customer.
        for customer in 1..=50 {
            let id = format!("cust_{customer}");
            let (status, body) = api.get(&format!("/customers/{id}/stats?from=2024-10-01"));
            assert_eq!(status, 200, "{body}");
            for day in body["days"].as_array().expect("days") {
                let date = NaiveDate::parse_from_str(day["date"].as_str().expect("date"), "%F")
                    .expect("date");
                let want = &expected[&(id.clone(), date)];
                assert_exact(day, want, &format!("{:?} {id} {date}", db.backend));
            }
        }
        // Random ranges, including ones without requests and single days.
        let mut random = Random(db.url.len() as u64);
        for _ in 0..300 {
            let id = format!("cust_{}", 1 + random.below(50));
            let from = first_day() + Days::new(random.below(33)) - Days::new(1);
            let to = from + Days::new(random.below(32));
            let mut want = Expected::default();
            for ((customer, date), day) in expected.range((id.clone(), from)..=(id.clone(), to)) {
                assert!(customer == &id && (from..=to).contains(date));
                want.add(day);
            }
            let (status, body) = api.get(&format!("/customers/{id}/stats?from={from}&to={to}"));
            assert_eq!(status, 200, "{body}");
            assert_exact(
                &body["total"],
                &want,
                &format!("{:?} {id} {from}..{to}", db.backend),
            );
        }
    }
}
