//! `GET /metrics`: the API's metrics in the Prometheus text exposition format (see
//! `crate::metrics` and docs/API.md, "Metrics").
//!
//! Namesake: this module is the endpoint and writes the caches' and the pool's counts;
//! `crate::metrics` counts the requests (the middleware) and writes those.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{get, web, HttpResponse};
use logstats_shared::metrics::{Exposition, Kind, CONTENT_TYPE};
use logstats_shared::Store;

use crate::answers::Answers;
use crate::metrics::ApiMetrics;
use crate::rows::RowCache;

/// Metrics for Prometheus: requests by route template and status, latency histograms by
/// route, answer and row cache hits and misses, database pool connections.
///
/// Text exposition format 0.0.4. Reading it takes no database connection; the scrape itself
/// is counted once it is answered (in the next scrape).
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The metrics, in the Prometheus text exposition format \
            (`text/plain; version=0.0.4`)", content_type = "text/plain", body = String),
    ),
)]
#[get("/metrics")]
pub async fn metrics(
    metrics: web::Data<ApiMetrics>,
    answers: web::Data<Answers>,
    rows: web::Data<RowCache>,
    store: web::Data<Store>,
) -> HttpResponse {
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
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)))
        .body(out.finish())
}
