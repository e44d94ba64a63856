//! Commits and answers (in-process), on every backend: a commit made by another process
//! (the ingest job's place, here the test's own store) is counted by the very next answer, asked
//! once or many times at once, though answers are remembered (`answers.rs`, `freshness.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::stats::{
    assert_days, assert_stats, date, generated_requests, select, store_requests, Request,
};
use crate::support::Api;
use chrono::NaiveDate;
use logstats_shared::storage::day_from_date;
use logstats_shared::testing::backends;
use logstats_shared::{DayAccumulator, EpochCommit, Store};

#[test]
fn a_commit_is_visible_on_the_next_request() {
    for db in backends() {
        let store = db.connect();
        let mut requests = generated_requests();
        store_requests(&store, &requests);
        let app = Api::spawn(&db);
        for query in ["from=2024-10-01&to=2024-10-31", "from=2024-10-01"] {
            // Asked twice, so the second answer may be a remembered one.
            for _ in 0..2 {
                let body = app.stats("cust_1", query);
                let all = select(&requests, "cust_1", "2024-10-01", "2024-10-31");
                assert_stats(&body["total"], &all, &[], &format!("{db:?} {query}"));
            }
        }
        // Late data for a stored day, and a new day: both must show at once.
        let late: Vec<Request> = (0..30)
            .map(|i| {
                Request::new(
                    "cust_1",
                    date("2024-10-11"),
                    i % 3 == 0,
                    1_500_000 + i * 1000,
                )
            })
            .chain((0..5).map(|i| Request::new("cust_1", date("2024-10-25"), true, 900_000 + i)))
            .collect();
        let mut accumulators: BTreeMap<NaiveDate, DayAccumulator> = BTreeMap::new();
        for request in &late {
            accumulators
                .entry(request.day)
                .or_default()
                .add(request.ok, request.us);
        }
        store
            .commit_epoch(&EpochCommit {
                deltas: accumulators
                    .into_iter()
                    .map(|(day, acc)| ("cust_1".to_string(), day_from_date(day), acc.finish()))
                    .collect(),
                ..EpochCommit::default()
            })
            .expect("commit late data");
        requests.extend(late);
        for query in ["from=2024-10-01&to=2024-10-31", "from=2024-10-01"] {
            let body = app.stats("cust_1", query);
            let all = select(&requests, "cust_1", "2024-10-01", "2024-10-31");
            assert_stats(
                &body["total"],
                &all,
                &[],
                &format!("{db:?} {query} after the commit"),
            );
            assert_days(
                &body,
                &requests,
                "cust_1",
                &[
                    "2024-10-10",
                    "2024-10-11",
                    "2024-10-13",
                    "2024-10-20",
                    "2024-10-25",
                ],
            );
        }
    }
}

/// Commits and requests in turn, each request asked twice (the second may be remembered): every
/// answer counts every commit made before it was asked, so no answer is ever stale.
#[test]
fn every_answer_counts_every_commit_made_before_it() {
    for db in backends() {
        let store = db.connect();
        let app = Api::spawn(&db);
        for i in 1..=40u64 {
            let mut acc = DayAccumulator::new();
            acc.add(i % 4 != 0, 1_000 * i);
            store
                .commit_epoch(&EpochCommit {
                    deltas: vec![(
                        "cust_7".to_string(),
                        day_from_date(date("2024-10-10")),
                        acc.finish(),
                    )],
                    ..EpochCommit::default()
                })
                .expect("commit");
            for ask in 0..2 {
                let body = app.stats("cust_7", "from=2024-10-10");
                assert_eq!(
                    body["total"]["total_requests"], i,
                    "{db:?}: commit {i}, ask {ask}"
                );
                assert_eq!(body["total"]["failed_requests"], i / 4, "{db:?}");
            }
        }
    }
}

/// Many askers at once, while commits land: misses of one key share one read (see
/// `answers.rs`), and still no answer misses a commit that finished before it was asked.
#[test]
fn concurrent_askers_never_miss_a_finished_commit() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let commit = |store: &Store, i: u64| {
        let mut acc = DayAccumulator::new();
        acc.add(true, 1_000 * i);
        store
            .commit_epoch(&EpochCommit {
                deltas: vec![(
                    "cust_8".to_string(),
                    day_from_date(date("2024-10-10")),
                    acc.finish(),
                )],
                ..EpochCommit::default()
            })
            .expect("commit");
    };
    for db in backends() {
        let store = db.connect();
        let app = Api::spawn(&db);
        commit(&store, 1);
        let committed = AtomicU64::new(1);
        let asked = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    while committed.load(Ordering::SeqCst) < 25 {
                        let before = committed.load(Ordering::SeqCst);
                        let body = app.stats("cust_8", "from=2024-10-10");
                        let total = body["total"]["total_requests"].as_u64().expect("total");
                        assert!(total >= before, "{db:?}: {total} after {before} commits");
                        assert!(total <= 25, "{db:?}: {total}");
                        asked.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            for i in 2..=25 {
                std::thread::sleep(Duration::from_millis(10));
                commit(&store, i);
                committed.store(i, Ordering::SeqCst);
            }
        });
        assert!(asked.load(Ordering::SeqCst) >= 8, "{db:?}: too few answers");
        let body = app.stats("cust_8", "from=2024-10-10");
        assert_eq!(body["total"]["total_requests"], 25, "{db:?}");
    }
}
