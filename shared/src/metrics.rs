//! Metrics in the Prometheus text exposition format (version 0.0.4), written by hand: counters,
//! gauges and fixed-bucket histograms on atomics (no lock, no allocation to record), and an
//! [`Exposition`] writer that escapes help texts and label values as the format requires.
//! The ingest job's and the API's own metrics (their crates' `metrics.rs`) are made and written
//! with these.
//!
//! Memory is fixed when a metric is made: label sets are never created from what is recorded,
//! so no request mix can grow it. Callers keep their metrics in their own structs and write them
//! out on a scrape.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// The `Content-Type` of [`Exposition::finish`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at 0.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (an integer: connections, bytes, Unix seconds).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// A gauge at 0.
    pub const fn new() -> Self {
        Self(AtomicI64::new(0))
    }

    /// Sets the value.
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// Raises the value to `value` if it is lower.
    pub fn set_max(&self, value: i64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }

    /// The value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (in seconds) of request latencies: 0.5 ms to 10 s.
pub const REQUEST_SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds (in seconds) of database commits: 1 ms to 60 s.
pub const COMMIT_SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A histogram of durations over fixed buckets; the sum is kept in microseconds.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in seconds, ascending, as written in `le`.
    bounds: &'static [f64],
    /// The same bounds in microseconds, for recording without floating point.
    bounds_micros: Box<[u64]>,
    /// Observations per bucket (not cumulative); the last one is `+Inf`'s own.
    buckets: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (seconds, ascending; `+Inf` is implied).
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending bounds");
        Self {
            bounds,
            bounds_micros: bounds.iter().map(|b| (b * 1e6).round() as u64).collect(),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, duration: Duration) {
        self.observe_micros(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one duration of `micros` microseconds.
    pub fn observe_micros(&self, micros: u64) {
        let bucket = self.bounds_micros.partition_point(|&bound| bound < micros);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Sum of the observations, in microseconds.
    pub fn sum_micros(&self) -> u64 {
        self.sum_micros.load(Ordering::Relaxed)
    }
}

/// What a metric family is, as written in its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; its name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample's value: integers as written, floats in the format's notation (`NaN`, `+Inf`).
#[derive(Debug, Clone, Copy)]
pub enum Value {
    /// An unsigned count.
    U64(u64),
    /// A signed integer.
    I64(i64),
    /// A float.
    F64(f64),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) if v.is_nan() => f.write_str("NaN"),
            Value::F64(v) if v == f64::INFINITY => f.write_str("+Inf"),
            Value::F64(v) if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            Value::F64(v) => write!(f, "{v}"),
        }
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::U64(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::U64(u64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}

/// The text of one scrape: families in the order written, each announced once with its help
/// and type, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty scrape.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts family `name`: its `# HELP` (escaped) and `# TYPE` lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        debug_assert!(valid_name(name), "metric name {name:?}");
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
        self
    }

    /// One sample of `name` with `labels` (values escaped).
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Into<Value>,
    ) -> &mut Self {
        self.out.push_str(name);
        self.labels(labels, None);
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, " {}", value.into());
        self
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Into<Value>) {
        self.family(name, kind, help).sample(name, &[], value);
    }

    /// The samples of `histogram` (`name_bucket` with `le`, `name_sum` in seconds,
    /// `name_count`), with `labels`. Announce the family first with [`Exposition::family`].
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        // Counts are read bucket by bucket while requests may be recorded: the count written
        // is the sum of the buckets written, so `+Inf` always equals `_count`.
        let mut cumulative = 0u64;
        let bounds = histogram.bounds.iter().map(|b| Value::F64(*b));
        for (bound, bucket) in bounds
            .chain(std::iter::once(Value::F64(f64::INFINITY)))
            .zip(histogram.buckets.iter())
        {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(bound));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let sum = histogram.sum_micros() as f64 / 1e6;
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", Value::F64(sum));
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {cumulative}");
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<Value>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        for (i, (name, value)) in labels.iter().enumerate() {
            debug_assert!(valid_label_name(name), "label name {name:?}");
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_label_value(&mut self.out, value);
            self.out.push('"');
        }
        if let Some(le) = le {
            if !labels.is_empty() {
                self.out.push(',');
            }
            let _ = write!(self.out, "le=\"{le}\"");
        }
        self.out.push('}');
    }
}

/// Appends `value` escaped for a label value: `\` as `\\`, `"` as `\"`, a newline as `\n`.
pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut text = Exposition::new();
        text.family("x_total", Kind::Counter, "a \\ b\nc \"q\"")
            .sample("x_total", &[("path", "a\\b\"c\nd"), ("k", "v")], 3u64);
        assert_eq!(
            text.finish(),
            "# HELP x_total a \\\\ b\\nc \"q\"\n# TYPE x_total counter\n\
             x_total{path=\"a\\\\b\\\"c\\nd\",k=\"v\"} 3\n"
        );
    }

    #[test]
    fn values_use_the_formats_notation() {
        let mut text = Exposition::new();
        text.sample("a", &[], -3i64)
            .sample("b", &[], 0.25)
            .sample("c", &[], f64::NAN)
            .sample("d", &[], f64::NEG_INFINITY)
            .sample("e", &[], 1.0);
        assert_eq!(text.finish(), "a -3\nb 0.25\nc NaN\nd -Inf\ne 1\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        static BOUNDS: &[f64] = &[0.001, 0.01];
        let histogram = Histogram::new(BOUNDS);
        for micros in [0, 1_000, 1_001, 10_000, 2_000_000] {
            histogram.observe_micros(micros);
        }
        histogram.observe(Duration::from_millis(3));
        assert_eq!(histogram.count(), 6);
        let mut text = Exposition::new();
        text.family("t_seconds", Kind::Histogram, "Time.");
        text.histogram("t_seconds", &[("route", "/x")], &histogram);
        assert_eq!(
            text.finish(),
            "# HELP t_seconds Time.\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{route=\"/x\",le=\"0.001\"} 2\n\
             t_seconds_bucket{route=\"/x\",le=\"0.01\"} 5\n\
             t_seconds_bucket{route=\"/x\",le=\"+Inf\"} 6\n\
             t_seconds_sum{route=\"/x\"} 2.015001\n\
             t_seconds_count{route=\"/x\"} 6\n"
        );
    }

    #[test]
    fn counters_and_gauges_count() {
        let counter = Counter::new();
        counter.inc();
        counter.add(41);
        assert_eq!(counter.get(), 42);
        let gauge = Gauge::new();
        gauge.set(5);
        gauge.set_max(3);
        assert_eq!(gauge.get(), 5);
        gauge.set_max(9);
        gauge.set(-1);
        assert_eq!(gauge.get(), -1);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("logstats_api_requests_total"));
        assert!(!valid_name("9x") && !valid_name("a-b") && !valid_name(""));
        assert!(valid_label_name("le") && !valid_label_name("a:b"));
    }
}
