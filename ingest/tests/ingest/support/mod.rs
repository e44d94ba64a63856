//! Helpers shared by the ingest integration tests: generated logs, the real binary, and exact
//! statistics computed without the project's own parser.

pub mod cluster;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use logstats_ingest::generate::{write_lines, GeneratorConfig, TimeWindow};
use logstats_shared::testing::spawn::{Binary, Spawned, RUN_TIMEOUT};
use logstats_shared::testing::TestDatabase;
use logstats_shared::{Store, StoreOptions};
use serde_json::Value;

pub const INGEST: &str = env!("CARGO_BIN_EXE_logstats-ingest");

/// Exact stats of one (customer, day), computed without the project's parser or digest.
#[derive(Debug, Default, Clone)]
pub struct Expected {
    pub successful: u64,
    pub failed: u64,
    pub latencies_ms: Vec<u64>,
    /// The durations as written, parsed straight to seconds (what pandas would read).
    pub latencies_s: Vec<f64>,
}

impl Expected {
    pub fn add(&mut self, other: &Expected) {
        self.successful += other.successful;
        self.failed += other.failed;
        self.latencies_ms.extend_from_slice(&other.latencies_ms);
        self.latencies_s.extend_from_slice(&other.latencies_s);
    }

    /// numpy's default percentile (`numpy.percentile(x, p)`, linear) of the latencies, in
    /// seconds rounded to the microsecond; `None` without latencies.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        numpy_percentile(&self.latencies_s, p)
    }
}

pub use logstats_shared::testing::numpy_percentile;

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
        e.latencies_s.push(seconds);
    }
    out
}

pub fn generate(path: &Path, lines: u64, seed: u64) {
    generate_for(path, lines, seed, logstats_ingest::generate::CUSTOMERS);
}

/// [`generate`] over `customers` customers.
pub fn generate_for(path: &Path, lines: u64, seed: u64, customers: u32) {
    let day = logstats_shared::record::parse_date(b"2024-11-09").expect("date");
    let config = GeneratorConfig {
        lines,
        seed,
        window: TimeWindow::through_day(day).expect("window"),
        customers,
    };
    let file = std::fs::File::create(path).expect("create log");
    write_lines(&config, std::io::BufWriter::new(file)).expect("write log");
}

/// `logstats-ingest --database-url DB_URL`, to be started through the shared harness (output in
/// files, killed when dropped); the caller adds its arguments and environment.
pub fn job(db_url: &str) -> Binary {
    Binary::new(INGEST).args(["--database-url", db_url])
}

pub fn ingest(db: &TestDatabase, args: &[&str]) -> Output {
    run_within(&db.url, args, RUN_TIMEOUT)
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

/// Runs `logstats-ingest` with `args`, killing it if it has not exited after `timeout`.
pub fn run_within(db_url: &str, args: &[&str], timeout: Duration) -> Output {
    start_ingest(db_url, args).finish(timeout)
}

/// [`ingest`] started, not run: `logstats-ingest --json ARGS` on `db_url` through the shared
/// harness (output in files, killed when dropped).
pub fn start_ingest(db_url: &str, args: &[&str]) -> Spawned {
    job(db_url)
        .arg("--json")
        .args(args)
        .env("RUST_LOG", "warn")
        .start()
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// The JSON summary of a successful run.
pub fn summary(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "ingest failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("summary is JSON")
}

/// Requests stored, over every customer and day.
pub fn stored_requests(db: &TestDatabase) -> u64 {
    db.connect()
        .all_days()
        .expect("rows")
        .iter()
        .map(|(_, _, s)| s.successful + s.failed)
        .sum()
}

pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf8 path")
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("logstats-e2e-")
        .tempdir()
        .expect("tempdir")
}

/// The API app, started in-process on a random port, as the binary starts it.
///
/// In-process rather than the real `logstats-api` through the shared harness: these are
/// `logstats-ingest`'s tests, and cargo gives a test only its own package's binaries
/// (`CARGO_BIN_EXE_*`), so the API binary is not built for them nor has a path they could know.
pub struct Api {
    base: String,
    handle: actix_web::dev::ServerHandle,
}

impl Api {
    pub fn start(url: &str) -> Api {
        let store = Store::connect(url, &StoreOptions::default()).expect("connect");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = logstats_api::startup::run(listener, store, Some(1)).expect("server");
                tx.send(server.handle()).expect("send handle");
                server.await
            })
        });
        let handle = rx.recv().expect("server started");
        Api { base, handle }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let response = match ureq::get(&format!("{}{path}", self.base)).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {path}: {e}"),
        };
        let status = response.status();
        (status, response.into_json().expect("JSON body"))
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)));
    }
}
