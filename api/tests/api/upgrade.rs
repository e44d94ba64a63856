//! Upgrades, on every backend: a database created by the first schema of
//! this project, with rows written in plain SQL as the first version wrote them, keeps every
//! number once this version migrates it; a database migrated by a newer version is refused at
//! start (exit status 3) and makes a running API unready.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::{run_to_exit, seed, Api};
use logstats_shared::testing::{backends, TestDatabase};
use logstats_shared::{Backend, SourceOffset};
use serde_json::{json, Value};

/// The first migration of `backend`'s folder: its diesel version and its `up.sql`.
fn first_migration(backend: Backend) -> (String, String) {
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
        Backend::Mysql => "mysql",
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(folder);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the migrations folder")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let first = &names[0];
    let up = std::fs::read_to_string(dir.join(first).join("up.sql")).expect("its up.sql");
    // As diesel records it: the name's date part without dashes.
    let version = first.split('_').next().expect("a version").replace('-', "");
    (version, up)
}

/// One (customer, day) row as the first version stored it: counts and one latency for every
/// request of the day, so its percentiles are that latency whatever the summary's form.
struct OldRow {
    customer: &'static str,
    day: &'static str,
    successful: u64,
    failed: u64,
    latency_us: u64,
}

const ROWS: [OldRow; 5] = [
    OldRow {
        customer: "cust_a",
        day: "2024-10-10",
        successful: 3,
        failed: 1,
        latency_us: 250_000,
    },
    OldRow {
        customer: "cust_a",
        day: "2024-10-11",
        successful: 5,
        failed: 0,
        latency_us: 125_000,
    },
    OldRow {
        customer: "cust_a",
        day: "2024-10-13",
        successful: 0,
        failed: 2,
        latency_us: 500_000,
    },
    OldRow {
        customer: "cust_b",
        day: "2024-10-10",
        successful: 1,
        failed: 1,
        latency_us: 250_000,
    },
    OldRow {
        customer: "cust_b",
        day: "2024-10-13",
        successful: 4,
        failed: 4,
        latency_us: 500_000,
    },
];

/// The first version's t-digest of `count` equal latencies (codec 1: version byte; count, sum,
/// min, max in seconds as f64 LE; the centroid count as u32 LE; then (mean, weight) f64 LE).
fn digest_blob(count: u64, latency_us: u64) -> Vec<u8> {
    let seconds = latency_us as f64 / 1e6;
    let mut blob = vec![1u8];
    for value in [count as f64, seconds * count as f64, seconds, seconds] {
        blob.extend_from_slice(&value.to_le_bytes());
    }
    blob.extend_from_slice(&1u32.to_le_bytes());
    blob.extend_from_slice(&seconds.to_le_bytes());
    blob.extend_from_slice(&(count as f64).to_le_bytes());
    blob
}

/// The exact histogram the MySQL backend's first version stored for `count` equal latencies
/// (codec 2: the tag; unit, distinct values and count as LEB128 varints; then one step from 0
/// to the value, in units, shifted left by one, and its count).
fn histogram_blob(count: u64, latency_us: u64) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }
    let mut blob = vec![2u8];
    for value in [latency_us, 1, count] {
        varint(&mut blob, value);
    }
    // One step of one unit (the value itself), with its count: `1 << 1`, then the count.
    varint(&mut blob, 1 << 1);
    varint(&mut blob, count);
    blob
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates the first schema on `db` as the first version's start did (its migration, recorded
/// in diesel's table) and writes [`ROWS`] and a watermark with plain SQL.
fn create_first_version_database(db: &TestDatabase) {
    let (version, up) = first_migration(db.backend);
    db.execute(&up);
    db.execute(&format!(
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP); \
         INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}')"
    ));
    let blob_literal = |bytes: &[u8]| match db.backend {
        Backend::Postgres => format!("'\\x{}'::bytea", hex(bytes)),
        _ => format!("X'{}'", hex(bytes)),
    };
    for row in &ROWS {
        let count = row.successful + row.failed;
        let sum = count * row.latency_us;
        let sql = match db.backend {
            // The first schema of SQLite and PostgreSQL: a digest column, no versions.
            Backend::Sqlite | Backend::Postgres => format!(
                "INSERT INTO daily_stats (customer_id, day, successful, failed, latency_sum_us, \
                 latency_min_us, latency_max_us, digest) VALUES ('{}', '{}', {}, {}, {sum}, {}, \
                 {}, {})",
                row.customer,
                row.day,
                row.successful,
                row.failed,
                row.latency_us,
                row.latency_us,
                blob_literal(&digest_blob(count, row.latency_us))
            ),
            // MySQL's first schema: exact histograms, a version per row and per customer.
            Backend::Mysql => format!(
                "INSERT INTO daily_stats (customer_id, day, successful, failed, latency_sum_us, \
                 latency_min_us, latency_max_us, latencies, version) VALUES ('{}', '{}', {}, {}, \
                 {sum}, {}, {}, {}, 1); \
                 INSERT IGNORE INTO customer_versions (customer_id, version) VALUES ('{}', 1)",
                row.customer,
                row.day,
                row.successful,
                row.failed,
                row.latency_us,
                row.latency_us,
                blob_literal(&histogram_blob(count, row.latency_us)),
                row.customer
            ),
        };
        db.execute(&sql);
    }
    db.execute("INSERT INTO ingest_watermark (id, event_time) VALUES (1, 1728864000)");
    db.execute(&format!(
        "INSERT INTO source_offsets (source, fingerprint, byte_offset, line_count) \
         VALUES ('inode:2049:77', {}, 1234, 20)",
        blob_literal(b"2024-10-10 00:00:01 cust_a")
    ));
}

/// The summary the API must give for `rows` merged, computed from their known values: exact
/// counts, uptime and mean; percentiles only when every row has the same latency.
fn expected_summary(rows: &[&OldRow]) -> Value {
    let successful: u64 = rows.iter().map(|r| r.successful).sum();
    let failed: u64 = rows.iter().map(|r| r.failed).sum();
    let total = successful + failed;
    let sum_us: u64 = rows
        .iter()
        .map(|r| (r.successful + r.failed) * r.latency_us)
        .sum();
    let mut summary = json!({
        "total_requests": total,
        "successful_requests": successful,
        "failed_requests": failed,
        "uptime": successful as f64 * 100.0 / total as f64,
        "average_latency": (sum_us as f64 / total as f64).round() / 1e6,
    });
    let single = rows.iter().all(|r| r.latency_us == rows[0].latency_us);
    if single {
        let seconds = rows[0].latency_us as f64 / 1e6;
        summary["median_latency"] = json!(seconds);
        summary["p99_latency"] = json!(seconds);
    }
    summary
}

/// Asserts that `got` has every field of `expected` (floats to 1e-12).
fn assert_summary(got: &Value, expected: &Value, what: &str) {
    for (field, want) in expected.as_object().expect("an object") {
        let have = &got[field];
        match (have.as_f64(), want.as_f64()) {
            (Some(have), Some(want)) if want.fract() != 0.0 || have.fract() != 0.0 => {
                assert!(
                    (have - want).abs() < 1e-12,
                    "{what}: {field} {have} != {want}"
                )
            }
            _ => assert_eq!(have, want, "{what}: {field}"),
        }
    }
}

#[test]
fn a_first_schema_database_keeps_its_numbers_after_the_upgrade() {
    for db in backends() {
        create_first_version_database(&db);
        // The binary migrates it at start (and builds the per-day fleet rows once).
        let api = Api::start(&db);
        let ready = api.get("/ready");
        assert_eq!(ready.status, 200, "{db:?}: {}", ready.text());

        for customer in ["cust_a", "cust_b"] {
            let body = api.stats(customer, "from=2024-10-01&to=2024-10-31");
            let rows: Vec<&OldRow> = ROWS.iter().filter(|r| r.customer == customer).collect();
            assert_summary(
                &body["total"],
                &expected_summary(&rows),
                &format!("{db:?} {customer}"),
            );
            let days = body["days"].as_array().expect("days");
            assert_eq!(days.len(), rows.len(), "{db:?} {customer}: {body}");
            for (day, row) in days.iter().zip(&rows) {
                assert_eq!(day["date"], row.day, "{db:?}");
                assert_summary(
                    day,
                    &expected_summary(&[row]),
                    &format!("{db:?} {customer} {}", row.day),
                );
            }
        }

        let fleet = api.get_json("/stats?from=2024-10-01&to=2024-10-31");
        assert_eq!(fleet.0, 200, "{db:?}: {}", fleet.1);
        let all: Vec<&OldRow> = ROWS.iter().collect();
        assert_summary(
            &fleet.1["total"],
            &expected_summary(&all),
            &format!("{db:?} fleet"),
        );
        let fleet_days = fleet.1["days"].as_array().expect("days");
        let dates = ["2024-10-10", "2024-10-11", "2024-10-13"];
        assert_eq!(fleet_days.len(), dates.len(), "{db:?}: {}", fleet.1);
        for (day, date) in fleet_days.iter().zip(dates) {
            assert_eq!(day["date"], date);
            let rows: Vec<&OldRow> = ROWS.iter().filter(|r| r.day == date).collect();
            assert_summary(
                day,
                &expected_summary(&rows),
                &format!("{db:?} fleet {date}"),
            );
        }

        let (status, list) = api.get_json("/customers?from=2024-10-10&to=2024-10-10");
        assert_eq!(status, 200, "{db:?}");
        assert_eq!(list["count"], 2, "{db:?}: {list}");
        let stderr = api.stop();
        assert!(!stderr.contains("panicked"), "{stderr}");

        // The watermark and offsets the first version stored are where the ingest resumes.
        let store = db.connect();
        assert_eq!(
            store.watermark().expect("read"),
            Some(1_728_864_000),
            "{db:?}"
        );
        assert_eq!(
            store.source_offset("inode:2049:77").expect("read"),
            Some(SourceOffset {
                source: "inode:2049:77".to_string(),
                fingerprint: b"2024-10-10 00:00:01 cust_a".to_vec(),
                byte_offset: 1234,
                line_count: 20,
            }),
            "{db:?}"
        );
    }
}

/// Records a migration this build does not know, as a newer version's start would.
fn migrate_as_a_newer_version(db: &TestDatabase) {
    db.execute("INSERT INTO __diesel_schema_migrations (version) VALUES ('99991231000000')");
}

#[test]
fn a_database_migrated_by_a_newer_version_is_refused() {
    for db in backends() {
        seed(&db);
        let api = Api::spawn(&db);
        assert_eq!(api.get("/ready").status, 200, "{db:?}");
        migrate_as_a_newer_version(&db);
        // A running API notices within its schema check and stops being ready.
        let started = Instant::now();
        let body = loop {
            let response = api.get("/ready");
            if response.status == 503 {
                break response.json();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{db:?}: still ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let message = body["error"].as_str().expect("an error");
        assert!(
            message.starts_with("the database was migrated by a newer version of logstats"),
            "{db:?}: {message}"
        );
        assert!(message.contains("99991231000000"), "{message}");
        api.shutdown();

        // A new start refuses it, with or without --no-migrate, and changes nothing.
        for args in [&[][..], &["--no-migrate"][..]] {
            let (code, stderr) = run_to_exit(&db.url, args, &[]);
            assert_eq!(code, Some(3), "{db:?} {args:?}: {stderr}");
            assert!(
                stderr.contains("error: opening ")
                    && stderr.contains("the database was migrated by a newer version of logstats (1 migration(s) unknown to this version, the newest 99991231000000)"),
                "{db:?}: {stderr}"
            );
        }
    }
}
