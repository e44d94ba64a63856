//! The docs against the ingest job's binaries, and against themselves.
//!
//! - `logstats-ingest --help`, its subcommands' and `logstats-generate --help` are quoted in
//!   `docs/*.md` exactly as the binaries print them (`UPDATE_HELP_DOCS=1` rewrites the quotes;
//!   see `logstats_shared::testing::help`), and each flag they show is also described in prose
//!   or a table of `docs/`, not only quoted.
//! - Every `--flag` that `README.md` and `docs/*.md` write as a logstats flag exists: in a code
//!   span or a line of a fenced block that starts with a logstats program (after a prompt, a
//!   path, a `|`, `&&` or `;`), each `--flag` after the program is one of its command's, as
//!   the docs' `--help` blocks show them; in a code span that starts with `--`, each `--flag`
//!   is some program's (`--push-*`: at least one flag starting so). Other tools' flags follow
//!   their tool's name (`cargo test -- --nocapture`), which the check leaves alone. Hidden
//!   flags the docs name are listed in [`HIDDEN_FLAGS`], and the binary must take each.
//! - Every relative link of `README.md` and `docs/*.md` names an existing file, and its
//!   `#anchor` one of that file's headings as GitHub makes anchors (or an `<a id>`).
//!
//! (The API's help is checked by `api/tests/api/help.rs`; see `logstats_shared::testing::docs`.)

use std::path::{Path, PathBuf};

use logstats_shared::testing::docs::{
    assert_documented_flags_exist, assert_links_resolve, markdown_files,
};
use logstats_shared::testing::help::{
    assert_flags_described, assert_help_documented, assert_hidden_flag_accepted,
};

/// Flags the docs name that `--help` does not show: (program, flag).
const HIDDEN_FLAGS: [(&str, &str); 1] = [("logstats-ingest", "--epoch-bytes")];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `README.md` and `docs/*.md`.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    files.extend(markdown_files(&root().join("docs")));
    files
}

fn binaries() -> [(&'static str, &'static Path); 2] {
    [
        (
            "logstats-ingest",
            Path::new(env!("CARGO_BIN_EXE_logstats-ingest")),
        ),
        (
            "logstats-generate",
            Path::new(env!("CARGO_BIN_EXE_logstats-generate")),
        ),
    ]
}

// One test for both programs: with UPDATE_HELP_DOCS=1 it rewrites files, one at a time.
#[test]
fn the_docs_quote_the_ingest_jobs_and_the_generators_help_exactly() {
    for (program, binary) in binaries() {
        assert_help_documented(binary, program, &root().join("docs"));
    }
}

#[test]
fn every_flag_of_the_ingest_job_and_the_generator_is_described() {
    for (program, binary) in binaries() {
        assert_flags_described(binary, program, &root().join("docs"));
    }
}

#[test]
fn every_flag_the_docs_name_exists() {
    for (program, flag) in HIDDEN_FLAGS {
        let (_, binary) = binaries()
            .into_iter()
            .find(|(name, _)| *name == program)
            .expect("a binary of this package");
        assert_hidden_flag_accepted(binary, flag);
    }
    assert_documented_flags_exist(&documents(), &root().join("docs"), &HIDDEN_FLAGS);
}

#[test]
fn every_link_in_the_docs_resolves() {
    assert_links_resolve(&documents());
}
