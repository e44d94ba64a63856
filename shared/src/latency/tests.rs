//! Unit tests of the latencies: exact percentiles against numpy's on every split and merge, the
//! stored form and its damage, the switch to a t-digest past the limit, legacy digests.

use super::*;

/// numpy's linear percentile straight from unsorted seconds: the independent reference.
fn numpy_percentile(values_s: &[f64], p: f64) -> f64 {
    let mut x = values_s.to_vec();
    x.sort_by(f64::total_cmp);
    let h = (x.len() - 1) as f64 * (p / 100.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(x.len() - 1);
    let t = h - h.floor();
    let diff = x[hi] - x[lo];
    let v = if t >= 0.5 {
        x[hi] - diff * (1.0 - t)
    } else {
        x[lo] + diff * t
    };
    (v * 1e6).round() / 1e6
}

fn exact_of(values_us: &[u64]) -> Latencies {
    let mut sorted = values_us.to_vec();
    sorted.sort_unstable();
    Latencies::from_ascending(sorted)
}

const PS: [f64; 6] = [0.0, 25.0, 50.0, 90.0, 99.0, 100.0];

/// Selection over the entries of many days, unsorted and a value in several of them, gives
/// numpy's percentiles of the values they count: few and many entries, few and many distinct
/// values, counts above one, every percentile from 0 to 100, and entries already in order or
/// reversed (a pivot choice's worst case).
#[test]
fn selected_percentiles_equal_numpy_on_unsorted_entries() {
    let mut next = crate::xorshift(0x5E1E_C7ED_0000_0023);
    let ps: Vec<f64> = (0..=100).map(f64::from).chain([0.5, 99.9, 33.3]).collect();
    for round in 0..400u64 {
        let n = 1 + (next() % [3, 30, 300, 3000][round as usize % 4]) as usize;
        let distinct = 1 + next() % [1, 5, 100, 1_000_000][(round / 4) as usize % 4];
        let mut entries: Vec<(u64, u64)> = (0..n)
            .map(|_| {
                (
                    1000 + next() % distinct,
                    1 + next() % [1, 1, 3, 50][round as usize % 4],
                )
            })
            .collect();
        match round % 7 {
            0 => entries.sort_unstable(),
            1 => entries.sort_unstable_by(|a, b| b.cmp(a)),
            _ => {}
        }
        let seconds: Vec<f64> = entries
            .iter()
            .flat_map(|&(v, k)| std::iter::repeat_n(v as f64 / 1e6, k as usize))
            .collect();
        let count = seconds.len() as u64;
        let expect: Vec<Option<f64>> = ps
            .iter()
            .map(|&p| Some(numpy_percentile(&seconds, p)))
            .collect();
        let got = percentile::selected_percentiles(&mut entries, count, &ps);
        assert_eq!(got, expect, "round {round}: {n} entries");
    }
}

/// Values clustered far below a few outliers take a step per 512-fold narrowing of their span,
/// each in place: the answers are the sorted pass's.
#[test]
fn selected_percentiles_narrow_down_to_clustered_values() {
    let mut next = crate::xorshift(0xC1u64 << 40 | 0x5732);
    let mut entries: Vec<(u64, u64)> = (0..5000)
        .map(|_| (1_000 + next() % 100, 1 + next() % 3))
        .chain([(1 << 60, 1), (1 << 40, 2), (u64::MAX / 3, 1)])
        .collect();
    let count = entries.iter().map(|e| e.1).sum();
    let ps: Vec<f64> = (0..=100).map(f64::from).collect();
    let mut sorted = entries.clone();
    sorted.sort_unstable();
    let expect = exact_percentiles(sorted.into_iter(), count, &ps);
    assert_eq!(
        percentile::selected_percentiles(&mut entries, count, &ps),
        expect
    );
}

/// Counts that overstate the entries answer with the largest value, as the sorted pass does,
/// and no entries at all with zero; nothing panics.
#[test]
fn selected_percentiles_survive_counts_that_overstate_the_entries() {
    let entries = [(7u64, 1u64), (3, 2), (9, 1)];
    let mut unsorted = entries;
    let got = percentile::selected_percentiles(&mut unsorted, 10, &PS);
    let mut sorted = entries;
    sorted.sort_unstable();
    assert_eq!(got, exact_percentiles(sorted.into_iter(), 10, &PS));
    assert_eq!(got[5], Some(9e-6));
    assert_eq!(
        percentile::selected_percentiles(&mut [], 4, &[50.0]),
        vec![Some(0.0)]
    );
    assert_eq!(
        percentile::selected_percentiles(&mut [], 0, &[50.0]),
        vec![None]
    );
}

#[test]
fn exact_percentiles_equal_numpy_on_every_split() {
    let mut next = crate::xorshift(0x5EED_1234_ABCD_0001);
    for round in 0..300u64 {
        let n = 1 + next() % 3000;
        let resolution = [1000, 1, 7, 250_000][round as usize % 4];
        let values: Vec<u64> = (0..n)
            .map(|_| (next() % 2000) * resolution + if round % 5 == 0 { 0 } else { 100_000 })
            .collect();
        let seconds: Vec<f64> = values.iter().map(|&v| v as f64 / 1e6).collect();
        let expect: Vec<Option<f64>> = PS
            .iter()
            .map(|&p| Some(numpy_percentile(&seconds, p)))
            .collect();
        let whole = exact_of(&values);
        assert!(whole.is_exact());
        assert_eq!(whole.percentiles(&PS), expect, "round {round}");
        // Split into days (parts), merged every way.
        let parts: Vec<Latencies> = values
            .chunks(1 + (next() % n) as usize)
            .map(exact_of)
            .collect();
        let refs: Vec<&Latencies> = parts.iter().collect();
        let mut scratch = Vec::new();
        assert_eq!(
            Latencies::merged_percentiles(&refs, &PS, &mut scratch),
            expect,
            "round {round} merged"
        );
        let unpacked: Vec<UnpackedHistogram> = parts
            .iter()
            .filter_map(|p| match p {
                Latencies::Exact(h) => UnpackedHistogram::new(h),
                Latencies::Estimated(_) => None,
            })
            .collect();
        let unpacked_refs: Vec<&UnpackedHistogram> = unpacked.iter().collect();
        if let Some(fast) = UnpackedHistogram::merged_percentiles(&unpacked_refs, &PS, &mut scratch)
        {
            assert_eq!(fast, expect, "round {round} unpacked");
        }
        let mut folded = Latencies::default();
        for part in parts.iter().rev() {
            folded.merge(part);
        }
        assert_eq!(folded, whole, "round {round} folded");
        assert_eq!(Latencies::merge_all(refs.iter().copied()), whole);
    }
}

#[test]
fn codec_round_trips_and_is_small_for_millisecond_logs() {
    let values: Vec<u64> = (0..5000u64)
        .map(|i| (i * 7919) % 1901 * 1000 + 100_000)
        .collect();
    let latencies = exact_of(&values);
    let bytes = latencies.encode();
    assert_eq!(Latencies::decode(&bytes), Ok(latencies.clone()));
    assert!(bytes.len() <= 1901 * 2 + 16, "{} bytes", bytes.len());
    let empty = Latencies::default();
    assert_eq!(Latencies::decode(&empty.encode()), Ok(empty));
    let zeros = exact_of(&[0, 0, 0]);
    assert_eq!(Latencies::decode(&zeros.encode()), Ok(zeros.clone()));
    assert_eq!(zeros.percentiles(&[50.0]), vec![Some(0.0)]);
}

#[test]
fn decode_refuses_damaged_histograms() {
    let bytes = exact_of(&[1_000, 2_000, 2_000, 9_000]).encode();
    for cut in 1..bytes.len() {
        assert!(Latencies::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut wrong_count = bytes.clone();
    wrong_count[3] += 1;
    assert!(Latencies::decode(&wrong_count).is_err());
    assert_eq!(Latencies::decode(&[9]), Err(LatenciesDecodeError::Form(9)));
    assert_eq!(Latencies::decode(&[]), Err(LatenciesDecodeError::Empty));
}

#[test]
fn past_the_limit_it_becomes_a_digest_and_stays_one() {
    let wide: Vec<u64> = (0..=EXACT_DISTINCT_VALUES as u64).collect();
    let estimated = Latencies::from_ascending(wide.iter().copied());
    assert!(!estimated.is_exact());
    assert_eq!(estimated.count(), wide.len() as u64);
    let at_limit = Latencies::from_ascending(wide[1..].iter().copied());
    assert!(at_limit.is_exact());
    // Two exact halves whose union is too wide merge into a digest of the same count.
    let (a, b) = wide.split_at(wide.len() / 2);
    let mut merged = exact_of(a);
    merged.merge(&exact_of(b));
    assert!(!merged.is_exact());
    assert_eq!(merged.count(), wide.len() as u64);
    let mut more = merged.clone();
    more.merge(&exact_of(&[5]));
    assert_eq!(more.count(), wide.len() as u64 + 1);
    assert!(Latencies::decode(&more.encode()).is_ok());
    // Appended after other bytes, both forms are the bytes `encode` returns.
    for latencies in [&more, &exact_of(&[0, 7_000, 7_000]), &Latencies::default()] {
        let mut out = vec![0xAA];
        latencies.encode_into(&mut out);
        assert_eq!(out[0], 0xAA);
        assert_eq!(out[1..], latencies.encode()[..]);
    }
}

#[test]
fn legacy_digests_still_decode_and_merge() {
    let digest = LatencyDigest::from_latencies_us(&mut [1_000, 2_000, 3_000]);
    let legacy = Latencies::decode(&digest.encode()).expect("decodes");
    assert_eq!(legacy, Latencies::Estimated(digest));
    let mut merged = exact_of(&[4_000]);
    merged.merge(&legacy);
    assert_eq!(merged.count(), 4);
    assert!(!merged.is_exact());
}

/// The binary gcd agrees with Euclid's on zeros, equal values, powers of two, the largest
/// values and random pairs of every magnitude (a histogram's unit divides all its values).
#[test]
fn binary_gcd_equals_euclids() {
    fn euclid(mut a: u64, mut b: u64) -> u64 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
    let mut next = crate::xorshift(0x6CD0_0000_0000_0017);
    let mut pairs: Vec<(u64, u64)> = vec![
        (0, 0),
        (0, 7),
        (7, 0),
        (1, 1),
        (12, 18),
        (1 << 63, 1 << 40),
        (u64::MAX, u64::MAX - 1),
        (u64::MAX, 3),
        (847_000, 12_000),
    ];
    for _ in 0..100_000 {
        let bits_a = next() % 65;
        let bits_b = next() % 65;
        let mask = |bits: u64| {
            if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            }
        };
        let common = [1, 1000, 1 << (next() % 20)][(next() % 3) as usize];
        let a = (next() & mask(bits_a)).wrapping_mul(common);
        let b = (next() & mask(bits_b)).wrapping_mul(common);
        pairs.push((a, b));
    }
    for (a, b) in pairs {
        assert_eq!(gcd(a, b), euclid(a, b), "gcd({a}, {b})");
    }
}
