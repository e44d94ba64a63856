//! Requests the HTTP parser refuses, and others the app refuses, sent over raw TCP to the real
//! `logstats-api` binary: each gets its status with a `{"error": "..."}` JSON body, and none is
//! logged at ERROR (a client's fault is a warning at most).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::Api;
use logstats_shared::testing::TestDatabase;
use serde_json::{json, Value};

/// One parsed HTTP/1.1 response: status, lower-cased head, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        assert!(
            self.head.contains("content-type: application/json"),
            "{self:?}"
        );
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// Splits the bytes of a connection into its responses (bodies sized by `content-length`).
fn answers(mut raw: &[u8]) -> Vec<Answer> {
    let mut found = Vec::new();
    while !raw.is_empty() {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .map_or(0, |n| n.trim().parse().expect("a length"));
        let body_start = end + 4;
        found.push(Answer {
            status,
            head,
            body: raw[body_start..body_start + length].to_vec(),
        });
        raw = &raw[body_start + length..];
    }
    found
}

/// The only answer to `raw`.
fn answer(api: &Api, raw: &[u8]) -> Answer {
    let mut all = answers(&api.raw(raw));
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn repeated(prefix: &str, piece: &str, times: usize, suffix: &str) -> Vec<u8> {
    format!("{prefix}{}{suffix}", piece.repeat(times)).into_bytes()
}

#[test]
fn refused_requests_get_json_and_a_warning() {
    let db = TestDatabase::sqlite();
    let api = Api::start(&db);
    let uri_too_long = json!({ "error": "malformed HTTP request: URI error: uri too long" });
    let bad_token = json!({ "error": "malformed HTTP request: invalid request line or header" });
    let too_large = json!({ "error": "request head too large: at most 96 headers and 128 KiB" });
    let cases: Vec<(&str, Vec<u8>, u16, &Value)> = vec![
        (
            "100 KB path",
            repeated("GET /", "a", 100_000, " HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
            &uri_too_long,
        ),
        (
            "70 KB query string",
            repeated(
                "GET /health?",
                "a=b&",
                17_500,
                " HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
            400,
            &uri_too_long,
        ),
        (
            "NUL in the path",
            b"GET /he\0alth HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            &bad_token,
        ),
        (
            "invalid UTF-8 in the path",
            b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            &bad_token,
        ),
        (
            "NUL in a header",
            b"GET /health HTTP/1.1\r\nX: a\0b\r\n\r\n".to_vec(),
            400,
            &bad_token,
        ),
        (
            "200 headers",
            repeated("GET /health HTTP/1.1\r\n", "X-N: y\r\n", 200, "\r\n"),
            431,
            &too_large,
        ),
        (
            "a 200 KB header",
            repeated("GET /health HTTP/1.1\r\nX: ", "a", 200_000, "\r\n\r\n"),
            431,
            &too_large,
        ),
    ];
    for (case, raw, status, body) in &cases {
        let answer = answer(&api, raw);
        assert_eq!(answer.status, *status, "{case}: {answer:?}");
        assert!(answer.head.contains("connection: close"), "{case}");
        assert_eq!(&answer.json(), *body, "{case}");
    }
    let bad_content_length = answer(&api, b"GET /health HTTP/1.1\r\nContent-Length: ten\r\n\r\n");
    assert_eq!(bad_content_length.status, 400);
    assert!(bad_content_length.json()["error"]
        .as_str()
        .is_some_and(|e| e.starts_with("malformed HTTP request: ")));

    // A good request then a bad one on the same connection: the good one is answered, then
    // the bad one, in JSON.
    let pipelined =
        answers(&api.raw(
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /he\0alth HTTP/1.1\r\nHost: x\r\n\r\n",
        ));
    assert_eq!(pipelined.len(), 2, "{pipelined:?}");
    assert_eq!(
        (pipelined[0].status, pipelined[0].json()),
        (200, json!({ "status": "ok" }))
    );
    assert_eq!(
        (pipelined[1].status, pipelined[1].json()),
        (400, bad_token.clone())
    );

    let log = api.stop();
    assert!(!log.contains("ERROR"), "{log}");
    let refused = cases.len() + 2;
    assert_eq!(
        log.matches("WARN  logstats_api::refusals] refused a request from 127.0.0.1:")
            .count(),
        refused,
        "{log}"
    );
}

#[test]
fn a_request_head_that_never_ends_is_408_json() {
    let db = TestDatabase::sqlite();
    let api = Api::start(&db);
    let expected = json!({ "error": "request head not received within 5 s" });
    // The first request of a connection, and the second of a kept-alive one (where actix-http
    // alone sets no bound), both sent in part and never finished.
    std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            let started = Instant::now();
            let raw = api.raw(b"GET /health HTTP/1.1\r\nHost: x\r\n");
            (started.elapsed(), answers(&raw))
        });
        let second = scope.spawn(|| {
            let mut stream = TcpStream::connect(("127.0.0.1", api.port)).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(15)))
                .expect("a timeout");
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("send");
            let mut ok = [0u8; 512];
            let n = stream.read(&mut ok).expect("the first answer");
            assert!(ok[..n].starts_with(b"HTTP/1.1 200 OK"));
            let started = Instant::now();
            for piece in [b"GET /he".as_slice(), b"alth HTTP/1.1\r\n", b"Host: x\r\n"] {
                stream.write_all(piece).expect("send a piece");
                std::thread::sleep(Duration::from_millis(1500));
            }
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            (started.elapsed(), answers(&rest))
        });
        for (elapsed, answers) in [second.join().expect("second"), first.join().expect("first")] {
            assert_eq!(answers.len(), 1, "{answers:?}");
            assert_eq!(
                (answers[0].status, answers[0].json()),
                (408, expected.clone())
            );
            assert!(
                elapsed >= Duration::from_millis(4900) && elapsed < Duration::from_secs(7),
                "answered after {elapsed:?}"
            );
        }
    });
    let log = api.stop();
    assert!(!log.contains("ERROR"), "{log}");
    assert_eq!(log.matches("refused a request from").count(), 2, "{log}");
}

#[test]
fn unknown_paths_and_methods_are_json_over_raw_http() {
    let db = TestDatabase::sqlite();
    let api = Api::start(&db);
    for (raw, status, body) in [
        (
            "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
            404,
            json!({ "error": "not found" }),
        ),
        (
            "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            405,
            json!({ "error": "method POST not allowed here (allowed: GET, HEAD)" }),
        ),
        (
            "GET /customers/%FF/stats?from=2024-10-10 HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            json!({ "error": "invalid customer id: expected 1-64 characters of A-Z a-z 0-9 . _ -, not . or .." }),
        ),
        // Dot segments, as sent raw (a client would have resolved them away): never an id.
        (
            "GET /customers/../stats?from=2024-10-10 HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            json!({ "error": "invalid customer id: expected 1-64 characters of A-Z a-z 0-9 . _ -, not . or .." }),
        ),
        (
            "GET /customers/%2E/stats?from=2024-10-10 HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            json!({ "error": "invalid customer id: expected 1-64 characters of A-Z a-z 0-9 . _ -, not . or .." }),
        ),
        (
            "GET /customers/cust_1/stats?from=2024-10-10&from=2024-10-11 HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            json!({ "error": "invalid query string: duplicate field `from`" }),
        ),
    ] {
        let raw = format!("{}\r\nConnection: close\r\n\r\n", raw.trim_end_matches("\r\n"));
        let answer = answer(&api, raw.as_bytes());
        assert_eq!((answer.status, answer.json()), (status, body), "{raw}");
    }
    // A 60 KB query string is within the limits: the route answers it.
    let long_query = repeated(
        "GET /customers/cust_1/stats?from=2024-10-10&",
        "x=y&",
        15_000,
        " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let answer = answer(&api, &long_query);
    assert_eq!(answer.status, 404, "{answer:?}");
    assert_eq!(
        answer.json(),
        json!({ "error": "no data for customer \"cust_1\"" })
    );
    let log = api.stop();
    assert!(!log.contains("ERROR") && !log.contains("refused"), "{log}");
}
