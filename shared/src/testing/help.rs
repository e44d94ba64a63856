//! The `--help` texts quoted in the docs against the binaries' own: the Markdown files of
//! `docs/` hold each command's `--help` verbatim, in a fenced block whose first line is
//! `$ PROGRAM [SUBCOMMAND] --help`, in whichever file describes the command.
//! [`assert_help_documented`] runs each such command and compares, and requires a block for
//! the program and each of its subcommands somewhere in `docs/`, so every flag a binary has is
//! quoted and every flag quoted exists. [`assert_flags_described`] also requires every flag to
//! be named outside the blocks, in prose or a table (see [`super::docs`]).
//!
//! `UPDATE_HELP_DOCS=1` rewrites the blocks that differ from the binary's output instead of
//! failing, in the file each is in (a missing block still fails: add its first line, then run
//! again). The two tests that compare the blocks are run alone, for both binaries' docs, by
//! `UPDATE_HELP_DOCS=1 cargo test --workspace --features 'logstats-shared/testing
//! logstats-shared/openapi' --test ingest --test api -- help_exactly` (the modules
//! `tests/ingest/help.rs` and `tests/api/help.rs` of each crate's one test binary).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use super::docs;

/// One quoted `--help` in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpBlock {
    /// The program (`logstats-ingest`).
    pub program: String,
    /// The arguments after the program's name (`["prune", "--help"]`).
    pub args: Vec<String>,
    /// The output quoted (the lines between the command and the closing fence).
    pub text: String,
    /// The byte range of `text` in the document (for rewriting it).
    pub range: std::ops::Range<usize>,
}

impl HelpBlock {
    /// The subcommand the block quotes (`Some("prune")`), or `None` for the program's own.
    pub fn subcommand(&self) -> Option<&str> {
        match self.args.as_slice() {
            [subcommand, _] => Some(subcommand.as_str()),
            _ => None,
        }
    }
}

/// Every block of `doc` that quotes `$ PROGRAM ... --help`, whatever the program.
pub fn all_help_blocks(doc: &str) -> Vec<HelpBlock> {
    let prefix = "```\n$ ";
    let mut blocks = Vec::new();
    let mut from = 0;
    while let Some(found) = doc[from..].find(prefix) {
        let command_start = from + found + 4;
        let Some(command_len) = doc[command_start..].find('\n') else {
            break;
        };
        let command = &doc[command_start + 2..command_start + command_len];
        let text_start = command_start + command_len + 1;
        let Some(text_len) = doc[text_start..].find("```") else {
            break;
        };
        from = text_start + text_len + 3;
        let mut args: Vec<String> = command.split_whitespace().map(str::to_string).collect();
        if args.len() < 2 || args.last().map(String::as_str) != Some("--help") {
            continue;
        }
        let program = args.remove(0);
        blocks.push(HelpBlock {
            program,
            args,
            text: doc[text_start..text_start + text_len].to_string(),
            range: text_start..text_start + text_len,
        });
    }
    blocks
}

/// The blocks of `doc` that quote `$ program ... --help`.
pub fn help_blocks(doc: &str, program: &str) -> Vec<HelpBlock> {
    all_help_blocks(doc)
        .into_iter()
        .filter(|block| block.program == program)
        .collect()
}

/// The subcommands under `Commands:` in a help text, but `help`.
pub fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// What `binary args` prints on stdout, run with only `PATH` in its environment (so no
/// variable's value shows in `[env: ...]`); it must exit 0.
pub fn help_of(binary: &Path, args: &[String]) -> String {
    let output = Command::new(binary)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", binary.display()));
    assert!(
        output.status.success(),
        "{} {args:?}: {}",
        binary.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// Every command of `binary` and what its `--help` prints: `(["--help"], ...)` first, then
/// `(["SUBCOMMAND", "--help"], ...)` for each subcommand.
pub fn commands_of(binary: &Path) -> Vec<(Vec<String>, String)> {
    let top_args = vec!["--help".to_string()];
    let top = help_of(binary, &top_args);
    let mut commands = Vec::new();
    for subcommand in subcommands(&top) {
        let args = vec![subcommand, "--help".to_string()];
        let help = help_of(binary, &args);
        commands.push((args, help));
    }
    commands.insert(0, (top_args, top));
    commands
}

/// `--help` words of a help text: every `--flag` it names (for messages).
pub fn flags(help: &str) -> BTreeSet<String> {
    help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| word.len() > 2 && word.starts_with("--"))
        .map(str::to_string)
        .collect()
}

/// The flags a help text defines: the `-x` and `--long` that start its option lines (indented
/// at most 6 columns, as clap writes them; a description, indented further, may name other
/// flags, which do not count).
pub fn option_flags(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help.lines() {
        let text = line.trim_start();
        if line.len() - text.len() > 6 || !text.starts_with('-') {
            continue;
        }
        for word in text.split_whitespace() {
            let word = word.trim_end_matches(',');
            let is_short = word.len() == 2 && word.as_bytes()[1].is_ascii_alphanumeric();
            let is_long = word.len() > 2
                && word.starts_with("--")
                && word[2..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !word.starts_with('-') || !(is_short || is_long) {
                break;
            }
            out.insert(word.to_string());
        }
    }
    out
}

/// Asserts that the Markdown files of `docs_dir` quote `program --help` and
/// `program SUBCOMMAND --help` for each of its subcommands, each exactly as `binary` prints it
/// (see the module's documentation). With `UPDATE_HELP_DOCS=1`, rewrites the blocks that
/// differ instead.
pub fn assert_help_documented(binary: &Path, program: &str, docs_dir: &Path) {
    let update = std::env::var_os("UPDATE_HELP_DOCS").is_some_and(|v| v == "1");
    let files = docs::markdown_files(docs_dir);
    let quoted: Vec<HelpBlock> = files
        .iter()
        .flat_map(|file| help_blocks(&read(file), program))
        .collect();
    let mut problems = Vec::new();
    for (args, help) in commands_of(binary) {
        if !quoted.iter().any(|block| block.args == args) {
            problems.push(format!(
                "no file of {} has a block for `$ {program} {}`: add\n```\n$ {program} {}\n{help}```\n\
                 where the command is described",
                docs_dir.display(),
                args.join(" "),
                args.join(" "),
            ));
        }
    }
    for file in &files {
        let mut doc = read(file);
        let mut changed = false;
        // Last block first, so the ranges of the others stay right while rewriting.
        for block in help_blocks(&doc, program).iter().rev() {
            let actual = help_of(binary, &block.args);
            if actual == block.text {
                continue;
            }
            if update {
                doc.replace_range(block.range.clone(), &actual);
                changed = true;
                continue;
            }
            let (documented, printed) = (flags(&block.text), flags(&actual));
            problems.push(format!(
                "`$ {program} {}` in {} is not the binary's output (UPDATE_HELP_DOCS=1 rewrites \
                 it); flags only documented: {:?}; only in the binary: {:?}; the binary prints:\n{actual}",
                block.args.join(" "),
                file.display(),
                documented.difference(&printed).collect::<Vec<_>>(),
                printed.difference(&documented).collect::<Vec<_>>(),
            ));
        }
        if changed {
            std::fs::write(file, &doc).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Asserts that every flag each command of `binary` defines (long and short, as its `--help`
/// lists them) is named in prose or a table of a Markdown file of `docs_dir`: outside fenced
/// blocks, so a help block alone does not count (see [`docs::prose`]).
pub fn assert_flags_described(binary: &Path, program: &str, docs_dir: &Path) {
    let prose: String = docs::markdown_files(docs_dir)
        .iter()
        .map(|file| docs::prose(&read(file)))
        .collect::<Vec<_>>()
        .join("\n");
    let mut missing = Vec::new();
    for (args, help) in commands_of(binary) {
        for flag in option_flags(&help) {
            if !docs::names_flag(&prose, &flag) {
                missing.push(format!("`{flag}` of `{program} {}`", args.join(" ")));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "these flags are only in their --help blocks: describe each in prose or a table of {} \
         (a `--flag` in a code span will do):\n{}",
        docs_dir.display(),
        missing.join("\n")
    );
}

/// Asserts that `binary` takes `flag` although its `--help` does not show it (a hidden flag):
/// `binary FLAG= --version` fails on the flag's value, or prints the version, rather than
/// naming `FLAG` an unexpected argument. Nothing else runs.
pub fn assert_hidden_flag_accepted(binary: &Path, flag: &str) {
    let output = Command::new(binary)
        .args([format!("{flag}="), "--version".to_string()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains(&format!("unexpected argument '{flag}'")),
        "{} does not take {flag}: {stderr}",
        binary.display()
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_subcommands_are_found() {
        let doc = "text\n```\n$ tool --help\nUsage: tool\n\nCommands:\n  prune  Remove\n  \
                   help   Print\n```\n\n```\n$ tool prune --help\nA\n```\n```\n$ tool run x\n```\n\
                   ```\n$ other --help\nB\n```\n";
        let blocks = help_blocks(doc, "tool");
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        assert_eq!(blocks[0].args, ["--help"]);
        assert_eq!(blocks[0].subcommand(), None);
        assert_eq!(
            blocks[0].text,
            "Usage: tool\n\nCommands:\n  prune  Remove\n  help   Print\n"
        );
        assert_eq!(&doc[blocks[1].range.clone()], "A\n");
        assert_eq!(blocks[1].args, ["prune", "--help"]);
        assert_eq!(blocks[1].subcommand(), Some("prune"));
        assert_eq!(subcommands(&blocks[0].text), ["prune"]);
        let all: Vec<String> = all_help_blocks(doc)
            .into_iter()
            .map(|b| b.program)
            .collect();
        assert_eq!(all, ["tool", "tool", "other"]);
        assert_eq!(
            flags("  --a-b <X>  with --c, -d and --"),
            ["--a-b", "--c"].map(String::from).into()
        );
    }

    #[test]
    fn option_flags_are_the_option_lines_only() {
        let help = "Usage: tool [OPTIONS]\n\nOptions:\n      --database-url <URL>\n          \
                    Database URL (see --other) [default: x]\n  -o, --output <PATH>  The file; \
                    --append to add\n  -h, --help\n          Print help\n";
        assert_eq!(
            option_flags(help),
            ["--database-url", "-o", "--output", "-h", "--help"]
                .map(String::from)
                .into()
        );
    }
}
