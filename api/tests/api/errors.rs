//! Parameters and errors of `GET /customers/{id}/stats` (in-process), on every backend:
//! malformed requests are 400 with the reason, unknown parameters are ignored, a customer
//! without data is 404, and a database outage is 503 within the connection timeout.

use std::time::{Duration, Instant};

use crate::support::stats::{
    assert_days, assert_stats, generated_requests, seeded_apps, select, store_requests,
};
use crate::support::Api;
use logstats_shared::testing::outage::OutageProxy;
use logstats_shared::testing::servers;
use serde_json::json;

#[test]
fn malformed_requests_are_400_with_the_reason() {
    let missing = "missing query parameter `from` (expected YYYY-MM-DD)";
    let bad_customer =
        "invalid customer id: expected 1-64 characters of A-Z a-z 0-9 . _ -, not . or ..";
    let bad_from =
        |v: &str| format!("invalid `from` date \"{v}\": expected a real date as YYYY-MM-DD");
    let bad_to = |v: &str| format!("invalid `to` date \"{v}\": expected a real date as YYYY-MM-DD");
    let long_id = "x".repeat(65);
    let cases: Vec<(String, String)> = vec![
        ("/customers/cust_1/stats".into(), missing.into()),
        (
            "/customers/cust_1/stats?to=2024-10-10".into(),
            missing.into(),
        ),
        ("/customers/cust_1/stats?from=".into(), bad_from("")),
        (
            "/customers/cust_1/stats?from=2024-13-01".into(),
            bad_from("2024-13-01"),
        ),
        (
            "/customers/cust_1/stats?from=2024-02-30".into(),
            bad_from("2024-02-30"),
        ),
        (
            "/customers/cust_1/stats?from=2023-02-29".into(),
            bad_from("2023-02-29"),
        ),
        (
            "/customers/cust_1/stats?from=2024-1-05".into(),
            bad_from("2024-1-05"),
        ),
        (
            "/customers/cust_1/stats?from=2024-10-10T00:00:00".into(),
            bad_from("2024-10-10T00:00:00"),
        ),
        (
            "/customers/cust_1/stats?from=yesterday".into(),
            bad_from("yesterday"),
        ),
        (
            "/customers/cust_1/stats?from=2024-10-10&to=2024-10-32".into(),
            bad_to("2024-10-32"),
        ),
        (
            "/customers/cust_1/stats?from=2024-10-10&to=".into(),
            bad_to(""),
        ),
        (
            "/customers/cust_1/stats?from=2024-10-10&to=2024-10-09".into(),
            "`to` (2024-10-09) is before `from` (2024-10-10)".into(),
        ),
        (
            "/customers/cust_1/stats?from=2024-10-10&from=2024-10-11".into(),
            "invalid query string: duplicate field `from`".into(),
        ),
        (
            "/customers/cust!1/stats?from=2024-10-10".into(),
            bad_customer.into(),
        ),
        (
            "/customers/cust%201/stats?from=2024-10-10".into(),
            bad_customer.into(),
        ),
        (
            "/customers/%FF/stats?from=2024-10-10".into(),
            bad_customer.into(),
        ),
        (
            format!("/customers/{long_id}/stats?from=2024-10-10"),
            bad_customer.into(),
        ),
        // Input is checked before existence: an unknown customer with a bad date is a 400.
        (
            "/customers/cust_404/stats?from=2024-10".into(),
            bad_from("2024-10"),
        ),
    ];
    for (db, app, _) in seeded_apps() {
        for (path, message) in &cases {
            let (status, body) = app.get_json(path);
            assert_eq!(
                (status, &body),
                (400, &json!({ "error": message })),
                "{db:?} {path}"
            );
        }
    }
}

#[test]
fn unknown_query_parameters_are_ignored() {
    for (db, app, requests) in seeded_apps() {
        let body = app.stats(
            "cust_1",
            "utm_source=x&from=2024-10-11&to=2024-10-11&format=csv",
        );
        assert_days(&body, &requests, "cust_1", &["2024-10-11"]);
        assert_eq!(body["to"], "2024-10-11", "{db:?}");
    }
}

#[test]
fn a_customer_without_data_is_404() {
    for (db, app, _) in seeded_apps() {
        let (status, body) = app.get_json("/customers/cust_404/stats?from=2024-10-10");
        assert_eq!(
            (status, body),
            (404, json!({ "error": "no data for customer \"cust_404\"" })),
            "{db:?}"
        );
        // Case matters: ids are stored as written.
        let (status, _) = app.get_json("/customers/CUST_1/stats?from=2024-10-10");
        assert_eq!(status, 404);
    }
}

/// With the database away, a request is answered 503 within one connection timeout (5 s), not
/// two; once it is back, answers are 200 again. On every server backend, through a proxy that
/// cuts the connections and refuses new ones.
#[test]
fn a_database_outage_is_503_within_the_connection_timeout() {
    for db in servers() {
        let requests = generated_requests();
        store_requests(&db.connect(), &requests);
        let proxy = OutageProxy::start(&db);
        let app = Api::spawn_on(proxy.url(), &[]);
        app.stats("cust_1", "from=2024-10-10");
        proxy.cut();
        for customer in ["cust_1", "cust_2"] {
            let started = Instant::now();
            let (status, body) =
                app.get_json(&format!("/customers/{customer}/stats?from=2024-10-10"));
            let took = started.elapsed();
            assert_eq!(
                (status, body),
                (503, json!({ "error": "database unavailable" })),
                "{db:?}"
            );
            assert!(took < Duration::from_secs(7), "{db:?}: 503 after {took:?}");
        }
        proxy.restore();
        let started = Instant::now();
        loop {
            let (status, body) = app.get_json("/customers/cust_1/stats?from=2024-10-10");
            if status == 200 {
                assert_stats(
                    &body["total"],
                    &select(&requests, "cust_1", "2024-10-10", "2024-10-20"),
                    &[],
                    "after the outage",
                );
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{db:?}: still {status} 30 s after the database came back"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
