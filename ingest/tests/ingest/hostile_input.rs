//! The real `logstats-ingest` binary against a hostile user's input: passwords in
//! every URL form, garbage lines in bounded memory, absurd durations; and the progress bar on a
//! terminal. Database rows run on every backend.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{generate, ingest_ok, job, s, start_ingest, summary, temp_dir, INGEST};
use logstats_shared::testing::backends;
use logstats_shared::testing::spawn::{Binary, RUN_TIMEOUT};
use serde_json::Value;

const SECRET: &str = "S3cr3tPW";

fn run_with_url(url: &str, args: &[&str]) -> Output {
    job(url)
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .run(RUN_TIMEOUT)
}

/// Every output of the binary, for looking for a secret.
fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn no_password_is_printed_in_any_url_form() {
    let dir = crate::support::temp_dir();
    let log = dir.path().join("a.log");
    crate::support::generate(&log, 10, 1);
    let log = log.to_str().expect("utf8").to_string();
    // Port 1 refuses connections: every run fails and prints its error.
    let urls = [
        format!("postgres://u:{SECRET}@127.0.0.1:1/db"),
        format!("postgres://u@127.0.0.1:1/db?password={SECRET}"),
        format!("postgres://u@127.0.0.1:1/db?sslmode=disable&password={SECRET}&x=1"),
        "postgres://u:S3cr@3tPW@127.0.0.1:1/db".to_string(),
        format!("host=127.0.0.1 port=1 password={SECRET}"),
        format!("host=127.0.0.1 port=1 password='{SECRET} x'"),
    ];
    let runs: Vec<_> = urls
        .iter()
        .map(|url| {
            let (url, log) = (url.clone(), log.clone());
            std::thread::spawn(move || (url.clone(), run_with_url(&url, &[&log])))
        })
        .collect();
    for run in runs {
        let (url, output) = run.join().expect("run thread");
        assert!(!output.status.success(), "{url}");
        let shown = all_output(&output);
        assert!(shown.contains("error: "), "{url}: {shown}");
        for piece in [SECRET, "3tPW", "S3cr"] {
            assert!(!shown.contains(piece), "{url}: {piece} shown in {shown}");
        }
    }

    let help = Binary::new(INGEST)
        .arg("--help")
        .env("DATABASE_URL", format!("postgres://u:{SECRET}@h/db"))
        .run(RUN_TIMEOUT);
    assert!(help.status.success());
    let shown = all_output(&help);
    assert!(shown.contains("DATABASE_URL"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
}

/// Peak resident memory of a running process so far, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs the job to its end, sampling its peak RSS; returns the summary and the peak.
fn run_measured(db_url: &str, args: &[&str]) -> (Value, u64) {
    let mut job = start_ingest(db_url, args);
    let mut peak = 0;
    let started = Instant::now();
    while job.try_status().is_none() {
        peak = peak.max(peak_rss(job.id()).unwrap_or(0));
        assert!(started.elapsed() < Duration::from_secs(300), "no end");
        std::thread::sleep(Duration::from_millis(5));
    }
    (summary(&job.finish(RUN_TIMEOUT)), peak)
}

const MEMORY_BOUND: u64 = 64 << 20;

#[test]
fn garbage_input_is_read_in_bounded_memory() {
    for db in backends() {
        let dir = temp_dir();
        // 20 MB of `x\n`: 10 million rejected lines (the job held 748 MB for them).
        let garbage = dir.path().join("garbage.log");
        std::fs::write(&garbage, b"x\n".repeat(10_000_000)).expect("write");
        let (result, peak) = run_measured(&db.url, &["--workers", "2", s(&garbage)]);
        assert_eq!(result["rejected"], 10_000_000, "{db:?}");
        assert!(peak <= MEMORY_BOUND, "{db:?}: peak RSS {peak} bytes");

        // With a rejects file, every rejected line is written, numbered, in order.
        let small = dir.path().join("small.log");
        let mut content = b"x\n".repeat(200_000);
        content.extend_from_slice(b"2024-10-10 12:00:00 c /p 200 0.1\n");
        content.extend_from_slice(&b"y\n".repeat(100_000));
        std::fs::write(&small, &content).expect("write");
        let rejects = dir.path().join("rejects.txt");
        let (result, peak) = run_measured(
            &db.url,
            &["--workers", "2", "--rejects", s(&rejects), s(&small)],
        );
        assert_eq!(result["rejected"], 300_000, "{db:?}");
        assert_eq!(result["accepted"], 1, "{db:?}");
        assert!(peak <= MEMORY_BOUND, "{db:?}: peak RSS {peak} bytes");
        let written = std::fs::read_to_string(&rejects).expect("rejects");
        let mut count = 0u64;
        for (i, line) in written.lines().enumerate() {
            let expected_number = if i < 200_000 { i + 1 } else { i + 2 };
            let tail = if i < 200_000 { ": x" } else { ": y" };
            let prefix = format!(
                "{}:{expected_number}: ",
                s(&std::fs::canonicalize(&small).expect("canonical"))
            );
            assert!(
                line.starts_with(&prefix) && line.ends_with(tail),
                "line {i}: {line}"
            );
            count += 1;
        }
        assert_eq!(count, 300_000);
    }
}

/// Durations no request has (up to 10^9 s) are rejected with their reason;
/// the day's other requests keep their exact sum and average, however many such lines come.
#[test]
fn absurd_durations_are_rejected_and_sums_stay_exact() {
    for db in backends() {
        let dir = temp_dir();
        let log = dir.path().join("a.log");
        let rejects = dir.path().join("rejects.txt");
        let mut text = String::new();
        for i in 0..20_000u32 {
            text.push_str(&format!(
                "2024-10-10 12:{:02}:{:02} big /p 200 999999999.999\n",
                i / 60 % 60,
                i % 60
            ));
        }
        // Kept: exactly one day, and durations whose exact sum is known.
        text.push_str("2024-10-10 13:00:00 big /p 200 86400\n");
        text.push_str("2024-10-10 13:00:01 big /p 500 0.25\n");
        text.push_str("2024-10-10 13:00:02 big /p 200 86400.0000006\n");
        std::fs::write(&log, text).expect("write");
        let result = ingest_ok(&db, &["--rejects", s(&rejects), s(&log)]);
        assert_eq!(result["accepted"], 2, "{db:?}: {result}");
        assert_eq!(result["rejected"], 20_001, "{db:?}: {result}");
        let written = std::fs::read_to_string(&rejects).expect("rejects");
        assert_eq!(
            written
                .lines()
                .filter(|l| l.contains("duration longer than one day"))
                .count(),
            20_001,
            "{}",
            &written[..written.len().min(500)]
        );
        let days = db.connect().all_days().expect("rows");
        assert_eq!(days.len(), 1, "{db:?}");
        let stats = &days[0].2;
        assert_eq!((stats.successful, stats.failed), (1, 1), "{db:?}");
        assert_eq!(stats.latency_sum_us, 86_400_250_000, "{db:?}");
        assert_eq!(stats.summary().average_latency, Some(43_200.125), "{db:?}");
    }
}

/// Customer ids `.` and `..` cannot travel in a URL path (clients resolve them away), so the
/// real binary rejects their lines with the customer reason and stores only the others.
#[test]
fn dot_segment_customer_ids_are_rejected_with_a_reason() {
    for db in backends() {
        let dir = temp_dir();
        let log = dir.path().join("a.log");
        let rejects = dir.path().join("rejects.txt");
        let text = "2024-10-10 12:00:00 . /api/v1/resource3 200 0.100\n\
                    2024-10-10 12:00:01 .. /api/v1/resource3 200 0.100\n\
                    2024-10-10 12:00:02 ... /api/v1/resource3 500 0.300\n\
                    2024-10-10 12:00:03 .a /api/v1/resource3 200 0.200\n";
        std::fs::write(&log, text).expect("write");
        let result = ingest_ok(&db, &["--rejects", s(&rejects), s(&log)]);
        assert_eq!(result["accepted"], 2, "{db:?}: {result}");
        assert_eq!(result["rejected"], 2, "{db:?}: {result}");
        let written = std::fs::read_to_string(&rejects).expect("rejects");
        let reason = "invalid customer id (1-64 of A-Z a-z 0-9 . _ -, not . or ..)";
        assert_eq!(written.matches(reason).count(), 2, "{written}");
        let mut customers: Vec<String> = db
            .connect()
            .all_days()
            .expect("rows")
            .into_iter()
            .map(|(customer, _, _)| customer)
            .collect();
        customers.sort();
        assert_eq!(customers, ["...", ".a"], "{db:?}");
    }
}

#[test]
fn the_progress_bar_on_a_terminal_shows_bytes_read_of_the_bytes_to_read() {
    let db = logstats_shared::testing::TestDatabase::sqlite();
    let dir = temp_dir();
    let log = dir.path().join("big.log");
    generate(&log, 300_000, 51);
    let size = std::fs::metadata(&log).expect("size").len();
    // `script` gives the job a terminal, where the bar is drawn.
    let command = format!(
        "{INGEST} --database-url {} --workers 2 --epoch-bytes 1000000 {}",
        db.url,
        s(&log)
    );
    let output = Binary::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("RUST_LOG", "warn")
        .run(RUN_TIMEOUT);
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    let bars: Vec<&str> = shown
        .split('\r')
        .filter(|b| b.starts_with('[') && b.contains("lines/s"))
        .collect();
    assert!(!bars.is_empty(), "no bar in {shown:?}");
    let total_mb = format!("/{:.1}", size as f64 / 1e6);
    let mut last_percent = 0.0;
    for bar in bars {
        let fields: Vec<&str> = bar
            .split(']')
            .nth(1)
            .expect("bar")
            .split_whitespace()
            .collect();
        let percent: f64 = fields[0].trim_end_matches('%').parse().expect("percent");
        let lines: u64 = fields[3].parse().expect("lines");
        assert!(
            fields[1].ends_with(&total_mb) && fields[2] == "MB",
            "{bar} (size {size})"
        );
        assert!(percent >= last_percent, "{bar} after {last_percent}%");
        if percent == 100.0 {
            assert_eq!(lines, 300_000, "{bar}");
        }
        assert!(lines <= 300_000, "{bar}");
        last_percent = percent;
    }
    assert!(shown.contains("lines 300000 | accepted 300000"), "{shown}");
}
