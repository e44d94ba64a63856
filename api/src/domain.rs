//! Validated request inputs: a well-formed `CustomerId` and a `RequestedRange` of real dates.

use chrono::{Datelike, NaiveDate};
use logstats_shared::record::{is_valid_customer_id, parse_date};
use logstats_shared::storage::date_from_day;
use logstats_shared::StatsSummary;
use serde::{Serialize, Serializer};

/// Longest piece of a rejected value echoed back in an error message.
const MAX_ECHOED_CHARS: usize = 32;

/// Why a request's input was refused; every message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The path's customer id is not 1-64 characters of `A-Z a-z 0-9 . _ -`, or is `.` or `..`.
    #[error("invalid customer id: expected 1-64 characters of A-Z a-z 0-9 . _ -, not . or ..")]
    InvalidCustomerId,
    /// No `from` query parameter.
    #[error("missing query parameter `from` (expected YYYY-MM-DD)")]
    MissingFrom,
    /// `from` or `to` is not a real date written as `YYYY-MM-DD`.
    #[error("invalid `{parameter}` date {value:?}: expected a real date as YYYY-MM-DD")]
    InvalidDate {
        /// `from` or `to`.
        parameter: &'static str,
        /// The rejected value, shortened to a few characters.
        value: String,
    },
    /// `to` is earlier than `from`.
    #[error("`to` ({to}) is before `from` ({from})")]
    ToBeforeFrom {
        /// The requested first day.
        from: NaiveDate,
        /// The requested last day.
        to: NaiveDate,
    },
    /// `percentiles` is not a list of numbers from 0 to 100.
    #[error("invalid `percentiles` {value:?}: expected 1-{MAX_PERCENTILES} comma-separated numbers from 0 to 100 with at most {MAX_PERCENTILE_DECIMALS} decimals, e.g. 90,95,99.9")]
    InvalidPercentiles {
        /// The rejected value, shortened to a few characters.
        value: String,
    },
    /// `sort` names no field of the stats.
    #[error("invalid `sort` {value:?}: expected one of {}", SortField::NAMES.join(", "))]
    InvalidSort {
        /// The rejected value, shortened to a few characters.
        value: String,
    },
    /// `order` is neither `asc` nor `desc`.
    #[error("invalid `order` {value:?}: expected asc or desc")]
    InvalidOrder {
        /// The rejected value, shortened to a few characters.
        value: String,
    },
    /// `limit` or `offset` is not a whole number in its bounds.
    #[error("invalid `{parameter}` {value:?}: expected a whole number from {min} to {max}")]
    InvalidNumber {
        /// `limit` or `offset`.
        parameter: &'static str,
        /// The rejected value, shortened to a few characters.
        value: String,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
}

/// Most extra percentiles one request may ask for.
pub const MAX_PERCENTILES: usize = 16;
/// Most decimals of an asked percentile.
pub const MAX_PERCENTILE_DECIMALS: usize = 6;
/// Customers per page of `/customers` when `limit` is not given.
pub const DEFAULT_LIST_LIMIT: u64 = 100;
/// Most customers per page of `/customers`.
pub const MAX_LIST_LIMIT: u64 = 1000;
/// Largest `offset` of `/customers`: with [`MAX_LIST_LIMIT`], the list is ranked in a heap of
/// at most `MAX_LIST_OFFSET + MAX_LIST_LIMIT` (100,000) entries, whatever the number of
/// customers.
pub const MAX_LIST_OFFSET: u64 = 99_000;

/// The extra percentiles asked for with `percentiles=90,95,99.9`: each with its key in the
/// response (the number as Rust prints it: `99.90` is `99.9`), in the order asked, without
/// repeats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PercentileList(pub Vec<(String, f64)>);

impl PercentileList {
    /// Validates the raw `percentiles` query parameter (`None`: none asked for).
    pub fn parse(raw: Option<&str>) -> Result<PercentileList, ValidationError> {
        let Some(raw) = raw else {
            return Ok(PercentileList::default());
        };
        let invalid = || ValidationError::InvalidPercentiles {
            value: raw.chars().take(MAX_ECHOED_CHARS).collect(),
        };
        let mut list: Vec<(String, f64)> = Vec::new();
        for part in raw.split(',') {
            let (whole, decimals) = part.split_once('.').unwrap_or((part, "0"));
            let digits = |s: &str, max: usize| {
                !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
            };
            if !digits(whole, 3) || !digits(decimals, MAX_PERCENTILE_DECIMALS) {
                return Err(invalid());
            }
            let p: f64 = part.parse().map_err(|_| invalid())?;
            if !(0.0..=100.0).contains(&p) {
                return Err(invalid());
            }
            if !list.iter().any(|&(_, q)| q == p) {
                list.push((p.to_string(), p));
            }
        }
        if list.len() > MAX_PERCENTILES {
            return Err(invalid());
        }
        Ok(PercentileList(list))
    }

    /// Whether none were asked for.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The query value that gives this list, for cache keys.
    pub fn key(&self) -> String {
        let keys: Vec<&str> = self.0.iter().map(|(key, _)| key.as_str()).collect();
        keys.join(",")
    }
}

/// What `/customers` sorts by: the customer id or a field of its total stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SortField {
    /// The customer id (the default).
    CustomerId,
    /// `total_requests`.
    TotalRequests,
    /// `successful_requests`.
    SuccessfulRequests,
    /// `failed_requests`.
    FailedRequests,
    /// `uptime`.
    Uptime,
    /// `average_latency`.
    AverageLatency,
    /// `median_latency`.
    MedianLatency,
    /// `p99_latency`.
    P99Latency,
}

impl SortField {
    /// The accepted values of `sort`, in the order of the variants.
    pub const NAMES: [&'static str; 8] = [
        "customer_id",
        "total_requests",
        "successful_requests",
        "failed_requests",
        "uptime",
        "average_latency",
        "median_latency",
        "p99_latency",
    ];
    const ALL: [SortField; 8] = [
        SortField::CustomerId,
        SortField::TotalRequests,
        SortField::SuccessfulRequests,
        SortField::FailedRequests,
        SortField::Uptime,
        SortField::AverageLatency,
        SortField::MedianLatency,
        SortField::P99Latency,
    ];

    /// The field named `name`.
    pub fn parse(name: &str) -> Result<SortField, ValidationError> {
        Self::NAMES
            .iter()
            .position(|&n| n == name)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| ValidationError::InvalidSort {
                value: name.chars().take(MAX_ECHOED_CHARS).collect(),
            })
    }

    /// Its name as `sort` takes it.
    pub fn name(self) -> &'static str {
        Self::NAMES[Self::ALL.iter().position(|&f| f == self).unwrap_or(0)]
    }
}

/// How `/customers` pages its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPage {
    /// What to sort by.
    pub sort: SortField,
    /// Descending when true.
    pub descending: bool,
    /// Most customers returned.
    pub limit: u64,
    /// Customers skipped before the first returned.
    pub offset: u64,
}

impl ListPage {
    /// Validates the raw `sort`, `order`, `limit` and `offset` query parameters.
    pub fn parse(
        sort: Option<&str>,
        order: Option<&str>,
        limit: Option<&str>,
        offset: Option<&str>,
    ) -> Result<ListPage, ValidationError> {
        let sort = sort.map_or(Ok(SortField::CustomerId), SortField::parse)?;
        let descending = match order {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ValidationError::InvalidOrder {
                    value: other.chars().take(MAX_ECHOED_CHARS).collect(),
                })
            }
        };
        let number = |parameter: &'static str, raw: Option<&str>, default, min, max| {
            let Some(raw) = raw else { return Ok(default) };
            let invalid = || ValidationError::InvalidNumber {
                parameter,
                value: raw.chars().take(MAX_ECHOED_CHARS).collect(),
                min,
                max,
            };
            if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            raw.parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(invalid)
        };
        let limit = number("limit", limit, DEFAULT_LIST_LIMIT, 1, MAX_LIST_LIMIT)?;
        let offset = number("offset", offset, 0, 0, MAX_LIST_OFFSET)?;
        Ok(ListPage {
            sort,
            descending,
            limit,
            offset,
        })
    }
}

/// A customer id in the form the ingest job stores: 1-64 of `A-Z a-z 0-9 . _ -`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    /// Accepts `id` when it is a well-formed customer id.
    pub fn parse(id: String) -> Result<CustomerId, ValidationError> {
        if is_valid_customer_id(id.as_bytes()) {
            Ok(CustomerId(id))
        } else {
            Err(ValidationError::InvalidCustomerId)
        }
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CustomerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CustomerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The days a caller asked for: `from`, and `to` when given (both inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedRange {
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive; `None` means "the last day with data".
    pub to: Option<NaiveDate>,
}

impl RequestedRange {
    /// Validates the raw `from` and `to` query parameters.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<RequestedRange, ValidationError> {
        let from = parse_day("from", from.ok_or(ValidationError::MissingFrom)?)?;
        let to = to.map(|to| parse_day("to", to)).transpose()?;
        if let Some(to) = to.filter(|&to| to < from) {
            return Err(ValidationError::ToBeforeFrom { from, to });
        }
        Ok(RequestedRange { from, to })
    }
}

/// `YYYY-MM-DD` as a date, with the same rules as the log parser (a real date, four-digit year).
fn parse_day(parameter: &'static str, value: &str) -> Result<NaiveDate, ValidationError> {
    parse_date(value.as_bytes())
        .map(date_from_day)
        .ok_or_else(|| ValidationError::InvalidDate {
            parameter,
            value: value.chars().take(MAX_ECHOED_CHARS).collect(),
        })
}

/// One day of a `CustomerStats`: its date and its stats, side by side in one JSON object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayEntry {
    /// The UTC day.
    #[serde(serialize_with = "iso_date")]
    #[schema(value_type = String, format = Date, example = "2024-10-10")]
    pub date: NaiveDate,
    /// That day's stats.
    #[serde(flatten)]
    pub stats: StatsSummary,
}

/// Writes a date as `YYYY-MM-DD` (years 1-9999, as the parser accepts).
pub fn iso_date<S: Serializer>(date: &NaiveDate, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = Vec::with_capacity(10);
    write_iso_date(&mut text, *date);
    serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
}

/// Appends a date as `YYYY-MM-DD` (chrono's `%Y-%m-%d` outside years 0-9999).
pub fn write_iso_date(out: &mut Vec<u8>, date: NaiveDate) {
    let (year, month, day) = (date.year(), date.month(), date.day());
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(date.format("%Y-%m-%d").to_string().as_bytes());
        return;
    }
    let mut text = *b"0000-00-00";
    for (at, value, width) in [(0, year as u32, 4), (5, month, 2), (8, day, 2)] {
        let mut value = value;
        for i in (0..width).rev() {
            text[at + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    out.extend_from_slice(&text);
}

#[cfg(test)]
mod tests;
