//! `GET /docs`: an HTML page whose every asset the API serves itself (the committed files, byte
//! for byte), nothing loaded from a CDN (in-process); and, in headless Chromium with every other
//! host unreachable, Swagger UI rendering the API's own document (the real binary, whose log
//! must hold no error).

use std::path::Path;
use std::time::Duration;

use crate::support::{tool_available, Api};
use logstats_shared::testing::spawn::Binary;
use logstats_shared::testing::TestDatabase;

/// Hosts that serve front-end libraries and fonts; none may appear in what `/docs` loads.
/// (The bundle does name validator.swagger.io, as a default that `init.js` turns off.)
const CDN_HOSTS: [&str; 7] = [
    "unpkg.com",
    "jsdelivr.net",
    "cdnjs.cloudflare.com",
    "googleapis.com",
    "gstatic.com",
    "bootstrapcdn.com",
    "petstore.swagger.io",
];

/// The values of every `src="..."` and `href="..."` in `html`.
fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(start) = rest.find(attribute) {
            rest = &rest[start + attribute.len()..];
            let end = rest.find('"').expect("a closing quote");
            found.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    found
}

/// The value of `name="..."` in the start tag `tag` (HTML after its `<`).
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let head = &tag[..tag.find('>')?];
    let start = head.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + head[start..].find('"')?;
    Some(&head[start..end])
}

#[test]
fn docs_serve_a_page_whose_assets_are_all_embedded() {
    let db = TestDatabase::sqlite();
    let api = Api::spawn(&db);
    let page = api.get("/docs");
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html");
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.starts_with("default-src 'self';"), "{csp}");
    let html = page.text();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );

    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/swagger-ui");
    let links = links(&html);
    assert_eq!(links.len(), 3, "{links:?}");
    for link in links {
        // Relative to /docs, as a browser resolves it.
        let name = link.strip_prefix("docs/").expect("a link under docs/");
        let response = api.get(&format!("/docs/{name}"));
        assert_eq!(response.status, 200, "{link}");
        let expected_type = if name.ends_with(".css") {
            "text/css"
        } else {
            "text/javascript"
        };
        assert_eq!(response.content_type, expected_type, "{link}");
        let committed = std::fs::read(assets.join(name))
            .or_else(|_| std::fs::read(assets.join("dist").join(name)))
            .expect("the committed file");
        assert!(
            response.body == committed,
            "{link} differs from the committed file"
        );
        // Revalidated on every use, so an upgrade's files are never stale: a strong ETag, and
        // a bodiless 304 while it matches.
        assert_eq!(response.header("cache-control"), Some("no-cache"), "{link}");
        let etag = response.header("etag").expect("an ETag").to_string();
        assert!(etag.starts_with('"') && etag.len() == 18, "{link}: {etag}");
        let again = api.get_with(&format!("/docs/{name}"), &[("If-None-Match", &etag)]);
        assert_eq!(again.status, 304, "{link}");
        assert!(again.body.is_empty(), "{link}");
        let text = response.text();
        for host in CDN_HOSTS {
            assert!(!text.contains(host), "{link} names {host}");
        }
        if name.ends_with(".css") {
            assert!(!text.contains("@import"), "{link} imports a style sheet");
            assert!(
                !text.contains("url(http") && !text.contains("url(//"),
                "{link}"
            );
        }
    }
    let init = api.get("/docs/init.js").text();
    assert!(init.contains("url: \"openapi.json\"") && init.contains("validatorUrl: null"));
}

#[test]
fn swagger_ui_renders_the_document_offline_in_chromium() {
    if !tool_available(
        "chromium",
        &["--headless", "--version"],
        "apt-get install -y chromium",
    ) {
        return;
    }
    let db = TestDatabase::sqlite();
    let api = Api::start(&db);
    let profile = tempfile::tempdir().expect("a profile directory");
    // Every host but the API's goes through a proxy that does not exist: anything fetched
    // from elsewhere fails, and the page must render all the same.
    let output = Binary::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            "--virtual-time-budget=15000",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{}/docs", api.address))
        .run(Duration::from_secs(90));
    let dom = String::from_utf8_lossy(&output.stdout);
    let log = String::from_utf8_lossy(&output.stderr);
    // Swagger UI drew the document: its title, and an operation of each tag.
    for rendered in [
        "logstats API",
        "/customers/{customer_id}/stats",
        "/health",
        "/openapi.json",
    ] {
        assert!(
            dom.contains(rendered),
            "{rendered} not rendered:\n{dom}\n{log}"
        );
    }
    // The groups in the document's order, the fleet's statistics beside the customer's.
    let mut rendered = Vec::new();
    for piece in dom.split('<').skip(1) {
        if let Some(tag) = attribute(piece, "data-tag").filter(|_| piece.starts_with("h3")) {
            rendered.push(format!("[{tag}]"));
        } else if let Some(path) = attribute(piece, "data-path") {
            rendered.push(path.replace("&#8203;", "").replace('\u{200b}', ""));
        }
    }
    assert_eq!(
        rendered,
        [
            "[stats]",
            "/customers",
            "/customers/{customer_id}/stats",
            "/stats",
            "[dashboard]",
            "/",
            "/assets/dashboard/{file}",
            "[operations]",
            "/health",
            "/metrics",
            "/ready",
            "[documentation]",
            "/docs",
            "/docs/{asset}",
            "/openapi.json",
        ],
        "{dom}"
    );
    // No script error, no load blocked by the page's content security policy.
    for line in log.lines().filter(|line| line.contains("CONSOLE")) {
        assert!(
            !line.contains("Uncaught") && !line.contains("Refused to"),
            "{line}"
        );
    }
    let requests = api.stop();
    assert!(!requests.contains("ERROR"), "{requests}");
}
