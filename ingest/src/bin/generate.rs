//! `logstats-generate`: writes synthetic request logs, all at once or as a growing log.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use logstats_ingest::generate::{
    GeneratorConfig, LineGenerator, TimeWindow, CUSTOMERS, DEFAULT_LINES, DEFAULT_SEED,
};

/// Bytes buffered between the generator and the file.
const WRITE_BUFFER_BYTES: usize = 4 << 20;

/// Writes synthetic request logs in the reference generator's format.
///
/// Lines are `YYYY-MM-DD HH:MM:SS cust_N /api/v1/resourceK STATUS D.DDD`
/// (customers cust_1..cust_50 unless --customers says otherwise, resources 1..4, statuses 200 201 400 401 403 404 500,
/// durations 0.100..2.000 s, timestamps uniform over a 30-day window (--days) and unordered).
#[derive(Debug, Parser)]
#[command(name = "logstats-generate", version)]
struct Cli {
    /// Number of lines to write (not with --rate).
    #[arg(long, default_value_t = DEFAULT_LINES, conflicts_with = "rate")]
    lines: u64,

    /// PRNG seed: the same seed, line count and --end give byte-identical output.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,

    /// End of the time window, UTC. `YYYY-MM-DD` covers whole days: from 00:00:00 thirty days
    /// before that date through 23:59:59 on it (`2024-11-09` gives 2024-10-10..=2024-11-09).
    /// `YYYY-MM-DDTHH:MM:SS` gives the 30 days (2,592,000 s) up to that instant. Default: now
    /// (in rate mode, the wall-clock time of each batch).
    #[arg(long, value_parser = TimeWindow::parse_end, value_name = "DATE|DATETIME")]
    end: Option<TimeWindow>,

    /// Length of the window in days before the end, instead of 30: `--days 365 --end 2024-11-09`
    /// covers 2023-11-10 through 2024-11-09 (`--days 0` that one day).
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=3_000_000))]
    days: u32,

    /// File to write, `-` for stdout. Created (with its directory) if missing.
    #[arg(long, short, default_value = "data/api_requests.log")]
    output: PathBuf,

    /// Append to the file instead of truncating it.
    #[arg(long)]
    append: bool,

    /// Number of customers, `cust_1` to `cust_N`.
    #[arg(long, value_name = "N", default_value_t = CUSTOMERS, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    customers: u32,

    /// Rate mode: append N lines every --interval-ms, flushing each batch, to simulate a growing
    /// log (always appends).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,

    /// Rate mode: milliseconds between batches.
    #[arg(long, value_name = "M", default_value_t = 1000, requires = "rate")]
    interval_ms: u64,

    /// Rate mode: exit after this many lines in total (default: run until killed).
    #[arg(long, value_name = "T", requires = "rate")]
    max_lines: Option<u64>,
}

/// What was written, for the summary on stderr.
struct Written {
    lines: u64,
    bytes: u64,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let started = Instant::now();
    match run(&cli) {
        Ok(written) => {
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "logstats-generate: {} lines, {} bytes in {:.3} s ({:.0} lines/s) to {}",
                written.lines,
                written.bytes,
                seconds,
                written.lines as f64 / seconds.max(1e-9),
                cli.output.display(),
            );
        }
        // A closed pipe (`| head`) is the reader saying it has enough.
        Err(e) if is_broken_pipe(&e) => {}
        Err(e) => {
            eprintln!("logstats-generate: error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// The window lines are drawn from: --end (default now) and --days.
fn window_of(cli: &Cli) -> anyhow::Result<TimeWindow> {
    let end = cli.end.unwrap_or_else(TimeWindow::ending_now);
    Ok(end.spanning_days(cli.days)?)
}

fn run(cli: &Cli) -> anyhow::Result<Written> {
    let append = cli.append || cli.rate.is_some();
    let mut out = open_output(&cli.output, append)?;
    let written = match cli.rate {
        None => {
            let config = GeneratorConfig {
                lines: cli.lines,
                seed: cli.seed,
                window: window_of(cli)?,
                customers: cli.customers,
            };
            let bytes = logstats_ingest::generate::write_lines(&config, &mut out)?;
            Written {
                lines: cli.lines,
                bytes,
            }
        }
        Some(rate) => run_rate(cli, rate, &mut out)?,
    };
    out.flush()?;
    Ok(written)
}

/// Appends `rate` lines every `interval_ms` until `max_lines`, flushing every batch so a
/// follower sees whole lines as soon as they are generated.
fn run_rate(cli: &Cli, rate: u64, out: &mut impl Write) -> anyhow::Result<Written> {
    let interval = Duration::from_millis(cli.interval_ms);
    let mut generator = LineGenerator::new(cli.seed, window_of(cli)?).customers(cli.customers);
    let mut buf = Vec::new();
    let mut written = Written { lines: 0, bytes: 0 };
    let mut next_batch = Instant::now();
    loop {
        let batch = cli
            .max_lines
            .map_or(rate, |max| rate.min(max - written.lines));
        generator.set_window(window_of(cli)?);
        written.bytes += generator.write_batch(batch, &mut buf, out)?;
        out.flush()?;
        written.lines += batch;
        log::debug!("appended {batch} lines ({} in total)", written.lines);
        if cli.max_lines.is_some_and(|max| written.lines >= max) {
            return Ok(written);
        }
        next_batch += interval;
        // Keep the pace without bursts after a stall: never schedule in the past.
        let now = Instant::now();
        if next_batch > now {
            std::thread::sleep(next_batch - now);
        } else {
            next_batch = now;
        }
    }
}

fn open_output(path: &Path, append: bool) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::with_capacity(
            WRITE_BUFFER_BYTES,
            io::stdout().lock(),
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating directory {}", dir.display()))?;
    }
    let file: File = if append {
        OpenOptions::new().create(true).append(true).open(path)
    } else {
        File::create(path)
    }
    .with_context(|| format!("opening {}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file)))
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
