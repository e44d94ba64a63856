//! `GET /health`: answers while the process lives, without touching the database.
//! `GET /ready`: answers 200 only while the database answers and its schema is current.

use actix_web::{get, web, HttpResponse};

use crate::error::{ApiError, ErrorBody};
use crate::freshness::Freshness;
use crate::service;

/// The body of `GET /health` and of a ready `GET /ready`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` for `/health`, `ready` for `/ready`.
    #[schema(example = "ok", pattern = "^(ok|ready)$")]
    pub status: &'static str,
}

/// Liveness: 200 while the process runs; the database is not consulted.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)),
)]
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: 200 when the database answers and holds every migration this build knows; 503
/// otherwise (the database is unreachable within the pool's connect timeout, or its schema is
/// older than this build, or was migrated by a newer version). For load balancers and orchestrators; `/health` is liveness only.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The database answers and its schema is current", body = Health),
        (status = 503, description = "The database does not answer, or its schema is not \
            current (older than this version, or migrated by a newer one); `error` says which", body = ErrorBody),
    ),
)]
#[get("/ready")]
pub async fn ready(freshness: web::Data<Freshness>) -> Result<HttpResponse, ApiError> {
    service::readiness(&freshness).await?;
    Ok(HttpResponse::Ok().json(Health { status: "ready" }))
}
