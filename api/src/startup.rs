//! Builds the HTTP server; `main` and the tests start the very same app through [`run`].

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::error::QueryPayloadError;
use actix_web::{middleware, web, App, HttpResponse, HttpServer};
use logstats_shared::Store;

use crate::answers::{Answers, DEFAULT_ANSWER_BYTES};
use crate::domain::ValidationError;
use crate::error::ApiError;
use crate::freshness::Freshness;
use crate::routes;
use crate::rows::{RowCache, DEFAULT_ROW_CACHE_BYTES};

/// Byte budgets of the API's memory: the copy of the rows and the remembered answers.
#[derive(Debug, Clone, Copy)]
pub struct MemoryBudget {
    /// Bytes of stored rows copied in memory (0: none; every request reads the database).
    pub row_cache_bytes: usize,
    /// Bytes of remembered answers (0: none).
    pub answer_cache_bytes: usize,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self {
            row_cache_bytes: DEFAULT_ROW_CACHE_BYTES,
            answer_cache_bytes: DEFAULT_ANSWER_BYTES,
        }
    }
}

/// Starts serving on `listener` with `workers` HTTP workers (default: one per physical core),
/// with the default [`MemoryBudget`].
///
/// The returned server runs until awaited to completion; it stops gracefully on SIGINT/SIGTERM
/// or through its handle.
pub fn run(listener: TcpListener, store: Store, workers: Option<usize>) -> std::io::Result<Server> {
    run_with(listener, store, workers, MemoryBudget::default())
}

/// [`run`], within `budget` (see [`RowCache`] and [`Answers`]).
pub fn run_with(
    listener: TcpListener,
    store: Store,
    workers: Option<usize>,
    budget: MemoryBudget,
) -> std::io::Result<Server> {
    let freshness = web::Data::new(Freshness::start(store.clone())?);
    let store = web::Data::new(store);
    let answers = web::Data::new(Answers::new(budget.answer_cache_bytes));
    let rows = web::Data::new(RowCache::new(budget.row_cache_bytes));
    let access_log = log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info);
    let mut server = HttpServer::new(move || {
        App::new()
            // The access log costs ~2 % of a hit's time even when filtered out: skip it then.
            .wrap(middleware::Condition::new(
                access_log,
                middleware::Logger::default(),
            ))
            .app_data(store.clone())
            .app_data(answers.clone())
            .app_data(rows.clone())
            .app_data(freshness.clone())
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                let message = match error {
                    QueryPayloadError::Deserialize(cause) => cause.to_string(),
                    other => other.to_string(),
                };
                ApiError::Query(message).into()
            }))
            .app_data(
                // The only path parameter is the customer id; actix fails only on undecodable bytes.
                web::PathConfig::default().error_handler(|_, _| {
                    ApiError::Validation(ValidationError::InvalidCustomerId).into()
                }),
            )
            .route("/", web::get().to(routes::dashboard_page))
            .route(
                "/assets/dashboard/{file:.+}",
                web::get().to(routes::dashboard_asset),
            )
            .route("/health", web::get().to(routes::health))
            .route(
                "/customers/{customer_id}/stats",
                web::get().to(routes::customer_stats),
            )
            .default_service(web::to(no_route))
    })
    .listen(listener)?;
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// JSON 404 for every path the API does not serve.
async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}
