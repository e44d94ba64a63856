//! Per (customer, UTC day) statistics: `DayStats`, how they merge, and the summary users see.

pub use crate::latency::round_to_micros;
use smallvec::SmallVec;

use crate::latency::Latencies;

/// Everything kept about one customer's requests on one UTC day (or any merge of such days).
///
/// Every field merges: counts and sums add, min and max combine, latency summaries merge. That is what lets
/// ingestion add late data to a stored row and the API merge any date range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct DayStats {
    /// Requests with status 100-399.
    pub successful: u64,
    /// Requests with status 400-599.
    pub failed: u64,
    /// Exact sum of latencies in microseconds (128 bits: sums of years of a whole fleet's
    /// requests stay exact; a stored row holds at most 2^63 - 1, see `storage`).
    pub latency_sum_us: u128,
    /// Smallest latency in microseconds (`u64::MAX` when empty).
    pub latency_min_us: u64,
    /// Largest latency in microseconds (0 when empty).
    pub latency_max_us: u64,
    /// The latencies: exact while they take few distinct values, else a t-digest.
    pub latencies: Latencies,
}

impl DayStats {
    /// Stats with no requests.
    pub fn empty() -> Self {
        Self {
            successful: 0,
            failed: 0,
            latency_sum_us: 0,
            latency_min_us: u64::MAX,
            latency_max_us: 0,
            latencies: Latencies::default(),
        }
    }

    /// Total requests.
    pub fn total(&self) -> u64 {
        self.successful + self.failed
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &DayStats) {
        self.successful += other.successful;
        self.failed += other.failed;
        self.latency_sum_us += other.latency_sum_us;
        self.latency_min_us = self.latency_min_us.min(other.latency_min_us);
        self.latency_max_us = self.latency_max_us.max(other.latency_max_us);
        self.latencies.merge(&other.latencies);
    }

    /// Merges any number of stats, exactly while the latencies allow.
    pub fn merge_all<'a>(parts: impl IntoIterator<Item = &'a DayStats> + Clone) -> DayStats {
        let mut total = DayStats::empty();
        for part in parts.clone() {
            total.successful += part.successful;
            total.failed += part.failed;
            total.latency_sum_us += part.latency_sum_us;
            total.latency_min_us = total.latency_min_us.min(part.latency_min_us);
            total.latency_max_us = total.latency_max_us.max(part.latency_max_us);
        }
        total.latencies = Latencies::merge_all(parts.into_iter().map(|p| &p.latencies));
        total
    }

    /// What the API reports for these stats.
    pub fn summary(&self) -> StatsSummary {
        let percentiles = self.latencies.percentiles(&SUMMARY_PERCENTILES);
        self.summary_with(percentiles[0], percentiles[1])
    }

    /// What the API reports, with the extra percentiles `extra` (`(key, p)`, p in 0-100) in
    /// `latency_percentiles`, computed like the median.
    pub fn summary_with_percentiles(&self, extra: &[(String, f64)]) -> StatsSummary {
        let mut ps = SUMMARY_PERCENTILES.to_vec();
        ps.extend(extra.iter().map(|&(_, p)| p));
        let values = self.latencies.percentiles(&ps);
        self.summary_with(values[0], values[1])
            .with_percentiles(extra, &values[SUMMARY_PERCENTILES.len()..])
    }

    /// What the API reports, given the median and p99 (computed elsewhere, e.g. over a range).
    pub fn summary_with(&self, median: Option<f64>, p99: Option<f64>) -> StatsSummary {
        let total = self.total();
        let (uptime, average_latency, median_latency, p99_latency) = if total == 0 {
            (None, None, None, None)
        } else {
            (
                Some(self.successful as f64 * 100.0 / total as f64),
                Some(round_to_micros(
                    self.latency_sum_us as f64 / total as f64 / 1e6,
                )),
                median,
                p99,
            )
        };
        StatsSummary {
            total_requests: total,
            successful_requests: self.successful,
            failed_requests: self.failed,
            uptime,
            average_latency,
            median_latency,
            p99_latency,
            latency_percentiles: None,
        }
    }
}

/// The percentiles every summary reports: the median and p99.
pub const SUMMARY_PERCENTILES: [f64; 2] = [50.0, 99.0];

impl Default for DayStats {
    fn default() -> Self {
        Self::empty()
    }
}

/// Exact per-day accumulator used while reading: counts, sums and every latency.
///
/// Merging accumulators is exact, associative and commutative, so an epoch's
/// stats do not depend on how its lines were split between workers. The summary is built once
/// per (customer, day, epoch) by [`DayAccumulator::finish`]. Latencies are kept as sorted lists:
/// 4 bytes per request below 2^32 µs (71 minutes), 8 bytes above, so per epoch memory is bounded
/// by the epoch's lines whatever their values.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize,
)]
pub struct DayAccumulator {
    successful: u64,
    failed: u64,
    latency_sum_us: u128,
    /// Latencies in microseconds below 2^32, ascending (after `normalize`); the first
    /// [`INLINE_LATENCIES`] inline: most (customer, day) cells of a worker's epoch hold a few
    /// requests, and allocating each cell's list (freed on another thread) took 15 % of the
    /// workers' time on a year of 10,000 customers.
    latencies_us: SmallVec<[u32; INLINE_LATENCIES]>,
    /// Longer latencies in microseconds, ascending (after `normalize`); rare.
    long_latencies_us: SmallVec<[u64; 1]>,
    /// Whether latencies were added since the last sort.
    unsorted: bool,
}

/// Latencies an accumulator holds without allocating: as many as fit the 16 bytes a `Vec`'s
/// pointer and length take (the accumulator is no larger).
const INLINE_LATENCIES: usize = 4;

impl DayAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request.
    #[inline]
    pub fn add(&mut self, success: bool, latency_us: u64) {
        if success {
            self.successful += 1;
        } else {
            self.failed += 1;
        }
        self.latency_sum_us += u128::from(latency_us);
        match u32::try_from(latency_us) {
            Ok(short) => self.latencies_us.push(short),
            Err(_) => self.long_latencies_us.push(latency_us),
        }
        self.unsorted = true;
    }

    /// Counts requests given as their counts and latencies (each below 2^32 µs, in any order):
    /// what [`DayAccumulator::short_latencies`] of another accumulator gave.
    pub fn add_counted(&mut self, successful: u64, failed: u64, latencies_us: &[u32]) {
        self.successful += successful;
        self.failed += failed;
        self.latency_sum_us += latencies_us.iter().map(|&us| u128::from(us)).sum::<u128>();
        self.latencies_us.extend_from_slice(latencies_us);
        self.unsorted = true;
    }

    /// Total requests counted.
    pub fn total(&self) -> u64 {
        self.successful + self.failed
    }

    /// Successful and failed requests counted.
    pub fn counts(&self) -> (u64, u64) {
        (self.successful, self.failed)
    }

    /// Every latency, ascending, when each is below 2^32 µs; else `None`.
    pub fn short_latencies(&mut self) -> Option<&[u32]> {
        self.normalize();
        self.long_latencies_us
            .is_empty()
            .then_some(self.latencies_us.as_slice())
    }

    /// Sorts the latencies (the canonical form, so equal accumulators compare equal).
    pub fn normalize(&mut self) {
        if self.unsorted {
            radix_sort(&mut self.latencies_us);
            self.long_latencies_us.sort_unstable();
            self.unsorted = false;
        }
    }

    /// Adds `other` into `self` exactly; the result is normalized.
    pub fn merge(&mut self, other: &DayAccumulator) {
        self.successful += other.successful;
        self.failed += other.failed;
        self.latency_sum_us += other.latency_sum_us;
        if self.unsorted || other.unsorted {
            self.latencies_us.extend_from_slice(&other.latencies_us);
            self.long_latencies_us
                .extend_from_slice(&other.long_latencies_us);
            self.unsorted = true;
            self.normalize();
        } else {
            self.latencies_us = merge_sorted(&self.latencies_us, &other.latencies_us);
            if !other.long_latencies_us.is_empty() {
                self.long_latencies_us =
                    merge_sorted(&self.long_latencies_us, &other.long_latencies_us);
            }
        }
    }

    /// Turns the accumulated requests into `DayStats`, summarising the latencies once.
    pub fn finish(mut self) -> DayStats {
        self.normalize();
        // Every long latency is above every short one: together they are one ascending list.
        let ascending = self
            .latencies_us
            .iter()
            .map(|&short| u64::from(short))
            .chain(self.long_latencies_us.iter().copied());
        DayStats {
            successful: self.successful,
            failed: self.failed,
            latency_sum_us: self.latency_sum_us,
            latency_min_us: ascending.clone().next().unwrap_or(u64::MAX),
            latency_max_us: ascending.clone().next_back().unwrap_or(0),
            latencies: Latencies::from_ascending(ascending),
        }
    }
}

/// Sorts `values` ascending: by byte, least significant first, skipping the bytes all values
/// share (the top byte of every latency under 16.7 s), without comparisons. Short lists (where
/// the 4 x 256 counters cost more than comparing) are sorted by comparison.
fn radix_sort(values: &mut [u32]) {
    if values.len() <= RADIX_SORT_FROM {
        values.sort_unstable();
        return;
    }
    let mut counts = [[0usize; 256]; 4];
    for &value in values.iter() {
        for (byte, count) in counts.iter_mut().enumerate() {
            count[(value >> (8 * byte)) as usize & 0xff] += 1;
        }
    }
    let mut scratch = vec![0u32; values.len()];
    // Each pass moves the values between `values` and `scratch`; `sorted_in_scratch` says
    // where they are.
    let mut sorted_in_scratch = false;
    for (byte, count) in counts.iter().enumerate() {
        if count.contains(&values.len()) {
            continue; // every value has the same byte here
        }
        let mut next = [0usize; 256];
        let mut at = 0;
        for (slot, &n) in next.iter_mut().zip(count) {
            *slot = at;
            at += n;
        }
        let (from, to): (&[u32], &mut [u32]) = match sorted_in_scratch {
            false => (&*values, &mut scratch[..]),
            true => (&scratch[..], &mut *values),
        };
        for &value in from {
            let slot = &mut next[(value >> (8 * byte)) as usize & 0xff];
            to[*slot] = value;
            *slot += 1;
        }
        sorted_in_scratch = !sorted_in_scratch;
    }
    if sorted_in_scratch {
        values.copy_from_slice(&scratch);
    }
}

/// Lists longer than this are radix sorted: an epoch's share holds ~775 latencies per
/// (customer, day) on the benchmark log, where radix sorting made the whole run ~4 % faster;
/// for 200 it was 7 % slower than `sort_unstable`.
const RADIX_SORT_FROM: usize = 256;

/// Merges two ascending lists.
fn merge_sorted<T: Copy + Ord, const N: usize>(a: &[T], b: &[T]) -> SmallVec<[T; N]> {
    let mut out = SmallVec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Requests, uptime and latencies as the API reports them; latencies in seconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsSummary {
    /// successful + failed.
    pub total_requests: u64,
    /// Requests with status 100-399.
    pub successful_requests: u64,
    /// Requests with status 400-599.
    pub failed_requests: u64,
    /// successful / total x 100, in percent; null without requests.
    #[cfg_attr(
        feature = "openapi",
        schema(required = true, minimum = 0, maximum = 100)
    )]
    pub uptime: Option<f64>,
    /// Exact mean latency in seconds, rounded to the microsecond; null without requests.
    #[cfg_attr(feature = "openapi", schema(required = true, minimum = 0))]
    pub average_latency: Option<f64>,
    /// Median latency in seconds: numpy's linear percentile when the latencies are exact; null
    /// without requests.
    #[cfg_attr(feature = "openapi", schema(required = true, minimum = 0))]
    pub median_latency: Option<f64>,
    /// 99th percentile latency in seconds, computed like the median; null without requests.
    #[cfg_attr(feature = "openapi", schema(required = true, minimum = 0))]
    pub p99_latency: Option<f64>,
    /// Only when `percentiles=` was asked for: each asked percentile (keyed as in the request,
    /// normalised: `99.90` is `99.9`) in seconds, computed like the median; null without
    /// requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<std::collections::BTreeMap<String, Option<f64>>>, example = json!({"90": 1.702, "99.9": 1.981}))
    )]
    pub latency_percentiles: Option<LatencyPercentiles>,
}

impl StatsSummary {
    /// This summary with `latency_percentiles` set: `values[i]` is the percentile `extra[i]`.
    /// Unchanged when nothing extra was asked for.
    pub fn with_percentiles(mut self, extra: &[(String, f64)], values: &[Option<f64>]) -> Self {
        if !extra.is_empty() {
            let values = extra
                .iter()
                .zip(values)
                .map(|((key, _), &value)| {
                    (
                        key.clone(),
                        if self.total_requests == 0 {
                            None
                        } else {
                            value
                        },
                    )
                })
                .collect();
            self.latency_percentiles = Some(LatencyPercentiles(values));
        }
        self
    }
}

/// Extra latency percentiles, as a JSON object in the order they were asked for.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(from = "std::collections::BTreeMap<String, Option<f64>>")]
pub struct LatencyPercentiles(pub Vec<(String, Option<f64>)>);

impl From<std::collections::BTreeMap<String, Option<f64>>> for LatencyPercentiles {
    fn from(map: std::collections::BTreeMap<String, Option<f64>>) -> Self {
        Self(map.into_iter().collect())
    }
}

impl serde::Serialize for LatencyPercentiles {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests;
