//! Merging digests and compressing centroids: tdigest 1.0.1's `merge_digests` and compression,
//! reproduced bit for bit on [`LatencyDigest`]'s own centroids (sorted as integer keys), with
//! tdigest itself as the path for unusual parts.

use tdigest::TDigest;

use super::{LatencyDigest, DIGEST_SIZE};

impl LatencyDigest {
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
    pub(super) fn compress(
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
    pub(super) fn merge_with_tdigest(parts: Vec<&LatencyDigest>) -> Self {
        let mut parts: Vec<TDigest> = parts.into_iter().map(LatencyDigest::to_tdigest).collect();
        match parts.len() {
            0 => Self::default(),
            1 => Self::from_tdigest(&parts.remove(0)),
            _ => Self::from_tdigest(&TDigest::merge_digests(parts)),
        }
    }
}

/// `f64::total_cmp`'s order as an unsigned integer order.
pub(super) fn order_bits(value: f64) -> u64 {
    let bits = value.to_bits();
    bits ^ ((((bits as i64) >> 63) as u64) >> 1) ^ (1 << 63)
}

/// The inverse of [`order_bits`].
pub(super) fn from_order_bits(key: u64) -> f64 {
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
