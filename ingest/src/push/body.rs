//! A pushed request's body to the lines spooled: decompressed within a limit, a JSON array
//! turned into JSON lines, counted, and filtered by the pushing token's scope.

use std::io::Read;

use logstats_shared::record::LineParser;
use logstats_shared::tokens::Scope;
use serde_json::value::RawValue;

/// How a body is written, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Lines: native, JSON, or a mix (`text/plain`, `application/x-ndjson` and its aliases,
    /// or no type at all); parsed as `--format` says.
    Lines,
    /// One JSON array of records (`application/json`).
    JsonArray,
}

impl BodyKind {
    /// The kind a `Content-Type` (its media type, parameters ignored) names, if it is one.
    pub fn of(content_type: Option<&str>) -> Option<BodyKind> {
        let Some(content_type) = content_type else {
            return Some(BodyKind::Lines);
        };
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "" | "text/plain" | "application/x-ndjson" | "application/ndjson"
            | "application/jsonlines" | "application/x-jsonlines" | "application/jsonl"
            | "application/octet-stream"
            // What curl sends with --data-binary unless told otherwise.
            | "application/x-www-form-urlencoded" => Some(BodyKind::Lines),
            "application/json" => Some(BodyKind::JsonArray),
            _ => None,
        }
    }
}

/// Why a body was refused; each maps to a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Decompressed, it is larger than `--push-max-batch` (413).
    #[error("the decompressed body is larger than {0} bytes (--push-max-batch)")]
    TooLarge(u64),
    /// More lines than `--push-max-lines` (413).
    #[error("the batch has more than {0} lines (--push-max-lines)")]
    TooManyLines(u64),
    /// Not gzip, or a broken gzip stream (400).
    #[error("the body is not valid gzip: {0}")]
    BadGzip(String),
    /// `application/json` that is not one JSON array (400).
    #[error("an application/json body must be one JSON array of records: {0}")]
    BadJson(String),
    /// The bodies of the requests in progress would take more than `--push-memory` (503).
    #[error(
        "the bodies of the requests in progress fill the push memory ({0} bytes, --push-memory); \
         retry later"
    )]
    Memory(u64),
}

/// Bytes decompressed at a time.
const GUNZIP_CHUNK: usize = 1 << 20;

/// Decompresses a gzip body, refusing more than `max` bytes out (read no further: a gzip bomb
/// costs `max` bytes, never more). `grow` is asked for each chunk's bytes before they are
/// kept; when it says no, the body is refused for memory.
pub fn gunzip(
    body: &[u8],
    max: u64,
    grow: &mut dyn FnMut(u64) -> bool,
) -> Result<Vec<u8>, BodyError> {
    let mut decoder = flate2::read::MultiGzDecoder::new(body).take(max + 1);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; GUNZIP_CHUNK];
    loop {
        let read = match decoder.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BodyError::BadGzip(e.to_string())),
        };
        if out.len() as u64 + read as u64 > max {
            return Err(BodyError::TooLarge(max));
        }
        if !grow(read as u64) {
            return Err(BodyError::Memory(0));
        }
        out.extend_from_slice(&chunk[..read]);
    }
    Ok(out)
}

/// A JSON array's elements as JSON lines, one compact element a line.
pub fn json_array_to_lines(body: &[u8]) -> Result<Vec<u8>, BodyError> {
    let elements: Vec<&RawValue> =
        serde_json::from_slice(body).map_err(|e| BodyError::BadJson(e.to_string()))?;
    let mut out = Vec::with_capacity(body.len() + 1);
    for element in elements {
        let text = element.get();
        if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some() {
            // Pretty-printed: written again on one line (string values never hold a raw
            // newline, so only whitespace between tokens goes).
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| BodyError::BadJson(e.to_string()))?;
            serde_json::to_writer(&mut out, &value)
                .map_err(|e| BodyError::BadJson(e.to_string()))?;
        } else {
            out.extend_from_slice(text.as_bytes());
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// Ends `lines` with a newline if it has bytes after its last one, and counts its lines
/// (blank ones too), refusing more than `max_lines`.
pub fn terminate_and_count(lines: &mut Vec<u8>, max_lines: u64) -> Result<u64, BodyError> {
    if lines.last().is_some_and(|&b| b != b'\n') {
        lines.push(b'\n');
    }
    let count = memchr::memchr_iter(b'\n', lines).count() as u64;
    if count > max_lines {
        return Err(BodyError::TooManyLines(max_lines));
    }
    Ok(count)
}

/// Drops the lines of customers outside `scope`; returns how many were dropped. Lines that do
/// not parse stay: the workers reject them with their reason, as for any input.
pub fn keep_scope(lines: &mut Vec<u8>, scope: &Scope, parser: &LineParser) -> u64 {
    if scope.is_all() {
        return 0;
    }
    let mut kept = Vec::with_capacity(lines.len());
    let mut dropped = 0;
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let outside = parser.parse(text).is_ok_and(|record| {
            // A parsed customer id is ASCII.
            std::str::from_utf8(record.customer).map_or(true, |c| !scope.covers(c))
        });
        if outside {
            dropped += 1;
        } else {
            kept.extend_from_slice(line);
        }
    }
    *lines = kept;
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use logstats_shared::record::{InputFormat, JsonFields};
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("compress");
        encoder.finish().expect("finish")
    }

    #[test]
    fn content_types_name_the_kinds() {
        assert_eq!(BodyKind::of(None), Some(BodyKind::Lines));
        assert_eq!(
            BodyKind::of(Some("text/plain; charset=utf-8")),
            Some(BodyKind::Lines)
        );
        assert_eq!(
            BodyKind::of(Some("application/x-ndjson")),
            Some(BodyKind::Lines)
        );
        assert_eq!(
            BodyKind::of(Some("Application/JSON")),
            Some(BodyKind::JsonArray)
        );
        assert_eq!(BodyKind::of(Some("image/png")), None);
    }

    #[test]
    fn gzip_is_decompressed_within_the_limit() {
        let text = b"2024-10-10 12:50:18 cust_1 /a 200 0.1\n".repeat(1000);
        let packed = gzip(&text);
        let mut any = |_| true;
        assert_eq!(
            gunzip(&packed, text.len() as u64, &mut any),
            Ok(text.clone())
        );
        assert_eq!(
            gunzip(&packed, text.len() as u64 - 1, &mut any),
            Err(BodyError::TooLarge(text.len() as u64 - 1))
        );
        let mut granted = 0;
        let mut budget = |more| {
            granted += more;
            granted <= 10_000
        };
        assert_eq!(
            gunzip(&packed, text.len() as u64, &mut budget),
            Err(BodyError::Memory(0))
        );
        // A bomb: 1 GiB of zeros in about 1 MiB; refused after the limit's bytes.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            encoder.write_all(&zeros).expect("compress");
        }
        let bomb = encoder.finish().expect("finish");
        assert!(bomb.len() < 2 << 20);
        assert_eq!(
            gunzip(&bomb, 1 << 20, &mut any),
            Err(BodyError::TooLarge(1 << 20))
        );
        assert!(matches!(
            gunzip(b"not gzip", 100, &mut any),
            Err(BodyError::BadGzip(_))
        ));
    }

    #[test]
    fn a_json_array_becomes_one_line_an_element() {
        let body = br#"[{"a":1},
          {
            "b": "x y",
            "c": [1, 2]
          }]"#;
        assert_eq!(
            json_array_to_lines(body).expect("array"),
            b"{\"a\":1}\n{\"b\":\"x y\",\"c\":[1,2]}\n".to_vec()
        );
        assert_eq!(json_array_to_lines(b"[]").expect("empty"), Vec::<u8>::new());
        assert!(json_array_to_lines(br#"{"a":1}"#).is_err());
        assert!(json_array_to_lines(b"[{\"a\":1}").is_err());
    }

    #[test]
    fn lines_are_terminated_and_counted() {
        let mut lines = b"a\n\nb".to_vec();
        assert_eq!(terminate_and_count(&mut lines, 3), Ok(3));
        assert_eq!(lines, b"a\n\nb\n");
        assert_eq!(
            terminate_and_count(&mut lines, 2),
            Err(BodyError::TooManyLines(2))
        );
        let mut empty = Vec::new();
        assert_eq!(terminate_and_count(&mut empty, 0), Ok(0));
    }

    #[test]
    fn lines_outside_the_scope_are_dropped_and_bad_lines_kept() {
        let parser = LineParser::new(InputFormat::Auto, JsonFields::default());
        let mut lines = b"2024-10-10 12:50:18 cust_1 /a 200 0.1\n\
            2024-10-10 12:50:19 cust_2 /a 200 0.1\r\n\
            {\"timestamp\":\"2024-10-10T12:00:00Z\",\"customer_id\":\"cust_2\",\"path\":\"/\",\"status\":200,\"duration\":1}\n\
            garbage\n"
            .to_vec();
        let scope = Scope::parse("cust_1").expect("scope");
        assert_eq!(keep_scope(&mut lines, &scope, &parser), 2);
        assert_eq!(lines, b"2024-10-10 12:50:18 cust_1 /a 200 0.1\ngarbage\n");
        let mut all = b"x\n".to_vec();
        assert_eq!(keep_scope(&mut all, &Scope::All, &parser), 0);
    }
}
