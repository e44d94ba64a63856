//! The run's totals and how they are printed: a progress line on a terminal, a summary at the end.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counts accumulated over committed epochs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Non-blank lines read.
    pub lines: u64,
    /// Lines merged into stats.
    pub accepted: u64,
    /// Invalid lines.
    pub rejected: u64,
    /// Valid lines older than the watermark minus the allowed lateness.
    pub late: u64,
    /// Stats rows inserted or updated.
    pub rows_written: u64,
    /// Bytes committed.
    pub bytes: u64,
    /// Wall time of the committed epochs' shares, summed over the workers, in microseconds.
    #[serde(skip)]
    pub read_micros: u64,
    /// Time the committer spent in commit transactions, in microseconds.
    #[serde(skip)]
    pub commit_micros: u64,
}

/// Where the time went, in seconds: see [`Summary::stages`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stages {
    /// A worker's time from the start to the end of its shares (reading, parsing and
    /// pre-aggregating, with whatever it did between its windows), averaged over the workers.
    pub read_seconds_per_worker: f64,
    /// The committer's time in commit transactions (merging with stored rows, upserting);
    /// it overlaps the reading of later epochs.
    pub commit_seconds: f64,
}

/// What the job prints when it ends: the totals, the time and the rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Counts over the committed epochs.
    #[serde(flatten)]
    pub totals: Totals,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// lines / seconds.
    pub lines_per_second: f64,
    /// Where the time went.
    pub stages: Stages,
}

impl Summary {
    /// The summary of `totals` after `elapsed`, read by `workers` workers.
    pub fn new(totals: &Totals, elapsed: Duration, workers: usize) -> Self {
        let seconds = elapsed.as_secs_f64();
        Self {
            stages: Stages {
                read_seconds_per_worker: totals.read_micros as f64 / 1e6 / workers.max(1) as f64,
                commit_seconds: totals.commit_micros as f64 / 1e6,
            },
            totals: totals.clone(),
            seconds,
            lines_per_second: if seconds > 0.0 {
                totals.lines as f64 / seconds
            } else {
                0.0
            },
        }
    }

    /// One human-readable line.
    pub fn human(&self) -> String {
        format!(
            "lines {} | accepted {} | rejected {} | late {} | rows written {} | {:.2} s | {:.0} lines/s",
            self.totals.lines,
            self.totals.accepted,
            self.totals.rejected,
            self.totals.late,
            self.totals.rows_written,
            self.seconds,
            self.lines_per_second
        )
    }
}

/// Bytes and lines the workers of this process have read in this run, for the progress bar.
#[derive(Debug, Default)]
pub struct ReadCounter {
    bytes: AtomicU64,
    lines: AtomicU64,
}

impl ReadCounter {
    /// Counts a window of `bytes` holding `lines` non-blank lines.
    pub fn add(&self, bytes: u64, lines: u64) {
        self.lines.fetch_add(lines, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Release);
    }

    /// (bytes, lines) read so far: the lines are at least those of the bytes.
    pub fn get(&self) -> (u64, u64) {
        let bytes = self.bytes.load(Ordering::Acquire);
        (bytes, self.lines.load(Ordering::Relaxed))
    }
}

/// A progress bar redrawn on stderr at most every 200 ms, only when stderr is a terminal: the
/// bytes read of the bytes this run has to read (planned, and known but not yet planned).
pub struct Progress {
    enabled: bool,
    started: Instant,
    last_drawn: Option<Instant>,
}

impl Progress {
    /// A progress bar, drawn when `wanted` and stderr is a terminal.
    pub fn new(wanted: bool) -> Self {
        Self {
            enabled: wanted && std::io::stderr().is_terminal(),
            started: Instant::now(),
            last_drawn: None,
        }
    }

    /// Redraws the bar if due: `read` of `to_read` bytes, `lines` lines.
    pub fn update(&mut self, read: &ReadCounter, to_read: u64) {
        if !self.enabled
            || self
                .last_drawn
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last_drawn = Some(Instant::now());
        let (bytes, lines) = read.get();
        eprint!("\r{}", bar(bytes, to_read, lines, self.started.elapsed()));
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if self.enabled && self.last_drawn.is_some() {
            eprint!("\r{}\r", " ".repeat(80));
        }
    }
}

/// The bar's text: `read` of `to_read` bytes, `lines` lines, after `elapsed`.
fn bar(read: u64, to_read: u64, lines: u64, elapsed: Duration) -> String {
    let fraction = if to_read == 0 {
        1.0
    } else {
        (read as f64 / to_read as f64).min(1.0)
    };
    let width = 30;
    let filled = ((fraction * width as f64) as usize).min(width);
    let rate = lines as f64 / elapsed.as_secs_f64().max(1e-9);
    format!(
        "[{}{}] {:>5.1}% {:.1}/{:.1} MB {} lines {:.0} lines/s",
        "#".repeat(filled),
        " ".repeat(width - filled),
        fraction * 100.0,
        read as f64 / 1e6,
        to_read as f64 / 1e6,
        lines,
        rate
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_bytes_read_of_bytes_to_read() {
        let second = Duration::from_secs(1);
        assert_eq!(
            bar(25_000_000, 100_000_000, 500_000, second),
            "[#######                       ]  25.0% 25.0/100.0 MB 500000 lines 500000 lines/s"
        );
        assert!(bar(0, 0, 0, second).contains("100.0%"));
        assert!(bar(5, 4, 1, second).contains("100.0%"));
    }
}
