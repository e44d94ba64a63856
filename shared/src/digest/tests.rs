//! Unit tests of the digest: the codec, merges and construction bit for bit as tdigest itself
//! computes them, the order bits, and the rank error of merged quantiles.

use super::merge::{from_order_bits, order_bits};
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
                        let v = 100_000 + (next() % spread) * if part % 2 == 0 { 1000 } else { 7 };
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
