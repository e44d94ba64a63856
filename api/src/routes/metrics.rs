//! `GET /metrics`: the API's metrics in the Prometheus text exposition format (see
//! `crate::metrics` and docs/API.md, "Metrics").
//!
//! Namesake: this module is the endpoint; `crate::metrics` counts the requests (the middleware),
//! and `crate::service::metrics_text` writes those counts out with the caches' and the pool's.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{get, web, HttpResponse};
use logstats_shared::metrics::CONTENT_TYPE;
use logstats_shared::Store;

use crate::answers::Answers;
use crate::metrics::ApiMetrics;
use crate::rows::RowCache;
use crate::service;

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
    let text = service::metrics_text(&metrics, &answers, &rows, &store);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)))
        .body(text)
}
