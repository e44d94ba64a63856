//! `GET /stats` (every customer merged over a range) and `GET /customers` (every customer's
//! total over a range, sorted and paged). The answers are `crate::service`'s (computed by
//! [`crate::fleet`]); here: the parameters.
//!
//! Namesake: this module is the fleet views' endpoints; `crate::fleet` computes the views.

use actix_web::{get, web, HttpResponse};

use super::json;
use super::stats::StatsQuery;
use crate::domain::{ListPage, PercentileList, RequestedRange, SortField};
use crate::error::{ApiError, ErrorBody};
use crate::fleet::{CustomerList, FleetStats};
use crate::service::{self, Shared};

/// The direction of the sort.
// Only the OpenAPI document names it: the handler reads `order` into `ListPage::descending`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
enum Order {
    Asc,
    Desc,
}

/// The query of `GET /customers`. Unknown parameters are ignored.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// First day of the range (UTC, inclusive), `YYYY-MM-DD`. Required.
    #[param(required = true, value_type = String, format = Date, pattern = "^(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}$", example = "2024-10-10")]
    pub from: Option<String>,
    /// Last day (UTC, inclusive), not before `from`; default: the last day any customer has data.
    #[param(required = false, value_type = String, format = Date, pattern = "^(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}$", example = "2024-11-09")]
    pub to: Option<String>,
    /// Extra latency percentiles in each customer's total, as for the customer endpoint.
    #[param(
        required = false,
        value_type = String,
        pattern = "^(?:100(?:\\.0{1,6})?|[0-9]{1,2}(?:\\.[0-9]{1,6})?)(?:,(?:100(?:\\.0{1,6})?|[0-9]{1,2}(?:\\.[0-9]{1,6})?)){0,15}$",
        example = "90,95,99.9"
    )]
    pub percentiles: Option<String>,
    /// What to sort by: `customer_id` (the default) or a field of the total. Ties are ordered
    /// by customer id; a null (no latency) sorts as the smallest value.
    #[param(required = false, value_type = SortField, inline, example = "failed_requests")]
    pub sort: Option<String>,
    /// `asc` (the default) or `desc`.
    #[param(required = false, value_type = Order, inline, example = "desc")]
    pub order: Option<String>,
    /// Customers per page: 1-1000, default 100.
    #[param(required = false, value_type = u64, minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<String>,
    /// Customers skipped: 0-99000, default 0.
    #[param(required = false, value_type = u64, minimum = 0, maximum = 99000, example = 0)]
    pub offset: Option<String>,
}

/// Every customer's requests merged: per day and over the whole range.
///
/// Reads the range's stored fleet rows (one a day: every customer's rows of the day, merged as
/// they are committed), with the same exact statistics as the customer endpoint. A range without requests gives zero
/// counts, null uptime and latencies, and no days.
#[utoipa::path(
    tag = "stats",
    params(StatsQuery),
    responses(
        (status = 200, description = "The range's days and their merge, over every customer", body = FleetStats),
        (status = 400, description = "A missing or invalid `from` or `to`, `to` before `from`, \
            invalid `percentiles`, a malformed query string", body = ErrorBody),
        (status = 500, description = "A stored row is corrupt, or another fault of ours", body = ErrorBody),
        (status = 503, description = "The database did not answer in time, or the fleet views \
            are busy or this walk passed its deadline (with `Retry-After`)", body = ErrorBody),
    ),
)]
#[get("/stats")]
pub async fn fleet_stats(
    shared: Shared,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let range = RequestedRange::parse(query.from.as_deref(), query.to.as_deref())?;
    let extra = PercentileList::parse(query.percentiles.as_deref())?;
    let body = service::fleet_stats(&shared, range, extra).await?;
    Ok(json(body))
}

/// Every customer with requests in the range and its total, sorted and paged.
///
/// `count` is the number of customers with requests in the range, over all pages. Each total
/// is computed like the customer endpoint's `total`.
#[utoipa::path(
    tag = "stats",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of customers with their totals", body = CustomerList),
        (status = 400, description = "A missing or invalid `from` or `to`, `to` before `from`, \
            invalid `percentiles`, `sort`, `order`, `limit` or `offset`, a malformed query \
            string", body = ErrorBody),
        (status = 500, description = "A stored row is corrupt, or another fault of ours", body = ErrorBody),
        (status = 503, description = "The database did not answer in time, or the fleet views \
            are busy or this walk passed its deadline (with `Retry-After`)", body = ErrorBody),
    ),
)]
#[get("/customers")]
pub async fn customer_list(
    shared: Shared,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let range = RequestedRange::parse(query.from.as_deref(), query.to.as_deref())?;
    let extra = PercentileList::parse(query.percentiles.as_deref())?;
    let page = ListPage::parse(
        query.sort.as_deref(),
        query.order.as_deref(),
        query.limit.as_deref(),
        query.offset.as_deref(),
    )?;
    let body = service::customer_list(&shared, range, extra, page).await?;
    Ok(json(body))
}
