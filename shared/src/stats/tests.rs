//! Unit tests of the day accumulators, stored stats and summaries.

use super::*;

fn stats(values: &[(bool, u64)]) -> DayStats {
    let mut acc = DayAccumulator::new();
    for &(ok, us) in values {
        acc.add(ok, us);
    }
    acc.finish()
}

#[test]
fn accumulates_exact_counts_and_sums() {
    let s = stats(&[(true, 100_000), (false, 300_000), (true, 200_000)]);
    assert_eq!((s.successful, s.failed, s.total()), (2, 1, 3));
    assert_eq!(s.latency_sum_us, 600_000);
    assert_eq!((s.latency_min_us, s.latency_max_us), (100_000, 300_000));
    let summary = s.summary();
    assert_eq!(summary.uptime, Some(200.0 / 3.0));
    assert_eq!(summary.average_latency, Some(0.2));
    assert_eq!(summary.median_latency, Some(0.2));
}

#[test]
fn merge_is_associative_and_commutative_on_exact_fields() {
    let a = stats(&[(true, 1_000), (false, 5_000)]);
    let b = stats(&[(true, 2_000)]);
    let c = stats(&[(false, 9_000), (true, 3_000)]);
    let mut ab_c = a.clone();
    ab_c.merge(&b);
    ab_c.merge(&c);
    let mut c_ba = c.clone();
    c_ba.merge(&b);
    c_ba.merge(&a);
    let all = DayStats::merge_all([&a, &b, &c]);
    for s in [&ab_c, &c_ba, &all] {
        assert_eq!((s.successful, s.failed, s.latency_sum_us), (3, 2, 20_000));
        assert_eq!((s.latency_min_us, s.latency_max_us), (1_000, 9_000));
        assert_eq!(s.latencies.count(), 5);
        assert_eq!(s.summary().median_latency, Some(0.003));
    }
    assert_eq!(ab_c.summary(), c_ba.summary());
}

#[test]
fn accumulator_merge_does_not_depend_on_the_split() {
    let values: Vec<(bool, u64)> = (0..2000u64)
        .map(|i| (i % 3 != 0, (i * 7919) % 1901 * 1000))
        .collect();
    let mut whole = DayAccumulator::new();
    values.iter().for_each(|&(ok, us)| whole.add(ok, us));
    let mut left = DayAccumulator::new();
    let mut right = DayAccumulator::new();
    for (i, &(ok, us)) in values.iter().enumerate() {
        if i % 2 == 0 {
            left.add(ok, us)
        } else {
            right.add(ok, us)
        }
    }
    right.normalize();
    left.merge(&right);
    whole.normalize();
    assert_eq!(left, whole);
    assert_eq!(left.total(), 2000);
    assert_eq!(left.finish(), whole.finish());
}

/// Latencies of 2^32 µs (71 minutes) and more are kept apart, and still counted in order.
#[test]
fn long_latencies_keep_their_place() {
    let long = u64::from(u32::MAX) + 1;
    let values = [
        (true, 5_000),
        (false, long + 7),
        (true, u64::from(u32::MAX)),
        (true, long),
        (false, 1_000),
        (true, long),
    ];
    let mut whole = DayAccumulator::new();
    let mut left = DayAccumulator::new();
    let mut right = DayAccumulator::new();
    for (i, &(ok, us)) in values.iter().enumerate() {
        whole.add(ok, us);
        if i < 3 {
            left.add(ok, us)
        } else {
            right.add(ok, us)
        }
    }
    left.normalize();
    right.normalize();
    left.merge(&right);
    whole.normalize();
    assert_eq!(left, whole);
    let finished = whole.finish();
    assert_eq!(
        (finished.latency_min_us, finished.latency_max_us),
        (1_000, long + 7)
    );
    assert_eq!(finished.total(), 6);
    let histogram = [
        (1_000, 1),
        (5_000, 1),
        (u64::from(u32::MAX), 1),
        (long, 2),
        (long + 7, 1),
    ];
    assert_eq!(
        finished.latencies,
        Latencies::Exact(crate::latency::Histogram::from_entries(histogram.to_vec()))
    );
    // numpy: halfway between 4294.967295 s and 4294.967296 s.
    assert_eq!(finished.summary().median_latency, Some(4_294.967_296));
}

/// An accumulator's counts and short latencies added to another as counted requests: the same
/// as merging it; an accumulator with a latency of 2^32 µs or more gives no short list.
#[test]
fn counted_requests_add_as_the_accumulator_merges() {
    let mut part = DayAccumulator::new();
    for (ok, us) in [(true, 9_000), (false, 1_000), (true, 9_000)] {
        part.add(ok, us);
    }
    let mut merged = DayAccumulator::new();
    merged.add(false, 5_000);
    let mut counted = merged.clone();
    merged.normalize();
    merged.merge(&part);
    let (successful, failed) = part.counts();
    assert_eq!((successful, failed), (2, 1));
    let short = part.short_latencies().expect("short latencies").to_vec();
    assert_eq!(short, [1_000, 9_000, 9_000]);
    counted.add_counted(successful, failed, &short);
    counted.normalize();
    assert_eq!(counted, merged);
    assert_eq!(counted.finish(), merged.finish());
    let mut long = DayAccumulator::new();
    long.add(true, u64::from(u32::MAX) + 1);
    assert_eq!(long.short_latencies(), None);
}
#[test]
fn radix_sort_sorts() {
    let mut next = crate::xorshift(0x1234_5678_9ABC_DEF1);
    for len in [0, 1, 5, 256, 257, 1000, 5000] {
        for spread in [1u64, 1000, 2_000_000, 1 << 32] {
            let values: Vec<u32> = (0..len).map(|_| (next() % spread) as u32).collect();
            let mut expect = values.clone();
            expect.sort_unstable();
            let mut sorted = values;
            radix_sort(&mut sorted);
            assert_eq!(sorted, expect, "len {len} spread {spread}");
        }
    }
}

#[test]
fn empty_stats_have_null_ratios() {
    let summary = DayStats::merge_all(std::iter::empty::<&DayStats>()).summary();
    assert_eq!(summary.total_requests, 0);
    assert_eq!(summary.uptime, None);
    assert_eq!(summary.average_latency, None);
    assert_eq!(summary.median_latency, None);
    assert_eq!(summary.p99_latency, None);
    let mut empty = DayStats::empty();
    empty.merge(&stats(&[(true, 7_000)]));
    assert_eq!(empty.latency_min_us, 7_000);
}
