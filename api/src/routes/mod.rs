//! One module per endpoint, and [`configure`], the one list of the API's routes.
//!
//! A handler parses its request, calls one function of the layer below (`crate::service` for
//! the stats endpoints, `/ready` and `/metrics`) and writes the answer: status, headers, body.

mod assets;
pub mod dashboard;
pub mod docs;
pub mod fleet;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod stats;

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::ContentType;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::service::Shared;

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

/// A 200 answer with `body`, JSON.
pub(crate) fn json(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}

/// The stats endpoints' shared state, taken from the app's `web::Data` of each part.
impl FromRequest for Shared {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(shared(request))
    }
}

fn shared(request: &HttpRequest) -> Result<Shared, actix_web::Error> {
    Ok(Shared {
        store: data(request)?,
        answers: data(request)?,
        rows: data(request)?,
        freshness: data(request)?,
        gate: data(request)?,
    })
}

/// The app's `web::Data<T>`, as its own extractor finds it (a 500 when the app has none).
fn data<T: 'static>(request: &HttpRequest) -> Result<Arc<T>, actix_web::Error> {
    web::Data::<T>::extract(request)
        .into_inner()
        .map(web::Data::into_inner)
}
