//! The fleet views and `percentiles=` (in-process), on SQLite and PostgreSQL: every
//! answer is compared with statistics computed here from the raw requests (counts, uptime,
//! average, numpy's linear percentiles), including sorting and paging of `/customers`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::support::stats::{assert_stats, date, store_requests, within, Request};
use crate::support::Api;
use chrono::NaiveDate;
use logstats_shared::testing::{backends, Random, TestDatabase};
use serde_json::{json, Value};

/// 12 customers over 2024-10-01..10-20 with different volumes, failure rates and days off;
/// millisecond latencies (at most 2,000 distinct values in all, so every merge is exact), and
/// one customer with microsecond latencies.
fn generated() -> Vec<Request> {
    let mut random = Random(1_234_567);
    let mut requests = Vec::new();
    for c in 0..12u64 {
        let customer = format!("cust_{c:02}");
        for d in 0..20u64 {
            if (c + d) % 5 == 0 {
                continue; // a day off
            }
            let day = date("2024-10-01") + chrono::Days::new(d);
            let n = 5 + random.below(20 + 10 * c);
            for _ in 0..n {
                let us = if c == 7 {
                    100_000 + random.below(900)
                } else {
                    (1 + random.below(1500 + 30 * c)) * 1000
                };
                let ok = random.below(100) >= 3 + 4 * c;
                requests.push(Request {
                    customer: customer.clone(),
                    day,
                    ok,
                    us,
                });
            }
        }
    }
    requests
}

/// The database (kept until its APIs stop), a label, an API, what it holds, how it answers.
type Served = (Arc<TestDatabase>, String, Api, Vec<Request>, Source);

/// How an API answers `GET /customers`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// Every customer copied in memory at start: answered from the copies.
    Memory,
    /// No row copy: the database is walked.
    Database,
}

/// A database on every backend, holding `generated()`, served by the API twice: once
/// with the row copy filled at start (waited for, so `GET /customers` is answered from it), once
/// without a row copy (so it walks the database).
fn served() -> Vec<Served> {
    let mut served = Vec::new();
    for db in backends() {
        let requests = generated();
        store_requests(&db.connect(), &requests);
        let db = Arc::new(db);
        for source in [Source::Memory, Source::Database] {
            let api = match source {
                Source::Memory => Api::spawn(&db),
                Source::Database => Api::spawn_with(&db, &["--row-cache-bytes", "0"]),
            };
            if source == Source::Memory {
                wait_for_copies(&api, 12);
            }
            let label = format!("{db:?} {source:?}");
            served.push((Arc::clone(&db), label, api, requests.clone(), source));
        }
    }
    served
}
/// Waits until the API holds a copy of `customers` customers' rows (its start fills it).
fn wait_for_copies(api: &Api, customers: u64) {
    let wanted = format!("logstats_api_cache_entries{{cache=\"rows\"}} {customers}\n");
    for _ in 0..300 {
        if api.get("/metrics").text().contains(&wanted) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the API did not copy {customers} customers within 30 s");
}

/// The `GET /customers` answers computed from memory and from the database so far.
fn customer_list_sources(api: &Api) -> (u64, u64) {
    let metrics = api.get("/metrics").text();
    let count = |source: &str| {
        let prefix = format!("logstats_api_customer_lists_total{{source=\"{source}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
            .expect("the customer lists counter")
    };
    (count("memory"), count("database"))
}

fn ok_json(api: &Api, path: &str) -> Value {
    let response = api.get(path);
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    response.json()
}

#[test]
fn fleet_stats_are_the_merge_of_every_customer() {
    for (_db, db, api, requests, _source) in served() {
        let extra = [("90", 90.0), ("99.9", 99.9), ("0", 0.0), ("100", 100.0)];
        for (query, from, to, extra) in [
            (
                "from=2024-10-03&to=2024-10-11",
                "2024-10-03",
                "2024-10-11",
                &[][..],
            ),
            (
                "from=2024-10-01&percentiles=90,99.90,0,100,90",
                "2024-10-01",
                "2024-10-20",
                &extra[..],
            ),
        ] {
            let body = ok_json(&api, &format!("/stats?{query}"));
            let context = format!("{db:?} /stats?{query}");
            assert_eq!(body["from"], from, "{context}");
            assert_eq!(
                body["to"], to,
                "{context}: open ranges end on the last day with data"
            );
            assert_stats(
                &body["total"],
                &within(&requests, from, to),
                extra,
                &context,
            );
            let days = body["days"].as_array().expect("days");
            let expected_days: BTreeSet<NaiveDate> =
                within(&requests, from, to).iter().map(|r| r.day).collect();
            assert_eq!(days.len(), expected_days.len(), "{context}");
            for (day, expected) in days.iter().zip(&expected_days) {
                let d = expected.format("%Y-%m-%d").to_string();
                assert_eq!(day["date"], d.as_str(), "{context}");
                assert_stats(
                    day,
                    &within(&requests, &d, &d),
                    extra,
                    &format!("{context} {d}"),
                );
            }
        }
        // The extra percentiles come in the order asked, repeats dropped.
        let raw = api
            .get("/stats?from=2024-10-01&percentiles=99.9,5,99.90,50")
            .text();
        let at = |key: &str| raw.find(&format!("\"{key}\":")).expect("a percentile key");
        assert!(at("99.9") < at("5") && at("5") < at("50"), "{raw}");
        assert_eq!(
            raw.matches("\"99.9\":").count(),
            raw.matches("\"latency_percentiles\"").count()
        );
        // No requests in the range: zero counts, null latencies, no days.
        let empty = ok_json(&api, "/stats?from=2025-01-01&to=2025-01-31");
        assert_stats(&empty["total"], &[], &[], "empty range");
        assert_eq!(empty["days"], json!([]));
        let empty = ok_json(&api, "/stats?from=2025-01-01");
        assert_eq!(
            empty["to"], "2025-01-01",
            "no data from `from` on: `to` is `from`"
        );
    }
}

#[test]
fn customer_lists_are_exact_sorted_and_paged() {
    for (_db, db, api, requests, source) in served() {
        let (from, to) = ("2024-10-02", "2024-10-15");
        let selected = within(&requests, from, to);
        let mut per_customer: BTreeMap<&str, Vec<&Request>> = BTreeMap::new();
        for r in &selected {
            per_customer.entry(r.customer.as_str()).or_default().push(r);
        }
        // Default: by customer id, ascending, 100 a page.
        let body = ok_json(
            &api,
            &format!("/customers?from={from}&to={to}&percentiles=95"),
        );
        assert_eq!(body["count"], per_customer.len(), "{db:?}");
        assert_eq!(
            (body["sort"].as_str(), body["order"].as_str()),
            (Some("customer_id"), Some("asc"))
        );
        assert_eq!(
            (body["limit"].as_u64(), body["offset"].as_u64()),
            (Some(100), Some(0))
        );
        let listed = body["customers"].as_array().expect("customers");
        let ids: Vec<&str> = listed
            .iter()
            .map(|c| c["customer_id"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(
            ids,
            per_customer.keys().copied().collect::<Vec<_>>(),
            "{db:?}"
        );
        for entry in listed {
            let id = entry["customer_id"].as_str().unwrap_or("?");
            assert_stats(
                &entry["total"],
                &per_customer[id],
                &[("95", 95.0)],
                &format!("{db:?} {id}"),
            );
        }
        // Every sort field, both orders, and pages of the same ranking.
        let totals: BTreeMap<&str, Value> = listed
            .iter()
            .map(|c| (c["customer_id"].as_str().unwrap_or("?"), c["total"].clone()))
            .collect();
        for sort in [
            "customer_id",
            "total_requests",
            "successful_requests",
            "failed_requests",
            "uptime",
            "average_latency",
            "median_latency",
            "p99_latency",
        ] {
            for descending in [false, true] {
                // The ranking, computed here from the oracle-checked totals: the field in the
                // order asked, ties by customer id ascending.
                let mut expected: Vec<&str> = totals.keys().copied().collect();
                expected.sort_by(|a, b| {
                    let field = if sort == "customer_id" {
                        Ordering::Equal
                    } else {
                        let (x, y) = (totals[a][sort].as_f64(), totals[b][sort].as_f64());
                        x.partial_cmp(&y).expect("comparable")
                    };
                    let field = if descending { field.reverse() } else { field };
                    let field = if sort == "customer_id" && descending {
                        a.cmp(b).reverse()
                    } else {
                        field
                    };
                    field.then(a.cmp(b))
                });
                let order = if descending { "desc" } else { "asc" };
                let all = ok_json(
                    &api,
                    &format!("/customers?from={from}&to={to}&sort={sort}&order={order}"),
                );
                let ids: Vec<&str> = all["customers"]
                    .as_array()
                    .expect("customers")
                    .iter()
                    .map(|c| c["customer_id"].as_str().unwrap_or("?"))
                    .collect();
                assert_eq!(ids, expected, "{db:?} sort={sort} order={order}");
                let page = ok_json(
                    &api,
                    &format!(
                        "/customers?from={from}&to={to}&sort={sort}&order={order}&limit=4&offset=3"
                    ),
                );
                let ids: Vec<&str> = page["customers"]
                    .as_array()
                    .expect("customers")
                    .iter()
                    .map(|c| c["customer_id"].as_str().unwrap_or("?"))
                    .collect();
                assert_eq!(ids, expected[3..7], "{db:?} sort={sort} order={order} page");
                assert_eq!(page["count"], per_customer.len());
            }
        }
        let beyond = ok_json(&api, &format!("/customers?from={from}&to={to}&offset=500"));
        assert_eq!(beyond["customers"], json!([]));
        assert_eq!(beyond["count"], per_customer.len());
        let none = ok_json(&api, "/customers?from=2030-01-01");
        assert_eq!(
            (none["count"].as_u64(), none["customers"].clone()),
            (Some(0), json!([]))
        );
        // Each API answered the way it was set up to.
        let (memory, database) = customer_list_sources(&api);
        match source {
            Source::Memory => assert!(memory > 30 && database == 0, "{db}: {memory} {database}"),
            Source::Database => assert!(memory == 0 && database > 30, "{db}: {memory} {database}"),
        }
    }
}

#[test]
fn percentiles_on_the_customer_endpoint_are_exact_for_the_range_and_each_day() {
    for (_db, db, api, requests, _source) in served() {
        let (from, to) = ("2024-10-04", "2024-10-18");
        for customer in ["cust_03", "cust_07"] {
            let mine: Vec<Request> = requests
                .iter()
                .filter(|r| r.customer == customer)
                .cloned()
                .collect();
            let path =
                format!("/customers/{customer}/stats?from={from}&to={to}&percentiles=99.9,25,75");
            let body = ok_json(&api, &path);
            let extra = [("99.9", 99.9), ("25", 25.0), ("75", 75.0)];
            assert_stats(
                &body["total"],
                &within(&mine, from, to),
                &extra,
                &format!("{db:?} {path}"),
            );
            for day in body["days"].as_array().expect("days") {
                let d = day["date"].as_str().expect("date").to_string();
                assert_stats(
                    day,
                    &within(&mine, &d, &d),
                    &extra,
                    &format!("{db:?} {path} {d}"),
                );
            }
            // Without the parameter the field is absent (and that answer is not the other's).
            let plain = ok_json(
                &api,
                &format!("/customers/{customer}/stats?from={from}&to={to}"),
            );
            assert_stats(&plain["total"], &within(&mine, from, to), &[], "plain");
        }
    }
}

#[test]
fn bad_fleet_parameters_are_400_json() {
    let db = logstats_shared::testing::TestDatabase::sqlite();
    store_requests(&db.connect(), &generated());
    let api = Api::spawn(&db);
    for (path, message) in [
        ("/stats", "missing query parameter `from` (expected YYYY-MM-DD)"),
        ("/stats?from=2024-10-10&to=2024-10-01", "`to` (2024-10-01) is before `from` (2024-10-10)"),
        ("/stats?from=2024-10-10&percentiles=101", "invalid `percentiles` \"101\": expected 1-16 comma-separated numbers from 0 to 100 with at most 6 decimals, e.g. 90,95,99.9"),
        ("/customers/cust_01/stats?from=2024-10-10&percentiles=", "invalid `percentiles` \"\": expected 1-16 comma-separated numbers from 0 to 100 with at most 6 decimals, e.g. 90,95,99.9"),
        ("/customers?from=2024-10-10&percentiles=50,abc", "invalid `percentiles` \"50,abc\": expected 1-16 comma-separated numbers from 0 to 100 with at most 6 decimals, e.g. 90,95,99.9"),
        ("/customers?from=2024-10-10&sort=name", "invalid `sort` \"name\": expected one of customer_id, total_requests, successful_requests, failed_requests, uptime, average_latency, median_latency, p99_latency"),
        ("/customers?from=2024-10-10&order=up", "invalid `order` \"up\": expected asc or desc"),
        ("/customers?from=2024-10-10&limit=0", "invalid `limit` \"0\": expected a whole number from 1 to 1000"),
        ("/customers?from=2024-10-10&limit=1001", "invalid `limit` \"1001\": expected a whole number from 1 to 1000"),
        ("/customers?from=2024-10-10&offset=-1", "invalid `offset` \"-1\": expected a whole number from 0 to 99000"),
        ("/customers?from=2024-10-10&offset=99001", "invalid `offset` \"99001\": expected a whole number from 0 to 99000"),
        ("/customers?to=2024-10-10", "missing query parameter `from` (expected YYYY-MM-DD)"),
    ] {
        let response = api.get(path);
        assert_eq!(response.status, 400, "{path}: {}", response.text());
        assert_eq!(response.json(), json!({ "error": message }), "{path}");
    }
}

#[test]
fn a_commit_is_visible_in_the_fleet_views_on_the_next_request() {
    for db in backends() {
        let requests = generated();
        store_requests(&db.connect(), &requests);
        let api = Api::spawn(&db);
        wait_for_copies(&api, 12);
        let query = "from=2024-10-01&to=2024-10-31";
        let before = ok_json(&api, &format!("/stats?{query}"));
        let list = ok_json(
            &api,
            &format!("/customers?{query}&sort=failed_requests&order=desc&limit=1"),
        );
        assert_eq!(before["total"]["total_requests"], requests.len(), "{db:?}");
        // A new customer with 5,000 failures on a new day.
        let late: Vec<Request> = (0..5000)
            .map(|i| Request {
                customer: "zz_new".into(),
                day: date("2024-10-25"),
                ok: false,
                us: 1000 + i % 7,
            })
            .collect();
        store_requests(&db.connect(), &late);
        let after = ok_json(&api, &format!("/stats?{query}"));
        assert_eq!(
            after["total"]["total_requests"],
            requests.len() + 5000,
            "{db:?}"
        );
        assert_eq!(
            after["days"].as_array().map(Vec::len),
            before["days"].as_array().map(|d| d.len() + 1)
        );
        let list_after = ok_json(
            &api,
            &format!("/customers?{query}&sort=failed_requests&order=desc&limit=1"),
        );
        assert_ne!(list, list_after);
        assert_eq!(
            list_after["customers"][0]["customer_id"], "zz_new",
            "{db:?}"
        );
        assert_eq!(
            list_after["count"],
            list["count"].as_u64().map(|c| c + 1).expect("count")
        );
        // A commit that changes a customer already copied: its copy is brought up to date
        // before the list is answered from memory.
        let more: Vec<Request> = (0..6000)
            .map(|i| Request {
                customer: "cust_03".into(),
                day: date("2024-10-26"),
                ok: i % 2 == 0,
                us: 2000 + i % 11,
            })
            .collect();
        store_requests(&db.connect(), &more);
        let again = ok_json(
            &api,
            &format!("/customers?{query}&sort=failed_requests&order=desc&limit=2"),
        );
        let ids: Vec<&str> = again["customers"]
            .as_array()
            .expect("customers")
            .iter()
            .map(|c| c["customer_id"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(ids, ["zz_new", "cust_03"], "{db:?}");
        let all: Vec<Request> = requests.iter().chain(&more).cloned().collect();
        let cust_03: Vec<&Request> = all
            .iter()
            .filter(|r| r.customer == "cust_03")
            .filter(|r| r.day >= date("2024-10-01") && r.day <= date("2024-10-31"))
            .collect();
        assert_stats(
            &again["customers"][1]["total"],
            &cust_03,
            &[],
            &format!("{db:?}"),
        );
        // Every list came from memory: the new customer and the changed one were copied first.
        assert_eq!(customer_list_sources(&api), (3, 0), "{db:?}");
    }
}

/// `GET /stats` (the stored fleet rows) equals the sum of every customer's `GET
/// /customers/{id}/stats` over the range, after late lines into days already stored; and
/// again while the fleet rows are marked as not built (the walk of every customer's rows).
#[test]
fn fleet_stats_equal_the_sum_of_the_customers_after_late_lines() {
    for db in backends() {
        let requests = generated();
        store_requests(&db.connect(), &requests);
        // Late lines into stored days of existing customers, and a new customer on one of them.
        let late: Vec<Request> = (0..300u64)
            .map(|i| Request {
                customer: if i % 3 == 0 { "zz_late" } else { "cust_03" }.to_string(),
                day: date("2024-10-05") + chrono::Days::new(i % 4),
                ok: i % 7 != 0,
                us: 2_000_000 + i * 1000,
            })
            .collect();
        store_requests(&db.connect(), &late);
        let api = Api::spawn(&db);
        let customers: BTreeSet<&str> = requests
            .iter()
            .chain(&late)
            .map(|r| r.customer.as_str())
            .collect();
        let sum = |query: &str| {
            let mut total = [0u64; 3];
            let mut days: BTreeMap<String, u64> = BTreeMap::new();
            for customer in &customers {
                let body = ok_json(&api, &format!("/customers/{customer}/stats?{query}"));
                for (i, key) in ["total_requests", "successful_requests", "failed_requests"]
                    .iter()
                    .enumerate()
                {
                    total[i] += body["total"][key].as_u64().expect("a count");
                }
                for day in body["days"].as_array().expect("days") {
                    *days
                        .entry(day["date"].as_str().expect("date").to_string())
                        .or_default() += day["total_requests"].as_u64().expect("a count");
                }
            }
            (total, days)
        };
        let fleet = |query: &str| {
            let body = ok_json(&api, &format!("/stats?{query}"));
            let total = ["total_requests", "successful_requests", "failed_requests"]
                .map(|key| body["total"][key].as_u64().expect("a count"));
            let days: BTreeMap<String, u64> = body["days"]
                .as_array()
                .expect("days")
                .iter()
                .map(|day| {
                    (
                        day["date"].as_str().expect("date").to_string(),
                        day["total_requests"].as_u64().expect("a count"),
                    )
                })
                .collect();
            (total, days)
        };
        let query = "from=2024-10-02&to=2024-10-15";
        let expected = sum(query);
        assert_eq!(
            expected.0[0],
            within(&requests, "2024-10-02", "2024-10-15").len() as u64 + 300
        );
        assert_eq!(fleet(query), expected, "{db:?}");
        // The whole fleet's statistics, computed from the raw requests.
        let all: Vec<Request> = requests.iter().chain(&late).cloned().collect();
        let body = ok_json(&api, &format!("/stats?{query}"));
        assert_stats(
            &body["total"],
            &within(&all, "2024-10-02", "2024-10-15"),
            &[],
            &format!("{db:?}"),
        );
        // As before the migration that added them: no fleet rows, marked as not built. The API
        // walks the customers' rows instead (another range: answers are remembered per range).
        db.execute("DELETE FROM fleet_days; INSERT INTO fleet_days_pending (id) VALUES (1)");
        let query = "from=2024-10-03&to=2024-10-15";
        assert_eq!(fleet(query), sum(query), "{db:?}: the walk");
    }
}
