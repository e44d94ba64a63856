//! `logstats-ingest --follow --metrics-bind`: the real binary on every backend, its `GET
//! /metrics` scraped while lines are appended. Lines read, accepted, rejected and late, bytes
//! committed and bytes behind match exactly what was written; the watermark is the newest event
//! time; the last commit is recent. With `--log-format json` every stderr line is a JSON object.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{job, temp_dir, INGEST};
use chrono::NaiveDateTime;
use logstats_shared::testing::backends;
use logstats_shared::testing::spawn::{Binary, Spawned, RUN_TIMEOUT};
use logstats_shared::{EpochCommit, Store, StoreOptions};
use serde_json::Value;

/// Unix seconds of `2024-11-09 10:00:00`-style UTC text.
fn unix(text: &str) -> i64 {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .expect("a timestamp")
        .and_utc()
        .timestamp()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The job, through the shared harness (stdout and stderr in files); killed if the test ends
/// early.
struct Job(Spawned);

impl Job {
    fn start(db_url: &str, args: &[&str], env: &[(&str, &str)]) -> Job {
        Job(job(db_url)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("LOG_FORMAT")
            .env_remove("LOGSTATS_METRICS_BIND")
            .envs(env.iter().copied())
            .start())
    }

    /// Every line of stderr so far.
    fn stderr(&self) -> Vec<String> {
        stderr_lines(&self.0)
    }

    /// The metrics URL the job logged at start.
    fn metrics_url(&mut self) -> String {
        let logged = |job: &Spawned| {
            stderr_lines(job).iter().find_map(|line| {
                let at = line.find("metrics on http://")?;
                let url = &line[at + "metrics on ".len()..];
                let end = url.find("/metrics")? + "/metrics".len();
                Some(url[..end].to_string())
            })
        };
        self.0
            .wait_ready(Duration::from_secs(20), |job| logged(job).is_some());
        logged(&self.0).expect("a metrics address logged")
    }

    /// SIGTERM, a clean exit within 10 s; returns stdout and every stderr line.
    fn stop(mut self) -> (String, Vec<String>) {
        self.0.signal("TERM");
        let status = self.0.wait_for(Duration::from_secs(10));
        assert!(status.is_some(), "no exit");
        let stdout = self.0.stdout();
        let stderr = self.stderr();
        assert!(
            status.is_some_and(|s| s.success()),
            "exit {status:?}: {stderr:?}"
        );
        (stdout, stderr)
    }
}

fn stderr_lines(job: &Spawned) -> Vec<String> {
    job.stderr().lines().map(str::to_string).collect()
}

/// `name{labels}` -> value of one scrape, checking the content type.
fn scrape(url: &str) -> BTreeMap<String, f64> {
    let response = ureq::get(url)
        .timeout(Duration::from_secs(10))
        .call()
        .expect("a scrape");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.into_string().expect("text");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').expect("name and value");
            let value = if value == "+Inf" {
                f64::INFINITY
            } else {
                value.parse().expect("a number")
            };
            (key.to_string(), value)
        })
        .collect()
}

/// Scrapes until `check` holds (20 s at most), returning that scrape.
fn scrape_until(
    url: &str,
    what: &str,
    check: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let started = Instant::now();
    loop {
        let metrics = scrape(url);
        if check(&metrics) {
            return metrics;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: never reached; last scrape {metrics:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open the log")
        .write_all(text.as_bytes())
        .expect("append");
}

fn valid_lines(customer: &str, hour: u32, count: u32) -> String {
    (0..count)
        .map(|i| {
            let status = if i % 5 == 0 { 500 } else { 200 };
            format!("2024-11-09 {hour:02}:00:{i:02} {customer} /p {status} 0.{i:03}\n")
        })
        .collect()
}

/// Lines the parser rejects.
const REJECTED: [&str; 3] = [
    "garbage\n",
    "2024-11-09 10:00:00 cust_m /p 999 0.100\n",
    "2024-13-01 00:00:00 cust_m /p 200 0.100\n",
];

/// Whether a scrape shows a stage's counts, watermark and committed bytes, with nothing left
/// behind: the committer updates them one after the other, so the test waits for them all.
fn settled(
    metrics: &BTreeMap<String, f64>,
    (read, accepted, rejected, late, watermark): (u64, u64, u64, u64, &str),
    committed_bytes: u64,
) -> bool {
    [
        ("logstats_ingest_lines_read_total", read as f64),
        ("logstats_ingest_lines_accepted_total", accepted as f64),
        ("logstats_ingest_lines_rejected_total", rejected as f64),
        ("logstats_ingest_lines_late_total", late as f64),
        (
            "logstats_ingest_bytes_committed_total",
            committed_bytes as f64,
        ),
        ("logstats_ingest_watermark_seconds", unix(watermark) as f64),
        ("logstats_ingest_bytes_behind", 0.0),
    ]
    .iter()
    .all(|(name, value)| metrics.get(*name) == Some(value))
}

/// Counts and gauges expected after a stage: (read, accepted, rejected, late, watermark).
fn assert_counts(
    metrics: &BTreeMap<String, f64>,
    context: &str,
    (read, accepted, rejected, late, watermark): (u64, u64, u64, u64, &str),
    committed_bytes: u64,
    started: i64,
) {
    for (name, value) in [
        ("logstats_ingest_lines_read_total", read),
        ("logstats_ingest_lines_accepted_total", accepted),
        ("logstats_ingest_lines_rejected_total", rejected),
        ("logstats_ingest_lines_late_total", late),
        ("logstats_ingest_bytes_committed_total", committed_bytes),
    ] {
        assert_eq!(metrics[name], value as f64, "{context}: {name}");
    }
    assert_eq!(
        metrics["logstats_ingest_watermark_seconds"],
        unix(watermark) as f64,
        "{context}"
    );
    let last_commit = metrics["logstats_ingest_last_commit_timestamp_seconds"] as i64;
    assert!(
        (started..=now() + 1).contains(&last_commit),
        "{context}: last commit at {last_commit}, started at {started}"
    );
    let commits = metrics["logstats_ingest_commit_duration_seconds_count"];
    assert!(commits >= 1.0, "{context}");
    assert_eq!(
        metrics["logstats_ingest_commit_duration_seconds_bucket{le=\"+Inf\"}"], commits,
        "{context}"
    );
    assert!(
        metrics["logstats_ingest_commit_duration_seconds_sum"] > 0.0,
        "{context}"
    );
}

#[test]
fn follow_mode_metrics_count_exactly_what_was_written() {
    for json in [false, true] {
        // A fresh database each time: the watermark is stored.
        for db in backends() {
            let context = format!("{:?}, json logs: {json}", db.backend);
            follow_and_scrape(&db.url, json, &context);
        }
    }
}

fn follow_and_scrape(db_url: &str, json: bool, context: &str) {
    let dir = temp_dir();
    let log = dir.path().join("api.log");
    // A stored watermark: lines more than 31 days older are late from the first epoch on.
    let store = Store::connect(db_url, &StoreOptions::default()).expect("connect");
    store
        .commit_epoch(&EpochCommit {
            max_event_time: Some(unix("2024-11-09 00:00:00")),
            ..EpochCommit::default()
        })
        .expect("store a watermark");

    let first = format!(
        "{}{}\n2024-10-01 12:00:00 cust_m /p 200 0.100\n2024-10-01 12:00:01 cust_m /p 200 0.100\n",
        valid_lines("cust_m", 10, 50),
        REJECTED.concat(),
    );
    std::fs::write(&log, &first).expect("write the log");
    let path = std::fs::canonicalize(&log).expect("canonical path");
    let behind_key = format!(
        "logstats_ingest_source_bytes_behind{{path=\"{}\"}}",
        path.display()
    );

    let started = now();
    let log_arg = log.to_str().expect("a UTF-8 path");
    let mut job = if json {
        // Both from the environment.
        Job::start(
            db_url,
            &["--follow", log_arg],
            &[
                ("LOGSTATS_METRICS_BIND", "127.0.0.1:0"),
                ("LOG_FORMAT", "json"),
            ],
        )
    } else {
        Job::start(
            db_url,
            &[
                "--follow",
                "--metrics-bind",
                "127.0.0.1:0",
                "--json",
                log_arg,
            ],
            &[],
        )
    };
    let url = job.metrics_url();

    // The file as it was: 50 accepted, 3 rejected, 2 late; the blank line is not a line.
    let expected = (55, 50, 3, 2, "2024-11-09 10:00:49");
    let committed = first.len() as u64;
    let metrics = scrape_until(&url, context, |m| settled(m, expected, committed));
    assert_counts(&metrics, context, expected, committed, started);
    assert_eq!(metrics[&behind_key], 0.0, "{context}");
    assert_eq!(metrics["logstats_ingest_bytes_behind"], 0.0, "{context}");

    // Appended: 20 more accepted, one rejected, one late.
    let second = format!(
        "{}{}2024-10-02 00:00:00 cust_n /p 200 0.100\n",
        valid_lines("cust_n", 11, 20),
        REJECTED[0]
    );
    append(&log, &second);
    let expected = (77, 70, 4, 3, "2024-11-09 11:00:19");
    let committed = committed + second.len() as u64;
    let metrics = scrape_until(&url, context, |m| settled(m, expected, committed));
    assert_counts(&metrics, context, expected, committed, started);

    // A line without its newline yet: held, and counted as behind.
    let partial = "2024-11-09 11:30:00 cust_n /p 200 0.100";
    append(&log, partial);
    let metrics = scrape_until(&url, context, |m| m[&behind_key] == partial.len() as f64);
    assert_eq!(
        metrics["logstats_ingest_bytes_behind"],
        partial.len() as f64
    );
    assert_eq!(
        metrics["logstats_ingest_lines_read_total"], 77.0,
        "{context}"
    );
    append(&log, "\n");
    let expected = (78, 71, 4, 3, "2024-11-09 11:30:00");
    let committed = committed + partial.len() as u64 + 1;
    let metrics = scrape_until(&url, context, |m| settled(m, expected, committed));
    assert_counts(&metrics, context, expected, committed, started);
    assert_eq!(metrics[&behind_key], 0.0, "{context}");

    // Only GET (and HEAD) /metrics is served.
    let status = |method: &str, path: &str| {
        let base = url.strip_suffix("/metrics").expect("a /metrics URL");
        match ureq::request(method, &format!("{base}{path}")).call() {
            Ok(response) => response.status(),
            Err(ureq::Error::Status(status, _)) => status,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    };
    assert_eq!(status("GET", "/"), 404);
    assert_eq!(status("POST", "/metrics"), 405);
    assert_eq!(status("GET", "/metrics?x=1"), 200);

    let (stdout, stderr) = job.stop();
    if json {
        let records: Vec<Value> = stderr
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
            .collect();
        for record in &records {
            for key in ["timestamp", "level", "target", "message"] {
                assert!(record[key].is_string(), "{context}: {record}");
            }
            assert_eq!(record.as_object().map(|o| o.len()), Some(4), "{record}");
        }
        // The summary, a record like the others.
        let summary = records
            .iter()
            .find(|r| {
                r["message"].as_str().is_some_and(|m| {
                    m.starts_with("lines 78 | accepted 71 | rejected 4 | late 3 |")
                })
            })
            .unwrap_or_else(|| panic!("{context}: no summary in {records:?}"));
        assert_eq!(summary["level"], "INFO");
    } else {
        let summary: Value = serde_json::from_str(&stdout).expect("a JSON summary");
        assert_eq!(summary["accepted"], 71, "{context}");
        assert_eq!(summary["late"], 3, "{context}");
        assert!(
            stderr
                .iter()
                .any(|l| l.contains(" INFO ") && l.contains("metrics on http://")),
            "{context}: {stderr:?}"
        );
    }
}

#[test]
fn metrics_bind_needs_follow_and_a_batch_run_ignores_the_variable() {
    let output = Binary::new(INGEST)
        .args(["--metrics-bind", "127.0.0.1:0", "x.log"])
        .env_remove("LOGSTATS_METRICS_BIND")
        .run(RUN_TIMEOUT);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("required arguments were not provided") && stderr.contains("--follow"),
        "{stderr}"
    );

    let dir = temp_dir();
    let log = dir.path().join("api.log");
    std::fs::write(&log, valid_lines("cust_b", 10, 3)).expect("write");
    let db = logstats_shared::testing::TestDatabase::sqlite();
    let output = job(&db.url)
        .arg("--json")
        .arg(&log)
        .env("LOGSTATS_METRICS_BIND", "not an address")
        .env("RUST_LOG", "info")
        .run(RUN_TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("metrics on"), "{stderr}");

    // An address that cannot be bound is a clear error.
    let output = job(&db.url)
        .arg("--follow")
        .args(["--metrics-bind", "not an address"])
        .arg(&log)
        .run(RUN_TIMEOUT);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: serving metrics on not an address: "),
        "{stderr}"
    );
}

#[test]
fn json_logs_show_no_password_either() {
    let dir = temp_dir();
    let log = dir.path().join("api.log");
    std::fs::write(&log, valid_lines("cust_p", 10, 1)).expect("write");
    let output = job("postgres://u:S3cr3tPW@127.0.0.1:1/db")
        .args(["--log-format", "json"])
        .arg(&log)
        .env("RUST_LOG", "info")
        .run(RUN_TIMEOUT);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("S3cr3tPW") && !stderr.contains("3tPW"),
        "{stderr}"
    );
    let records: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    let last = records.last().expect("an error record");
    assert_eq!(last["level"], "ERROR", "{stderr}");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.contains("postgres://u:***@127.0.0.1:1/db")),
        "{stderr}"
    );
}
