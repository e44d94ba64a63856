//! Back-pressure, in one place: when worker 0 may plan the next epoch, and how many epochs may
//! wait for the database.
//!
//! The worker loop learns how far its epochs got through one channel of [`Progress`]: the Commit
//! operator says when an epoch entered the commit queue ([`Progress::Handed`]), the committer
//! thread when it committed one or failed. [`InFlight`] counts what it heard, and these rules
//! bound the work in flight:
//! - at most [`PIPELINE_DEPTH`] epochs are planned ahead of the last one handed to the committer
//!   (and lateness is judged against the watermark that far back, so it never depends on
//!   timing);
//! - at most [`COMMIT_QUEUE`] handed epochs wait for the database. When the queue is full, the
//!   next epochs wait in the Commit operator, in order, which offers them again every
//!   [`QUEUE_RETRY`]. It never waits itself, so the workers keep stepping (and a signal is
//!   heard) while the database is away; a waiting epoch does not count as handed, so planning
//!   stops;
//! - following, appends smaller than an epoch are held back while an epoch is being committed,
//!   so that the next epoch takes them all: epochs grow with the commit latency instead of
//!   queueing up behind it;
//! - an epoch's size follows its cells ([`EpochSizer`]): the open (customer, day) cells an epoch
//!   holds, not its bytes, are what the workers, the merge and the commit keep in memory, so
//!   epochs are planned from the cells a byte of the log made in the epochs before, to hold
//!   about a budget of cells each, whatever the number of customers, days or the log's order.

use std::sync::mpsc::Sender;
use std::time::Duration;

/// How many epochs may be planned ahead of the last one handed to the committer. Epoch `e` is
/// judged late against the watermark after epoch `e - PIPELINE_DEPTH`, whatever the timing, so
/// the set of late lines never depends on scheduling.
pub const PIPELINE_DEPTH: u64 = 2;

/// Epochs handed over but not yet committed; beyond this, the next epoch waits in the Commit
/// operator. With [`PIPELINE_DEPTH`] this bounds the memory held while the database is away.
pub const COMMIT_QUEUE: usize = 2;

/// How soon the Commit operator offers an epoch again when the commit queue was full: well
/// under an epoch's commit, so the committer never waits for it, and as often as the loop
/// wakes while it cannot plan.
pub const QUEUE_RETRY: Duration = Duration::from_millis(1);

/// What the loop learns of each epoch handed over, in epoch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handed {
    /// The epoch.
    pub epoch: u64,
    /// Its newest accepted event time (Unix seconds), if any line was accepted.
    pub max_event_time: Option<i64>,
    /// Bytes of log it spanned.
    pub bytes: u64,
    /// Its merged (customer, day) cells.
    pub cells: usize,
}

/// How far an epoch got: what the Commit operator and the committer thread tell the loop. Each
/// kind comes in epoch order; the two senders' messages interleave in any order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The epoch entered the commit queue (from the Commit operator).
    Handed(Handed),
    /// The committer thread committed the epoch (or staged it and then committed the stage).
    Committed {
        /// The epoch.
        epoch: u64,
    },
    /// An epoch could not be committed, or the committer thread is gone: the job stops, and
    /// `Committer::finish` says why.
    Failed,
}

/// Where the Commit operator and the committer thread tell the loop of [`Progress`].
pub type ProgressSender = Sender<Progress>;

/// How far the epochs got, as the loop heard it through [`Progress`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Epochs that entered the commit queue (all those before this number).
    pub handed: u64,
    /// Epochs committed (all those before this number).
    pub committed: u64,
    /// The committer failed: nothing more will be committed.
    pub failed: bool,
}

impl InFlight {
    /// Counts `progress`; returns what an epoch handed over tells the watermark and the sizer.
    pub fn hear(&mut self, progress: Progress) -> Option<Handed> {
        match progress {
            Progress::Handed(handed) => {
                self.handed = self.handed.max(handed.epoch + 1);
                Some(handed)
            }
            Progress::Committed { epoch } => {
                self.committed = self.committed.max(epoch + 1);
                None
            }
            Progress::Failed => {
                self.failed = true;
                None
            }
        }
    }
}

/// Whether epoch `epoch` may be planned once `handed` epochs were handed to the committer.
pub fn may_plan(epoch: u64, handed: u64) -> bool {
    epoch < PIPELINE_DEPTH || handed > epoch - PIPELINE_DEPTH
}

/// Whether, following, planning waits for the commit in progress: epochs before `next_epoch`
/// are not all committed (`committed` of them are) and fewer than `epoch_bytes` wait to be read.
pub fn hold_for_commit(
    follow: bool,
    committed: u64,
    next_epoch: u64,
    pending_bytes: u64,
    epoch_bytes: u64,
) -> bool {
    follow && committed < next_epoch && pending_bytes < epoch_bytes
}

/// Bytes one open (customer, day) cell is counted for against the epoch memory budget: its key
/// and counters in a worker's map and in the merge, its share of the latency lists, and its row
/// in the commit (measured: 250-350 bytes a cell an epoch, glibc's overhead included).
pub const CELL_BYTES: u64 = 320;

/// Bytes one line of a share read as sorted lines and written by its worker to a run of its own
/// is counted for against the epoch memory budget instead (the line's cell is never held
/// otherwise): its key and value as read and again while sorted (12 bytes each), and the
/// lists' room to grow. A log in random order, nearly a cell a line, makes epochs ten times
/// the size they would be at [`CELL_BYTES`] a line: fewer, longer runs for the commit to merge.
pub const SORTED_LINE_BYTES: u64 = 32;

/// The first epoch of a run, before any cell was counted: small, so that a log with a cell
/// every few lines does not make a first epoch of the full size.
pub const FIRST_EPOCH_BYTES: u64 = 2 << 20;

/// The smallest epoch planned from the cells counted (a rest shorter than half an epoch still
/// joins it): below this, the per-commit costs dominate.
pub const MIN_EPOCH_BYTES: u64 = 1 << 20;

/// An epoch is at most this many times the size of the one before: the cells a byte makes are
/// known only for epochs already merged, so the size climbs to the budget in steps.
pub const EPOCH_GROWTH: u64 = 4;

/// Sizes epochs so that each holds about `budget` bytes of cells ([`CELL_BYTES`] each), between
/// [`MIN_EPOCH_BYTES`] and the configured epoch size. The density (cells a byte) is the
/// higher of the last two epochs merged: a denser stretch of log shrinks the next epochs at
/// once, a sparser one lets them grow only after it lasted two epochs.
#[derive(Debug, Clone)]
pub struct EpochSizer {
    max_bytes: u64,
    budget_cells: u64,
    last: u64,
    /// The last two epochs merged, newest first: (bytes, cells).
    densities: [Option<(u64, u64)>; 2],
}

impl EpochSizer {
    /// Epochs of at most `max_bytes`, each holding about `budget` bytes of cells (0: no
    /// budget, every epoch `max_bytes`).
    pub fn new(max_bytes: u64, budget: u64) -> Self {
        let budget_cells = budget / CELL_BYTES;
        let max_bytes = max_bytes.max(1);
        // As if an epoch of a step below the first had been planned.
        let last = if budget_cells == 0 {
            max_bytes
        } else {
            (FIRST_EPOCH_BYTES / EPOCH_GROWTH).min(max_bytes)
        };
        Self {
            max_bytes,
            budget_cells,
            last,
            densities: [None, None],
        }
    }

    /// Counts a merged epoch: `bytes` of log that made `cells` (customer, day) cells.
    pub fn observe(&mut self, bytes: u64, cells: usize) {
        if bytes == 0 {
            return;
        }
        self.densities = [Some((bytes, cells as u64)), self.densities[0]];
    }

    /// Bytes the next epoch may span (tell [`EpochSizer::planned`] what it did span).
    pub fn next_bytes(&self) -> u64 {
        if self.budget_cells == 0 {
            return self.max_bytes;
        }
        // The bytes the budget of cells spans at each density; the denser one wins.
        let wanted = self
            .densities
            .iter()
            .flatten()
            .filter(|&&(_, cells)| cells > 0)
            .map(|&(bytes, cells)| {
                let span = u128::from(self.budget_cells) * u128::from(bytes) / u128::from(cells);
                u64::try_from(span).unwrap_or(u64::MAX)
            })
            .min()
            .unwrap_or(self.max_bytes);
        let ceiling = self.max_bytes.min(self.last.saturating_mul(EPOCH_GROWTH));
        wanted.clamp(MIN_EPOCH_BYTES.min(ceiling), ceiling)
    }

    /// Counts an epoch planned over `bytes`: the next may be [`EPOCH_GROWTH`] times that.
    pub fn planned(&mut self, bytes: u64) {
        self.last = bytes.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_hold_about_the_budget_of_cells_and_grow_in_steps() {
        let budget = 1_000 * CELL_BYTES; // 1,000 cells
        let mut sizer = EpochSizer::new(1 << 30, budget);
        let plan = |sizer: &mut EpochSizer| {
            let bytes = sizer.next_bytes();
            sizer.planned(bytes);
            bytes
        };
        // Nothing counted yet: the first epoch is small, the next ones grow by steps.
        assert_eq!(plan(&mut sizer), FIRST_EPOCH_BYTES);
        assert_eq!(plan(&mut sizer), FIRST_EPOCH_BYTES * EPOCH_GROWTH);
        // A cell every 100 bytes: 100,000 bytes hold the budget, but never below the floor.
        sizer.observe(1_000_000, 10_000);
        assert_eq!(plan(&mut sizer), MIN_EPOCH_BYTES);
        // A cell every 100 kB: 100 MB hold the budget, reached by steps from the last size.
        sizer.observe(100_000_000, 1_000);
        // The denser epoch before still counts: stays small.
        assert_eq!(plan(&mut sizer), MIN_EPOCH_BYTES);
        sizer.observe(100_000_000, 1_000);
        assert_eq!(plan(&mut sizer), MIN_EPOCH_BYTES * EPOCH_GROWTH);
        assert_eq!(plan(&mut sizer), MIN_EPOCH_BYTES * EPOCH_GROWTH.pow(2));
        for _ in 0..10 {
            plan(&mut sizer);
        }
        assert_eq!(plan(&mut sizer), 100_000_000);
        // A denser stretch shrinks the next epoch at once.
        sizer.observe(10_000_000, 5_000);
        assert_eq!(plan(&mut sizer), 2_000_000);
    }

    #[test]
    fn without_a_budget_every_epoch_has_the_configured_size() {
        let mut sizer = EpochSizer::new(128 << 20, 0);
        sizer.planned(1);
        assert_eq!(sizer.next_bytes(), 128 << 20);
        sizer.observe(1 << 20, 1 << 20);
        assert_eq!(sizer.next_bytes(), 128 << 20);
        // A configured size below the first epoch's is kept from the start.
        let small = EpochSizer::new(1 << 10, 1 << 20);
        assert_eq!(small.next_bytes(), 1 << 10);
    }

    #[test]
    fn planning_runs_at_most_pipeline_depth_epochs_ahead_of_the_committer() {
        assert!(may_plan(0, 0));
        assert!(may_plan(PIPELINE_DEPTH - 1, 0));
        assert!(!may_plan(PIPELINE_DEPTH, 0));
        assert!(may_plan(PIPELINE_DEPTH, 1));
        assert!(!may_plan(PIPELINE_DEPTH + 5, 5));
        assert!(may_plan(PIPELINE_DEPTH + 5, 6));
    }

    fn handed(epoch: u64) -> Progress {
        Progress::Handed(Handed {
            epoch,
            max_event_time: Some(1_000),
            bytes: 10,
            cells: 1,
        })
    }

    #[test]
    fn the_loop_counts_what_the_operator_and_the_committer_said() {
        let mut in_flight = InFlight::default();
        assert!(!may_plan(PIPELINE_DEPTH, in_flight.handed));
        // What an epoch handed over says goes on to the watermark and the sizer.
        let said = in_flight.hear(handed(0));
        assert_eq!(said.map(|h| (h.epoch, h.bytes, h.cells)), Some((0, 10, 1)));
        // The committer may say it committed an epoch before the operator's word on the next.
        assert_eq!(in_flight.hear(Progress::Committed { epoch: 0 }), None);
        in_flight.hear(handed(1));
        assert_eq!((in_flight.handed, in_flight.committed), (2, 1));
        assert!(may_plan(PIPELINE_DEPTH + 1, in_flight.handed));
        assert!(!may_plan(PIPELINE_DEPTH + 2, in_flight.handed));
        // Following, epoch 2 waits for epoch 1's commit.
        assert!(hold_for_commit(true, in_flight.committed, 2, 100, 1_000));
        in_flight.hear(Progress::Committed { epoch: 1 });
        assert!(!hold_for_commit(true, in_flight.committed, 2, 100, 1_000));
        assert!(!in_flight.failed);
        in_flight.hear(Progress::Failed);
        assert!(in_flight.failed);
    }

    #[test]
    fn following_holds_small_appends_while_a_commit_is_in_progress() {
        // Committing (1 of 2 epochs committed), a small append: held.
        assert!(hold_for_commit(true, 1, 2, 100, 1_000));
        // A full epoch's worth waiting: planned at once.
        assert!(!hold_for_commit(true, 1, 2, 1_000, 1_000));
        // Nothing being committed: planned at once.
        assert!(!hold_for_commit(true, 2, 2, 100, 1_000));
        // Not following: never held.
        assert!(!hold_for_commit(false, 1, 2, 100, 1_000));
    }
}
