//! `logstats-ingest`: the command line of the ingest job.

use std::io::IsTerminal;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use std::time::Duration;

use chrono::NaiveDate;
use clap::builder::RangedU64ValueParser;
use clap::error::ErrorKind;
use clap::{ArgGroup, CommandFactory, Parser, Subcommand};
use log::Level;
use logstats_ingest::cluster::secret::ClusterSecret;
use logstats_ingest::cluster::Cluster;
use logstats_ingest::inputs::NamePattern;
use logstats_ingest::metrics::{self, IngestMetrics};
use logstats_ingest::push::PushLimits;
use logstats_ingest::retention::{self, MOST_RETAINED_DAYS};
use logstats_ingest::{
    parse_duration_secs, run, shutdown_on_signals, IngestConfig, PushConfig, DEFAULT_EPOCH_BYTES,
    DEFAULT_EPOCH_MEMORY, DEFAULT_STAGE_BYTES,
};
use logstats_shared::logging::{self, LogFormat};
use logstats_shared::record::{DurationUnit, InputFormat, JsonField, JsonFields, LineParser};
use logstats_shared::redact::scrub;
use logstats_shared::tokens::Tokens;
use logstats_shared::units::parse_bytes;
use logstats_shared::{Store, StoreOptions};

/// The allocator: the commit, the merge of the staged runs and the dataflow allocate and free
/// many small values on several threads at once, where glibc's malloc spent a quarter of the
/// ingest's CPU time (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Turn request logs into per-customer daily stats rows (SQLite, PostgreSQL or MySQL/MariaDB).
#[derive(Debug, Parser)]
#[command(name = "logstats-ingest", version)]
struct Cli {
    /// Database URL: sqlite://PATH, postgres://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB.
    // `--help` shows the variable's name, never its value: it may hold a password.
    #[arg(
        long,
        global = true,
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
    /// Keep today and the DAYS - 1 days before it (UTC): older days are pruned at start and,
    /// with --follow, as they age out (checked once a minute); their lines count as late.
    #[arg(long, value_name = "DAYS", value_parser = retained_days())]
    retain: Option<u32>,
    /// Append rejected and late lines, with file, line number and reason, to this file.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Keep reading the files (and new files matching --include in given directories) as they
    /// grow; commit at least once a second; stop on SIGINT or SIGTERM after committing what was
    /// read.
    #[arg(long)]
    follow: bool,
    /// With --follow: poll every 100 ms instead of using filesystem notifications (for file
    /// systems where notifications do not arrive, such as NFS).
    #[arg(long, requires = "follow")]
    poll: bool,
    /// With --follow: serve GET /metrics (Prometheus text format) on this address, e.g.
    /// 127.0.0.1:9187 (port 0: any free port, logged at start). Default: LOGSTATS_METRICS_BIND,
    /// if set, in follow mode only (a batch run ignores it). In a cluster, process 0 only.
    // Not `env = ...`: clap would refuse a batch run in an environment that sets it.
    #[arg(long, value_name = "ADDR", requires = "follow")]
    metrics_bind: Option<String>,
    /// Take lines pushed over HTTP on this address, e.g. 127.0.0.1:8081: POST /v1/lines with
    /// native lines, JSON lines or a JSON array, gzip allowed; answered once committed (see
    /// docs/PUSH.md). The job then runs until SIGINT or SIGTERM; GET /metrics is served there.
    #[arg(long, value_name = "ADDR", env = "LOGSTATS_LISTEN")]
    listen: Option<String>,
    /// With --listen: require `Authorization: Bearer TOKEN` on every push, TOKEN one of this
    /// file's (the API's format: `sha256:HEX CUSTOMERS`, made by `logstats-api new-token`); lines
    /// of customers outside its scope are rejected. Re-read on SIGHUP.
    #[arg(
        long,
        value_name = "PATH",
        requires = "listen",
        env = "LOGSTATS_PUSH_TOKENS"
    )]
    tokens: Option<PathBuf>,
    /// With --listen: largest request body as sent, in bytes (413 beyond). Every size takes a
    /// unit too: 64MiB, 2G (powers of 1024), 500MB (powers of 1000).
    #[arg(long, value_name = "BYTES", requires = "listen", default_value_t = PushLimits::default().max_body, value_parser = parse_bytes)]
    push_max_body: u64,
    /// With --listen: largest batch once decompressed, in bytes (413 beyond).
    #[arg(long, value_name = "BYTES", requires = "listen", default_value_t = PushLimits::default().max_batch, value_parser = parse_bytes)]
    push_max_batch: u64,
    /// With --listen: most lines in a batch (413 beyond).
    #[arg(long, value_name = "N", requires = "listen", default_value_t = PushLimits::default().max_lines)]
    push_max_lines: u64,
    /// With --listen: bytes of request bodies held in memory at once (503 with Retry-After
    /// beyond).
    #[arg(long, value_name = "BYTES", requires = "listen", default_value_t = PushLimits::default().memory, value_parser = parse_bytes)]
    push_memory: u64,
    /// With --listen: bytes of pushed lines waiting for their commit, spooled in the temporary
    /// directory (503 with Retry-After beyond).
    #[arg(long, value_name = "BYTES", requires = "listen", default_value_t = PushLimits::default().backlog, value_parser = parse_bytes)]
    push_backlog: u64,
    /// With --listen: how long an Idempotency-Key is remembered after its batch was committed
    /// (s, m, h, d).
    #[arg(long, value_name = "DURATION", requires = "listen", default_value = "24h", value_parser = parse_duration_secs)]
    push_key_ttl: i64,
    /// With --listen: how long a request may take to send its body, in seconds (408 beyond).
    #[arg(long, value_name = "SECONDS", requires = "listen", default_value_t = PushLimits::default().body_timeout_secs, value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    push_body_timeout: u64,
    /// Load old lines into their days beside a live job: no line is late by the watermark (only
    /// those of pruned days), and the stored watermark stays where the live job keeps it.
    #[arg(long)]
    backfill: bool,
    /// With --listen: a batch sent without an Idempotency-Key is keyed by the SHA-256 of its
    /// body, so a shipper that resends a batch unchanged (Vector, Fluent Bit) counts it once;
    /// two batches of the same bytes within --push-key-ttl then count once too.
    #[arg(long, requires = "listen", env = "LOGSTATS_PUSH_KEY_FROM_BODY")]
    push_key_from_body: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// How log lines are written on stderr: text, or one JSON object per line (timestamp,
    /// level, target, message).
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Run as one process of a cluster of N (with --process and --hostfile). Process 0 plans
    /// and commits (only it opens the database and writes rejects); the others read their
    /// shares of each file and send their deltas to it. Start every process with the same
    /// inputs at the same paths (a shared volume, or identical copies) and the same --workers.
    /// A lost process stops the whole job; restart them all to resume from the last commit.
    #[arg(
        long,
        value_name = "N",
        requires_all = ["process", "hostfile"],
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024)
    )]
    processes: Option<usize>,
    /// This process's index in the cluster: 0 to N-1 (0 commits).
    #[arg(long, value_name = "I", requires = "processes")]
    process: Option<usize>,
    /// The cluster's addresses: one host:port a line, in process order (blank lines and #
    /// comments allowed). Process I listens on the I-th address, counting from 0; the later
    /// processes connect to it.
    #[arg(long, value_name = "PATH", requires = "processes")]
    hostfile: Option<PathBuf>,
    /// With --processes 2 or more (required then): a file holding the cluster's secret, the
    /// same for every process, at least 16 bytes (trailing whitespace is trimmed), e.g. from
    /// `head -c 32 /dev/urandom | base64`. The processes prove it to each other before
    /// anything else crosses a connection; one that does not is dropped.
    // Not `requires = "processes"`: an environment that sets it would refuse a single process.
    #[arg(long, value_name = "PATH", env = "LOGSTATS_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// With --processes: how long to wait for the other processes to connect at the start
    /// (s, m, h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    connect_timeout: i64,
    /// Most bytes of input per epoch (one commit per epoch).
    #[arg(long, default_value_t = DEFAULT_EPOCH_BYTES, hide = true, value_parser = parse_bytes)]
    epoch_bytes: u64,
    /// Memory for an epoch's open (customer, day) cells, in bytes: epochs are sized from the
    /// cells the log made so far to hold about this much (several epochs are in flight at once;
    /// see docs/INGEST.md, `--epoch-memory`). 0 sizes every epoch at its most bytes.
    #[arg(long, value_name = "BYTES", env = "LOGSTATS_EPOCH_MEMORY", default_value_t = DEFAULT_EPOCH_MEMORY, value_parser = parse_bytes)]
    epoch_memory: u64,
    /// Without --follow, --listen or standard input: stage the epochs read in sorted runs on disk (in $TMPDIR,
    /// unlinked files) up to this many bytes, then commit them in one transaction that writes
    /// each (customer, day) row once; a run stopped before a commit reads those lines again
    /// next time. 0 commits every epoch on its own.
    #[arg(long, value_name = "BYTES", env = "LOGSTATS_STAGE_BYTES", default_value_t = DEFAULT_STAGE_BYTES, value_parser = parse_bytes)]
    stage_bytes: u64,
    /// How the lines are written: native (`DATE TIME CUSTOMER PATH STATUS SECONDS`), json (one
    /// object a line), or auto: each line whose first byte other than a space is `{` is JSON,
    /// any other native.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto, hide_possible_values = true)]
    format: InputFormat,
    /// JSON lines: the field of the request's time, RFC 3339 (any offset) or Unix seconds.
    /// Dotted for nested objects (`request.ts`); a number indexes an array.
    #[arg(long, value_name = "FIELD", default_value = "timestamp")]
    json_timestamp: String,
    /// JSON lines: the field of the customer id, e.g. `request.headers.X-Customer-Id.0`.
    #[arg(long, value_name = "FIELD", default_value = "customer_id")]
    json_customer_id: String,
    /// JSON lines: the field of the request's path.
    #[arg(long, value_name = "FIELD", default_value = "path")]
    json_path: String,
    /// JSON lines: the field of the HTTP status.
    #[arg(long, value_name = "FIELD", default_value = "status")]
    json_status: String,
    /// JSON lines: the field of the request's duration, in --json-duration-unit.
    #[arg(long, value_name = "FIELD", default_value = "duration")]
    json_duration: String,
    /// JSON lines: the unit of the duration field: s, ms, us or ns.
    #[arg(
        long,
        value_name = "UNIT",
        value_enum,
        default_value_t = DurationUnit::S,
        hide_possible_values = true
    )]
    json_duration_unit: DurationUnit,
    /// Which files of a directory given as a path are read: a shell pattern for the file name
    /// (`*`, `?`, `[a-z]`), repeatable (default: *.log).
    #[arg(long, value_name = "GLOB")]
    include: Vec<NamePattern>,
    /// Stop with exit code 4, before committing it, at the epoch that takes the share of
    /// rejected lines among this run's lines above R (0 to 1; 0: any rejected line stops).
    #[arg(long, value_name = "R", value_parser = parse_ratio)]
    max_rejected_ratio: Option<f64>,
    /// Log files, directories whose files matching --include are read, or - for standard
    /// input, read to its end [default: data/api_requests.log, none with --listen].
    paths: Vec<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// What the job can do besides ingesting.
#[derive(Debug, Subcommand)]
enum Command {
    /// Remove the days before a date, with everything derived from them, in one transaction;
    /// running APIs stop serving them on their next request, and their lines count as late
    /// from then on. Prints what it removed, then exits.
    Prune(PruneArgs),
    /// Copy a SQLite database to a new file, whole and consistent, while jobs go on committing
    /// (SQLite's VACUUM INTO). PostgreSQL and MySQL/MariaDB: use pg_dump, or mariadb-dump
    /// --single-transaction.
    Backup(BackupArgs),
    /// Copy the lines a rejects file (--rejects) lists as late, whole, from the log files it
    /// names into a new file, for a --backfill run to store them into their days once.
    LateLines(LateLinesArgs),
}

/// `logstats-ingest late-lines`: which rejects file, and where the lines go.
#[derive(Debug, clap::Args)]
struct LateLinesArgs {
    /// The rejects file of the runs that counted the lines late.
    rejects: PathBuf,
    /// The new file (an existing one is never overwritten: a second copy would count the lines
    /// twice); readable by its owner only.
    #[arg(long, value_name = "PATH")]
    output: PathBuf,
}

/// `logstats-ingest backup`: where the copy goes.
#[derive(Debug, clap::Args)]
struct BackupArgs {
    /// The new file (an existing one is never overwritten); readable by its owner only.
    #[arg(long, value_name = "PATH")]
    to: PathBuf,
}

/// `logstats-ingest prune`: which days to remove.
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("days").required(true).args(["before", "retain"])))]
struct PruneArgs {
    /// Remove every day before DATE (YYYY-MM-DD, UTC; at most tomorrow).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    before: Option<NaiveDate>,
    /// Keep today and the DAYS - 1 days before it (UTC); remove the older ones.
    #[arg(long, value_name = "DAYS", value_parser = retained_days())]
    retain: Option<u32>,
}

/// A `--retain`: 1 to [`MOST_RETAINED_DAYS`] days.
fn retained_days() -> RangedU64ValueParser<u32> {
    RangedU64ValueParser::<u32>::new().range(1..=u64::from(MOST_RETAINED_DAYS))
}

/// A `--before`: `YYYY-MM-DD`.
fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("invalid date {text:?}: expected YYYY-MM-DD"))
}

/// A `--max-rejected-ratio`: a number from 0 to 1.
fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?} is not a ratio from 0 to 1 (e.g. 0.01)")),
    }
}

/// The JSON fields the flags name; a usage error (exit code 2) when they cannot be used.
fn json_fields_of(cli: &Cli) -> JsonFields {
    let name = |field: JsonField| match field {
        JsonField::Timestamp => cli.json_timestamp.clone(),
        JsonField::CustomerId => cli.json_customer_id.clone(),
        JsonField::Path => cli.json_path.clone(),
        JsonField::Status => cli.json_status.clone(),
        JsonField::Duration => cli.json_duration.clone(),
    };
    JsonFields::new(name, cli.json_duration_unit).unwrap_or_else(|e| {
        Cli::command()
            .error(ErrorKind::ValueValidation, e.to_string())
            .exit()
    })
}

/// A `--connect-timeout`: a duration of at least a second.
fn parse_timeout(text: &str) -> Result<i64, String> {
    match parse_duration_secs(text)? {
        0 => Err("the timeout must be at least 1s".to_string()),
        seconds => Ok(seconds),
    }
}

/// The cluster the flags describe, or `None` for a single process; a usage error (exit code 2,
/// as clap's own) when the flags or the hostfile are wrong.
fn cluster_of(cli: &Cli, workers: usize) -> Option<Cluster> {
    let usage_error = |message: String| -> ! {
        Cli::command()
            .error(ErrorKind::ValueValidation, message)
            .exit()
    };
    let (Some(processes), Some(process), Some(hostfile)) =
        (cli.processes, cli.process, cli.hostfile.as_ref())
    else {
        return None;
    };
    let text = std::fs::read_to_string(hostfile).unwrap_or_else(|e| {
        usage_error(format!(
            "cannot read the hostfile {}: {e}",
            hostfile.display()
        ))
    });
    let timeout = Duration::from_secs(cli.connect_timeout.unsigned_abs());
    // Read only when there is someone to prove it to; its errors never show its bytes.
    let secret = cli
        .cluster_secret_file
        .as_ref()
        .filter(|_| processes > 1)
        .map(|path| ClusterSecret::from_file(path).unwrap_or_else(|e| usage_error(e.to_string())));
    let cluster = Cluster::from_flags(
        processes, process, hostfile, &text, workers, timeout, secret,
    )
    .unwrap_or_else(|message| usage_error(message));
    if processes > 1 && cli.paths.iter().any(|p| logstats_ingest::is_stdin(p)) {
        usage_error(
            "- (standard input) is for a single process: the others of a cluster cannot read \
             this process's pipe"
                .to_string(),
        );
    }
    if processes > 1 && cli.listen.is_some() {
        usage_error(
            "--listen is for a single process: the others of a cluster cannot read the batches \
             pushed to this one"
                .to_string(),
        );
    }
    if process != 0 && cli.metrics_bind.is_some() {
        usage_error(format!(
            "--metrics-bind is for process 0 of a cluster only (it commits and counts); this is \
             process {process}"
        ));
    }
    Some(cluster)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Prune(args)) => {
            logging::init(cli.log_format);
            return prune(&cli, args);
        }
        Some(Command::Backup(args)) => {
            logging::init(cli.log_format);
            return backup(&cli, args);
        }
        Some(Command::LateLines(args)) => {
            logging::init(cli.log_format);
            return late_lines(&cli, args);
        }
        None => {}
    }
    let workers = cli
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cluster = cluster_of(&cli, workers);
    let parser = Arc::new(LineParser::new(cli.format, json_fields_of(&cli)));
    let reads_only = cluster.as_ref().is_some_and(|c| !c.is_leader());
    logging::init(cli.log_format);
    let format = cli.log_format;
    // Whatever RUST_LOG says: a fatal error, as `error: ...` or a JSON record.
    let fail = |message: &str| {
        let message = match format {
            LogFormat::Text => format!("error: {message}"),
            LogFormat::Json => message.to_string(),
        };
        logging::emit(
            format,
            Level::Error,
            "logstats_ingest",
            format_args!("{message}"),
        );
        ExitCode::FAILURE
    };
    let metrics = Arc::new(IngestMetrics::default());
    let metrics_bind = cli.metrics_bind.clone().or_else(|| {
        std::env::var("LOGSTATS_METRICS_BIND")
            .ok()
            .filter(|address| cli.follow && !reads_only && !address.is_empty())
    });
    if let Some(address) = &metrics_bind {
        let served = TcpListener::bind(address).and_then(|listener| {
            let local = listener.local_addr()?;
            metrics::serve(listener, Arc::clone(&metrics))?;
            Ok(local)
        });
        match served {
            Ok(local) => log::info!("metrics on http://{local}/metrics"),
            Err(e) => return fail(&format!("serving metrics on {address}: {e}")),
        }
    }
    let push = match &cli.listen {
        Some(address) => match push_config(&cli, address) {
            Ok(push) => Some(push),
            Err(message) => return fail(&message),
        },
        None => None,
    };
    let paths = match (cli.paths.is_empty(), push.is_some()) {
        (true, false) => vec![PathBuf::from("data/api_requests.log")],
        _ => cli.paths,
    };
    let config = IngestConfig {
        database_url: cli.database_url,
        workers,
        allowed_lateness_secs: cli.allowed_lateness,
        retain_days: cli.retain,
        rejects: cli.rejects,
        paths,
        include: cli.include,
        parser,
        max_rejected_ratio: cli.max_rejected_ratio,
        epoch_bytes: cli.epoch_bytes,
        epoch_memory: cli.epoch_memory,
        stage_bytes: cli.stage_bytes,
        follow: cli.follow,
        poll_only: cli.poll,
        // Process 0's workers read only part of the bytes: no bar in a cluster.
        progress: std::io::stderr().is_terminal()
            && !cli.json
            && format == LogFormat::Text
            && cluster.is_none(),
        metrics,
        cluster,
        push,
        backfill: cli.backfill,
    };
    let shutdown = match shutdown_on_signals() {
        Ok(flag) => flag,
        Err(e) => return fail(&format!("{e:#}")),
    };
    match run(&config, shutdown) {
        // A cluster process other than 0: it said what it read; process 0 prints the summary.
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(summary)) => {
            if cli.json {
                match serde_json::to_string(&summary) {
                    Ok(json) => println!("{json}"),
                    Err(e) => return fail(&format!("cannot encode the summary: {e}")),
                }
            } else {
                logging::emit(
                    format,
                    Level::Info,
                    "logstats_ingest",
                    format_args!("{}", summary.human()),
                );
            }
            ExitCode::SUCCESS
        }
        // Libraries may echo part of the URL they were given; never its password.
        Err(e) => {
            fail(&scrub(&format!("{e:#}"), &config.database_url));
            ExitCode::from(e.exit_status())
        }
    }
}

/// `--listen` and its limits: the address bound (an error names it), the tokens read.
fn push_config(cli: &Cli, address: &str) -> Result<PushConfig, String> {
    let listener = TcpListener::bind(address)
        .map_err(|e| format!("listening for pushes on {address}: {e}"))?;
    let tokens = match &cli.tokens {
        Some(path) => {
            let tokens = Arc::new(Tokens::load(path).map_err(|e| e.to_string())?);
            tokens
                .reload_on_sighup()
                .map_err(|e| format!("handling SIGHUP: {e}"))?;
            Some(tokens)
        }
        None => None,
    };
    let local = listener
        .local_addr()
        .map_err(|e| format!("listening for pushes on {address}: {e}"))?;
    log::info!("taking pushed lines on http://{local}/v1/lines");
    Ok(PushConfig {
        listener: Arc::new(listener),
        tokens,
        limits: PushLimits {
            max_body: cli.push_max_body,
            max_batch: cli.push_max_batch,
            max_lines: cli.push_max_lines,
            memory: cli.push_memory,
            backlog: cli.push_backlog,
            key_ttl_secs: cli.push_key_ttl,
            body_timeout_secs: cli.push_body_timeout,
        },
        key_from_body: cli.push_key_from_body,
    })
}

/// `logstats-ingest prune`: one prune, what it did on stderr (or as JSON on stdout).
fn prune(cli: &Cli, args: &PruneArgs) -> ExitCode {
    let today = retention::today();
    let first = match (args.before, args.retain) {
        (Some(day), _) => {
            if let Err(message) = retention::check_before(day, today) {
                Cli::command()
                    .error(ErrorKind::ValueValidation, message)
                    .exit()
            }
            day
        }
        (None, Some(days)) => retention::first_kept_day(today, days),
        // The argument group requires one of them.
        (None, None) => Cli::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "--before or --retain is required",
            )
            .exit(),
    };
    let options = StoreOptions {
        pool_size: 1,
        // A prune scans every customer's rows: SQLite's mapped pages would count in its
        // resident memory, up to the map's 256 MiB.
        mapped_reads: false,
        ..StoreOptions::default()
    };
    let pruned =
        Store::connect(&cli.database_url, &options).and_then(|store| store.prune_before(first));
    match pruned {
        Ok(pruned) => {
            if cli.json {
                let json = serde_json::json!({
                    "first_kept_day": pruned.first_kept_day.to_string(),
                    "customer_days": pruned.customer_days,
                    "fleet_days": pruned.fleet_days,
                    "customers": pruned.customers,
                });
                println!("{json}");
            } else {
                logging::emit(
                    cli.log_format,
                    Level::Info,
                    "logstats_ingest",
                    format_args!("{}", retention::describe(&pruned, first)),
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => storage_failure(cli, &e),
    }
}

/// `logstats-ingest backup --to PATH`: one copy of a SQLite database, without migrating it
/// (taken with the version that uses the database, before an upgrade).
fn backup(cli: &Cli, args: &BackupArgs) -> ExitCode {
    let options = StoreOptions {
        pool_size: 1,
        apply_migrations: false,
        ..StoreOptions::default()
    };
    let copied = Store::check_backup_supported(&cli.database_url)
        .and_then(|()| Store::connect(&cli.database_url, &options))
        .and_then(|store| store.backup_to(&args.to));
    match copied {
        Ok(()) => {
            let bytes = std::fs::metadata(&args.to).map_or(0, |m| m.len());
            if cli.json {
                let json = serde_json::json!({
                    "to": args.to.display().to_string(),
                    "bytes": bytes,
                });
                println!("{json}");
                return ExitCode::SUCCESS;
            }
            logging::emit(
                cli.log_format,
                Level::Info,
                "logstats_ingest",
                format_args!(
                    "backed up {} to {} ({bytes} bytes)",
                    logstats_shared::redact::redact(&cli.database_url),
                    args.to.display()
                ),
            );
            ExitCode::SUCCESS
        }
        Err(e) => storage_failure(cli, &e),
    }
}

/// `logstats-ingest late-lines`: the copy, and what it copied on stderr (or as JSON on stdout).
fn late_lines(cli: &Cli, args: &LateLinesArgs) -> ExitCode {
    match logstats_ingest::backfill::late_lines(&args.rejects, &args.output) {
        Ok(recovered) => {
            if cli.json {
                match serde_json::to_string(&recovered) {
                    Ok(json) => println!("{json}"),
                    Err(e) => eprintln!("error: cannot encode the summary: {e}"),
                }
            } else {
                logging::emit(
                    cli.log_format,
                    Level::Info,
                    "logstats_ingest",
                    format_args!(
                        "copied {} late lines of {} files to {}; now run logstats-ingest \
                         --backfill {} (once: its offsets are committed){}",
                        recovered.lines,
                        recovered.files,
                        args.output.display(),
                        args.output.display(),
                        match recovered.unrecoverable {
                            0 => String::new(),
                            n => format!(
                                "; {n} late lines of standard input or pushes cannot be read \
                                 again and were left out"
                            ),
                        }
                    ),
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            logging::emit(
                cli.log_format,
                Level::Error,
                "logstats_ingest",
                format_args!("error: {e:#}"),
            );
            ExitCode::FAILURE
        }
    }
}

/// Reports a subcommand's storage error (no password shown) and its exit status.
fn storage_failure(cli: &Cli, error: &logstats_shared::StorageError) -> ExitCode {
    let message = scrub(&error.to_string(), &cli.database_url).into_owned();
    let message = match cli.log_format {
        LogFormat::Text => format!("error: {message}"),
        LogFormat::Json => message,
    };
    logging::emit(
        cli.log_format,
        Level::Error,
        "logstats_ingest",
        format_args!("{message}"),
    );
    ExitCode::from(error.exit_status())
}
