//! `GET /customers/{customer_id}/stats?from=YYYY-MM-DD[&to=YYYY-MM-DD]`: a customer's stored days
//! over a date range, each summarised, and their merge. The answer is `crate::service`'s; here:
//! the parameters.

use actix_web::{get, web, HttpResponse};

use super::json;
use crate::domain::{CustomerId, PercentileList, RequestedRange};
use crate::error::{ApiError, ErrorBody};
use crate::service::{self, CustomerStats, Shared};

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
    shared: Shared,
    customer_id: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let customer = CustomerId::parse(customer_id.into_inner())?;
    let range = RequestedRange::parse(query.from.as_deref(), query.to.as_deref())?;
    let extra = PercentileList::parse(query.percentiles.as_deref())?;
    let body = service::customer_stats(&shared, customer, range, extra).await?;
    Ok(json(body))
}
