//! API tokens (`--tokens`) on the real binary, on SQLite and PostgreSQL: 401 without a token or
//! with an unknown one, 403 for a customer or a fleet view the token does not cover, the same
//! 200 bodies as the open API otherwise; `new-token`; the file re-read on SIGHUP (a malformed
//! one kept out); a malformed file refused at start; `--protect-ops`; the document's security
//! scheme; and no token or hash in any log line.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::tokens::{new_token, sha256_hex, TokensFile};
use crate::support::{run_to_exit, seed, Api, Response};
use logstats_shared::testing::spawn::{Binary, RUN_TIMEOUT};
use logstats_shared::testing::{backends, TestDatabase};
use serde_json::{json, Value};

const CUSTOMER_1: &str = "/customers/cust_1/stats?from=2024-10-10";
const CUSTOMER_22: &str = "/customers/cust_22/stats?from=2024-10-10&to=2024-10-13";
const FLEET: [&str; 2] = ["/stats?from=2024-10-10", "/customers?from=2024-10-10"];

fn start(db: &TestDatabase, file: &TokensFile, more: &[&str]) -> Api {
    let mut args = vec!["--tokens", file.arg()];
    args.extend_from_slice(more);
    // Debug: every line anything logs, to look for tokens in.
    Api::start_with(db, &args, &[("RUST_LOG", "debug")])
}

/// Asserts a 401 JSON answer with a Bearer challenge.
fn assert_401(response: &Response, context: &str) {
    assert_eq!(response.status, 401, "{context}: {}", response.text());
    assert!(
        response.json()["error"].is_string(),
        "{context}: {}",
        response.text()
    );
    let challenge = response.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{context}: {challenge:?}");
}

/// Asserts a 403 JSON answer whose error mentions `words`.
fn assert_403(response: &Response, words: &str, context: &str) {
    assert_eq!(response.status, 403, "{context}: {}", response.text());
    let error = response.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains(words), "{context}: {error}");
    assert_eq!(response.header("www-authenticate"), None, "{context}");
}

/// Asserts no line of `log` holds any of `secrets` (tokens and their hashes).
fn assert_no_secret(log: &str, secrets: &[&str]) {
    for line in log.lines() {
        for secret in secrets {
            assert!(!line.contains(secret), "a secret is logged: {line}");
            // Nor a recognisable piece of one.
            assert!(!line.contains(&secret[..16]), "a secret is logged: {line}");
        }
    }
}

#[test]
fn tokens_guard_customers_and_fleet_views() {
    let (customer_1, line_1) = new_token("cust_1");
    let (both, line_both) = new_token("cust_22,cust_1");
    let (all, line_all) = new_token("*");
    assert!(line_1.ends_with(" cust_1") && line_both.ends_with(" cust_1,cust_22"));
    assert_eq!(line_all, format!("sha256:{} *", sha256_hex(&all)));
    let unknown = "f".repeat(64);
    let file = TokensFile::new(&format!(
        "# logstats tokens\n\n{line_1}   # support\n{line_both}\n\t{line_all}\n"
    ));
    for db in backends() {
        seed(&db);
        // The open API (and its warning), for the bodies the guarded one must equal.
        let open = Api::start(&db);
        let mut open_bodies = Vec::new();
        for path in [CUSTOMER_1, CUSTOMER_22, FLEET[0], FLEET[1]] {
            let response = open.get(path);
            assert_eq!(response.status, 200, "{db:?} {path}");
            open_bodies.push((path, response.body));
        }
        let log = open.stop();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("no --tokens file"))
            .collect();
        assert_eq!(warnings.len(), 1, "{log}");
        assert!(warnings[0].contains("open to anyone"), "{log}");

        let api = start(&db, &file, &[]);
        for (path, _) in &open_bodies {
            let context = format!("{db:?} {path}");
            assert_401(&api.get(path), &format!("{context}, no token"));
            assert_401(
                &api.get_with_token(path, &unknown),
                &format!("{context}, unknown token"),
            );
            let other_scheme = format!("Token {all}");
            for header in ["Basic Y3VzdF8xOng=", "Bearer", other_scheme.as_str()] {
                assert_401(
                    &api.get_with(path, &[("Authorization", header)]),
                    &format!("{context}, {header}"),
                );
            }
        }
        assert_eq!(
            api.get(CUSTOMER_1).json(),
            json!({"error": "this endpoint needs a token: send `Authorization: Bearer TOKEN`"})
        );
        assert_eq!(
            api.get_with_token(CUSTOMER_1, &unknown).json(),
            json!({"error": "unknown token"})
        );

        // The right token, and `*`: the open API's very bodies.
        for (path, body) in &open_bodies {
            let response = api.get_with_token(path, &all);
            assert_eq!(response.status, 200, "{db:?} {path} with *");
            assert_eq!(&response.body, body, "{db:?} {path} with *");
        }
        for (token, path) in [
            (&customer_1, CUSTOMER_1),
            (&both, CUSTOMER_1),
            (&both, CUSTOMER_22),
        ] {
            let response = api.get_with_token(path, token);
            assert_eq!(response.status, 200, "{db:?} {path}");
            let body = &open_bodies.iter().find(|(p, _)| *p == path).expect("one").1;
            assert_eq!(&response.body, body, "{db:?} {path}");
        }

        // Another customer, even one with no data, or the path written another way: 403.
        for path in [
            CUSTOMER_22,
            "/customers/nobody/stats?from=2024-10-10",
            "/customers/cust%5F22/stats?from=2024-10-10",
            "/%63ustomers/cust_22/stats?from=2024-10-10",
            "/customers/cust_1%2Fx/stats?from=2024-10-10",
        ] {
            assert_403(
                &api.get_with_token(path, &customer_1),
                "this token does not cover customer",
                &format!("{db:?} {path}"),
            );
        }
        assert_401(
            &api.get("/%63ustomers/cust_22/stats?from=2024-10-10"),
            "an encoded path",
        );
        assert_eq!(
            api.get_with_token("/customers/cust%5F22/stats?from=2024-10-10", &both)
                .status,
            200
        );
        // The fleet views need `*`.
        for path in FLEET {
            for token in [&customer_1, &both] {
                assert_403(
                    &api.get_with_token(path, token),
                    "need a token for every customer",
                    &format!("{db:?} {path}"),
                );
            }
        }

        // Open without a token: the static files, the document and (without --protect-ops)
        // the probes; a path the API does not serve is still a 404.
        for path in [
            "/",
            "/assets/dashboard/dashboard.js",
            "/docs",
            "/docs/init.js",
            "/openapi.json",
            "/health",
            "/ready",
            "/metrics",
        ] {
            assert_eq!(api.get(path).status, 200, "{db:?} {path}");
        }
        assert_eq!(api.get("/nope").json(), json!({"error": "not found"}));
        // Refusals are counted under their route.
        let metrics = api.get("/metrics").text();
        for sample in [
            "logstats_api_requests_total{route=\"/customers/{customer_id}/stats\",status=\"401\"}",
            "logstats_api_requests_total{route=\"/customers/{customer_id}/stats\",status=\"403\"}",
            "logstats_api_requests_total{route=\"/stats\",status=\"403\"}",
            "logstats_api_requests_total{route=\"/customers\",status=\"401\"}",
        ] {
            assert!(metrics.contains(sample), "{sample} in\n{metrics}");
        }

        let log = api.stop();
        assert!(log.contains("DEBUG"), "RUST_LOG=debug: {log}");
        assert!(
            log.contains("3 token(s) from") && !log.contains("no --tokens file"),
            "{log}"
        );
        let hashes = [&customer_1, &both, &all].map(|t| sha256_hex(t));
        assert_no_secret(
            &log,
            &[
                &customer_1,
                &both,
                &all,
                &unknown,
                &hashes[0],
                &hashes[1],
                &hashes[2],
            ],
        );
    }
}

/// Waits until `check` holds (within 10 s).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_rereads_the_file_and_keeps_the_tokens_when_it_is_malformed() {
    let (first, first_line) = new_token("cust_1");
    let (second, second_line) = new_token("*");
    for db in backends() {
        seed(&db);
        let file = TokensFile::new(&format!("{first_line}\n"));
        let api = start(&db, &file, &[]);
        assert_eq!(api.get_with_token(CUSTOMER_1, &first).status, 200);
        assert_401(&api.get_with_token(CUSTOMER_1, &second), "not yet added");

        // Added and removed.
        file.write(&format!("# rotated\n{second_line}\n"));
        api.signal("HUP");
        eventually("the added token works", || {
            api.get_with_token(CUSTOMER_1, &second).status == 200
        });
        assert_401(&api.get_with_token(CUSTOMER_1, &first), "removed");
        eventually("the re-read is logged", || {
            api.stderr().contains("SIGHUP: read 1 token(s) from")
        });

        // Malformed, then missing: the tokens in force stay, with a warning each time.
        file.write(&format!(
            "{second_line}\nsha256:{} cust_1\n",
            sha256_hex(&first).to_uppercase()
        ));
        api.signal("HUP");
        eventually("the malformed file is reported", || {
            api.stderr().contains("line 2: ")
        });
        std::fs::remove_file(&file.path).expect("remove the tokens file");
        api.signal("HUP");
        eventually("the missing file is reported", || {
            api.stderr().contains("cannot read the tokens file")
        });
        assert_eq!(api.get_with_token(CUSTOMER_1, &second).status, 200);
        assert_401(&api.get_with_token(CUSTOMER_1, &first), "still removed");

        let log = api.stop();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("SIGHUP"))
            .collect();
        assert_eq!(warnings.len(), 2, "{log}");
        assert!(
            warnings[0].contains("SIGHUP: tokens file ")
                && warnings[0].contains(
                    "line 2: the hash after `sha256:` is not 64 lowercase hex digits; \
                     the 1 token(s) read before stay in force"
                ),
            "{log}"
        );
        assert!(
            warnings[1].contains("cannot read the tokens file")
                && warnings[1].contains("the 1 token(s) read before stay in force"),
            "{log}"
        );
        let upper = sha256_hex(&first).to_uppercase();
        assert_no_secret(
            &log,
            &[
                &first,
                &second,
                &sha256_hex(&first),
                &sha256_hex(&second),
                &upper,
            ],
        );
    }
}

/// A file caught half written by SIGHUP is not taken: cut inside its last line (`... cust_1` of
/// `... cust_12`, which would have let cust_12's token read cust_1) or truncated to nothing, the
/// tokens read before stay in force and a WARN says why. Without `--tokens`, SIGHUP is logged
/// and the API keeps serving.
#[test]
fn sighup_never_takes_a_half_written_file() {
    let (twelve, twelve_line) = new_token("cust_12");
    let (admin, admin_line) = new_token("*");
    for db in backends() {
        seed(&db);
        let file = TokensFile::new(&format!("{admin_line}\n{twelve_line}\n"));
        let api = start(&db, &file, &[]);
        assert_403(
            &api.get_with_token(CUSTOMER_1, &twelve),
            "cust_1",
            "out of scope",
        );
        let cut = twelve_line
            .strip_suffix('2')
            .expect("the line ends with cust_12");
        for (text, problem) in [
            (
                format!("{admin_line}\n{cut}"),
                "does not end with a newline",
            ),
            (String::new(), "is empty"),
            ("# rewriting\n".to_string(), "holds no token"),
        ] {
            file.write(&text);
            api.signal("HUP");
            eventually(problem, || api.stderr().contains(problem));
            assert_403(&api.get_with_token(CUSTOMER_1, &twelve), "cust_1", problem);
            assert_eq!(
                api.get_with_token(CUSTOMER_1, &admin).status,
                200,
                "{problem}"
            );
        }
        let log = api.stop();
        let warnings = log
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("may be half written"))
            .count();
        assert_eq!(warnings, 3, "{log}");
        assert_no_secret(
            &log,
            &[&twelve, &admin, &sha256_hex(&twelve), &sha256_hex(&admin)],
        );

        let open = Api::start(&db);
        open.signal("HUP");
        let started = Instant::now();
        while !open.stderr().contains("SIGHUP: no --tokens file") {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{}",
                open.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(open.get(CUSTOMER_1).status, 200, "{db:?}");
        open.stop();
    }
}

#[test]
fn a_malformed_or_missing_file_stops_the_start() {
    let (token, line) = new_token("cust_1");
    let hash = sha256_hex(&token);
    for db in backends() {
        for (text, expected) in [
            (
                format!("{line}\n\n{}\n", line.replace("sha256:", "SHA256:")),
                "line 3: expected `sha256:HEX CUSTOMERS`",
            ),
            (
                format!("# ok\n{} cust_1\n", line.to_uppercase()),
                "line 2: expected `sha256:HEX CUSTOMERS`",
            ),
            (
                format!("sha256:{} cust_1\n", hash.to_uppercase()),
                "line 1: the hash after `sha256:` is not 64 lowercase hex digits",
            ),
            (
                format!("{line}\n{token} *\n"),
                "line 2: expected `sha256:HEX CUSTOMERS`",
            ),
            (
                format!("sha256:{hash} cust_1, cust_2\n"),
                "line 1: more than two fields",
            ),
            (
                format!("sha256:{hash} cust_1,cust/2\n"),
                "line 1: customer 2 of the list is not a customer id",
            ),
            (
                format!("{line}\n{line}\n"),
                "line 2: the same token as line 1",
            ),
        ] {
            let file = TokensFile::new(&text);
            let (code, stderr) = run_to_exit(&db.url, &["--tokens", file.arg()], &[]);
            assert_eq!(code, Some(1), "{db:?}: {stderr}");
            let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
            assert_eq!(errors.len(), 1, "{stderr}");
            assert!(
                errors[0].contains(&format!("tokens file {}, {expected}", file.arg())),
                "{db:?}: {stderr}"
            );
            let upper = hash.to_uppercase();
            assert_no_secret(&stderr, &[&token, &hash, &upper]);
        }
        let missing = Path::new("/nonexistent/logstats-tokens");
        let (code, stderr) = run_to_exit(
            &db.url,
            &[],
            &[("LOGSTATS_TOKENS", missing.to_str().expect("UTF-8"))],
        );
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains("cannot read the tokens file /nonexistent/logstats-tokens"),
            "{stderr}"
        );
    }
}

#[test]
fn protect_ops_asks_any_valid_token_of_the_probes() {
    let (token, line) = new_token("cust_22");
    let file = TokensFile::new(&format!("{line}\n"));
    for db in backends() {
        seed(&db);
        let api = start(&db, &file, &["--protect-ops"]);
        for path in ["/health", "/ready", "/metrics"] {
            assert_401(&api.get(path), path);
            assert_401(&api.get_with_token(path, &"0".repeat(64)), path);
            assert_eq!(
                api.get_with_token(path, &token).status,
                200,
                "{db:?} {path}"
            );
        }
        for path in ["/", "/openapi.json", "/docs"] {
            assert_eq!(api.get(path).status, 200, "{db:?} {path}");
        }
        let log = api.stop();
        assert!(
            log.contains("/health, /ready and /metrics protected too"),
            "{log}"
        );
        assert_no_secret(&log, &[&token, &sha256_hex(&token)]);
    }
    let db = TestDatabase::sqlite();
    let (code, stderr) = run_to_exit(&db.url, &["--protect-ops"], &[]);
    assert_eq!(code, Some(2), "--protect-ops needs --tokens: {stderr}");
    assert!(stderr.contains("--tokens"), "{stderr}");
}

/// The operations of `document`, as (method, template, operation).
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (template, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            found.push((method.clone(), template.clone(), operation.clone()));
        }
    }
    found
}

#[test]
fn the_document_says_which_operations_need_a_token() {
    let (_, line) = new_token("*");
    let file = TokensFile::new(&format!("{line}\n"));
    let db = TestDatabase::sqlite();
    let customer_or_fleet = ["/customers/{customer_id}/stats", "/stats", "/customers"];
    let probes = ["/health", "/ready", "/metrics"];
    for protect_ops in [false, true] {
        let flags: &[&str] = if protect_ops { &["--protect-ops"] } else { &[] };
        let api = start(&db, &file, flags);
        let document = api.get("/openapi.json").json();
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["type"],
            "http"
        );
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let all = operations(&document);
        assert!(all.len() >= 11, "{all:?}");
        for (method, template, operation) in all {
            let protected = customer_or_fleet.contains(&template.as_str())
                || (protect_ops && probes.contains(&template.as_str()));
            let context = format!("{method} {template} (--protect-ops {protect_ops})");
            if !protected {
                assert!(operation.get("security").is_none(), "{context}");
                assert!(operation["responses"].get("401").is_none(), "{context}");
                continue;
            }
            assert_eq!(
                operation["security"],
                json!([{ "bearer": [] }]),
                "{context}"
            );
            let error_body = json!({ "$ref": "#/components/schemas/ErrorBody" });
            let unauthorized = &operation["responses"]["401"];
            assert_eq!(
                unauthorized["content"]["application/json"]["schema"], error_body,
                "{context}"
            );
            assert!(
                unauthorized["headers"]["WWW-Authenticate"].is_object(),
                "{context}"
            );
            let forbidden = &operation["responses"]["403"];
            if probes.contains(&template.as_str()) {
                assert!(forbidden.is_null(), "{context}: any valid token will do");
            } else {
                assert_eq!(
                    forbidden["content"]["application/json"]["schema"], error_body,
                    "{context}"
                );
            }
        }
    }
    // Without tokens the API is open, and its document says nothing about tokens.
    let api = Api::spawn(&db);
    let document = api.get("/openapi.json").json();
    assert!(document["components"].get("securitySchemes").is_none());
    for (method, template, operation) in operations(&document) {
        assert!(operation.get("security").is_none(), "{method} {template}");
    }
}

#[test]
fn new_token_refuses_what_is_not_a_list_of_customers() {
    for customers in ["", "cust_1 cust_2", "*,cust_1", "cust_1,,cust_2", "cust/1"] {
        let output = Binary::new(env!("CARGO_BIN_EXE_logstats-api"))
            .args(["new-token", "--customers", customers])
            .run(RUN_TIMEOUT);
        assert_eq!(output.status.code(), Some(2), "{customers:?}: {output:?}");
        assert!(output.stdout.is_empty(), "{customers:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--customers"), "{customers:?}: {stderr}");
    }
    let (first, _) = new_token("*");
    let (second, _) = new_token("*");
    assert_ne!(first, second);
    assert_eq!(first.len(), 64);
}
