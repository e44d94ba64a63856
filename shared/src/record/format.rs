//! Which parser reads a line: the native format, JSON lines, or each line by its first byte.

use super::json::JsonFields;
use super::{parse_line, Record, RejectReason};

/// How the lines of the inputs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InputFormat {
    /// Each line by its first byte other than a space or tab: `{` is JSON, anything else
    /// native.
    #[default]
    Auto,
    /// `YYYY-MM-DD HH:MM:SS customer path status duration`.
    Native,
    /// One JSON object a line.
    Json,
}

/// Parses lines in an [`InputFormat`], JSON ones with their [`JsonFields`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineParser {
    format: InputFormat,
    json: JsonFields,
}

impl LineParser {
    /// A parser of lines in `format`, JSON ones found by `json`.
    pub fn new(format: InputFormat, json: JsonFields) -> Self {
        Self { format, json }
    }

    /// Parses one line (without its `\n`), as [`parse_line`] or [`JsonFields::parse`] does.
    #[inline]
    pub fn parse<'a>(&self, line: &'a [u8]) -> Result<Record<'a>, RejectReason> {
        match self.format {
            InputFormat::Native => parse_line(line),
            InputFormat::Json => self.json.parse(line),
            InputFormat::Auto if is_json(line) => self.json.parse(line),
            InputFormat::Auto => parse_line(line),
        }
    }
}

/// Whether the first byte of `line` other than a space or tab is `{`. A native line starts
/// with a digit, so this decides on its first byte.
#[inline]
fn is_json(line: &[u8]) -> bool {
    match line.first() {
        Some(b'{') => true,
        Some(b' ' | b'\t') => line.iter().find(|b| !matches!(b, b' ' | b'\t')) == Some(&b'{'),
        _ => false,
    }
}
