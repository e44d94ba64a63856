//! The data's life on the real binary, on every backend: `prune` and `--retain` (the days go,
//! with everything derived from them; later lines of them count late and are never stored),
//! and a database migrated by a newer version, refused.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{
    expected_stats, generate, ingest, ingest_ok, job, s, start_ingest, stored_requests, summary,
    temp_dir, Api,
};
use chrono::{Days, NaiveDate, Utc};
use logstats_shared::testing::spawn::RUN_TIMEOUT;
use logstats_shared::testing::{backends, TestDatabase};
use logstats_shared::Backend;
use serde_json::Value;

fn append(path: &Path, lines: &[String]) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .expect("open for appending");
    for line in lines {
        writeln!(file, "{line}").expect("append");
    }
}

/// Requests stored per (customer, day).
fn stored(db: &TestDatabase) -> BTreeMap<(String, NaiveDate), u64> {
    db.connect()
        .all_days()
        .expect("rows")
        .into_iter()
        .map(|(customer, day, stats)| ((customer, day), stats.total()))
        .collect()
}

/// `logstats-ingest prune ARGS --json` on `db`: its exit code, stdout as JSON (if any), stderr.
fn prune(db: &TestDatabase, args: &[&str]) -> (Option<i32>, Value, String) {
    let output = job(&db.url)
        .arg("prune")
        .args(args)
        .arg("--json")
        .run(RUN_TIMEOUT);
    let stdout = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stdout, stderr)
}

#[test]
fn prune_removes_old_days_and_later_lines_of_them_count_late() {
    let dir = temp_dir();
    let log = dir.path().join("api.log");
    generate(&log, 3_000, 11);
    let expected = expected_stats(&log);
    let first_kept = NaiveDate::from_ymd_opt(2024, 10, 20).expect("date");
    let kept: BTreeMap<(String, NaiveDate), u64> = expected
        .iter()
        .filter(|((_, day), _)| *day >= first_kept)
        .map(|(key, e)| (key.clone(), e.successful + e.failed))
        .collect();
    let gone: Vec<&(String, NaiveDate)> = expected
        .keys()
        .filter(|(_, day)| *day < first_kept)
        .collect();
    assert!(
        !gone.is_empty() && !kept.is_empty(),
        "the log spans the date"
    );
    for db in backends() {
        ingest_ok(&db, &[s(&log)]);
        let (code, pruned, stderr) = prune(&db, &["--before", "2024-10-20"]);
        assert_eq!(code, Some(0), "{db:?}: {stderr}");
        let customers: BTreeSet<&str> = gone.iter().map(|(c, _)| c.as_str()).collect();
        let days: BTreeSet<NaiveDate> = gone.iter().map(|(_, d)| *d).collect();
        assert_eq!(
            pruned,
            serde_json::json!({
                "first_kept_day": "2024-10-20",
                "customer_days": gone.len(),
                "fleet_days": days.len(),
                "customers": customers.len(),
            }),
            "{db:?}"
        );
        assert_eq!(stored(&db), kept, "{db:?}");
        let api = Api::start(&db.url);
        let (status, fleet) = api.get("/stats?from=2024-10-01&to=2024-11-30");
        assert_eq!(status, 200);
        assert_eq!(
            fleet["total"]["total_requests"],
            kept.values().sum::<u64>(),
            "{db:?}"
        );
        assert_eq!(fleet["days"][0]["date"], "2024-10-20", "{db:?}");

        // Lines of a pruned day arrive: counted late (and in the rejects file), never stored;
        // lines of a kept day go in.
        let more = dir.path().join(format!("more-{:?}.log", db.backend));
        append(
            &more,
            &[
                "2024-10-15 10:00:00 cust_1 /a 200 0.100".to_string(),
                "2024-10-19 23:59:59 cust_2 /a 500 0.200".to_string(),
                "2024-10-15 11:00:00 cust_9 /a 200 0.300".to_string(),
                "2024-10-20 00:00:00 cust_1 /a 200 0.400".to_string(),
                "2024-11-01 12:00:00 cust_9 /a 404 0.500".to_string(),
            ],
        );
        let rejects = dir.path().join(format!("rejects-{:?}.txt", db.backend));
        let run = ingest_ok(&db, &["--rejects", s(&rejects), s(&more)]);
        assert_eq!(
            (&run["lines"], &run["accepted"], &run["late"]),
            (&Value::from(5), &Value::from(2), &Value::from(3)),
            "{db:?}: {run}"
        );
        let late = std::fs::read_to_string(&rejects).expect("the rejects file");
        assert_eq!(late.matches(": late: ").count(), 3, "{late}");
        let mut now_kept = kept.clone();
        let day = |text: &str| NaiveDate::parse_from_str(text, "%F").expect("date");
        *now_kept
            .entry(("cust_1".into(), day("2024-10-20")))
            .or_default() += 1;
        *now_kept
            .entry(("cust_9".into(), day("2024-11-01")))
            .or_default() += 1;
        assert_eq!(stored(&db), now_kept, "{db:?}");
        let (_, fleet) = api.get("/stats?from=2024-10-01&to=2024-11-30");
        assert_eq!(
            fleet["total"]["total_requests"],
            now_kept.values().sum::<u64>()
        );

        // The horizon only moves forward; a date too far ahead, or not a date, is refused.
        let (code, again, _) = prune(&db, &["--before", "2024-10-01"]);
        assert_eq!(code, Some(0));
        assert_eq!(again["first_kept_day"], "2024-10-20");
        assert_eq!(again["customer_days"], 0);
        let text = job(&db.url)
            .args(["prune", "--before", "2024-10-02"])
            .run(RUN_TIMEOUT);
        assert!(
            String::from_utf8_lossy(&text.stderr)
                .contains("nothing to prune: the days before 2024-10-20 were pruned already"),
            "{}",
            String::from_utf8_lossy(&text.stderr)
        );
        let future = (Utc::now().date_naive() + Days::new(2)).to_string();
        let (code, _, stderr) = prune(&db, &["--before", &future]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("is after tomorrow"), "{stderr}");
        let (code, _, stderr) = prune(&db, &["--before", "2024-13-01"]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("expected YYYY-MM-DD"), "{stderr}");
        let (code, _, stderr) = prune(&db, &[]);
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(stored(&db), now_kept, "{db:?}: refusals change nothing");
    }
}

/// A line at 00:00:01 UTC, `days_ago` days before today.
fn line_days_ago(days_ago: u64, customer: &str) -> String {
    let day = Utc::now().date_naive() - Days::new(days_ago);
    format!("{day} 00:00:01 {customer} /a 200 0.250")
}

/// Waits until `db` stores `requests` requests of `customer` on the day `days_ago` days ago.
fn wait_stored(db: &TestDatabase, customer: &str, days_ago: u64, requests: u64) {
    let day = Utc::now().date_naive() - Days::new(days_ago);
    let started = Instant::now();
    while stored(db).get(&(customer.to_string(), day)).copied() != Some(requests) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{db:?}: never stored"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_follow_job_with_retain_keeps_the_last_days_and_counts_older_lines_late() {
    for db in backends() {
        let dir = temp_dir();
        let log = dir.path().join("api.log");
        // Two lines on each of the last six days, today included.
        let lines: Vec<String> = (0..6)
            .flat_map(|ago| [line_days_ago(ago, "cust_1"), line_days_ago(ago, "cust_2")])
            .collect();
        append(&log, &lines);
        let job = start_ingest(&db.url, &["--follow", "--retain", "3", s(&log)]);
        for ago in 0..3 {
            wait_stored(&db, "cust_2", ago, 1);
        }
        let today = Utc::now().date_naive();
        assert_eq!(
            db.connect().first_kept_day().expect("read"),
            Some(today - Days::new(2)),
            "{db:?}"
        );
        let days: BTreeSet<NaiveDate> = stored(&db).keys().map(|(_, day)| *day).collect();
        assert_eq!(days.len(), 3, "{db:?}: {days:?}");

        // Another process prunes yesterday's day before too, while the job runs; lines of that
        // day it reads before it learns of the prune are counted late all the same.
        let (code, pruned, stderr) = prune(&db, &["--before", &(today - Days::new(1)).to_string()]);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(pruned["customer_days"], 2, "{db:?}: {pruned}");
        append(
            &log,
            &[line_days_ago(2, "cust_3"), line_days_ago(0, "cust_3")],
        );
        wait_stored(&db, "cust_3", 0, 1);
        job.signal("TERM");
        let run = summary(&job.finish(Duration::from_secs(60)));
        // 14 lines: 6 of the days --retain pruned and 1 of the day pruned meanwhile are late.
        assert_eq!(
            (&run["lines"], &run["accepted"], &run["late"]),
            (&Value::from(14), &Value::from(7), &Value::from(7)),
            "{db:?}: {run}"
        );
        let kept: Vec<(String, NaiveDate)> = stored(&db).into_keys().collect();
        let yesterday = today - Days::new(1);
        let expected: Vec<(String, NaiveDate)> = [
            ("cust_1", yesterday),
            ("cust_1", today),
            ("cust_2", yesterday),
            ("cust_2", today),
            ("cust_3", today),
        ]
        .into_iter()
        .map(|(c, d)| (c.to_string(), d))
        .collect();
        assert_eq!(kept, expected, "{db:?}");
    }
}

#[test]
fn a_database_migrated_by_a_newer_version_is_refused() {
    let dir = temp_dir();
    for db in backends() {
        let log = dir.path().join(format!("api-{:?}.log", db.backend));
        generate(&log, 500, 3);
        let first = ingest_ok(&db, &[s(&log)]);
        assert_eq!(first["accepted"], 500, "{db:?}");
        // A newer version's start records a migration this build does not know.
        db.execute("INSERT INTO __diesel_schema_migrations (version) VALUES ('99991231000000')");
        append(&log, &["2024-11-09 10:00:00 cust_1 /a 200 0.1".to_string()]);
        let output = ingest(&db, &[s(&log)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{db:?}: {stderr}");
        assert!(
            stderr.contains(
                "error: the database was migrated by a newer version of logstats (1 migration(s) \
                 unknown to this version, the newest 99991231000000): run that version or a \
                 later one, or restore a backup taken before the upgrade"
            ),
            "{db:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "no summary");
        // Nothing was read or written.
        db.execute("DELETE FROM __diesel_schema_migrations WHERE version = '99991231000000'");
        assert_eq!(stored_requests(&db), 500, "{db:?}");
    }
}

/// The parts of a `mysql://USER[:PASSWORD]@HOST:PORT/DB` URL the client tools take as flags.
fn mysql_flags(url: &str) -> (Vec<String>, Option<String>, String) {
    let rest = url.strip_prefix("mysql://").expect("a mysql:// URL");
    let (user_info, rest) = rest.split_once('@').expect("a user");
    let (user, password) = match user_info.split_once(':') {
        Some((user, password)) => (user, Some(password.to_string())),
        None => (user_info, None),
    };
    let (host_port, database) = rest.split_once('/').expect("a database");
    let database = database.split('?').next().unwrap_or(database).to_string();
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "3306"));
    let flags = vec![
        format!("--host={host}"),
        format!("--port={port}"),
        format!("--user={user}"),
        "--protocol=tcp".to_string(),
    ];
    (flags, password, database)
}

/// Runs a database client tool to its end, asserting success.
fn run_tool(program: &str, args: &[String], password: Option<&str>) {
    let mut command = std::process::Command::new(program);
    command.args(args);
    if let Some(password) = password {
        command.env("MYSQL_PWD", password);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (install the database's client): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Backs `db` up to `file` the way docs/LIFECYCLE.md says, while its job commits.
fn back_up(db: &TestDatabase, file: &Path) {
    match db.backend {
        Backend::Sqlite => {
            let output = job(&db.url)
                .args(["backup", "--to", s(file)])
                .run(RUN_TIMEOUT);
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Backend::Postgres | Backend::Mysql => {
            // `backup` is for SQLite: it names the server's dump tool and touches nothing.
            let refused = job(&db.url)
                .args(["backup", "--to", s(file)])
                .run(RUN_TIMEOUT);
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert_eq!(refused.status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains("error: backup --to is for sqlite:// databases: "),
                "{stderr}"
            );
            assert!(!file.exists());
            back_up_server(db, file);
        }
    }
}

/// [`back_up`] of a server backend, with its dump tool.
fn back_up_server(db: &TestDatabase, file: &Path) {
    match db.backend {
        Backend::Sqlite => unreachable!("SQLite is backed up by the binary"),
        Backend::Postgres => run_tool(
            "pg_dump",
            &[
                "--format=custom".to_string(),
                format!("--file={}", s(file)),
                format!("--dbname={}", db.url),
            ],
            None,
        ),
        Backend::Mysql => {
            let (mut args, password, database) = mysql_flags(&db.url);
            args.extend([
                "--single-transaction".to_string(),
                format!("--result-file={}", s(file)),
                database,
            ]);
            run_tool("mariadb-dump", &args, password.as_deref());
        }
    }
}

/// A fresh database of `db`'s backend holding what `file` (from [`back_up`]) holds.
fn restore(db: &TestDatabase, file: &Path) -> TestDatabase {
    match db.backend {
        Backend::Sqlite => {
            let restored = TestDatabase::sqlite();
            let path = restored.url.strip_prefix("sqlite://").expect("a path");
            std::fs::copy(file, path).expect("copy the backup into place");
            restored
        }
        Backend::Postgres => {
            let restored = TestDatabase::postgres().expect("the PostgreSQL server");
            run_tool(
                "pg_restore",
                &[
                    "--no-owner".to_string(),
                    format!("--dbname={}", restored.url),
                    s(file).to_string(),
                ],
                None,
            );
            restored
        }
        Backend::Mysql => {
            let restored = mysql_database();
            let (mut args, password, database) = mysql_flags(&restored.url);
            args.extend([
                format!("--database={database}"),
                format!("--execute=source {}", s(file)),
            ]);
            run_tool("mariadb", &args, password.as_deref());
            restored
        }
    }
}

#[cfg(feature = "mysql")]
fn mysql_database() -> TestDatabase {
    TestDatabase::mysql().expect("the MySQL server")
}

#[cfg(not(feature = "mysql"))]
fn mysql_database() -> TestDatabase {
    unreachable!("no MySQL test database without the feature")
}

/// Waits until `db` stores `requests` requests in all.
fn wait_total(db: &TestDatabase, requests: u64) {
    let started = Instant::now();
    while stored_requests(db) != requests {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{db:?}: never stored"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_backup_taken_while_the_job_commits_restores_and_resumes_exactly_once() {
    let dir = temp_dir();
    let source = dir.path().join("source.log");
    generate(&source, 40_000, 5);
    let bytes = std::fs::read(&source).expect("the log");
    // What one clean run of the whole file stores: the oracle.
    let clean = TestDatabase::sqlite();
    ingest_ok(&clean, &[s(&source)]);
    let want = stored(&clean);
    let total: u64 = want.values().sum();
    for db in backends() {
        let log = dir.path().join(format!("api-{:?}.log", db.backend));
        let first = bytes.len() / 4;
        let first = first
            + bytes[first..]
                .iter()
                .position(|&b| b == b'\n')
                .expect("a line")
            + 1;
        std::fs::write(&log, &bytes[..first]).expect("the first part");
        let follow = start_ingest(&db.url, &["--follow", "--epoch-bytes", "32768", s(&log)]);
        let started = Instant::now();
        while stored_requests(&db) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{db:?}: nothing stored"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let backup = dir.path().join(format!("backup-{:?}", db.backend));
        // The rest arrives in pieces (lines cut anywhere) while the backup is taken.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .expect("open the log");
                for piece in bytes[first..].chunks(16 * 1024) {
                    file.write_all(piece).expect("append");
                    std::thread::sleep(Duration::from_millis(30));
                }
            });
            std::thread::sleep(Duration::from_millis(200));
            back_up(&db, &backup);
        });
        wait_total(&db, total);
        follow.signal("TERM");
        summary(&follow.finish(Duration::from_secs(60)));
        assert_eq!(
            stored(&db),
            want,
            "{db:?}: the job itself stored one clean run"
        );

        let restored = restore(&db, &backup);
        let in_backup = stored_requests(&restored);
        assert!(
            0 < in_backup && in_backup < total,
            "{db:?}: the backup was taken mid-way ({in_backup} of {total})"
        );
        // The same inputs again: the job resumes from the backup's offsets.
        let run = ingest_ok(&restored, &[s(&log)]);
        assert_eq!(
            stored(&restored),
            want,
            "{db:?}: nothing twice, nothing lost"
        );
        assert_eq!(
            run["accepted"].as_u64(),
            Some(total - in_backup),
            "{db:?}: only what the backup lacked was read: {run}"
        );
    }
}
