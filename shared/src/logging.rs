//! Logging set-up shared by `logstats-ingest` and `logstats-api`: env_logger on stderr, level
//! `info` unless `RUST_LOG` says otherwise, as text or as JSON lines (`--log-format`,
//! `LOG_FORMAT`).
//!
//! JSON: one object per line, `{"timestamp":"2024-10-10T12:00:00.123Z","level":"INFO",
//! "target":"logstats_api","message":"..."}` (UTC, milliseconds). The `log` crate's
//! structured key-values are not enabled in this build (its `kv` feature is off), so records
//! carry none; the message holds everything. A record with fields of its own (the API's access
//! log) is written by its caller with [`json_line_with`] and [`write_line`].

use std::fmt::{self, Write as _};
use std::io::Write as _;

use log::{Level, Record};

/// How log records are written on stderr: `text` is env_logger's
/// `[2024-10-10T12:00:00.123Z INFO  target] message`, `json` one JSON object per line.
// The variants have no doc comments: clap would show them as a list in `--help`, which then
// switches to its long layout.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// An env_logger builder writing `format`, filtered by `RUST_LOG` (default `info`). Call
/// `.init()` on it, or `.build()` to wrap the logger in another.
pub fn builder(format: LogFormat) -> env_logger::Builder {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Text => {
            builder.format_timestamp_millis();
        }
        LogFormat::Json => {
            builder.format(|out, record| {
                out.write_all(json_line(record.level(), record.target(), *record.args()).as_bytes())
            });
        }
    }
    builder
}

/// Installs the logger for `format`; call once, first thing in `main`.
pub fn init(format: LogFormat) {
    // Fails only if a logger is already installed: keep that one.
    let _ = builder(format).try_init();
}

/// Writes `message` on stderr whatever `RUST_LOG` says, in `format`: a fatal error or the
/// final summary, which must always be seen. Text is `message` as it is; JSON is a record of
/// `level` and `target`.
pub fn emit(format: LogFormat, level: Level, target: &str, message: fmt::Arguments<'_>) {
    let line = match format {
        LogFormat::Text => format!("{message}\n"),
        LogFormat::Json => json_line(level, target, message),
    };
    // Nothing sensible is left to do when stderr is gone.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The JSON object of one record, with its newline.
pub fn json_line(level: Level, target: &str, message: fmt::Arguments<'_>) -> String {
    let mut line = String::with_capacity(160);
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    // Writing to a String cannot fail.
    let _ = write!(
        line,
        "{{\"timestamp\":\"{now}\",\"level\":\"{}\",\"target\":\"",
        level.as_str()
    );
    let _ = JsonEscaped(&mut line).write_str(target);
    line.push_str("\",\"message\":\"");
    let _ = write!(JsonEscaped(&mut line), "{message}");
    line.push_str("\"}\n");
    line
}

/// A value of a field of [`json_line_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    /// A JSON string.
    Str(&'a str),
    /// A JSON integer.
    Int(u64),
    /// A JSON number with three decimals (milliseconds to the microsecond).
    Millis(f64),
    /// `null`: not known.
    Null,
}

/// [`json_line`] with more fields after the message, in the order given (their names are the
/// caller's constants: written as they are).
pub fn json_line_with(
    level: Level,
    target: &str,
    message: fmt::Arguments<'_>,
    fields: &[(&str, Field<'_>)],
) -> String {
    let mut line = json_line(level, target, message);
    // Drop the closing `}` and the newline, add the fields, close again.
    line.truncate(line.len() - 2);
    for (name, value) in fields {
        // Writing to a String cannot fail.
        let _ = write!(line, ",\"{name}\":");
        let _ = match value {
            Field::Str(text) => {
                line.push('"');
                let written = JsonEscaped(&mut line).write_str(text);
                line.push('"');
                written
            }
            Field::Int(n) => write!(line, "{n}"),
            Field::Millis(ms) if ms.is_finite() => write!(line, "{ms:.3}"),
            Field::Millis(_) | Field::Null => write!(line, "null"),
        };
    }
    line.push_str("}\n");
    line
}

/// Writes `line` (a whole JSON line) on stderr in one write.
pub fn write_line(line: &str) {
    // Nothing sensible is left to do when stderr is gone.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The JSON line of `record` (for loggers that wrap env_logger's).
pub fn json_record(record: &Record<'_>) -> String {
    json_line(record.level(), record.target(), *record.args())
}

/// Appends what is written to it as the inside of a JSON string.
struct JsonEscaped<'a>(&'a mut String);

impl fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                '\t' => self.0.push_str("\\t"),
                c if u32::from(c) < 0x20 => write!(self.0, "\\u{:04x}", u32::from(c))?,
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_escape_what_json_requires() {
        let line = json_line(
            Level::Warn,
            "a::b",
            format_args!("say \"hi\" \\ {}\n\t\u{1}é", 42),
        );
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let (head, rest) = line.split_at(line.find(",\"level\"").expect("a level"));
        assert!(head.starts_with("{\"timestamp\":\""), "{head}");
        let timestamp = &head["{\"timestamp\":\"".len()..head.len() - 1];
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
        assert_eq!(
            rest,
            ",\"level\":\"WARN\",\"target\":\"a::b\",\
             \"message\":\"say \\\"hi\\\" \\\\ 42\\n\\t\\u0001é\"}\n"
        );
    }

    #[test]
    fn json_lines_with_fields_are_one_object() {
        let line = json_line_with(
            Level::Info,
            "t",
            format_args!("GET /x 200"),
            &[
                ("method", Field::Str("GET")),
                ("path", Field::Str("/a\"b")),
                ("status", Field::Int(200)),
                ("duration_ms", Field::Millis(2.0441)),
                ("bytes", Field::Null),
            ],
        );
        assert!(line.ends_with("}\n") && !line.trim_end().contains('\n'));
        let (_, rest) = line.split_at(line.find(",\"level\"").expect("a level"));
        assert_eq!(
            rest,
            ",\"level\":\"INFO\",\"target\":\"t\",\"message\":\"GET /x 200\",\
             \"method\":\"GET\",\"path\":\"/a\\\"b\",\"status\":200,\"duration_ms\":2.044,\
             \"bytes\":null}\n"
        );
    }

    #[test]
    fn formats_parse_from_their_names() {
        use clap::ValueEnum;
        assert_eq!(LogFormat::from_str("json", false), Ok(LogFormat::Json));
        assert_eq!(LogFormat::from_str("text", false), Ok(LogFormat::Text));
        assert!(LogFormat::from_str("yaml", false).is_err());
    }
}
