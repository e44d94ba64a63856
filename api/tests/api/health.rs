//! The API's life: `/health` answers, other paths are JSON 404s (in-process); and the real
//! binary serves and exits cleanly on SIGTERM.

use std::time::Duration;

use crate::support::stats::{assert_stats, generated_requests, select, store_requests};
use crate::support::Api;
use logstats_shared::testing::{backends, TestDatabase};
use serde_json::json;

#[test]
fn health_is_ok_and_other_paths_are_json_404() {
    for db in backends() {
        let app = Api::spawn(&db);
        assert_eq!(
            app.get_json("/health"),
            (200, json!({ "status": "ok" })),
            "{db:?}"
        );
        for path in [
            "/nothing",
            "/customers/cust_1",
            "/customers/cust_1/stats/extra",
        ] {
            assert_eq!(
                app.get_json(path),
                (404, json!({ "error": "not found" })),
                "{path}"
            );
        }
    }
}

#[test]
fn the_binary_serves_and_exits_cleanly_on_sigterm() {
    let db = TestDatabase::sqlite();
    let requests = generated_requests();
    store_requests(&db.connect(), &requests);
    let api = Api::start_with(&db, &[], &[("RUST_LOG", "warn")]);

    let (status, body) = api.get_json("/customers/cust_1/stats?from=2024-10-10");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["to"], "2024-10-20");
    assert_stats(
        &body["total"],
        &select(&requests, "cust_1", "2024-10-10", "2024-10-20"),
        &[],
        "binary",
    );

    api.signal("TERM");
    let mut process = api.into_process();
    let status = process
        .wait_for(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("logstats-api did not stop within 10s of SIGTERM"));
    assert!(status.success(), "logstats-api exited with {status}");
    assert_eq!(status.code(), Some(0));
}
