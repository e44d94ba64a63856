//! `GET /docs`: Swagger UI on `/openapi.json`, from files embedded in the binary (pinned in
//! `api/assets/swagger-ui/`, refreshed by its `update.sh`): it works offline, nothing comes
//! from a CDN.

use actix_web::http::header::{self, ContentType};
use actix_web::{get, HttpRequest, HttpResponse};

use crate::error::{ApiError, ErrorBody};

/// The page: relative links to the assets below and to the document.
const PAGE: &str = include_str!("../../assets/swagger-ui/index.html");

/// Every file the page loads, served under `/docs/`: name, content type, bytes.
const ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/dist/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/dist/swagger-ui.css"),
    ),
    (
        "init.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/init.js"),
    ),
];

/// The names of the files under `/docs/`, as the document lists them.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only its schema is used: the handler looks names up in `ASSETS`.
enum DocsAsset {
    #[schema(rename = "swagger-ui-bundle.js")]
    Bundle,
    #[schema(rename = "swagger-ui.css")]
    Css,
    #[schema(rename = "init.js")]
    Init,
}

/// Only the API's own origin may provide anything to these pages (Swagger UI styles elements
/// inline and draws icons from `data:` URLs).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
    style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// How long browsers may keep an asset: they change only with the binary.
const ASSET_CACHE_CONTROL: &str = "public, max-age=3600";

/// Interactive documentation of this API (Swagger UI), served by the API itself.
#[utoipa::path(
    tag = "documentation",
    responses((status = 200, description = "The Swagger UI page", content_type = "text/html",
        body = String)),
)]
#[get("/docs")]
pub async fn docs_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE)
}

/// A script or style sheet of the `/docs` page.
#[utoipa::path(
    tag = "documentation",
    params(("asset" = inline(DocsAsset), Path, description = "The file's name")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"),
            (String = "text/css"),
        )),
        (status = 404, description = "No such file", body = ErrorBody),
    ),
)]
#[get("/docs/{asset}")]
pub async fn docs_asset(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let name = request.match_info().query("asset");
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .ok_or(ApiError::NoRoute)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *content_type))
        .insert_header((header::CACHE_CONTROL, ASSET_CACHE_CONTROL))
        .body(*bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_assets() {
        let links: Vec<&str> = PAGE
            .split(['"', '\''])
            .filter(|piece| piece.starts_with("docs/"))
            .collect();
        assert_eq!(links.len(), ASSETS.len(), "{links:?}");
        for link in links {
            let name = link.trim_start_matches("docs/");
            assert!(ASSETS.iter().any(|(asset, _, _)| *asset == name), "{link}");
        }
        assert!(!PAGE.contains("http:") && !PAGE.contains("https:") && !PAGE.contains("//"));
    }
}
