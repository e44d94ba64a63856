//! `logstats-api`: parses the command line, opens the store and serves until SIGINT/SIGTERM.

use std::net::TcpListener;

use anyhow::Context;
use clap::Parser;
use logstats_api::configuration::Settings;
use logstats_api::startup;
use logstats_shared::storage::redact;
use logstats_shared::Store;

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = Settings::parse();
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
    actix_web::rt::System::new().block_on(async move {
        startup::run_with(listener, store, settings.workers, settings.memory_budget())?.await
    })?;
    log::info!("stopped");
    Ok(())
}
