//! The stats hot paths: building a day's stats, merging a 31-day range, the latency codec.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use logstats_shared::{DayAccumulator, DayStats, Latencies};
use std::time::Duration;

/// Seeded (success, latency in µs) pairs at millisecond resolution, 0.100-2.000 s.
fn requests(seed: u64, n: usize) -> Vec<(bool, u64)> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 7 < 2, (100 + state % 1901) * 1000)
        })
        .collect()
}

/// One day's stored stats, ~`n` requests.
fn day(seed: u64, n: usize) -> DayStats {
    let mut acc = DayAccumulator::new();
    for (ok, us) in requests(seed, n) {
        acc.add(ok, us);
    }
    acc.finish()
}

fn stats(c: &mut Criterion) {
    let mut group = c.benchmark_group("stats");

    // 200, and ~775: a (customer, day)'s latencies in one share of a 128 MiB epoch of the
    // benchmark log (sorted by radix above 256).
    for n in [200, 775] {
        let day_requests = requests(7, n);
        group.throughput(Throughput::Elements(day_requests.len() as u64));
        group.bench_function(format!("DayAccumulator add+finish, {n} latencies"), |b| {
            b.iter(|| {
                let mut acc = DayAccumulator::new();
                for &(ok, us) in black_box(&day_requests) {
                    acc.add(ok, us);
                }
                acc.finish()
            })
        });
    }

    // A 31-day range as the API reads it: ~650 requests a day (1M lines / 50 customers / 31 days).
    let month: Vec<DayStats> = (0..31).map(|d| day(1000 + d, 650)).collect();
    group.throughput(Throughput::Elements(month.len() as u64));
    group.bench_function("DayStats::merge_all, 31 days", |b| {
        b.iter(|| DayStats::merge_all(black_box(&month).iter()))
    });
    group.bench_function("DayStats::merge_all + summary, 31 days", |b| {
        b.iter(|| DayStats::merge_all(black_box(&month).iter()).summary())
    });
    // What the API does per request: the range's percentiles straight from the days.
    let latencies: Vec<&Latencies> = month.iter().map(|d| &d.latencies).collect();
    let mut scratch = Vec::new();
    group.bench_function("Latencies::merged_percentiles, 31 days", |b| {
        b.iter(|| Latencies::merged_percentiles(black_box(&latencies), &[50.0, 99.0], &mut scratch))
    });

    let summary = month[0].latencies.clone();
    let blob = summary.encode();
    group.throughput(Throughput::Bytes(blob.len() as u64));
    group.bench_function("Latencies encode", |b| {
        b.iter(|| black_box(&summary).encode())
    });
    group.bench_function("Latencies decode", |b| {
        b.iter_batched_ref(
            || blob.clone(),
            |blob| Latencies::decode(blob).expect("a valid blob"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = stats
}
criterion_main!(benches);
