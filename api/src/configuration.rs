//! Every setting of `logstats-api` in one place: flags, their environment fallbacks and defaults.

use std::path::PathBuf;

use clap::builder::RangedU64ValueParser;
use clap::{Parser, Subcommand};
use logstats_shared::logging::LogFormat;
use logstats_shared::units::parse_bytes_usize;
use logstats_shared::StoreOptions;
use std::time::Duration;

use crate::tokens::{parse_scope, Scope};

/// Database used when neither `--database-url` nor `DATABASE_URL` is given.
pub(crate) const DEFAULT_DATABASE_URL: &str = "sqlite://data/logstats.db";

/// Address used when neither `--bind` nor `BIND` is given.
pub(crate) const DEFAULT_BIND: &str = "127.0.0.1:8000";

/// Serve per-customer daily request stats over HTTP.
#[derive(Debug, Clone, Parser)]
#[command(name = "logstats-api", version, about)]
pub struct Settings {
    /// Stats database: sqlite://PATH, postgres://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB.
    // `--help` shows the variable's name, never its value: it may hold a password.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = DEFAULT_DATABASE_URL
    )]
    pub database_url: String,

    /// Address and port to listen on.
    #[arg(long, env = "BIND", default_value = DEFAULT_BIND)]
    pub bind: String,

    /// HTTP worker threads [default: one per physical core].
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub workers: Option<usize>,

    /// Most pooled database connections [default: twice the number of cores].
    #[arg(long, value_parser = RangedU64ValueParser::<u32>::new().range(1..))]
    pub pool_size: Option<u32>,

    /// Bytes of stored rows kept in memory, each customer's kept current from its version
    /// (0 turns this off: every request reads the database). Sizes take a unit too: 160MiB, 1G
    /// (powers of 1024), 500MB (powers of 1000).
    #[arg(long, value_name = "BYTES", default_value_t = crate::rows::DEFAULT_ROW_CACHE_BYTES, value_parser = parse_bytes_usize)]
    pub row_cache_bytes: usize,

    /// Do not fill that copy from the database at start (in the background, up to seven
    /// eighths of it): customers are then copied as requests ask about them.
    #[arg(long, env = "LOGSTATS_NO_ROW_CACHE_WARM")]
    pub no_row_cache_warm: bool,

    /// PostgreSQL and MySQL/MariaDB: the longest a query may run before the server cancels it
    /// and the request gets a 503 (ms, s or m; 0 turns it off). SQLite reads are bounded by
    /// their pages instead.
    #[arg(long, value_name = "DURATION", env = "LOGSTATS_STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub statement_timeout: Duration,

    /// Bytes of remembered answers, each reused only while the customer's rows are unchanged
    /// (0 turns this off).
    #[arg(long, value_name = "BYTES", default_value_t = crate::answers::DEFAULT_ANSWER_BYTES, value_parser = parse_bytes_usize)]
    pub answer_cache_bytes: usize,

    /// How log lines are written on stderr: text, or one JSON object per line (timestamp,
    /// level, target, message).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// File of API tokens, one `sha256:HEX CUSTOMERS` a line (see `new-token`), re-read on
    /// SIGHUP. Without it every endpoint is open to anyone who can reach the API.
    #[arg(long, env = "LOGSTATS_TOKENS", value_name = "PATH")]
    pub tokens: Option<PathBuf>,

    /// Ask for a token (any valid one) on /health, /ready and /metrics too.
    #[arg(long, env = "LOGSTATS_PROTECT_OPS", requires = "tokens")]
    pub protect_ops: bool,

    /// Never change the database schema: refuse to start unless every migration of this
    /// version is applied (by logstats-ingest, or another start). For a role that may only read.
    #[arg(long, env = "LOGSTATS_NO_MIGRATE")]
    pub no_migrate: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the binary does instead of serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print a new random token (`token: ...`) and, on the next line, its line for the tokens
    /// file; nothing is written anywhere.
    NewToken {
        /// What the token may read: `*` (every customer and the fleet views) or a
        /// comma-separated list of customer ids.
        #[arg(long, value_parser = parse_scope)]
        customers: Scope,
    },
}

impl Settings {
    /// The API's memory budget.
    pub fn memory_budget(&self) -> MemoryBudget {
        MemoryBudget {
            row_cache_bytes: self.row_cache_bytes,
            answer_cache_bytes: self.answer_cache_bytes,
            warm_row_cache: !self.no_row_cache_warm,
        }
    }

    /// How to open the store: the pool holds `--pool-size` or `default_pool_size()` connections.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            pool_size: self.pool_size.unwrap_or_else(default_pool_size),
            apply_migrations: !self.no_migrate,
            // The row copy is the API's read cache; mapped pages would count in its memory
            // once per pooled connection, outside any budget.
            mapped_reads: false,
            statement_timeout: Some(self.statement_timeout).filter(|t| !t.is_zero()),
            ..StoreOptions::default()
        }
    }
}

/// Parses a statement timeout: `500ms`, `10s`, `2m`, or a bare number of seconds.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 500ms, 10s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "" | "s" => Ok(Duration::from_secs(value)),
        "m" => value
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration {text:?} is too large")),
        _ => Err(format!("invalid duration unit in {text:?}: use ms, s or m")),
    }
}

/// Twice the available cores: queries run on blocking threads, and each holds a connection only
/// while reading a customer's rows.
pub(crate) fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cores.saturating_mul(2)).unwrap_or(u32::MAX)
}

/// Byte budgets of the API's memory: the copy of the rows and the remembered answers.
#[derive(Debug, Clone, Copy)]
pub struct MemoryBudget {
    /// Bytes of stored rows copied in memory (0: none; every request reads the database).
    pub row_cache_bytes: usize,
    /// Bytes of remembered answers (0: none).
    pub answer_cache_bytes: usize,
    /// Fill the copy of the rows from the database at start, in the background.
    pub warm_row_cache: bool,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self {
            row_cache_bytes: crate::rows::DEFAULT_ROW_CACHE_BYTES,
            answer_cache_bytes: crate::answers::DEFAULT_ANSWER_BYTES,
            warm_row_cache: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_defaults() {
        let settings = Settings::try_parse_from([
            "logstats-api",
            "--database-url",
            "postgres://u@h/db",
            "--bind",
            "0.0.0.0:9000",
            "--workers",
            "3",
            "--pool-size",
            "5",
        ])
        .expect("valid flags");
        assert_eq!(settings.database_url, "postgres://u@h/db");
        assert_eq!(settings.bind, "0.0.0.0:9000");
        assert_eq!(settings.workers, Some(3));
        assert_eq!(settings.store_options().pool_size, 5);
    }

    #[test]
    fn log_format_is_text_unless_json_is_asked_for() {
        let settings = Settings::try_parse_from(["logstats-api"]).expect("no flags");
        assert_eq!(settings.log_format, LogFormat::Text);
        let settings = Settings::try_parse_from(["logstats-api", "--log-format", "json"])
            .expect("a known format");
        assert_eq!(settings.log_format, LogFormat::Json);
        assert!(Settings::try_parse_from(["logstats-api", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn zero_workers_or_connections_are_refused() {
        for flag in ["--workers", "--pool-size"] {
            assert!(Settings::try_parse_from(["logstats-api", flag, "0"]).is_err());
        }
    }

    #[test]
    fn tokens_protect_ops_and_migrations() {
        let settings = Settings::try_parse_from(["logstats-api"]).expect("no flags");
        assert_eq!(settings.tokens, None);
        assert!(!settings.protect_ops && !settings.no_migrate);
        assert!(settings.store_options().apply_migrations);
        let settings = Settings::try_parse_from([
            "logstats-api",
            "--tokens",
            "/etc/logstats/tokens",
            "--protect-ops",
            "--no-migrate",
        ])
        .expect("valid flags");
        assert_eq!(settings.tokens, Some(PathBuf::from("/etc/logstats/tokens")));
        assert!(settings.protect_ops);
        assert!(!settings.store_options().apply_migrations);
        // --protect-ops protects with tokens: alone it would protect nothing.
        assert!(Settings::try_parse_from(["logstats-api", "--protect-ops"]).is_err());
    }

    #[test]
    fn new_token_takes_a_list_of_customers() {
        let settings =
            Settings::try_parse_from(["logstats-api", "new-token", "--customers", "b,a"])
                .expect("a valid list");
        let Some(Command::NewToken { customers }) = settings.command else {
            panic!("new-token parsed as {:?}", settings.command);
        };
        assert_eq!(customers.to_string(), "a,b");
        for bad in ["", "a b", "*,a", "a/b"] {
            assert!(
                Settings::try_parse_from(["logstats-api", "new-token", "--customers", bad])
                    .is_err(),
                "{bad:?}"
            );
        }
        assert!(Settings::try_parse_from(["logstats-api", "new-token"]).is_err());
    }

    #[test]
    fn pool_defaults_to_twice_the_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(default_pool_size() as usize, cores * 2);
        let settings = Settings::try_parse_from(["logstats-api"]).expect("no flags");
        assert_eq!(settings.store_options().pool_size, default_pool_size());
    }
}
