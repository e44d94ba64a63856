//! The dashboard with `--tokens`, in a real browser (see `dashboard.rs`): it asks for a token,
//! says why one is refused, keeps the right one for the tab and forgets it on request.

use crate::support::browser::{browser_programs, workspace_target, Browser};
use crate::support::dashboard::{
    assert_charts_drawn, assert_console_clean, assert_totals_shown, expected_total,
    generated_requests, http_get, http_get_with, ingest, shown, spawn_api_with, type_and_submit,
    visible_error,
};
use crate::support::tokens::{sha256_hex, TokensFile};
use logstats_shared::testing::TestDatabase;
use serde_json::{json, Value};

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
    let tokens = TokensFile::new(&format!("sha256:{} cust_b\n", sha256_hex(token)));
    let (_api, address) = spawn_api_with(&db, &["--tokens", tokens.arg()]);
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
