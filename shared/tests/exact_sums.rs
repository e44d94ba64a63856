//! Counts and latency sums are exact or refused: a merged row whose latency
//! sum does not fit the database's signed 64 bits is an error, never a clamped or wrapped number.

use logstats_shared::storage::{date_from_day, EpochCommit};
use logstats_shared::testing::backends;
use logstats_shared::{DayAccumulator, DayStats, StorageError};

/// One day of `n` requests of `latency_us` each.
fn day_of(n: u64, latency_us: u64) -> DayStats {
    let mut acc = DayAccumulator::new();
    for _ in 0..n {
        acc.add(true, latency_us);
    }
    acc.finish()
}

fn commit(deltas: Vec<(String, i32, DayStats)>) -> EpochCommit {
    EpochCommit {
        deltas,
        ..EpochCommit::default()
    }
}

#[test]
fn a_latency_sum_past_63_bits_is_refused_not_clamped() {
    // 2^62 µs in one row: fits. Adding as much again (by a late delta) makes 2^63: refused.
    let mut half = day_of(1, 1_000);
    half.latency_sum_us = 1 << 62;
    for db in backends() {
        let store = db.connect();
        store
            .commit_epoch(&commit(vec![("c".into(), 20_006, half.clone())]))
            .expect("2^62 fits");
        let error = store
            .commit_epoch(&commit(vec![("c".into(), 20_006, half.clone())]))
            .expect_err("2^63 does not fit");
        assert!(
            matches!(error, StorageError::Unrepresentable { .. }),
            "{db:?}: {error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("c on 2024-10-10") && message.contains("9223372036854775808"),
            "{message}"
        );
        // Nothing of the refused commit is stored: the row still holds the first delta.
        let days = store.all_days().expect("rows");
        assert_eq!(days.len(), 1, "{db:?}");
        assert_eq!(days[0].2.latency_sum_us, 1 << 62, "{db:?}");
        assert_eq!(days[0].2.total(), 1, "{db:?}");
    }
}

#[test]
fn sums_of_many_stored_rows_are_exact_past_64_bits() {
    // Four rows near the column's limit: their sum needs 65 bits, and merges exactly.
    let mut big = day_of(1, 1_000);
    big.latency_sum_us = (1 << 63) - 1;
    for db in backends() {
        let store = db.connect();
        let deltas = (0..4)
            .map(|i| (format!("c{i}"), 20_006, big.clone()))
            .collect();
        // Each customer's row holds its sum; the day's fleet total cannot: the commit goes
        // through, and the fleet rows are set aside so that the fleet view adds the customers'
        // rows exactly instead.
        store.commit_epoch(&commit(deltas)).expect("commit");
        let day = date_from_day(20_006);
        assert_eq!(store.fleet_days(day, day).expect("read"), None, "{db:?}");
        store
            .commit_epoch(&commit(vec![("c9".into(), 20_007, day_of(1, 1_000))]))
            .expect("later commits go on");
        let days = store.all_days().expect("rows");
        let merged =
            DayStats::merge_all(days.iter().filter(|(_, d, _)| *d == day).map(|(_, _, s)| s));
        assert_eq!(merged.latency_sum_us, 4 * ((1u128 << 63) - 1), "{db:?}");
        // (2^63 - 1) µs a request on average, as near as a float of seconds holds it.
        let average = merged.summary().average_latency.expect("average");
        assert!(
            (average - 9_223_372_036_854.775).abs() < 0.01,
            "{db:?}: {average}"
        );
    }
}
