//! What the tests of the API surface share (`openapi.rs`, `docs.rs`, `malformed.rs`,
//! `schemathesis.rs`, `metrics.rs`): the real `logstats-api` binary on a free port, a database
//! seeded with known rows, plain HTTP.
#![allow(dead_code)] // Each test file uses its share.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use logstats_shared::storage::day_from_date;
use logstats_shared::testing::TestDatabase;
use logstats_shared::{DayAccumulator, EpochCommit};

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

/// The real binary, serving until dropped (then killed); its stderr goes to `log`.
pub struct Api {
    child: Child,
    pub port: u16,
    pub address: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
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
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("stderr.log");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = api_command(url, args, env)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("start logstats-api");
        let mut api = Api {
            child,
            port,
            address: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = api.child.try_wait() {
                panic!("logstats-api exited with {status}: {}", api.stderr());
            }
            // Any answer: with --protect-ops it is a 401.
            if get(&format!("{}/health", api.address)).status != 0 {
                return api;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "logstats-api never answered /health: {}",
                api.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET `path` (with its query).
    pub fn get(&self, path: &str) -> Response {
        get(&format!("{}{path}", self.address))
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
        let pid = self.child.id().to_string();
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        assert!(
            kill.is_ok_and(|status| status.success()),
            "kill -{signal} {pid}"
        );
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
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the binary with SIGTERM and returns its stderr, asserting a clean exit.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(
            kill.is_ok_and(|status| status.success()),
            "kill -TERM {pid}"
        );
        let status = self.child.wait().expect("wait for logstats-api");
        assert!(status.success(), "logstats-api exited with {status}");
        self.stderr()
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
/// environment); no `--bind`, no stdio set.
pub fn api_command(url: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_logstats-api"));
    command
        .args(["--database-url", url, "--workers", "2"])
        .env_remove("DATABASE_URL")
        .env_remove("BIND")
        .env("RUST_LOG", "info")
        .env_remove("LOG_FORMAT")
        .env_remove("LOGSTATS_TOKENS")
        .env_remove("LOGSTATS_PROTECT_OPS")
        .env_remove("LOGSTATS_NO_MIGRATE")
        .args(args)
        .envs(env.iter().copied());
    command
}

/// Runs the binary on the database at `url` until it exits (within 30 s, else it is killed and
/// the test fails): its exit code and stderr.
pub fn run_to_exit(url: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = dir.path().join("stderr.log");
    let mut child = api_command(url, args, env)
        // A free port, in case it gets that far.
        .args(["--bind", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("a log file"))
        .spawn()
        .expect("start logstats-api");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for logstats-api") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "logstats-api still running after 30 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code(),
        std::fs::read_to_string(&log).unwrap_or_default(),
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
