//! `logstats-api --help` and its subcommands' are quoted in `docs/*.md` exactly as the binary
//! prints them (`UPDATE_HELP_DOCS=1` rewrites the quotes; see `logstats_shared::testing::help`),
//! and each flag they show is also described in prose or a table of `docs/`, not only quoted.
//! The flags and links of the docs as a whole are checked by `ingest/tests/ingest/help.rs`.

use std::path::{Path, PathBuf};

use logstats_shared::testing::help::{assert_flags_described, assert_help_documented};

const API: &str = env!("CARGO_BIN_EXE_logstats-api");

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

#[test]
fn the_docs_quote_the_apis_help_exactly() {
    assert_help_documented(Path::new(API), "logstats-api", &docs());
}

#[test]
fn every_flag_of_the_api_is_described() {
    assert_flags_described(Path::new(API), "logstats-api", &docs());
}
