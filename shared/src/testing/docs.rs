//! The Markdown docs checked against themselves and the binaries: their flags and their links.
//!
//! - [`assert_documented_flags_exist`]: every `--flag` the docs write as a flag of a logstats
//!   program is one. The flags of each command are those of its `--help` block in `docs/`
//!   (which [`super::help::assert_help_documented`] holds to the binary's output). Checked:
//!   a code span, or a line of a fenced block, that starts with a program that has help blocks
//!   (`logstats-ingest prune --before DATE`; also after a prompt `$ ` or `host$ `, as a path
//!   `target/release/logstats-ingest`, or after a `|`, `&&` or `;`): each `--flag` after the
//!   program must be its command's (the subcommand's once one is named); and a code span that
//!   starts with `--` (`--retain DAYS`): each `--flag` in it must be some program's, `--push-*`
//!   standing for at least one flag that starts so. Other tools' flags are written after their
//!   tool's name (`cargo test -- --nocapture`, `curl --data-binary`), which is left alone, as
//!   is prose outside code spans. A hidden flag (not in `--help`) the docs name must be listed
//!   by the caller, who checks the binary takes it
//!   ([`super::help::assert_hidden_flag_accepted`]).
//! - [`assert_links_resolve`]: every relative link `[text](target)` outside code names an
//!   existing file (relative to the linking file), and its `#anchor`, on a link to a Markdown
//!   file (or alone, for the linking file), is one of that file's: a heading's, made the way
//!   GitHub makes them ([`slug`]), or an `<a id="...">`.
//!
//! Markdown is read as these docs write it: code in fenced blocks (```` ``` ````), not indented
//! blocks, which would be read as prose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::help::{all_help_blocks, option_flags};

/// The Markdown files (`*.md`) of `dir`, sorted by name.
pub fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    files.sort();
    files
}

/// Whether `line` opens or closes a fenced block.
fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// `doc` with every line of a fenced block, fences included, made empty (so line numbers stay).
pub fn prose(doc: &str) -> String {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in doc.lines() {
        if is_fence(line) {
            fenced = !fenced;
            out.push("");
        } else if fenced {
            out.push("");
        } else {
            out.push(line);
        }
    }
    out.join("\n")
}

/// The lines inside fenced blocks, with their 1-based numbers; a line ending with `\` is joined
/// with the next (and numbered as the first).
pub fn fenced_lines(doc: &str) -> Vec<(usize, String)> {
    let mut fenced = false;
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, line) in doc.lines().enumerate() {
        if is_fence(line) {
            fenced = !fenced;
            out.extend(pending.take());
            continue;
        }
        if !fenced {
            continue;
        }
        let (number, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        match line.trim_end().strip_suffix('\\') {
            Some(start) => {
                joined.push_str(start);
                joined.push(' ');
                pending = Some((number, joined));
            }
            None => {
                joined.push_str(line);
                out.push((number, joined));
            }
        }
    }
    out
}

/// Where the code spans of `prose` are: for each, the byte range of its text and of the whole
/// span, backticks included. A span is delimited by two runs of as many backticks, within a
/// paragraph; a run without its match is literal text.
fn span_ranges(prose: &str) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let bytes = prose.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let open = i;
        while i < bytes.len() && bytes[i] == b'`' {
            i += 1;
        }
        let ticks = i - open;
        let mut j = i;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let run = j;
                while j < bytes.len() && bytes[j] == b'`' {
                    j += 1;
                }
                if j - run == ticks {
                    spans.push((i..run, open..j));
                    i = j;
                    break;
                }
            } else if bytes[j..].starts_with(b"\n\n") {
                break;
            } else {
                j += 1;
            }
        }
    }
    spans
}

/// The code spans of `prose`, with the 1-based line each starts on; their text with line
/// breaks as spaces, trimmed, and `\|` (a `|` escaped in a table) as `|`.
pub fn code_spans(prose: &str) -> Vec<(usize, String)> {
    span_ranges(prose)
        .into_iter()
        .map(|(text, whole)| {
            let line = prose[..whole.start].matches('\n').count() + 1;
            let text = prose[text].split_whitespace().collect::<Vec<_>>().join(" ");
            (line, text.replace("\\|", "|"))
        })
        .collect()
}

/// Whether `text` names `flag` (`--retain`, `-o`) as a whole word: not as part of a longer
/// flag or word.
pub fn names_flag(text: &str, flag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(flag).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + flag.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// The `--flag`s a command line's word holds: `--format` of `--format=json`, `--push-*` kept
/// as a family; `None` for a word that is no flag (`--` alone, `-x`, text).
fn flag_of(word: &str) -> Option<String> {
    let rest = word.strip_prefix("--")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let family = rest[name.len()..].starts_with('*');
    Some(format!("--{name}{}", if family { "*" } else { "" }))
}

/// Whether `flag` (or, for `--push-*`, a flag starting with `--push-`) is among `known`.
fn is_known(flag: &str, known: &BTreeSet<String>) -> bool {
    match flag.strip_suffix('*') {
        Some(prefix) => known.iter().any(|k| k.starts_with(prefix)),
        None => known.contains(flag),
    }
}

/// The logstats commands the docs quote the help of: program, then subcommand (`""` for the
/// program's own), then the flags its help defines.
pub type Commands = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The commands of every help block in the Markdown files of `docs_dir`.
pub fn documented_commands(docs_dir: &Path) -> Commands {
    let mut commands = Commands::new();
    for file in markdown_files(docs_dir) {
        for block in all_help_blocks(&read(&file)) {
            commands
                .entry(block.program.clone())
                .or_default()
                .entry(block.subcommand().unwrap_or_default().to_string())
                .or_default()
                .extend(option_flags(&block.text));
        }
    }
    commands
}

/// The flags of one command line of `commands`' programs that its command does not take, with
/// the command (`logstats-ingest prune`); nothing for a line of another tool.
fn unknown_flags_of_command(
    line: &str,
    commands: &Commands,
    hidden: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut unknown = Vec::new();
    for segment in line.split(['|', ';']).flat_map(|s| s.split("&&")) {
        let mut words = segment.split_whitespace().peekable();
        // A shell prompt: `$`, `host-a$`.
        if words.peek().is_some_and(|w| w.ends_with('$')) {
            words.next();
        }
        let Some(first) = words.next() else {
            continue;
        };
        let program = first.rsplit('/').next().unwrap_or(first);
        let Some(subcommands) = commands.get(program) else {
            continue;
        };
        let mut subcommand = String::new();
        for word in words {
            if word.starts_with('#') {
                break;
            }
            if subcommand.is_empty() && !word.starts_with('-') && subcommands.contains_key(word) {
                subcommand = word.to_string();
                continue;
            }
            let Some(flag) = flag_of(word) else {
                continue;
            };
            let mut known = subcommands.get(&subcommand).cloned().unwrap_or_default();
            known.extend(
                hidden
                    .iter()
                    .filter(|(p, _)| *p == program)
                    .map(|(_, f)| f.to_string()),
            );
            if !is_known(&flag, &known) {
                let command = format!("{program} {subcommand}").trim_end().to_string();
                unknown.push((flag, command));
            }
        }
    }
    unknown
}

/// Asserts that every `--flag` the Markdown `files` write as a logstats flag exists (see the
/// module's documentation for what counts): the flags are those of the help blocks of
/// `docs_dir`, plus the `hidden` (program, flag) pairs.
pub fn assert_documented_flags_exist(files: &[PathBuf], docs_dir: &Path, hidden: &[(&str, &str)]) {
    let commands = documented_commands(docs_dir);
    assert!(
        !commands.is_empty(),
        "no `$ PROGRAM --help` block in {}",
        docs_dir.display()
    );
    let mut every_flag: BTreeSet<String> = commands
        .values()
        .flat_map(|subcommands| subcommands.values().flatten().cloned())
        .collect();
    every_flag.extend(hidden.iter().map(|(_, flag)| flag.to_string()));
    let mut problems = Vec::new();
    for file in files {
        let doc = read(file);
        let mut lines: Vec<(usize, String, bool)> = fenced_lines(&doc)
            .into_iter()
            .map(|(n, line)| (n, line, false))
            .collect();
        lines.extend(
            code_spans(&prose(&doc))
                .into_iter()
                .map(|(n, span)| (n, span, true)),
        );
        for (number, text, is_span) in lines {
            let at = format!("{}:{number}", file.display());
            if is_span && text.starts_with("--") {
                for flag in text.split_whitespace().filter_map(flag_of) {
                    if !is_known(&flag, &every_flag) {
                        problems.push(format!(
                            "{at}: `{flag}` (in `{text}`) is a flag of no logstats program"
                        ));
                    }
                }
                continue;
            }
            for (flag, command) in unknown_flags_of_command(&text, &commands, hidden) {
                problems.push(format!(
                    "{at}: `{command}` has no flag `{flag}` (in `{}`)",
                    text.trim()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "flags the docs name that the programs' --help blocks do not have (a hidden flag is \
         listed by the test; another tool's flag goes after the tool's name):\n{}",
        problems.join("\n")
    );
}

/// GitHub's anchor for a heading's text: lower case; letters, digits, `-` and `_` kept, spaces
/// made `-`, everything else (punctuation, backticks) dropped; a link's text stands for the
/// link.
pub fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading.trim();
    // `[text](target)` → `text`.
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find("](").and_then(|close| {
            let target = &after[close + 2..];
            target.find(')').map(|end| (close, close + 2 + end + 1))
        }) {
            Some((close, skip)) => {
                text.push_str(&rest[..open]);
                text.push_str(&after[..close]);
                rest = &after[skip..];
            }
            None => {
                text.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown document: its headings' (outside fenced blocks; a repeated one
/// gets `-1`, `-2`, ...) and its `<a id="...">` and `<a name="...">`.
pub fn anchors(doc: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in prose(doc).lines() {
        let hashes = line.bytes().take_while(|b| *b == b'#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let text = line[hashes..].trim().trim_end_matches('#').trim_end();
            let base = slug(text);
            let count = seen.entry(base.clone()).or_insert(0);
            anchors.insert(match *count {
                0 => base.clone(),
                n => format!("{base}-{n}"),
            });
            *count += 1;
        }
        for attribute in ["<a id=\"", "<a name=\""] {
            for (at, _) in line.match_indices(attribute) {
                let value = &line[at + attribute.len()..];
                if let Some(end) = value.find('"') {
                    anchors.insert(value[..end].to_string());
                }
            }
        }
    }
    anchors
}

/// The targets of the inline links and images of `doc` outside code (fenced blocks and code
/// spans), with the 1-based line of each.
pub fn links(doc: &str) -> Vec<(usize, String)> {
    // Code spans blanked (newlines kept), so `[a](b)` inside one is no link.
    let mut text = prose(doc);
    for (_, whole) in span_ranges(&text.clone()).into_iter().rev() {
        let blank: String = text[whole.clone()]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        text.replace_range(whole, &blank);
    }
    text.match_indices("](")
        .map(|(at, _)| {
            let target: String = text[at + 2..]
                .chars()
                .take_while(|c| *c != ')' && !c.is_whitespace())
                .collect();
            (text[..at].matches('\n').count() + 1, target)
        })
        .collect()
}

/// Asserts that every relative link of the Markdown `files` resolves (see the module's
/// documentation); links with a scheme (`https:`, `mailto:`) are not followed.
pub fn assert_links_resolve(files: &[PathBuf]) {
    let mut problems = Vec::new();
    for file in files {
        let doc = read(file);
        for (number, target) in links(&doc) {
            let at = format!("{}:{number}", file.display());
            let scheme = target
                .split_once(':')
                .is_some_and(|(s, _)| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()));
            if scheme || target.is_empty() {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let linked = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap_or(Path::new(".")).join(path)
            };
            if !linked.exists() {
                problems.push(format!(
                    "{at}: `{target}`: {} does not exist",
                    linked.display()
                ));
                continue;
            }
            let Some(anchor) = anchor else {
                continue;
            };
            if linked.extension().is_some_and(|ext| ext == "md") {
                let known = anchors(&read(&linked));
                if !known.contains(anchor) {
                    problems.push(format!(
                        "{at}: `{target}`: no heading of {} makes the anchor `{anchor}` (its \
                         anchors: {})",
                        linked.display(),
                        known.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "links that lead nowhere:\n{}",
        problems.join("\n")
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_make_githubs_anchors() {
        assert_eq!(
            slug("Retention: `prune` and `--retain`"),
            "retention-prune-and---retain"
        );
        assert_eq!(
            slug("`GET /customers/{customer_id}/stats?from=YYYY-MM-DD[&to=YYYY-MM-DD][&percentiles=90,95,99.9]`"),
            "get-customerscustomer_idstatsfromyyyy-mm-ddtoyyyy-mm-ddpercentiles9095999"
        );
        assert_eq!(
            slug("Latency percentiles: exact histograms, a t-digest past 4,096 distinct values"),
            "latency-percentiles-exact-histograms-a-t-digest-past-4096-distinct-values"
        );
        assert_eq!(slug("See [the guide](x.md#y) now"), "see-the-guide-now");
        let doc = "# Title\n## Same\n```\n# not a heading\n```\n## Same\n- <a id=\"here\"></a>x\n";
        assert_eq!(
            anchors(doc),
            ["title", "same", "same-1", "here"].map(String::from).into()
        );
    }

    #[test]
    fn code_is_told_from_prose() {
        let doc = "a `one` and ``two `x` ``\nand `three\nlines` but `not\n\nthis`\n```sh\n\
                   logstats-ingest \\\n  --follow\n```\n";
        let spans: Vec<String> = code_spans(&prose(doc))
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(spans, ["one", "two `x`", "three lines"]);
        assert_eq!(
            fenced_lines(doc),
            [(7, "logstats-ingest    --follow".to_string())]
        );
        assert!(names_flag("use `--retain DAYS`", "--retain"));
        assert!(!names_flag("use --retain-days", "--retain"));
        assert!(names_flag("(`-o`; default", "-o"));
        assert!(!names_flag("a-o", "-o"));
    }

    #[test]
    fn flags_are_checked_against_their_command() {
        let mut commands = Commands::new();
        let ingest = commands.entry("logstats-ingest".into()).or_default();
        ingest.insert(
            "".into(),
            ["--follow", "--push-max-body"].map(String::from).into(),
        );
        ingest.insert("prune".into(), ["--before"].map(String::from).into());
        let check = |line: &str| {
            unknown_flags_of_command(line, &commands, &[("logstats-ingest", "--epoch-bytes")])
        };
        assert!(check("logstats-ingest --follow /logs").is_empty());
        assert!(check("$ logstats-ingest prune --before 2024-01-01").is_empty());
        assert!(check("target/release/logstats-ingest --epoch-bytes 10").is_empty());
        assert!(check("tail -F x | logstats-ingest --follow -").is_empty());
        assert!(check("curl --data-binary @x http://h # logstats-ingest --nope").is_empty());
        assert!(check("logstats-ingest --follow # not --checked").is_empty());
        assert_eq!(
            check("host-a$ logstats-ingest prune --follow"),
            [("--follow".to_string(), "logstats-ingest prune".to_string())]
        );
        assert_eq!(
            check("a && logstats-ingest --nope=1"),
            [("--nope".to_string(), "logstats-ingest".to_string())]
        );
        let all: BTreeSet<String> = ["--push-max-body"].map(String::from).into();
        assert!(is_known("--push-*", &all));
        assert!(!is_known("--json-*", &all));
        assert_eq!(flag_of("--format=json"), Some("--format".into()));
        assert_eq!(flag_of("--"), None);
    }

    #[test]
    fn links_outside_code_are_found() {
        let doc = "See [a](A.md#x) and `[b](B.md)`\n```\n[c](C.md)\n```\n![i](i.png \"t\")\n";
        assert_eq!(
            links(doc),
            [(1, "A.md#x".to_string()), (5, "i.png".to_string())]
        );
    }
}
