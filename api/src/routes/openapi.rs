//! `GET /openapi.json`: the API's OpenAPI 3 document (see `crate::openapi`).
//!
//! Namesake: this module is the endpoint; `crate::openapi` builds the document it serves.

use actix_web::http::header::ContentType;
use actix_web::{get, web, HttpResponse};

use crate::openapi::ApiDocument;

/// This document: every endpoint, parameter, schema and error response of the API.
#[utoipa::path(
    tag = "documentation",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json",
        body = Object)),
)]
#[get("/openapi.json")]
pub async fn openapi_json(document: web::Data<ApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(document.json())
}
