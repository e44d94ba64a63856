//! `logstats-api`: parses the command line, opens the store and serves until SIGINT/SIGTERM;
//! or, as `logstats-api new-token`, prints a new token.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use logstats_api::auth::Security;
use logstats_api::configuration::{Command, Settings};
use logstats_api::tokens::{self, Tokens};
use logstats_api::{startup, telemetry};
use logstats_shared::logging::{self, LogFormat};
use logstats_shared::redact::{redact, scrub};
use logstats_shared::StorageError;

fn main() -> ExitCode {
    let settings = Settings::parse();
    if let Some(Command::NewToken { customers }) = &settings.command {
        return match tokens::print_new_token(customers, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    limit_malloc_arenas();
    telemetry::init(settings.log_format);
    match serve(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Libraries may echo part of the URL they were given; never its password.
            let error = format!("{e:#}");
            let error = scrub(&error, &settings.database_url);
            // Whatever RUST_LOG says; a JSON record with --log-format json.
            let message = match settings.log_format {
                LogFormat::Text => format!("error: {error}"),
                LogFormat::Json => error.into_owned(),
            };
            logging::emit(
                settings.log_format,
                log::Level::Error,
                "logstats_api",
                format_args!("{message}"),
            );
            let status = e
                .downcast_ref::<StorageError>()
                .map_or(1, StorageError::exit_status);
            ExitCode::from(status)
        }
    }
}

/// glibc's allocator gives each thread that allocates an arena of its own and keeps memory
/// freed there for that thread: with the API's dozen threads this kept ~60 MB outside the byte
/// budgets (measured under random ranges with percentiles; see docs/BENCHMARKS.md). Two arenas
/// keep it near 10 MB at a few percent of throughput. glibc reads `MALLOC_ARENA_MAX` once, when
/// the process starts, so unless it is set already the API sets it and executes itself again:
/// the same process (same pid, arguments and environment otherwise), before it has opened
/// anything. If that fails it goes on as it is. Another allocator ignores the variable.
fn limit_malloc_arenas() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // Returns only when the executable cannot be run again (e.g. replaced by an upgrade).
    let _ = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", "2")
        .exec();
}

fn serve(settings: &Settings) -> anyhow::Result<()> {
    // The tokens first: a malformed file stops the start before anything else is opened.
    let security = Security {
        tokens: load_tokens(settings)?,
        protect_ops: settings.protect_ops,
    };
    // Connect (and migrate) before the runtime starts, so nothing blocks an executor thread.
    let (store, listener) = startup::open(settings)?;
    log::info!(
        "serving {} on http://{}",
        redact(&settings.database_url),
        listener.local_addr()?
    );
    let (workers, budget) = (settings.workers, settings.memory_budget());
    actix_web::rt::System::new().block_on(async move {
        startup::run_with(listener, store, workers, budget, security)?.await
    })?;
    log::info!("stopped");
    Ok(())
}

/// The tokens of `--tokens`, re-read on SIGHUP from now on; `None` (and a warning) without it.
fn load_tokens(settings: &Settings) -> anyhow::Result<Option<Arc<Tokens>>> {
    let Some(path) = &settings.tokens else {
        log::warn!(
            "no --tokens file: every endpoint is open to anyone who can reach {}; see \
             docs/TOKENS.md",
            settings.bind
        );
        log_sighup().context("installing the SIGHUP handler")?;
        return Ok(None);
    };
    let tokens = Arc::new(Tokens::load(path)?);
    let count = tokens.current().len();
    if count == 0 {
        log::warn!(
            "the tokens file {} holds no token: every protected endpoint answers 401",
            path.display()
        );
    } else {
        log::info!(
            "{count} token(s) from {}{}; SIGHUP re-reads it",
            path.display(),
            if settings.protect_ops {
                ", /health, /ready and /metrics protected too"
            } else {
                ""
            }
        );
    }
    tokens
        .reload_on_sighup()
        .context("installing the SIGHUP handler")?;
    Ok(Some(tokens))
}

/// Without a tokens file SIGHUP has nothing to re-read: it is logged and otherwise ignored, so a
/// reload sent by habit (`systemctl reload`, `kill -HUP`) never ends the API.
fn log_sighup() -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                log::info!("SIGHUP: no --tokens file to re-read; nothing to do");
            }
        })?;
    Ok(())
}
