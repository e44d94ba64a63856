//! Cluster mode end to end, with the real binary on localhost: two processes of one worker each
//! store exactly the rows one process stores, on SQLite and PostgreSQL; a process killed with
//! SIGKILL stops the other within 10 s with an error naming it, and a restart of both ends with
//! exact totals; a stranger on process 0's port learns nothing and does not stop the job; wrong
//! flags, hostfiles and secret files are refused clearly.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::cluster::{addresses, hostfile, secret_file, Process};
use crate::support::{expected_stats, generate, job, s, stored_requests, temp_dir};
use chrono::NaiveDate;
use logstats_shared::testing::spawn::RUN_TIMEOUT;
use logstats_shared::testing::{backends, TestDatabase};
use logstats_shared::DayStats;
use serde_json::Value;

/// How soon a process must notice that another one was killed, and exit.
const LOSS_NOTICED_WITHIN: Duration = Duration::from_secs(10);

/// The variable `--cluster-secret-file` falls back to.
const SECRET_FILE_VARIABLE: &str = "LOGSTATS_CLUSTER_SECRET_FILE";

/// Every stored row, in order.
fn rows(db: &TestDatabase) -> Vec<(String, NaiveDate, DayStats)> {
    db.connect().all_days().expect("rows")
}

/// Valid lines of `logs`, counted without the project's parser.
fn valid_lines(logs: &[PathBuf]) -> u64 {
    logs.iter()
        .flat_map(|log| expected_stats(log).into_values())
        .map(|e| e.successful + e.failed)
        .sum()
}

/// Two generated logs in `dir`, the second with bad lines in it.
fn logs(dir: &Path, lines: u64) -> Vec<PathBuf> {
    let first = dir.join("a.log");
    let second = dir.join("b.log");
    generate(&first, lines, 21);
    generate(&second, lines / 2, 22);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&second)
        .expect("open");
    file.write_all(
        b"2024-10-32 12:00:00 cust_1 /p 200 0.100\nnot a log line\n\n\
          2024-10-20 12:00:00 cust_1 /p 700 0.100\n2024-10-20 12:00:00 cust_9 /p 200 0.250\n",
    )
    .expect("append");
    vec![first, second]
}

/// Runs processes 0 and 1 of a new two-process cluster to the end; process 0's summary.
fn run_two(dir: &Path, db: &TestDatabase, args: &[&str]) -> Value {
    let hosts = hostfile(dir, 2);
    // Process 1 first: it waits for process 0.
    let one = Process::member(db, &hosts, 2, 1, args);
    let zero = Process::member(db, &hosts, 2, 0, args);
    let summary = zero.succeed(Duration::from_secs(120)).expect("summary");
    let other = one.succeed(Duration::from_secs(10));
    assert!(other.is_none(), "process 1 prints no summary: {other:?}");
    summary
}

/// The counts of a summary, without its times.
fn counts(summary: &Value) -> Vec<(&'static str, Value)> {
    [
        "lines",
        "accepted",
        "rejected",
        "late",
        "rows_written",
        "bytes",
    ]
    .into_iter()
    .map(|key| (key, summary[key].clone()))
    .collect()
}

#[test]
fn two_processes_store_exactly_the_rows_of_one() {
    for (one, two) in backends().into_iter().zip(backends()) {
        let dir = temp_dir();
        let logs = logs(dir.path(), 40_000);
        let (one_rejects, two_rejects) = (dir.path().join("one.rej"), dir.path().join("two.rej"));
        let args = |rejects: &Path| {
            let mut args = vec!["--epoch-bytes", "300000", "--rejects"];
            args.push(s(rejects));
            args.extend(logs.iter().map(|p| s(p)));
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
        };
        let single = args(&one_rejects);
        let single: Vec<&str> = single.iter().map(String::as_str).collect();
        let single = Process::start(&one, &[&["--workers", "2"], &single[..]].concat())
            .succeed(Duration::from_secs(120))
            .expect("summary");
        let cluster = args(&two_rejects);
        let cluster: Vec<&str> = cluster.iter().map(String::as_str).collect();
        let summary = run_two(dir.path(), &two, &cluster);

        assert_eq!(counts(&summary), counts(&single), "{:?}", one.backend);
        assert_eq!(summary["rejected"], 3, "{summary}");
        let stored = rows(&two);
        assert!(!stored.is_empty());
        assert!(
            stored == rows(&one),
            "{:?}: the rows differ from one process's",
            one.backend
        );
        assert_eq!(stored_requests(&two), valid_lines(&logs));
        // Process 0 wrote the rejects, numbered as one process numbers them.
        let rejects = std::fs::read_to_string(&two_rejects).expect("rejects");
        assert_eq!(rejects.lines().count(), 3, "{rejects}");
        assert_eq!(
            rejects,
            std::fs::read_to_string(&one_rejects).expect("rejects")
        );
        // A second run of both adds nothing.
        let again = run_two(dir.path(), &two, &cluster);
        assert_eq!(again["lines"], 0, "{again}");
        assert!(stored == rows(&two));
    }
}

/// Kills `victim` (a process of a running cluster) with SIGKILL; expects `survivor` to exit
/// non-zero within [`LOSS_NOTICED_WITHIN`], naming the lost process.
fn kill_and_expect_stop(mut victim: Process, mut survivor: Process, lost: &str) {
    let killed = Instant::now();
    victim.kill();
    let _ = victim.wait_for(Duration::from_secs(5));
    let status = survivor.wait_for(LOSS_NOTICED_WITHIN);
    let stderr = survivor.stderr();
    let Some(status) = status else {
        panic!("still running {LOSS_NOTICED_WITHIN:?} after {lost} was killed: {stderr}");
    };
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: lost {lost}")) && stderr.contains("restart every process"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    eprintln!("{lost} killed: the other stopped in {:?}", killed.elapsed());
}

#[test]
fn a_killed_process_stops_the_other_and_a_restart_of_both_gives_exact_totals() {
    for (db, reference) in backends().into_iter().zip(backends()) {
        let dir = temp_dir();
        let logs = logs(dir.path(), 200_000);
        let hosts = hostfile(dir.path(), 2);
        let addresses: Vec<String> = std::fs::read_to_string(&hosts)
            .expect("hosts")
            .lines()
            .filter(|l| l.starts_with("127."))
            .map(String::from)
            .collect();
        // Follow mode: the job is still running whenever the kill comes. Small epochs: many
        // commits, so the kill lands between some of them.
        let mut args = vec!["--follow", "--epoch-bytes", "200000"];
        args.extend(logs.iter().map(|p| s(p)));
        let total = valid_lines(&logs);
        let start = |db: &TestDatabase| {
            let one = Process::member(db, &hosts, 2, 1, &args);
            let zero = Process::member(db, &hosts, 2, 0, &args);
            (zero, one)
        };
        let some_committed = |db: &TestDatabase| {
            let started = Instant::now();
            while stored_requests(db) == 0 {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "nothing committed"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        };

        // Process 1 killed: process 0, the committer, stops.
        let (zero, one) = start(&db);
        some_committed(&db);
        kill_and_expect_stop(one, zero, &format!("process 1 ({})", addresses[1]));
        let after_first = stored_requests(&db);

        // Process 0 killed: process 1 stops.
        let (zero, one) = start(&db);
        let started = Instant::now();
        while stored_requests(&db) == after_first && after_first < total {
            assert!(started.elapsed() < Duration::from_secs(60), "no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_and_expect_stop(zero, one, &format!("process 0 ({})", addresses[0]));
        eprintln!(
            "{:?}: {after_first} then {} of {total} requests stored when killed",
            db.backend,
            stored_requests(&db)
        );

        // Both again, to the end of the files. SIGTERM to both at once (as `docker compose
        // stop` sends it): process 0 commits what was read and ends the job, both exit 0.
        let (zero, one) = start(&db);
        let started = Instant::now();
        while stored_requests(&db) < total {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "not caught up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        zero.signal("TERM");
        one.signal("TERM");
        zero.succeed(Duration::from_secs(20));
        assert!(one.succeed(Duration::from_secs(10)).is_none());
        assert_eq!(stored_requests(&db), total, "{:?}", db.backend);

        // The same rows as one process reading the files once.
        let mut single = vec!["--workers", "1"];
        single.extend(logs.iter().map(|p| s(p)));
        Process::start(&reference, &single).succeed(Duration::from_secs(120));
        assert!(
            rows(&db) == rows(&reference),
            "{:?}: rows differ",
            db.backend
        );
    }
}

/// The hello a process sent first before the cluster secret existed: four bytes of length, then
/// JSON. With `addresses` empty it is the one of the security finding; with the hostfile's, a
/// stranger posing as process 1.
fn plain_hello(addresses: &[String]) -> Vec<u8> {
    let body = serde_json::json!({
        "magic": "logstats-cluster",
        "version": env!("CARGO_PKG_VERSION"),
        "process": 1,
        "processes": 2,
        "workers": 1,
        "addresses": addresses,
    })
    .to_string();
    let mut message = u32::try_from(body.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    message.extend_from_slice(body.as_bytes());
    message
}

/// A connection to `address`, once something listens there (process 0 listens once it has
/// opened the database).
fn dial(address: &str) -> TcpStream {
    let started = Instant::now();
    loop {
        match TcpStream::connect(address) {
            Ok(stream) => return stream,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{address}: {e}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Everything `stream` receives until the other side closes it; a failure if it is still open
/// after 15 s.
fn received(stream: &mut TcpStream) -> Vec<u8> {
    logstats_shared::testing::received_until_closed(stream, Duration::from_secs(15))
}

#[test]
fn a_stranger_on_the_cluster_port_learns_nothing_and_the_job_goes_on() {
    for (db, reference) in backends().into_iter().zip(backends()) {
        let dir = temp_dir();
        let logs = logs(dir.path(), 20_000);
        let hosts = hostfile(dir.path(), 2);
        let addresses = addresses(&hosts);
        let mut args = vec!["--epoch-bytes", "300000"];
        args.extend(logs.iter().map(|p| s(p)));

        // Process 0 alone: it opens the database, listens, and waits for process 1.
        let mut zero = Process::member(&db, &hosts, 2, 0, &args);
        let mut strangers = Vec::new();
        for hello in [plain_hello(&[]), plain_hello(&addresses)] {
            let mut stranger = dial(&addresses[0]);
            strangers.push(stranger.local_addr().expect("address"));
            stranger.write_all(&hello).expect("send");
            // At most the random nonce process 0 sends first, then the connection is closed.
            let reply = received(&mut stranger);
            assert!(reply.len() <= 32, "{:?}: {reply:?}", db.backend);
            let text = String::from_utf8_lossy(&reply);
            for word in [
                "logstats",
                env!("CARGO_PKG_VERSION"),
                "127.0.0.1",
                "\"error\"",
            ]
            .into_iter()
            .chain(addresses.iter().map(String::as_str))
            {
                assert!(!text.contains(word), "{word:?} in {text:?}");
            }
        }
        // A process 1 started with another secret: it fails, saying why; process 0 waits on.
        let other = dir.path().join("other");
        std::fs::create_dir(&other).expect("dir");
        let other_hosts = other.join("hosts");
        std::fs::copy(&hosts, &other_hosts).expect("copy");
        std::fs::write(
            secret_file(&other_hosts),
            "another secret, 32 bytes long...\n",
        )
        .expect("write");
        let mut wrong = Process::member(&db, &other_hosts, 2, 1, &args);
        let status = wrong.wait_for(Duration::from_secs(30));
        let wrong_stderr = wrong.stderr();
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{wrong_stderr}");
        assert!(
            wrong_stderr.contains(&format!(
                "error: cannot authenticate with process 0 ({}) (it closed the connection): is \
                 every process started with the same --cluster-secret-file",
                addresses[0]
            )),
            "{wrong_stderr}"
        );
        assert!(!wrong_stderr.contains("another secret"), "{wrong_stderr}");
        // Another stranger connects and says nothing while process 1 starts.
        let silent = dial(&addresses[0]);
        let status = zero.wait_for(Duration::from_millis(500));
        assert!(
            status.is_none(),
            "process 0 stopped for a stranger: {status:?}: {}",
            zero.stderr()
        );

        let one = Process::member(&db, &hosts, 2, 1, &args);
        let status = zero.wait_for(Duration::from_secs(120));
        let stderr = zero.stderr();
        assert!(status.is_some_and(|s| s.success()), "{status:?}: {stderr}");
        assert!(one.succeed(Duration::from_secs(10)).is_none());
        drop(silent);
        for stranger in &strangers {
            let warning = format!(
                "cluster: dropped a connection from {stranger} that did not prove the cluster \
                 secret"
            );
            assert!(
                stderr
                    .lines()
                    .any(|line| line.contains(" WARN ") && line.ends_with(&warning)),
                "{warning}: {stderr}"
            );
        }
        // And one for the process with another secret (from a port not known here).
        let dropped = stderr
            .matches("that did not prove the cluster secret")
            .count();
        assert!(dropped > strangers.len(), "{stderr}");
        assert!(!stderr.contains("refused"), "{stderr}");
        let secret = std::fs::read_to_string(secret_file(&hosts)).expect("secret");
        assert!(!stderr.contains(secret.trim()), "{stderr}");

        // Exact totals: what one process stores from the same files.
        let summary: Value = serde_json::from_str(&zero.stdout()).expect("summary");
        let mut single = vec!["--workers", "1", "--epoch-bytes", "300000"];
        single.extend(logs.iter().map(|p| s(p)));
        let single = Process::start(&reference, &single)
            .succeed(Duration::from_secs(120))
            .expect("summary");
        assert_eq!(counts(&summary), counts(&single), "{:?}", db.backend);
        assert_eq!(summary["rejected"], 3, "{summary}");
        assert_eq!(stored_requests(&db), valid_lines(&logs));
        assert!(
            rows(&db) == rows(&reference),
            "{:?}: the rows differ from one process's",
            db.backend
        );
    }
}

/// Runs `logstats-ingest ARGS` (SQLite in `dir`); its exit code and stderr.
fn refused(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    refused_with(dir, args, None)
}

/// [`refused`], with `LOGSTATS_CLUSTER_SECRET_FILE` set to `secret_file` if given (and unset
/// otherwise, whatever the test's environment says).
fn refused_with(dir: &Path, args: &[&str], secret_file: Option<&Path>) -> (Option<i32>, String) {
    let db = format!("sqlite://{}", dir.join("refused.db").display());
    let job = job(&db).env_remove(SECRET_FILE_VARIABLE);
    let job = match secret_file {
        Some(path) => job.env(SECRET_FILE_VARIABLE, path),
        None => job,
    };
    let output = job.args(args).env("RUST_LOG", "warn").run(RUN_TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?}");
    (output.status.code(), stderr)
}

#[test]
fn wrong_cluster_flags_and_hostfiles_are_refused_clearly() {
    let dir = temp_dir();
    let log = dir.path().join("a.log");
    generate(&log, 100, 1);
    let hosts = hostfile(dir.path(), 2);
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let bad_line = write("bad", "127.0.0.1:2101\n# fine\nnot-an-address\n");
    let repeated = write("repeated", "127.0.0.1:2101\n127.0.0.1:2101\n");
    let empty = write("empty", "# nobody\n\n");
    let missing = dir.path().join("missing");
    // 15 bytes and a newline: one too few.
    let short = write("short.secret", "tooshort-secre\n\n");
    let secret = secret_file(&hosts);
    let (h, l, k) = (s(&hosts), s(&log), s(&secret));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--processes", "2", l], "--process <I>"),
        (
            vec!["--processes", "2", "--process", "0", l],
            "--hostfile <PATH>",
        ),
        (
            vec!["--process", "1", "--hostfile", h, l],
            "--processes <N>",
        ),
        (vec!["--hostfile", h, l], "--processes <N>"),
        (
            vec!["--processes", "0", "--process", "0", "--hostfile", h],
            "--processes",
        ),
        (
            vec!["--processes", "2", "--process", "x", "--hostfile", h],
            "--process",
        ),
        (
            vec!["--processes", "2", "--process", "2", "--hostfile", h, l],
            "--process 2 is out of range: with --processes 2 it is 0 to 1",
        ),
        (
            vec!["--processes", "3", "--process", "0", "--hostfile", h, l],
            "--processes 3 does not match the hostfile",
        ),
        (
            vec![
                "--processes",
                "2",
                "--process",
                "0",
                "--hostfile",
                s(&bad_line),
                l,
            ],
            "line 3: \"not-an-address\" is not HOST:PORT",
        ),
        (
            vec![
                "--processes",
                "2",
                "--process",
                "0",
                "--hostfile",
                s(&repeated),
                l,
            ],
            "line 2: 127.0.0.1:2101 is already on line 1",
        ),
        (
            vec![
                "--processes",
                "1",
                "--process",
                "0",
                "--hostfile",
                s(&empty),
                l,
            ],
            "no host:port line",
        ),
        (
            vec![
                "--processes",
                "2",
                "--process",
                "0",
                "--hostfile",
                s(&missing),
                l,
            ],
            "cannot read the hostfile",
        ),
        (
            vec![
                "--processes",
                "2",
                "--process",
                "1",
                "--hostfile",
                h,
                "--cluster-secret-file",
                k,
                "--follow",
                "--metrics-bind",
                "127.0.0.1:0",
                l,
            ],
            "--metrics-bind is for process 0 of a cluster only",
        ),
        (
            vec!["--processes", "2", "--process", "0", "--hostfile", h, l],
            "--processes 2 needs --cluster-secret-file PATH (or LOGSTATS_CLUSTER_SECRET_FILE)",
        ),
        (
            vec![
                "--processes",
                "2",
                "--process",
                "1",
                "--hostfile",
                h,
                "--cluster-secret-file",
                s(&short),
                l,
            ],
            "holds fewer than 16 bytes (after trailing whitespace); make one with `head -c 32 \
             /dev/urandom | base64 >",
        ),
        (
            vec![
                "--processes",
                "2",
                "--process",
                "0",
                "--hostfile",
                h,
                "--cluster-secret-file",
                s(&missing),
                l,
            ],
            "cannot read the cluster secret file",
        ),
        (
            vec![
                "--processes",
                "2",
                "--process",
                "0",
                "--hostfile",
                h,
                "--cluster-secret-file",
                s(dir.path()),
                l,
            ],
            "cannot read the cluster secret file",
        ),
        (
            vec![
                "--processes",
                "2",
                "--process",
                "0",
                "--hostfile",
                h,
                "--connect-timeout",
                "0",
                l,
            ],
            "at least 1s",
        ),
    ];
    for (args, expected) in cases {
        let (code, stderr) = refused(dir.path(), &args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("tooshort"), "{args:?}: {stderr}");
    }

    // The secret file from the environment, checked the same way; no secret shown.
    let cluster = ["--processes", "2", "--process", "0", "--hostfile", h, l];
    let (code, stderr) = refused_with(dir.path(), &cluster, Some(&short));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("holds fewer than 16 bytes"), "{stderr}");
    assert!(!stderr.contains("tooshort"), "{stderr}");
    let secret_text = std::fs::read_to_string(&secret).expect("secret");
    let help = job("sqlite://unused.db")
        .env(SECRET_FILE_VARIABLE, &secret)
        .arg("--help")
        .run(RUN_TIMEOUT);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--cluster-secret-file <PATH>") && help.contains(SECRET_FILE_VARIABLE),
        "{help}"
    );
    assert!(!help.contains(secret_text.trim()), "{help}");

    // A process whose peer never comes gives up after --connect-timeout, naming it.
    let peer = std::fs::read_to_string(&hosts).expect("hosts");
    let peer = peer
        .lines()
        .filter(|l| l.starts_with("127."))
        .nth(1)
        .expect("line");
    let started = Instant::now();
    let (code, stderr) = refused(
        dir.path(),
        &[
            "--processes",
            "2",
            "--process",
            "0",
            "--hostfile",
            h,
            "--cluster-secret-file",
            k,
            "--connect-timeout",
            "2s",
            l,
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "process 1 ({peer}) did not connect within 2 s: is each running, with the same \
             hostfile and --cluster-secret-file?"
        )),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Processes started with different --workers refuse each other, both saying why.
    let db = TestDatabase::sqlite();
    let mut processes: Vec<Process> = [(1, "1"), (0, "2")]
        .into_iter()
        .map(|(i, workers)| {
            let index = i.to_string();
            Process::start(
                &db,
                &[
                    "--workers",
                    workers,
                    "--processes",
                    "2",
                    "--process",
                    &index,
                    "--hostfile",
                    h,
                    "--cluster-secret-file",
                    k,
                    "--connect-timeout",
                    "20s",
                    l,
                ],
            )
        })
        .collect();
    for process in &mut processes {
        let status = process.wait_for(Duration::from_secs(30));
        let stderr = process.stderr();
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
        assert!(
            stderr.contains("process 1 was started with --workers 1, process 0 with --workers 2"),
            "{stderr}"
        );
    }
    assert_eq!(stored_requests(&db), 0);
}
