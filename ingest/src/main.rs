//! `logstats-ingest`: the command line of the ingest job.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use logstats_ingest::{
    parse_duration_secs, run, shutdown_on_signals, IngestConfig, DEFAULT_EPOCH_BYTES,
};
use logstats_shared::redact::scrub;

/// Turn request logs into per-customer daily stats rows (SQLite or PostgreSQL).
#[derive(Debug, Parser)]
#[command(name = "logstats-ingest", version)]
struct Cli {
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB.
    // `--help` shows the variable's name, never its value: it may hold a password.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://data/logstats.db"
    )]
    database_url: String,
    /// Timely worker threads (default: the number of cores).
    #[arg(long, env = "LOGSTATS_WORKERS")]
    workers: Option<usize>,
    /// Records older than the newest committed event time minus this are late (s, m, h, d).
    #[arg(long, default_value = "31d", value_parser = parse_duration_secs)]
    allowed_lateness: i64,
    /// Append rejected and late lines, with file, line number and reason, to this file.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Keep reading the files (and new *.log files in given directories) as they grow; commit
    /// at least once a second; stop on SIGINT or SIGTERM after committing what was read.
    #[arg(long)]
    follow: bool,
    /// With --follow: poll every 100 ms instead of using filesystem notifications (for file
    /// systems where notifications do not arrive, such as NFS).
    #[arg(long, requires = "follow")]
    poll: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Bytes of input per epoch (one commit per epoch).
    #[arg(long, default_value_t = DEFAULT_EPOCH_BYTES, hide = true)]
    epoch_bytes: u64,
    /// Log files, or directories whose *.log files are read.
    #[arg(default_value = "data/api_requests.log")]
    paths: Vec<PathBuf>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let config = IngestConfig {
        database_url: cli.database_url,
        workers: cli
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        allowed_lateness_secs: cli.allowed_lateness,
        rejects: cli.rejects,
        paths: cli.paths,
        epoch_bytes: cli.epoch_bytes,
        follow: cli.follow,
        poll_only: cli.poll,
        progress: std::io::stderr().is_terminal() && !cli.json,
    };
    let shutdown = match shutdown_on_signals() {
        Ok(flag) => flag,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(&config, shutdown) {
        Ok(summary) => {
            if cli.json {
                match serde_json::to_string(&summary) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("error: cannot encode the summary: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                eprintln!("{}", summary.human());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Libraries may echo part of the URL they were given; never its password.
            eprintln!("error: {}", scrub(&format!("{e:#}"), &config.database_url));
            ExitCode::FAILURE
        }
    }
}
