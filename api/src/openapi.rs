//! The API's OpenAPI 3 document: its frame here, its paths and schemas from the handlers'
//! `#[utoipa::path]` attributes and types, gathered as `routes::configure` registers them (so a
//! route cannot be served without being documented). Served at `GET /openapi.json`.
//!
//! Namesake: this module builds the document; `crate::routes::openapi` is the endpoint that
//! serves it.

use std::collections::BTreeMap;

use actix_web::web::Bytes;
use utoipa::openapi::{OpenApi, PathItem};

use crate::error::ErrorBody;

/// Title, version, tags and the shared schemas; the paths are added by the routes themselves.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "logstats API",
        description = "Per-customer daily request statistics (counts, uptime, latency \
            percentiles), precomputed by the ingest job and merged over any range of days. \
            Every error answers `{\"error\": \"...\"}` JSON.",
    ),
    // Swagger UI (`/docs`) shows the tags in this order, each path under its tag.
    tags(
        (name = "stats", description = "Statistics over a range of UTC days: one customer's, \
            the whole fleet's, and the customers ranked"),
        (name = "dashboard", description = "The dashboard page and its files"),
        (name = "operations", description = "Probes for orchestrators and monitoring"),
        (name = "documentation", description = "This document and its interactive view"),
    ),
    components(schemas(ErrorBody)),
)]
pub struct ApiFrame;

/// The finished document: its JSON, and each path's methods for `405` answers.
#[derive(Debug)]
pub struct ApiDocument {
    json: Bytes,
    /// Path template (`/customers/{customer_id}/stats`) -> `Allow` header value (`GET`).
    allow: BTreeMap<String, String>,
}

impl ApiDocument {
    /// Freezes `document` (the frame with every registered route's path added).
    pub fn new(document: &OpenApi) -> ApiDocument {
        let allow = document
            .paths
            .paths
            .iter()
            .map(|(path, item)| (path.clone(), methods(item).join(", ")))
            .collect();
        // Strings, numbers and maps keyed by strings, built by our code: nothing can fail.
        let json = serde_json::to_vec(document).expect("an OpenAPI document serializes");
        ApiDocument {
            json: Bytes::from(json),
            allow,
        }
    }

    /// The document as JSON.
    pub fn json(&self) -> Bytes {
        self.json.clone()
    }

    /// The `Allow` header value of the documented path `template`, if it is one.
    /// `pattern` is actix's (`{name:regex}` segments allowed); the document names the same
    /// path `{name}`.
    pub fn allow(&self, pattern: &str) -> Option<&str> {
        self.allow
            .get(template_of(pattern).as_str())
            .map(String::as_str)
    }
}

/// An actix route pattern as an OpenAPI path template: `{file:.+}` becomes `{file}`.
fn template_of(pattern: &str) -> String {
    let mut template = String::with_capacity(pattern.len());
    let mut depth = 0usize;
    let mut in_regex = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    template.push(c);
                }
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    in_regex = false;
                    template.push(c);
                }
            }
            ':' if depth == 1 => in_regex = true,
            _ if in_regex || depth > 1 => {}
            _ => template.push(c),
        }
    }
    template
}

/// The methods `item` has operations for, as HTTP names; HEAD wherever GET is (every GET route
/// answers HEAD, see `crate::startup`).
fn methods(item: &PathItem) -> Vec<&'static str> {
    [
        ("GET", &item.get),
        (
            "HEAD",
            if item.head.is_some() {
                &item.head
            } else {
                &item.get
            },
        ),
        ("POST", &item.post),
        ("PUT", &item.put),
        ("PATCH", &item.patch),
        ("DELETE", &item.delete),
        ("OPTIONS", &item.options),
        ("TRACE", &item.trace),
    ]
    .into_iter()
    .filter_map(|(name, operation)| operation.as_ref().map(|_| name))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::template_of;

    #[test]
    fn patterns_become_templates() {
        assert_eq!(
            template_of("/assets/dashboard/{file:.+}"),
            "/assets/dashboard/{file}"
        );
        assert_eq!(
            template_of("/customers/{customer_id}/stats"),
            "/customers/{customer_id}/stats"
        );
        assert_eq!(template_of("/a/{x:[0-9]{2}}/b"), "/a/{x}/b");
        assert_eq!(template_of("/"), "/");
    }
}
