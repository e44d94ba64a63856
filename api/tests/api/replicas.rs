//! Several API replicas on one database: a commit made by another process is in
//! the very next answer of every replica, whichever replica a load balancer picks, for the
//! per-customer and the fleet endpoints alike, with every cache of every replica warm.

use crate::support::{seed, Api};
use chrono::NaiveDate;
use logstats_shared::storage::day_from_date;
use logstats_shared::testing::backends;
use logstats_shared::{DayAccumulator, EpochCommit};

#[test]
fn a_commit_is_in_the_next_answer_of_every_replica() {
    for db in backends() {
        seed(&db);
        let replicas = [Api::start(&db), Api::start(&db), Api::start(&db)];
        let customer = "/customers/cust_22/stats?from=2024-10-10&to=2024-10-13";
        let fleet = "/stats?from=2024-10-10&to=2024-10-13";
        let customers =
            "/customers?from=2024-10-10&to=2024-10-13&sort=total_requests&order=desc&limit=1";
        let totals = |api: &Api| {
            let one = api.get(customer);
            let all = api.get(fleet);
            let top = api.get(customers);
            assert_eq!(
                (one.status, all.status, top.status),
                (200, 200, 200),
                "{db:?}"
            );
            (
                one.json()["total"]["total_requests"].as_u64(),
                all.json()["total"]["total_requests"].as_u64(),
                top.json()["customers"][0]["total"]["total_requests"].as_u64(),
            )
        };
        // Seeded: 3 customers x 3 days x 40 requests. Ask twice, so that every replica's row
        // copy and remembered answers hold the old rows.
        for api in &replicas {
            for _ in 0..2 {
                assert_eq!(totals(api), (Some(120), Some(360), Some(120)), "{db:?}");
            }
        }
        let store = db.connect();
        let day = day_from_date(NaiveDate::from_ymd_opt(2024, 10, 11).expect("date"));
        let mut expected_customer = 120;
        let mut expected_fleet = 360;
        // Each round commits more requests for cust_22, then asks each replica in turn once:
        // the first request after the commit, on every replica, must see it.
        for round in 1..=4u64 {
            let mut delta = DayAccumulator::new();
            for i in 0..round {
                delta.add(true, (i + 1) * 3_000);
            }
            store
                .commit_epoch(&EpochCommit {
                    deltas: vec![("cust_22".to_string(), day, delta.finish())],
                    ..EpochCommit::default()
                })
                .expect("commit");
            expected_customer += round;
            expected_fleet += round;
            for (i, api) in replicas.iter().enumerate() {
                assert_eq!(
                    totals(api),
                    (
                        Some(expected_customer),
                        Some(expected_fleet),
                        Some(expected_customer)
                    ),
                    "{db:?}: replica {i}, round {round}"
                );
            }
        }
        for api in replicas {
            let stderr = api.stop();
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}
