//! Retention in the ingest job: `logstats-ingest prune` (one prune, then exit), `--retain DAYS`
//! (the days that age out pruned at start and, in follow mode, checked once a minute), and the
//! floor the stored first kept day puts under the lateness, so the lines of pruned days are
//! counted late and never read into a commit.

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, NaiveTime, Utc};
use logstats_shared::{Pruned, StorageError, Store};

/// How often a follow job applies `--retain` and reads the first kept day another process's
/// prune may have moved.
pub(crate) const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Most days `--retain` accepts (about 1,000 years; every stored day is later than year 1).
pub const MOST_RETAINED_DAYS: u32 = 365_000;

/// Today, in UTC.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The first day `--retain DAYS` keeps on `today`: today and the `DAYS - 1` days before it.
pub fn first_kept_day(today: NaiveDate, retain_days: u32) -> NaiveDate {
    today
        .checked_sub_days(Days::new(u64::from(retain_days.saturating_sub(1))))
        .unwrap_or(NaiveDate::MIN)
}

/// The Unix time of the first second of `day`: the lines before it are late.
pub(crate) fn day_start(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp()
}

/// Whether `--before DAY` may be pruned on `today`: any day up to tomorrow (UTC). A later one
/// would remove days still to come and count every line of them late.
pub fn check_before(day: NaiveDate, today: NaiveDate) -> Result<(), String> {
    let tomorrow = today.succ_opt().unwrap_or(today);
    if day > tomorrow {
        return Err(format!(
            "--before {day} is after tomorrow ({tomorrow}, UTC): it would remove days still to \
             come, and every line of them would be counted late"
        ));
    }
    Ok(())
}

/// One line saying what a prune did.
pub fn describe(pruned: &Pruned, asked: NaiveDate) -> String {
    if pruned.first_kept_day > asked {
        return format!(
            "nothing to prune: the days before {} were pruned already",
            pruned.first_kept_day
        );
    }
    format!(
        "pruned the days before {}: {} customer days of {} customers, {} fleet days",
        pruned.first_kept_day, pruned.customer_days, pruned.customers, pruned.fleet_days
    )
}

/// A job's retention: `--retain`, if given, and when it was last applied.
#[derive(Debug)]
pub(crate) struct Retention {
    retain_days: Option<u32>,
    last_check: Option<Instant>,
}

impl Retention {
    /// The retention of a job started with `--retain retain_days` (none without it).
    pub fn new(retain_days: Option<u32>) -> Self {
        Self {
            retain_days,
            last_check: None,
        }
    }

    /// Whether [`Retention::apply`] is due ([`RETENTION_CHECK_INTERVAL`] after the last).
    pub fn due(&self) -> bool {
        self.last_check
            .is_none_or(|at| at.elapsed() >= RETENTION_CHECK_INTERVAL)
    }

    /// Prunes the days `--retain` no longer keeps (if it is given and some aged out since the
    /// stored first kept day), then returns the first kept day stored (`None`: never pruned).
    pub fn apply(&mut self, store: &Store) -> Result<Option<NaiveDate>, StorageError> {
        self.last_check = Some(Instant::now());
        let stored = store.first_kept_day()?;
        let Some(retain_days) = self.retain_days else {
            return Ok(stored);
        };
        let first = first_kept_day(today(), retain_days);
        if stored.is_some_and(|stored| stored >= first) {
            return Ok(stored);
        }
        let pruned = store.prune_before(first)?;
        log::info!("--retain {retain_days}: {}", describe(&pruned, first));
        Ok(Some(pruned.first_kept_day))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%F").expect("a date")
    }

    #[test]
    fn retain_keeps_today_and_the_days_before_it() {
        assert_eq!(first_kept_day(date("2026-12-06"), 1), date("2026-12-06"));
        assert_eq!(first_kept_day(date("2026-12-06"), 30), date("2026-11-07"));
        assert_eq!(first_kept_day(date("2024-03-01"), 2), date("2024-02-29"));
        assert_eq!(day_start(date("1970-01-02")), 86_400);
        assert_eq!(day_start(date("2024-10-10")), 1_728_518_400);
    }

    #[test]
    fn before_may_be_at_most_tomorrow() {
        let today = date("2026-12-06");
        assert!(check_before(date("2026-12-07"), today).is_ok());
        assert!(check_before(date("2020-01-01"), today).is_ok());
        let error = check_before(date("2026-12-08"), today).expect_err("refused");
        assert_eq!(
            error,
            "--before 2026-12-08 is after tomorrow (2026-12-07, UTC): it would remove days \
             still to come, and every line of them would be counted late"
        );
    }
}
