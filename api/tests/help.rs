//! `logstats-api --help` and its subcommands' are quoted in docs/OPERATIONS.md exactly as the
//! binary prints them: every flag is documented, and every flag documented exists
//! (`UPDATE_HELP_DOCS=1` rewrites the quotes; see `logstats_shared::testing::help`).

use std::path::Path;

use logstats_shared::testing::help::assert_help_documented;

#[test]
fn operations_md_quotes_the_apis_help_exactly() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/OPERATIONS.md");
    assert_help_documented(
        Path::new(env!("CARGO_BIN_EXE_logstats-api")),
        "logstats-api",
        &doc,
    );
}
