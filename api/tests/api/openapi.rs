//! `GET /openapi.json` (in-process): a valid OpenAPI 3 document that lists every route
//! the API serves, each documented route served, and JSON 404/405 answers around them.

use std::collections::BTreeSet;

use crate::support::{seed, tool_available, Api, SEEDED_CUSTOMERS, SEEDED_DAYS};
use logstats_shared::testing::spawn::{Binary, RUN_TIMEOUT};
use logstats_shared::testing::TestDatabase;
use serde_json::{json, Value};

/// Every route the API has, served or planned (see docs/OPERATIONS.md, "The API"). A route in this list
/// that the binary serves must be in the document; one the binary does not serve answers the
/// JSON 404 of unknown paths. (Routes not listed here cannot be served undocumented either:
/// `routes::configure` registers a handler only with its `#[utoipa::path]`.)
const KNOWN_ROUTES: [&str; 11] = [
    "/",
    "/health",
    "/ready",
    "/metrics",
    "/stats?from=2024-10-10",
    "/customers?from=2024-10-10",
    "/customers/cust_1/stats?from=2024-10-10",
    "/openapi.json",
    "/docs",
    "/docs/init.js",
    "/favicon.ico",
];

const OPERATION_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document(api: &Api) -> Value {
    let response = api.get("/openapi.json");
    assert_eq!(response.status, 200);
    response.json()
}

/// `path` with its query stripped matches the OpenAPI path `template` (`{name}` is one segment).
fn matches_template(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    let (template, path): (Vec<&str>, Vec<&str>) =
        (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

/// Resolves a local `$ref` (`#/components/schemas/Name`) in `document`.
fn resolve<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    document.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` anywhere in `value`.
fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                found.push(reference);
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

#[test]
fn the_document_is_valid_openapi_3() {
    let db = TestDatabase::sqlite();
    // The open API's document, and the one of an API with tokens (its bearer scheme, and the
    // 401 and 403 answers of the protected operations).
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("sha256:{} *\n", "0".repeat(64))).expect("a tokens file");
    let tokens = tokens.to_str().expect("a UTF-8 path");
    for args in [&[][..], &["--tokens", tokens, "--protect-ops"][..]] {
        let api = Api::spawn_with(&db, args);
        check_document(&document(&api), args);
    }
}

/// Asserts `doc` is a valid OpenAPI 3 document, by the checks here and by
/// openapi-spec-validator; `args`: the API's flags, for the messages.
fn check_document(doc: &Value, args: &[&str]) {
    let doc = doc.clone();
    let protected = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("a path item").values())
        .filter(|operation| operation.get("security").is_some())
        .count();
    assert_eq!(protected > 0, !args.is_empty(), "{args:?}: {protected}");

    // The structure, checked here.
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert_eq!(doc["info"]["title"], "logstats API");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    for reference in &refs {
        assert!(
            resolve(&doc, reference).is_some(),
            "dangling $ref {reference}"
        );
    }
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    let mut operation_ids = BTreeSet::new();
    for (template, item) in paths {
        let item = item.as_object().expect("a path item");
        for (method, operation) in item {
            assert!(
                OPERATION_METHODS.contains(&method.as_str()),
                "{template}: {method}"
            );
            assert!(operation_ids.insert(operation["operationId"].to_string()));
            assert!(
                operation["summary"].is_string(),
                "{method} {template}: no summary"
            );
            // Every `{name}` of the template is a required path parameter, and no other.
            let names: BTreeSet<&str> = template
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let in_path: BTreeSet<&str> = parameters
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{template}: {p}");
                    p["name"].as_str().expect("a name")
                })
                .collect();
            assert_eq!(in_path, names, "{method} {template}");
            for parameter in &parameters {
                assert!(
                    parameter["description"].is_string(),
                    "{template}: {parameter}"
                );
                assert!(parameter["schema"].is_object(), "{template}: {parameter}");
            }
            // Every error response is documented as {"error": "..."} JSON.
            let responses = operation["responses"].as_object().expect("responses");
            assert!(responses.keys().any(|status| status.starts_with('2')));
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {template} {status}"
                    );
                }
            }
        }
    }
    assert_eq!(
        doc["components"]["schemas"]["ErrorBody"]["required"],
        json!(["error"])
    );

    // And by an independent validator (openapi-spec-validator, installed by .ci/run).
    if !tool_available(
        "python3",
        &["-c", "import openapi_spec_validator"],
        "pip install openapi-spec-validator==0.9.0",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).expect("JSON")).expect("write the document");
    let output = Binary::new("python3")
        .args([
            "-c",
            "import json, sys; from openapi_spec_validator import validate; \
             validate(json.load(open(sys.argv[1]))); print('valid')",
        ])
        .arg(&file)
        .run(RUN_TIMEOUT);
    assert!(
        output.status.success(),
        "openapi-spec-validator ({args:?}): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "valid");
}

/// Swagger UI (`/docs`) groups operations by their first tag, groups in the order of the
/// document's `tags`: the customer's and the fleet's statistics sit together, first.
#[test]
fn operations_are_grouped_by_declared_tags_stats_first() {
    let db = TestDatabase::sqlite();
    let api = Api::spawn(&db);
    let doc = document(&api);
    let declared: Vec<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|tag| tag["name"].as_str().expect("a tag name"))
        .collect();
    assert_eq!(
        declared,
        ["stats", "dashboard", "operations", "documentation"]
    );
    let mut grouped: Vec<(usize, String)> = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for method in OPERATION_METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let tags: Vec<&str> = operation["tags"]
                .as_array()
                .expect("tags")
                .iter()
                .map(|tag| tag.as_str().expect("a tag"))
                .collect();
            assert_eq!(tags.len(), 1, "{method} {template}: {tags:?}");
            let group = declared
                .iter()
                .position(|tag| *tag == tags[0])
                .unwrap_or_else(|| panic!("{method} {template}: tag {} undeclared", tags[0]));
            grouped.push((group, template.clone()));
        }
    }
    grouped.sort();
    let stats: Vec<&str> = grouped
        .iter()
        .filter(|(group, _)| *group == 0)
        .map(|(_, template)| template.as_str())
        .collect();
    assert_eq!(
        stats,
        ["/customers", "/customers/{customer_id}/stats", "/stats"]
    );
}

#[test]
fn every_route_served_is_documented_and_every_documented_route_is_served() {
    let db = TestDatabase::sqlite();
    seed(&db);
    let api = Api::spawn(&db);
    let doc = document(&api);
    let paths = doc["paths"].as_object().expect("paths");
    let not_found = json!({ "error": "not found" });

    // Served -> documented: each known route either answers the unknown-path 404 or is in the
    // document, with every method it answers.
    for route in KNOWN_ROUTES {
        let response = api.get(route);
        let served = response.status != 404
            || serde_json::from_slice::<Value>(&response.body).ok() != Some(not_found.clone());
        let documented = paths
            .iter()
            .find(|(template, _)| matches_template(template, route));
        match (served, documented) {
            (false, None) => {}
            (true, Some((_, item))) => assert!(item.get("get").is_some(), "GET {route}"),
            (true, None) => panic!("{route} is served ({}) but not documented", response.status),
            (false, Some((template, _))) => panic!("{template} is documented, {route} is 404"),
        }
    }

    // Documented -> served, as documented: each operation, called with its parameters' examples
    // (or the first value of their enum), answers one of its documented statuses with the
    // documented content type.
    for (template, item) in paths {
        let operation = &item["get"];
        let mut path = template.clone();
        let mut query = Vec::new();
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().expect("a name");
            let example = &parameter["example"];
            let value = example
                .as_str()
                .map(str::to_string)
                .or_else(|| example.is_number().then(|| example.to_string()))
                .or_else(|| parameter["schema"]["enum"][0].as_str().map(str::to_string))
                .unwrap_or_else(|| panic!("{template}: no example for {name}"));
            let value = value.as_str();
            match parameter["in"].as_str() {
                Some("path") => path = path.replace(&format!("{{{name}}}"), value),
                Some("query") => query.push(format!("{name}={value}")),
                other => panic!("{template}: parameter in {other:?}"),
            }
        }
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        let response = api.get(&path);
        let documented = &operation["responses"][response.status.to_string()];
        assert!(
            documented.is_object(),
            "GET {path}: undocumented {}",
            response.status
        );
        let content = documented["content"]
            .as_object()
            .expect("documented content");
        let content_type = response.content_type.as_str();
        assert!(
            content.contains_key(content_type),
            "GET {path}: {content_type}"
        );
    }

    // The examples of the stats route name a seeded customer and day: it answers 200.
    assert!(SEEDED_CUSTOMERS.contains(&"cust_22") && SEEDED_DAYS.contains(&"2024-10-10"));
    assert_eq!(
        api.get("/customers/cust_22/stats?from=2024-10-10").status,
        200
    );
}

#[test]
fn other_methods_are_405_json_with_allow_and_unknown_paths_404_json() {
    let db = TestDatabase::sqlite();
    let api = Api::spawn(&db);
    let doc = document(&api);
    for template in doc["paths"].as_object().expect("paths").keys() {
        let path = template
            .replace("{customer_id}", "cust_1")
            .replace("{asset}", "init.js")
            .replace("{file}", "dashboard.js");
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let response = api.call(method, &path);
            assert_eq!(response.status, 405, "{method} {path}");
            assert_eq!(
                response.header("allow"),
                Some("GET, HEAD"),
                "{method} {path}"
            );
            assert_eq!(
                response.json(),
                json!({ "error": format!("method {method} not allowed here (allowed: GET, HEAD)") })
            );
            assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        }
        // HEAD wherever GET is: the same status and head, no body.
        let get = api.get(&path);
        let head = api.call("HEAD", &path);
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path}: {}", head.text());
        for name in [
            "content-type",
            "etag",
            "cache-control",
            "x-content-type-options",
        ] {
            assert_eq!(head.header(name), get.header(name), "HEAD {path}: {name}");
        }
        assert_eq!(
            get.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    for (method, path) in [
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("GET", "/docs/"),
        ("GET", "/docs/missing.js"),
        ("GET", "/openapi.json/x"),
        ("PUT", "/customers/cust_1"),
    ] {
        let response = api.call(method, path);
        assert_eq!(response.status, 404, "{method} {path}");
        assert_eq!(
            response.json(),
            json!({ "error": "not found" }),
            "{method} {path}"
        );
    }
}

#[test]
fn templates_match_paths_segment_by_segment() {
    assert!(matches_template(
        "/customers/{customer_id}/stats",
        "/customers/c/stats?from=x"
    ));
    assert!(!matches_template(
        "/customers/{customer_id}/stats",
        "/customers//stats"
    ));
    assert!(!matches_template(
        "/customers/{customer_id}/stats",
        "/customers?from=x"
    ));
    assert!(matches_template("/health", "/health"));
    assert!(!matches_template("/docs", "/docs/init.js"));
}
