//! `GET /` and `GET /assets/dashboard/{file}`: the dashboard page and its files, embedded in the
//! binary so it works offline and needs no build step (see docs/API.md, "Dashboard").
//!
//! The page reads the API's own JSON endpoints from the browser; nothing here touches the
//! database. Every file carries a strong ETag computed at compile time and `Cache-Control:
//! no-cache`, so browsers revalidate (a 304 without a body) and never run a stale script after an
//! upgrade.

use actix_web::http::header;
use actix_web::{get, HttpRequest, HttpResponse};

use super::assets::{asset, Asset};
use crate::error::{ApiError, ErrorBody};

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The page, its script and style, and the chart library (uPlot, pinned by
/// `assets/dashboard/package-lock.json`, copied into `vendor/` by `npm run vendor`).
static ASSETS: [Asset; 6] = [
    asset(
        "",
        "text/html; charset=utf-8",
        include_bytes!("../../assets/dashboard/index.html"),
    ),
    asset(
        "dashboard.js",
        JAVASCRIPT,
        include_bytes!("../../assets/dashboard/dashboard.js"),
    ),
    asset(
        "dashboard.css",
        CSS,
        include_bytes!("../../assets/dashboard/dashboard.css"),
    ),
    asset(
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../assets/dashboard/favicon.svg"),
    ),
    asset(
        "vendor/uPlot.iife.min.js",
        JAVASCRIPT,
        include_bytes!("../../assets/dashboard/vendor/uPlot.iife.min.js"),
    ),
    asset(
        "vendor/uPlot.min.css",
        CSS,
        include_bytes!("../../assets/dashboard/vendor/uPlot.min.css"),
    ),
];

/// What the page may load and run: its own files and the API, nothing inline, nothing remote.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The dashboard: charts of a customer's days over a range and a fleet table (see docs/API.md).
#[utoipa::path(
    tag = "dashboard",
    responses(
        (status = 200, description = "The dashboard page", content_type = "text/html",
            body = String),
        (status = 304, description = "Not modified since the `If-None-Match` ETag"),
    ),
)]
#[get("/")]
pub async fn dashboard_page(request: HttpRequest) -> HttpResponse {
    ASSETS[0].serve(
        &request,
        &[
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
    )
}

/// A file the dashboard page loads (script, style sheet, icon, the chart library).
#[utoipa::path(
    tag = "dashboard",
    params(("file" = String, Path, example = "dashboard.js",
        description = "The file's name, e.g. `dashboard.js` or `vendor/uPlot.min.css`")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"),
            (String = "text/css"),
            (String = "image/svg+xml"),
        )),
        (status = 304, description = "Not modified since the `If-None-Match` ETag"),
        (status = 404, description = "No such file", body = ErrorBody),
    ),
)]
#[get("/assets/dashboard/{file:.+}")]
pub async fn dashboard_asset(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let file = request.match_info().query("file");
    ASSETS[1..]
        .iter()
        .find(|asset| asset.name == file)
        .map(|asset| asset.serve(&request, &[]))
        .ok_or(ApiError::NoRoute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_names_is_served() {
        let page = std::str::from_utf8(ASSETS[0].body).expect("UTF-8 page");
        for asset in &ASSETS[1..] {
            let path = format!("/assets/dashboard/{}", asset.name);
            assert!(page.contains(&path), "index.html does not load {path}");
        }
        let named = page.matches("/assets/dashboard/").count();
        assert_eq!(
            named,
            ASSETS.len() - 1,
            "index.html names a file not served"
        );
    }

    #[test]
    fn the_embedded_chart_library_is_the_locked_version() {
        let lock: serde_json::Value =
            serde_json::from_str(include_str!("../../assets/dashboard/package-lock.json"))
                .expect("package-lock.json is JSON");
        let version = lock["packages"]["node_modules/uplot"]["version"]
            .as_str()
            .expect("uplot is locked");
        let script = std::str::from_utf8(&ASSETS[4].body[..100]).expect("ASCII header");
        assert!(
            script.contains(&format!("(v{version})")),
            "vendor/uPlot.iife.min.js is not uplot {version}: run `npm ci && npm run vendor` \
             in api/assets/dashboard"
        );
    }
}
