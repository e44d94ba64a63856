//! One module per endpoint, and [`configure`], the one list of the API's routes.

mod assets;
pub mod dashboard;
pub mod docs;
pub mod fleet;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod stats;

pub use crate::domain::DayEntry;
pub use health::Health;
pub use stats::{CustomerStats, StatsQuery};

use utoipa_actix_web::service_config::ServiceConfig;

/// Registers every route of the API, each documented in `/openapi.json` by the same line: a
/// handler needs `#[utoipa::path]` and an actix route macro (`#[get("/path")]`) to be added here.
/// Do not add routes to the app any other way (`.route(...)` would leave them undocumented;
/// `tests/api/openapi.rs` checks that every route answers and is documented).
pub fn configure(api: &mut ServiceConfig<'_>) {
    api.service(stats::customer_stats)
        .service(fleet::fleet_stats)
        .service(fleet::customer_list)
        .service(health::health)
        .service(health::ready)
        .service(openapi::openapi_json)
        .service(docs::docs_page)
        .service(docs::docs_asset)
        .service(dashboard::dashboard_page)
        .service(dashboard::dashboard_asset)
        .service(metrics::metrics);
}
