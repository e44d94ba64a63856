//! The `--help` texts quoted in the docs against the binaries' own: docs/OPERATIONS.md holds
//! each command's `--help` verbatim, in a fenced block whose first line is
//! `$ PROGRAM [SUBCOMMAND] --help`. [`assert_help_documented`] runs each such command and
//! compares, and requires a block for the program and each of its subcommands, so every flag a
//! binary has is documented and every flag documented exists.
//!
//! `UPDATE_HELP_DOCS=1` rewrites the blocks that differ from the binary's output instead of
//! failing (a missing block still fails: add its first line, then run again).

use std::path::Path;
use std::process::Command;

/// One quoted `--help` in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpBlock {
    /// The arguments after the program's name (`["prune", "--help"]`).
    pub args: Vec<String>,
    /// The output quoted (the lines between the command and the closing fence).
    pub text: String,
    /// The byte range of `text` in the document (for rewriting it).
    pub range: std::ops::Range<usize>,
}

/// The blocks of `doc` that quote `$ program ... --help`.
pub fn help_blocks(doc: &str, program: &str) -> Vec<HelpBlock> {
    let prefix = format!("```\n$ {program} ");
    let mut blocks = Vec::new();
    let mut from = 0;
    while let Some(found) = doc[from..].find(&prefix) {
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
        if args.first().map(String::as_str) != Some(program)
            || args.last().map(String::as_str) != Some("--help")
        {
            continue;
        }
        args.remove(0);
        blocks.push(HelpBlock {
            args,
            text: doc[text_start..text_start + text_len].to_string(),
            range: text_start..text_start + text_len,
        });
    }
    blocks
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

/// `--help` words of a help text: every `--flag` it names (for messages).
pub fn flags(help: &str) -> std::collections::BTreeSet<String> {
    help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| word.len() > 2 && word.starts_with("--"))
        .map(str::to_string)
        .collect()
}

/// Asserts that `doc_path` quotes `program --help` and `program SUBCOMMAND --help` for each of
/// its subcommands, each exactly as `binary` prints it (see the module's documentation).
pub fn assert_help_documented(binary: &Path, program: &str, doc_path: &Path) {
    let update = std::env::var_os("UPDATE_HELP_DOCS").is_some_and(|v| v == "1");
    let mut doc = std::fs::read_to_string(doc_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", doc_path.display()));
    let blocks = help_blocks(&doc, program);
    let top = help_of(binary, &["--help".to_string()]);
    let mut wanted = vec![vec!["--help".to_string()]];
    for subcommand in subcommands(&top) {
        wanted.push(vec![subcommand, "--help".to_string()]);
    }
    let mut problems = Vec::new();
    for args in &wanted {
        if !blocks.iter().any(|block| &block.args == args) {
            problems.push(format!(
                "{} has no block for `$ {program} {}`: add\n```\n$ {program} {}\n{}```",
                doc_path.display(),
                args.join(" "),
                args.join(" "),
                help_of(binary, args)
            ));
        }
    }
    // Last block first, so the ranges of the others stay right while rewriting.
    for block in blocks.iter().rev() {
        let actual = help_of(binary, &block.args);
        if actual == block.text {
            continue;
        }
        if update {
            doc.replace_range(block.range.clone(), &actual);
            continue;
        }
        let (documented, printed) = (flags(&block.text), flags(&actual));
        problems.push(format!(
            "`$ {program} {}` in {} is not the binary's output (UPDATE_HELP_DOCS=1 rewrites \
             it); flags only documented: {:?}; only in the binary: {:?}; the binary prints:\n{actual}",
            block.args.join(" "),
            doc_path.display(),
            documented.difference(&printed).collect::<Vec<_>>(),
            printed.difference(&documented).collect::<Vec<_>>(),
        ));
    }
    if update {
        std::fs::write(doc_path, &doc)
            .unwrap_or_else(|e| panic!("write {}: {e}", doc_path.display()));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_subcommands_are_found() {
        let doc = "text\n```\n$ tool --help\nUsage: tool\n\nCommands:\n  prune  Remove\n  \
                   help   Print\n```\n\n```\n$ tool prune --help\nA\n```\n```\n$ tool run x\n```\n";
        let blocks = help_blocks(doc, "tool");
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        assert_eq!(blocks[0].args, ["--help"]);
        assert_eq!(
            blocks[0].text,
            "Usage: tool\n\nCommands:\n  prune  Remove\n  help   Print\n"
        );
        assert_eq!(&doc[blocks[1].range.clone()], "A\n");
        assert_eq!(blocks[1].args, ["prune", "--help"]);
        assert_eq!(subcommands(&blocks[0].text), ["prune"]);
        assert_eq!(
            flags("  --a-b <X>  with --c, -d and --"),
            ["--a-b", "--c"].map(String::from).into()
        );
    }
}
