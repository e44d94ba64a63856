//! The real `logstats-ingest` binary against a hostile database: a corrupt SQLite
//! file, PostgreSQL over TLS, and a commit whose reply is lost with its connection.

use std::path::Path;
use std::time::Duration;

use crate::support::{generate, ingest_ok, run_within, s, stored_requests, summary, temp_dir};
use logstats_shared::testing::outage::{server_port, via_local_port};

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

/// Relays TCP connections to `upstream`. The first time a transaction that upserts rows (its
/// statements carry PostgreSQL's `excluded` or MySQL's `on duplicate key update`) sends
/// `COMMIT`, the COMMIT reaches the server, which commits, and then the connection is cut
/// before its reply reaches the client: a lost reply.
struct LoseOneCommitReply {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LoseOneCommitReply {
    /// Forwards a free port to the server on this machine's port `server`.
    fn start(server: u16) -> LoseOneCommitReply {
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
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", server)) else {
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
                        upserting |=
                            text.contains("excluded") || text.contains("on duplicate key update");
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
/// and the retry finds the epoch already committed instead of merging it a second time. On
/// every server backend (PostgreSQL, and MySQL/MariaDB with FEATURES=mysql).
#[test]
fn a_commit_whose_reply_is_lost_is_not_counted_twice() {
    for db in logstats_shared::testing::servers() {
        // The same database through the proxy, without TLS so that the proxy sees the
        // statements (the MariaDB server of the tests offers none).
        let proxy = LoseOneCommitReply::start(server_port(&db.url));
        let proxied = via_local_port(&db.url, proxy.port);
        let plain = match db.backend {
            logstats_shared::Backend::Postgres if proxied.contains('?') => "&sslmode=disable",
            logstats_shared::Backend::Postgres => "?sslmode=disable",
            _ => "",
        };
        let url = format!("{proxied}{plain}");
        let dir = temp_dir();
        let log = dir.path().join("a.log");
        generate(&log, 2000, 67);
        let output = run_within(&url, &[s(&log)], Duration::from_secs(120));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let backend = db.backend;
        assert!(
            proxy.cut.load(std::sync::atomic::Ordering::SeqCst),
            "{backend:?}: no reply was lost: {stderr}"
        );
        assert_eq!(summary(&output)["accepted"], 2000, "{backend:?}: {stderr}");
        assert_eq!(stored_requests(&db), 2000, "{backend:?}: {stderr}");
        assert!(
            stderr.contains("not applied again"),
            "{backend:?}: {stderr}"
        );
        // And a second run adds nothing.
        let again = run_within(&url, &[s(&log)], Duration::from_secs(60));
        assert_eq!(summary(&again)["accepted"], 0, "{backend:?}");
        assert_eq!(stored_requests(&db), 2000, "{backend:?}");
    }
}
