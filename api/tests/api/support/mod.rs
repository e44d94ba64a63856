//! What the API's integration tests share: the real `logstats-api` binary on a free port
//! (through the shared harness, `logstats_shared::testing::spawn`), a database seeded with known
//! rows, plain HTTP.
#![allow(dead_code)] // Each test file uses its share.

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::NaiveDate;
use logstats_shared::storage::day_from_date;
use logstats_shared::testing::spawn::{free_port, Binary, Spawned};
use logstats_shared::testing::TestDatabase;
use logstats_shared::{DayAccumulator, EpochCommit};

pub mod browser;
pub mod dashboard;
pub mod stats;
pub mod tokens;

/// The customers [`seed`] stores, each with requests on [`SEEDED_DAYS`].
pub const SEEDED_CUSTOMERS: [&str; 3] = ["cust_1", "cust_22", "acme.eu-1"];
/// The days [`seed`] stores.
pub const SEEDED_DAYS: [&str; 3] = ["2024-10-10", "2024-10-11", "2024-10-13"];

/// Stores, for every seeded customer and day, 40 requests (every 4th failed) with latencies of
/// 1-40 ms.
pub fn seed(db: &TestDatabase) {
    seed_store(&db.connect());
}

/// [`seed`] through an open store.
pub fn seed_store(store: &logstats_shared::Store) {
    let mut deltas = Vec::new();
    for customer in SEEDED_CUSTOMERS {
        for day in SEEDED_DAYS {
            let mut day_stats = DayAccumulator::new();
            for i in 0..40u64 {
                day_stats.add(i % 4 != 0, (i + 1) * 1000);
            }
            let date = NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("a seeded day");
            deltas.push((
                customer.to_string(),
                day_from_date(date),
                day_stats.finish(),
            ));
        }
    }
    store
        .commit_epoch(&EpochCommit {
            deltas,
            ..EpochCommit::default()
        })
        .expect("seed the database");
}

/// The real binary on a free port, serving until dropped (then killed); a thin wrapper around
/// the shared harness's [`Spawned`], which keeps its stderr in a file.
pub struct Api {
    pub process: Spawned,
    pub port: u16,
    pub address: String,
}

impl Api {
    /// Starts `logstats-api` on `db` with `RUST_LOG=info` and waits until it answers `/health`.
    pub fn start(db: &TestDatabase) -> Api {
        Api::start_with(db, &[], &[])
    }

    /// [`Api::start`] with more arguments and environment variables (which may override
    /// `RUST_LOG`).
    pub fn start_with(db: &TestDatabase, args: &[&str], env: &[(&str, &str)]) -> Api {
        Api::start_on(&db.url, args, env)
    }

    /// [`Api::start_with`] on the database at `url` (e.g. `db`'s as another role).
    pub fn start_on(url: &str, args: &[&str], env: &[(&str, &str)]) -> Api {
        let port = free_port();
        let address = format!("http://127.0.0.1:{port}");
        let health = format!("{address}/health");
        let process = api_binary(url, args, env)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            // Any answer: with --protect-ops it is a 401.
            .start_ready(Duration::from_secs(30), |_| get(&health).status != 0);
        Api {
            process,
            port,
            address,
        }
    }

    /// GET `path` (with its query).
    pub fn get(&self, path: &str) -> Response {
        get(&format!("{}{path}", self.address))
    }

    /// GET `path`: status and JSON body, asserting the body is JSON.
    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.get(path);
        (response.status, response.json())
    }

    /// GET the stats of `customer` with the raw query string `query`, expecting 200.
    pub fn stats(&self, customer: &str, query: &str) -> serde_json::Value {
        let (status, body) = self.get_json(&format!("/customers/{customer}/stats?{query}"));
        assert_eq!(status, 200, "{customer}?{query}: {body}");
        body
    }

    /// GET `path` with `Authorization: Bearer token`.
    pub fn get_with_token(&self, path: &str, token: &str) -> Response {
        self.get_with(path, &[("Authorization", &format!("Bearer {token}"))])
    }

    /// GET `path` with these request headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        call_with("GET", &format!("{}{path}", self.address), headers)
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) to the binary.
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// `method` on `path`.
    pub fn call(&self, method: &str, path: &str) -> Response {
        call(method, &format!("{}{path}", self.address))
    }

    /// Sends `raw` bytes on a new connection and returns all the bytes answered until it closes.
    pub fn raw(&self, raw: &[u8]) -> Vec<u8> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("a read timeout");
        // The server may answer and close before it has read everything.
        let _ = std::io::Write::write_all(&mut stream, raw);
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        response
    }

    /// What the binary has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Stops the binary with SIGTERM and returns its stderr, asserting a clean exit within 60 s.
    pub fn stop(self) -> String {
        self.process.signal("TERM");
        let output = self.process.finish(Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "logstats-api exited with {}: {stderr}",
            output.status
        );
        stderr
    }
}

/// An HTTP answer: status, content type, the headers asked for by name, body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name`, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON, asserting the content type says so.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.content_type, "application/json", "{self:?}");
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }
}

/// GET `url`.
pub fn get(url: &str) -> Response {
    call("GET", url)
}

/// `method` on `url`; any status is an answer, only a failure to connect panics.
pub fn call(method: &str, url: &str) -> Response {
    call_with(method, url, &[])
}

/// [`call`] with these request headers.
pub fn call_with(method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = ureq::request(method, url).timeout(Duration::from_secs(30));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = match request.call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => {
            return Response {
                status: 0,
                content_type: String::new(),
                headers: vec![("error".into(), error.to_string())],
                body: Vec::new(),
            }
        }
    };
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| {
            let value = response.header(&name)?.to_string();
            Some((name, value))
        })
        .collect();
    let status = response.status();
    let content_type = response.content_type().to_string();
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .expect("read a body");
    Response {
        status,
        content_type,
        headers,
        body,
    }
}

/// The binary on the database at `url` with `args` and `env` (after the tests' defaults:
/// `RUST_LOG=info`, two workers, no `DATABASE_URL`, `BIND` or `LOG_FORMAT` from the
/// environment); no `--bind`.
pub fn api_binary(url: &str, args: &[&str], env: &[(&str, &str)]) -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_logstats-api"))
        .args(["--database-url", url, "--workers", "2"])
        .env_remove("DATABASE_URL")
        .env_remove("BIND")
        .env("RUST_LOG", "info")
        .env_remove("LOG_FORMAT")
        .env_remove("LOGSTATS_TOKENS")
        .env_remove("LOGSTATS_PROTECT_OPS")
        .env_remove("LOGSTATS_NO_MIGRATE")
        .args(args)
        .envs(env.iter().copied())
}

/// Runs the binary on the database at `url` until it exits (within 30 s, else it is killed and
/// the test fails): its exit code and stderr.
pub fn run_to_exit(url: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = api_binary(url, args, env)
        // A free port, in case it gets that far.
        .args(["--bind", "127.0.0.1:0"])
        .run(Duration::from_secs(30));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Whether `tool --version` runs; without it a test skips, loudly, except under `CI=true`,
/// where it fails (CI installs it: see `.ci/run`).
pub fn tool_available(tool: &str, args: &[&str], install: &str) -> bool {
    let runs = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !runs {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required under CI=true: {install}"
        );
        eprintln!("SKIPPED: {tool} is not installed ({install})");
    }
    runs
}
