//! Validated request inputs: a well-formed `CustomerId` and a `RequestedRange` of real dates.

use chrono::NaiveDate;
use logstats_shared::record::{is_valid_customer_id, parse_date};
use logstats_shared::storage::date_from_day;

/// Longest piece of a rejected value echoed back in an error message.
const MAX_ECHOED_CHARS: usize = 32;

/// Why a request's input was refused; every message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The path's customer id is not 1-64 characters of `A-Z a-z 0-9 . _ -`.
    #[error("invalid customer id: expected 1-64 characters of A-Z a-z 0-9 . _ -")]
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
}

/// A customer id in the form the ingest job stores: 1-64 of `A-Z a-z 0-9 . _ -`.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    #[test]
    fn customer_ids_follow_the_ingest_rules() {
        for good in ["cust_22", "a", "A.b-c_9", &"x".repeat(64)] {
            assert_eq!(
                CustomerId::parse(good.to_string()).map(|c| c.0),
                Ok(good.to_string())
            );
        }
        for bad in ["", "cust 1", "cust/1", "cust!", "é", &"x".repeat(65)] {
            assert_eq!(
                CustomerId::parse(bad.to_string()),
                Err(ValidationError::InvalidCustomerId),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parses_inclusive_ranges() {
        assert_eq!(
            RequestedRange::parse(Some("2024-10-10"), None),
            Ok(RequestedRange {
                from: date(2024, 10, 10),
                to: None
            })
        );
        assert_eq!(
            RequestedRange::parse(Some("2024-02-29"), Some("2024-02-29")),
            Ok(RequestedRange {
                from: date(2024, 2, 29),
                to: Some(date(2024, 2, 29))
            })
        );
    }

    #[test]
    fn refuses_anything_but_real_dates() {
        assert_eq!(
            RequestedRange::parse(None, Some("2024-10-10")),
            Err(ValidationError::MissingFrom)
        );
        for bad in [
            "",
            "2024-13-01",
            "2023-02-29",
            "2024-1-05",
            "2024-01-5",
            "24-01-05",
            "2024/01/05",
            "2024-01-05T00:00",
            " 2024-01-05",
            "0000-01-01",
            "+2024-01-05",
        ] {
            assert_eq!(
                RequestedRange::parse(Some(bad), None),
                Err(ValidationError::InvalidDate {
                    parameter: "from",
                    value: bad.to_string()
                }),
                "{bad:?}"
            );
            assert_eq!(
                RequestedRange::parse(Some("2024-01-01"), Some(bad)),
                Err(ValidationError::InvalidDate {
                    parameter: "to",
                    value: bad.to_string()
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_to_before_from() {
        let error = RequestedRange::parse(Some("2024-10-10"), Some("2024-10-09"))
            .expect_err("to before from");
        assert_eq!(
            error.to_string(),
            "`to` (2024-10-09) is before `from` (2024-10-10)"
        );
    }

    #[test]
    fn echoes_only_a_short_prefix_of_a_bad_value() {
        let long = "9".repeat(10_000);
        let error = RequestedRange::parse(Some(&long), None).expect_err("not a date");
        assert_eq!(
            error.to_string(),
            format!(
                "invalid `from` date \"{}\": expected a real date as YYYY-MM-DD",
                "9".repeat(32)
            )
        );
    }
}
