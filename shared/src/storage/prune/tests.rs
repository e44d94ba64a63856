use super::*;
use crate::stats::DayStats;
use crate::storage::{day_from_date, CommitOutcome, SourceOffset};
use crate::DayAccumulator;

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%F").expect("a date")
}

/// `requests` requests of `latency_us`, every third failed.
fn stats(requests: u64, latency_us: u64) -> DayStats {
    let mut acc = DayAccumulator::new();
    for i in 0..requests {
        acc.add(i % 3 != 0, latency_us + i * 1_000);
    }
    acc.finish()
}

fn epoch(rows: &[(&str, &str, u64)]) -> EpochCommit {
    EpochCommit {
        deltas: rows
            .iter()
            .map(|&(customer, day, requests)| {
                (
                    customer.to_string(),
                    day_from_date(date(day)),
                    stats(requests, 2_000),
                )
            })
            .collect(),
        ..EpochCommit::default()
    }
}

/// (customer, day, requests) of every stored row.
fn stored(store: &Store) -> Vec<(String, String, u64)> {
    store
        .all_days()
        .expect("read")
        .into_iter()
        .map(|(customer, day, stats)| (customer, day.to_string(), stats.total()))
        .collect()
}

/// (day, requests) of every fleet row.
fn fleet(store: &Store) -> Vec<(String, u64)> {
    store
        .fleet_days(date("2024-01-01"), date("2024-12-31"))
        .expect("read")
        .expect("fleet rows in use")
        .into_iter()
        .map(|(day, stats)| (day.to_string(), stats.total()))
        .collect()
}

fn owned(rows: &[(&str, &str, u64)]) -> Vec<(String, String, u64)> {
    rows.iter()
        .map(|&(c, d, n)| (c.to_string(), d.to_string(), n))
        .collect()
}

/// The days before the first kept day go, from the customers' rows and the fleet rows, in one
/// transaction that bumps the versions of the customers that had them; the horizon only moves
/// forward; a commit read before the prune stores none of its pruned days and says how many
/// requests it left out.
#[cfg(feature = "testing")]
#[test]
fn a_prune_removes_the_days_and_what_derives_from_them() {
    for db in crate::testing::backends() {
        let store = db.connect();
        assert_eq!(store.first_kept_day().expect("read"), None, "{db:?}");
        store
            .commit_epoch(&epoch(&[
                ("a", "2024-10-10", 4),
                ("a", "2024-10-11", 5),
                ("a", "2024-10-12", 6),
                ("b", "2024-10-10", 7),
                ("c", "2024-10-12", 8),
            ]))
            .expect("commit");
        let before = ["a", "b", "c"].map(|c| store.customer_version(c).expect("version"));
        assert_eq!(before, [1, 1, 1]);

        let pruned = store.prune_before(date("2024-10-11")).expect("prune");
        assert_eq!(
            pruned,
            Pruned {
                first_kept_day: date("2024-10-11"),
                customer_days: 2,
                fleet_days: 1,
                customers: 2,
            },
            "{db:?}"
        );
        assert_eq!(
            stored(&store),
            owned(&[
                ("a", "2024-10-11", 5),
                ("a", "2024-10-12", 6),
                ("c", "2024-10-12", 8)
            ]),
            "{db:?}"
        );
        assert_eq!(
            fleet(&store),
            [
                ("2024-10-11".to_string(), 5),
                ("2024-10-12".to_string(), 14)
            ],
            "{db:?}"
        );
        // a and b lost rows: a new version, above every other; c is untouched.
        let after = ["a", "b", "c"].map(|c| store.customer_version(c).expect("version"));
        assert_eq!(after, [2, 2, 1], "{db:?}");
        assert_eq!(store.versions_since(1).expect("read").len(), 2);
        assert_eq!(
            store.first_kept_day().expect("read"),
            Some(date("2024-10-11"))
        );

        // An earlier day removes nothing and leaves the horizon where it is.
        let again = store.prune_before(date("2024-10-01")).expect("prune");
        assert_eq!(
            (again.first_kept_day, again.customer_days),
            (date("2024-10-11"), 0)
        );
        assert_eq!(store.customer_version("a").expect("version"), 2);

        // An epoch read before the prune: its pruned days are left out, the rest goes in, and
        // its source still moves.
        let source = SourceOffset {
            source: "inode:1:2".to_string(),
            fingerprint: b"x".to_vec(),
            byte_offset: 100,
            line_count: 9,
        };
        let late = EpochCommit {
            sources: vec![source.clone()],
            ..epoch(&[
                ("b", "2024-10-10", 3),
                ("d", "2024-10-09", 2),
                ("b", "2024-10-12", 1),
            ])
        };
        assert_eq!(
            store.commit_epoch(&late).expect("commit"),
            CommitOutcome::WrittenExceptPruned { rows: 1, pruned: 5 },
            "{db:?}"
        );
        assert_eq!(
            stored(&store),
            owned(&[
                ("a", "2024-10-11", 5),
                ("a", "2024-10-12", 6),
                ("b", "2024-10-12", 1),
                ("c", "2024-10-12", 8),
            ]),
            "{db:?}"
        );
        assert_eq!(
            fleet(&store),
            [
                ("2024-10-11".to_string(), 5),
                ("2024-10-12".to_string(), 15)
            ]
        );
        assert_eq!(
            store.source_offset("inode:1:2").expect("read"),
            Some(source)
        );
        // No version is given to a customer none of whose days was stored.
        assert_eq!(store.customer_version("d").expect("version"), 0, "{db:?}");

        // While the fleet rows are pending, the customers' rows are scanned whatever they say.
        db.execute("INSERT INTO fleet_days_pending (id) VALUES (1); DELETE FROM fleet_days");
        let pending = store.prune_before(date("2024-10-12")).expect("prune");
        assert_eq!(
            (pending.customer_days, pending.fleet_days, pending.customers),
            (1, 0, 1),
            "{db:?}"
        );
        assert!(store.build_pending_fleet_days().expect("build"), "{db:?}");
        assert_eq!(fleet(&store), [("2024-10-12".to_string(), 15)], "{db:?}");

        // Pruning everything leaves empty tables and a customer list with versions only.
        let all = store.prune_before(date("2024-12-01")).expect("prune");
        assert_eq!(
            (all.customer_days, all.fleet_days, all.customers),
            (3, 1, 3),
            "{db:?}"
        );
        assert!(stored(&store).is_empty());
        assert!(fleet(&store).is_empty());
        assert!(!store.customer_exists("a").expect("read"));

        // Nothing left before a later day: the horizon moves without a scan, nothing else
        // changes.
        let sorted = |mut v: Vec<(String, i64)>| {
            v.sort();
            v
        };
        let versions = sorted(store.versions_since(0).expect("read"));
        let empty = store.prune_before(date("2024-12-05")).expect("prune");
        assert_eq!(
            (empty.first_kept_day, empty.customer_days, empty.customers),
            (date("2024-12-05"), 0, 0),
            "{db:?}"
        );
        assert_eq!(
            store.first_kept_day().expect("read"),
            Some(date("2024-12-05"))
        );
        assert_eq!(
            sorted(store.versions_since(0).expect("read")),
            versions,
            "{db:?}"
        );
    }
}
