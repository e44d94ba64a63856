//! The real `logstats-ingest` binary against a hostile user's inputs (issue 10): leaked
//! passwords, non-regular files, its own rejects file as input, links out of a directory, one
//! file under several names, garbage input. Database rows run on SQLite and PostgreSQL.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{generate, ingest, ingest_ok, job, temp_dir, INGEST};
use logstats_shared::testing::backends;
use logstats_shared::testing::spawn::Spawned;
use serde_json::Value;

const SECRET: &str = "S3cr3tPW";

fn run_with_url(url: &str, args: &[&str]) -> Output {
    Command::new(INGEST)
        .args(["--database-url", url])
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .output()
        .expect("run logstats-ingest")
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
    let dir = common::temp_dir();
    let log = dir.path().join("a.log");
    common::generate(&log, 10, 1);
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

    let help = Command::new(INGEST)
        .arg("--help")
        .env("DATABASE_URL", format!("postgres://u:{SECRET}@h/db"))
        .output()
        .expect("run --help");
    assert!(help.status.success());
    let shown = all_output(&help);
    assert!(shown.contains("DATABASE_URL"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
}

/// Runs `logstats-ingest` with `args`, killing it if it has not exited after `timeout`.
fn run_within(db_url: &str, args: &[&str], timeout: Duration) -> Output {
    spawn(db_url, args).finish(timeout)
}

/// `logstats-ingest --json ARGS`, through the shared harness (output in files, killed when
/// dropped).
fn spawn(db_url: &str, args: &[&str]) -> Spawned {
    job(db_url)
        .arg("--json")
        .args(args)
        .env("RUST_LOG", "warn")
        .start()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn summary(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "ingest failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("summary is JSON")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf8 path")
}

#[test]
fn non_regular_files_are_refused_without_hanging() {
    for db in backends() {
        let dir = temp_dir();
        let fifo = dir.path().join("fifo.log");
        mkfifo(&fifo);
        let socket_path = dir.path().join("socket.log");
        let _socket = std::os::unix::net::UnixListener::bind(&socket_path).expect("socket");
        for (input, kind) in [
            (s(&fifo), "not a regular file (a FIFO)"),
            ("/dev/zero", "not a regular file (a character device)"),
            (
                "/proc/self/status",
                "not a regular file (a /proc or /sys pseudo-file)",
            ),
            (s(&socket_path), "not a regular file (a socket)"),
        ] {
            let output = run_within(&db.url, &[input], Duration::from_secs(20));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{input}: {stderr}");
            assert!(
                stderr.contains(&format!("error: cannot read {input}: {kind}")),
                "{input}: {stderr}"
            );
        }

        // In a directory, they are skipped with a warning and the regular files are read;
        // following it, SIGTERM still ends the job at once.
        generate(&dir.path().join("a.log"), 100, 5);
        let output = run_within(&db.url, &[s(dir.path())], Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(summary(&output)["accepted"], 100, "{db:?}: {stderr}");
        assert!(
            stderr.contains("not a regular file (a FIFO); skipped"),
            "{stderr}"
        );
        let job = spawn(&db.url, &["--follow", s(dir.path())]);
        std::thread::sleep(Duration::from_millis(1500));
        job.signal("TERM");
        let output = job.finish(Duration::from_secs(10));
        assert_eq!(summary(&output)["accepted"], 0, "{db:?}");
    }
}

#[test]
fn a_rejects_fifo_is_refused_without_hanging() {
    let db = logstats_shared::testing::TestDatabase::sqlite();
    let dir = temp_dir();
    let log = dir.path().join("a.log");
    std::fs::write(&log, "not a line\n").expect("write");
    let fifo = dir.path().join("rejects");
    mkfifo(&fifo);
    let output = run_within(
        &db.url,
        &["--rejects", s(&fifo), s(&log)],
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot open rejects file"), "{stderr}");
}

#[test]
fn the_rejects_file_is_never_an_input() {
    for db in backends() {
        let dir = temp_dir();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).expect("mkdir");
        let log = logs.join("a.log");
        std::fs::write(&log, "bad line 1\nbad line 2\n").expect("write");
        let rejects = logs.join("rejects.log");
        let args = ["--rejects", s(&rejects), s(&logs)];
        let first = ingest_ok(&db, &args);
        assert_eq!(first["rejected"], 2, "{db:?}");
        // The rejects file now holds two lines with a .log name in the directory read.
        let second = ingest_ok(&db, &args);
        assert_eq!(second["lines"], 0, "{db:?}: {second}");
        // Named explicitly, it is not read either.
        let third = ingest_ok(&db, &["--rejects", s(&rejects), s(&rejects), s(&log)]);
        assert_eq!(third["lines"], 0, "{db:?}: {third}");

        // Following the directory, the job does not feed on its own rejects.
        let job = spawn(&db.url, &["--follow", "--rejects", s(&rejects), s(&logs)]);
        std::thread::sleep(Duration::from_millis(500));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        std::io::Write::write_all(&mut file, b"bad line 3\n").expect("append");
        let started = Instant::now();
        while std::fs::read_to_string(&rejects).map_or(0, |r| r.lines().count()) < 3 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "line 3 never rejected"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Time for the job to read its rejects, if it did.
        std::thread::sleep(Duration::from_millis(1500));
        job.signal("TERM");
        let output = job.finish(Duration::from_secs(10));
        let followed = summary(&output);
        assert_eq!(followed["rejected"], 1, "{db:?}: {followed}");
        let written = std::fs::read_to_string(&rejects).expect("rejects");
        assert_eq!(written.lines().count(), 3, "{written}");
    }
}

#[test]
fn a_directory_does_not_follow_links_out_of_itself_and_private_files_stay_private() {
    for db in backends() {
        let dir = temp_dir();
        let logs = dir.path().join("logs");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&logs).expect("mkdir");
        std::fs::create_dir(&outside).expect("mkdir");
        generate(&logs.join("a.log"), 100, 3);
        std::fs::write(outside.join("private.txt"), "secret line\n").expect("write");
        generate(&outside.join("other.log"), 50, 4);
        std::os::unix::fs::symlink("../outside/private.txt", logs.join("evil.log"))
            .expect("symlink");
        std::os::unix::fs::symlink(outside.join("other.log"), logs.join("abs.log"))
            .expect("symlink");
        // A link inside the directory names a file already read: counted once.
        std::os::unix::fs::symlink("a.log", logs.join("current.log")).expect("symlink");
        let rejects = dir.path().join("out/rejects.txt");
        let output = ingest(&db, &["--rejects", s(&rejects), s(&logs)]);
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let result = summary(&output);
        assert_eq!(result["lines"], 100, "{db:?}: {result} {stderr}");
        assert!(stderr.contains("evil.log: a link out of"), "{stderr}");
        assert!(stderr.contains("abs.log: a link out of"), "{stderr}");
        let written = std::fs::read_to_string(&rejects).unwrap_or_default();
        assert!(!written.contains("secret"), "{written}");
        let mode = std::fs::metadata(&rejects)
            .expect("rejects")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "rejects mode {mode:o}");
        // Named on the command line, a link is the user's choice and is followed.
        let named = ingest_ok(&db, &[s(&logs.join("abs.log"))]);
        assert_eq!(named["lines"], 50, "{db:?}");
        if let Some(path) = db.url.strip_prefix("sqlite://") {
            let mode = std::fs::metadata(path).expect("db").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "SQLite file mode {mode:o}");
        }
    }
}

#[test]
fn one_file_under_several_names_in_one_run_is_read_once() {
    for db in backends() {
        let dir = temp_dir();
        let logs = dir.path().join("d");
        std::fs::create_dir(&logs).expect("mkdir");
        let log = logs.join("a.log");
        generate(&log, 1000, 9);
        std::fs::hard_link(&log, logs.join("b.log")).expect("hard link");
        let dotted = logs.join("..").join("d").join("a.log");
        let result = ingest_ok(&db, &[s(&log), s(&log), s(&logs), s(&dotted)]);
        assert_eq!(result["accepted"], 1000, "{db:?}: {result}");
        // Appended lines are read once too.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        std::io::Write::write_all(&mut file, b"2024-10-10 12:00:00 c /p 200 0.1\n")
            .expect("append");
        let result = ingest_ok(&db, &[s(&log), s(&logs), s(&dotted)]);
        assert_eq!(result["accepted"], 1, "{db:?}: {result}");
    }
}

/// Requests stored, over every customer and day.
fn stored_requests(db: &logstats_shared::testing::TestDatabase) -> u64 {
    db.connect()
        .all_days()
        .expect("rows")
        .iter()
        .map(|(_, _, s)| s.successful + s.failed)
        .sum()
}

#[test]
fn one_file_under_another_name_in_a_later_run_adds_nothing() {
    for db in backends() {
        let dir = temp_dir();
        let logs = dir.path().join("d");
        std::fs::create_dir(&logs).expect("mkdir");
        let log = logs.join("a.log");
        generate(&log, 1000, 9);
        assert_eq!(ingest_ok(&db, &[s(&log)])["accepted"], 1000, "{db:?}");
        std::fs::hard_link(&log, dir.path().join("link.log")).expect("hard link");
        let dotted = logs.join("..").join("d").join("a.log");
        for name in [dir.path().join("link.log"), dotted, logs.clone()] {
            let again = ingest_ok(&db, &[s(&name)]);
            assert_eq!(again["lines"], 0, "{db:?} {}: {again}", name.display());
        }
        assert_eq!(stored_requests(&db), 1000);
    }
}

#[test]
fn a_file_renamed_by_rotation_is_recognised_by_the_next_run() {
    for db in backends() {
        let dir = temp_dir();
        let logs = dir.path().join("d");
        std::fs::create_dir(&logs).expect("mkdir");
        let app = logs.join("app.log");
        generate(&app, 1000, 21);
        let job = spawn(&db.url, &["--follow", s(&logs)]);
        let wait_for = |n: u64| {
            let started = Instant::now();
            while stored_requests(&db) != n {
                assert!(started.elapsed() < Duration::from_secs(30), "never {n}");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        wait_for(1000);
        // Rotation: the file is renamed (still *.log), its writer finishes a line into it,
        // and a new file takes the name.
        let rotated = logs.join("app-1.log");
        std::fs::rename(&app, &rotated).expect("rename");
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(&rotated)
            .expect("open");
        std::io::Write::write_all(&mut old, b"2024-11-09 10:00:00 cust_r /p 200 0.5\n")
            .expect("append");
        generate(&app, 500, 22);
        wait_for(1501);
        job.signal("TERM");
        let followed = summary(&job.finish(Duration::from_secs(10)));
        assert_eq!(followed["accepted"], 1501, "{db:?}: {followed}");
        let rerun = ingest_ok(&db, &[s(&logs)]);
        assert_eq!(rerun["lines"], 0, "{db:?}: {rerun}");
        // Renamed again while no job runs.
        std::fs::rename(&rotated, logs.join("app-2.log")).expect("rename");
        let rerun = ingest_ok(&db, &[s(&logs)]);
        assert_eq!(rerun["lines"], 0, "{db:?}: {rerun}");
        assert_eq!(stored_requests(&db), 1501);
    }
}

#[test]
fn files_with_names_that_are_not_utf8_are_each_one_source() {
    use std::os::unix::ffi::OsStrExt;
    for db in backends() {
        let dir = temp_dir();
        for (name, seed) in [(&b"x\xff.log"[..], 31), (&b"x\xfe.log"[..], 32)] {
            generate(&dir.path().join(std::ffi::OsStr::from_bytes(name)), 4, seed);
        }
        assert_eq!(ingest_ok(&db, &[s(dir.path())])["accepted"], 8, "{db:?}");
        for _ in 0..3 {
            let rerun = ingest_ok(&db, &[s(dir.path())]);
            assert_eq!(rerun["lines"], 0, "{db:?}: {rerun}");
        }
        assert_eq!(stored_requests(&db), 8);
    }
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
    let mut job = spawn(db_url, args);
    let mut peak = 0;
    let started = Instant::now();
    while job.try_status().is_none() {
        peak = peak.max(peak_rss(job.id()).unwrap_or(0));
        assert!(started.elapsed() < Duration::from_secs(300), "no end");
        std::thread::sleep(Duration::from_millis(5));
    }
    (summary(&job.wait()), peak)
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

/// Overwrites the start of every page in the second half of a SQLite file: the schema pages
/// stay readable, the stats pages do not.
fn corrupt_second_half(path: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let bytes = std::fs::read(path).expect("read db");
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let pages = bytes.len() / page;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open db");
    for p in pages / 2..pages {
        file.seek(SeekFrom::Start((p * page) as u64)).expect("seek");
        file.write_all(&[0xff; 64]).expect("corrupt");
    }
}

#[test]
fn a_corrupt_sqlite_file_is_an_error_not_an_outage() {
    let db = logstats_shared::testing::TestDatabase::sqlite();
    let dir = temp_dir();
    let first = dir.path().join("first.log");
    generate(&first, 10_000, 41);
    assert_eq!(ingest_ok(&db, &[s(&first)])["accepted"], 10_000);
    let path = db.url.strip_prefix("sqlite://").expect("sqlite URL");
    corrupt_second_half(Path::new(path));
    let second = dir.path().join("second.log");
    generate(&second, 1_000, 42);
    let output = run_within(&db.url, &[s(&second)], Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: ")
            && stderr.contains("the database is corrupt (database disk image is malformed)"),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");
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
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run script");
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

#[test]
fn postgres_over_tls_ingests() {
    let Some(db) = logstats_shared::testing::TestDatabase::postgres() else {
        return;
    };
    let dir = temp_dir();
    let log = dir.path().join("a.log");
    generate(&log, 1000, 61);
    let url = format!("{}?sslmode=require", db.url);
    let output = run_within(&url, &[s(&log)], Duration::from_secs(60));
    assert_eq!(summary(&output)["accepted"], 1000);
    assert_eq!(stored_requests(&db), 1000);
}

/// Issue 10, row 3: durations no request has (up to 10^9 s) are rejected with their reason;
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

/// Relays TCP connections to `upstream`. The first time a transaction that upserts rows (its
/// statements carry `excluded`) sends `COMMIT`, the COMMIT reaches the server, which commits,
/// and then the connection is cut before its reply reaches the client: a lost reply.
struct LoseOneCommitReply {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LoseOneCommitReply {
    fn start(upstream: String) -> LoseOneCommitReply {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(true));
        let cut_flag = Arc::clone(&cut);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = TcpStream::connect(&upstream) else {
                    return;
                };
                let (mut client_r, mut server_w) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let (armed, cut) = (Arc::clone(&armed), Arc::clone(&cut_flag));
                // Set before the COMMIT is relayed: no byte of its reply goes back.
                let dropping = Arc::new(AtomicBool::new(false));
                let replies_dropped = Arc::clone(&dropping);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut upserting = false;
                    loop {
                        let n = match client_r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        let text = String::from_utf8_lossy(chunk).to_ascii_lowercase();
                        upserting |= text.contains("excluded");
                        let commit = text.contains("commit");
                        let lose = commit && upserting && armed.swap(false, Ordering::SeqCst);
                        if lose {
                            dropping.store(true, Ordering::SeqCst);
                            cut.store(true, Ordering::SeqCst);
                        }
                        if server_w.write_all(chunk).is_err() {
                            break;
                        }
                        if lose {
                            // Let the server commit, then close what is left.
                            std::thread::sleep(Duration::from_millis(500));
                            let _ = server_w.shutdown(Shutdown::Both);
                            let _ = client_r.shutdown(Shutdown::Both);
                            break;
                        }
                        if commit {
                            upserting = false;
                        }
                    }
                });
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if replies_dropped.load(Ordering::SeqCst)
                            || client.write_all(&buf[..n]).is_err()
                        {
                            break;
                        }
                    }
                    let _ = client.shutdown(Shutdown::Both);
                });
            }
        });
        LoseOneCommitReply { port, cut }
    }
}

/// The database commits an epoch but the reply is lost with the connection: the job retries,
/// and the retry finds the epoch already committed instead of merging it a second time.
#[test]
fn a_commit_whose_reply_is_lost_is_not_counted_twice() {
    let Some(db) = logstats_shared::testing::TestDatabase::postgres() else {
        return;
    };
    // postgres://USER@HOST:PORT/DB?...: the same database through the proxy, without TLS so
    // that the proxy sees the statements.
    let (scheme_user, rest) = db.url.split_once('@').expect("URL with a user");
    let (authority, path) = rest.split_once('/').expect("URL with a database");
    let proxy = LoseOneCommitReply::start(authority.to_string());
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = format!(
        "{scheme_user}@127.0.0.1:{}/{path}{separator}sslmode=disable",
        proxy.port
    );
    let dir = temp_dir();
    let log = dir.path().join("a.log");
    generate(&log, 2000, 67);
    let output = run_within(&url, &[s(&log)], Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        proxy.cut.load(std::sync::atomic::Ordering::SeqCst),
        "no reply was lost: {stderr}"
    );
    assert_eq!(summary(&output)["accepted"], 2000, "{stderr}");
    assert_eq!(stored_requests(&db), 2000, "{stderr}");
    assert!(stderr.contains("not applied again"), "{stderr}");
    // And a second run adds nothing.
    let again = run_within(&url, &[s(&log)], Duration::from_secs(60));
    assert_eq!(summary(&again)["accepted"], 0);
    assert_eq!(stored_requests(&db), 2000);
}
