//! `GET /docs`: Swagger UI on `/openapi.json`, from files embedded in the binary (pinned in
//! `api/assets/swagger-ui/`, refreshed by its `update.sh`): it works offline, nothing comes
//! from a CDN.

use actix_web::http::header;
use actix_web::{get, HttpRequest, HttpResponse};

use super::assets::{asset, Asset};
use crate::error::{ApiError, ErrorBody};

/// The page: relative links to the assets below and to the document.
static PAGE: Asset = asset(
    "",
    "text/html; charset=utf-8",
    include_bytes!("../../assets/swagger-ui/index.html"),
);

/// Every file the page loads, served under `/docs/`.
static ASSETS: [Asset; 3] = [
    asset(
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/dist/swagger-ui-bundle.js"),
    ),
    asset(
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/dist/swagger-ui.css"),
    ),
    asset(
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

/// Interactive documentation of this API (Swagger UI), served by the API itself.
#[utoipa::path(
    tag = "documentation",
    responses(
        (status = 200, description = "The Swagger UI page", content_type = "text/html",
            body = String),
        (status = 304, description = "Not modified since the `If-None-Match` ETag"),
    ),
)]
#[get("/docs")]
pub async fn docs_page(request: HttpRequest) -> HttpResponse {
    PAGE.serve(
        &request,
        &[(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)],
    )
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
        (status = 304, description = "Not modified since the `If-None-Match` ETag"),
        (status = 404, description = "No such file", body = ErrorBody),
    ),
)]
#[get("/docs/{asset}")]
pub async fn docs_asset(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let name = request.match_info().query("asset");
    ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .map(|asset| asset.serve(&request, &[]))
        .ok_or(ApiError::NoRoute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_assets() {
        let page = std::str::from_utf8(PAGE.body).expect("UTF-8 page");
        let links: Vec<&str> = page
            .split(['"', '\''])
            .filter(|piece| piece.starts_with("docs/"))
            .collect();
        assert_eq!(links.len(), ASSETS.len(), "{links:?}");
        for link in links {
            let name = link.trim_start_matches("docs/");
            assert!(ASSETS.iter().any(|asset| asset.name == name), "{link}");
        }
        assert!(!page.contains("http:") && !page.contains("https:") && !page.contains("//"));
    }
}
