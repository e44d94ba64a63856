//! [`UnpackedHistogram`]: an exact histogram as plain arrays, for the API's range queries.

use super::percentile::exact_percentiles;
use super::{gcd, Histogram, DENSE_SPAN};

/// An exact histogram unpacked into plain arrays, for adding many days into one dense array
/// quickly: what the API keeps per stored day (about 8 bytes per distinct value, against ~1-2
/// packed).
#[derive(Debug, Clone)]
pub struct UnpackedHistogram {
    unit: u64,
    min_us: u64,
    max_us: u64,
    count: u64,
    /// (value - min) / unit of each distinct value, ascending.
    offsets: Box<[u32]>,
    /// The count of each distinct value.
    counts: Box<[u32]>,
}

impl UnpackedHistogram {
    /// `histogram` unpacked; `None` when it is empty or an offset or count does not fit 32 bits.
    pub fn new(histogram: &Histogram) -> Option<Self> {
        if histogram.count == 0 {
            return None;
        }
        let mut offsets = Vec::with_capacity(histogram.distinct as usize);
        let mut counts = Vec::with_capacity(histogram.distinct as usize);
        for (value, n) in histogram.iter() {
            offsets.push(u32::try_from((value - histogram.min_us) / histogram.unit).ok()?);
            counts.push(u32::try_from(n).ok()?);
        }
        Some(Self {
            unit: histogram.unit,
            min_us: histogram.min_us,
            max_us: histogram.max_us,
            count: histogram.count,
            offsets: offsets.into_boxed_slice(),
            counts: counts.into_boxed_slice(),
        })
    }

    /// Bytes this takes in memory.
    pub fn heap_bytes(&self) -> usize {
        self.offsets.len() * 8 + std::mem::size_of::<Self>()
    }

    /// The percentiles `ps` of the merge of `parts`, exactly as
    /// [`Latencies::merged_percentiles`](super::Latencies::merged_percentiles)
    /// gives them; `None` when the values span too many units for a dense array.
    pub fn merged_percentiles(
        parts: &[&UnpackedHistogram],
        ps: &[f64],
        scratch: &mut Vec<u64>,
    ) -> Option<Vec<Option<f64>>> {
        let Some(first) = parts.first() else {
            return Some(vec![None; ps.len()]);
        };
        let mut unit = 0;
        let (mut min, mut max, mut count, mut entries) = (first.min_us, 0, 0u64, 0u64);
        for part in parts {
            unit = gcd(unit, part.unit);
            min = min.min(part.min_us);
            max = max.max(part.max_us);
            count = count.saturating_add(part.count);
            entries += part.offsets.len() as u64;
        }
        let span = (max - min) / unit + 1;
        if span > DENSE_SPAN || span > entries.saturating_mul(8).max(4096) {
            return None;
        }
        scratch.clear();
        scratch.resize(span as usize, 0);
        let slots = scratch.as_mut_slice();
        for part in parts {
            let base = ((part.min_us - min) / unit) as usize;
            let scale = (part.unit / unit) as usize;
            let slots = &mut slots[base..];
            if scale == 1 {
                for (&offset, &n) in part.offsets.iter().zip(part.counts.iter()) {
                    if let Some(slot) = slots.get_mut(offset as usize) {
                        *slot += u64::from(n);
                    }
                }
            } else {
                for (&offset, &n) in part.offsets.iter().zip(part.counts.iter()) {
                    if let Some(slot) = slots.get_mut(offset as usize * scale) {
                        *slot += u64::from(n);
                    }
                }
            }
        }
        let dense = slots
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(i, &n)| (min + i as u64 * unit, n));
        Some(exact_percentiles(dense, count, ps))
    }
}
