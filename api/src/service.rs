//! The work below the routes: each handler of `GET /customers/{customer_id}/stats`, `GET
//! /stats` and `GET /customers` parses its request and calls one function here
//! ([`customer_stats`], [`fleet_stats`], [`customer_list`]), which returns the JSON body of the
//! 200 answer, or the error to answer; so do `GET /ready` ([`readiness`]) and `GET /metrics`
//! ([`metrics_text`]).
//!
//! Each stats answer waits for a version round that started after the request arrived (see
//! `crate::freshness`), sends a remembered answer when there is one at the version it saw (see
//! `crate::answers`), and otherwise computes the answer and remembers it: a customer's from its
//! copy of the rows (see `crate::rows`) or from the database, the fleet views through the walks
//! and rankings of `crate::fleet`, one turn of the fleet gate at a time.

use std::sync::Arc;

use actix_web::web::{self, Bytes};
use chrono::NaiveDate;
use serde::Serialize;

use logstats_shared::metrics::{Exposition, Kind};
use logstats_shared::stats::SUMMARY_PERCENTILES;
use logstats_shared::{DayStats, Latencies, StatsSummary, Store};

use crate::answers::{AnswerKey, Answers};
use crate::domain::{iso_date, CustomerId, DayEntry, ListPage, PercentileList, RequestedRange};
use crate::error::ApiError;
use crate::fleet::{self, CustomerList, FleetGate, FleetStats, Turn};
use crate::freshness::{Freshness, Schema, Versions};
use crate::metrics::ApiMetrics;
use crate::packed::{
    merged_summary_of_packed, with_scratch, write_day_entry, PackError, PackedDay, PackedDays,
};
use crate::rows::{Loaded, RowCache};

/// What the stats endpoints read and remember, shared by every worker (the app holds each as
/// its own `web::Data`; the routes extract them together).
pub struct Shared {
    /// The stored rows.
    pub store: Arc<Store>,
    /// Remembered answers.
    pub answers: Arc<Answers>,
    /// The copy of the customers' rows.
    pub rows: Arc<RowCache>,
    /// The version rounds.
    pub freshness: Arc<Freshness>,
    /// The turns of the fleet walks.
    pub gate: Arc<FleetGate>,
}

/// The 200 response of `GET /customers/{customer_id}/stats`: the range actually covered, its
/// merged stats and every day with requests. The body is written by hand (`response_head` and
/// `crate::packed::write_day_entry`), in exactly the form serde_json gives this type.
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

/// Every customer's version as of a round that started after this request arrived: any commit
/// visible now is in it (see `crate::freshness`). A round that could not reach the database
/// within the pool's timeout is an error now, rather than a wait as long again for the
/// request's own connection.
async fn current_versions(shared: &Shared) -> Result<Versions, ApiError> {
    let versions = shared.freshness.current().await;
    match versions.error {
        Some(error) => Err(ApiError::versions_unavailable(error)),
        None => Ok(versions),
    }
}

/// The body of `GET /customers/{customer_id}/stats` for `customer` over `range`, with the
/// `extra` percentiles: remembered, else merged from the copy of the customer's rows (brought
/// up to date first), else read from the database.
pub async fn customer_stats(
    shared: &Shared,
    customer: CustomerId,
    range: RequestedRange,
    extra: PercentileList,
) -> Result<Bytes, ApiError> {
    let versions = current_versions(shared).await?;
    let version = versions.of(customer.as_str());
    if version == 0 {
        // No commit ever wrote a row of this customer: nothing to read, and nothing to remember
        // (an unknown id must cost no memory, whoever sends it).
        return Err(ApiError::UnknownCustomer(customer));
    }
    let store = Arc::clone(&shared.store);
    if !shared.rows.enabled() {
        // Nothing is copied: read the range itself.
        let body =
            web::block(move || answer_from_store(&store, &customer, &range, &extra)).await??;
        return Ok(body);
    }
    let key = if extra.is_empty() {
        AnswerKey::new(&customer, &range)
    } else {
        AnswerKey::subject(format!("{customer}?percentiles={}", extra.key()), &range)
    };
    let answers = &shared.answers;
    if let Some(body) = answers.get(&key, version) {
        return Ok(body);
    }
    let rows = &shared.rows;
    let copy = match rows.fresh(customer.as_str(), version) {
        Some(copy) => copy,
        None if !rows.has_copy(customer.as_str()) && !rows.admits(customer.as_str()) => {
            // Not copied, and the copy is full: read just this range, evicting nothing.
            let body =
                web::block(move || answer_from_store(&store, &customer, &range, &extra)).await??;
            answers.put(key, version, body.clone());
            return Ok(body);
        }
        None => {
            let (reader, rows, id) = (Arc::clone(&store), Arc::clone(rows), customer.clone());
            // Diesel blocks: the read runs on actix's blocking pool.
            match web::block(move || rows.load(&reader, id.as_str(), version)).await?? {
                Loaded::Rows(copy) => copy,
                Loaded::TooLarge => {
                    let body =
                        web::block(move || answer_from_store(&store, &customer, &range, &extra))
                            .await??;
                    return Ok(body);
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
    Ok(body)
}

/// Ranges of more days than this are merged on the blocking pool.
const LARGE_RANGE_DAYS: usize = 400;

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

/// The body of `GET /stats` over `range`, with the `extra` percentiles: remembered, else
/// computed by `crate::fleet` (in a turn of the fleet gate) and remembered.
pub async fn fleet_stats(
    shared: &Shared,
    range: RequestedRange,
    extra: PercentileList,
) -> Result<Bytes, ApiError> {
    let versions = current_versions(shared).await?;
    let key = AnswerKey::subject(format!("/stats?percentiles={}", extra.key()), &range);
    if let Some(body) = shared.answers.get(&key, versions.newest) {
        return Ok(body);
    }
    let turn = take_turn(&shared.gate).await?;
    let store = Arc::clone(&shared.store);
    let all = versions.versions;
    // The turn moves into the walk: it is held until the walk ends, even if the client left.
    let body = web::block(move || -> Result<Bytes, ApiError> {
        let mut customers: Vec<&str> = all.keys().map(|id| &**id).collect();
        customers.sort_unstable();
        let stats: FleetStats = fleet::fleet_stats(&store, &customers, &range, &extra, &turn)?;
        encode(&stats)
    })
    .await??;
    shared.answers.put(key, versions.newest, body.clone());
    Ok(body)
}

/// The body of `GET /customers` over `range`, with the `extra` percentiles, sorted and paged as
/// `page` says: remembered, else computed by `crate::fleet` (in a turn of the fleet gate) from
/// the copy of every customer's rows when it is current (or a few customers behind), else from
/// the database, and remembered.
pub async fn customer_list(
    shared: &Shared,
    range: RequestedRange,
    extra: PercentileList,
    page: ListPage,
) -> Result<Bytes, ApiError> {
    let versions = current_versions(shared).await?;
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
    if let Some(body) = shared.answers.get(&key, versions.newest) {
        return Ok(body);
    }
    let turn = take_turn(&shared.gate).await?;
    let store = Arc::clone(&shared.store);
    let all = versions.versions;
    let rows = Arc::clone(&shared.rows);
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
    shared.answers.put(key, versions.newest, body.clone());
    Ok(body)
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

fn encode<T: serde::Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

/// Whether the API may take requests (`GET /ready`): the database answered a version round that
/// started after this call and holds every migration this build knows; else the 503 that says
/// which.
pub async fn readiness(freshness: &Freshness) -> Result<(), ApiError> {
    // A version round that started after this request, on the reader's own connection: no wait
    // for the pool or the blocking threads, however busy the other routes keep them.
    let versions = freshness.current().await;
    if let Some(error) = versions.error {
        return Err(ApiError::versions_unavailable(error));
    }
    match versions.schema {
        Schema::Current => Ok(()),
        Schema::Behind(pending) => Err(ApiError::NotReady(format!(
            "the database schema is not current: {pending} migration(s) of this version are not applied"
        ))),
        Schema::Newer(message) => Err(ApiError::NotReady(message.to_string())),
        Schema::Unknown => Err(ApiError::NotReady(
            "cannot read the database's schema version".to_string(),
        )),
    }
}

/// The body of `GET /metrics`, in the Prometheus text exposition format: the requests'
/// counts and latencies (`metrics`), the caches' hits, misses and sizes, where `GET /customers`
/// answers came from, and the database pool's connections.
pub fn metrics_text(
    metrics: &ApiMetrics,
    answers: &Answers,
    rows: &RowCache,
    store: &Store,
) -> String {
    let mut out = Exposition::new();
    metrics.write(&mut out);
    let caches = [
        ("answers", answers.lookups(), answers.used_bytes()),
        ("rows", rows.lookups(), rows.used_bytes()),
    ];
    let entries = [("answers", answers.len()), ("rows", rows.len())];
    out.family(
        "logstats_api_cache_hits_total",
        Kind::Counter,
        "Cache lookups answered from memory: `answers` (whole responses), `rows` (a customer's \
         stored days).",
    );
    for (cache, (hits, _), _) in caches {
        out.sample("logstats_api_cache_hits_total", &[("cache", cache)], hits);
    }
    out.family(
        "logstats_api_cache_misses_total",
        Kind::Counter,
        "Cache lookups not answered from memory (`rows`: the database was read).",
    );
    for (cache, (_, misses), _) in caches {
        out.sample(
            "logstats_api_cache_misses_total",
            &[("cache", cache)],
            misses,
        );
    }
    out.family(
        "logstats_api_cache_bytes",
        Kind::Gauge,
        "Bytes held by each cache (bounded by --answer-cache-bytes and --row-cache-bytes).",
    );
    for (cache, _, bytes) in caches {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        out.sample("logstats_api_cache_bytes", &[("cache", cache)], bytes);
    }
    out.family(
        "logstats_api_cache_entries",
        Kind::Gauge,
        "Entries held by each cache: `answers` (responses), `rows` (customers).",
    );
    for (cache, count) in entries {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        out.sample("logstats_api_cache_entries", &[("cache", cache)], count);
    }
    out.family(
        "logstats_api_customer_lists_total",
        Kind::Counter,
        "GET /customers answers computed, by where the rows came from: `memory` (every \
         customer's rows held current in the row cache) or `database` (a walk of the range).",
    );
    for (source, counter) in [
        ("memory", &rows.customer_lists.from_copies),
        ("database", &rows.customer_lists.from_database),
    ] {
        out.sample(
            "logstats_api_customer_lists_total",
            &[("source", source)],
            counter.get(),
        );
    }
    let (connections, idle) = store.pool_state();
    out.single(
        "logstats_api_db_pool_connections",
        Kind::Gauge,
        "Database connections open in the pool (in use and idle).",
        connections,
    );
    out.single(
        "logstats_api_db_pool_idle_connections",
        Kind::Gauge,
        "Open database connections not in use.",
        idle,
    );
    out.finish()
}
