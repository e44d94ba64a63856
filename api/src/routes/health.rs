//! `GET /health`: answers while the process lives, without touching the database.

use actix_web::HttpResponse;

/// 200 `{"status":"ok"}`.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}
