//! Lines pushed over HTTP (`--listen`), end to end with the real binary on every backend:
//! native lines, gzip JSON lines and JSON arrays store exactly what the same requests' native
//! log computes; a batch sent again with its `Idempotency-Key` (after a lost reply, a client
//! timeout, or kill -9 of the job) counts once, a different key counts again; refusals store
//! nothing; a token's scope keeps other customers' lines out; a followed file and pushes at once
//! count every line once.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{expected_stats, generate, job, temp_dir, Expected};
use chrono::NaiveDate;
use logstats_shared::testing::spawn::{free_port, Spawned};
use logstats_shared::testing::{backends, TestDatabase};
use logstats_shared::tokens::{new_token, Scope};
use logstats_shared::Latencies;
use serde_json::Value;

/// `logstats-ingest --listen 127.0.0.1:PORT ARGS`, started and answering.
fn listening(db: &TestDatabase, args: &[&str]) -> (Spawned, String) {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let spawned = job(&db.url)
        .args(["--json", "--listen", &address])
        .args(args)
        .env("RUST_LOG", "warn")
        .start_ready(Duration::from_secs(60), |_| {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    (spawned, format!("http://{address}"))
}

/// A push: (status, body as JSON, whether the answer says it was replayed).
fn push(base: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value, bool) {
    let mut request = ureq::post(&format!("{base}/v1/lines")).timeout(Duration::from_secs(60));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = match request.send_bytes(body) {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("push to {base}: {e}"),
    };
    let status = response.status();
    let replayed = response.header("idempotency-replayed") == Some("true");
    let text = response.into_string().expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, json, replayed)
}

fn counts(accepted: u64, rejected: u64, late: u64) -> Value {
    serde_json::json!({ "accepted": accepted, "rejected": rejected, "late": late })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// A native line as the JSON object the default fields name.
fn as_json(line: &str) -> String {
    let f: Vec<&str> = line.split(' ').collect();
    format!(
        r#"{{"timestamp":"{}T{}Z","customer_id":"{}","path":"{}","status":{},"duration":{}}}"#,
        f[0], f[1], f[2], f[3], f[4], f[5]
    )
}

type Held = (u64, u64, Vec<(u64, u64)>);

/// What each stored (customer, day) holds: counts, and every latency (µs) with its count.
fn stored(db: &TestDatabase) -> BTreeMap<(String, NaiveDate), Held> {
    db.connect()
        .all_days()
        .expect("rows")
        .into_iter()
        .map(|(customer, day, s)| {
            let Latencies::Exact(histogram) = &s.latencies else {
                panic!("{customer} {day}: not exact");
            };
            let values = histogram.iter().collect();
            ((customer, day), (s.successful, s.failed, values))
        })
        .collect()
}

/// The same from the log, computed the simple way.
fn expected(log: &Path) -> BTreeMap<(String, NaiveDate), Held> {
    expected_stats(log)
        .into_iter()
        .map(|(key, e): (_, Expected)| {
            let mut values: BTreeMap<u64, u64> = BTreeMap::new();
            for ms in &e.latencies_ms {
                *values.entry(ms * 1000).or_default() += 1;
            }
            (key, (e.successful, e.failed, values.into_iter().collect()))
        })
        .collect()
}

fn requests(rows: &BTreeMap<(String, NaiveDate), Held>) -> u64 {
    rows.values().map(|(s, f, _)| s + f).sum()
}

/// Waits until `db` stores `total` requests.
fn wait_for_requests(db: &TestDatabase, total: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while requests(&stored(db)) != total {
        assert!(Instant::now() < deadline, "never stored {total} requests");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a batch and leaves without reading the answer: the reply is lost.
fn push_and_hang_up(base: &str, body: &[u8], key: &str) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "POST /v1/lines HTTP/1.1\r\nHost: {address}\r\nContent-Type: text/plain\r\n\
         Idempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("head");
    stream.write_all(body).expect("body");
    stream.flush().expect("flush");
}

/// Every form of a push stores exactly what the native log computes, and resending a batch
/// with its key counts once, however its first answer was lost.
#[test]
fn pushed_batches_store_exact_rows_and_count_once_per_key() {
    for db in backends() {
        let dir = temp_dir();
        let log = dir.path().join("api.log");
        generate(&log, 6_000, 11);
        let text = std::fs::read_to_string(&log).expect("log");
        let lines: Vec<&str> = text.lines().collect();
        let (mut job, base) = listening(&db, &[]);
        let batch = |part: usize| -> String {
            lines[part * 1_000..(part + 1) * 1_000]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect()
        };
        // Native lines, without a key.
        let (status, body, _) = push(&base, batch(0).as_bytes(), &[]);
        assert_eq!(
            (status, body),
            (200, counts(1_000, 0, 0)),
            "{:?}",
            db.backend
        );
        // JSON lines, gzip, with a key; sent again: the same answer, replayed.
        let ndjson: String = batch(1).lines().map(|l| as_json(l) + "\n").collect();
        let packed = gzip(ndjson.as_bytes());
        let headers = [
            ("Content-Type", "application/x-ndjson"),
            ("Content-Encoding", "gzip"),
            ("Idempotency-Key", "batch-1"),
        ];
        assert_eq!(
            push(&base, &packed, &headers),
            (200, counts(1_000, 0, 0), false)
        );
        assert_eq!(
            push(&base, &packed, &headers),
            (200, counts(1_000, 0, 0), true)
        );
        // A JSON array, pretty-printed.
        let array: Vec<Value> = batch(2)
            .lines()
            .map(|l| serde_json::from_str(&as_json(l)).expect("json"))
            .collect();
        let pretty = serde_json::to_vec_pretty(&array).expect("array");
        let json = [
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "batch-2"),
        ];
        assert_eq!(push(&base, &pretty, &json).0, 200);
        // The reply lost: sent again, counted once.
        push_and_hang_up(&base, batch(3).as_bytes(), "batch-3");
        let key3 = [("Idempotency-Key", "batch-3")];
        let (status, body, _) = push(&base, batch(3).as_bytes(), &key3);
        assert_eq!((status, body), (200, counts(1_000, 0, 0)));
        // A client that timed out before the answer, then sent again.
        let timed_out = ureq::post(&format!("{base}/v1/lines"))
            .timeout(Duration::from_millis(1))
            .set("Idempotency-Key", "batch-4")
            .send_bytes(batch(4).as_bytes());
        assert!(timed_out.is_err(), "the 1 ms client was answered");
        let key4 = [("Idempotency-Key", "batch-4")];
        assert_eq!(push(&base, batch(4).as_bytes(), &key4).0, 200);
        wait_for_requests(&db, 5_000);
        // kill -9 once the batch is committed, before its client read the answer; a new job
        // answers the resent batch from the stored key and adds nothing.
        push_and_hang_up(&base, batch(5).as_bytes(), "batch-5");
        wait_for_requests(&db, 6_000);
        job.kill();
        let (job, base) = listening(&db, &[]);
        let key5 = [("Idempotency-Key", "batch-5")];
        assert_eq!(
            push(&base, batch(5).as_bytes(), &key5),
            (200, counts(1_000, 0, 0), true)
        );
        assert_eq!(
            push(&base, &packed, &headers),
            (200, counts(1_000, 0, 0), true)
        );
        assert_eq!(stored(&db), expected(&log), "{:?}", db.backend);
        // The same lines under a new key are a new batch.
        let other = [("Idempotency-Key", "batch-5-again")];
        assert_eq!(
            push(&base, batch(5).as_bytes(), &other),
            (200, counts(1_000, 0, 0), false)
        );
        assert_eq!(requests(&stored(&db)), 7_000);
        job.signal("TERM");
        let output = job.finish(Duration::from_secs(60));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A batch killed before its commit was never answered; sent again it counts once.
#[test]
fn a_batch_sent_again_after_kill_9_before_its_commit_counts_once() {
    for db in backends() {
        let dir = temp_dir();
        let log = dir.path().join("api.log");
        generate(&log, 2_000, 5);
        let body = std::fs::read(&log).expect("log");
        let (mut job, base) = listening(&db, &[]);
        push_and_hang_up(&base, &body, "only");
        job.kill();
        let (job, base) = listening(&db, &[]);
        let key = [("Idempotency-Key", "only")];
        let (status, _, _) = push(&base, &body, &key);
        assert_eq!(status, 200);
        assert_eq!(stored(&db), expected(&log), "{:?}", db.backend);
        job.signal("TERM");
        job.finish(Duration::from_secs(60));
    }
}

/// Every refusal is JSON with its status and stores nothing.
#[test]
fn refused_pushes_get_their_status_and_store_nothing() {
    for db in backends() {
        let dir = temp_dir();
        let tokens = dir.path().join("tokens");
        let new = |scope: &str| new_token(&Scope::parse(scope).expect("scope")).expect("token");
        let (scoped_token, all_token) = (new("cust_1"), new("*"));
        std::fs::write(
            &tokens,
            format!("{}\n{}\n", scoped_token.line, all_token.line),
        )
        .expect("tokens");
        let (token, all) = (scoped_token.token.as_str(), all_token.token.as_str());
        let (job, base) = listening(
            &db,
            &[
                "--tokens",
                tokens.to_str().expect("path"),
                "--push-max-body",
                "100000",
                "--push-max-batch",
                "1000000",
            ],
        );
        let line = b"2024-10-10 12:50:18 cust_1 /a 200 0.5\n";
        let bearer = format!("Bearer {all}");
        let auth = ("Authorization", bearer.as_str());
        let refused = |body: &[u8], headers: &[(&str, &str)]| {
            let (status, json, _) = push(&base, body, headers);
            assert!(
                json["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{status}: {json}"
            );
            status
        };
        assert_eq!(refused(line, &[]), 401);
        assert_eq!(refused(line, &[("Authorization", "Bearer wrong")]), 401);
        // A gzip bomb: 64 MiB of zeros in about 64 KiB.
        let bomb = gzip(&vec![b'0'; 64 << 20]);
        assert!(bomb.len() < 100_000);
        assert_eq!(refused(&bomb, &[auth, ("Content-Encoding", "gzip")]), 413);
        assert_eq!(refused(&line.repeat(3_000), &[auth]), 413);
        assert_eq!(
            refused(b"[{\"a\":", &[auth, ("Content-Type", "application/json")]),
            400
        );
        assert_eq!(
            refused(b"{}", &[auth, ("Content-Type", "application/json")]),
            400
        );
        assert_eq!(
            refused(b"not gzip", &[auth, ("Content-Encoding", "gzip")]),
            400
        );
        assert_eq!(refused(line, &[auth, ("Content-Type", "image/png")]), 415);
        assert_eq!(
            refused(line, &[auth, ("Idempotency-Key", "has space")]),
            400
        );
        assert_eq!(requests(&stored(&db)), 0, "{:?}", db.backend);
        // A scoped token: other customers' lines are rejected, counted, never stored.
        let scoped = format!("Bearer {token}");
        let mixed =
            b"2024-10-10 12:50:18 cust_1 /a 200 0.5\n2024-10-10 12:50:19 cust_2 /a 200 0.5\n\
            2024-10-10 12:50:20 cust_2 /b 500 0.5\nnot a line\n";
        let (status, body, _) = push(&base, mixed, &[("Authorization", &scoped)]);
        assert_eq!((status, body), (200, counts(1, 3, 0)));
        let rows = stored(&db);
        assert_eq!(
            rows.keys().map(|k| k.0.as_str()).collect::<Vec<_>>(),
            ["cust_1"]
        );
        assert_eq!(requests(&rows), 1);
        let metrics = ureq::get(&format!("{base}/metrics"))
            .call()
            .expect("metrics")
            .into_string()
            .expect("text");
        for expected in [
            "logstats_ingest_push_batches_total 1",
            "logstats_ingest_push_refused_total 9",
            "logstats_ingest_push_rejected_scope_total 2",
        ] {
            assert!(metrics.contains(expected), "{expected} in {metrics}");
        }
        job.signal("TERM");
        job.finish(Duration::from_secs(60));
    }
}

/// A followed file and pushes into the same job: every line counted once.
#[test]
fn a_followed_file_and_pushes_at_once_count_every_line_once() {
    for db in backends() {
        let dir = temp_dir();
        let (file_log, pushed_log) = (dir.path().join("file.log"), dir.path().join("pushed"));
        generate(&file_log, 4_000, 21);
        generate(&pushed_log, 4_000, 22);
        let followed = dir.path().join("followed.log");
        std::fs::write(&followed, b"").expect("empty");
        let (job, base) = listening(&db, &["--follow", followed.to_str().expect("path")]);
        let file_text = std::fs::read(&file_log).expect("log");
        let pushed_text = std::fs::read_to_string(&pushed_log).expect("log");
        let pushed_lines: Vec<&str> = pushed_text.lines().collect();
        let writer = {
            let followed = followed.clone();
            std::thread::spawn(move || {
                let mut out = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&followed)
                    .expect("open");
                for chunk in file_text.chunks(20_000) {
                    out.write_all(chunk).expect("append");
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        for (i, chunk) in pushed_lines.chunks(500).enumerate() {
            let body: String = chunk.iter().map(|l| format!("{l}\n")).collect();
            let key = format!("k{i}");
            assert_eq!(
                push(&base, body.as_bytes(), &[("Idempotency-Key", &key)]).0,
                200
            );
        }
        writer.join().expect("writer");
        let mut want = expected(&file_log);
        for (key, (s, f, values)) in expected(&pushed_log) {
            let entry = want.entry(key).or_insert((0, 0, Vec::new()));
            entry.0 += s;
            entry.1 += f;
            let mut merged: BTreeMap<u64, u64> = entry.2.iter().copied().collect();
            for (v, c) in values {
                *merged.entry(v).or_default() += c;
            }
            entry.2 = merged.into_iter().collect();
        }
        wait_for_requests(&db, requests(&want));
        job.signal("TERM");
        let output = job.finish(Duration::from_secs(60));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(stored(&db), want, "{:?}", db.backend);
        let summary: Value = serde_json::from_slice(&output.stdout).expect("summary");
        assert_eq!(summary["accepted"], 8_000);
    }
}

/// `--push-key-from-body`: a shipper that resends a batch unchanged and without a key (as
/// Vector and Fluent Bit do) counts it once; without the flag it would count twice.
#[test]
fn a_batch_resent_without_a_key_counts_once_with_push_key_from_body() {
    for db in backends() {
        let dir = temp_dir();
        let log = dir.path().join("api.log");
        generate(&log, 1_000, 3);
        let packed = gzip(&std::fs::read(&log).expect("log"));
        let (job, base) = listening(&db, &["--push-key-from-body"]);
        let headers = [("Content-Encoding", "gzip")];
        assert_eq!(
            push(&base, &packed, &headers),
            (200, counts(1_000, 0, 0), false)
        );
        assert_eq!(
            push(&base, &packed, &headers),
            (200, counts(1_000, 0, 0), true)
        );
        assert_eq!(stored(&db), expected(&log), "{:?}", db.backend);
        // An explicit key still wins: the same bytes under a key of their own count again.
        let keyed = [("Content-Encoding", "gzip"), ("Idempotency-Key", "mine")];
        assert_eq!(
            push(&base, &packed, &keyed),
            (200, counts(1_000, 0, 0), false)
        );
        assert_eq!(requests(&stored(&db)), 2_000);
        job.signal("TERM");
        job.finish(Duration::from_secs(60));
    }
}

/// Batches pushed at once by 8 clients are committed several to an epoch, and each answer
/// still counts its own lines: batch j carries j invalid lines besides its 500 valid ones.
/// Sent again at once, every batch is answered with the same counts, replayed.
#[test]
fn concurrent_batches_committed_together_keep_their_own_counts() {
    for db in backends() {
        let dir = temp_dir();
        let log = dir.path().join("api.log");
        generate(&log, 40_000, 31);
        let text = std::fs::read_to_string(&log).expect("log");
        let lines: Vec<String> = text.lines().map(|l| format!("{l}\n")).collect();
        let batches: Vec<(String, String, u64)> = lines
            .chunks(500)
            .enumerate()
            .map(|(j, chunk)| {
                let invalid = (j % 13) as u64;
                let mut body = chunk.concat();
                for i in 0..invalid {
                    body.push_str(&format!("not a line {i}\n"));
                }
                (format!("key-{j}"), body, invalid)
            })
            .collect();
        let (job, base) = listening(&db, &[]);
        for replayed in [false, true] {
            std::thread::scope(|scope| {
                for client in 0..8 {
                    let (base, batches) = (&base, &batches);
                    scope.spawn(move || {
                        for (key, body, invalid) in batches.iter().skip(client).step_by(8) {
                            let headers = [("Idempotency-Key", key.as_str())];
                            let answer = push(base, body.as_bytes(), &headers);
                            assert_eq!(answer, (200, counts(500, *invalid, 0), replayed), "{key}");
                        }
                    });
                }
            });
        }
        assert_eq!(stored(&db), expected(&log), "{:?}", db.backend);
        job.signal("TERM");
        let output = job.finish(Duration::from_secs(60));
        let summary: Value = serde_json::from_slice(&output.stdout).expect("summary");
        assert_eq!(summary["accepted"], 40_000, "{summary}");
    }
}

/// A client that sends its body too slowly gets a 408, one whose body would take the push
/// memory over its limit a 503 with `Retry-After`; neither stores anything, and a batch that
/// fits is taken afterwards.
#[test]
fn slow_bodies_and_full_memory_are_refused() {
    for db in backends() {
        let (job, base) = listening(&db, &["--push-body-timeout", "1", "--push-memory", "20000"]);
        let address = base.trim_start_matches("http://").to_string();
        let mut slow = TcpStream::connect(&address).expect("connect");
        write!(
            slow,
            "POST /v1/lines HTTP/1.1\r\nHost: {address}\r\nContent-Length: 1000\r\n\r\n2024-10-10"
        )
        .expect("head");
        slow.flush().expect("flush");
        slow.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut slow, &mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"error\""), "{answer}");
        let line = "2024-10-10 12:50:18 cust_1 /a 200 0.5\n";
        let (status, json, _) = push(&base, line.repeat(1_000).as_bytes(), &[]);
        assert_eq!(status, 503, "{json}");
        assert!(json["error"]
            .as_str()
            .is_some_and(|e| e.contains("--push-memory")));
        assert_eq!(requests(&stored(&db)), 0, "{:?}", db.backend);
        assert_eq!(
            push(&base, line.as_bytes(), &[]),
            (200, counts(1, 0, 0), false)
        );
        job.signal("TERM");
        job.finish(Duration::from_secs(60));
    }
}
