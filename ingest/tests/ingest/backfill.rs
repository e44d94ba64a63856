//! Old logs beside a live job, end to end with the real binary on every backend: a `--backfill`
//! run loads lines far older than the live job's watermark into their days, once, while the
//! live job keeps following and keeps its watermark; lines the live job counted late are
//! copied from its rejects file by `late-lines` and stored by a `--backfill` run, once.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{expected_stats, generate, ingest, s, start_ingest, summary, temp_dir};
use chrono::{NaiveDate, Utc};
use logstats_shared::testing::{backends, TestDatabase};

fn append(path: &Path, text: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .expect("open");
    file.write_all(text).expect("append");
}

/// Requests stored per (customer, day).
fn stored(db: &TestDatabase) -> BTreeMap<(String, NaiveDate), u64> {
    db.connect()
        .all_days()
        .expect("rows")
        .into_iter()
        .map(|(customer, day, s)| ((customer, day), s.successful + s.failed))
        .collect()
}

/// The same from logs, computed the simple way.
fn expected(logs: &[&Path]) -> BTreeMap<(String, NaiveDate), u64> {
    let mut out = BTreeMap::new();
    for log in logs {
        for (key, e) in expected_stats(log) {
            *out.entry(key).or_default() += e.successful + e.failed;
        }
    }
    out
}

fn total(rows: &BTreeMap<(String, NaiveDate), u64>) -> u64 {
    rows.values().sum()
}

fn wait_total(db: &TestDatabase, requests: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while total(&stored(db)) != requests {
        assert!(
            Instant::now() < deadline,
            "stored {} requests, never {requests}",
            total(&stored(db))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Today's lines: the live job's watermark is now.
fn live_lines(count: usize, offset: usize) -> String {
    let today = Utc::now().date_naive();
    (0..count)
        .map(|i| {
            let n = i + offset;
            format!(
                "{today} {:02}:{:02}:{:02} cust_{} /live {} 0.{:03}\n",
                (n / 3600) % 24,
                (n / 60) % 60,
                n % 60,
                n % 7,
                if n.is_multiple_of(5) { 500 } else { 200 },
                n % 1000
            )
        })
        .collect()
}

#[test]
fn a_backfill_beside_a_live_job_and_a_recovery_of_late_lines_count_every_line_once() {
    for db in backends() {
        let dir = temp_dir();
        let live = dir.path().join("live.log");
        let rejects = dir.path().join("rejects.log");
        append(&live, live_lines(500, 0).as_bytes());
        // A first run stores the watermark, which the follow job judges its first epochs by.
        summary(&ingest(&db, &["--rejects", s(&rejects), s(&live)]));
        let follow = start_ingest(&db.url, &["--follow", "--rejects", s(&rejects), s(&live)]);
        wait_total(&db, 500);
        let watermark = db.connect().watermark().expect("watermark");
        assert_eq!(watermark, Some(newest(&live_lines(500, 0))));
        // A 2024 log: two years older than the watermark. Given to the live job's file, it is
        // late, every line; given to a --backfill run, stored.
        let old = dir.path().join("old-2024.log");
        generate(&old, 3_000, 17);
        let late_copy = dir.path().join("late-copy");
        generate(&late_copy, 2_000, 18);
        append(&live, &std::fs::read(&late_copy).expect("copy"));
        append(&live, live_lines(300, 500).as_bytes());
        wait_total(&db, 800);
        let watermark = db.connect().watermark().expect("watermark");
        assert_eq!(watermark, Some(newest(&live_lines(800, 0))));
        let backfilled = summary(&ingest(&db, &["--backfill", s(&old)]));
        assert_eq!(
            (backfilled["accepted"].as_u64(), backfilled["late"].as_u64()),
            (Some(3_000), Some(0)),
            "{:?}: {backfilled}",
            db.backend
        );
        assert_eq!(db.connect().watermark().expect("watermark"), watermark);
        // The live job goes on, its watermark moved by its own lines only.
        append(&live, live_lines(200, 800).as_bytes());
        wait_total(&db, 4_000);
        // Again: nothing more.
        let again = summary(&ingest(&db, &["--backfill", s(&old)]));
        assert_eq!(again["lines"].as_u64(), Some(0));
        // The late lines, from the live job's rejects file, stored once.
        let recovered_file = dir.path().join("recovered.log");
        let output = crate::support::job(&db.url)
            .args([
                "--json",
                "late-lines",
                s(&rejects),
                "--output",
                s(&recovered_file),
            ])
            .run(Duration::from_secs(60));
        let recovered = summary(&output);
        assert_eq!(recovered["lines"].as_u64(), Some(2_000), "{recovered}");
        assert_eq!(
            std::fs::read(&recovered_file).expect("recovered"),
            std::fs::read(&late_copy).expect("copy")
        );
        let loaded = summary(&ingest(&db, &["--backfill", s(&recovered_file)]));
        assert_eq!(loaded["accepted"].as_u64(), Some(2_000));
        assert_eq!(
            summary(&ingest(&db, &["--backfill", s(&recovered_file)]))["lines"],
            0
        );
        follow.signal("TERM");
        let output = follow.finish(Duration::from_secs(60));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let live_only = dir.path().join("live-only");
        std::fs::write(
            &live_only,
            [
                live_lines(500, 0),
                live_lines(300, 500),
                live_lines(200, 800),
            ]
            .concat(),
        )
        .expect("live");
        assert_eq!(
            stored(&db),
            expected(&[&live_only, &old, &late_copy]),
            "{:?}",
            db.backend
        );
        let watermark = db.connect().watermark().expect("watermark");
        assert_eq!(watermark, Some(newest(&live_lines(1_000, 0))));
    }
}

/// The newest event time (Unix seconds) of native lines.
fn newest(lines: &str) -> i64 {
    lines
        .lines()
        .map(|line| {
            let at = chrono::NaiveDateTime::parse_from_str(&line[..19], "%Y-%m-%d %H:%M:%S")
                .expect("time");
            at.and_utc().timestamp()
        })
        .max()
        .expect("lines")
}
