//! `GET /customers/{id}/stats` on the real binary, on every backend: a range is the merge of its
//! days, bounds are inclusive, `to` defaults to the last day with data, and a range without
//! requests has zero counts and null ratios; every answer is compared with statistics computed
//! here from the generated requests (`crate::support::stats`).

use crate::support::stats::{assert_days, assert_stats, seeded_apps, select};
use serde_json::json;

#[test]
fn a_range_is_the_merge_of_its_days() {
    for (db, app, requests) in seeded_apps() {
        let body = app.stats("cust_1", "from=2024-10-01&to=2024-10-31");
        assert_eq!(body["customer_id"], "cust_1", "{db:?}");
        assert_eq!(body["from"], "2024-10-01");
        assert_eq!(body["to"], "2024-10-31");
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 5, "{keys:?}");
        let all = select(&requests, "cust_1", "2024-10-01", "2024-10-31");
        assert_eq!(all.len(), 2605);
        assert_stats(&body["total"], &all, &[], &format!("{db:?} total"));
        assert_days(
            &body,
            &requests,
            "cust_1",
            &["2024-10-10", "2024-10-11", "2024-10-13", "2024-10-20"],
        );
        // Five distinct values: the digest is exact.
        assert_eq!(body["days"][1]["median_latency"], json!(0.3));
        assert_eq!(body["days"][1]["uptime"], json!(60.0));
        assert_eq!(body["days"][1]["average_latency"], json!(0.3));

        let other = app.stats("cust_2", "from=2024-10-01&to=2024-10-31");
        assert_stats(
            &other["total"],
            &select(&requests, "cust_2", "2024-10-01", "2024-10-31"),
            &[],
            "cust_2",
        );
        assert_eq!(other["total"]["median_latency"], json!(7.0));
        assert_days(&other, &requests, "cust_2", &["2024-10-10", "2024-10-12"]);
    }
}

#[test]
fn to_defaults_to_the_last_day_with_data() {
    for (db, app, requests) in seeded_apps() {
        let body = app.stats("cust_1", "from=2024-10-11");
        assert_eq!(
            (&body["from"], &body["to"]),
            (&json!("2024-10-11"), &json!("2024-10-20")),
            "{db:?}"
        );
        assert_stats(
            &body["total"],
            &select(&requests, "cust_1", "2024-10-11", "2024-10-20"),
            &[],
            "from 10-11",
        );
        assert_days(
            &body,
            &requests,
            "cust_1",
            &["2024-10-11", "2024-10-13", "2024-10-20"],
        );

        let last = app.stats("cust_1", "from=2024-10-20");
        assert_eq!(last["to"], "2024-10-20");
        assert_days(&last, &requests, "cust_1", &["2024-10-20"]);

        // No data on or after `from`: the range is the single day `from`, and empty.
        let after = app.stats("cust_1", "from=2024-10-21");
        assert_eq!(
            (&after["from"], &after["to"]),
            (&json!("2024-10-21"), &json!("2024-10-21"))
        );
        assert_stats(&after["total"], &[], &[], "after the last day");
        assert_eq!(after["days"], json!([]));
    }
}

#[test]
fn range_bounds_are_inclusive() {
    for (db, app, requests) in seeded_apps() {
        let body = app.stats("cust_1", "from=2024-10-11&to=2024-10-13");
        assert_eq!(
            (&body["from"], &body["to"]),
            (&json!("2024-10-11"), &json!("2024-10-13")),
            "{db:?}"
        );
        assert_stats(
            &body["total"],
            &select(&requests, "cust_1", "2024-10-11", "2024-10-13"),
            &[],
            "10-11..10-13",
        );
        assert_days(&body, &requests, "cust_1", &["2024-10-11", "2024-10-13"]);

        let one_day = app.stats("cust_1", "from=2024-10-13&to=2024-10-13");
        assert_stats(
            &one_day["total"],
            &select(&requests, "cust_1", "2024-10-13", "2024-10-13"),
            &[],
            "10-13",
        );
        assert_days(&one_day, &requests, "cust_1", &["2024-10-13"]);
        // A single day's total is that day.
        assert_eq!(
            one_day["total"]["median_latency"],
            one_day["days"][0]["median_latency"]
        );

        let before = app.stats("cust_1", "from=2024-01-01&to=2024-10-10");
        assert_days(&before, &requests, "cust_1", &["2024-10-10"]);
        assert_eq!(before["total"]["total_requests"], json!(1500));
    }
}

#[test]
fn a_range_without_requests_has_zero_counts_and_null_ratios() {
    for (db, app, _) in seeded_apps() {
        // cust_2 has requests on 10-12, cust_1 none.
        let body = app.stats("cust_1", "from=2024-10-12&to=2024-10-12");
        assert_eq!(
            body,
            json!({
                "customer_id": "cust_1",
                "from": "2024-10-12",
                "to": "2024-10-12",
                "total": {
                    "total_requests": 0,
                    "successful_requests": 0,
                    "failed_requests": 0,
                    "uptime": null,
                    "average_latency": null,
                    "median_latency": null,
                    "p99_latency": null
                },
                "days": []
            }),
            "{db:?}"
        );
        let before = app.stats("cust_1", "from=2023-01-01&to=2023-12-31");
        assert_eq!(before["total"]["total_requests"], json!(0));
        assert_eq!(before["days"], json!([]));
    }
}
