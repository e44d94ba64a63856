//! Continuous, exactly-once ingestion on SQLite and PostgreSQL: follow mode, SIGKILL at random
//! instants, rotation and truncation, a database outage, and two jobs on the same files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::{expected_stats, generate, ingest_ok, job, temp_dir};
use chrono::NaiveDate;
use logstats_shared::testing::outage::OutageProxy;
use logstats_shared::testing::spawn::{Spawned, RUN_TIMEOUT};
use logstats_shared::testing::{backends, servers};
use logstats_shared::{Store, StoreOptions};
use serde_json::Value;

/// Held by the tests of this module that load both cores and by the one that times freshness, so
/// the timing is not measured while another of them saturates the machine (the other modules of
/// the binary do not take it).
static EXCLUSIVE: Mutex<()> = Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// (successful, failed, latency sum in microseconds) per (customer, day).
type Totals = BTreeMap<(String, NaiveDate), (u64, u64, u128)>;

fn stored_totals(store: &Store) -> Totals {
    store
        .all_days()
        .expect("rows")
        .into_iter()
        .map(|(c, d, s)| ((c, d), (s.successful, s.failed, s.latency_sum_us)))
        .collect()
}

fn expected_totals(log: &Path) -> Totals {
    expected_stats(log)
        .into_iter()
        .map(|(k, e)| {
            (
                k,
                (
                    e.successful,
                    e.failed,
                    u128::from(e.latencies_ms.iter().sum::<u64>()) * 1000,
                ),
            )
        })
        .collect()
}

fn requests(store: &Store) -> u64 {
    stored_totals(store).values().map(|t| t.0 + t.1).sum()
}

/// A running `logstats-ingest --json` job (through the shared harness: output in files, killed if
/// the test ends or panics before it exits).
fn spawn(db_url: &str, args: &[&str]) -> Spawned {
    job(db_url)
        .arg("--json")
        .args(args)
        .env("RUST_LOG", "info")
        .start()
}

/// Polls `check` every 10 ms until it holds; returns how long that took.
fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Sends SIGTERM and expects a clean exit with a JSON summary within `timeout`.
fn terminate(mut job: Spawned, timeout: Duration) -> Value {
    job.signal("TERM");
    let status = job.wait_for(timeout);
    assert!(status.is_some(), "no exit within {timeout:?} of SIGTERM");
    let (stdout, stderr) = (job.stdout(), job.stderr());
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}: {stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("summary {stdout:?}: {e}; {stderr}"))
}

fn lines(customer: &str, count: usize, failed_every: usize) -> String {
    (0..count)
        .map(|i| {
            let status = if failed_every > 0 && i % failed_every == 0 {
                500
            } else {
                200
            };
            format!(
                "2024-11-09 10:{:02}:{:02} {customer} /p {status} 0.{:03}\n",
                i / 60 % 60,
                i % 60,
                i % 1000
            )
        })
        .collect()
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    file.write_all(text.as_bytes()).expect("append");
}

fn epoch_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("date")
}

fn customer_requests(store: &Store, customer: &str) -> u64 {
    store
        .customer_days(customer, epoch_day(), None)
        .map(|days| days.iter().map(|(_, s)| s.total()).sum())
        .unwrap_or(0)
}

#[test]
fn follow_mode_makes_appended_lines_visible_within_a_second() {
    let _exclusive = exclusive();
    follow_freshness(&[]);
}

#[test]
fn follow_mode_by_polling_alone_is_as_fresh() {
    let _exclusive = exclusive();
    follow_freshness(&["--poll"]);
}

/// Appends to a followed file and times how long until the lines are committed.
fn follow_freshness(extra_args: &[&str]) {
    for db in backends() {
        let dir = temp_dir();
        let log = dir.path().join("api_requests.log");
        std::fs::write(&log, "").expect("create");
        let store = Store::connect(&db.url, &StoreOptions::default()).expect("connect");
        let key = logstats_ingest::source_key_of(&log).expect("source key");
        let mut args = vec!["--follow", log.to_str().expect("utf8")];
        args.extend_from_slice(extra_args);
        let child = spawn(&db.url, &args);
        wait_until(Duration::from_secs(20), || {
            store.source_offset(&key).ok().flatten().is_some()
        })
        .expect("the job took its lease");

        append(&log, &lines("cust_fresh", 100, 4));
        let visible = wait_until(Duration::from_secs(5), || {
            customer_requests(&store, "cust_fresh") == 100
        })
        .expect("appended lines became visible");
        assert!(
            visible < Duration::from_secs(1),
            "{:?}: visible after {visible:?}",
            db.backend
        );

        // A partial last line is held until its newline arrives.
        append(&log, "2024-11-09 11:00:00 cust_fresh /p 404 1.250");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(customer_requests(&store, "cust_fresh"), 100);
        append(&log, "\n");
        let visible = wait_until(Duration::from_secs(5), || {
            customer_requests(&store, "cust_fresh") == 101
        })
        .expect("completed line became visible");
        assert!(
            visible < Duration::from_secs(1),
            "visible after {visible:?}"
        );

        let summary = terminate(child, Duration::from_secs(5));
        assert_eq!(summary["accepted"], 101);
        // The file was empty when opened; its stored fingerprint grew with it.
        let stored = store.source_offset(&key).expect("query").expect("row");
        assert_eq!(&stored.fingerprint[..2], &256u16.to_le_bytes());
        assert_eq!(summary["rejected"], 0);
        let days = store
            .customer_days("cust_fresh", epoch_day(), None)
            .expect("days");
        assert_eq!(days.len(), 1);
        assert_eq!((days[0].1.successful, days[0].1.failed), (75, 26));
        assert_eq!(
            days[0].1.latency_sum_us,
            (0..100).map(|i| i * 1000).sum::<u128>() + 1_250_000
        );
    }
}

#[test]
fn rotation_truncation_and_new_files_are_followed() {
    for db in backends() {
        let dir = temp_dir();
        let log = dir.path().join("api.log");
        std::fs::write(&log, lines("cust_a", 100, 0)).expect("write");
        let store = Store::connect(&db.url, &StoreOptions::default()).expect("connect");
        let child = spawn(&db.url, &["--follow", dir.path().to_str().expect("utf8")]);
        let timeout = Duration::from_secs(20);
        wait_until(timeout, || requests(&store) == 100).expect("initial file read");

        // logrotate: rename, the writer finishes a line into the old file, a new file appears.
        let rotated = dir.path().join("api.log.1");
        std::fs::rename(&log, &rotated).expect("rename");
        append(&rotated, &lines("cust_a", 10, 0));
        std::fs::write(&log, lines("cust_b", 50, 0)).expect("new file");
        wait_until(timeout, || requests(&store) == 160)
            .unwrap_or_else(|| panic!("{:?}: rotation: {} requests", db.backend, requests(&store)));

        // copytruncate: the file is emptied and written again from the start.
        std::fs::write(&log, lines("cust_c", 20, 0)).expect("truncate");
        wait_until(timeout, || requests(&store) == 180)
            .unwrap_or_else(|| panic!("truncation: {} requests", requests(&store)));

        // A new *.log file in the directory.
        std::fs::write(dir.path().join("other.log"), lines("cust_d", 5, 0)).expect("write");
        wait_until(timeout, || requests(&store) == 185)
            .unwrap_or_else(|| panic!("new file: {} requests", requests(&store)));

        // Past the rotation grace, so the old file's last epoch has been committed too.
        std::thread::sleep(Duration::from_millis(2500));
        terminate(child, Duration::from_secs(5));
        for (customer, count) in [
            ("cust_a", 110),
            ("cust_b", 50),
            ("cust_c", 20),
            ("cust_d", 5),
        ] {
            assert_eq!(customer_requests(&store, customer), count, "{customer}");
        }
        // A restart resumes every file where it stopped: the rotated file's commits did not
        // take over the offset row of the new file at the same path.
        let again = ingest_ok(&db, &[dir.path().to_str().expect("utf8")]);
        assert_eq!(again["lines"], 0, "{:?}", db.backend);
    }
}

/// xorshift64*, seeded from the clock and printed, so a failing run can be told apart.
fn random_delays(count: usize) -> Vec<Duration> {
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("kill delays seed: {state}");
    (0..count)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            Duration::from_millis(200 + state.wrapping_mul(0x2545_F491_4F6C_DD1D) % 2_300)
        })
        .collect()
}

#[test]
fn sigkill_at_random_instants_then_restart_gives_exact_totals() {
    let _exclusive = exclusive();
    let dir = temp_dir();
    let log = dir.path().join("big.log");
    generate(&log, 1_000_000, 99);
    let expected = expected_totals(&log);
    let log = log.to_str().expect("utf8");
    for db in backends() {
        let store = Store::connect(&db.url, &StoreOptions::default()).expect("connect");
        for delay in random_delays(3) {
            let mut job = spawn(&db.url, &["--epoch-bytes", "4000000", log]);
            std::thread::sleep(delay);
            job.kill();
            eprintln!(
                "{:?}: killed after {delay:?} with {} requests stored",
                db.backend,
                requests(&store)
            );
        }
        let summary = ingest_ok(&db, &["--epoch-bytes", "4000000", log]);
        assert_eq!(summary["rejected"], 0);
        assert_eq!(stored_totals(&store), expected, "{:?}", db.backend);
        // And nothing more on a further run.
        assert_eq!(ingest_ok(&db, &[log])["lines"], 0);
    }
}

#[test]
fn two_jobs_on_the_same_file_never_double_count() {
    let _exclusive = exclusive();
    let dir = temp_dir();
    let log = dir.path().join("shared.log");
    generate(&log, 200_000, 5);
    let expected = expected_totals(&log);
    let log = log.to_str().expect("utf8");
    for db in backends() {
        // A following job never gives its lease up by itself: once it has committed the file,
        // a second job started on it must wait for the lease, then find nothing left to read.
        let follower = spawn(&db.url, &["--epoch-bytes", "1000000", "--follow", log]);
        let store = Store::connect(&db.url, &StoreOptions::default()).expect("connect");
        assert!(
            wait_until(Duration::from_secs(60), || stored_totals(&store)
                == expected)
            .is_some(),
            "{:?}: the following job did not commit the file",
            db.backend
        );
        let batch = spawn(&db.url, &["--epoch-bytes", "1000000", log]);
        std::thread::sleep(Duration::from_secs(1));
        follower.signal("TERM");
        let mut accepted = 0;
        let mut waited = false;
        for job in [follower, batch] {
            let output = job.finish(RUN_TIMEOUT);
            let stderr = String::from_utf8_lossy(&output.stderr);
            waited |= stderr.contains("is being ingested by job");
            assert!(output.status.success(), "{stderr}");
            let summary: Value = serde_json::from_slice(&output.stdout).expect("summary");
            accepted += summary["accepted"].as_u64().expect("accepted");
        }
        assert_eq!(accepted, 200_000, "{:?}", db.backend);
        assert!(
            waited,
            "the second job reported that it waits for the first"
        );
        assert_eq!(stored_totals(&store), expected);
    }
}

#[test]
fn a_database_outage_loses_and_duplicates_nothing() {
    // Every server backend (PostgreSQL, and MySQL/MariaDB with FEATURES=mysql): the job talks
    // to it through a proxy that is cut and restarted.
    for db in servers() {
        let dir = temp_dir();
        let log = dir.path().join("api.log");
        std::fs::write(&log, lines("cust_o", 200, 5)).expect("write");
        let store = Store::connect(&db.url, &StoreOptions::default()).expect("connect");
        let proxy = OutageProxy::start(&db);
        let child = spawn(proxy.url(), &["--follow", log.to_str().expect("utf8")]);
        let timeout = Duration::from_secs(20);
        wait_until(timeout, || customer_requests(&store, "cust_o") == 200)
            .unwrap_or_else(|| panic!("{:?}: the first lines", db.backend));

        proxy.cut();
        append(&log, &lines("cust_o", 300, 3));
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            customer_requests(&store, "cust_o"),
            200,
            "{:?}: nothing commits during the outage",
            db.backend
        );

        proxy.restore();
        wait_until(timeout, || customer_requests(&store, "cust_o") == 500).unwrap_or_else(|| {
            panic!(
                "{:?}: after the outage: {}",
                db.backend,
                customer_requests(&store, "cust_o")
            )
        });
        let summary = terminate(child, Duration::from_secs(10));
        assert_eq!(summary["accepted"], 500, "{:?}", db.backend);
        let days = store
            .customer_days("cust_o", epoch_day(), None)
            .expect("days");
        assert_eq!(days.len(), 1, "{:?}", db.backend);
        assert_eq!(
            (days[0].1.successful, days[0].1.failed),
            (160 + 200, 40 + 100),
            "{:?}",
            db.backend
        );
    }
}

#[test]
fn sigterm_during_a_database_outage_stops_the_job_at_once() {
    // Small epochs pile up while the database is away: the committer retries one, its queue
    // fills, the next epoch waits in the Commit operator and planning stops. A signal still
    // ends the job within seconds, with the error that says what was not committed.
    for db in servers() {
        let dir = temp_dir();
        let log = dir.path().join("api.log");
        std::fs::write(&log, lines("cust_t", 200, 5)).expect("write");
        let store = Store::connect(&db.url, &StoreOptions::default()).expect("connect");
        let proxy = OutageProxy::start(&db);
        let path = log.to_str().expect("utf8");
        let flags = ["--epoch-bytes", "2000", "--epoch-memory", "0"];
        let mut child = spawn(proxy.url(), &[&["--follow", path][..], &flags].concat());
        let timeout = Duration::from_secs(20);
        wait_until(timeout, || customer_requests(&store, "cust_t") == 200)
            .unwrap_or_else(|| panic!("{:?}: the first lines", db.backend));

        proxy.cut();
        // About 15 kB: seven epochs of 2 kB, more than the committer, its queue and the
        // pipeline take.
        append(&log, &lines("cust_t", 300, 3));
        wait_until(timeout, || child.stderr().contains("retrying with backoff"))
            .unwrap_or_else(|| panic!("{:?}: no retry: {}", db.backend, child.stderr()));
        std::thread::sleep(Duration::from_secs(1));

        child.signal("TERM");
        let status = child.wait_for(Duration::from_secs(10));
        let stderr = child.stderr();
        assert!(
            status.is_some(),
            "{:?}: no exit within 10 s of SIGTERM: {stderr}",
            db.backend
        );
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(1),
            "{:?}: {stderr}",
            db.backend
        );
        assert!(
            stderr.contains("stopped while the database was unavailable"),
            "{:?}: {stderr}",
            db.backend
        );
        proxy.restore();
        assert_eq!(customer_requests(&store, "cust_t"), 200, "{:?}", db.backend);
    }
}
