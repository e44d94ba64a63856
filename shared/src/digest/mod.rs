//! The latency t-digest kept per (customer, day), and its compact binary codec.
//!
//! `tdigest::TDigest` does the maths; `LatencyDigest` is the owned, totally ordered, serialisable
//! form that travels through the dataflow and is stored in the database.
//!
//! This file holds [`LatencyDigest`], building it and reading quantiles off it, and its total
//! order; `merge.rs` merges and compresses digests, `codec.rs` is the stored form, `tests.rs` the
//! unit tests.

use tdigest::{Centroid, TDigest};

mod codec;
mod merge;
#[cfg(test)]
mod tests;

pub use codec::DigestDecodeError;
pub(crate) use codec::CODEC_VERSION;

/// Most centroids a stored digest keeps (the t-digest compression parameter).
pub const DIGEST_SIZE: usize = 100;

/// A t-digest of latencies in seconds: centroids as (mean, weight) plus count, sum, min and max.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LatencyDigest {
    centroids: Vec<(f64, f64)>,
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
}

/// (value, count) of each distinct value of an ascending sequence, in order: what
/// [`LatencyDigest::from_histogram`] takes.
pub fn histogram(ascending: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut histogram: Vec<(u64, u64)> = Vec::new();
    for value in ascending {
        match histogram.last_mut() {
            Some((last, count)) if *last == value => *count += 1,
            _ => histogram.push((value, 1)),
        }
    }
    histogram
}

impl LatencyDigest {
    /// Builds a digest from latencies in microseconds; sorts `latencies_us` in place.
    pub fn from_latencies_us(latencies_us: &mut [u64]) -> Self {
        latencies_us.sort_unstable();
        Self::from_histogram(&histogram(latencies_us.iter().copied()))
    }

    /// Builds a digest from an ascending histogram of (latency in microseconds, count).
    ///
    /// Each distinct value becomes one weighted centroid before compression, so the
    /// millisecond resolution of typical logs makes this cheap, and exact up to
    /// [`DIGEST_SIZE`] distinct values.
    pub fn from_histogram(histogram: &[(u64, u64)]) -> Self {
        let (Some(&(first, _)), Some(&(last, _))) = (histogram.first(), histogram.last()) else {
            return Self::default();
        };
        let mut count = 0.0;
        let mut sum = 0.0;
        let centroids = histogram.iter().map(|&(value_us, weight)| {
            let seconds = value_us as f64 / 1e6;
            (seconds, weight as f64)
        });
        for (seconds, weight) in centroids.clone() {
            count += weight;
            sum += seconds * weight;
        }
        let (min, max) = (first as f64 / 1e6, last as f64 / 1e6);
        if histogram.len() <= DIGEST_SIZE {
            // What `TDigest::new` keeps as it is.
            return Self {
                centroids: centroids.collect(),
                count,
                sum,
                min,
                max,
            };
        }
        // What `TDigest::new` compresses through `merge_digests`: the centroids are already
        // in order, so they are compressed without sorting.
        Self::compress(centroids, count, sum, min, max)
    }

    fn from_tdigest(digest: &TDigest) -> Self {
        Self {
            centroids: digest
                .centroids()
                .iter()
                .map(|c| (c.mean(), c.weight()))
                .collect(),
            count: digest.count(),
            sum: digest.sum(),
            min: digest.min().unwrap_or(0.0),
            max: digest.max().unwrap_or(0.0),
        }
    }

    fn to_tdigest(&self) -> TDigest {
        if self.centroids.is_empty() {
            return TDigest::new_with_size(DIGEST_SIZE);
        }
        let centroids = self
            .centroids
            .iter()
            .map(|&(mean, weight)| Centroid::new(mean, weight))
            .collect();
        TDigest::new(
            centroids,
            self.sum,
            self.count,
            Some(self.max),
            Some(self.min),
            DIGEST_SIZE,
        )
    }

    /// Whether the digest holds no values.
    pub fn is_empty(&self) -> bool {
        self.centroids.is_empty()
    }

    /// Number of values summarised.
    pub fn count(&self) -> f64 {
        self.count
    }

    /// Number of centroids kept.
    pub fn centroid_count(&self) -> usize {
        self.centroids.len()
    }

    /// Estimated value at quantile `q` (0-1), in seconds; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        self.to_tdigest().estimate_quantile(q)
    }

    /// Estimated values at several quantiles, building the t-digest once.
    pub fn quantiles(&self, qs: &[f64]) -> Vec<Option<f64>> {
        if self.is_empty() {
            return vec![None; qs.len()];
        }
        let digest = self.to_tdigest();
        qs.iter().map(|&q| digest.estimate_quantile(q)).collect()
    }

    fn order_key(&self) -> (u64, u64, u64, u64, impl Iterator<Item = (u64, u64)> + '_) {
        (
            self.count.to_bits(),
            self.sum.to_bits(),
            self.min.to_bits(),
            self.max.to_bits(),
            self.centroids
                .iter()
                .map(|&(m, w)| (m.to_bits(), w.to_bits())),
        )
    }
}

// A total order on bit patterns: differential dataflow needs `Ord` on its difference type.
impl PartialEq for LatencyDigest {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for LatencyDigest {}

impl PartialOrd for LatencyDigest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LatencyDigest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a0, a1, a2, a3, a_rest) = self.order_key();
        let (b0, b1, b2, b3, b_rest) = other.order_key();
        (a0, a1, a2, a3)
            .cmp(&(b0, b1, b2, b3))
            .then_with(|| a_rest.cmp(b_rest))
    }
}
