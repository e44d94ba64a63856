//! Logging, set up once: env_logger (level `info` unless `RUST_LOG` says otherwise) as text or
//! JSON lines (`logstats_shared::logging`), with the HTTP layer's reports of requests it could
//! not parse lowered from ERROR to WARN: a 100 KB path, a NUL in the request line or 200
//! headers are a client's fault, answered 400 or 431.

use std::sync::OnceLock;

use log::{Level, Log, Metadata, Record};
use logstats_shared::logging::{self, LogFormat};

/// The format the logger was installed with (text until [`init`] is called).
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format of the logs: the access log writes its JSON records itself (see
/// `crate::metrics`).
pub(crate) fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Installs the logger writing `format`; call once, first thing in `main`.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let inner = logging::builder(format).build();
    let max_level = inner.filter();
    if log::set_boxed_logger(Box::new(ClientErrorsAsWarnings(inner))).is_ok() {
        log::set_max_level(max_level);
    }
}

/// env_logger, with [`is_client_error`] records logged at WARN.
struct ClientErrorsAsWarnings(env_logger::Logger);

impl Log for ClientErrorsAsWarnings {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !is_client_error(record) {
            return self.0.log(record);
        }
        let metadata = Metadata::builder()
            .level(Level::Warn)
            .target(record.target())
            .build();
        if self.0.enabled(&metadata) {
            self.0.log(
                &Record::builder()
                    .metadata(metadata)
                    .args(*record.args())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
        }
    }

    fn flush(&self) {
        self.0.flush()
    }
}

/// actix-http's ERROR for a request head it could not parse (it answers 400 or 431 itself).
fn is_client_error(record: &Record<'_>) -> bool {
    record.level() == Level::Error
        && record.target().starts_with("actix_http::h1")
        && record
            .args()
            .to_string()
            .starts_with("stream error: request parse error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_parse_errors_of_the_http_layer_are_client_errors() {
        let record = |target: &str, level: Level, message: std::fmt::Arguments<'_>| {
            is_client_error(
                &Record::builder()
                    .target(target)
                    .level(level)
                    .args(message)
                    .build(),
            )
        };
        let dispatcher = "actix_http::h1::dispatcher";
        let parse = format_args!("stream error: request parse error: URI error: uri too long");
        assert!(record(dispatcher, Level::Error, parse));
        assert!(!record(
            dispatcher,
            Level::Error,
            format_args!("stream error: broken pipe")
        ));
        assert!(!record("logstats_api", Level::Error, parse));
    }
}
