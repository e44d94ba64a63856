//! `GET /customers/{customer_id}/stats?from=YYYY-MM-DD[&to=YYYY-MM-DD]`: a customer's stored days
//! over a date range, each summarised, and their merge.

use actix_web::web;
use chrono::NaiveDate;
use logstats_shared::{DayStats, StatsSummary, Store};
use serde::{Serialize, Serializer};

use crate::domain::{CustomerId, RequestedRange};
use crate::error::ApiError;

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
    customer_id: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<web::Json<CustomerStats>, ApiError> {
    let customer = CustomerId::parse(customer_id.into_inner())?;
    let range = RequestedRange::parse(query.from.as_deref(), query.to.as_deref())?;
    let store = store.into_inner();
    // Diesel blocks: the read and the digest merge run on actix's blocking pool.
    let stats = web::block(move || read_customer_stats(&store, customer, range)).await??;
    Ok(web::Json(stats))
}

/// Reads the stored rows of the range and merges them; one query unless the range is empty.
fn read_customer_stats(
    store: &Store,
    customer: CustomerId,
    range: RequestedRange,
) -> Result<CustomerStats, ApiError> {
    let mut days = store.customer_days(customer.as_str(), range.from, range.to)?;
    days.retain(|(_, stats)| stats.total() > 0);
    if days.is_empty() && !store.customer_exists(customer.as_str())? {
        return Err(ApiError::UnknownCustomer(customer));
    }
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
    Ok(CustomerStats {
        customer_id: customer.to_string(),
        from: range.from,
        to,
        total,
        days,
    })
}

/// Writes a date as `YYYY-MM-DD`.
fn iso_date<S: Serializer>(date: &NaiveDate, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&date.format("%Y-%m-%d"))
}
