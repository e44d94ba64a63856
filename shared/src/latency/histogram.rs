//! [`Histogram`]: the exact form of [`Latencies`](super::Latencies), packed as the module docs of
//! [`latency`](super) describe; its merges, its dense-array percentiles, its byte codec, and the
//! [`StepEncoder`] and [`HistogramIter`] that write and read its steps.

use super::percentile::{exact_percentiles, selected_percentiles};
use super::steps::{next_step, push_step, push_varint, read_varint};
use super::{gcd, LatenciesDecodeError, Steps, DENSE_SPAN, EXACT_TAG};

/// An exact histogram of latencies in microseconds, in its compact form (see the [`latency`](super)
/// module docs).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Histogram {
    /// Greatest common divisor of the values (1 when they are all 0; 0 when empty).
    pub(super) unit: u64,
    /// Distinct values.
    pub(super) distinct: u64,
    /// Values counted.
    pub(super) count: u64,
    /// Smallest and largest value (0 when empty).
    pub(super) min_us: u64,
    pub(super) max_us: u64,
    /// Per distinct value: varint(step in units << 1 | count is 1), then varint(count) if not 1.
    pub(super) steps: Steps,
}

impl Histogram {
    /// The histogram of ascending, distinct `(value, count)` entries with counts above 0.
    pub fn from_entries(entries: Vec<(u64, u64)>) -> Self {
        // One remainder per value in the usual case, where the first values set the unit.
        let unit = entries.iter().fold(0, |g, &(value, _)| {
            if g != 0 && value % g == 0 {
                g
            } else {
                gcd(g, value)
            }
        });
        let unit = if unit == 0 && !entries.is_empty() {
            1
        } else {
            unit
        };
        let mut steps = Steps::with_capacity(entries.len() * 2);
        let mut previous = 0;
        let mut count = 0u64;
        for &(value, n) in &entries {
            push_step(&mut steps, (value - previous) / unit, n);
            previous = value;
            count = count.saturating_add(n);
        }
        Self {
            unit,
            distinct: entries.len() as u64,
            count,
            min_us: entries.first().map_or(0, |e| e.0),
            max_us: entries.last().map_or(0, |e| e.0),
            steps,
        }
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Distinct values.
    pub fn distinct(&self) -> usize {
        self.distinct as usize
    }

    /// The (value in microseconds, count) entries, ascending.
    pub fn iter(&self) -> HistogramIter<'_> {
        HistogramIter {
            steps: &self.steps,
            unit: self.unit,
            value: 0,
        }
    }

    /// `self` and `other` (both not empty) merged, written step by step as they are read: in
    /// units of their common divisor, so no value is divided.
    pub(super) fn merged_histogram(&self, other: &Histogram) -> Histogram {
        let unit = gcd(self.unit, other.unit).max(1);
        let mut encoder = StepEncoder::new((self.distinct + other.distinct) as usize);
        let (mut a, mut b) = (self.iter_in(unit), other.iter_in(unit));
        let (mut x, mut y) = (a.next(), b.next());
        loop {
            match (x, y) {
                (Some(p), Some(q)) => {
                    if p.0 < q.0 {
                        encoder.push(p.0, p.1);
                        x = a.next();
                    } else if q.0 < p.0 {
                        encoder.push(q.0, q.1);
                        y = b.next();
                    } else {
                        encoder.push(p.0, p.1.saturating_add(q.1));
                        x = a.next();
                        y = b.next();
                    }
                }
                (Some(p), None) => {
                    encoder.push(p.0, p.1);
                    x = a.next();
                }
                (None, Some(q)) => {
                    encoder.push(q.0, q.1);
                    y = b.next();
                }
                (None, None) => break,
            }
        }
        encoder.finish(unit)
    }

    /// The (value in multiples of `unit`, count) entries, ascending; `unit` divides the
    /// histogram's own.
    fn iter_in(&self, unit: u64) -> HistogramIter<'_> {
        HistogramIter {
            steps: &self.steps,
            unit: self.unit / unit,
            value: 0,
        }
    }

    /// This histogram with its steps borrowed.
    pub fn as_view(&self) -> HistogramRef<'_> {
        HistogramRef {
            unit: self.unit,
            distinct: self.distinct,
            count: self.count,
            min_us: self.min_us,
            max_us: self.max_us,
            steps: &self.steps,
        }
    }

    /// The entries of every part merged, ascending.
    pub(super) fn merge_entries(parts: &[&Histogram]) -> Vec<(u64, u64)> {
        match parts {
            [] => Vec::new(),
            [one] => one.iter().collect(),
            [a, b] => a.merged_histogram(b).iter().collect(),
            _ => {
                let views: Vec<HistogramRef<'_>> = parts.iter().map(|h| h.as_view()).collect();
                HistogramRef::merge_entries(&views)
            }
        }
    }

    /// Percentiles of the merge of non-empty `parts` (see [`HistogramRef::merged_percentiles`]).
    pub(super) fn merged_percentiles(
        parts: &[&Histogram],
        ps: &[f64],
        scratch: &mut Vec<u64>,
    ) -> Vec<Option<f64>> {
        let views: Vec<HistogramRef<'_>> = parts.iter().map(|h| h.as_view()).collect();
        HistogramRef::merged_percentiles(&views, ps, scratch)
    }

    /// Encodes as: 2, varint unit, varint distinct, varint count, then the steps.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.steps.len() + 16);
        self.encode_into(&mut out);
        out
    }

    /// Appends what [`Histogram::encode`] returns to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(EXACT_TAG);
        for value in [self.unit, self.distinct, self.count] {
            push_varint(out, value);
        }
        out.extend_from_slice(&self.steps);
    }

    /// Decodes what [`Histogram::encode`] wrote, checking every step.
    pub fn decode(bytes: &[u8]) -> Result<Self, LatenciesDecodeError> {
        let corrupt = LatenciesDecodeError::Histogram;
        let mut rest = bytes.get(1..).ok_or(corrupt("no header"))?;
        let unit = read_varint(&mut rest).ok_or(corrupt("no unit"))?;
        let distinct = read_varint(&mut rest).ok_or(corrupt("no distinct count"))?;
        let count = read_varint(&mut rest).ok_or(corrupt("no count"))?;
        let steps = Steps::from_slice(rest);
        let (mut seen, mut counted, mut value) = (0u64, 0u64, 0u64);
        let mut min = None;
        let mut cursor = rest;
        while !cursor.is_empty() {
            let (step, n) = next_step(&mut cursor).ok_or(corrupt("truncated step"))?;
            if n == 0 || (seen > 0 && step == 0) {
                return Err(corrupt("values not ascending"));
            }
            value = step
                .checked_mul(unit)
                .and_then(|s| value.checked_add(s))
                .ok_or(corrupt("value out of range"))?;
            min.get_or_insert(value);
            seen += 1;
            counted = counted
                .checked_add(n)
                .ok_or(corrupt("count out of range"))?;
        }
        if seen != distinct || counted != count || (seen > 0 && unit == 0) {
            return Err(corrupt("header does not match the steps"));
        }
        Ok(Self {
            unit,
            distinct,
            count,
            min_us: min.unwrap_or(0),
            max_us: value,
            steps,
        })
    }
}

/// Writes a histogram's steps from ascending (value in units, count) entries.
pub(super) struct StepEncoder {
    steps: Steps,
    previous: u64,
    distinct: u64,
    count: u64,
    min: Option<u64>,
}

impl StepEncoder {
    pub(super) fn new(distinct: usize) -> Self {
        Self {
            steps: Steps::with_capacity(distinct * 2),
            previous: 0,
            distinct: 0,
            count: 0,
            min: None,
        }
    }

    #[inline]
    pub(super) fn push(&mut self, value_units: u64, count: u64) {
        push_step(&mut self.steps, value_units - self.previous, count);
        self.previous = value_units;
        self.min.get_or_insert(value_units);
        self.distinct += 1;
        self.count = self.count.saturating_add(count);
    }

    pub(super) fn finish(self, unit: u64) -> Histogram {
        let Some(min) = self.min else {
            return Histogram::default();
        };
        Histogram {
            unit,
            distinct: self.distinct,
            count: self.count,
            min_us: min * unit,
            max_us: self.previous * unit,
            steps: self.steps,
        }
    }
}

/// Iterates a [`Histogram`]'s (value, count) entries.
#[derive(Clone)]
pub struct HistogramIter<'a> {
    steps: &'a [u8],
    unit: u64,
    value: u64,
}

impl Iterator for HistogramIter<'_> {
    type Item = (u64, u64);

    #[inline]
    fn next(&mut self) -> Option<(u64, u64)> {
        let (step, n) = next_step(&mut self.steps)?;
        self.value += step * self.unit;
        Some((self.value, n))
    }
}

/// An exact histogram whose steps are borrowed: a [`Histogram`] seen through
/// [`Histogram::as_view`], or one read back from the bytes [`HistogramRef::write_packed`] wrote
/// (the API keeps its copies of the stored days that way: about 1-2 bytes per distinct value
/// and a few of header, with no allocation of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramRef<'a> {
    unit: u64,
    distinct: u64,
    count: u64,
    min_us: u64,
    max_us: u64,
    steps: &'a [u8],
}

impl<'a> HistogramRef<'a> {
    /// Values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The (value in microseconds, count) entries, ascending.
    pub fn iter(&self) -> HistogramIter<'a> {
        HistogramIter {
            steps: self.steps,
            unit: self.unit,
            value: 0,
        }
    }

    /// The values at percentiles `ps` (numpy's linear method), in seconds rounded to the
    /// microsecond; `None` when empty.
    pub fn percentiles(&self, ps: &[f64]) -> Vec<Option<f64>> {
        exact_percentiles(self.iter(), self.count, ps)
    }

    /// Appends this histogram in the form [`HistogramRef::read_packed`] reads: varints of the
    /// unit, distinct values, count, smallest value, largest minus smallest and the steps'
    /// length, then the steps.
    pub fn write_packed(&self, out: &mut Vec<u8>) {
        for value in [
            self.unit,
            self.distinct,
            self.count,
            self.min_us,
            self.max_us - self.min_us,
            self.steps.len() as u64,
        ] {
            push_varint(out, value);
        }
        out.extend_from_slice(self.steps);
    }

    /// Reads what [`HistogramRef::write_packed`] wrote at the start of `bytes` and moves
    /// `bytes` past it; `None` when `bytes` ends early. The steps are not checked again: only
    /// bytes that `write_packed` wrote are meant to be read.
    pub fn read_packed(bytes: &mut &'a [u8]) -> Option<Self> {
        let unit = read_varint(bytes)?;
        let distinct = read_varint(bytes)?;
        let count = read_varint(bytes)?;
        let min_us = read_varint(bytes)?;
        let max_us = min_us.checked_add(read_varint(bytes)?)?;
        let len = usize::try_from(read_varint(bytes)?).ok()?;
        let (steps, rest) = (bytes.get(..len)?, bytes.get(len..)?);
        *bytes = rest;
        Some(Self {
            unit,
            distinct,
            count,
            min_us,
            max_us,
            steps,
        })
    }

    /// Bytes [`HistogramRef::write_packed`] writes for this histogram.
    pub fn packed_len(&self) -> usize {
        let varint_len = |v: u64| (64 - v.max(1).leading_zeros() as usize).div_ceil(7);
        [
            self.unit,
            self.distinct,
            self.count,
            self.min_us,
            self.max_us - self.min_us,
            self.steps.len() as u64,
        ]
        .into_iter()
        .map(varint_len)
        .sum::<usize>()
            + self.steps.len()
    }

    /// The entries of every part merged, ascending.
    fn merge_entries(parts: &[HistogramRef<'_>]) -> Vec<(u64, u64)> {
        let mut all: Vec<(u64, u64)> = parts.iter().flat_map(|h| h.iter()).collect();
        all.sort_unstable_by_key(|e| e.0);
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(all.len());
        for (value, n) in all {
            match merged.last_mut() {
                Some(last) if last.0 == value => last.1 = last.1.saturating_add(n),
                _ => merged.push((value, n)),
            }
        }
        merged
    }

    /// Percentiles of the merge of `parts` (empty ones are skipped; `None` for each when all
    /// are), counted in `scratch`, a dense array reused between calls, when the values span few
    /// units, else from the sorted merge.
    pub fn merged_percentiles(
        parts: &[HistogramRef<'_>],
        ps: &[f64],
        scratch: &mut Vec<u64>,
    ) -> Vec<Option<f64>> {
        let mut present = parts.iter().filter(|h| h.count > 0).peekable();
        if present.peek().is_none() {
            return vec![None; ps.len()];
        }
        let unit = parts.iter().fold(0, |g, h| gcd(g, h.unit)).max(1);
        let min = present.clone().map(|h| h.min_us).min().unwrap_or(0);
        let max = present.clone().map(|h| h.max_us).max().unwrap_or(0);
        let count = present.clone().fold(0u64, |n, h| n.saturating_add(h.count));
        // Every value is min + k * unit: min and every value are multiples of unit.
        let span = (max - min) / unit + 1;
        let entries: u64 = present.clone().map(|h| h.distinct).sum();
        if span > DENSE_SPAN || span > entries.saturating_mul(8).max(4096) {
            // Every entry takes at least a byte of steps: the room never trusts the headers.
            let bytes: usize = parts.iter().map(|h| h.steps.len()).sum();
            let mut all = Vec::with_capacity(bytes.min(usize::try_from(entries).unwrap_or(0)));
            for part in parts {
                all.extend(part.iter());
            }
            return selected_percentiles(&mut all, count, ps);
        }
        scratch.clear();
        scratch.resize(span as usize, 0);
        for part in present {
            let scale = part.unit / unit;
            // Index of the value before the first: its steps are relative to 0.
            let mut index = 0u64.wrapping_sub(min / unit);
            let mut steps = part.steps;
            let slots = scratch.as_mut_slice();
            while let Some((step, n)) = next_step(&mut steps) {
                index = index.wrapping_add(step * scale);
                // Within the span by construction (min <= value <= max); checked all the same.
                if let Some(slot) = slots.get_mut(index as usize) {
                    *slot += n;
                }
            }
        }
        let dense = scratch
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(i, &n)| (min + i as u64 * unit, n));
        exact_percentiles(dense, count, ps)
    }
}
