//! The logstats ingest job: request logs in, per-customer daily stats rows out.

pub mod commit;
pub mod dataflow;
pub mod generate;
pub mod source;
pub mod summary;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use logstats_shared::{Store, StoreOptions};

use crate::commit::Leader;
use crate::source::{expand_paths, Planner, Source};
use crate::summary::{Progress, Summary};

/// Default size of an epoch: the bytes of input committed together.
pub const DEFAULT_EPOCH_BYTES: u64 = 16 << 20;

/// Everything one run needs; built by `main` from the command line.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// Timely worker threads.
    pub workers: usize,
    /// Records older than the watermark minus this many seconds are late.
    pub allowed_lateness_secs: i64,
    /// Where rejected and late lines are appended, if anywhere.
    pub rejects: Option<PathBuf>,
    /// Files, or directories whose `*.log` files are read.
    pub paths: Vec<PathBuf>,
    /// Bytes per epoch.
    pub epoch_bytes: u64,
    /// Draw a progress line on a terminal.
    pub progress: bool,
}

/// Runs the job to the end of its inputs and returns the summary.
pub fn run(config: &IngestConfig) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let store = Store::connect(
        &config.database_url,
        &StoreOptions {
            pool_size: 2,
            ..StoreOptions::default()
        },
    )?;
    let files = expand_paths(&config.paths)?;
    let sources = files
        .iter()
        .map(|path| Source::open(path, &store))
        .collect::<Result<Vec<_>, _>>()?;
    for source in &sources {
        if source.offset > 0 {
            log::info!("{}: resuming at byte {}", source.path, source.offset);
        }
    }
    let leader_parts = Arc::new(Mutex::new(Some((store, sources))));
    let config_for_workers = config.clone();
    let guards = timely::execute(
        timely::Config::process(config.workers.max(1)),
        move |worker| -> anyhow::Result<Option<Summary>> {
            let leader_parts = if worker.index() == 0 {
                leader_parts
                    .lock()
                    .map_err(|_| anyhow::anyhow!("worker start-up state poisoned"))?
                    .take()
            } else {
                None
            };
            let Some((store, sources)) = leader_parts else {
                let input = dataflow::build(worker, None);
                drop(input);
                while worker.step_or_park(Some(Duration::from_millis(10))) {}
                return Ok(None);
            };
            let mut planner = Planner::new(sources.clone(), config_for_workers.epoch_bytes);
            let mut progress = Progress::new(planner.total_bytes());
            let leader = Rc::new(RefCell::new(Leader::new(
                store,
                sources,
                config_for_workers.allowed_lateness_secs,
                config_for_workers.rejects.as_deref(),
            )?));
            let mut input = dataflow::build(worker, Some(Rc::clone(&leader)));
            let mut next_epoch = 0;
            let mut planning_error = None;
            'feed: loop {
                while leader.borrow().error().is_none() && leader.borrow().may_plan(next_epoch) {
                    let late_before = leader.borrow().late_before(next_epoch);
                    match planner.next_plan(next_epoch, late_before) {
                        Ok(Some(plan)) => {
                            leader.borrow_mut().planned(plan.clone());
                            input.send(plan);
                            next_epoch += 1;
                            input.advance_to(next_epoch);
                        }
                        Ok(None) => break 'feed,
                        Err(e) => {
                            planning_error = Some(e);
                            break 'feed;
                        }
                    }
                }
                if leader.borrow().error().is_some() {
                    break;
                }
                worker.step_or_park(Some(Duration::from_millis(1)));
                if config_for_workers.progress {
                    progress.update(leader.borrow().totals());
                }
            }
            drop(input);
            while worker.step_or_park(Some(Duration::from_millis(1))) {
                if config_for_workers.progress {
                    progress.update(leader.borrow().totals());
                }
            }
            progress.finish();
            if let Some(e) = planning_error {
                return Err(e.into());
            }
            let leader = leader.borrow();
            if let Some(e) = leader.error() {
                anyhow::bail!("{e}");
            }
            Ok(Some(Summary::new(leader.totals(), started.elapsed())))
        },
    )
    .map_err(|e| anyhow::anyhow!("starting timely workers: {e}"))?;
    let mut summary = None;
    for result in guards.join() {
        let result = result.map_err(|e| anyhow::anyhow!("timely worker failed: {e}"))?;
        if let Some(s) = result? {
            summary = Some(s);
        }
    }
    summary.context("worker 0 produced no summary")
}

/// Parses a lateness such as `31d`, `12h`, `30m`, `45s` or `3600` (seconds).
pub fn parse_duration_secs(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let value: i64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 31d, 12h, 30m, 45s"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}: use s, m, h or d"
            ))
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lateness() {
        assert_eq!(parse_duration_secs("31d"), Ok(31 * 86_400));
        assert_eq!(parse_duration_secs("12h"), Ok(43_200));
        assert_eq!(parse_duration_secs("30m"), Ok(1_800));
        assert_eq!(parse_duration_secs("45s"), Ok(45));
        assert_eq!(parse_duration_secs("3600"), Ok(3600));
        assert!(parse_duration_secs("3w").is_err());
        assert!(parse_duration_secs("d").is_err());
        assert!(parse_duration_secs("-1d").is_err());
    }
}
