//! [`PackedDays`]: a customer's stored days in the compact form the row cache keeps, and the
//! writer of a day's JSON entry straight from it.
//!
//! A day takes its date (4 bytes), the end of its record (4 bytes) and a record of varints: the
//! successful and failed requests, the latency sum, the day's median and p99 in microseconds
//! (worked out once, when the day is packed), then its latencies: an exact histogram as
//! [`HistogramRef::write_packed`] writes it (about 1-2 bytes per distinct value), or a t-digest
//! in its stored form. A day of a few requests takes about 25 bytes in all, so the API can hold
//! every day of a year of 10,000 customers in about 130 MB. Nothing of a day is allocated on
//! its own: a range is merged and written from the bytes.

use chrono::NaiveDate;
use logstats_shared::latency::HistogramRef;
use logstats_shared::stats::SUMMARY_PERCENTILES;
use logstats_shared::{DayStats, Latencies, StatsSummary};

use crate::domain::write_iso_date;

/// Record kinds: the latencies that follow the counts.
const EXACT: u8 = 0;
const ESTIMATED: u8 = 1;

/// A customer's days, ascending, packed.
#[derive(Debug, Default, Clone)]
pub struct PackedDays {
    dates: Vec<NaiveDate>,
    /// End of each day's record in `records`.
    ends: Vec<u32>,
    records: Vec<u8>,
}

/// Why a day could not be packed or read back.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// A customer's records passed 4 GiB (the row cache never holds that much).
    #[error("a customer's packed days pass 4 GiB")]
    TooLarge,
    /// A record could not be read back (a bug, not bad input: only this module writes them).
    #[error("a packed day could not be read back")]
    Corrupt,
    /// A t-digest could not be decoded.
    #[error(transparent)]
    Latencies(#[from] logstats_shared::latency::LatenciesDecodeError),
}

/// One packed day, read back.
#[derive(Debug, Clone, Copy)]
pub struct PackedDay<'a> {
    /// The UTC day.
    pub date: NaiveDate,
    /// Requests with status 100-399.
    pub successful: u64,
    /// Requests with status 400-599.
    pub failed: u64,
    /// Sum of the latencies in microseconds.
    pub latency_sum_us: u128,
    /// The day's median and p99 in microseconds (`None` without latencies).
    pub median_us: Option<u64>,
    /// See `median_us`.
    pub p99_us: Option<u64>,
    /// The latencies.
    pub latencies: PackedLatencies<'a>,
}

/// A packed day's latencies.
#[derive(Debug, Clone, Copy)]
pub enum PackedLatencies<'a> {
    /// Every latency.
    Exact(HistogramRef<'a>),
    /// A t-digest in its stored form.
    Estimated(&'a [u8]),
}

impl PackedLatencies<'_> {
    /// The latencies, decoded (allocates).
    pub fn decode(&self) -> Result<Latencies, PackError> {
        Ok(match self {
            PackedLatencies::Exact(view) => Latencies::Exact(
                logstats_shared::latency::Histogram::from_entries(view.iter().collect()),
            ),
            PackedLatencies::Estimated(bytes) => Latencies::decode(bytes)?,
        })
    }

    /// The latencies at percentiles `ps`, in seconds rounded to the microsecond, as
    /// [`Latencies::percentiles`] gives them.
    pub fn percentiles(&self, ps: &[f64]) -> Result<Vec<Option<f64>>, PackError> {
        Ok(match self {
            PackedLatencies::Exact(view) => view.percentiles(ps),
            PackedLatencies::Estimated(_) => self.decode()?.percentiles(ps),
        })
    }
}

impl PackedDay<'_> {
    /// Total requests.
    #[cfg(test)] // Only the tests need it.
    pub fn total(&self) -> u64 {
        self.successful + self.failed
    }

    /// The counts and sums of this day (latencies left empty).
    pub fn counts(&self) -> DayStats {
        DayStats {
            successful: self.successful,
            failed: self.failed,
            latency_sum_us: self.latency_sum_us,
            ..DayStats::empty()
        }
    }

    /// What the API reports for this day.
    pub fn summary(&self) -> StatsSummary {
        self.counts()
            .summary_with(self.median_us.map(seconds), self.p99_us.map(seconds))
    }
}

/// Microseconds as the seconds a summary reports: the very value [`round_to_micros`] gave.
///
/// [`round_to_micros`]: logstats_shared::stats::round_to_micros
fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Seconds already rounded to the microsecond, as whole microseconds.
fn micros(seconds: f64) -> u64 {
    (seconds * 1e6).round() as u64
}

impl PackedDays {
    /// Days held.
    pub fn len(&self) -> usize {
        self.dates.len()
    }

    /// Whether no day is held.
    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.dates.capacity() * std::mem::size_of::<NaiveDate>()
            + self.ends.capacity() * 4
            + self.records.capacity()
    }

    /// The indexes of the days from `from` to `to` (inclusive; open-ended when `None`).
    pub fn range(&self, from: NaiveDate, to: Option<NaiveDate>) -> std::ops::Range<usize> {
        let start = self.dates.partition_point(|d| *d < from);
        let end = match to {
            Some(to) => self.dates.partition_point(|d| *d <= to),
            None => self.dates.len(),
        };
        start..end.max(start)
    }

    /// The date of day `i`.
    pub fn date(&self, i: usize) -> NaiveDate {
        self.dates[i]
    }

    fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.records[start..self.ends[i] as usize]
    }

    /// Day `i`, read back.
    pub fn get(&self, i: usize) -> Result<PackedDay<'_>, PackError> {
        let mut bytes = self.record(i);
        let mut next = || read_varint(&mut bytes).ok_or(PackError::Corrupt);
        let successful = u64::try_from(next()?).map_err(|_| PackError::Corrupt)?;
        let failed = u64::try_from(next()?).map_err(|_| PackError::Corrupt)?;
        let latency_sum_us = next()?;
        let median = next()?;
        let p99 = next()?;
        let optional = |v: u128| -> Result<Option<u64>, PackError> {
            match v {
                0 => Ok(None),
                v => u64::try_from(v - 1)
                    .map(Some)
                    .map_err(|_| PackError::Corrupt),
            }
        };
        let (median_us, p99_us) = (optional(median)?, optional(p99)?);
        let (&kind, mut rest) = bytes.split_first().ok_or(PackError::Corrupt)?;
        let latencies = match kind {
            EXACT => PackedLatencies::Exact(
                HistogramRef::read_packed(&mut rest).ok_or(PackError::Corrupt)?,
            ),
            ESTIMATED => PackedLatencies::Estimated(rest),
            _ => return Err(PackError::Corrupt),
        };
        Ok(PackedDay {
            date: self.dates[i],
            successful,
            failed,
            latency_sum_us,
            median_us,
            p99_us,
            latencies,
        })
    }

    /// Appends `stats` as the day `date` (after every day held).
    pub fn push(&mut self, date: NaiveDate, stats: &DayStats) -> Result<(), PackError> {
        let percentiles = stats.latencies.percentiles(&SUMMARY_PERCENTILES);
        let optional = |p: Option<f64>| p.map_or(0, |s| u128::from(micros(s)) + 1);
        for value in [
            u128::from(stats.successful),
            u128::from(stats.failed),
            stats.latency_sum_us,
            optional(percentiles[0]),
            optional(percentiles[1]),
        ] {
            push_varint(&mut self.records, value);
        }
        match &stats.latencies {
            Latencies::Exact(histogram) => {
                self.records.push(EXACT);
                histogram.as_view().write_packed(&mut self.records);
            }
            Latencies::Estimated(_) => {
                self.records.push(ESTIMATED);
                self.records.extend_from_slice(&stats.latencies.encode());
            }
        }
        self.end_day(date)
    }

    /// Appends day `i` of `other` as it is.
    pub fn push_from(&mut self, other: &PackedDays, i: usize) -> Result<(), PackError> {
        self.records.extend_from_slice(other.record(i));
        self.end_day(other.dates[i])
    }

    fn end_day(&mut self, date: NaiveDate) -> Result<(), PackError> {
        let end = u32::try_from(self.records.len()).map_err(|_| PackError::TooLarge)?;
        self.dates.push(date);
        self.ends.push(end);
        Ok(())
    }

    /// Gives back the spare capacity.
    pub fn shrink_to_fit(&mut self) {
        self.dates.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.records.shrink_to_fit();
    }
}

thread_local! {
    /// The dense counts the range merges add into, kept per thread between requests.
    static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Most values a thread's scratch keeps between requests (8 bytes each).
const SCRATCH_KEPT: usize = 1 << 16;

/// Runs `merge` with this thread's scratch array for dense range merges (kept between requests
/// up to 65,536 values, freed past that).
pub fn with_scratch<R>(merge: impl FnOnce(&mut Vec<u64>) -> R) -> R {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let result = merge(&mut scratch);
        if scratch.capacity() > SCRATCH_KEPT {
            *scratch = Vec::new();
        }
        result
    })
}

/// The summary of `days` merged: exact counts and sums, and the median, the p99 and `extra`
/// (`(key, p)`) over every latency, added up from the packed histograms when every day is
/// exact (else from the decoded summaries, as [`Latencies::merged_percentiles`] does).
pub fn merged_summary_of_packed(
    days: &[PackedDay<'_>],
    extra: &[(String, f64)],
) -> Result<StatsSummary, PackError> {
    let total = merged_counts_of_packed(days);
    let mut ps = SUMMARY_PERCENTILES.to_vec();
    ps.extend(extra.iter().map(|&(_, p)| p));
    let exact: Option<Vec<HistogramRef<'_>>> = days
        .iter()
        .map(|d| match d.latencies {
            PackedLatencies::Exact(view) => Some(view),
            PackedLatencies::Estimated(_) => None,
        })
        .collect();
    let percentiles = match exact {
        Some(views) => {
            with_scratch(|scratch| HistogramRef::merged_percentiles(&views, &ps, scratch))
        }
        None => {
            let latencies = days
                .iter()
                .map(|d| d.latencies.decode())
                .collect::<Result<Vec<Latencies>, PackError>>()?;
            let refs: Vec<&Latencies> = latencies.iter().collect();
            with_scratch(|scratch| Latencies::merged_percentiles(&refs, &ps, scratch))
        }
    };
    Ok(total
        .summary_with(percentiles[0], percentiles[1])
        .with_percentiles(extra, &percentiles[SUMMARY_PERCENTILES.len()..]))
}

/// The counts and sums of `days` merged (latencies left empty).
pub fn merged_counts_of_packed(days: &[PackedDay<'_>]) -> DayStats {
    let mut total = DayStats::empty();
    for day in days {
        total.successful += day.successful;
        total.failed += day.failed;
        total.latency_sum_us += day.latency_sum_us;
    }
    total
}

fn push_varint(out: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Option<u128> {
    let mut value = 0u128;
    for shift in (0..128).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u128::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Writes `{"date":"YYYY-MM-DD",...summary}`: byte for byte what serde_json writes for a day
/// entry of a response (the same field order, `null` for `None`, numbers by the same `itoa` and
/// `ryu` formatting), without building the summary's value.
pub fn write_day_entry(out: &mut Vec<u8>, date: NaiveDate, summary: &StatsSummary) {
    out.extend_from_slice(b"{\"date\":\"");
    write_iso_date(out, date);
    out.extend_from_slice(b"\",\"total_requests\":");
    write_u64(out, summary.total_requests);
    out.extend_from_slice(b",\"successful_requests\":");
    write_u64(out, summary.successful_requests);
    out.extend_from_slice(b",\"failed_requests\":");
    write_u64(out, summary.failed_requests);
    for (name, value) in [
        (&b",\"uptime\":"[..], summary.uptime),
        (b",\"average_latency\":", summary.average_latency),
        (b",\"median_latency\":", summary.median_latency),
        (b",\"p99_latency\":", summary.p99_latency),
    ] {
        out.extend_from_slice(name);
        write_f64(out, value);
    }
    if let Some(extra) = &summary.latency_percentiles {
        out.extend_from_slice(b",\"latency_percentiles\":{");
        for (i, (key, value)) in extra.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // The keys are normalised numbers (digits and one dot): nothing to escape. Anything
            // else goes through serde_json.
            if key.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                out.push(b'"');
                out.extend_from_slice(key.as_bytes());
                out.push(b'"');
            } else if serde_json::to_writer(&mut *out, key).is_err() {
                out.extend_from_slice(b"\"\"");
            }
            out.push(b':');
            write_f64(out, *value);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn write_f64(out: &mut Vec<u8>, value: Option<f64>) {
    match value {
        Some(v) if v.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes())
        }
        _ => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logstats_shared::latency::round_to_micros;
    use logstats_shared::DayAccumulator;

    #[derive(serde::Serialize)]
    struct Entry<'a> {
        #[serde(serialize_with = "crate::domain::iso_date")]
        date: NaiveDate,
        #[serde(flatten)]
        stats: &'a StatsSummary,
    }

    /// A small deterministic generator, so the test needs no crate of its own.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
    }

    fn day(seed: u64, requests: u64) -> DayStats {
        let mut rng = Lcg(seed);
        let mut acc = DayAccumulator::new();
        for _ in 0..requests {
            let latency = match rng.next() % 4 {
                0 => rng.next() % 2_000 * 1_000,
                1 => rng.next() % 5_000_000,
                2 => 1_000 + rng.next() % 3,
                _ => rng.next() % 50_000 * 997,
            };
            acc.add(!rng.next().is_multiple_of(5), latency);
        }
        acc.finish()
    }

    /// Packed days read back to the same counts, the same summary (median and p99 to the bit)
    /// and the same latencies, exact or estimated.
    #[test]
    fn days_read_back_as_they_were_packed() {
        let mut packed = PackedDays::default();
        let first = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
        let mut days = Vec::new();
        for (i, requests) in [0, 1, 2, 3, 17, 650, 4_000, 9_000, 40_000]
            .iter()
            .enumerate()
        {
            let date = first + chrono::Days::new(i as u64 * 3);
            let stats = day(i as u64 + 1, *requests);
            packed.push(date, &stats).expect("packs");
            days.push((date, stats));
        }
        assert!(
            days.iter().any(|(_, s)| !s.latencies.is_exact()),
            "a digest too"
        );
        assert_eq!(packed.len(), days.len());
        let ps = [0.0, 12.5, 50.0, 90.0, 99.0, 99.9, 100.0];
        for (i, (date, stats)) in days.iter().enumerate() {
            let day = packed.get(i).expect("reads");
            assert_eq!(day.date, *date);
            assert_eq!(day.summary(), stats.summary(), "day {i}");
            assert_eq!(
                day.latencies.percentiles(&ps).expect("percentiles"),
                stats.latencies.percentiles(&ps),
                "day {i}"
            );
            assert_eq!(day.latencies.decode().expect("decodes"), stats.latencies);
        }
        let mut copied = PackedDays::default();
        for i in 0..packed.len() {
            copied.push_from(&packed, i).expect("copies");
        }
        assert_eq!(copied.records, packed.records);
        let range = packed.range(
            first + chrono::Days::new(3),
            Some(first + chrono::Days::new(7)),
        );
        assert_eq!(range, 1..3);
        assert_eq!(packed.range(first + chrono::Days::new(100), None), 9..9);
    }

    /// Whole microseconds give back the very seconds `round_to_micros` gave.
    #[test]
    fn microseconds_round_trip() {
        let mut rng = Lcg(7);
        for _ in 0..200_000 {
            let raw = (rng.next() as f64) / (rng.next() % 10_000 + 1) as f64 / 997.0;
            let rounded = round_to_micros(raw);
            assert_eq!(
                seconds(micros(rounded)).to_bits(),
                rounded.to_bits(),
                "{raw}"
            );
        }
    }

    /// The hand-written entry is byte for byte serde_json's, percentiles or not.
    #[test]
    fn day_entries_are_serde_json_s_bytes() {
        let date = NaiveDate::from_ymd_opt(2024, 10, 10).expect("date");
        let extra = vec![
            ("90".to_string(), 90.0),
            ("99.9".to_string(), 99.9),
            ("0".to_string(), 0.0),
        ];
        for (seed, requests) in [(1, 0), (2, 1), (3, 3), (4, 77), (5, 5_000), (6, 20_000)] {
            let stats = day(seed, requests);
            for summary in [stats.summary(), stats.summary_with_percentiles(&extra)] {
                let mut ours = Vec::new();
                write_day_entry(&mut ours, date, &summary);
                let theirs = serde_json::to_vec(&Entry {
                    date,
                    stats: &summary,
                })
                .expect("serializes");
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&theirs)
                );
            }
        }
    }
}
