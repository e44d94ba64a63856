//! No password in anything the real `logstats-api` binary prints: its `serving` line, its
//! errors, its `--help`, in every URL form.

use std::time::Duration;

use logstats_shared::testing::spawn::{free_port, Binary, RUN_TIMEOUT};
use logstats_shared::testing::TestDatabase;

const API: &str = env!("CARGO_BIN_EXE_logstats-api");
const SECRET: &str = "S3cr3tPW";

/// Starts the API on `url`, waits until it is healthy, stops it with SIGTERM and returns what
/// it printed.
fn serve_and_stop(url: &str) -> String {
    let port = free_port();
    let health = format!("http://127.0.0.1:{port}/health");
    let api = Binary::new(API)
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            url,
        ])
        .args(["--workers", "1"])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .start_ready(Duration::from_secs(30), |_| {
            ureq::get(&health).call().is_ok()
        });
    api.signal("TERM");
    let output = api.finish(RUN_TIMEOUT);
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_serving_line_shows_no_password() {
    // PostgreSQL trusts local connections, so any password is accepted and the API serves.
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let (user, rest) = db
        .url
        .strip_prefix("postgres://")
        .and_then(|r| r.split_once('@'))
        .expect("a postgres://USER@... test URL");
    for url in [
        format!("postgres://{user}:{SECRET}@{rest}"),
        format!("postgres://{user}@{rest}?password={SECRET}"),
        format!("postgres://{user}@{rest}?sslmode=disable&password={SECRET}"),
    ] {
        let shown = serve_and_stop(&url);
        assert!(shown.contains("serving postgres://"), "{shown}");
        assert!(!shown.contains(SECRET), "{SECRET} shown in {shown}");
    }
}

#[test]
fn errors_and_help_show_no_password() {
    for url in [
        format!("postgres://u:{SECRET}@127.0.0.1:1/db"),
        format!("postgres://u@127.0.0.1:1/db?password={SECRET}"),
        "postgres://u:S3cr@3tPW@127.0.0.1:1/db".to_string(),
        format!("host=127.0.0.1 port=1 password={SECRET}"),
    ] {
        let output = Binary::new(API)
            .args(["--database-url", &url, "--bind", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .run(RUN_TIMEOUT);
        assert!(!output.status.success(), "{url}");
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(shown.contains("error: "), "{url}: {shown}");
        for piece in [SECRET, "3tPW", "S3cr"] {
            assert!(!shown.contains(piece), "{url}: {piece} shown in {shown}");
        }
    }
    let help = Binary::new(API)
        .arg("--help")
        .env("DATABASE_URL", format!("postgres://u:{SECRET}@h/db"))
        .run(RUN_TIMEOUT);
    assert!(help.status.success());
    let shown = String::from_utf8_lossy(&help.stdout);
    assert!(shown.contains("DATABASE_URL"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
}
