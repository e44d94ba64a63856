//! Staged commits of a batch run, on every backend: the real `logstats-ingest` binary reading a
//! log in random order stores exactly the rows that committing every epoch on its own stores,
//! writing each row once, merged with rows stored before; killed with SIGKILL while it commits
//! its staged epochs, it leaves all or nothing of them, and the next run stores the same rows.
//! A log in time order committed in many small stages, each beginning on the day the one before
//! ended, stores the same daily and fleet rows as one stage. Readers during a first load see
//! none or all of it.

use std::time::{Duration, Instant};

use crate::support::{generate, generate_for, ingest_ok, job, s, stored_requests, temp_dir, Api};
use logstats_shared::testing::{backends, Random, TestDatabase};

/// The lines of `from` in a random order (Fisher-Yates), written to `to`.
fn shuffled(from: &std::path::Path, to: &std::path::Path, seed: u64) {
    let text = std::fs::read_to_string(from).expect("read log");
    let mut lines: Vec<&str> = text.lines().collect();
    let mut random = Random(seed);
    for i in (1..lines.len()).rev() {
        lines.swap(i, random.below(i as u64 + 1) as usize);
    }
    std::fs::write(to, lines.join("\n") + "\n").expect("write shuffled log");
}

/// Small epochs, so that a run stages many of them; every line on time.
const ARGS: [&str; 6] = [
    "--workers",
    "2",
    "--epoch-bytes",
    "300000",
    "--allowed-lateness",
    "400d",
];

#[test]
fn staged_runs_store_what_epoch_commits_store_and_a_kill_mid_commit_loses_nothing() {
    let dir = temp_dir();
    let log = dir.path().join("a.log");
    generate(&log, 120_000, 91);
    let mixed = dir.path().join("mixed.log");
    shuffled(&log, &mixed, 0x5EED);
    // 50 customers: shares of few cells of many lines each, merged through the exchange.
    staged_store_what_epoch_commits_store(&mixed, &ARGS, false);
}

/// The same for a fleet of small customers in random order (3,000 customers' 31 days, about a
/// line and a half a cell) in larger epochs: from the second share on, each worker reads its
/// share as sorted lines and writes them to a run of its own, as counted requests.
#[test]
fn sorted_shares_staged_by_their_workers_store_what_epoch_commits_store() {
    let dir = temp_dir();
    let log = dir.path().join("fleet.log");
    generate_for(&log, 150_000, 57, 3_000);
    let mixed = dir.path().join("mixed.log");
    shuffled(&log, &mixed, 0xF1EE7);
    let args = [
        "--workers",
        "2",
        "--epoch-bytes",
        "2000000",
        "--allowed-lateness",
        "400d",
    ];
    staged_store_what_epoch_commits_store(&mixed, &args, true);
}

/// `mixed` ingested with `args` on each backend as two staged halves, the second merging into
/// the rows of the first, stores what committing every epoch on its own stores; so does a
/// staged run killed while committing, then run again. `sorted_runs`: whether the workers write
/// sorted shares to runs of their own (said in the debug log of the first half).
fn staged_store_what_epoch_commits_store(
    mixed: &std::path::Path,
    args: &[&str],
    sorted_runs: bool,
) {
    // Two halves: the second merges into rows the first stored.
    let text = std::fs::read_to_string(mixed).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    let dir = temp_dir();
    let (first, second) = (dir.path().join("first.log"), dir.path().join("second.log"));
    let half = lines.len() / 2;
    std::fs::write(&first, lines[..half].join("\n") + "\n").expect("write");
    std::fs::write(&second, lines[half..].join("\n") + "\n").expect("write");
    let total = lines.len() as u64;

    // Two fresh databases of each backend.
    for (db, killed) in backends().into_iter().zip(backends()) {
        // The reference: every epoch committed on its own.
        let reference = TestDatabase::sqlite();
        let mut reference_args = args.to_vec();
        reference_args.extend(["--stage-bytes", "0", s(mixed)]);
        ingest_ok(&reference, &reference_args);
        let expected = reference.connect().all_days().expect("rows");

        // Staged (the default for a batch run): the first half, then the second into it.
        let output = job(&db.url)
            .arg("--json")
            .args(args)
            .arg(s(&first))
            .env("RUST_LOG", "logstats_ingest=debug")
            .start()
            .finish(Duration::from_secs(120));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "ingest failed: {stderr}");
        assert_eq!(
            stderr.contains("a sorted share's"),
            sorted_runs,
            "{:?}: sorted shares staged by their workers",
            db.backend
        );
        let summary: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("summary is JSON");
        assert_eq!(
            summary["rows_written"].as_u64(),
            Some(db.connect().all_days().expect("rows").len() as u64),
            "{:?}: each row written once: {summary}",
            db.backend
        );
        let mut second_args = args.to_vec();
        second_args.push(s(&second));
        ingest_ok(&db, &second_args);
        assert_eq!(
            db.connect().all_days().expect("rows"),
            expected,
            "{:?}: staged halves store what epoch commits store",
            db.backend
        );

        // Killed while committing its staged epochs: all of them or none are stored; the
        // next run stores the rest, and the rows are the same.
        let mut child = job(&killed.url)
            .args(args)
            .arg(s(mixed))
            .env("RUST_LOG", "info")
            .start();
        let started = Instant::now();
        while !child.stderr().contains("staged epochs") {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{:?}: no commit began: {}",
                db.backend,
                child.stderr()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill();
        let stored = stored_requests(&killed);
        assert!(
            stored == 0 || stored == total,
            "{:?}: a killed commit stored {stored} of {total} requests",
            db.backend
        );
        let mut rerun_args = args.to_vec();
        rerun_args.push(s(mixed));
        ingest_ok(&killed, &rerun_args);
        assert_eq!(
            killed.connect().all_days().expect("rows"),
            expected,
            "{:?}: after a kill mid-commit and a rerun",
            db.backend
        );
    }
}

/// Sizes take units: a stage of `64KiB` commits in as many stages as one of 65,536 bytes, with
/// the same rows as a single stage; a size the job cannot read is refused before it starts,
/// saying why, and stores nothing.
#[test]
fn stage_sizes_take_units_and_a_bad_size_is_refused() {
    let dir = temp_dir();
    let log = dir.path().join("a.log");
    generate(&log, 40_000, 17);
    let single = TestDatabase::sqlite();
    let mut args = ARGS.to_vec();
    args.push(s(&log));
    ingest_ok(&single, &args);
    let expected = single.connect().all_days().expect("rows");

    let count_stages = |size: &str| {
        let db = TestDatabase::sqlite();
        let mut args = ARGS.to_vec();
        args.extend(["--stage-bytes", size, s(&log)]);
        let out = job(&db.url).args(&args).run(Duration::from_secs(120));
        assert!(out.status.success(), "{size}: {out:?}");
        assert_eq!(db.connect().all_days().expect("rows"), expected, "{size}");
        String::from_utf8_lossy(&out.stderr)
            .matches("staged epochs")
            .count()
    };
    let in_units = count_stages("64KiB");
    assert!(in_units > 1, "64 KiB stages: {in_units} commits");
    assert_eq!(in_units, count_stages("65536"));
    assert_eq!(in_units, count_stages("64 k"));

    for (bad, says) in [
        ("1.5MiB", "unknown unit"),
        ("64XB", "unknown unit"),
        ("-1", "expected bytes"),
    ] {
        let db = TestDatabase::sqlite();
        let flag = format!("--stage-bytes={bad}");
        let mut args = ARGS.to_vec();
        args.extend([flag.as_str(), s(&log)]);
        let out = job(&db.url).args(&args).run(Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--stage-bytes") && stderr.contains(says),
            "{bad}: {stderr}"
        );
        assert!(db.connect().all_days().expect("rows").is_empty(), "{bad}");
    }
}

/// A log in time order, staged in stages of 16 KiB: each stage after the first begins on the
/// last day the one before stored (a day is cut between them), so its later days are written
/// as new rows and that day is merged into the stored rows, in two passes. Every backend stores
/// the daily rows and the fleet rows that committing each epoch on its own stores.
#[test]
fn stages_cut_mid_day_store_what_epoch_commits_store() {
    let dir = temp_dir();
    let generated = dir.path().join("generated.log");
    generate(&generated, 60_000, 29);
    // In time order (the generator sends some lines late): a stage's first day is then the
    // last day stored before it.
    let text = std::fs::read_to_string(&generated).expect("read log");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_by_key(|line| line.get(..19).unwrap_or(line).to_owned());
    let log = dir.path().join("a.log");
    std::fs::write(&log, lines.join("\n") + "\n").expect("write log");
    let reference = TestDatabase::sqlite();
    let mut args = ARGS.to_vec();
    args.extend(["--stage-bytes", "0", s(&log)]);
    ingest_ok(&reference, &args);
    let expected = reference.connect().all_days().expect("rows");
    let (first, last) = (
        expected[0].1,
        expected.iter().map(|d| d.1).max().expect("days"),
    );
    let expected_fleet = reference.connect().fleet_days(first, last).expect("fleet");
    assert!(expected_fleet.as_ref().is_some_and(|days| days.len() > 20));

    for db in backends() {
        let mut args = ARGS.to_vec();
        args.extend(["--stage-bytes", "16KiB", s(&log)]);
        let out = job(&db.url)
            .args(&args)
            .env("RUST_LOG", "info")
            .run(Duration::from_secs(120));
        assert!(out.status.success(), "{:?}: {out:?}", db.backend);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stages = stderr.matches("staged epochs").count();
        let split = stderr.matches("later days written first").count();
        assert!(
            stages > 3 && split > 1,
            "{:?}: {stages} stages, {split} of them beginning on a stored day",
            db.backend
        );
        let connected = db.connect();
        assert_eq!(
            connected.all_days().expect("rows"),
            expected,
            "{:?}",
            db.backend
        );
        assert_eq!(
            connected.fleet_days(first, last).expect("fleet"),
            expected_fleet,
            "{:?}: fleet rows",
            db.backend
        );
    }
}

/// A batch run whose workers cannot write their runs (`TMPDIR` under a regular file) stops with
/// an error naming the staging, neither a panic nor a hang, and commits nothing; the same run
/// with a usable `TMPDIR` then stores every accepted line.
#[test]
fn a_run_that_cannot_stage_stops_with_a_clear_error_and_commits_nothing() {
    let dir = temp_dir();
    let log = dir.path().join("a.log");
    generate(&log, 20_000, 17);
    let blocked = dir.path().join("a-file-not-a-directory");
    std::fs::write(&blocked, b"not a directory").expect("write");
    for db in backends() {
        let output = job(&db.url)
            .arg("--json")
            .args(ARGS)
            .arg(s(&log))
            .env("TMPDIR", &blocked)
            .env("RUST_LOG", "warn")
            .run(Duration::from_secs(120));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{}: {stderr}", db.url);
        assert!(stderr.contains("staging the deltas of epoch"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(stored_requests(&db), 0, "{}: nothing committed", db.url);

        let mut args = ARGS.to_vec();
        args.push(s(&log));
        let summary = ingest_ok(&db, &args);
        let accepted = summary["accepted"].as_u64().expect("accepted");
        assert!(accepted > 19_000, "{summary}");
        assert_eq!(stored_requests(&db), accepted, "{}", db.url);
    }
}

/// Readers during a first load (on PostgreSQL the table's key is dropped and built again in
/// that commit) never fail and see none or all of it: a reader that comes while the commit
/// holds the table waits for it, then reads every row through the rebuilt key.
#[test]
fn readers_during_a_first_load_see_none_or_all_of_it() {
    let dir = temp_dir();
    let log = dir.path().join("a.log");
    generate(&log, 200_000, 93);
    let total = std::fs::read_to_string(&log).expect("read").lines().count() as u64;
    for db in backends() {
        let mut child = job(&db.url)
            .args(ARGS)
            .arg(s(&log))
            .env("RUST_LOG", "info")
            .start();
        let started = Instant::now();
        while !child.stderr().contains("staged epochs") {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{:?}: no commit began: {}",
                db.backend,
                child.stderr()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut seen = Vec::new();
        loop {
            let stored = stored_requests(&db);
            assert!(
                stored == 0 || stored == total,
                "{:?}: a reader saw {stored} of {total} requests",
                db.backend
            );
            seen.push(stored);
            if stored == total {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{:?}: the load never became visible: {}",
                db.backend,
                child.stderr()
            );
        }
        let status = child.wait_for(Duration::from_secs(120));
        assert!(
            status.is_some_and(|s| s.success()),
            "{:?}: {status:?}: {}",
            db.backend,
            child.stderr()
        );
        // A later run merges into the rows through the key the first load built.
        let mut args = ARGS.to_vec();
        args.extend(["--stage-bytes", "0", s(&log)]);
        let again = dir.path().join("again.log");
        std::fs::copy(&log, &again).expect("copy");
        let last = args.len() - 1;
        args[last] = s(&again);
        ingest_ok(&db, &args);
        assert_eq!(stored_requests(&db), 2 * total, "{:?}", db.backend);
    }
}

/// A first load into PostgreSQL copies its rows in frozen (the empty table truncated in the
/// same transaction, `COPY .. FREEZE`): every page of `daily_stats` is all-frozen in the
/// visibility map as the commit leaves it, also in a `REPEATABLE READ` transaction (the
/// database's default here). Where the `TRUNCATE` is refused (here by a trigger) the rows are
/// copied in as usual: the same requests stored, no page frozen. A later run merges into each.
#[test]
fn a_first_load_into_postgresql_is_copied_in_frozen_where_it_may_be() {
    let dir = temp_dir();
    let log = dir.path().join("a.log");
    generate(&log, 40_000, 95);
    let total = std::fs::read_to_string(&log).expect("read").lines().count() as u64;
    let again = dir.path().join("again.log");
    std::fs::copy(&log, &again).expect("copy");
    let refuse_truncate = "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
        $$ BEGIN RAISE EXCEPTION 'no TRUNCATE here'; END $$; \
        CREATE TRIGGER refuse BEFORE TRUNCATE ON daily_stats \
        FOR EACH STATEMENT EXECUTE FUNCTION refuse()";
    let repeatable_read = "DO $$ BEGIN EXECUTE format(\
        'ALTER DATABASE %I SET default_transaction_isolation = ''repeatable read''', \
        current_database()); END $$";
    let cases = [
        (None, true),
        (Some(refuse_truncate), false),
        (Some(repeatable_read), true),
    ];
    for (setup, frozen) in cases {
        let Some(db) = TestDatabase::postgres() else {
            return; // unreachable outside CI only: postgres() said so loudly
        };
        if let Some(sql) = setup {
            drop(db.connect()); // the migrations make the table
            db.execute(sql);
        }
        ingest_ok(&db, &[&ARGS[..], &[s(&log)]].concat());
        assert_eq!(stored_requests(&db), total, "{setup:?}");
        db.execute("CREATE EXTENSION IF NOT EXISTS pg_visibility");
        let pages = db.postgres_number(
            "SELECT pg_relation_size('daily_stats') / current_setting('block_size')::bigint \
             AS value",
        );
        let all_frozen = db.postgres_number(
            "SELECT all_frozen AS value FROM pg_visibility_map_summary('daily_stats')",
        );
        assert!(pages > 0, "{setup:?}");
        let expected = if frozen { pages } else { 0 };
        assert_eq!(all_frozen, expected, "{setup:?}: {pages} pages");
        ingest_ok(
            &db,
            &[&ARGS[..], &["--stage-bytes", "0", s(&again)]].concat(),
        );
        assert_eq!(stored_requests(&db), 2 * total, "{setup:?}");
    }
}

/// A PostgreSQL database whose collation orders customer ids unlike their bytes (ICU `en-US`
/// puts `cust_a` before `cust_A`, `cust_b` before `Cust_c`, and `cust-d` after them) stores what
/// SQLite stores: a first load, a staged run merging into the stored rows, and epochs committed
/// one by one merging into them; and the API lists `/customers?sort=customer_id` in the ids'
/// byte order from it, as from SQLite.
#[test]
fn a_database_collating_ids_unlike_their_bytes_stores_and_lists_the_same() {
    let Some(db) = TestDatabase::postgres_created_with(
        "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' TEMPLATE template0",
    ) else {
        return; // unreachable outside CI only: postgres_created_with said so loudly
    };
    let reference = TestDatabase::sqlite();
    let ids = [
        "cust_b", "Cust_c", "cust_A", "cust-d", "cust_a", "custa", "CUST_B", "cust.e",
    ];
    let dir = temp_dir();
    let mut random = Random(0xC011);
    for (round, extra) in [(0, None), (1, None), (2, Some(["--stage-bytes", "0"]))] {
        let mut text = String::new();
        for i in 0..400 {
            let id = ids[random.below(ids.len() as u64) as usize];
            let day = 9 + random.below(3);
            let status = [200, 404, 503][random.below(3) as usize];
            let millis = 1 + random.below(2_000);
            text.push_str(&format!(
                "2024-10-{day:02} 12:{:02}:00 {id} /p {status} {}.{:03}\n",
                i % 60,
                millis / 1000,
                millis % 1000
            ));
        }
        let log = dir.path().join(format!("round-{round}.log"));
        std::fs::write(&log, text).expect("write log");
        let mut args = vec!["--allowed-lateness", "400d"];
        args.extend(extra.into_iter().flatten());
        args.push(s(&log));
        for database in [&db, &reference] {
            ingest_ok(database, &args);
        }
        let by_key = |database: &TestDatabase| {
            let mut days = database.connect().all_days().expect("rows");
            days.sort_by(|a, b| (a.0.as_bytes(), a.1).cmp(&(b.0.as_bytes(), b.1)));
            days
        };
        assert_eq!(by_key(&db), by_key(&reference), "round {round}");
    }
    let mut expected: Vec<&str> = ids.to_vec();
    expected.sort_unstable_by_key(|id| id.as_bytes());
    for database in [&db, &reference] {
        let api = Api::start(&database.url);
        let (status, body) =
            api.get("/customers?sort=customer_id&from=2024-10-09&to=2024-10-11&limit=100");
        assert_eq!(status, 200, "{body}");
        let listed: Vec<&str> = body["customers"]
            .as_array()
            .expect("customers")
            .iter()
            .map(|c| c["customer_id"].as_str().expect("id"))
            .collect();
        assert_eq!(listed, expected, "{:?}", database.backend);
    }
}
