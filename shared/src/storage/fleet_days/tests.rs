use std::collections::BTreeMap;

use super::*;
use crate::storage::{day_from_date, EpochCommit, StoreOptions};
use crate::testing::{backends, numpy_percentile, TestDatabase};
use crate::DayAccumulator;

/// One request: (customer, day, success, latency in µs).
type Line = (&'static str, NaiveDate, bool, u64);

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 10, d).expect("date")
}

/// Requests of customers a, b, c over 2024-10-10 and 10-11: `n` lines per (customer, day) with
/// latencies from a fixed pattern, a failure every fifth line.
fn lines(spec: &[(&'static str, u32, u64, u64)]) -> Vec<Line> {
    let mut lines = Vec::new();
    for &(customer, d, n, base_ms) in spec {
        for i in 0..n {
            lines.push((
                customer,
                day(d),
                i % 5 != 4,
                (base_ms + (i * 37) % 101) * 1000,
            ));
        }
    }
    lines
}

/// Commits `lines` as one epoch.
fn commit(store: &Store, lines: &[Line]) {
    let mut accumulators: BTreeMap<(&str, NaiveDate), DayAccumulator> = BTreeMap::new();
    for &(customer, day, ok, us) in lines {
        accumulators.entry((customer, day)).or_default().add(ok, us);
    }
    let epoch = EpochCommit {
        deltas: accumulators
            .into_iter()
            .map(|((customer, day), acc)| (customer.to_string(), day_from_date(day), acc.finish()))
            .collect(),
        ..EpochCommit::default()
    };
    store.commit_epoch(&epoch).expect("commit");
}

/// The first commit, and a second one with late lines into both stored days (customer a's
/// and b's) and a new customer d on the first.
fn first_and_late() -> (Vec<Line>, Vec<Line>) {
    let first = lines(&[
        ("a", 10, 40, 100),
        ("b", 10, 25, 300),
        ("a", 11, 30, 50),
        ("c", 11, 12, 900),
    ]);
    let late = lines(&[("a", 10, 7, 120), ("d", 10, 9, 2000), ("b", 11, 11, 400)]);
    (first, late)
}

const EXTRA: [f64; 4] = [0.0, 90.0, 99.9, 100.0];

/// Checks the stored fleet rows against `lines` (every request ever committed), computed here
/// from the raw requests: counts, sum, min, max and numpy's percentiles; and against the merge
/// of the customers' stored rows of each day.
fn assert_fleet_rows(
    db: &TestDatabase,
    store: &Store,
    lines: &[Line],
    expected_days: &[(NaiveDate, u64, u64)],
) {
    let fleet = store
        .fleet_days(day(1), day(31))
        .expect("read")
        .unwrap_or_else(|| panic!("{db:?}: fleet rows pending"));
    let got: Vec<(NaiveDate, u64, u64)> = fleet
        .iter()
        .map(|(d, s)| (*d, s.successful, s.failed))
        .collect();
    assert_eq!(got, expected_days, "{db:?}");
    let stored = store.all_days().expect("read");
    for (d, stats) in &fleet {
        let of_day: Vec<&Line> = lines.iter().filter(|l| l.1 == *d).collect();
        let sum: u128 = of_day.iter().map(|l| u128::from(l.3)).sum();
        assert_eq!(stats.latency_sum_us, sum, "{db:?} {d}");
        assert_eq!(
            stats.latency_min_us,
            of_day.iter().map(|l| l.3).min().expect("lines"),
            "{db:?} {d}"
        );
        assert_eq!(
            stats.latency_max_us,
            of_day.iter().map(|l| l.3).max().expect("lines"),
            "{db:?} {d}"
        );
        let seconds: Vec<f64> = of_day.iter().map(|l| l.3 as f64 / 1e6).collect();
        let mut ps = vec![50.0, 99.0];
        ps.extend(EXTRA);
        let expected: Vec<Option<f64>> =
            ps.iter().map(|&p| numpy_percentile(&seconds, p)).collect();
        assert_eq!(stats.latencies.percentiles(&ps), expected, "{db:?} {d}");
        // The merge of the customers' rows of the day, as the API's walk computes it.
        let rows: Vec<DayStats> = stored
            .iter()
            .filter(|(_, row_day, _)| row_day == d)
            .map(|(_, _, s)| s.clone())
            .collect();
        let walked = DayStats::merge_all(&rows);
        assert_eq!(
            (walked.successful, walked.failed, walked.latency_sum_us),
            (stats.successful, stats.failed, stats.latency_sum_us),
            "{db:?} {d}"
        );
        assert_eq!(walked.latencies.percentiles(&ps), expected, "{db:?} {d}");
    }
}

/// Counts by day, worked out by hand: 40 + 25 + 7 + 9 lines on the 10th, a fifth of each
/// customer's lines (rounded down) failed; 30 + 12 + 11 on the 11th.
const AFTER_BOTH: [(u32, u64, u64); 2] = [
    (10, 32 + 20 + 6 + 8, 8 + 5 + 1 + 1),
    (11, 24 + 10 + 9, 6 + 2 + 2),
];

fn after_both() -> Vec<(NaiveDate, u64, u64)> {
    AFTER_BOTH
        .iter()
        .map(|&(d, ok, failed)| (day(d), ok, failed))
        .collect()
}

#[test]
fn a_commit_merges_its_deltas_into_the_fleet_rows_of_their_days() {
    for db in backends() {
        let store = db.connect();
        assert_eq!(
            store
                .fleet_days(day(1), day(31))
                .expect("read")
                .map(|d| d.len()),
            Some(0)
        );
        let (first, late) = first_and_late();
        commit(&store, &first);
        assert_fleet_rows(
            &db,
            &store,
            &first,
            &[(day(10), 32 + 20, 8 + 5), (day(11), 24 + 10, 6 + 2)],
        );
        commit(&store, &late);
        let all: Vec<Line> = first.iter().chain(&late).copied().collect();
        assert_fleet_rows(&db, &store, &all, &after_both());
        // A range reads its days only.
        let one = store
            .fleet_days(day(11), day(11))
            .expect("read")
            .expect("built");
        assert_eq!(one.len(), 1, "{db:?}");
        assert_eq!(one[0].0, day(11));
    }
}

#[test]
fn fleet_rows_missing_before_the_migration_are_built_once_on_connect() {
    for db in backends() {
        let store = db.connect();
        let (first, late) = first_and_late();
        commit(&store, &first);
        commit(&store, &late);
        // As before the migration: a day without its fleet row, another with a wrong one, and
        // the marker set.
        db.execute(
            "DELETE FROM fleet_days WHERE day = '2024-10-10'; \
             UPDATE fleet_days SET successful = 999; \
             INSERT INTO fleet_days_pending (id) VALUES (1)",
        );
        assert!(
            store.fleet_days(day(1), day(31)).expect("read").is_none(),
            "{db:?}"
        );
        // A process that may not write leaves them to another.
        let read_only = StoreOptions {
            apply_migrations: false,
            ..StoreOptions::default()
        };
        let reader = Store::connect(&db.url, &read_only).expect("open");
        assert!(
            reader.fleet_days(day(1), day(31)).expect("read").is_none(),
            "{db:?}"
        );
        let store = db.connect();
        let all: Vec<Line> = first.iter().chain(&late).copied().collect();
        assert_fleet_rows(&db, &store, &all, &after_both());
        assert!(reader.fleet_days(day(1), day(31)).expect("read").is_some());
        // Built once: the next start finds nothing to do, and commits go on from the rows built.
        assert!(
            !store.build_pending_fleet_days().expect("nothing to build"),
            "{db:?}"
        );
        let later = lines(&[("c", 10, 5, 10)]);
        commit(&db.connect(), &later);
        let all: Vec<Line> = all.iter().chain(&later).copied().collect();
        assert_fleet_rows(
            &db,
            &store,
            &all,
            &[
                (day(10), 32 + 20 + 6 + 8 + 4, 8 + 5 + 1 + 1 + 1),
                (day(11), 24 + 10 + 9, 6 + 2 + 2),
            ],
        );
    }
}
