//! The dashboard tests' known input (log lines parsed by the ingest job's parser and committed as
//! it commits them), its oracle, the API serving it (in this process), and what the page must show.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use logstats_shared::testing::{numpy_percentile, Random, TestDatabase};
use logstats_shared::{parse_line, DayAccumulator, EpochCommit, Store};
use serde_json::{json, Value};

use super::browser::{Browser, ELEMENT_KEY};
use super::Api;

// ------------------------------------------------------------------ the known input

/// One generated request, as written into a log line.
#[derive(Debug, Clone)]
pub struct Request {
    customer: &'static str,
    day: NaiveDate,
    status: u16,
    /// Duration in whole milliseconds (the line says `S.mmm` seconds).
    duration_ms: u64,
}

impl Request {
    pub fn line(&self, second_of_day: u64) -> String {
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

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("valid test date")
}

/// Four customers over 2024-10-08..2024-10-21 with different failure rates; cust_b has no
/// requests on 2024-10-14 and 2024-10-15 (a gap in its charts).
pub fn generated_requests() -> Vec<Request> {
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
pub fn ingest(store: &Store, requests: &[Request]) {
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
pub fn expected_total(requests: &[Request], customer: &str, from: &str, to: &str) -> Value {
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
        "median_latency": numpy_percentile(&seconds, 50.0).expect("latencies"),
        "p99_latency": numpy_percentile(&seconds, 99.0).expect("latencies"),
    })
}

/// Failed requests per customer over `from..=to`, most first.
pub fn expected_fleet_by_failures(
    requests: &[Request],
    from: &str,
    to: &str,
) -> Vec<(String, u64)> {
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
pub fn shown_text(field: &str, value: &Value) -> String {
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

/// The API serving `db`, in this process (see `Api::spawn`); returns it and its base URL.
pub fn spawn_api(db: &TestDatabase) -> (Api, String) {
    spawn_api_with(db, &[])
}

/// [`spawn_api`] with more flags.
pub fn spawn_api_with(db: &TestDatabase, args: &[&str]) -> (Api, String) {
    let api = Api::spawn_with(db, args);
    let address = api.address.clone();
    (api, address)
}

pub fn http_get(url: &str) -> (u16, Value) {
    http_get_with(url, None)
}

/// [`http_get`], with `Authorization: Bearer token` when `token` is given.
pub fn http_get_with(url: &str, token: Option<&str>) -> (u16, Value) {
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
pub fn assert_totals_shown(browser: &Browser, api_total: &Value, expected: &Value, context: &str) {
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
pub fn assert_charts_drawn(browser: &Browser, context: &str) {
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
pub fn assert_console_clean(browser: &Browser, expected_failures: &[&str], context: &str) {
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

pub fn visible_error(browser: &Browser) -> Option<String> {
    let error = browser.find("#error");
    browser
        .attribute(&error, "hidden")
        .is_none()
        .then(|| browser.text(&error))
}

/// Whether the element `css` is shown (has no `hidden` attribute).
pub fn shown(browser: &Browser, css: &str) -> bool {
    browser.attribute(&browser.find(css), "hidden").is_none()
}

/// Types `text` into the input `css` and submits its form with the button `submit`.
pub fn type_and_submit(browser: &Browser, css: &str, text: &str, submit: &str) {
    let input = browser.find(css);
    browser.post(&format!("/element/{input}/clear"), json!({}));
    browser.post(&format!("/element/{input}/value"), json!({ "text": text }));
    browser.click(submit);
}
