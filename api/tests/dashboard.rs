//! The dashboard in a real browser: the `logstats-api` binary on a fresh SQLite file holding known
//! log lines, driven in headless Chromium through chromedriver over the W3C WebDriver protocol.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! browser test is skipped loudly, unless CI is set, where it fails. `CHROMIUM` and `CHROMEDRIVER`
//! name other binaries. The screenshot lands in `<workspace>/target/dashboard.png`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use logstats_shared::testing::spawn::{free_port, Binary, Spawned};
use logstats_shared::testing::{Random, TestDatabase};
use logstats_shared::{parse_line, DayAccumulator, EpochCommit, Store};
use serde_json::{json, Value};
use support::Api;

// ------------------------------------------------------------------ the known input

/// One generated request, as written into a log line.
#[derive(Debug, Clone)]
struct Request {
    customer: &'static str,
    day: NaiveDate,
    status: u16,
    /// Duration in whole milliseconds (the line says `S.mmm` seconds).
    duration_ms: u64,
}

impl Request {
    fn line(&self, second_of_day: u64) -> String {
        format!(
            "{} {:02}:{:02}:{:02} {} /api/v1/resource{} {} {}.{:03}",
            self.day.format("%Y-%m-%d"),
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60,
            self.customer,
            second_of_day % 5,
            self.status,
            self.duration_ms / 1000,
            self.duration_ms % 1000,
        )
    }
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("valid test date")
}

/// Four customers over 2024-10-08..2024-10-21 with different failure rates; cust_b has no
/// requests on 2024-10-14 and 2024-10-15 (a gap in its charts).
fn generated_requests() -> Vec<Request> {
    let mut random = Random(1205);
    let mut requests = Vec::new();
    let customers: [(&str, u64, u64); 4] = [
        // (customer, requests per day, failure rate in percent)
        ("cust_a", 40, 5),
        ("cust_b", 70, 22),
        ("cust_c", 25, 60),
        ("cust_d", 90, 1),
    ];
    for offset in 0..14 {
        let day = date("2024-10-08") + chrono::Days::new(offset);
        for &(customer, per_day, failure_percent) in &customers {
            if customer == "cust_b" && (6..=7).contains(&offset) {
                continue;
            }
            for _ in 0..per_day + random.below(per_day / 2) {
                let failed = random.below(100) < failure_percent;
                let status = if failed {
                    [400, 404, 429, 500, 503][random.below(5) as usize]
                } else {
                    [200, 201, 204, 301, 304][random.below(5) as usize]
                };
                // Mostly fast, with a slow tail that grows over the days.
                let duration_ms = if random.below(20) == 0 {
                    1500 + random.below(1000 + 150 * offset)
                } else {
                    20 + random.below(600)
                };
                requests.push(Request {
                    customer,
                    day,
                    status,
                    duration_ms,
                });
            }
        }
    }
    requests
}

/// Writes `requests` as log lines, parses them with the ingest job's parser and commits the
/// per-(customer, day) stats through `Store::commit_epoch`, as the ingest job does.
fn ingest(store: &Store, requests: &[Request]) {
    let text: String = requests
        .iter()
        .enumerate()
        .map(|(i, request)| request.line((i as u64 * 7919) % 86_400) + "\n")
        .collect();
    let mut accumulators: BTreeMap<(String, i32), DayAccumulator> = BTreeMap::new();
    for line in text.lines() {
        let record = parse_line(line.as_bytes())
            .unwrap_or_else(|reason| panic!("the test's own line {line:?}: {reason:?}"));
        let customer = std::str::from_utf8(record.customer).expect("ASCII customer id");
        accumulators
            .entry((customer.to_string(), record.day))
            .or_default()
            .add(record.is_success(), record.latency_us);
    }
    let commit = EpochCommit {
        deltas: accumulators
            .into_iter()
            .map(|((customer, day), acc)| (customer, day, acc.finish()))
            .collect(),
        ..EpochCommit::default()
    };
    store
        .commit_epoch(&commit)
        .expect("commit the test's lines");
}

/// The Stats of `customer`'s requests over `from..=to`, computed here from the generated values.
fn expected_total(requests: &[Request], customer: &str, from: &str, to: &str) -> Value {
    let (from, to) = (date(from), date(to));
    let chosen: Vec<&Request> = requests
        .iter()
        .filter(|r| r.customer == customer && from <= r.day && r.day <= to)
        .collect();
    let total = chosen.len() as u64;
    let successful = chosen.iter().filter(|r| r.status < 400).count() as u64;
    assert!(total > 0, "the test's ranges have requests");
    let sum_us: u64 = chosen.iter().map(|r| r.duration_ms * 1000).sum();
    assert_ne!(
        2 * (sum_us % total),
        total,
        "pick data without a rounding tie"
    );
    let average_us = (2 * sum_us + total) / (2 * total);
    let mut seconds: Vec<f64> = chosen.iter().map(|r| r.duration_ms as f64 / 1e3).collect();
    seconds.sort_by(f64::total_cmp);
    json!({
        "total_requests": total,
        "successful_requests": successful,
        "failed_requests": total - successful,
        "uptime": successful as f64 * 100.0 / total as f64,
        "average_latency": average_us as f64 / 1e6,
        "median_latency": numpy_percentile(&seconds, 0.5),
        "p99_latency": numpy_percentile(&seconds, 0.99),
    })
}

/// numpy's default percentile `q` of `sorted` (linear interpolation between the closest ranks),
/// rounded to the microsecond.
fn numpy_percentile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let (below, t) = (h.floor() as usize, h - h.floor());
    let (a, b) = (sorted[below], sorted[(below + 1).min(sorted.len() - 1)]);
    let exact = if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    };
    (exact * 1e6).round() / 1e6
}

/// Failed requests per customer over `from..=to`, most first.
fn expected_fleet_by_failures(requests: &[Request], from: &str, to: &str) -> Vec<(String, u64)> {
    let (from, to) = (date(from), date(to));
    let mut failed: BTreeMap<&str, u64> = BTreeMap::new();
    for r in requests.iter().filter(|r| from <= r.day && r.day <= to) {
        *failed.entry(r.customer).or_default() += u64::from(r.status >= 400);
    }
    let mut fleet: Vec<(String, u64)> = failed
        .into_iter()
        .map(|(customer, n)| (customer.to_string(), n))
        .collect();
    fleet.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    assert!(
        fleet.windows(2).all(|pair| pair[0].1 > pair[1].1),
        "pick data where no two customers tie: {fleet:?}"
    );
    fleet
}

// ------------------------------------------------------------------ how the page shows totals

/// The text the dashboard shows for a total's JSON value (see `TOTAL_FORMATS` in dashboard.js).
fn shown_text(field: &str, value: &Value) -> String {
    let Some(number) = value.as_f64() else {
        assert!(value.is_null(), "{field}: {value}");
        return "–".to_string();
    };
    match field {
        "total_requests" | "successful_requests" | "failed_requests" => {
            let digits = value.as_u64().expect("counts are integers").to_string();
            let mut grouped = String::new();
            for (i, digit) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    grouped.push(',');
                }
                grouped.push(digit);
            }
            grouped
        }
        "uptime" => {
            // JavaScript's toFixed and Rust round an exact tie differently: the data has none.
            let digits = format!("{number:.30}");
            let decimals = digits.split('.').nth(1).unwrap_or_default();
            assert!(
                !(decimals[2..].starts_with('5') && decimals[3..].bytes().all(|b| b == b'0')),
                "uptime {number} is a rounding tie: pick other data"
            );
            format!("{number:.2} %")
        }
        // Shortest round-trip digits in both languages, without an exponent at these sizes.
        _ => format!("{number} s"),
    }
}

// ------------------------------------------------------------------ the app and the browser

/// Whether `url` answers 200 (within 5 s).
fn answers_200(url: &str) -> bool {
    ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .is_ok_and(|response| response.status() == 200)
}

/// The real `logstats-api` binary serving `db`; returns it and its base URL.
fn spawn_api(db: &TestDatabase) -> (Api, String) {
    spawn_api_with(db, &[])
}

/// [`spawn_api`] with more flags.
fn spawn_api_with(db: &TestDatabase, args: &[&str]) -> (Api, String) {
    // The outage test's 503s are logged at ERROR: expected, so only warnings and errors.
    let api = Api::start_with(db, args, &[("RUST_LOG", "warn")]);
    let address = api.address.clone();
    (api, address)
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// `name` when it is an executable file, else the first `name` on `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.components().count() > 1 {
        return path.is_file().then(|| path.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The browser and its driver, or `None` (after saying so) when they are missing outside CI.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    match (find_program(&chromium), find_program(&chromedriver)) {
        (Some(chromium), Some(chromedriver)) => Some((chromium, chromedriver)),
        missing => {
            let message = format!(
                "the dashboard's browser test needs `{chromium}` and `{chromedriver}` \
                 (found: {missing:?}); install Debian's chromium and chromium-driver"
            );
            assert!(!is_ci(), "{message}");
            eprintln!("SKIPPED: {message}");
            None
        }
    }
}

/// The key of a web element reference in W3C WebDriver.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session in headless Chromium, over HTTP with ureq; ended when dropped.
struct Browser {
    session: String,
    // Dropped after the session is deleted: fields drop in order of declaration.
    _driver: Spawned,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let status = format!("{base}/status");
        let driver = Binary::new(chromedriver)
            .arg(format!("--port={port}"))
            .start_ready(Duration::from_secs(30), |_| answers_200(&status));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1360,1400", "--force-device-scale-factor=1", "--lang=en-US",
                    "--hide-scrollbars", "--no-first-run", "--disable-extensions",
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let session = webdriver(&base, "POST", "/session", Some(&capabilities))["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Browser {
            session: format!("{base}/session/{session}"),
            _driver: driver,
        }
    }

    fn get(&self, path: &str) -> Value {
        webdriver(&self.session, "GET", path, None)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        webdriver(&self.session, "POST", path, Some(&body))
    }

    fn open(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.post("/elements", json!({"using": "css selector", "value": css}));
        found
            .as_array()
            .expect("a list of elements")
            .iter()
            .map(|e| e[ELEMENT_KEY].as_str().expect("an element id").to_string())
            .collect()
    }

    fn find(&self, css: &str) -> String {
        let found = self.find_all(css);
        assert_eq!(found.len(), 1, "exactly one element matches {css}");
        found.into_iter().next().expect("one element")
    }

    fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text"))
            .as_str()
            .expect("text")
            .to_string()
    }

    fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.get(&format!("/element/{element}/attribute/{name}"))
            .as_str()
            .map(str::to_string)
    }

    fn property(&self, element: &str, name: &str) -> Value {
        self.get(&format!("/element/{element}/property/{name}"))
    }

    fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
    }

    /// Types `date` into an `<input type=date>` the way a user of the en-US locale does.
    fn type_date(&self, css: &str, date: &str) {
        let input = self.find(css);
        self.post(&format!("/element/{input}/clear"), json!({}));
        let (year, rest) = date.split_at(4);
        let typed = format!("{}/{}/{year}", &rest[1..3], &rest[4..6]);
        self.post(&format!("/element/{input}/value"), json!({ "text": typed }));
        assert_eq!(self.property(&input, "value"), json!(date), "typed {typed}");
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.post(&format!("/element/{element}/click"), json!({}));
    }

    /// Waits until the page says it has finished showing the view of `query` (`?customer=..`).
    fn wait_ready(&self, query: &str) {
        let body = self.find("body");
        let started = Instant::now();
        loop {
            let ready = self.attribute(&body, "data-ready");
            if ready.as_deref() == Some(query) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the page never became ready for {query} (data-ready {ready:?}); console: {:?}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The browser console's entries since the last call (chromedriver 156 serves the legacy log
    /// endpoint at `/se/log`, as Selenium 4 calls it, and at `/log`).
    fn console(&self) -> Vec<Value> {
        let entries = self.post("/se/log", json!({"type": "browser"}));
        entries.as_array().expect("log entries").clone()
    }

    fn screenshot(&self, path: &Path) {
        let encoded = self.get("/screenshot");
        let png = base64_decode(encoded.as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("create target/");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.session)
            .timeout(Duration::from_secs(10))
            .call();
    }
}

/// One WebDriver command; panics with the driver's message on an error.
fn webdriver(base: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let request = ureq::request(method, &format!("{base}{path}")).timeout(Duration::from_secs(60));
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    match result {
        Ok(response) => {
            let mut answer: Value = response.into_json().expect("WebDriver answers JSON");
            answer["value"].take()
        }
        Err(ureq::Error::Status(status, response)) => {
            let answer = response.into_string().unwrap_or_default();
            panic!("WebDriver {method} {path}: {status} {answer}")
        }
        Err(error) => panic!("WebDriver {method} {path}: {error}"),
    }
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    for chunk in bytes.chunks(4) {
        let mut word = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            word |= value(c) << (18 - 6 * i);
        }
        out.extend_from_slice(&word.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn http_get(url: &str) -> (u16, Value) {
    http_get_with(url, None)
}

/// [`http_get`], with `Authorization: Bearer token` when `token` is given.
fn http_get_with(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = ureq::get(url).timeout(Duration::from_secs(30));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match request.call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("GET {url}: {error}"),
    };
    let status = response.status();
    (status, response.into_json().expect("a JSON body"))
}

// ------------------------------------------------------------------ what the page shows

/// Asserts the totals on the page are `api_total` (text and exact value) and `expected`.
fn assert_totals_shown(browser: &Browser, api_total: &Value, expected: &Value, context: &str) {
    assert_eq!(api_total, expected, "{context}: the API's totals");
    let items = browser.find_all("#totals [data-field]");
    assert_eq!(items.len(), 7, "{context}: seven totals");
    for item in items {
        let field = browser.attribute(&item, "data-field").expect("a field");
        let dd = browser.find_all(&format!("#totals [data-field={field}] dd"));
        let dd = dd.first().expect("a value");
        let text = browser.text(dd);
        assert_eq!(
            text,
            shown_text(&field, &api_total[&field]),
            "{context}: {field} as shown"
        );
        let exact: Value = serde_json::from_str(
            &browser
                .attribute(dd, "data-value")
                .expect("the exact value"),
        )
        .expect("data-value is JSON");
        assert_eq!(exact, api_total[&field], "{context}: {field}'s data-value");
    }
}

/// Asserts the three charts are drawn: a canvas each, sized, with painted pixels, and legends.
fn assert_charts_drawn(browser: &Browser, context: &str) {
    for (chart, series) in [
        ("#chart-requests", &["successful", "failed"][..]),
        ("#chart-uptime", &["uptime"][..]),
        ("#chart-latency", &["average", "median", "p99"][..]),
    ] {
        let canvas = browser.find(&format!("{chart} canvas"));
        let rect = browser.get(&format!("/element/{canvas}/rect"));
        let (width, height) = (rect["width"].as_f64(), rect["height"].as_f64());
        assert!(
            width > Some(300.0) && height > Some(100.0),
            "{context}: {chart} is {rect}"
        );
        // Pixels the chart library painted (the canvas starts transparent).
        let painted = browser.execute(
            "const c = arguments[0]; \
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
             let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++; return n;",
            json!([{ ELEMENT_KEY: canvas }]),
        );
        assert!(
            painted.as_u64() > Some(2000),
            "{context}: {chart} painted {painted} pixels"
        );
        let labels: Vec<String> = browser
            .find_all(&format!("{chart} .u-legend .u-series .u-label"))
            .iter()
            .map(|label| browser.text(label))
            .collect();
        assert_eq!(labels[1..], *series, "{context}: {chart}'s legend");
    }
}

/// Asserts the console has no error or warning, except failed requests whose URL contains one of
/// `expected_failures` (the page asked for them on purpose, or for an endpoint not served yet).
fn assert_console_clean(browser: &Browser, expected_failures: &[&str], context: &str) {
    let entries = browser.console();
    let unexpected: Vec<&Value> = entries
        .iter()
        .filter(|entry| {
            let level = entry["level"].as_str().unwrap_or_default();
            let message = entry["message"].as_str().unwrap_or_default();
            let expected = entry["source"] == "network"
                && expected_failures.iter().any(|url| message.contains(url));
            matches!(level, "SEVERE" | "WARNING") && !expected
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "{context}: console errors {unexpected:#?}"
    );
}

fn visible_error(browser: &Browser) -> Option<String> {
    let error = browser.find("#error");
    browser
        .attribute(&error, "hidden")
        .is_none()
        .then(|| browser.text(&error))
}

fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .join("target")
}

// ------------------------------------------------------------------ the tests

#[test]
fn the_dashboard_shows_the_apis_numbers_in_a_real_browser() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let db = TestDatabase::sqlite();
    let requests = generated_requests();
    ingest(&db.connect(), &requests);
    let (_api, address) = spawn_api(&db);
    let browser = Browser::start(&chromium, &chromedriver);

    let (from, to) = ("2024-10-09", "2024-10-18");
    let customer = "cust_b";
    let fleet_url = format!("{address}/customers?from={from}&to={to}");
    let (fleet_status, fleet_body) = http_get(&fleet_url);
    assert_eq!(fleet_status, 200, "{fleet_body}");
    let missing: &[&str] = &[];

    let view = format!("?customer={customer}&from={from}&to={to}");
    browser.open(&format!("{address}/{view}"));
    browser.wait_ready(&view);
    assert_eq!(visible_error(&browser), None, "no error on a valid view");
    assert_charts_drawn(&browser, "first view");
    let (status, first) = http_get(&format!(
        "{address}/customers/{customer}/stats?from={from}&to={to}"
    ));
    assert_eq!(status, 200, "{first}");
    assert_totals_shown(
        &browser,
        &first["total"],
        &expected_total(&requests, customer, from, to),
        "first view",
    );
    let title = browser.text(&browser.find("#view-title"));
    assert_eq!(title, format!("{customer}, {from} to {to}"));

    let fleet_status_text = browser.text(&browser.find("#fleet-status"));
    {
        // Customers and failures in the table's order, against the input lines.
        let rows: Vec<(String, u64)> = browser
            .find_all("#fleet-table tbody tr")
            .iter()
            .map(|row| {
                let cells = browser.execute(
                    "return [...arguments[0].cells].map(c => c.textContent);",
                    json!([{ ELEMENT_KEY: row }]),
                );
                let failed = cells[2].as_str().expect("failed").replace(',', "");
                (
                    cells[0].as_str().expect("customer").to_string(),
                    failed.parse().expect("a count"),
                )
            })
            .collect();
        assert_eq!(rows, expected_fleet_by_failures(&requests, from, to));
        let count = expected_fleet_by_failures(&requests, from, to).len();
        assert!(
            fleet_status_text.contains(&format!("of {count}, most failed requests first")),
            "{fleet_status_text}"
        );
    }
    assert_console_clean(&browser, missing, "first view");
    browser.screenshot(&workspace_target().join("dashboard.png"));

    // A new range through the form: the URL and the totals follow.
    let (new_from, new_to) = ("2024-10-12", "2024-10-21");
    browser.type_date("#from", new_from);
    browser.type_date("#to", new_to);
    browser.click("#view-form button[type=submit]");
    let new_view = format!("?customer={customer}&from={new_from}&to={new_to}");
    browser.wait_ready(&new_view);
    assert_eq!(
        browser.get("/url"),
        json!(format!("{address}/{new_view}")),
        "the URL names the new view"
    );
    let api = http_get(&format!(
        "{address}/customers/{customer}/stats?from={new_from}&to={new_to}"
    ));
    assert_totals_shown(
        &browser,
        &api.1["total"],
        &expected_total(&requests, customer, new_from, new_to),
        "range changed in the form",
    );
    assert_charts_drawn(&browser, "range changed in the form");

    // Back in history: the first view again.
    browser.post("/back", json!({}));
    browser.wait_ready(&view);
    assert_totals_shown(
        &browser,
        &first["total"],
        &expected_total(&requests, customer, from, to),
        "back",
    );
    {
        // The fleet table links to each customer's view of the same range.
        let top = &expected_fleet_by_failures(&requests, from, to)[0].0;
        browser.click("#fleet-table tbody tr:first-child a");
        let top_view = format!("?customer={top}&from={from}&to={to}");
        browser.wait_ready(&top_view);
        assert_eq!(browser.get("/url"), json!(format!("{address}/{top_view}")));
        let (_, body) = http_get(&format!(
            "{address}/customers/{top}/stats?from={from}&to={to}"
        ));
        assert_totals_shown(
            &browser,
            &body["total"],
            &expected_total(&requests, top, from, to),
            "a fleet link",
        );
    }
    assert_console_clean(&browser, missing, "range changed, then back");

    // A URL without a range shows the 31 days ending on the last day with data, and says so.
    let last_day = "2024-10-21";
    let default_view = format!("?customer={customer}&from=2024-09-21&to={last_day}");
    browser.open(&format!("{address}/?customer={customer}"));
    browser.wait_ready(&default_view);
    assert_eq!(
        browser.get("/url"),
        json!(format!("{address}/{default_view}"))
    );
    let (_, body) = http_get(&format!(
        "{address}/customers/{customer}/stats?from=2024-09-21&to={last_day}"
    ));
    assert_totals_shown(
        &browser,
        &body["total"],
        &expected_total(&requests, customer, "2024-09-21", last_day),
        "no range in the URL",
    );
    {
        // Nor a customer: the one with the most failures.
        let top = &expected_fleet_by_failures(&requests, "2024-09-21", last_day)[0].0;
        browser.open(&format!("{address}/"));
        browser.wait_ready(&format!("?customer={top}&from=2024-09-21&to={last_day}"));
    }
    assert_console_clean(&browser, missing, "defaults");

    // The API's errors are shown, not swallowed.
    for (query, status, message) in [
        (
            format!("?customer=nobody&from={from}"),
            404,
            "no data for customer \"nobody\"".to_string(),
        ),
        (
            format!("?customer={customer}&from={to}&to={from}"),
            400,
            format!("`to` ({from}) is before `from` ({to})"),
        ),
    ] {
        browser.open(&format!("{address}/{query}"));
        browser.wait_ready(&query);
        let shown = visible_error(&browser).unwrap_or_default();
        assert!(
            shown.contains(&format!("answered {status}")) && shown.contains(&message),
            "{query}: shows {shown:?}"
        );
        let totals: Vec<String> = browser
            .find_all("#totals dd")
            .iter()
            .map(|dd| browser.text(dd))
            .collect();
        assert!(totals.iter().all(|t| t == "–"), "{query}: {totals:?}");
        let mut failures = vec!["/customers/"];
        failures.extend_from_slice(missing);
        if status == 400 {
            failures.push("/customers?");
        }
        assert_console_clean(&browser, &failures, &query);
    }
}

/// Whether the element `css` is shown (has no `hidden` attribute).
fn shown(browser: &Browser, css: &str) -> bool {
    browser.attribute(&browser.find(css), "hidden").is_none()
}

/// Types `text` into the input `css` and submits its form with the button `submit`.
fn type_and_submit(browser: &Browser, css: &str, text: &str, submit: &str) {
    let input = browser.find(css);
    browser.post(&format!("/element/{input}/clear"), json!({}));
    browser.post(&format!("/element/{input}/value"), json!({ "text": text }));
    browser.click(submit);
}

#[test]
fn with_tokens_the_dashboard_asks_for_one_and_keeps_it_in_the_tab() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let db = TestDatabase::sqlite();
    let requests = generated_requests();
    ingest(&db.connect(), &requests);
    // A token covering cust_b only: its charts, and the fleet table refused (403).
    let token = "dashboard-test-token-0123456789abcdef0123456789abcdef";
    let hash: String = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("sha256:{hash} cust_b\n")).expect("write the tokens");
    let (_api, address) =
        spawn_api_with(&db, &["--tokens", tokens.to_str().expect("a UTF-8 path")]);
    let browser = Browser::start(&chromium, &chromedriver);

    let (from, to, customer) = ("2024-10-09", "2024-10-18", "cust_b");
    let view = format!("?customer={customer}&from={from}&to={to}");
    let stats_url = format!("{address}/customers/{customer}/stats?from={from}&to={to}");
    assert_eq!(http_get(&stats_url).0, 401);

    // Without a token: the prompt, no numbers, no error box.
    browser.open(&format!("{address}/{view}"));
    browser.wait_ready(&view);
    assert!(shown(&browser, "#token-form"), "the token prompt is shown");
    assert!(!shown(&browser, "#token-forget"));
    let message = browser.text(&browser.find("#token-message"));
    assert!(message.contains("needs a token"), "{message}");
    assert_eq!(visible_error(&browser), None);
    let totals: Vec<String> = browser
        .find_all("#totals dd")
        .iter()
        .map(|dd| browser.text(dd))
        .collect();
    assert!(totals.iter().all(|t| t == "–"), "{totals:?}");
    let refused = ["/customers", "/stats?"];
    assert_console_clean(&browser, &refused, "no token");
    browser.screenshot(&workspace_target().join("dashboard-token.png"));

    // A wrong token: asked again, saying why.
    type_and_submit(
        &browser,
        "#token",
        "not-a-token",
        "#token-form button[type=submit]",
    );
    browser.wait_ready(&view);
    assert!(shown(&browser, "#token-form"));
    let message = browser.text(&browser.find("#token-message"));
    assert!(
        message.contains("refused the token") && message.contains("unknown token"),
        "{message}"
    );
    assert_console_clean(&browser, &refused, "a wrong token");

    // The right one: the customer's totals, the fleet table refused for this token.
    type_and_submit(&browser, "#token", token, "#token-form button[type=submit]");
    browser.wait_ready(&view);
    assert!(!shown(&browser, "#token-form"), "the prompt is gone");
    assert!(shown(&browser, "#token-forget"));
    assert_eq!(visible_error(&browser), None);
    let (status, body) = http_get_with(&stats_url, Some(token));
    assert_eq!(status, 200, "{body}");
    assert_totals_shown(
        &browser,
        &body["total"],
        &expected_total(&requests, customer, from, to),
        "with a token",
    );
    assert_charts_drawn(&browser, "with a token");
    let fleet = browser.text(&browser.find("#fleet-status"));
    assert!(
        fleet.contains("answered 403") && fleet.contains("every customer"),
        "{fleet}"
    );
    assert_console_clean(&browser, &["/customers?", "/stats?"], "with a token");

    // Kept for the tab: the page loaded again needs no prompt.
    browser.open(&format!("{address}/{view}"));
    browser.wait_ready(&view);
    assert!(!shown(&browser, "#token-form"));
    assert_totals_shown(
        &browser,
        &body["total"],
        &expected_total(&requests, customer, from, to),
        "reloaded",
    );
    let kept = browser.execute(
        "return window.sessionStorage.getItem('logstats-token');",
        json!([]),
    );
    assert_eq!(kept, json!(token));

    // Forgotten: asked again.
    browser.click("#token-forget");
    browser.wait_ready(&view);
    assert!(shown(&browser, "#token-form"));
    let kept = browser.execute(
        "return window.sessionStorage.getItem('logstats-token');",
        json!([]),
    );
    assert_eq!(kept, Value::Null);
}

#[test]
fn a_database_outage_is_shown_as_503_and_the_page_recovers() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let requests = generated_requests();
    ingest(&db.connect(), &requests);
    let (_api, address) = spawn_api(&db);
    let browser = Browser::start(&chromium, &chromedriver);
    let view = "?customer=cust_a&from=2024-10-08&to=2024-10-21";

    db.set_reachable(false);
    browser.open(&format!("{address}/{view}"));
    browser.wait_ready(view);
    let shown = visible_error(&browser).unwrap_or_default();
    assert!(
        shown.contains("answered 503") && shown.contains("database unavailable"),
        "shows {shown:?}"
    );
    // Every request of the page failed on purpose (the fleet's too, or it is not served yet).
    assert_console_clean(&browser, &["/customers", "/stats?"], "outage");

    db.set_reachable(true);
    let started = Instant::now();
    loop {
        browser.open(&format!("{address}/{view}"));
        browser.wait_ready(view);
        match visible_error(&browser) {
            None => break,
            Some(error) => assert!(
                started.elapsed() < Duration::from_secs(30),
                "still {error:?} 30 s after the database came back"
            ),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, body) = http_get(&format!(
        "{address}/customers/cust_a/stats?from=2024-10-08&to=2024-10-21"
    ));
    assert_totals_shown(
        &browser,
        &body["total"],
        &expected_total(&requests, "cust_a", "2024-10-08", "2024-10-21"),
        "after the outage",
    );
}

#[test]
fn the_page_and_its_files_are_served_with_types_and_etags() {
    let db = TestDatabase::sqlite();
    db.connect();
    let (_api, address) = spawn_api(&db);
    for (path, content_type) in [
        ("/", "text/html"),
        ("/assets/dashboard/dashboard.js", "text/javascript"),
        ("/assets/dashboard/dashboard.css", "text/css"),
        ("/assets/dashboard/favicon.svg", "image/svg+xml"),
        (
            "/assets/dashboard/vendor/uPlot.iife.min.js",
            "text/javascript",
        ),
        ("/assets/dashboard/vendor/uPlot.min.css", "text/css"),
    ] {
        let url = format!("{address}{path}");
        let response = ureq::get(&url).call().expect("200");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.content_type(), content_type, "{path}");
        assert_eq!(response.header("cache-control"), Some("no-cache"), "{path}");
        assert_eq!(
            response.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        let etag = response.header("etag").expect("an ETag").to_string();
        assert!(etag.len() == 18 && etag.starts_with('"'), "{path}: {etag}");
        let body = response.into_string().expect("a text body");
        assert!(!body.is_empty(), "{path}");

        // Revalidation: the same ETag gives a bodiless 304, another a full 200.
        let again = ureq::get(&url)
            .set("If-None-Match", &etag)
            .call()
            .expect("304");
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert_eq!(again.into_string().expect("empty"), "");
        let other = ureq::get(&url)
            .set("If-None-Match", "\"0000000000000000\"")
            .call()
            .expect("200");
        assert_eq!(other.status(), 200, "{path}");
    }
    let page = ureq::get(&format!("{address}/")).call().expect("the page");
    let policy = page.header("content-security-policy").expect("a CSP");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    // No file is fetched from elsewhere: every URL in the page is the API's own.
    let html = page.into_string().expect("HTML");
    assert!(!html.contains("//"), "the page links outside: {html}");

    for path in [
        "/assets/dashboard/",
        "/assets/dashboard/nothing.js",
        "/assets/dashboard/../Cargo.toml",
    ] {
        let (status, body) = http_get(&format!("{address}{path}"));
        assert_eq!(
            (status, body),
            (404, json!({"error": "not found"})),
            "{path}"
        );
    }
}

#[test]
fn base64_decodes_the_standard_alphabet() {
    assert_eq!(base64_decode(""), b"");
    assert_eq!(base64_decode("Zg=="), b"f");
    assert_eq!(base64_decode("Zm8="), b"fo");
    assert_eq!(base64_decode("Zm9vYmFy"), b"foobar");
    assert_eq!(base64_decode("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
}
