//! Measures the rank error of the t-digest fallback (what a day past
//! `EXACT_DISTINCT_VALUES` distinct latencies is stored as) and prints a Markdown table:
//! four distributions x n = 10, 1k, 100k, 10M, for one day of n values and for 31-day ranges of
//! n values in all (merged from 31 daily digests, as the API merges stored rows).
//!
//! `cargo run --release -p logstats-shared --example rank_error` (`make rank-error`).
//!
//! The rank error of an estimate v of quantile q over n sorted values is how far q lies outside
//! [count(< v), count(<= v)] / n: 0 when v is a value an exact method could give. Worst and
//! typical (median) are over the percentiles 50, 90, 99 and 99.9 and over 5 seeds.

use logstats_shared::latency::EXACT_DISTINCT_VALUES;
use logstats_shared::{Latencies, LatencyDigest};

const PERCENTILES: [f64; 4] = [50.0, 90.0, 99.0, 99.9];
const SEEDS: u64 = 5;
const DAYS: u64 = 31;

struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (a, b) = (self.unit(), self.unit());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    }
}

#[derive(Clone, Copy)]
enum Shape {
    /// Milliseconds, uniform in 0.1-2.0 s (the reference generator's shape).
    Uniform,
    /// Microseconds, lognormal around 200 ms.
    Lognormal,
    /// Microseconds, 80 % around 50 ms and 20 % around 1.5 s.
    Bimodal,
    /// Microseconds, Pareto (alpha 1.2) from 10 ms: a heavy tail.
    HeavyTail,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Uniform => "uniform, ms",
            Shape::Lognormal => "lognormal, µs",
            Shape::Bimodal => "bimodal, µs",
            Shape::HeavyTail => "heavy tail (Pareto 1.2), µs",
        }
    }

    fn sample_us(self, random: &mut Random) -> u64 {
        match self {
            Shape::Uniform => (100 + random.next() % 1901) * 1000,
            Shape::Lognormal => (200_000.0 * (0.8 * random.normal()).exp()) as u64,
            Shape::Bimodal => {
                let (mean, spread) = if random.next().is_multiple_of(5) {
                    (1_500_000.0, 200_000.0)
                } else {
                    (50_000.0, 8_000.0)
                };
                (mean + spread * random.normal()).max(0.0) as u64
            }
            Shape::HeavyTail => (10_000.0 / random.unit().powf(1.0 / 1.2)).min(1e12) as u64,
        }
    }
}

/// Rank error of `estimate` (seconds) for percentile `p` of ascending `sorted_us`.
fn rank_error(sorted_us: &[u64], p: f64, estimate: f64) -> f64 {
    let n = sorted_us.len() as f64;
    let q = p / 100.0;
    let estimate_us = estimate * 1e6;
    let below = sorted_us.partition_point(|&v| (v as f64) < estimate_us - 0.5) as f64 / n;
    let at_or_below = sorted_us.partition_point(|&v| (v as f64) <= estimate_us + 0.5) as f64 / n;
    if q < below {
        below - q
    } else if q > at_or_below {
        q - at_or_below
    } else {
        0.0
    }
}

/// Worst and median rank error (fractions of n) over the percentiles and seeds of the digests,
/// and whether the stored summaries would have been exact (no digest used) in every trial.
fn measure(shape: Shape, n: u64, days: u64) -> (f64, f64, bool) {
    let mut errors = Vec::new();
    let mut always_exact = true;
    for seed in 0..SEEDS {
        let mut random = Random(seed * 1_000_003 + n + days);
        let mut all = Vec::with_capacity(n as usize);
        let mut digests = Vec::new();
        let mut summaries = Vec::new();
        for day in 0..days {
            let count = n / days + u64::from(day < n % days);
            let mut values: Vec<u64> = (0..count).map(|_| shape.sample_us(&mut random)).collect();
            values.sort_unstable();
            digests.push(LatencyDigest::from_latencies_us(&mut values));
            summaries.push(Latencies::from_ascending(values.iter().copied()));
            all.extend_from_slice(&values);
        }
        all.sort_unstable();
        let digest = LatencyDigest::merge_all(&digests);
        // The API merges exact days exactly, however many distinct values their union has.
        let exact = summaries.iter().all(Latencies::is_exact);
        always_exact &= exact;
        let qs: Vec<f64> = PERCENTILES.iter().map(|p| p / 100.0).collect();
        for (p, estimate) in PERCENTILES.iter().zip(digest.quantiles(&qs)) {
            let estimate = estimate.unwrap_or(f64::NAN);
            errors.push(rank_error(&all, *p, estimate));
        }
    }
    errors.sort_by(f64::total_cmp);
    let worst = errors.last().copied().unwrap_or(0.0);
    let typical = errors[errors.len() / 2];
    (worst, typical, always_exact)
}

fn percent(fraction: f64) -> String {
    format!("{:.3} %", fraction * 100.0)
}

fn main() {
    println!(
        "t-digest fallback, {} centroids at most; exact histograms up to {} distinct values.",
        logstats_shared::digest::DIGEST_SIZE,
        EXACT_DISTINCT_VALUES
    );
    println!();
    println!(
        "| distribution | n | day: worst | day: typical | 31-day range: worst | 31-day range: typical | stored exactly |"
    );
    println!("|---|---|---|---|---|---|---|");
    for shape in [
        Shape::Uniform,
        Shape::Lognormal,
        Shape::Bimodal,
        Shape::HeavyTail,
    ] {
        for n in [10u64, 1_000, 100_000, 10_000_000] {
            let (day_worst, day_typical, day_exact) = measure(shape, n, 1);
            let (range_worst, range_typical, range_exact) = measure(shape, n, DAYS);
            let exact = match (day_exact, range_exact) {
                (true, true) => "day and range",
                (true, false) => "day only",
                (false, true) => "range only",
                (false, false) => "no",
            };
            println!(
                "| {} | {n} | {} | {} | {} | {} | {exact} |",
                shape.name(),
                percent(day_worst),
                percent(day_typical),
                percent(range_worst),
                percent(range_typical),
            );
        }
    }
}
