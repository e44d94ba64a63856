//! `GET /customers/{customer_id}/stats?from=YYYY-MM-DD[&to=YYYY-MM-DD]`: a customer's stored days
//! over a date range, each summarised, and their merge.

use actix_web::http::header::ContentType;
use actix_web::web::{self, Bytes};
use actix_web::{get, HttpResponse};
use chrono::NaiveDate;
use std::sync::Arc;

use logstats_shared::stats::SUMMARY_PERCENTILES;
use logstats_shared::{DayStats, Latencies, StatsSummary, Store};
use serde::Serialize;

use crate::answers::{AnswerKey, Answers};
use crate::domain::{iso_date, CustomerId, DayEntry, PercentileList, RequestedRange};
use crate::error::{ApiError, ErrorBody};
use crate::freshness::Freshness;
use crate::packed::{
    merged_summary_of_packed, with_scratch, write_day_entry, PackError, PackedDay, PackedDays,
};
use crate::rows::{Loaded, RowCache};

/// The raw query parameters of a customer's stats and of the fleet's (`GET /stats`); validated
/// into a [`RequestedRange`] and a [`PercentileList`]. Unknown parameters are ignored.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// First day of the range (UTC, inclusive), `YYYY-MM-DD`, year 0001-9999. Required: without
    /// it the answer is a 400.
    #[param(
        required = true,
        value_type = String,
        format = Date,
        pattern = "^(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}$",
        example = "2024-10-10"
    )]
    pub from: Option<String>,
    /// Last day of the range (UTC, inclusive), `YYYY-MM-DD`, year 0001-9999, not before `from`;
    /// default: the last day with data (of the customer, or of any customer for the fleet).
    #[param(
        required = false,
        value_type = String,
        format = Date,
        pattern = "^(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}$",
        example = "2024-11-09"
    )]
    pub to: Option<String>,
    /// Extra latency percentiles to report in each Stats' `latency_percentiles`: 1-16
    /// comma-separated numbers from 0 to 100 (at most 6 decimals), computed like the median.
    #[param(
        required = false,
        value_type = String,
        pattern = "^(?:100(?:\\.0{1,6})?|[0-9]{1,2}(?:\\.[0-9]{1,6})?)(?:,(?:100(?:\\.0{1,6})?|[0-9]{1,2}(?:\\.[0-9]{1,6})?)){0,15}$",
        example = "90,95,99.9"
    )]
    pub percentiles: Option<String>,
}

/// The 200 response: the range actually covered, its merged stats and every day with requests.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerStats {
    /// The customer asked about.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "cust_22")]
    pub customer_id: String,
    /// First day, inclusive.
    #[serde(serialize_with = "iso_date")]
    #[schema(value_type = String, format = Date, example = "2024-10-10")]
    pub from: NaiveDate,
    /// Last day, inclusive: the requested `to`, else the last day with data in the range, else
    /// `from`.
    #[serde(serialize_with = "iso_date")]
    #[schema(value_type = String, format = Date, example = "2024-11-09")]
    pub to: NaiveDate,
    /// All days of the range merged.
    pub total: StatsSummary,
    /// The days with requests, ascending.
    pub days: Vec<DayEntry>,
}

/// A customer's stats over a range of days: every day with requests, and their merge.
///
/// Reads the stored daily rows of the range and merges them; nothing is recomputed from raw
/// logs. A range without requests gives zero counts and null uptime and latencies.
#[utoipa::path(
    tag = "stats",
    params(
        (
            "customer_id",
            description = "The customer, as in the logs: 1-64 of `A-Z a-z 0-9 . _ -`, not `.` or `..`",
            pattern = "^[A-Za-z0-9._-]{1,64}$",
            example = "cust_22",
        ),
        StatsQuery,
    ),
    responses(
        (status = 200, description = "The range's days and their merge", body = CustomerStats),
        (status = 400, description = "A missing or invalid `from` or `to`, `to` before `from`, \
            invalid `percentiles`, a malformed customer id or query string", body = ErrorBody),
        (status = 404, description = "No day at all is stored for this customer", body = ErrorBody),
        (status = 500, description = "A stored row is corrupt, or another fault of ours (the cause \
            is logged, not shown)", body = ErrorBody),
        (status = 503, description = "The database did not answer in time", body = ErrorBody),
    ),
)]
#[get("/customers/{customer_id}/stats")]
pub async fn customer_stats(
    store: web::Data<Store>,
    answers: web::Data<Answers>,
    rows: web::Data<RowCache>,
    freshness: web::Data<Freshness>,
    customer_id: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let customer = CustomerId::parse(customer_id.into_inner())?;
    let range = RequestedRange::parse(query.from.as_deref(), query.to.as_deref())?;
    let extra = PercentileList::parse(query.percentiles.as_deref())?;
    // Every customer's version as of a round that started after this request arrived: any
    // commit visible now is in it (see `crate::freshness`).
    let versions = freshness.current().await;
    if let Some(error) = versions.error {
        // The round could not reach the database within the pool's timeout: say so now rather
        // than wait as long again for this request's own connection.
        return Err(ApiError::versions_unavailable(error));
    }
    let version = versions.of(customer.as_str());
    if version == 0 {
        // No commit ever wrote a row of this customer: nothing to read, and nothing to remember
        // (an unknown id must cost no memory, whoever sends it).
        return Err(ApiError::UnknownCustomer(customer));
    }
    let store = store.into_inner();
    if !rows.enabled() {
        // Nothing is copied: read the range itself.
        let body =
            web::block(move || answer_from_store(&store, &customer, &range, &extra)).await??;
        return Ok(json(body));
    }
    let key = if extra.is_empty() {
        AnswerKey::new(&customer, &range)
    } else {
        AnswerKey::subject(format!("{customer}?percentiles={}", extra.key()), &range)
    };
    let answers = answers.into_inner();
    if let Some(body) = answers.get(&key, version) {
        return Ok(json(body));
    }
    let rows = rows.into_inner();
    let copy = match rows.fresh(customer.as_str(), version) {
        Some(copy) => copy,
        None if !rows.has_copy(customer.as_str()) && !rows.admits(customer.as_str()) => {
            // Not copied, and the copy is full: read just this range, evicting nothing.
            let body =
                web::block(move || answer_from_store(&store, &customer, &range, &extra)).await??;
            answers.put(key, version, body.clone());
            return Ok(json(body));
        }
        None => {
            let (reader, rows, id) = (Arc::clone(&store), Arc::clone(&rows), customer.clone());
            // Diesel blocks: the read runs on actix's blocking pool.
            match web::block(move || rows.load(&reader, id.as_str(), version)).await?? {
                Loaded::Rows(copy) => copy,
                Loaded::TooLarge => {
                    let body =
                        web::block(move || answer_from_store(&store, &customer, &range, &extra))
                            .await??;
                    return Ok(json(body));
                }
            }
        }
    };
    let days = copy.days.range(range.from, range.to);
    let version = copy.version.max(version);
    let body = if days.len() > LARGE_RANGE_DAYS || !extra.is_empty() {
        // Merging years of days, or percentiles for every day, takes a while: not on an HTTP
        // worker.
        web::block(move || answer_from_copy(&customer, &range, &copy.days, days, &extra)).await??
    } else {
        answer_from_copy(&customer, &range, &copy.days, days, &extra)?
    };
    // Remembered at the version the copy is current at: at least the one this request saw.
    answers.put(key, version, body.clone());
    Ok(json(body))
}

/// Ranges of more days than this are merged on the blocking pool.
const LARGE_RANGE_DAYS: usize = 400;

pub(crate) fn json(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}

/// The body for `customer` over `range` from a copy of its days (`range_days`: the indexes of
/// those in the range).
fn answer_from_copy(
    customer: &CustomerId,
    range: &RequestedRange,
    all_days: &PackedDays,
    range_days: std::ops::Range<usize>,
    extra: &PercentileList,
) -> Result<Bytes, ApiError> {
    if all_days.is_empty() {
        return Err(ApiError::UnknownCustomer(customer.clone()));
    }
    let days = range_days
        .map(|i| all_days.get(i))
        .collect::<Result<Vec<PackedDay<'_>>, PackError>>()
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let total =
        merged_summary_of_packed(&days, &extra.0).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let to = resolved_to(range, days.last().map(|d| d.date));
    let mut body = response_head(customer, range.from, to, &total)?;
    body.reserve(days.len() * 200 + 2);
    for (i, day) in days.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let mut summary = day.summary();
        if !extra.is_empty() {
            let ps: Vec<f64> = extra.0.iter().map(|&(_, p)| p).collect();
            let values = day
                .latencies
                .percentiles(&ps)
                .map_err(|e| ApiError::Internal(Box::new(e)))?;
            summary = summary.with_percentiles(&extra.0, &values);
        }
        write_day_entry(&mut body, day.date, &summary);
    }
    body.extend_from_slice(b"]}");
    Ok(Bytes::from(body))
}

/// The body for `customer` over `range`, read from the database (no copy is used).
fn answer_from_store(
    store: &Store,
    customer: &CustomerId,
    range: &RequestedRange,
    extra: &PercentileList,
) -> Result<Bytes, ApiError> {
    let mut days = store.customer_days(customer.as_str(), range.from, range.to)?;
    days.retain(|(_, stats)| stats.total() > 0);
    if days.is_empty() && !store.customer_exists(customer.as_str())? {
        return Err(ApiError::UnknownCustomer(customer.clone()));
    }
    let stats: Vec<&DayStats> = days.iter().map(|(_, stats)| stats).collect();
    let total = merged_summary(&stats, extra);
    let to = resolved_to(range, days.last().map(|&(date, _)| date));
    let mut body = response_head(customer, range.from, to, &total)?;
    for (i, (date, stats)) in days.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        write_day_entry(&mut body, *date, &stats.summary_with_percentiles(&extra.0));
    }
    body.extend_from_slice(b"]}");
    Ok(Bytes::from(body))
}

/// The requested `to`, else the last day with data in the range, else `from`.
fn resolved_to(range: &RequestedRange, last_day: Option<NaiveDate>) -> NaiveDate {
    range.to.or(last_day).unwrap_or(range.from)
}

/// The summary of `days` merged: exact counts and sums, and percentiles over every latency.
fn merged_summary(days: &[&DayStats], extra: &PercentileList) -> StatsSummary {
    let mut total = DayStats::empty();
    for day in days {
        total.successful += day.successful;
        total.failed += day.failed;
        total.latency_sum_us += day.latency_sum_us;
    }
    let mut ps = SUMMARY_PERCENTILES.to_vec();
    ps.extend(extra.0.iter().map(|&(_, p)| p));
    let latencies: Vec<&Latencies> = days.iter().map(|d| &d.latencies).collect();
    let percentiles =
        with_scratch(|scratch| Latencies::merged_percentiles(&latencies, &ps, scratch));
    total
        .summary_with(percentiles[0], percentiles[1])
        .with_percentiles(&extra.0, &percentiles[SUMMARY_PERCENTILES.len()..])
}

/// `{"customer_id":..,"from":..,"to":..,"total":{..},"days":[` of a response.
fn response_head(
    customer: &CustomerId,
    from: NaiveDate,
    to: NaiveDate,
    total: &StatsSummary,
) -> Result<Vec<u8>, ApiError> {
    #[derive(Serialize)]
    struct Head<'a> {
        customer_id: &'a str,
        #[serde(serialize_with = "iso_date")]
        from: NaiveDate,
        #[serde(serialize_with = "iso_date")]
        to: NaiveDate,
        total: &'a StatsSummary,
    }
    let mut body = serde_json::to_vec(&Head {
        customer_id: customer.as_str(),
        from,
        to,
        total,
    })
    .map_err(|e| ApiError::Internal(Box::new(e)))?;
    // Replace the closing brace with the start of the days.
    body.pop();
    body.extend_from_slice(b",\"days\":[");
    Ok(body)
}
