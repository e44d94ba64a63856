//! JSON lines: one request per JSON object, its five fields found by name and turned into the
//! same [`Record`] a native line gives.
//!
//! serde_json walks the object once. Only the keys on the way to a configured field are
//! compared (without allocating, escaped keys included); every other value is skipped unread.
//! The fields are taken as their raw JSON text, borrowed from the line, so a number keeps its
//! exact decimal digits: a duration is converted by shifting its decimal point and handing it
//! to the native parser's [`parse_duration_us`], never through a float.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::fields::{parse_any_duration_us, parse_date, parse_status, parse_time};
use super::{
    is_valid_customer_id, parse_duration_us, Record, RejectReason, MAX_LINE_BYTES, SECONDS_PER_DAY,
};

/// The five fields of a request, in the order [`JsonFields`] keeps their paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum JsonField {
    /// When the request was made.
    Timestamp,
    /// Who made it.
    CustomerId,
    /// What it asked for.
    Path,
    /// The HTTP status answered.
    Status,
    /// How long it took.
    Duration,
}

impl JsonField {
    const ALL: [JsonField; 5] = [
        JsonField::Timestamp,
        JsonField::CustomerId,
        JsonField::Path,
        JsonField::Status,
        JsonField::Duration,
    ];

    /// The field's default name, which is also the suffix of its `--json-*` flag.
    pub fn default_name(self) -> &'static str {
        match self {
            JsonField::Timestamp => "timestamp",
            JsonField::CustomerId => "customer_id",
            JsonField::Path => "path",
            JsonField::Status => "status",
            JsonField::Duration => "duration",
        }
    }
}

impl fmt::Display for JsonField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.default_name())
    }
}

/// The unit of a JSON duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DurationUnit {
    /// Seconds.
    #[default]
    S,
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

impl DurationUnit {
    /// Powers of ten from this unit down to seconds.
    fn decimals(self) -> i64 {
        match self {
            DurationUnit::S => 0,
            DurationUnit::Ms => 3,
            DurationUnit::Us => 6,
            DurationUnit::Ns => 9,
        }
    }
}

/// Where one field is found: its name's segments, split at dots (`request.uri`); a segment of
/// digits also indexes an array (`request.headers.X-Customer-Id.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldPath {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    name: String,
    index: Option<usize>,
}

/// A field path that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    /// Empty, or with an empty segment (`a..b`, `.a`, `a.`).
    #[error("the JSON field of the {field} {path:?} has an empty name or segment")]
    Empty {
        /// Which field.
        field: JsonField,
        /// As given.
        path: String,
    },
    /// Two fields at the same place, or one inside the other.
    #[error("the JSON fields of the {first} ({first_path:?}) and the {second} ({second_path:?}) overlap")]
    Overlap {
        /// One field.
        first: JsonField,
        /// Its path.
        first_path: String,
        /// The other field.
        second: JsonField,
        /// Its path.
        second_path: String,
    },
}

impl FieldPath {
    fn parse(field: JsonField, text: &str) -> Result<Self, FieldPathError> {
        let segments: Vec<Segment> = text
            .split('.')
            .map(|name| Segment {
                name: name.to_string(),
                index: name
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| name.parse().ok())
                    .flatten(),
            })
            .collect();
        if segments.iter().any(|s| s.name.is_empty()) {
            return Err(FieldPathError::Empty {
                field,
                path: text.to_string(),
            });
        }
        Ok(Self { segments })
    }

    fn text(&self) -> String {
        let names: Vec<&str> = self.segments.iter().map(|s| s.name.as_str()).collect();
        names.join(".")
    }

    /// Whether one of the two is the other or lies inside it.
    fn overlaps(&self, other: &FieldPath) -> bool {
        self.segments
            .iter()
            .zip(&other.segments)
            .all(|(a, b)| a.name == b.name)
    }
}

/// How JSON lines are read: where each field is and the duration's unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonFields {
    paths: [FieldPath; 5],
    duration_unit: DurationUnit,
}

impl Default for JsonFields {
    fn default() -> Self {
        Self::new(|field| field.default_name().to_string(), DurationUnit::S)
            .unwrap_or_else(|_| unreachable!("the default names are distinct and non-empty"))
    }
}

impl JsonFields {
    /// The fields at the paths `path_of` gives (dotted for nested objects, numbers indexing
    /// arrays), with durations in `duration_unit`.
    pub fn new(
        path_of: impl Fn(JsonField) -> String,
        duration_unit: DurationUnit,
    ) -> Result<Self, FieldPathError> {
        let mut paths = Vec::with_capacity(5);
        for field in JsonField::ALL {
            let path = FieldPath::parse(field, &path_of(field))?;
            for (earlier, other) in JsonField::ALL.iter().zip(&paths) {
                if path.overlaps(other) {
                    return Err(FieldPathError::Overlap {
                        first: *earlier,
                        first_path: FieldPath::text(other),
                        second: field,
                        second_path: path.text(),
                    });
                }
            }
            paths.push(path);
        }
        let paths: [FieldPath; 5] = paths
            .try_into()
            .unwrap_or_else(|_| unreachable!("five fields"));
        Ok(Self {
            paths,
            duration_unit,
        })
    }

    /// Parses one JSON line (without its `\n`; a trailing `\r` is whitespace to JSON).
    pub fn parse<'a>(&self, line: &'a [u8]) -> Result<Record<'a>, RejectReason> {
        if line.len() > MAX_LINE_BYTES {
            return Err(RejectReason::TooLong);
        }
        // serde_json checks the strings it reads, not those it skips; a line is text throughout,
        // as a native one must be.
        if std::str::from_utf8(line).is_err() {
            return Err(RejectReason::InvalidUtf8);
        }
        let mut found = Found::default();
        let mut deserializer = serde_json::Deserializer::from_slice(line);
        let walked = de::Deserializer::deserialize_map(
            &mut deserializer,
            Level {
                paths: &self.paths,
                active: ALL_FIELDS,
                depth: 0,
                found: &mut found,
            },
        )
        .and_then(|()| deserializer.end());
        if walked.is_err() {
            return Err(RejectReason::NotJsonObject);
        }
        let value = |field: JsonField| {
            found.values[field as usize]
                .map(|raw| Scalar::of(raw.get()))
                .filter(|scalar| !matches!(scalar, Scalar::Null))
                .ok_or(RejectReason::MissingField(field))
        };
        let (day, second_of_day) = parse_event_time(value(JsonField::Timestamp)?)?;
        let customer = match value(JsonField::CustomerId)? {
            Scalar::String(text) | Scalar::Number(text) if is_valid_customer_id(text) => text,
            _ => return Err(RejectReason::InvalidCustomer),
        };
        match value(JsonField::Path)? {
            Scalar::String(text) if !text.is_empty() => {}
            Scalar::Escaped => {}
            _ => return Err(RejectReason::MissingField(JsonField::Path)),
        }
        let status = match value(JsonField::Status)? {
            Scalar::String(text) | Scalar::Number(text) => parse_status(text),
            _ => None,
        }
        .ok_or(RejectReason::InvalidStatus)?;
        let latency_us = match value(JsonField::Duration)? {
            Scalar::String(text) | Scalar::Number(text) => duration_us(text, self.duration_unit),
            _ => Err(RejectReason::InvalidDuration),
        }?;
        Ok(Record {
            customer,
            day,
            second_of_day,
            status,
            latency_us,
        })
    }
}

/// Bit `i` set: field `i` of [`JsonField::ALL`] is still looked for below this level.
const ALL_FIELDS: u8 = 0b1_1111;

/// The raw JSON of each field found so far, borrowed from the line.
#[derive(Default)]
struct Found<'a> {
    values: [Option<&'a RawValue>; 5],
}

/// A field's JSON value, as far as the conversions care.
enum Scalar<'a> {
    /// A string without escapes: its bytes between the quotes.
    String(&'a [u8]),
    /// A string with escapes (no valid timestamp, customer id, status or duration has one).
    Escaped,
    /// A number: its exact text.
    Number(&'a [u8]),
    /// `null`, which counts as missing.
    Null,
    /// An object, an array, `true` or `false`.
    Other,
}

impl<'a> Scalar<'a> {
    fn of(raw: &'a str) -> Self {
        let bytes = raw.as_bytes();
        match bytes.first() {
            Some(b'"') => {
                let inner = &bytes[1..bytes.len().saturating_sub(1).max(1)];
                if inner.contains(&b'\\') {
                    Scalar::Escaped
                } else {
                    Scalar::String(inner)
                }
            }
            Some(b'-' | b'0'..=b'9') => Scalar::Number(bytes),
            Some(b'n') => Scalar::Null,
            _ => Scalar::Other,
        }
    }
}

/// One level of the object: which fields are still looked for below it, and how deep it is.
struct Level<'s, 'a> {
    paths: &'s [FieldPath; 5],
    active: u8,
    depth: usize,
    found: &'s mut Found<'a>,
}

impl Level<'_, '_> {
    /// The fields among `active` whose segment at this depth is `matches`.
    fn matching(&self, matches: impl Fn(&Segment) -> bool) -> u8 {
        let mut bits = 0;
        for (i, path) in self.paths.iter().enumerate() {
            if self.active & (1 << i) != 0 && path.segments.get(self.depth).is_some_and(&matches) {
                bits |= 1 << i;
            }
        }
        bits
    }

    /// The one field that ends at this depth among `bits`, if one does (fields never overlap,
    /// so a field that ends here is the only one with this segment).
    fn ending(&self, bits: u8) -> Option<usize> {
        (0..5).find(|&i| bits & (1 << i) != 0 && self.paths[i].segments.len() == self.depth + 1)
    }
}

impl<'de> DeserializeSeed<'de> for Level<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        while let Some(bits) = map.next_key_seed(Key { level: &self })? {
            if bits == 0 {
                map.next_value::<IgnoredAny>()?;
            } else if let Some(field) = self.ending(bits) {
                self.found.values[field] = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value_seed(Level {
                    paths: self.paths,
                    active: bits,
                    depth: self.depth + 1,
                    found: &mut *self.found,
                })?;
            }
        }
        Ok(())
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        let mut index = 0;
        loop {
            let bits = self.matching(|segment| segment.index == Some(index));
            let more = if bits == 0 {
                seq.next_element::<IgnoredAny>()?.is_some()
            } else if let Some(field) = self.ending(bits) {
                match seq.next_element::<&'de RawValue>()? {
                    Some(raw) => {
                        self.found.values[field] = Some(raw);
                        true
                    }
                    None => false,
                }
            } else {
                seq.next_element_seed(Level {
                    paths: self.paths,
                    active: bits,
                    depth: self.depth + 1,
                    found: &mut *self.found,
                })?
                .is_some()
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }

    // A scalar where a field's path goes on: the field is not there.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A key of an object: which of the level's fields it leads to, as bits.
struct Key<'l, 's, 'a> {
    level: &'l Level<'s, 'a>,
}

impl<'de> DeserializeSeed<'de> for Key<'_, '_, '_> {
    type Value = u8;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<u8, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_, '_> {
    type Value = u8;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    // Borrowed and escaped keys both arrive here, neither copied.
    fn visit_str<E: de::Error>(self, key: &str) -> Result<u8, E> {
        Ok(self.level.matching(|segment| segment.name == key))
    }
}

/// The latest event time a line may hold: 9999-12-31 23:59:59 UTC, as in native lines.
const MAX_EVENT_TIME: i64 = 253_402_300_799;

/// The earliest: 0001-01-01 00:00:00 UTC.
const MIN_EVENT_TIME: i64 = -62_135_596_800;

/// A timestamp to (UTC day, second of that day): an RFC 3339 string with any offset, or Unix
/// seconds (a number, or a string of one) with an optional fraction, which is dropped.
fn parse_event_time(value: Scalar<'_>) -> Result<(i32, u32), RejectReason> {
    let seconds = match value {
        Scalar::String(text) if text.get(4) == Some(&b'-') => parse_rfc3339(text),
        Scalar::String(text) | Scalar::Number(text) => parse_unix_seconds(text),
        _ => None,
    }
    .filter(|t| (MIN_EVENT_TIME..=MAX_EVENT_TIME).contains(t))
    .ok_or(RejectReason::InvalidTimestamp)?;
    let day = i32::try_from(seconds.div_euclid(SECONDS_PER_DAY))
        .map_err(|_| RejectReason::InvalidTimestamp)?;
    Ok((day, seconds.rem_euclid(SECONDS_PER_DAY) as u32))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`t`, `z` or a space also accepted) to Unix
/// seconds, the fraction dropped.
fn parse_rfc3339(text: &[u8]) -> Option<i64> {
    if text.len() < 20 || !matches!(text[10], b'T' | b't' | b' ') {
        return None;
    }
    let day = parse_date(&text[..10])?;
    let second_of_day = parse_time(&text[11..19])?;
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hour_seconds = parse_time(&[*h1, *h2, b':', b'0', b'0', b':', b'0', b'0'])?;
            let minutes = u32::from(m1.wrapping_sub(b'0')) * 10 + u32::from(m2.wrapping_sub(b'0'));
            if !m1.is_ascii_digit() || !m2.is_ascii_digit() || minutes >= 60 {
                return None;
            }
            let offset = i64::from(hour_seconds + minutes * 60);
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    Some(i64::from(day) * SECONDS_PER_DAY + i64::from(second_of_day) - offset)
}

/// `SECONDS[.FRACTION]`, non-negative, at most 12 digits before the point, to whole seconds.
fn parse_unix_seconds(text: &[u8]) -> Option<i64> {
    let (whole, fraction) = match memchr::memchr(b'.', text) {
        Some(point) => (&text[..point], Some(&text[point + 1..])),
        None => (text, None),
    };
    let digits_only = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if whole.is_empty()
        || whole.len() > 12
        || !digits_only(whole)
        || fraction.is_some_and(|f| f.is_empty() || !digits_only(f))
    {
        return None;
    }
    whole
        .iter()
        .try_fold(0i64, |n, &b| Some(n * 10 + i64::from(b - b'0')))
}

/// Longest duration text the decimal shift below handles: 9 digits, a point and 7 decimals
/// (past the 7th, digits never change the rounding to microseconds).
const SHIFTED_BYTES: usize = 17;

/// A JSON duration in `unit` (a number, or a string holding one) to whole microseconds, rounded
/// half up: its decimal point is moved to make it seconds, then [`parse_duration_us`] reads it,
/// so the same value gives the same microseconds as in a native line. Exponents are accepted
/// (`1.5e-3`); signs other than an exponent's are not.
pub(super) fn duration_us(text: &[u8], unit: DurationUnit) -> Result<u64, RejectReason> {
    let plain = !text.iter().any(|b| matches!(b, b'e' | b'E' | b'-' | b'+'));
    if unit == DurationUnit::S && plain {
        return parse_duration_us(text).ok_or_else(|| too_long_or_invalid(text));
    }
    shifted_duration_us(text, unit.decimals())
}

fn too_long_or_invalid(seconds: &[u8]) -> RejectReason {
    if parse_any_duration_us(seconds).is_some() {
        RejectReason::DurationTooLong
    } else {
        RejectReason::InvalidDuration
    }
}

/// [`duration_us`] of `text` divided by 10^`decimals`, through its digits and exponent.
pub(super) fn shifted_duration_us(text: &[u8], decimals: i64) -> Result<u64, RejectReason> {
    const INVALID: RejectReason = RejectReason::InvalidDuration;
    let (mantissa, exponent) = match text.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(e) => (&text[..e], parse_exponent(&text[e + 1..]).ok_or(INVALID)?),
        None => (text, 0),
    };
    let (whole, fraction) = match memchr::memchr(b'.', mantissa) {
        Some(point) => (&mantissa[..point], &mantissa[point + 1..]),
        None => (mantissa, &b""[..]),
    };
    let digits_only = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if (whole.is_empty() && fraction.is_empty()) || !digits_only(whole) || !digits_only(fraction) {
        return Err(INVALID);
    }
    // The significant digits (`high` then `low`), and where the point goes among them once
    // in seconds.
    let leading_zeros = whole.iter().take_while(|&&b| b == b'0').count();
    let whole = &whole[leading_zeros..];
    let (high, low, point) = if whole.is_empty() {
        let zeros = fraction.iter().take_while(|&&b| b == b'0').count();
        (&fraction[zeros..], &b""[..], -(zeros as i64))
    } else {
        (whole, fraction, whole.len() as i64)
    };
    let digits = || high.iter().chain(low).copied();
    let point = point + exponent - decimals;
    if digits().all(|b| b == b'0') || point <= -7 {
        return Ok(0);
    }
    // More than 9 digits before the point: what the native parser refuses to read.
    if point > 9 {
        return Err(RejectReason::InvalidDuration);
    }
    let mut shifted = [0u8; SHIFTED_BYTES];
    let mut len = 0;
    let mut push = |b: u8| {
        shifted[len] = b;
        len += 1;
    };
    if point <= 0 {
        push(b'.');
        (0..-point).for_each(|_| push(b'0'));
        digits().take((7 + point) as usize).for_each(&mut push);
    } else {
        let point = point as usize;
        let mut all = digits().chain(std::iter::repeat(b'0')).take(point);
        all.by_ref().for_each(&mut push);
        if high.len() + low.len() > point {
            push(b'.');
            digits().skip(point).take(7).for_each(&mut push);
        }
    }
    let seconds = &shifted[..len];
    parse_duration_us(seconds).ok_or_else(|| too_long_or_invalid(seconds))
}

/// An exponent's `[+-]digits`, clamped to ±1000 (beyond, a duration is 0 or too long anyway).
fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0i64, |n, &b| (n * 10 + i64::from(b - b'0')).min(1000));
    Some(if negative { -value } else { value })
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
