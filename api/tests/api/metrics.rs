//! `GET /metrics` and the access log, from the real `logstats-api` binary on every backend: a
//! known mix of requests moves each counter by exactly its share, the latency histograms count
//! every request, the caches' hits and misses follow the requests' order, and every request
//! leaves one access-log line (JSON lines with `--log-format json`).

use std::collections::{BTreeMap, BTreeSet};

use crate::support::{seed, Api};
use logstats_shared::testing::spawn::{Binary, RUN_TIMEOUT};
use logstats_shared::testing::{backends, TestDatabase};
use serde_json::Value;

/// One scrape: `name{labels}` (as written) -> value.
type Scrape = BTreeMap<String, f64>;

/// Scrapes `/metrics`, checking the text's syntax: every sample belongs to a family announced
/// by `# HELP` and `# TYPE`, once each.
fn scrape(api: &Api) -> Scrape {
    let response = api.get("/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&response.text())
}

fn parse(text: &str) -> Scrape {
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut samples = Scrape::new();
    for line in text.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, _) = help.split_once(' ').expect("a help text");
            assert!(helped.insert(name.to_string()), "two HELP for {name}");
        } else if let Some(kind) = line.strip_prefix("# TYPE ") {
            let (name, kind) = kind.split_once(' ').expect("a type");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            assert!(
                families
                    .insert(name.to_string(), kind.to_string())
                    .is_none(),
                "{line}"
            );
        } else {
            let (key, value) = line.rsplit_once(' ').expect("name and value");
            let name = key.split('{').next().expect("a name");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    (families.get(base).map(String::as_str) == Some("histogram")).then_some(base)
                })
                .unwrap_or(name);
            assert!(families.contains_key(family), "undeclared sample: {line}");
            if families[family] == "counter" {
                assert!(name.ends_with("_total"), "{line}");
            }
            let value: f64 = value
                .parse()
                .or_else(|_| {
                    if value == "+Inf" {
                        Ok(f64::INFINITY)
                    } else {
                        Err(())
                    }
                })
                .unwrap_or_else(|()| panic!("a value: {line}"));
            assert!(samples.insert(key.to_string(), value).is_none(), "{line}");
        }
    }
    samples
}

/// How much `key` moved from `before` to `after` (a missing sample is 0).
fn delta(before: &Scrape, after: &Scrape, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

fn requests(route: &str, status: u16) -> String {
    format!("logstats_api_requests_total{{route=\"{route}\",status=\"{status}\"}}")
}

const STATS: &str = "/customers/{customer_id}/stats";

/// The requests sent, in order: (method, path and query, expected status). Cache effects in
/// order: a first range of a customer misses both caches; the same URL again hits the answer;
/// another range of a copied customer misses the answer and hits the rows; an unknown customer
/// (no version: no rows) touches neither; a fleet view misses the answers the first time, hits
/// them the second.
const SENT: [(&str, &str, u16); 24] = [
    ("GET", "/customers/cust_1/stats?from=2024-10-10", 200),
    ("GET", "/customers/cust_1/stats?from=2024-10-10", 200),
    ("GET", "/customers/cust_1/stats?from=2024-10-10", 200),
    (
        "GET",
        "/customers/cust_22/stats?from=2024-10-10&to=2024-10-11",
        200,
    ),
    ("GET", "/customers/cust_1/stats?from=2024-10-11", 200),
    ("GET", "/customers/cust_1/stats?from=yesterday", 400),
    ("GET", "/customers/cust_1/stats", 400),
    ("GET", "/customers/nobody/stats?from=2024-10-10", 404),
    ("GET", "/customers/nobody/stats?from=2024-10-10", 404),
    ("GET", "/health", 200),
    ("GET", "/health", 200),
    ("GET", "/health", 200),
    ("GET", "/health", 200),
    // Routed as GET, logged as HEAD.
    ("HEAD", "/health", 200),
    ("POST", "/health", 405),
    ("GET", "/nope", 404),
    ("GET", "/nope/deeper?x=1", 404),
    ("GET", "/customers/cust_1", 404),
    ("GET", "/metrics/", 404),
    ("GET", "/openapi.json", 200),
    // The fleet views use remembered answers; `/customers` then copies the one seeded customer
    // not copied yet (a miss of `rows`) and answers from the copies.
    ("GET", "/stats?from=2024-10-10", 200),
    ("GET", "/stats?from=2024-10-10", 200),
    ("GET", "/customers?from=2024-10-10", 200),
    ("GET", "/ready", 200),
];

#[test]
fn counters_move_by_exactly_the_requests_sent() {
    for db in backends() {
        seed(&db);
        // Copies made only by the requests below, so each lookup is counted as sent.
        let api = Api::start_with(&db, &["--no-row-cache-warm"], &[]);
        let before = scrape(&api);
        for (method, path, status) in SENT {
            assert_eq!(api.call(method, path).status, status, "{method} {path}");
        }
        let after = scrape(&api);
        let backend = format!("{:?}", db.backend);

        let expected: [(&str, u16, f64); 12] = [
            ("/stats", 200, 2.0),
            ("/customers", 200, 1.0),
            ("/ready", 200, 1.0),
            (STATS, 200, 5.0),
            (STATS, 400, 2.0),
            (STATS, 404, 2.0),
            ("/health", 200, 5.0),
            ("/health", 405, 1.0),
            ("unmatched", 404, 4.0),
            ("/openapi.json", 200, 1.0),
            // The first scrape, counted once answered.
            ("/metrics", 200, 1.0),
            (STATS, 500, 0.0),
        ];
        for (route, status, count) in expected {
            assert_eq!(
                delta(&before, &after, &requests(route, status)),
                count,
                "{backend}: {route} {status}"
            );
        }
        // Nothing else moved: no other route or status, and no raw path as a label.
        let moved: f64 = after
            .iter()
            .filter(|(key, _)| key.starts_with("logstats_api_requests_total"))
            .map(|(key, _)| delta(&before, &after, key))
            .sum();
        assert_eq!(moved, 25.0, "{backend}");
        assert!(
            !after
                .keys()
                .any(|key| key.contains("nope") || key.contains("cust_1")),
            "{backend}: a raw path became a label"
        );

        // One latency observation per request, by route; buckets cumulative up to +Inf.
        for (route, count) in [
            (STATS, 9.0),
            ("/health", 6.0),
            ("unmatched", 4.0),
            ("/openapi.json", 1.0),
            ("/metrics", 1.0),
            ("/stats", 2.0),
            ("/customers", 1.0),
            ("/ready", 1.0),
        ] {
            let series = |suffix: &str, extra: &str| {
                format!(
                    "logstats_api_request_duration_seconds_{suffix}{{route=\"{route}\"{extra}}}"
                )
            };
            assert_eq!(
                delta(&before, &after, &series("count", "")),
                count,
                "{backend}: {route}"
            );
            assert_eq!(
                after[&series("bucket", ",le=\"+Inf\"")],
                after[&series("count", "")],
                "{backend}: {route}"
            );
            assert!(
                delta(&before, &after, &series("sum", "")) > 0.0,
                "{backend}: {route}"
            );
            let bucket_prefix =
                format!("logstats_api_request_duration_seconds_bucket{{route=\"{route}\",le=");
            let buckets: Vec<f64> = after
                .iter()
                .filter(|(key, _)| key.starts_with(&bucket_prefix))
                .map(|(_, value)| *value)
                .collect();
            // 14 bounds and +Inf; sorted as text, so only their total order is not checked here.
            assert_eq!(buckets.len(), 15, "{backend}: {route}");
            assert!(
                buckets.iter().all(|&b| b <= after[&series("count", "")]),
                "{backend}: {route}"
            );
        }

        // Caches, in the order of SENT.
        for (series, count) in [
            ("logstats_api_cache_hits_total{cache=\"answers\"}", 3.0),
            ("logstats_api_cache_misses_total{cache=\"answers\"}", 5.0),
            ("logstats_api_cache_hits_total{cache=\"rows\"}", 1.0),
            ("logstats_api_cache_misses_total{cache=\"rows\"}", 3.0),
        ] {
            assert_eq!(delta(&before, &after, series), count, "{backend}: {series}");
        }
        assert!(after["logstats_api_cache_bytes{cache=\"answers\"}"] > 0.0);
        assert!(after["logstats_api_cache_bytes{cache=\"rows\"}"] > 0.0);
        // A customer without rows (`nobody`) is answered 404 without a copy or an answer kept:
        // an id costs memory only when it has data.
        assert_eq!(
            after["logstats_api_cache_entries{cache=\"rows\"}"], 3.0,
            "{backend}: cust_1, cust_22 and the one `/customers` copied"
        );
        assert_eq!(
            delta(
                &before,
                &after,
                "logstats_api_customer_lists_total{source=\"memory\"}"
            ),
            1.0,
            "{backend}"
        );
        assert_eq!(
            after["logstats_api_cache_entries{cache=\"answers\"}"], 5.0,
            "{backend}"
        );

        // The pool: connections open (the version reader keeps one), idle among them.
        let connections = after["logstats_api_db_pool_connections"];
        let idle = after["logstats_api_db_pool_idle_connections"];
        assert!(connections >= 1.0, "{backend}: {connections}");
        assert!(
            (0.0..=connections).contains(&idle),
            "{backend}: {idle} of {connections}"
        );

        // One access-log line per request: method, path without the query, status, time.
        let log = api.stop();
        let access: Vec<&str> = log
            .lines()
            .filter_map(|line| line.split_once(" logstats_api::access] ").map(|(_, l)| l))
            .collect();
        // Also: the /health that Api::start waits for, and the two scrapes.
        assert_eq!(access.len(), SENT.len() + 3, "{backend}: {log}");
        for (method, path, status) in SENT {
            let path = path.split('?').next().unwrap_or_default();
            let prefix = format!("{method} {path} {status} ");
            assert!(
                access.iter().any(|line| line.starts_with(&prefix)
                    && line[prefix.len()..]
                        .strip_suffix("ms")
                        .is_some_and(|ms| ms.parse::<f64>().is_ok_and(|ms| ms >= 0.0))),
                "{backend}: no line {prefix}...ms in {access:?}"
            );
        }
        assert_eq!(
            access
                .iter()
                .filter(|line| line.starts_with("GET /customers/cust_1/stats 200 "))
                .count(),
            4,
            "{backend}"
        );
        assert!(
            !access.iter().any(|line| line.contains('?')),
            "{backend}: a query string was logged: {access:?}"
        );
    }
}

/// The fields of an access-log record beside timestamp, level, target and message.
const ACCESS_FIELDS: [&str; 6] = [
    "method",
    "path",
    "status",
    "duration_ms",
    "bytes",
    "request_id",
];

/// Every line of stderr is a JSON object with timestamp, level, target and message (and the
/// access log's records their fields too).
fn assert_json_lines(log: &str) -> Vec<Value> {
    let records: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    for record in &records {
        let object = record.as_object().expect("an object");
        let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        let mut expected = BTreeSet::from(["timestamp", "level", "target", "message"]);
        if record["target"] == "logstats_api::access" {
            expected.extend(ACCESS_FIELDS);
        } else {
            assert!(object.values().all(Value::is_string), "{record}");
        }
        assert_eq!(keys, expected, "{record}");
        for key in ["timestamp", "level", "target", "message"] {
            assert!(record[key].is_string(), "{record}");
        }
        assert!(
            chrono::DateTime::parse_from_rfc3339(record["timestamp"].as_str().unwrap_or(""))
                .is_ok(),
            "{record}"
        );
    }
    records
}

#[test]
fn json_logs_are_one_object_per_line() {
    for db in backends() {
        seed(&db);
        let api = Api::start_with(&db, &["--log-format", "json"], &[]);
        // The client's request id is kept; a token is never logged.
        let token = "secret-token-4711";
        let stats = api.get_with(
            "/customers/cust_1/stats?from=2024-10-10",
            &[
                ("X-Request-Id", "req-42.a:b_c"),
                ("Authorization", &format!("Bearer {token}")),
            ],
        );
        assert_eq!(stats.status, 200);
        assert_eq!(stats.header("x-request-id"), Some("req-42.a:b_c"));
        // An id that is not one to log as it is (a space, a quote) is replaced.
        let missing = api.get_with("/a%22b%5Cc", &[("X-Request-Id", "a \"b")]);
        assert_eq!(missing.status, 404);
        let missing_id = missing.header("x-request-id").expect("an id").to_string();
        assert_ne!(missing_id, "a \"b");
        let head = api.call("HEAD", "/health");
        assert_eq!(head.status, 200);
        let head_id = head.header("x-request-id").expect("an id").to_string();
        let log = api.stop();
        assert!(!log.contains(token) && !log.contains("Bearer"), "{log}");
        let records = assert_json_lines(&log);
        let access: Vec<&Value> = records
            .iter()
            .filter(|r| r["target"] == "logstats_api::access")
            .collect();
        // /health (Api::start waits for it), then the three requests.
        assert_eq!(access.len(), 4, "{log}");
        let fields = |record: &Value| -> Value {
            let mut fields = serde_json::Map::new();
            for key in ACCESS_FIELDS {
                fields.insert(key.to_string(), record[key].clone());
            }
            let ms = fields["duration_ms"].as_f64().expect("a number");
            assert!((0.0..60_000.0).contains(&ms), "{record}");
            fields.remove("duration_ms");
            let id = fields["request_id"].as_str().expect("an id");
            assert!(!id.is_empty(), "{record}");
            assert_eq!(record["level"], "INFO", "{record}");
            Value::Object(fields)
        };
        let health_id = access[0]["request_id"].as_str().expect("an id");
        assert_eq!(
            fields(access[0]),
            serde_json::json!({"method": "GET", "path": "/health", "status": 200,
                "bytes": 15, "request_id": health_id})
        );
        assert_eq!(
            fields(access[1]),
            serde_json::json!({"method": "GET", "path": "/customers/cust_1/stats", "status": 200,
                "bytes": stats.body.len(), "request_id": "req-42.a:b_c"})
        );
        assert_eq!(
            fields(access[2]),
            serde_json::json!({"method": "GET", "path": "/a%22b%5Cc", "status": 404,
                "bytes": missing.body.len(), "request_id": missing_id})
        );
        assert_eq!(
            fields(access[3]),
            serde_json::json!({"method": "HEAD", "path": "/health", "status": 200,
                "bytes": 0, "request_id": head_id})
        );
        assert_ne!(health_id, missing_id);
        // The message is the text line.
        let message = |i: usize| access[i]["message"].as_str().unwrap_or_default();
        assert!(message(0).starts_with("GET /health 200 "), "{log}");
        assert!(
            message(1).starts_with("GET /customers/cust_1/stats 200 "),
            "{log}"
        );
        assert!(message(2).starts_with("GET /a%22b%5Cc 404 "), "{log}");
        assert!(message(3).starts_with("HEAD /health 200 "), "{log}");
        assert!(
            records.iter().any(|r| r["target"] == "logstats_api"
                && r["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("serving "))),
            "{log}"
        );
    }
}

#[test]
fn the_access_log_can_be_turned_off_and_json_comes_from_the_environment() {
    let db = TestDatabase::sqlite();
    let api = Api::start_with(
        &db,
        &[],
        &[
            ("RUST_LOG", "info,logstats_api::access=off"),
            ("LOG_FORMAT", "json"),
        ],
    );
    assert_eq!(api.get("/health").status, 200);
    let after = scrape(&api);
    assert_eq!(after[&requests("/health", 200)], 2.0);
    let log = api.stop();
    let records = assert_json_lines(&log);
    assert!(
        !records
            .iter()
            .any(|r| r["target"] == "logstats_api::access"),
        "{log}"
    );
    assert!(records.iter().any(|r| r["message"] == "stopped"), "{log}");
}

#[test]
fn a_fatal_error_is_a_json_record_too_without_the_password() {
    for (url, shown) in [
        ("oracle://nowhere/db", "oracle://nowhere/db"),
        (
            "postgres://u:S3cr3tPW@127.0.0.1:1/db",
            "postgres://u:***@127.0.0.1:1/db",
        ),
    ] {
        let output = Binary::new(env!("CARGO_BIN_EXE_logstats-api"))
            .args(["--database-url", url, "--log-format", "json"])
            .args(["--bind", "127.0.0.1:0"])
            .env("RUST_LOG", "off")
            .run(RUN_TIMEOUT);
        assert!(!output.status.success());
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(!log.contains("S3cr3tPW") && !log.contains("3tPW"), "{log}");
        let records = assert_json_lines(&log);
        assert_eq!(records.len(), 1, "{log}");
        assert_eq!(records[0]["level"], "ERROR");
        assert!(
            records[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(shown)),
            "{log}"
        );
    }
}
