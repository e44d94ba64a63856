//! The recipes of `docs/RECIPES.md`, as the page shows them: every `logstats-ingest` command
//! that names a sample file under `docs/recipes/` is run with the real binary, from the
//! repository's root, on every backend, and must store exactly the rows of the page's table.

use std::path::{Path, PathBuf};

use crate::support::{job, summary};
use chrono::NaiveDate;
use logstats_shared::testing::backends;
use logstats_shared::testing::spawn::RUN_TIMEOUT;

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the crate")
        .to_path_buf()
}

/// A command line split as a POSIX shell splits one without variables: at spaces, with
/// single-quoted parts kept whole.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    assert!(!quoted, "unbalanced quote in {line:?}");
    if any {
        words.push(word);
    }
    words
}

/// The page's sample commands: (sample file, arguments after `logstats-ingest`).
fn sample_commands(root: &Path) -> Vec<(String, Vec<String>)> {
    let page = std::fs::read_to_string(root.join("docs/RECIPES.md")).expect("docs/RECIPES.md");
    page.lines()
        .filter(|line| line.starts_with("logstats-ingest ") && line.contains("docs/recipes/"))
        .map(|line| {
            let words = shell_words(line);
            let sample = words
                .iter()
                .find(|w| w.starts_with("docs/recipes/"))
                .expect("a sample file")
                .clone();
            (sample, words[1..].to_vec())
        })
        .collect()
}

/// (customer, day, successful, failed, shortest, longest and summed latency in µs): the
/// table of the page (at most two requests a row, so these are all of them).
type Row = (String, NaiveDate, u64, u64, u64, u64, u128);

fn expected_rows() -> Vec<Row> {
    let day = |d| NaiveDate::from_ymd_opt(2024, 10, d).expect("date");
    vec![
        ("cust_1".into(), day(10), 1, 0, 120_000, 120_000, 120_000),
        ("cust_1".into(), day(11), 0, 1, 15_000, 15_000, 15_000),
        ("cust_2".into(), day(11), 1, 1, 2_000, 1_250_000, 1_252_000),
    ]
}

#[test]
fn every_recipe_stores_the_rows_its_page_shows() {
    let root = repository_root();
    let commands = sample_commands(&root);
    let mut samples: Vec<String> = std::fs::read_dir(root.join("docs/recipes"))
        .expect("docs/recipes")
        .map(|entry| {
            let name = entry.expect("entry").file_name();
            format!("docs/recipes/{}", name.to_string_lossy())
        })
        .collect();
    samples.sort();
    let mut run: Vec<String> = commands.iter().map(|(sample, _)| sample.clone()).collect();
    run.sort();
    assert_eq!(
        run, samples,
        "each sample file has exactly one command on the page"
    );
    assert_eq!(samples.len(), 6);
    for (sample, args) in &commands {
        for db in backends() {
            let output = job(&db.url)
                .arg("--json")
                .args(args)
                .current_dir(&root)
                .run(RUN_TIMEOUT);
            let summary = summary(&output);
            let what = format!("{sample} on {:?}", db.backend);
            assert_eq!(summary["lines"], 5, "{what}");
            assert_eq!(summary["accepted"], 4, "{what}");
            assert_eq!(summary["rejected"], 1, "{what}");
            assert_eq!(summary["rows_written"], 3, "{what}");
            let stored: Vec<Row> = db
                .connect()
                .all_days()
                .expect("rows")
                .into_iter()
                .map(|(customer, day, stats)| {
                    let (min, max) = (stats.latency_min_us, stats.latency_max_us);
                    let sum = stats.latency_sum_us;
                    (customer, day, stats.successful, stats.failed, min, max, sum)
                })
                .collect();
            assert_eq!(stored, expected_rows(), "{what}");
        }
    }
}

/// Every sample pushed as Vector's `http` sink and Fluent Bit's `http` output send it (gzip
/// JSON lines, `Content-Type: application/x-ndjson`, no key, sent a second time as a retry) to
/// a job started with the recipe's flags and `--push-key-from-body` (docs/PUSH.md): the rows of
/// the page, counted once.
#[test]
fn every_recipe_pushed_as_a_shipper_sends_it_stores_the_same_rows_once() {
    use std::io::Write;
    let root = repository_root();
    for (sample, args) in sample_commands(&root) {
        let flags: Vec<&String> = args.iter().filter(|a| **a != sample).collect();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder
            .write_all(&std::fs::read(root.join(&sample)).expect("sample"))
            .expect("gzip");
        let body = encoder.finish().expect("gzip");
        for db in backends() {
            let port = logstats_shared::testing::spawn::free_port();
            let address = format!("127.0.0.1:{port}");
            let spawned = job(&db.url)
                .args(&flags)
                .args(["--listen", &address, "--push-key-from-body"])
                .current_dir(&root)
                .start_ready(RUN_TIMEOUT, |_| {
                    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                });
            let what = format!("{sample} pushed on {:?}", db.backend);
            for replayed in [false, true] {
                let response = ureq::post(&format!("http://{address}/v1/lines"))
                    .set("Content-Type", "application/x-ndjson")
                    .set("Content-Encoding", "gzip")
                    .send_bytes(&body)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(
                    response.header("idempotency-replayed") == Some("true"),
                    replayed,
                    "{what}"
                );
                let answer: serde_json::Value = response.into_json().expect("json");
                assert_eq!(
                    answer,
                    serde_json::json!({"accepted": 4, "rejected": 1, "late": 0}),
                    "{what}"
                );
            }
            let stored: Vec<Row> = db
                .connect()
                .all_days()
                .expect("rows")
                .into_iter()
                .map(|(customer, day, stats)| {
                    let (min, max) = (stats.latency_min_us, stats.latency_max_us);
                    let sum = stats.latency_sum_us;
                    (customer, day, stats.successful, stats.failed, min, max, sum)
                })
                .collect();
            assert_eq!(stored, expected_rows(), "{what}");
            spawned.signal("TERM");
            spawned.finish(RUN_TIMEOUT);
        }
    }
}
