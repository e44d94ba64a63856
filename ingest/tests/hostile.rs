//! The real `logstats-ingest` binary against a hostile user's inputs (issue 10): leaked
//! passwords, non-regular files, its own rejects file as input, links out of a directory, one
//! file under several names, garbage input. Database rows run on SQLite and PostgreSQL.

mod common;

use std::process::{Command, Output};

use common::INGEST;

const SECRET: &str = "S3cr3tPW";

fn run_with_url(url: &str, args: &[&str]) -> Output {
    Command::new(INGEST)
        .args(["--database-url", url])
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .output()
        .expect("run logstats-ingest")
}

/// Every output of the binary, for looking for a secret.
fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn no_password_is_printed_in_any_url_form() {
    let dir = common::temp_dir();
    let log = dir.path().join("a.log");
    common::generate(&log, 10, 1);
    let log = log.to_str().expect("utf8").to_string();
    // Port 1 refuses connections: every run fails and prints its error.
    let urls = [
        format!("postgres://u:{SECRET}@127.0.0.1:1/db"),
        format!("postgres://u@127.0.0.1:1/db?password={SECRET}"),
        format!("postgres://u@127.0.0.1:1/db?sslmode=disable&password={SECRET}&x=1"),
        "postgres://u:S3cr@3tPW@127.0.0.1:1/db".to_string(),
        format!("host=127.0.0.1 port=1 password={SECRET}"),
        format!("host=127.0.0.1 port=1 password='{SECRET} x'"),
    ];
    let runs: Vec<_> = urls
        .iter()
        .map(|url| {
            let (url, log) = (url.clone(), log.clone());
            std::thread::spawn(move || (url.clone(), run_with_url(&url, &[&log])))
        })
        .collect();
    for run in runs {
        let (url, output) = run.join().expect("run thread");
        assert!(!output.status.success(), "{url}");
        let shown = all_output(&output);
        assert!(shown.contains("error: "), "{url}: {shown}");
        for piece in [SECRET, "3tPW", "S3cr"] {
            assert!(!shown.contains(piece), "{url}: {piece} shown in {shown}");
        }
    }

    let help = Command::new(INGEST)
        .arg("--help")
        .env("DATABASE_URL", format!("postgres://u:{SECRET}@h/db"))
        .output()
        .expect("run --help");
    assert!(help.status.success());
    let shown = all_output(&help);
    assert!(shown.contains("DATABASE_URL"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
}
