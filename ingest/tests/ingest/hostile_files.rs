//! The real `logstats-ingest` binary against a hostile user's files: non-regular
//! files, its own rejects file as input, links out of a directory, one file under several names,
//! rotation, names that are not UTF-8. Database rows run on every backend.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::support::{
    generate, ingest, ingest_ok, mkfifo, run_within, s, start_ingest, stored_requests, summary,
    temp_dir,
};
use logstats_shared::testing::backends;

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
        let job = start_ingest(&db.url, &["--follow", s(dir.path())]);
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
        let job = start_ingest(&db.url, &["--follow", "--rejects", s(&rejects), s(&logs)]);
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
        let job = start_ingest(&db.url, &["--follow", s(&logs)]);
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
