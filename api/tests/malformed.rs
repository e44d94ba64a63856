//! Requests the HTTP parser refuses, sent to the real `logstats-api` binary: each gets its
//! 400 or 431, and none is logged at ERROR (a client's fault is a warning at most).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use logstats_shared::testing::TestDatabase;

/// Sends `raw` and returns the response's status line.
fn status_line(port: u16, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(raw);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn requests_the_parser_refuses_are_not_logged_as_errors() {
    let db = TestDatabase::sqlite();
    db.connect();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_logstats-api"))
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db.url,
        ])
        .args(["--workers", "1"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start logstats-api");
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let long_path = [
        b"GET /".as_slice(),
        &[b'a'; 100_000],
        b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    .concat();
    let many_headers = [
        b"GET /health HTTP/1.1\r\n".as_slice(),
        &(0..200)
            .flat_map(|i| format!("X-{i}: y\r\n").into_bytes())
            .collect::<Vec<u8>>(),
        b"\r\n",
    ]
    .concat();
    for (raw, expected) in [
        (long_path, "400"),
        (b"GET /he\0alth HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "400"),
        (b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "400"),
        (many_headers, "431"),
    ] {
        let status = status_line(port, &raw);
        assert!(status.contains(expected), "{status:?}, expected {expected}");
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(child.wait().expect("wait").success());
    assert!(!stderr.contains("ERROR"), "{stderr}");
    assert_eq!(
        stderr
            .matches("WARN  actix_http::h1::dispatcher] stream error: request parse error")
            .count(),
        4,
        "{stderr}"
    );
}
