//! The latencies of one (customer, day), or of any merge of such days: every value exactly while
//! they take at most [`EXACT_DISTINCT_VALUES`] distinct values, a t-digest past that.
//!
//! Exact latencies are a histogram of microsecond values, held in the compact form it is stored
//! in: the values' greatest common divisor (`unit`: 1000 for millisecond logs), then per distinct
//! value the step from the previous one in units and its count, as LEB128 varints (a count of
//! one folded into the step's lowest bit). Millisecond logs take about 1.2 bytes per distinct
//! value. Merging histograms is exact, associative and commutative, so a day merged from epochs,
//! restarts and late lines equals one pass over its lines, and any range of days gives numpy's
//! percentiles to the microsecond.
//!
//! This file holds [`Latencies`] and its stored form; `histogram.rs` the exact [`Histogram`],
//! `unpacked.rs` the API's [`UnpackedHistogram`], `steps.rs` the varints of the steps, and
//! `percentile.rs` numpy's percentile over histogram entries.

use crate::digest::LatencyDigest;

mod histogram;
mod percentile;
mod steps;
#[cfg(test)]
mod tests;
mod unpacked;

use histogram::StepEncoder;
pub use histogram::{Histogram, HistogramIter, HistogramRef};
pub use percentile::{exact_percentiles, round_to_micros};
pub use unpacked::UnpackedHistogram;

/// Most distinct latency values a summary holds exactly; past this it becomes a t-digest.
pub const EXACT_DISTINCT_VALUES: usize = 4096;

/// First byte of an encoded exact histogram. Byte 1 starts a t-digest (see [`LatencyDigest`]).
const EXACT_TAG: u8 = 2;

/// A histogram's steps: the first [`INLINE_STEP_BYTES`] inline, in the 16 bytes a `Vec`'s
/// pointer and length take. Most (customer, day) cells of a fleet hold a few requests, whose
/// steps fit; each list allocated made for an allocation and a free on another thread a cell.
pub(super) type Steps = smallvec::SmallVec<[u8; INLINE_STEP_BYTES]>;

/// Bytes of steps a histogram holds without allocating.
const INLINE_STEP_BYTES: usize = 16;

/// Spans (in units) up to this are merged in a dense array of counts; wider ones by sorting.
const DENSE_SPAN: u64 = 1 << 16;

/// A day's (or a range's) latencies: exact while small, estimated past that.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Latencies {
    /// Every latency, as a histogram of microsecond values.
    Exact(Histogram),
    /// A t-digest: more than [`EXACT_DISTINCT_VALUES`] distinct values, or written by a version
    /// of logstats that kept only digests.
    Estimated(LatencyDigest),
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::Exact(Histogram::default())
    }
}

/// A stored latency summary that could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LatenciesDecodeError {
    /// The digest form is damaged.
    #[error(transparent)]
    Digest(#[from] crate::digest::DigestDecodeError),
    /// The histogram form is damaged.
    #[error("latency histogram is corrupt: {0}")]
    Histogram(&'static str),
    /// The first byte names no known form.
    #[error("latency summary has unknown form {0}")]
    Form(u8),
    /// Nothing was stored.
    #[error("latency summary is empty")]
    Empty,
}

impl Latencies {
    /// The latencies of an ascending sequence of microsecond values.
    pub fn from_ascending<I>(ascending: I) -> Self
    where
        I: IntoIterator<Item = u64>,
        I::IntoIter: Clone,
    {
        let values = ascending.into_iter();
        // First pass: distinct values and their common divisor (one remainder per distinct
        // value in the usual case, where the first values set the unit).
        let (mut distinct, mut unit) = (0usize, 0u64);
        let mut previous = None;
        for value in values.clone() {
            if previous != Some(value) {
                distinct += 1;
                previous = Some(value);
                if unit == 0 || value % unit != 0 {
                    unit = gcd(unit, value);
                }
            }
        }
        if distinct > EXACT_DISTINCT_VALUES {
            return Latencies::Estimated(LatencyDigest::from_histogram(&crate::digest::histogram(
                values,
            )));
        }
        // Second pass: the steps, written as the values go by.
        let unit = unit.max(1);
        let mut encoder = StepEncoder::new(distinct);
        let mut current: Option<(u64, u64)> = None;
        for value in values {
            match &mut current {
                Some((v, n)) if *v == value => *n += 1,
                _ => {
                    if let Some((v, n)) = current {
                        encoder.push(v / unit, n);
                    }
                    current = Some((value, 1));
                }
            }
        }
        if let Some((v, n)) = current {
            encoder.push(v / unit, n);
        }
        Latencies::Exact(encoder.finish(unit))
    }

    /// Whether every latency is kept (percentiles are exact).
    pub fn is_exact(&self) -> bool {
        matches!(self, Latencies::Exact(_))
    }

    /// Number of latencies summarised.
    pub fn count(&self) -> u64 {
        match self {
            Latencies::Exact(histogram) => histogram.count,
            Latencies::Estimated(digest) => digest.count() as u64,
        }
    }

    /// Adds `other` into `self`: exactly while the result has at most [`EXACT_DISTINCT_VALUES`]
    /// distinct values.
    pub fn merge(&mut self, other: &Latencies) {
        *self = match (&*self, other) {
            (Latencies::Exact(a), Latencies::Exact(b)) => {
                if b.count == 0 {
                    return;
                }
                if a.count == 0 {
                    other.clone()
                } else {
                    let merged = a.merged_histogram(b);
                    if merged.distinct as usize <= EXACT_DISTINCT_VALUES {
                        Latencies::Exact(merged)
                    } else {
                        let entries: Vec<(u64, u64)> = merged.iter().collect();
                        Latencies::Estimated(LatencyDigest::from_histogram(&entries))
                    }
                }
            }
            _ => Self::merge_all([&*self, other]),
        };
    }

    /// Merges any number of summaries: exact when every part is and the result is small enough;
    /// otherwise every exact value goes into one digest, merged once with the estimated parts.
    pub fn merge_all<'a>(parts: impl IntoIterator<Item = &'a Latencies>) -> Self {
        let mut exact: Vec<&Histogram> = Vec::new();
        let mut estimated: Vec<&LatencyDigest> = Vec::new();
        for part in parts {
            match part {
                Latencies::Exact(histogram) if histogram.count > 0 => exact.push(histogram),
                Latencies::Exact(_) => {}
                Latencies::Estimated(digest) => estimated.push(digest),
            }
        }
        let entries = Histogram::merge_entries(&exact);
        if estimated.is_empty() {
            return Self::from_merged(entries);
        }
        let digest = LatencyDigest::from_histogram(&entries);
        estimated.push(&digest);
        Latencies::Estimated(LatencyDigest::merge_all(estimated))
    }

    /// An exact histogram of `entries` when small enough, else their digest.
    fn from_merged(entries: Vec<(u64, u64)>) -> Self {
        if entries.len() <= EXACT_DISTINCT_VALUES {
            Latencies::Exact(Histogram::from_entries(entries))
        } else {
            Latencies::Estimated(LatencyDigest::from_histogram(&entries))
        }
    }

    /// The latencies at percentiles `ps` (0-100), in seconds rounded to the microsecond: numpy's
    /// default (linear) percentile when exact, the digest's estimate otherwise. `None` when empty.
    pub fn percentiles(&self, ps: &[f64]) -> Vec<Option<f64>> {
        match self {
            Latencies::Exact(histogram) => exact_percentiles(histogram.iter(), histogram.count, ps),
            Latencies::Estimated(digest) => {
                let qs: Vec<f64> = ps.iter().map(|p| p / 100.0).collect();
                digest
                    .quantiles(&qs)
                    .into_iter()
                    .map(|q| q.map(round_to_micros))
                    .collect()
            }
        }
    }

    /// The percentiles `ps` of the merge of `parts`, without building the merged summary when
    /// every part is exact: their counts are added in `scratch` (a dense array over the range's
    /// values, reused between calls) and read off once.
    pub fn merged_percentiles(
        parts: &[&Latencies],
        ps: &[f64],
        scratch: &mut Vec<u64>,
    ) -> Vec<Option<f64>> {
        let mut exact = Vec::with_capacity(parts.len());
        for part in parts {
            match part {
                Latencies::Exact(histogram) if histogram.count > 0 => exact.push(histogram),
                Latencies::Exact(_) => {}
                Latencies::Estimated(_) => {
                    return Self::merge_all(parts.iter().copied()).percentiles(ps)
                }
            }
        }
        match exact.as_slice() {
            [] => vec![None; ps.len()],
            [one] => exact_percentiles(one.iter(), one.count, ps),
            _ => Histogram::merged_percentiles(&exact, ps, scratch),
        }
    }

    /// The stored form: an exact histogram (first byte 2) or a t-digest (first byte 1).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Latencies::Exact(histogram) => histogram.encode(),
            Latencies::Estimated(digest) => digest.encode(),
        }
    }

    /// Appends what [`Latencies::encode`] returns to `out` (no list of its own for a histogram).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Latencies::Exact(histogram) => histogram.encode_into(out),
            Latencies::Estimated(digest) => out.extend_from_slice(&digest.encode()),
        }
    }

    /// Decodes what [`Latencies::encode`] wrote, and the digests of earlier versions.
    pub fn decode(bytes: &[u8]) -> Result<Self, LatenciesDecodeError> {
        match bytes.first() {
            Some(&EXACT_TAG) => Ok(Latencies::Exact(Histogram::decode(bytes)?)),
            Some(&crate::digest::CODEC_VERSION) => {
                Ok(Latencies::Estimated(LatencyDigest::decode(bytes)?))
            }
            Some(&other) => Err(LatenciesDecodeError::Form(other)),
            None => Err(LatenciesDecodeError::Empty),
        }
    }

    /// Bytes this summary takes in memory, roughly (for memory budgets).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Latencies::Exact(histogram) if histogram.steps.spilled() => histogram.steps.capacity(),
            Latencies::Exact(_) => 0,
            Latencies::Estimated(digest) => digest.centroid_count() * 16 + 64,
        }
    }
}

/// The greatest common divisor of `a` and `b` (`gcd(0, b)` is `b`), by Stein's binary method:
/// shifts and subtractions instead of the Euclidean method's divisions (tens of cycles each),
/// since every row a commit makes finds its histogram's unit this way.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}
