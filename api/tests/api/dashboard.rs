//! The dashboard in a real browser: the API (in-process) on a fresh database holding known
//! log lines, driven in headless Chromium through chromedriver over the W3C WebDriver protocol
//! (`crate::support::browser`); and the page's files over plain HTTP.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! browser tests are skipped loudly, unless CI is set, where they fail. `CHROMIUM` and
//! `CHROMEDRIVER` name other binaries. The screenshot lands in `<workspace>/target/dashboard.png`.

use std::time::{Duration, Instant};

use crate::support::browser::{
    base64_decode, browser_programs, workspace_target, Browser, ELEMENT_KEY,
};
use crate::support::dashboard::{
    assert_charts_drawn, assert_console_clean, assert_totals_shown, expected_fleet_by_failures,
    expected_total, generated_requests, http_get, ingest, spawn_api, visible_error,
};
use crate::support::Api;
use logstats_shared::testing::outage::OutageProxy;
use logstats_shared::testing::{servers, TestDatabase};
use serde_json::json;

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

/// Records, per canvas, the box of every text drawn since the canvas was last cleared whole
/// (uPlot clears it before each redraw): `window.drawnTexts.get(canvas)`, in canvas pixels.
const RECORD_CANVAS_TEXTS: &str = r#"
(() => {
  const prototype = CanvasRenderingContext2D.prototype;
  const fillText = prototype.fillText;
  const clearRect = prototype.clearRect;
  const drawn = window.drawnTexts = new Map();
  prototype.clearRect = function (x, y, width, height) {
    if (x <= 0 && y <= 0 && width >= this.canvas.width && height >= this.canvas.height) {
      drawn.set(this.canvas, []);
    }
    return clearRect.apply(this, arguments);
  };
  prototype.fillText = function (text, x, y) {
    const width = this.measureText(text).width;
    const align = this.textAlign;
    const left = align === "center" ? x - width / 2
      : align === "right" || align === "end" ? x - width : x;
    const m = this.getTransform();
    if (!drawn.has(this.canvas)) drawn.set(this.canvas, []);
    drawn.get(this.canvas).push({
      text: String(text), left: m.a * left + m.e, right: m.a * (left + width) + m.e,
      y: m.d * y + m.f, turned: m.b !== 0 || m.c !== 0,
    });
    return fillText.apply(this, arguments);
  };
})();
"#;

/// One label of a chart's day axis as drawn: its text and horizontal extent (canvas pixels).
#[derive(Debug, Clone, PartialEq)]
struct AxisLabel {
    text: String,
    left: f64,
    right: f64,
    y: f64,
}

/// The labels drawn on the day axis of the chart in the element `#id` (texts that are dates:
/// YYYY-MM-DD or MM-DD), left to right.
fn day_axis_labels(browser: &Browser, id: &str) -> Vec<AxisLabel> {
    let found = browser.execute(
        "const canvas = document.querySelector(`#${arguments[0]} canvas`);          const texts = (canvas && window.drawnTexts && window.drawnTexts.get(canvas)) || [];          return texts.filter(t => !t.turned && /^([0-9]{4}-)?[0-9]{2}-[0-9]{2}$/.test(t.text));",
        json!([id]),
    );
    let mut labels: Vec<AxisLabel> = found
        .as_array()
        .expect("a list of labels")
        .iter()
        .map(|label| AxisLabel {
            text: label["text"].as_str().expect("a text").to_string(),
            left: label["left"].as_f64().expect("a left edge"),
            right: label["right"].as_f64().expect("a right edge"),
            y: label["y"].as_f64().expect("a baseline"),
        })
        .collect();
    labels.sort_by(|a, b| a.left.total_cmp(&b.left));
    labels
}

/// The days the labels name: the first is a whole date, the others MM-DD in the year of the one
/// before, except YYYY-01-01 where the year changes.
fn labelled_days(labels: &[AxisLabel]) -> Vec<chrono::NaiveDate> {
    let mut year = None;
    labels
        .iter()
        .map(|label| {
            let text = if label.text.len() == 10 {
                year = Some(label.text[..4].to_string());
                label.text.clone()
            } else {
                let year = year.as_deref().expect("a whole date before MM-DD");
                format!("{year}-{}", label.text)
            };
            chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .unwrap_or_else(|_| panic!("{:?} is not a day", label.text))
        })
        .collect()
}

#[test]
fn day_labels_never_overlap_and_dates_are_iso_at_any_range_and_width() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let db = TestDatabase::sqlite();
    ingest(&db.connect(), &generated_requests());
    let (_api, address) = spawn_api(&db);
    let browser = Browser::start(&chromium, &chromedriver);
    browser.run_before_every_page(RECORD_CANVAS_TEXTS);
    let day = |s: &str| crate::support::dashboard::date(s);
    let last = day("2024-10-21");
    // (from, to in the URL, the range's last day): 1, 7, 31 and 365 days, and a range without
    // `to`, which runs to the last day with data.
    let ranges: Vec<(
        chrono::NaiveDate,
        Option<chrono::NaiveDate>,
        chrono::NaiveDate,
    )> = [1, 7, 31, 365]
        .into_iter()
        .map(|days| {
            let from = last - chrono::Days::new(days - 1);
            (from, Some(last), last)
        })
        .chain([(day("2024-10-10"), None, last)])
        .collect();
    for (width, least_labels_of_a_week) in [(1360, 2), (560, 1)] {
        browser.set_window_size(width, 1400);
        for &(from, to, through) in &ranges {
            let from_text = from.format("%Y-%m-%d").to_string();
            let to_text = to.map(|to| to.format("%Y-%m-%d").to_string());
            let view = match &to_text {
                Some(to) => format!("?customer=cust_b&from={from_text}&to={to}"),
                None => format!("?customer=cust_b&from={from_text}"),
            };
            let context = format!("{width} px wide, {view}");
            browser.open(&format!("{address}/{view}"));
            browser.wait_ready(&view);
            assert_eq!(visible_error(&browser), None, "{context}");

            // The date fields show the view's days as YYYY-MM-DD, as typed, whatever the locale.
            for (css, expected) in [
                ("#from", from_text.as_str()),
                ("#to", to_text.as_deref().unwrap_or("")),
            ] {
                let input = browser.find(css);
                assert_eq!(
                    browser.attribute(&input, "type").as_deref(),
                    Some("text"),
                    "{context}: {css}"
                );
                assert_eq!(
                    browser.property(&input, "value"),
                    json!(expected),
                    "{context}: {css}"
                );
                assert_eq!(
                    browser.execute(
                        "return arguments[0].matches(':valid');",
                        json!([{ ELEMENT_KEY: input }])
                    ),
                    json!(true),
                    "{context}: {css}"
                );
            }

            let days = (through - from).num_days() + 1;
            for id in ["chart-requests", "chart-uptime", "chart-latency"] {
                // Drawn a moment after the page is ready (uPlot draws in a microtask).
                let started = Instant::now();
                let labels = loop {
                    let labels = day_axis_labels(&browser, id);
                    if !labels.is_empty() || started.elapsed() > Duration::from_secs(10) {
                        break labels;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                };
                let least = if days >= 7 { least_labels_of_a_week } else { 1 };
                assert!(
                    labels.len() >= least,
                    "{context}: {id} has labels {labels:?}"
                );
                assert!(
                    labels.iter().all(|label| label.y == labels[0].y),
                    "{context}: {id}'s labels are on one line: {labels:?}"
                );
                for pair in labels.windows(2) {
                    assert!(
                        pair[1].left - pair[0].right >= 4.0,
                        "{context}: {id}'s labels {:?} and {:?} overlap or touch: {labels:?}",
                        pair[0],
                        pair[1]
                    );
                }
                // Whole UTC days of the range, in order, the first with its year.
                assert_eq!(labels[0].text.len(), 10, "{context}: {id}: {labels:?}");
                let labelled = labelled_days(&labels);
                assert!(
                    labelled.windows(2).all(|pair| pair[0] < pair[1])
                        && labelled.iter().all(|d| from <= *d && *d <= through),
                    "{context}: {id}'s labels {labelled:?} are not days of {from}..={through} in order: {labels:?}"
                );
            }
        }
    }

    // A day that is not YYYY-MM-DD, or does not exist, is refused before anything is asked.
    let view = "?customer=cust_b&from=2024-10-10&to=2024-10-12";
    browser.open(&format!("{address}/{view}"));
    browser.wait_ready(view);
    let from = browser.find("#from");
    let is_valid = |element: &str| {
        browser.execute(
            "return arguments[0].checkValidity();",
            json!([{ ELEMENT_KEY: element }]),
        )
    };
    for refused in [
        "10/12/2024",
        "2024-10-1",
        "2024-02-30",
        "2024-13-01",
        "12.10.2024",
    ] {
        browser.post(&format!("/element/{from}/clear"), json!({}));
        browser.post(
            &format!("/element/{from}/value"),
            json!({ "text": refused }),
        );
        assert_eq!(is_valid(&from), json!(false), "{refused}");
        browser.click("#view-form button[type=submit]");
        assert_eq!(
            browser.get("/url"),
            json!(format!("{address}/{view}")),
            "{refused}"
        );
        assert_eq!(
            browser
                .attribute(&browser.find("body"), "data-ready")
                .as_deref(),
            Some(view),
            "{refused}"
        );
    }
    browser.type_date("#from", "2024-02-29");
    assert_eq!(is_valid(&from), json!(true));
    browser.type_date("#from", "2024-10-11");
    browser.click("#view-form button[type=submit]");
    let typed = "?customer=cust_b&from=2024-10-11&to=2024-10-12";
    browser.wait_ready(typed);
    assert_eq!(browser.get("/url"), json!(format!("{address}/{typed}")));
    assert_console_clean(&browser, &[], "typed days");
}

#[test]
fn a_database_outage_is_shown_as_503_and_the_page_recovers() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    // On every server backend, through a proxy that cuts the connections and refuses new ones.
    for db in servers() {
        let requests = generated_requests();
        ingest(&db.connect(), &requests);
        let proxy = OutageProxy::start(&db);
        // The outage's 503s are logged at ERROR: expected, so only warnings and errors.
        let api = Api::spawn_on(proxy.url(), &[]);
        let address = &api.address;
        let browser = Browser::start(&chromium, &chromedriver);
        let view = "?customer=cust_a&from=2024-10-08&to=2024-10-21";

        proxy.cut();
        browser.open(&format!("{address}/{view}"));
        browser.wait_ready(view);
        let shown = visible_error(&browser).unwrap_or_default();
        assert!(
            shown.contains("answered 503") && shown.contains("database unavailable"),
            "{db:?}: shows {shown:?}"
        );
        // Every request of the page failed on purpose (the fleet's too, or it is not served yet).
        assert_console_clean(&browser, &["/customers", "/stats?"], "outage");

        proxy.restore();
        let started = Instant::now();
        loop {
            browser.open(&format!("{address}/{view}"));
            browser.wait_ready(view);
            match visible_error(&browser) {
                None => break,
                Some(error) => assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{db:?}: still {error:?} 30 s after the database came back"
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
