//! The latency t-digest kept per (customer, day), and its compact binary codec.
//!
//! `tdigest::TDigest` does the maths; `LatencyDigest` is the owned, totally ordered, serialisable
//! form that travels through the dataflow and is stored in the database.

use tdigest::{Centroid, TDigest};

/// Most centroids a stored digest keeps (the t-digest compression parameter).
pub const DIGEST_SIZE: usize = 100;

/// First byte of an encoded digest.
pub(crate) const CODEC_VERSION: u8 = 1;
const HEADER_BYTES: usize = 1 + 4 * 8 + 4;
const CENTROID_BYTES: usize = 16;

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

/// A stored digest that could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestDecodeError {
    /// The blob is shorter or longer than its header says.
    #[error("digest blob has {actual} bytes, expected {expected}")]
    Length {
        /// Bytes the header implies.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// Written by a codec version this build does not know.
    #[error("digest blob has unknown version {0}")]
    Version(u8),
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

    /// Merges several digests into one, compressing once.
    ///
    /// The result is bit for bit what `TDigest::merge_digests` (tdigest 1.0.1) gives, computed
    /// without building a `TDigest` per part, and sorting the centroids as integer keys instead
    /// of by float comparisons.
    pub fn merge_all<'a>(digests: impl IntoIterator<Item = &'a LatencyDigest>) -> Self {
        let parts: Vec<&LatencyDigest> = digests.into_iter().filter(|d| !d.is_empty()).collect();
        // The fast path covers what the codec and the ingest job produce; anything unusual (a
        // part tdigest would recompress or skip) takes tdigest's own path.
        let usual = |d: &&LatencyDigest| d.centroids.len() <= DIGEST_SIZE && d.count > 0.0;
        if parts.len() < 2 || !parts.iter().all(usual) {
            return Self::merge_with_tdigest(parts);
        }
        let (mut count, mut sum) = (0.0, 0.0);
        let (mut min, mut max) = (parts[0].min, parts[0].max);
        let key = |&(mean, weight): &(f64, f64)| {
            (u128::from(order_bits(mean)) << 64) | u128::from(order_bits(weight))
        };
        let mut keys: Vec<u128> = Vec::with_capacity(parts.iter().map(|d| d.centroids.len()).sum());
        for part in &parts {
            min = min.min(part.min);
            max = max.max(part.max);
            count += part.count;
            sum += part.sum;
        }
        if let [a, b] = parts[..] {
            // Two parts (a stored row and a delta): their centroids are each in order, so one
            // linear merge sorts them, unless a part is out of order.
            merge_sorted_keys(
                a.centroids.iter().map(key),
                b.centroids.iter().map(key),
                &mut keys,
            );
        } else {
            for part in &parts {
                keys.extend(part.centroids.iter().map(key));
            }
        }
        if !keys.is_sorted() {
            // Equal keys are equal bit patterns, so an unstable sort gives what a stable one does.
            keys.sort_unstable();
        }
        let centroids = keys.iter().map(|&key| {
            (
                from_order_bits((key >> 64) as u64),
                from_order_bits(key as u64),
            )
        });
        Self::compress(centroids, count, sum, min, max)
    }

    /// tdigest's compression of centroids sorted by (mean, weight), at least one.
    fn compress(
        mut centroids: impl Iterator<Item = (f64, f64)>,
        count: f64,
        sum: f64,
        min: f64,
        max: f64,
    ) -> Self {
        let Some(mut curr) = centroids.next() else {
            return Self::default();
        };
        let mut compressed: Vec<(f64, f64)> = Vec::with_capacity(DIGEST_SIZE);
        let mut k_limit = 1.0;
        let mut q_limit_times_count = weight_limit(k_limit, count);
        k_limit += 1.0;
        let mut weight_so_far = curr.1;
        for (mean, weight) in centroids {
            weight_so_far += weight;
            if weight_so_far <= q_limit_times_count {
                merge_centroid(&mut curr, mean, weight);
            } else {
                compressed.push(curr);
                q_limit_times_count = weight_limit(k_limit, count);
                k_limit += 1.0;
                curr = (mean, weight);
            }
        }
        compressed.push(curr);
        compressed.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.total_cmp(&b.1)));
        Self {
            centroids: compressed,
            count,
            sum,
            min,
            max,
        }
    }

    /// `merge_all` through tdigest itself.
    fn merge_with_tdigest(parts: Vec<&LatencyDigest>) -> Self {
        let mut parts: Vec<TDigest> = parts.into_iter().map(LatencyDigest::to_tdigest).collect();
        match parts.len() {
            0 => Self::default(),
            1 => Self::from_tdigest(&parts.remove(0)),
            _ => Self::from_tdigest(&TDigest::merge_digests(parts)),
        }
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

    /// Encodes as: version byte, count, sum, min, max (f64 LE), centroid count (u32 LE),
    /// then (mean, weight) pairs (f64 LE).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.centroids.len() * CENTROID_BYTES);
        out.push(CODEC_VERSION);
        for v in [self.count, self.sum, self.min, self.max] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.centroids.len() as u32).to_le_bytes());
        for &(mean, weight) in &self.centroids {
            out.extend_from_slice(&mean.to_le_bytes());
            out.extend_from_slice(&weight.to_le_bytes());
        }
        out
    }

    /// Decodes what [`LatencyDigest::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, DigestDecodeError> {
        if bytes.len() < HEADER_BYTES {
            return Err(DigestDecodeError::Length {
                expected: HEADER_BYTES,
                actual: bytes.len(),
            });
        }
        if bytes[0] != CODEC_VERSION {
            return Err(DigestDecodeError::Version(bytes[0]));
        }
        let f64_at = |at: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[at..at + 8]);
            f64::from_le_bytes(raw)
        };
        let mut raw_len = [0u8; 4];
        raw_len.copy_from_slice(&bytes[33..37]);
        let n = u32::from_le_bytes(raw_len) as usize;
        let expected = HEADER_BYTES + n * CENTROID_BYTES;
        if bytes.len() != expected {
            return Err(DigestDecodeError::Length {
                expected,
                actual: bytes.len(),
            });
        }
        let centroids = (0..n)
            .map(|i| {
                let at = HEADER_BYTES + i * CENTROID_BYTES;
                (f64_at(at), f64_at(at + 8))
            })
            .collect();
        Ok(Self {
            centroids,
            count: f64_at(1),
            sum: f64_at(9),
            min: f64_at(17),
            max: f64_at(25),
        })
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

/// `f64::total_cmp`'s order as an unsigned integer order.
fn order_bits(value: f64) -> u64 {
    let bits = value.to_bits();
    bits ^ ((((bits as i64) >> 63) as u64) >> 1) ^ (1 << 63)
}

/// The inverse of [`order_bits`].
fn from_order_bits(key: u64) -> f64 {
    let signed = key ^ (1 << 63);
    f64::from_bits(signed ^ ((((signed as i64) >> 63) as u64) >> 1))
}

/// Appends the merge of `a` and `b` to `out`: in order when both are.
fn merge_sorted_keys(
    mut a: impl Iterator<Item = u128>,
    mut b: impl Iterator<Item = u128>,
    out: &mut Vec<u128>,
) {
    let (mut x, mut y) = (a.next(), b.next());
    while let (Some(p), Some(q)) = (x, y) {
        if p <= q {
            out.push(p);
            x = a.next();
        } else {
            out.push(q);
            y = b.next();
        }
    }
    out.extend(x.into_iter().chain(a).chain(y).chain(b));
}

/// tdigest 1.0.1's `TDigest::weight_limit` for [`DIGEST_SIZE`].
fn weight_limit(k: f64, count: f64) -> f64 {
    let d = DIGEST_SIZE as f64;
    if k >= d {
        return f64::INFINITY;
    }
    let k_div_d = k / d;
    let q = if k_div_d >= 0.5 {
        let base = 1.0 - k_div_d;
        1.0 - 2.0 * base * base
    } else {
        2.0 * k_div_d * k_div_d
    };
    q * count
}

/// tdigest 1.0.1's `Centroid::merge`: folds (mean, weight) into `centroid`.
fn merge_centroid(centroid: &mut (f64, f64), mean: f64, weight: f64) {
    let new_weight = centroid.1 + weight;
    if centroid.0 == mean {
        centroid.1 = new_weight;
        return;
    }
    let added_fraction = weight / new_weight;
    let combined = centroid.0 * (1.0 - added_fraction) + mean * added_fraction;
    centroid.0 = if !combined.is_finite()
        || (combined < centroid.0 && combined < mean)
        || (combined > centroid.0 && combined > mean)
    {
        interpolate(centroid.0, mean, added_fraction)
    } else {
        combined
    };
    centroid.1 = new_weight;
}

/// tdigest 1.0.1's `interpolate`.
fn interpolate(left: f64, right: f64, fraction: f64) -> f64 {
    if left == right {
        left
    } else if left.is_sign_negative() == right.is_sign_negative() {
        left + (right - left) * fraction
    } else {
        left * (1.0 - fraction) + right * fraction
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_round_trips_exactly() {
        let mut values: Vec<u64> = (0..5000u64)
            .map(|i| (i * 7919) % 1901 * 1000 + 100_000)
            .collect();
        let digest = LatencyDigest::from_latencies_us(&mut values);
        assert!(digest.centroid_count() <= DIGEST_SIZE);
        let decoded = LatencyDigest::decode(&digest.encode()).unwrap();
        assert_eq!(decoded, digest);
        assert_eq!(decoded.count(), 5000.0);
        assert_eq!(decoded.quantile(0.5), digest.quantile(0.5));
    }

    #[test]
    fn decode_rejects_bad_blobs() {
        let blob = LatencyDigest::from_latencies_us(&mut [1_000, 2_000]).encode();
        assert!(matches!(
            LatencyDigest::decode(&blob[..blob.len() - 1]),
            Err(DigestDecodeError::Length { .. })
        ));
        let mut wrong_version = blob.clone();
        wrong_version[0] = 9;
        assert_eq!(
            LatencyDigest::decode(&wrong_version),
            Err(DigestDecodeError::Version(9))
        );
        assert!(LatencyDigest::decode(&[]).is_err());
    }

    #[test]
    fn merge_all_is_bit_identical_to_tdigest() {
        let mut next = crate::xorshift(0x2545_F491_4F6C_DD1D);
        for round in 0..200u64 {
            let parts: Vec<LatencyDigest> = (0..(1 + round % 40))
                .map(|part| {
                    let n = 1 + next() % (50 + round * 20);
                    let spread = 1 + next() % 2_000;
                    let mut values: Vec<u64> = (0..n)
                        .map(|_| {
                            // Millisecond and microsecond resolutions, and some repeats.
                            let v =
                                100_000 + (next() % spread) * if part % 2 == 0 { 1000 } else { 7 };
                            if next().is_multiple_of(5) {
                                250_000
                            } else {
                                v
                            }
                        })
                        .collect();
                    LatencyDigest::from_latencies_us(&mut values)
                })
                .collect();
            let mut with_empty: Vec<&LatencyDigest> = parts.iter().collect();
            let empty = LatencyDigest::default();
            with_empty.insert(0, &empty);
            let fast = LatencyDigest::merge_all(with_empty.iter().copied());
            let reference = LatencyDigest::merge_with_tdigest(parts.iter().collect());
            assert_eq!(fast, reference, "round {round}");
            assert_eq!(
                fast.quantiles(&[0.5, 0.99]),
                reference.quantiles(&[0.5, 0.99])
            );
            // Merging merged digests again, as ingestion does with late data.
            let again = [fast.clone(), parts[0].clone()];
            assert_eq!(
                LatencyDigest::merge_all(&again),
                LatencyDigest::merge_with_tdigest(again.iter().collect())
            );
        }
    }

    /// What `from_histogram` computed through tdigest before it compressed by itself.
    fn from_histogram_with_tdigest(histogram: &[(u64, u64)]) -> LatencyDigest {
        let (Some(&(first, _)), Some(&(last, _))) = (histogram.first(), histogram.last()) else {
            return LatencyDigest::default();
        };
        let (mut count, mut sum) = (0.0, 0.0);
        let centroids: Vec<Centroid> = histogram
            .iter()
            .map(|&(value_us, weight)| {
                let seconds = value_us as f64 / 1e6;
                count += weight as f64;
                sum += seconds * weight as f64;
                Centroid::new(seconds, weight as f64)
            })
            .collect();
        let digest = TDigest::new(
            centroids,
            sum,
            count,
            Some(last as f64 / 1e6),
            Some(first as f64 / 1e6),
            DIGEST_SIZE,
        );
        LatencyDigest::from_tdigest(&digest)
    }

    #[test]
    fn from_histogram_is_bit_identical_to_tdigest() {
        let mut next = crate::xorshift(0x9E37_79B9_7F4A_7C15);
        for round in 0..300u64 {
            let distinct = 1 + next() % (1 + round * 10);
            let step = if round % 3 == 0 { 7 } else { 1000 };
            let mut value = next() % 100_000;
            let histogram: Vec<(u64, u64)> = (0..distinct)
                .map(|_| {
                    value += step * (1 + next() % 3);
                    (value, 1 + next() % if round % 2 == 0 { 3 } else { 60 })
                })
                .collect();
            let fast = LatencyDigest::from_histogram(&histogram);
            assert_eq!(
                fast,
                from_histogram_with_tdigest(&histogram),
                "round {round}"
            );
            assert_eq!(
                fast.count(),
                histogram.iter().map(|h| h.1).sum::<u64>() as f64
            );
        }
    }

    #[test]
    fn order_bits_follow_total_cmp() {
        let values = [
            f64::NEG_INFINITY,
            -2.5,
            -1e-300,
            -0.0,
            0.0,
            1e-300,
            0.001,
            1.0,
            2.5,
            f64::INFINITY,
        ];
        for a in values {
            assert_eq!(from_order_bits(order_bits(a)).to_bits(), a.to_bits());
            for b in values {
                assert_eq!(
                    order_bits(a).cmp(&order_bits(b)),
                    a.total_cmp(&b),
                    "{a} {b}"
                );
            }
        }
    }

    #[test]
    fn small_inputs_are_exact() {
        let digest = LatencyDigest::from_latencies_us(&mut [3_000_000, 1_000_000, 2_000_000]);
        assert_eq!(digest.quantile(0.5), Some(2.0));
        assert_eq!(digest.count(), 3.0);
        assert_eq!(LatencyDigest::default().quantile(0.5), None);
    }

    #[test]
    fn merged_quantiles_stay_within_one_percent_in_rank() {
        // 30 "days" of latencies with different spreads, merged as the API merges them.
        let mut all = Vec::new();
        let mut days = Vec::new();
        let mut next = crate::xorshift(0x9E37_79B9_7F4A_7C15);
        for day in 0..30u64 {
            let mut values = Vec::new();
            for _ in 0..(500 + day * 37) {
                values.push(100_000 + (next() % (1_900 + day * 10)) * 1000);
            }
            all.extend_from_slice(&values);
            days.push(LatencyDigest::from_latencies_us(&mut values));
        }
        let merged = LatencyDigest::merge_all(&days);
        all.sort_unstable();
        let n = all.len() as f64;
        for q in [0.5, 0.99] {
            let estimate = merged.quantile(q).unwrap();
            let below = all.iter().filter(|&&v| (v as f64) / 1e6 < estimate).count() as f64;
            let at_or_below = all
                .iter()
                .filter(|&&v| (v as f64) / 1e6 <= estimate)
                .count() as f64;
            assert!(
                below / n <= q + 0.01 && at_or_below / n >= q - 0.01,
                "q={q}: estimate {estimate} has rank {}..{}",
                below / n,
                at_or_below / n
            );
        }
    }
}
