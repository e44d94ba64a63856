//! Helpers shared by the ingest integration tests: generated logs, the real binary, and exact
//! statistics computed without the project's own parser.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use chrono::{NaiveDate, NaiveDateTime};
use logstats_ingest::generate::{write_lines, GeneratorConfig, TimeWindow};
use logstats_shared::testing::TestDatabase;
use serde_json::Value;

pub const INGEST: &str = env!("CARGO_BIN_EXE_logstats-ingest");

/// Exact stats of one (customer, day), computed without the project's parser or digest.
#[derive(Debug, Default, Clone)]
pub struct Expected {
    pub successful: u64,
    pub failed: u64,
    pub latencies_ms: Vec<u64>,
}

impl Expected {
    pub fn add(&mut self, other: &Expected) {
        self.successful += other.successful;
        self.failed += other.failed;
        self.latencies_ms.extend_from_slice(&other.latencies_ms);
    }
}

/// Reads the log the simple way: split on spaces, chrono for the timestamp.
pub fn expected_stats(log: &Path) -> BTreeMap<(String, NaiveDate), Expected> {
    let bytes = std::fs::read(log).expect("read log");
    let mut out: BTreeMap<(String, NaiveDate), Expected> = BTreeMap::new();
    for raw in bytes.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(raw) else {
            continue;
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() != 6 {
            continue;
        }
        let Ok(at) = NaiveDateTime::parse_from_str(
            &format!("{} {}", fields[0], fields[1]),
            "%Y-%m-%d %H:%M:%S",
        ) else {
            continue;
        };
        let (Ok(status), Ok(seconds)) = (fields[4].parse::<u16>(), fields[5].parse::<f64>()) else {
            continue;
        };
        if !(100..=599).contains(&status) || !seconds.is_finite() || seconds < 0.0 {
            continue;
        }
        let e = out.entry((fields[2].to_string(), at.date())).or_default();
        if status < 400 {
            e.successful += 1;
        } else {
            e.failed += 1;
        }
        e.latencies_ms.push((seconds * 1000.0).round() as u64);
    }
    out
}

pub fn generate(path: &Path, lines: u64, seed: u64) {
    let day = logstats_shared::record::parse_date(b"2024-11-09").expect("date");
    let config = GeneratorConfig {
        lines,
        seed,
        window: TimeWindow::through_day(day).expect("window"),
    };
    let file = std::fs::File::create(path).expect("create log");
    write_lines(&config, std::io::BufWriter::new(file)).expect("write log");
}

pub fn ingest(db: &TestDatabase, args: &[&str]) -> Output {
    Command::new(INGEST)
        .args(["--database-url", &db.url, "--json"])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run logstats-ingest")
}

pub fn ingest_ok(db: &TestDatabase, args: &[&str]) -> Value {
    let output = ingest(db, args);
    assert!(
        output.status.success(),
        "ingest failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("summary is JSON")
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("logstats-e2e-")
        .tempdir()
        .expect("tempdir")
}
