//! A prune while two replicas of the real binary serve, on every backend: every answer stays
//! whole while it runs, and the first answer of each replica after it holds no pruned day, the
//! customer, fleet and list views agreeing with the same oracle.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::support::stats::Request;
use crate::support::stats::{
    assert_stats, date, generated_requests, select, store_requests, within,
};
use crate::support::Api;
use logstats_shared::testing::backends;
use logstats_shared::Pruned;

const RANGE: &str = "from=2024-10-01&to=2024-10-31";

/// Asserts that every view of `api` answers exactly what `kept` holds.
fn assert_serves(api: &Api, kept: &[Request], context: &str) {
    let customers: BTreeSet<&str> = kept.iter().map(|r| r.customer.as_str()).collect();
    for customer in ["cust_1", "cust_2", "cust_3"] {
        let response = api.get(&format!("/customers/{customer}/stats?{RANGE}"));
        if !customers.contains(customer) {
            // Every day of it pruned: as unknown as a customer never seen.
            assert_eq!(
                response.status,
                404,
                "{context} {customer}: {}",
                response.text()
            );
            continue;
        }
        assert_eq!(response.status, 200, "{context} {customer}");
        let body = response.json();
        let expected = select(kept, customer, "2024-10-01", "2024-10-31");
        assert_stats(
            &body["total"],
            &expected,
            &[],
            &format!("{context} {customer}"),
        );
        let days: Vec<String> = body["days"]
            .as_array()
            .expect("days")
            .iter()
            .map(|d| d["date"].as_str().unwrap_or("?").to_string())
            .collect();
        let expected_days: BTreeSet<String> = expected.iter().map(|r| r.day.to_string()).collect();
        assert_eq!(
            days,
            expected_days.into_iter().collect::<Vec<_>>(),
            "{context}"
        );
    }
    let (status, fleet) = api.get_json(&format!("/stats?{RANGE}"));
    assert_eq!(status, 200, "{context}");
    let all = within(kept, "2024-10-01", "2024-10-31");
    assert_stats(&fleet["total"], &all, &[], &format!("{context} fleet"));
    for day in fleet["days"].as_array().expect("days") {
        let date = day["date"].as_str().expect("a date");
        let expected = within(kept, date, date);
        assert!(!expected.is_empty(), "{context}: /stats serves {date}");
        let mut day = day.clone();
        day.as_object_mut().expect("an object").remove("date");
        assert_stats(&day, &expected, &[], &format!("{context} fleet {date}"));
    }
    let (status, list) = api.get_json(&format!("/customers?{RANGE}"));
    assert_eq!(status, 200, "{context}");
    assert_eq!(list["count"], customers.len(), "{context}: {list}");
    for entry in list["customers"].as_array().expect("customers") {
        let id = entry["customer_id"].as_str().expect("an id");
        let expected = select(kept, id, "2024-10-01", "2024-10-31");
        assert_stats(
            &entry["total"],
            &expected,
            &[],
            &format!("{context} list {id}"),
        );
    }
}

#[test]
fn a_prune_is_in_the_next_answer_of_every_replica() {
    for db in backends() {
        let mut requests = generated_requests();
        // A customer with one day only, which the prune removes whole.
        for i in 0..10 {
            requests.push(Request::new(
                "cust_3",
                date("2024-10-10"),
                i % 2 == 0,
                4_000,
            ));
        }
        let store = db.connect();
        store_requests(&store, &requests);
        let replicas = [Api::start(&db), Api::start(&db)];
        // Twice: every replica's row copy and remembered answers hold the days to prune.
        for (i, api) in replicas.iter().enumerate() {
            for round in 0..2 {
                assert_serves(
                    api,
                    &requests,
                    &format!("{db:?} replica {i} before ({round})"),
                );
            }
        }

        // Readers keep asking while the prune runs: every answer is whole (its days add up to
        // its total), whichever side of the prune it falls on.
        let stop = AtomicBool::new(false);
        let answered = AtomicU64::new(0);
        let pruned = std::thread::scope(|scope| {
            for api in &replicas {
                let (stop, answered) = (&stop, &answered);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let body = api.stats("cust_1", RANGE);
                        let days: u64 = body["days"]
                            .as_array()
                            .expect("days")
                            .iter()
                            .map(|d| d["total_requests"].as_u64().expect("a count"))
                            .sum();
                        assert_eq!(Some(days), body["total"]["total_requests"].as_u64());
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            let pruned = store.prune_before(date("2024-10-12")).expect("prune");
            std::thread::sleep(std::time::Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            pruned
        });
        assert!(answered.load(Ordering::Relaxed) > 0);
        // cust_1's 10-10 and 10-11, cust_2's and cust_3's 10-10; the fleet's 10-10 and 10-11.
        assert_eq!(
            pruned,
            Pruned {
                first_kept_day: date("2024-10-12"),
                customer_days: 4,
                fleet_days: 2,
                customers: 3,
            },
            "{db:?}"
        );
        let kept: Vec<Request> = requests
            .iter()
            .filter(|r| r.day >= date("2024-10-12"))
            .cloned()
            .collect();
        for (i, api) in replicas.iter().enumerate() {
            assert_serves(api, &kept, &format!("{db:?} replica {i} after"));
        }
        for api in replicas {
            let stderr = api.stop();
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}
