//! `logstats-api`: parses the command line, opens the store and serves until SIGINT/SIGTERM.

use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use logstats_api::configuration::Settings;
use logstats_api::{startup, telemetry};
use logstats_shared::logging::{self, LogFormat};
use logstats_shared::redact::{redact, scrub};
use logstats_shared::Store;

fn main() -> ExitCode {
    let settings = Settings::parse();
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
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: &Settings) -> anyhow::Result<()> {
    // Connect (and migrate) before the runtime starts, so nothing blocks an executor thread.
    let store = Store::connect(&settings.database_url, &settings.store_options())
        .with_context(|| format!("opening {}", redact(&settings.database_url)))?;
    let listener =
        TcpListener::bind(&settings.bind).with_context(|| format!("binding {}", settings.bind))?;
    log::info!(
        "serving {} on http://{}",
        redact(&settings.database_url),
        listener.local_addr()?
    );
    let (workers, budget) = (settings.workers, settings.memory_budget());
    actix_web::rt::System::new()
        .block_on(async move { startup::run_with(listener, store, workers, budget)?.await })?;
    log::info!("stopped");
    Ok(())
}
