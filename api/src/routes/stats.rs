//! `GET /customers/{customer_id}/stats?from=YYYY-MM-DD[&to=YYYY-MM-DD]`: a customer's stored days
//! over a date range, each summarised, and their merge.

use actix_web::http::header::ContentType;
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use chrono::{Datelike, NaiveDate};
use logstats_shared::{DayStats, LatencyDigest, StatsSummary, StorageError, Store};
use serde::{Serialize, Serializer};

use crate::answers::{AnswerKey, Answers, Flight, StoredDay};
use crate::domain::{CustomerId, RequestedRange};
use crate::error::ApiError;
use crate::freshness::Freshness;

/// The raw query parameters; validated into a [`RequestedRange`]. Unknown parameters are ignored.
#[derive(Debug, serde::Deserialize)]
pub struct StatsQuery {
    /// First day, `YYYY-MM-DD`, required.
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD`, optional.
    pub to: Option<String>,
}

/// The 200 response: the range actually covered, its merged stats and every day with requests.
#[derive(Debug, Serialize)]
pub struct CustomerStats {
    /// The customer asked about.
    pub customer_id: String,
    /// First day, inclusive.
    #[serde(serialize_with = "iso_date")]
    pub from: NaiveDate,
    /// Last day, inclusive: the requested `to`, else the last day with data.
    #[serde(serialize_with = "iso_date")]
    pub to: NaiveDate,
    /// All days of the range merged.
    pub total: StatsSummary,
    /// The days with requests, ascending.
    pub days: Vec<DayEntry>,
}

/// One day of a [`CustomerStats`]: its date and its stats, side by side in one JSON object.
#[derive(Debug, Serialize)]
pub struct DayEntry {
    /// The UTC day.
    #[serde(serialize_with = "iso_date")]
    pub date: NaiveDate,
    /// That day's stats.
    #[serde(flatten)]
    pub stats: StatsSummary,
}

/// Answers with the customer's merged stats over the requested range.
pub async fn customer_stats(
    store: web::Data<Store>,
    answers: web::Data<Answers>,
    freshness: web::Data<Freshness>,
    customer_id: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let customer = CustomerId::parse(customer_id.into_inner())?;
    let range = RequestedRange::parse(query.from.as_deref(), query.to.as_deref())?;
    // A remembered body at the version a round started after this request's arrival read: no
    // commit visible now changed it (see `crate::freshness`). Served without leaving the worker.
    let answers = answers.into_inner();
    // Held until this request has built (and remembered) its body: dropping it wakes waiters.
    let mut _building = None;
    if answers.enabled() {
        let versions = freshness.current().await;
        if versions.error.is_none() {
            let key = AnswerKey::new(&customer, &range);
            let version = versions.of(customer.as_str());
            if let Some(body) = answers.get(&key, version) {
                return Ok(json(body));
            }
            // One request per key and version builds the body; the others wait, then look
            // again for a body at their own version (see `crate::answers`).
            match answers.fly(&key, version) {
                Flight::Build(guard) => _building = Some(guard),
                waiting => {
                    waiting.landed().await;
                    if let Some(body) = answers.get(&key, version) {
                        return Ok(json(body));
                    }
                }
            }
        }
    }
    let store = store.into_inner();
    // Diesel blocks: the read and the digest merge run on actix's blocking pool.
    let body = web::block(move || answer(&store, &answers, customer, range)).await??;
    Ok(json(body))
}

fn json(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}

/// The JSON body for `customer` over `range`, from the rows stored right now.
///
/// A remembered body is reused only while the customer's version is the one it was built at,
/// so it is never stale (see [`crate::answers`]).
fn answer(
    store: &Store,
    answers: &Answers,
    customer: CustomerId,
    range: RequestedRange,
) -> Result<Bytes, ApiError> {
    let key = AnswerKey::new(&customer, &range);
    let version = store.customer_version(customer.as_str())?;
    if let Some(body) = answers.get(&key, version) {
        return Ok(body);
    }
    let rows = read_days(store, customer.as_str(), range.from, range.to)?;
    let mut days = decode_days(customer.as_str(), &rows)?;
    days.retain(|(_, stats)| stats.total() > 0);
    if days.is_empty() && !store.customer_exists(customer.as_str())? {
        return Err(ApiError::UnknownCustomer(customer));
    }
    let body = Bytes::from(
        serde_json::to_vec(&customer_stats_of(customer, range, &days))
            .map_err(|error| ApiError::Internal(Box::new(error)))?,
    );
    // Remembered only if no commit touched the customer while its rows were read, and not
    // without days (such an answer also depends on whether the customer exists).
    if !days.is_empty() && store.customer_version(key.customer.as_ref())? == version {
        answers.put(key, version, body.clone());
    }
    Ok(body)
}

/// Merges the stored days of the range into the response.
fn customer_stats_of(
    customer: CustomerId,
    range: RequestedRange,
    days: &[(NaiveDate, DayStats)],
) -> CustomerStats {
    // Read open-ended when `to` is absent, so the last row read is the last day with data.
    let to = range
        .to
        .or_else(|| days.last().map(|&(date, _)| date))
        .unwrap_or(range.from);
    let total = DayStats::merge_all(days.iter().map(|(_, stats)| stats)).summary();
    let days = days
        .iter()
        .map(|(date, stats)| DayEntry {
            date: *date,
            stats: stats.summary(),
        })
        .collect();
    CustomerStats {
        customer_id: customer.to_string(),
        from: range.from,
        to,
        total,
        days,
    }
}

/// Last day of an open-ended range (`NaiveDate::MAX` would sort before real dates as SQLite text).
const LAST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(day) => day,
    None => NaiveDate::MAX,
};

/// SQLite maps the file for reads: no copy through the page cache per overflow page. Setting it
/// again on an already mapped connection costs about a microsecond.
const SQLITE_READ_PRAGMAS: &str = "PRAGMA mmap_size = 268435456";

/// The stored rows of `customer` from `from` to `to` (inclusive; open-ended when `None`),
/// ascending by day, undecoded.
fn read_days(
    store: &Store,
    customer: &str,
    from: NaiveDate,
    to: Option<NaiveDate>,
) -> Result<Vec<StoredDay>, StorageError> {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use logstats_shared::storage::schema::daily_stats as t;

    let query = t::table
        .filter(t::customer_id.eq(customer))
        .filter(t::day.between(from, to.unwrap_or(LAST_DAY)))
        .order(t::day.asc())
        .select((
            t::day,
            t::successful,
            t::failed,
            t::latency_sum_us,
            t::latency_min_us,
            t::latency_max_us,
            t::digest,
        ));
    Ok(match store {
        Store::Sqlite(pool) => {
            let mut conn = pool.get()?;
            conn.batch_execute(SQLITE_READ_PRAGMAS)?;
            query.load(&mut conn)?
        }
        Store::Postgres(pool) => query.load(&mut pool.get()?)?,
    })
}

/// Decodes stored rows as the store does: counts clamp at 0, an `i64::MAX` minimum means none.
fn decode_days(
    customer_id: &str,
    rows: &[StoredDay],
) -> Result<Vec<(NaiveDate, DayStats)>, StorageError> {
    let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
    rows.iter()
        .map(|(day, successful, failed, sum, min, max, digest)| {
            let digest = LatencyDigest::decode(digest).map_err(|e| StorageError::CorruptRow {
                customer_id: customer_id.to_string(),
                day: *day,
                reason: e.to_string(),
            })?;
            let stats = DayStats {
                successful: to_u64(*successful),
                failed: to_u64(*failed),
                latency_sum_us: to_u64(*sum),
                latency_min_us: if *min == i64::MAX {
                    u64::MAX
                } else {
                    to_u64(*min)
                },
                latency_max_us: to_u64(*max),
                digest,
            };
            Ok((*day, stats))
        })
        .collect()
}

/// Writes a date as `YYYY-MM-DD` (years 1-9999, as the parser accepts).
fn iso_date<S: Serializer>(date: &NaiveDate, serializer: S) -> Result<S::Ok, S::Error> {
    let (year, month, day) = (date.year(), date.month(), date.day());
    if !(0..=9999).contains(&year) {
        return serializer.collect_str(&date.format("%Y-%m-%d"));
    }
    let mut text = *b"0000-00-00";
    for (at, value, width) in [(0, year as u32, 4), (5, month, 2), (8, day, 2)] {
        let mut value = value;
        for i in (0..width).rev() {
            text[at + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_match_chrono() {
        let mut date = NaiveDate::from_ymd_opt(1, 1, 1).expect("valid date");
        let last = NaiveDate::from_ymd_opt(9999, 12, 31).expect("valid date");
        let mut checked = 0;
        while date <= last {
            let mut out = Vec::new();
            iso_date(&date, &mut serde_json::Serializer::new(&mut out)).expect("serializes");
            assert_eq!(out, format!("\"{}\"", date.format("%Y-%m-%d")).into_bytes());
            date = date + chrono::Days::new(97);
            checked += 1;
        }
        assert!(checked > 30_000);
    }
}
