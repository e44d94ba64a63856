//! The watermark (the newest event time handed to the committer) and which lines it makes late.
//!
//! Epoch `e` is judged against the watermark after epoch `e - PIPELINE_DEPTH` (or the stored one
//! for the first epochs), whatever the timing of the workers and the committer, so the set of
//! late lines depends only on the input.

use std::collections::BTreeMap;

use crate::pacing::PIPELINE_DEPTH;

/// The watermark after each recent epoch, and the allowed lateness.
#[derive(Debug)]
pub struct Lateness {
    /// The watermark stored when the job started.
    initial: Option<i64>,
    /// The newest event time of the epochs handed over so far (and `initial`).
    current: Option<i64>,
    /// `current` after each of the last epochs, as far back as [`Lateness::late_before`] looks.
    after: BTreeMap<u64, Option<i64>>,
    /// How far before the watermark a line may be and still count (seconds).
    allowed_secs: i64,
    /// The first second of the first kept day (see `crate::retention`): lines before it are
    /// late whatever the watermark.
    floor: Option<i64>,
    /// `--backfill`: no watermark, and none made from the lines read (only the floor holds).
    backfill: bool,
}

impl Lateness {
    /// Starting from the stored watermark `initial`, allowing lines `allowed_secs` before it.
    pub fn new(initial: Option<i64>, allowed_secs: i64) -> Self {
        Self {
            initial,
            current: initial,
            after: BTreeMap::new(),
            allowed_secs,
            floor: None,
            backfill: false,
        }
    }

    /// For a `--backfill` run: no line is late but those of pruned days (the floor), whatever
    /// the stored watermark and the lines read.
    pub fn backfill(allowed_secs: i64) -> Self {
        Self {
            backfill: true,
            ..Self::new(None, allowed_secs)
        }
    }

    /// Makes every line before `event_time` late from now on (the first second of the first
    /// day a prune kept); the floor only moves forward.
    pub fn set_floor(&mut self, event_time: i64) {
        self.floor = self.floor.max(Some(event_time));
    }

    /// The event time before which lines of `epoch` are late (`None`: nothing is late).
    pub fn late_before(&self, epoch: u64) -> Option<i64> {
        let watermark = match epoch.checked_sub(PIPELINE_DEPTH) {
            Some(reference) => self.after.get(&reference).copied().flatten(),
            None => self.initial,
        };
        watermark
            .map(|w| w.saturating_sub(self.allowed_secs))
            .max(self.floor)
    }

    /// Records that `epoch`, whose newest event time is `max_event_time`, was handed over.
    pub fn advance(&mut self, epoch: u64, max_event_time: Option<i64>) {
        if self.backfill {
            return;
        }
        self.current = self.current.max(max_event_time);
        self.after.insert(epoch, self.current);
        self.after.retain(|&e, _| e + PIPELINE_DEPTH + 1 > epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfill_makes_only_pruned_days_late() {
        let mut lateness = Lateness::backfill(100);
        for epoch in 0..5 {
            lateness.advance(epoch, Some(1_000_000));
            assert_eq!(lateness.late_before(epoch + 1), None);
        }
        lateness.set_floor(86_400);
        assert_eq!(lateness.late_before(9), Some(86_400));
    }

    #[test]
    fn an_epoch_is_judged_by_the_watermark_pipeline_depth_epochs_before_it() {
        let mut lateness = Lateness::new(Some(1_000), 100);
        // The first epochs: the stored watermark.
        assert_eq!(lateness.late_before(0), Some(900));
        assert_eq!(lateness.late_before(PIPELINE_DEPTH - 1), Some(900));
        lateness.advance(0, Some(5_000));
        lateness.advance(1, Some(2_000)); // older: the watermark stays
        lateness.advance(2, None);
        assert_eq!(lateness.late_before(PIPELINE_DEPTH), Some(4_900));
        assert_eq!(lateness.late_before(PIPELINE_DEPTH + 1), Some(4_900));
        lateness.advance(3, Some(9_000));
        assert_eq!(lateness.late_before(3 + PIPELINE_DEPTH), Some(8_900));
        // Old epochs are forgotten: memory stays bounded however long the job runs.
        for epoch in 4..1_000 {
            lateness.advance(epoch, Some(9_000 + epoch as i64));
        }
        assert!(lateness.after.len() <= PIPELINE_DEPTH as usize + 1);
        assert_eq!(lateness.late_before(1_001), Some(9_000 + 999 - 100));
    }

    #[test]
    fn the_first_kept_day_is_a_floor_under_the_lateness() {
        let mut lateness = Lateness::new(None, 100);
        lateness.set_floor(5_000);
        assert_eq!(lateness.late_before(0), Some(5_000), "no watermark yet");
        lateness.advance(0, Some(10_000));
        assert_eq!(lateness.late_before(PIPELINE_DEPTH), Some(9_900));
        lateness.set_floor(9_990);
        assert_eq!(lateness.late_before(PIPELINE_DEPTH), Some(9_990));
        lateness.set_floor(1_000); // never back
        assert_eq!(lateness.late_before(PIPELINE_DEPTH), Some(9_990));
    }

    #[test]
    fn without_a_watermark_nothing_is_late() {
        let mut lateness = Lateness::new(None, 0);
        assert_eq!(lateness.late_before(0), None);
        lateness.advance(0, None);
        assert_eq!(lateness.late_before(PIPELINE_DEPTH), None);
        assert_eq!(lateness.late_before(PIPELINE_DEPTH + 1), None);
    }
}
