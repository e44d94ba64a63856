//! Where lines come from and how they are written, end to end with the real binary on every
//! backend: JSON lines (from a file and from standard input, in every timestamp and duration
//! form) store exactly the rows the same requests store as native lines; a wrong format is
//! loud and, past `--max-rejected-ratio`, commits nothing; directories read what `--include`
//! names.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{ingest, ingest_ok, job, s, stored_requests, summary, temp_dir, INGEST};
use chrono::{DateTime, Duration as Span, NaiveDate, NaiveDateTime, Utc};
use logstats_shared::testing::spawn::{Binary, RUN_TIMEOUT};
use logstats_shared::testing::{backends, Random, TestDatabase};
use logstats_shared::{DayStats, Latencies};

type Rows = Vec<(String, NaiveDate, DayStats)>;

fn rows(db: &TestDatabase) -> Rows {
    db.connect().all_days().expect("rows")
}

/// A row by what it holds: counts, sum, extremes and every latency with its count. (A
/// histogram's unit, its encoding's step, may differ between a day merged over several
/// commits and one written at once; the values do not.)
type Held = (String, NaiveDate, u64, u64, u128, u64, u64, Vec<(u64, u64)>);

fn held(rows: &Rows) -> Vec<Held> {
    rows.iter()
        .map(|(customer, day, s)| {
            let values = match &s.latencies {
                Latencies::Exact(histogram) => histogram.iter().collect(),
                Latencies::Estimated(_) => panic!("{customer} {day}: not exact"),
            };
            let (min, max) = (s.latency_min_us, s.latency_max_us);
            let sum = s.latency_sum_us;
            (
                customer.clone(),
                *day,
                s.successful,
                s.failed,
                sum,
                min,
                max,
                values,
            )
        })
        .collect()
}

/// Fails with the first row that differs (the rows are too many to print whole).
fn assert_same_rows(actual: &Rows, expected: &Rows, what: &str) {
    let requests = |rows: &Rows| rows.iter().map(|r| r.2.total()).sum::<u64>();
    let (actual_held, expected_held) = (held(actual), held(expected));
    let differing = actual_held.iter().zip(&expected_held).find(|(a, e)| a != e);
    assert!(
        actual.len() == expected.len() && differing.is_none(),
        "{what}: {} rows of {} requests, expected {} rows of {}; first difference: {differing:?}",
        actual.len(),
        requests(actual),
        expected.len(),
        requests(expected),
    );
}

/// One request, as the test writes it in every format.
struct Request {
    at: NaiveDateTime,
    customer: String,
    path: String,
    status: u16,
    /// Whole seconds and decimals, as written: `I` or `I.F`.
    whole: String,
    decimals: String,
}

impl Request {
    fn seconds(&self) -> String {
        match self.decimals.is_empty() {
            true => self.whole.clone(),
            false => format!("{}.{}", self.whole, self.decimals),
        }
    }

    fn native(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.at.format("%Y-%m-%d %H:%M:%S"),
            self.customer,
            self.path,
            self.status,
            self.seconds()
        )
    }

    /// The duration with its point moved `places` to the right (seconds to ms: 3).
    fn scaled(&self, places: usize) -> String {
        let mut decimals = self.decimals.clone();
        while decimals.len() < places {
            decimals.push('0');
        }
        let (moved, rest) = decimals.split_at(places);
        let whole = format!("{}{moved}", self.whole);
        let whole = whole.trim_start_matches('0');
        let whole = if whole.is_empty() { "0" } else { whole };
        match rest.is_empty() {
            true => whole.to_string(),
            false => format!("{whole}.{rest}"),
        }
    }

    /// A JSON line in one of several forms chosen by `random`, its duration in seconds (or
    /// in ms with `ms`).
    fn json(&self, random: &mut Random, ms: bool) -> String {
        let utc: DateTime<Utc> = self.at.and_utc();
        let timestamp = match random.below(6) {
            0 => format!("\"{}\"", utc.format("%Y-%m-%dT%H:%M:%SZ")),
            1 => {
                // Any offset from -12:00 to +14:00 in quarter hours: the UTC day is kept.
                let minutes = random.below(26 * 4) as i64 * 15 - 12 * 60;
                let local = utc.naive_utc() + Span::minutes(minutes);
                let sign = if minutes < 0 { '-' } else { '+' };
                let (h, m) = (minutes.abs() / 60, minutes.abs() % 60);
                format!(
                    "\"{}{sign}{h:02}:{m:02}\"",
                    local.format("%Y-%m-%dT%H:%M:%S")
                )
            }
            2 => format!(
                "\"{}.{:06}Z\"",
                utc.format("%Y-%m-%dT%H:%M:%S"),
                random.below(1_000_000)
            ),
            3 => utc.timestamp().to_string(),
            4 => format!("{}.{}", utc.timestamp(), random.below(1000)),
            _ => format!("\"{}\"", utc.timestamp()),
        };
        let status = match random.below(2) {
            0 => self.status.to_string(),
            _ => format!("\"{}\"", self.status),
        };
        let duration = if ms {
            self.scaled(3)
        } else {
            match random.below(3) {
                0 => self.seconds(),
                1 => format!("\"{}\"", self.seconds()),
                // All digits and an exponent: 1.985 as 1985e-3.
                _ => {
                    let digits = format!("{}{}", self.whole, self.decimals);
                    let digits = digits.trim_start_matches('0');
                    let digits = if digits.is_empty() { "0" } else { digits };
                    format!("{digits}e-{}", self.decimals.len())
                }
            }
        };
        let fields = [
            format!("\"timestamp\":{timestamp}"),
            format!("\"customer_id\":\"{}\"", self.customer),
            format!("\"path\":\"{}\"", self.path),
            format!("\"status\":{status}"),
            format!("\"duration\":{duration}"),
            "\"extra\":{\"nested\":[1,\"two\",null]}".to_string(),
        ];
        // Any key order.
        let start = random.below(fields.len() as u64) as usize;
        let ordered: Vec<&str> = (0..fields.len())
            .map(|i| fields[(start + i) % fields.len()].as_str())
            .collect();
        format!("{{{}}}", ordered.join(","))
    }
}

/// `count` random requests over October 2024, durations with 0-8 decimals (so the rounding to
/// microseconds is exercised).
fn requests(count: usize, seed: u64) -> Vec<Request> {
    let mut random = Random(seed);
    let first = NaiveDate::from_ymd_opt(2024, 10, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("date");
    (0..count)
        .map(|_| {
            let whole = random.below(4).to_string();
            let decimals: String = (0..random.below(9))
                .map(|_| char::from(b'0' + random.below(10) as u8))
                .collect();
            Request {
                at: first + Span::seconds(random.below(31 * 86_400) as i64),
                customer: format!("cust_{}", random.below(40)),
                path: format!("/api/v1/resource{}", random.below(5)),
                status: [200, 201, 301, 400, 404, 500, 503][random.below(7) as usize],
                whole,
                decimals,
            }
        })
        .collect()
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(path, text).expect("write log");
}

#[test]
fn json_lines_store_the_rows_of_the_same_requests_in_native_lines() {
    let dir = temp_dir();
    let requests = requests(20_000, 24);
    let mut random = Random(7);
    let native = dir.path().join("native.log");
    write_lines(&native, requests.iter().map(Request::native));
    let json = dir.path().join("seconds.jsonl");
    write_lines(&json, requests.iter().map(|r| r.json(&mut random, false)));
    let json_ms = dir.path().join("ms.jsonl");
    write_lines(&json_ms, requests.iter().map(|r| r.json(&mut random, true)));
    // Auto: native and JSON lines mixed in one file.
    let mixed = dir.path().join("mixed.log");
    write_lines(
        &mixed,
        requests.iter().enumerate().map(|(i, r)| match i % 2 {
            0 => r.native(),
            _ => r.json(&mut random, false),
        }),
    );
    let expected = {
        let native_db = TestDatabase::sqlite();
        let summary = ingest_ok(&native_db, &["--format", "native", s(&native)]);
        assert_eq!(summary["accepted"], 20_000);
        rows(&native_db)
    };
    assert!(expected.len() > 1_000, "{}", expected.len());
    let runs: [(&Path, &[&str]); 3] = [
        (
            &json,
            &[
                "--format",
                "json",
                "--workers",
                "2",
                "--epoch-bytes",
                "400000",
            ],
        ),
        (
            &json_ms,
            &["--format", "json", "--json-duration-unit", "ms"],
        ),
        (&mixed, &["--workers", "3"]),
    ];
    for (path, flags) in runs {
        for db in backends() {
            let mut args = flags.to_vec();
            args.push(s(path));
            let summary = ingest_ok(&db, &args);
            assert_eq!(summary["accepted"], 20_000, "{path:?} {:?}", db.backend);
            assert_eq!(summary["rejected"], 0, "{path:?}");
            let what = format!("{path:?} on {:?}", db.backend);
            assert_same_rows(&rows(&db), &expected, &what);
        }
    }
    // The same JSON lines from standard input.
    for db in backends() {
        let output = job(&db.url)
            .args(["--json", "--format", "json", "-"])
            .stdin(std::fs::File::open(&json).expect("open"))
            .run(RUN_TIMEOUT);
        assert_eq!(summary(&output)["accepted"], 20_000);
        assert_same_rows(&rows(&db), &expected, &format!("stdin on {:?}", db.backend));
    }
}

/// Lines arrive through a pipe while the job runs: they are committed as they come, before
/// the pipe ends; the last line needs no newline; the counts are those of one file.
#[test]
fn standard_input_is_read_as_it_arrives_and_to_its_end() {
    let requests = requests(6_000, 5);
    let lines: Vec<String> = requests.iter().map(Request::native).collect();
    let expected = {
        let dir = temp_dir();
        let file = dir.path().join("a.log");
        write_lines(&file, lines.iter().cloned());
        let file_db = TestDatabase::sqlite();
        ingest_ok(&file_db, &[s(&file)]);
        rows(&file_db)
    };
    for db in backends() {
        let (reader, mut writer) = std::io::pipe().expect("pipe");
        let mut running = Binary::new(INGEST)
            .args(["--database-url", &db.url, "--json", "-"])
            .env("RUST_LOG", "warn")
            .stdin(reader)
            .start();
        let (first, rest) = lines.split_at(3_000);
        for line in first {
            writeln!(writer, "{line}").expect("write");
        }
        writer.flush().expect("flush");
        // Committed while the pipe is still open.
        let deadline = Instant::now() + Duration::from_secs(20);
        while stored_requests(&db) < 3_000 {
            assert!(
                Instant::now() < deadline,
                "the first half was not committed"
            );
            assert!(running.try_status().is_none(), "{}", running.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(stored_requests(&db), 3_000);
        let (last, middle) = rest.split_last().expect("lines");
        for line in middle {
            writeln!(writer, "{line}").expect("write");
        }
        write!(writer, "{last}").expect("write");
        drop(writer);
        let output = running.finish(RUN_TIMEOUT);
        let summary = summary(&output);
        assert_eq!(summary["lines"], 6_000, "{:?}", db.backend);
        assert_eq!(summary["accepted"], 6_000);
        assert_same_rows(&rows(&db), &expected, &format!("{:?}", db.backend));
        // A pipe is never resumed: an empty one adds nothing, and a run of the same lines
        // again counts them again.
        let output = job(&db.url).args(["--json", "-"]).run(RUN_TIMEOUT);
        assert_eq!(crate::support::summary(&output)["lines"], 0);
    }
}

/// nginx's combined format read as native lines: a warning names the file and the reasons;
/// with `--max-rejected-ratio` the run stops with exit code 4 before committing, so the same
/// file read with the right format is read whole.
#[test]
fn a_wrong_format_is_loud_and_can_stop_the_run_before_committing() {
    let dir = temp_dir();
    let requests = requests(500, 9);
    let json = dir.path().join("requests.jsonl");
    let mut random = Random(3);
    write_lines(&json, requests.iter().map(|r| r.json(&mut random, false)));
    let combined = dir.path().join("access.log");
    std::fs::write(
        &combined,
        "10.0.0.1 - - [10/Oct/2024:13:55:36 +0000] \"GET /api/v1/orders HTTP/1.1\" 200 512 \"-\" \"curl/8.5\"\n\
         10.0.0.2 - - [10/Oct/2024:13:55:37 +0000] \"GET /healthz HTTP/1.1\" 200 2 \"-\" \"kube-probe/1.30\"\n",
    )
    .expect("write");
    for db in backends() {
        // Loud, but not stopped: exit 0, the WARN names the file and the first reasons.
        let output = ingest(&db, &[s(&combined)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let path = std::fs::canonicalize(&combined).expect("canonical");
        let warning = format!(
            "{}: 2 of its first 2 lines were rejected (line 1: expected 6 fields separated by \
             single spaces)",
            path.display()
        );
        assert!(stderr.contains(&warning), "{stderr}");

        // JSON lines read as native ones: over the ratio, nothing committed, exit code 4.
        let output = ingest(
            &db,
            &[
                "--format",
                "native",
                "--max-rejected-ratio",
                "0.5",
                s(&json),
            ],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(4), "{stderr}");
        assert!(
            stderr.contains(
                "500 of the 500 lines read in this run were rejected, more than \
                             --max-rejected-ratio 0.5 allows"
            ),
            "{stderr}"
        );
        assert_eq!(stored_requests(&db), 0);
        // Read again with the right format: every line, none skipped.
        let summary = ingest_ok(
            &db,
            &["--format", "json", "--max-rejected-ratio", "0", s(&json)],
        );
        assert_eq!(summary["accepted"], 500, "{:?}", db.backend);
        assert_eq!(stored_requests(&db), 500);
    }
    // A ratio that is not one is a usage error.
    let db = TestDatabase::sqlite();
    let output = ingest(&db, &["--max-rejected-ratio", "1.5", s(&json)]);
    assert_eq!(output.status.code(), Some(2));
}

/// A directory argument reads the files `--include` names (`*.log` by default).
#[test]
fn directories_read_the_files_include_names() {
    let dir = temp_dir();
    let requests = requests(30, 1);
    let mut random = Random(2);
    write_lines(
        &dir.path().join("a.log"),
        requests[..10].iter().map(Request::native),
    );
    write_lines(
        &dir.path().join("b.jsonl"),
        requests[10..25].iter().map(|r| r.json(&mut random, false)),
    );
    write_lines(
        &dir.path().join("c.txt"),
        requests[25..].iter().map(Request::native),
    );
    let directory = s(dir.path());
    let cases: [(&[&str], u64); 4] = [
        (&[], 10),
        (&["--include", "*.jsonl"], 15),
        (&["--include", "*.log", "--include", "*.jsonl"], 25),
        (&["--include", "[bc].*"], 20),
    ];
    for (flags, lines) in cases {
        let db = TestDatabase::sqlite();
        let mut args = flags.to_vec();
        args.push(directory);
        assert_eq!(ingest_ok(&db, &args)["accepted"], lines, "{flags:?}");
    }
    let db = TestDatabase::sqlite();
    let output = ingest(&db, &["--include", "logs/*.log", directory]);
    assert_eq!(output.status.code(), Some(2));
}
