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

use crate::digest::{histogram, LatencyDigest};

/// Most distinct latency values a summary holds exactly; past this it becomes a t-digest.
pub const EXACT_DISTINCT_VALUES: usize = 4096;

/// First byte of an encoded exact histogram. Byte 1 starts a t-digest (see [`LatencyDigest`]).
const EXACT_TAG: u8 = 2;

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
            return Latencies::Estimated(LatencyDigest::from_histogram(&histogram(values)));
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
            Latencies::Exact(histogram) => histogram.steps.capacity(),
            Latencies::Estimated(digest) => digest.centroid_count() * 16 + 64,
        }
    }
}

/// An exact histogram of latencies in microseconds, in its compact form (see the module docs).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Histogram {
    /// Greatest common divisor of the values (1 when they are all 0; 0 when empty).
    unit: u64,
    /// Distinct values.
    distinct: u64,
    /// Values counted.
    count: u64,
    /// Smallest and largest value (0 when empty).
    min_us: u64,
    max_us: u64,
    /// Per distinct value: varint(step in units << 1 | count is 1), then varint(count) if not 1.
    steps: Vec<u8>,
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
        let mut steps = Vec::with_capacity(entries.len() * 2);
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
    fn merged_histogram(&self, other: &Histogram) -> Histogram {
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

    /// The entries of every part merged, ascending.
    fn merge_entries(parts: &[&Histogram]) -> Vec<(u64, u64)> {
        match parts {
            [] => Vec::new(),
            [one] => one.iter().collect(),
            [a, b] => a.merged_histogram(b).iter().collect(),
            _ => {
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
        }
    }

    /// Percentiles of the merge of non-empty `parts`, counted in a dense array when the values
    /// span few units, else from the sorted merge.
    fn merged_percentiles(
        parts: &[&Histogram],
        ps: &[f64],
        scratch: &mut Vec<u64>,
    ) -> Vec<Option<f64>> {
        let unit = parts.iter().fold(0, |g, h| gcd(g, h.unit)).max(1);
        let min = parts.iter().map(|h| h.min_us).min().unwrap_or(0);
        let max = parts.iter().map(|h| h.max_us).max().unwrap_or(0);
        let count = parts.iter().fold(0u64, |n, h| n.saturating_add(h.count));
        // Every value is min + k * unit: min and every value are multiples of unit.
        let span = (max - min) / unit + 1;
        let entries: u64 = parts.iter().map(|h| h.distinct).sum();
        if span > DENSE_SPAN || span > entries.saturating_mul(8).max(4096) {
            let merged = Self::merge_entries(parts);
            return exact_percentiles(merged.into_iter(), count, ps);
        }
        scratch.clear();
        scratch.resize(span as usize, 0);
        for part in parts {
            let scale = part.unit / unit;
            // Index of the value before the first: its steps are relative to 0.
            let mut index = 0u64.wrapping_sub(min / unit);
            let mut steps = part.steps.as_slice();
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

    /// Encodes as: 2, varint unit, varint distinct, varint count, then the steps.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.steps.len() + 16);
        out.push(EXACT_TAG);
        for value in [self.unit, self.distinct, self.count] {
            push_varint(&mut out, value);
        }
        out.extend_from_slice(&self.steps);
        out
    }

    /// Decodes what [`Histogram::encode`] wrote, checking every step.
    pub fn decode(bytes: &[u8]) -> Result<Self, LatenciesDecodeError> {
        let corrupt = LatenciesDecodeError::Histogram;
        let mut rest = bytes.get(1..).ok_or(corrupt("no header"))?;
        let unit = read_varint(&mut rest).ok_or(corrupt("no unit"))?;
        let distinct = read_varint(&mut rest).ok_or(corrupt("no distinct count"))?;
        let count = read_varint(&mut rest).ok_or(corrupt("no count"))?;
        let steps = rest.to_vec();
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

    /// The percentiles `ps` of the merge of `parts`, exactly as [`Latencies::merged_percentiles`]
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

/// Writes a histogram's steps from ascending (value in units, count) entries.
struct StepEncoder {
    steps: Vec<u8>,
    previous: u64,
    distinct: u64,
    count: u64,
    min: Option<u64>,
}

impl StepEncoder {
    fn new(distinct: usize) -> Self {
        Self {
            steps: Vec::with_capacity(distinct * 2),
            previous: 0,
            distinct: 0,
            count: 0,
            min: None,
        }
    }

    #[inline]
    fn push(&mut self, value_units: u64, count: u64) {
        push_step(&mut self.steps, value_units - self.previous, count);
        self.previous = value_units;
        self.min.get_or_insert(value_units);
        self.distinct += 1;
        self.count = self.count.saturating_add(count);
    }

    fn finish(self, unit: u64) -> Histogram {
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

#[inline(always)]
fn push_step(out: &mut Vec<u8>, step: u64, count: u64) {
    if count == 1 && step < 64 {
        out.push(((step as u8) << 1) | 1);
    } else if count == 1 {
        push_varint(out, (step << 1) | 1);
    } else {
        push_varint(out, step << 1);
        push_varint(out, count);
    }
}

#[inline(always)]
fn next_step(steps: &mut &[u8]) -> Option<(u64, u64)> {
    // The usual entry of a millisecond log: a one-byte step with a count of one.
    if let Some((&byte, rest)) = steps.split_first() {
        if byte & 0x81 == 0x01 {
            *steps = rest;
            return Some((u64::from(byte >> 1), 1));
        }
    }
    let head = read_varint(steps)?;
    let count = if head & 1 == 1 {
        1
    } else {
        read_varint(steps)?
    };
    Some((head >> 1, count))
}

#[inline]
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[inline]
fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// numpy's default percentile (method "linear") of `count` values given as ascending
/// (value in microseconds, count) entries, for each of `ps` (0-100), in seconds rounded to the
/// microsecond: with h = (count - 1) p / 100, x[floor h] + (h - floor h)(x[floor h + 1] -
/// x[floor h]), computed in seconds the way numpy's `_lerp` does.
pub fn exact_percentiles(
    entries: impl Iterator<Item = (u64, u64)>,
    count: u64,
    ps: &[f64],
) -> Vec<Option<f64>> {
    if count == 0 {
        return vec![None; ps.len()];
    }
    // (rank below, fraction) per percentile.
    let positions: Vec<(u64, f64)> = ps
        .iter()
        .map(|&p| {
            let h = (count - 1) as f64 * (p / 100.0);
            let below = (h.floor() as u64).min(count - 1);
            (below, h - h.floor())
        })
        .collect();
    // Every rank needed, ascending, read off in one pass over the entries.
    let mut ranks: Vec<u64> = positions
        .iter()
        .flat_map(|&(below, _)| [below, (below + 1).min(count - 1)])
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    let mut values = Vec::with_capacity(ranks.len());
    let mut seen = 0u64; // values before the current entry
    let mut last = 0u64;
    let mut wanted = ranks.iter().peekable();
    for (value, n) in entries {
        last = value;
        while wanted
            .next_if(|&&rank| rank < seen.saturating_add(n))
            .is_some()
        {
            values.push(value);
        }
        seen = seen.saturating_add(n);
        if wanted.peek().is_none() {
            break;
        }
    }
    // Counts that overstate the entries: answer with the largest value rather than panic.
    values.resize(ranks.len(), last);
    let value_at = |rank: u64| values[ranks.partition_point(|&r| r < rank)];
    positions
        .iter()
        .map(|&(below, t)| {
            let a = value_at(below) as f64 / 1e6;
            let b = value_at((below + 1).min(count - 1)) as f64 / 1e6;
            let diff = b - a;
            let value = if t >= 0.5 {
                b - diff * (1.0 - t)
            } else {
                a + diff * t
            };
            Some(round_to_micros(value))
        })
        .collect()
}

/// Seconds rounded to the microsecond.
pub fn round_to_micros(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
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
            if let Some(fast) =
                UnpackedHistogram::merged_percentiles(&unpacked_refs, &PS, &mut scratch)
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
}
