//! `GET /health`: answers while the process lives, without touching the database.

use actix_web::{get, HttpResponse};

/// The body of `GET /health`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok", pattern = "^ok$")]
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
