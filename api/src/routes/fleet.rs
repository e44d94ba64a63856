//! `GET /stats` (every customer merged over a range) and `GET /customers` (every customer's
//! total over a range, sorted and paged). The work is in [`crate::fleet`]; here: parameters,
//! freshness and remembered answers.

use actix_web::web::{self, Bytes};
use actix_web::{get, HttpResponse};
use logstats_shared::Store;

use crate::answers::{AnswerKey, Answers};
use crate::domain::{ListPage, PercentileList, RequestedRange, SortField};
use crate::error::{ApiError, ErrorBody};
use crate::fleet::{self, CustomerList, FleetGate, FleetStats, Turn, WalkError};
use crate::freshness::Freshness;
use crate::routes::stats::{json, StatsQuery};
use crate::rows::RowCache;

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
    store: web::Data<Store>,
    answers: web::Data<Answers>,
    freshness: web::Data<Freshness>,
    gate: web::Data<FleetGate>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let range = RequestedRange::parse(query.from.as_deref(), query.to.as_deref())?;
    let extra = PercentileList::parse(query.percentiles.as_deref())?;
    let versions = freshness.current().await;
    if let Some(error) = versions.error {
        return Err(ApiError::versions_unavailable(error));
    }
    let key = AnswerKey::subject(format!("/stats?percentiles={}", extra.key()), &range);
    if let Some(body) = answers.get(&key, versions.newest) {
        return Ok(json(body));
    }
    let turn = take_turn(&gate).await?;
    let store = store.into_inner();
    // The turn moves into the walk: it is held until the walk ends, even if the client left.
    let body = web::block(move || -> Result<Bytes, ApiError> {
        let stats: FleetStats = fleet::fleet_stats(&store, &range, &extra, &turn)?;
        encode(&stats)
    })
    .await??;
    answers.put(key, versions.newest, body.clone());
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
    store: web::Data<Store>,
    answers: web::Data<Answers>,
    freshness: web::Data<Freshness>,
    gate: web::Data<FleetGate>,
    rows: web::Data<RowCache>,
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
    let versions = freshness.current().await;
    if let Some(error) = versions.error {
        return Err(ApiError::versions_unavailable(error));
    }
    let key = AnswerKey::subject(
        format!(
            "/customers?percentiles={}&sort={}&order={}&limit={}&offset={}",
            extra.key(),
            page.sort.name(),
            page.descending,
            page.limit,
            page.offset
        ),
        &range,
    );
    if let Some(body) = answers.get(&key, versions.newest) {
        return Ok(json(body));
    }
    let turn = take_turn(&gate).await?;
    let store = store.into_inner();
    let all = versions.versions;
    let rows = rows.into_inner();
    let body = web::block(move || -> Result<Bytes, ApiError> {
        // Every customer copied and current: answered from memory. A few customers changed by
        // the commits since (or new) are brought up to date first, when the copy has room for
        // them. Else the database is walked.
        let mut copies = rows.copies_of(&all);
        if copies.is_none() {
            if let Some(behind) = rows.behind(&all, REFRESH_AT_MOST) {
                for (customer, version) in behind {
                    rows.load(&store, customer, version)?;
                }
                copies = rows.copies_of(&all);
            }
        }
        if let Some(copies) = copies {
            let list = fleet::customer_list_from_copies(&copies, &range, &extra, &page, &turn)?;
            rows.customer_lists.from_copies.inc();
            return encode(&list);
        }
        let mut customers: Vec<&str> = all.keys().map(|id| &**id).collect();
        customers.sort_unstable();
        let list: CustomerList =
            fleet::customer_list(&store, &customers, &range, &extra, &page, &turn)?;
        rows.customer_lists.from_database.inc();
        encode(&list)
    })
    .await??;
    answers.put(key, versions.newest, body.clone());
    Ok(json(body))
}

/// Most customers `GET /customers` brings up to date in the row copy before answering from it
/// (one read of each one's changed rows); with more behind, it walks the database.
const REFRESH_AT_MOST: usize = 256;

/// A turn to walk, or the 503 that says the fleet views are busy.
async fn take_turn(gate: &FleetGate) -> Result<Turn, ApiError> {
    gate.turn().await.ok_or_else(|| {
        ApiError::Busy(format!(
            "the fleet views are busy ({} in progress for {} s); retry shortly",
            fleet::FLEET_WALKS,
            fleet::FLEET_QUEUE_WAIT.as_secs()
        ))
    })
}

impl From<WalkError> for ApiError {
    fn from(error: WalkError) -> Self {
        match error {
            WalkError::Storage(storage) => storage.into(),
            too_slow @ WalkError::TooSlow => ApiError::Busy(too_slow.to_string()),
        }
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(Box::new(e)))
}
