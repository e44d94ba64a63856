//! The real `logstats-api` binary fuzzed against its own OpenAPI document by Schemathesis
//! (PyPI, pinned in `.ci/run`), on a SQLite database with known rows: every check it has
//! (no 5xx, statuses, content types, headers and bodies as documented, schema-valid requests
//! accepted, schema-invalid ones refused, 405 for other methods), plus `errors_are_json` from
//! `tests/schemathesis/hooks.py`. Skipped without Schemathesis, except under `CI=true`. Once open
//! (no `--tokens`, a document without security), once with tokens and `--protect-ops`, sending a
//! `*` token (`ignored_auth` then checks that every protected operation refuses a request
//! without it, or with a wrong one).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::tokens::{sha256_hex, TokensFile};
use crate::support::{seed, tool_available, Api, SEEDED_CUSTOMERS, SEEDED_DAYS};
use logstats_shared::testing::spawn::Binary;
use logstats_shared::testing::TestDatabase;

/// Test cases per operation and phase, and the seed: the run takes well under a minute on a
/// debug build.
const MAX_EXAMPLES: &str = "60";
const SEED: &str = "20241010";
/// The run is stopped (and fails) past this.
const TIME_LIMIT: Duration = Duration::from_secs(150);

/// Schemathesis's configuration: the hooks, and the seeded customers and days offered to the
/// generator half of the time, so that many requests reach stored rows (200s, not only 404s).
fn config(hooks: &Path) -> String {
    let list = |values: &[&str]| {
        values
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "hooks = \"{hooks}\"\n\
         \n\
         [dictionaries.customers]\n\
         values = [{customers}]\n\
         \n\
         [dictionaries.days]\n\
         values = [{days}]\n\
         \n\
         [parameters]\n\
         \"path.customer_id\" = {{ dictionary = \"customers\", probability = 0.5 }}\n\
         \"query.from\" = {{ dictionary = \"days\", probability = 0.5 }}\n\
         \"query.to\" = {{ dictionary = \"days\", probability = 0.5 }}\n",
        hooks = hooks.display(),
        customers = list(&SEEDED_CUSTOMERS),
        days = list(&SEEDED_DAYS),
    )
}

fn schemathesis_installed() -> bool {
    tool_available(
        "schemathesis",
        &["--version"],
        "pip install schemathesis==4.32.5",
    )
}

#[test]
fn schemathesis_finds_nothing_against_the_document() {
    if !schemathesis_installed() {
        return;
    }
    let db = TestDatabase::sqlite();
    seed(&db);
    let api = Api::start(&db);
    run_schemathesis(api, &[]);
}

#[test]
fn schemathesis_finds_nothing_against_the_protected_document() {
    if !schemathesis_installed() {
        return;
    }
    let db = TestDatabase::sqlite();
    seed(&db);
    let token = "schemathesis-0123456789abcdef0123456789abcdef0123456789abcdef";
    let tokens = TokensFile::new(&format!("sha256:{} *\n", sha256_hex(token)));
    let api = Api::start_with(&db, &["--tokens", tokens.arg(), "--protect-ops"], &[]);
    run_schemathesis(
        api,
        &["--header", &format!("Authorization: Bearer {token}")],
    );
}

/// Runs Schemathesis against `api`'s document with `extra` arguments, and stops `api`.
fn run_schemathesis(api: Api, extra: &[&str]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/hooks.py");
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config(&hooks)).expect("write the configuration");

    let mut run = Binary::new("schemathesis")
        .arg("--config-file")
        .arg(&config_file)
        .args(["run", &format!("{}/openapi.json", api.address)])
        .args([
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
        ])
        .args([
            "--generation-database",
            "none",
            "--no-color",
            "--workers",
            "2",
        ])
        .args(extra)
        .arg("--report-dir")
        .arg(dir.path().join("report"))
        .current_dir(dir.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .start();
    let started = Instant::now();
    let Some(status) = run.wait_for(TIME_LIMIT) else {
        run.kill();
        panic!(
            "schemathesis still running after {TIME_LIMIT:?}:\n{}\n{}",
            run.stdout(),
            run.stderr()
        );
    };
    let output = run.stdout();
    let summary = output.find("SUMMARY").map_or("", |at| &output[at..]);
    eprintln!("schemathesis ran {:?}:\n{summary}", started.elapsed());
    assert!(
        status.success(),
        "schemathesis failed ({status}):\n{output}\n{}",
        run.stderr()
    );
    // It reached the API's logic: the seeded rows were found, and the run was not empty.
    assert!(!output.contains("Missing test data"), "{output}");
    assert!(output.contains("passed"), "{output}");

    let log = api.stop();
    assert!(!log.contains("ERROR"), "{log}");
    // Stats were served (with tokens: the token was sent), not only refusals.
    let served = |route: &str| {
        log.lines()
            .any(|line| line.contains(&format!("GET {route}")) && line.contains(" 200 "))
    };
    assert!(served("/customers/") && served("/stats "), "{log}");
}
