//! Which files are inputs: the files named on the command line and the files of its
//! directories whose names match `--include` (`*.log` unless told otherwise). Each is a regular
//! file, listed once however it is named, never the rejects file, and never a link out of the
//! directory it was found in.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::source::{file_id, file_kind, io_error, FileId, SourceError};

/// The command line's paths, expanded afresh at every look (follow mode finds new files).
#[derive(Debug)]
pub(crate) struct Inputs {
    paths: Vec<PathBuf>,
    rejects: Option<PathBuf>,
    /// A directory's files are inputs when their names match one of these.
    include: Vec<NamePattern>,
    /// Paths already warned about, so that follow mode's polls do not repeat themselves.
    warned: HashSet<PathBuf>,
}

impl Inputs {
    /// The inputs named by `paths`; `rejects`, the rejects file, is never one of them.
    pub fn new(paths: Vec<PathBuf>, rejects: Option<PathBuf>) -> Self {
        Self {
            paths,
            rejects,
            include: vec![NamePattern::default()],
            warned: HashSet::new(),
        }
    }

    /// These inputs, reading the files of directories whose names match one of `include`
    /// (none: the default, `*.log`).
    pub fn including(self, include: Vec<NamePattern>) -> Self {
        if include.is_empty() {
            return self;
        }
        Self { include, ..self }
    }

    /// Every input file, in order: a missing or unreadable path, or a named file that is not
    /// a regular file, is an error.
    pub fn expand(&mut self) -> Result<Vec<PathBuf>, SourceError> {
        let mut found = Found::default();
        for path in self.paths.clone() {
            self.expand_one(&path, &mut found)?;
        }
        Ok(found.files)
    }

    /// The input files that exist now: follow mode tolerates files that come and go.
    pub fn expand_present(&mut self) -> Vec<PathBuf> {
        let mut found = Found::default();
        for path in self.paths.clone() {
            let _ = self.expand_one(&path, &mut found);
        }
        found.files
    }

    fn warn_once(&mut self, path: &Path, message: std::fmt::Arguments<'_>) {
        if self.warned.insert(path.to_path_buf()) {
            log::warn!("{}: {message}; skipped", path.display());
        }
    }

    /// Adds a file to `found`, once however many names it is found under.
    fn add(&mut self, found: &mut Found, path: PathBuf, id: FileId) {
        if let Some(first) = found.add(path.clone(), id) {
            if first != path && self.warned.insert(path.clone()) {
                log::info!(
                    "{}: the same file as {}; read once",
                    path.display(),
                    first.display()
                );
            }
        }
    }

    fn rejects_id(&self) -> Option<FileId> {
        let rejects = self.rejects.as_ref()?;
        std::fs::metadata(rejects).ok().map(|m| file_id(&m))
    }

    fn expand_one(&mut self, path: &Path, found: &mut Found) -> Result<(), SourceError> {
        let meta = std::fs::metadata(path).map_err(io_error(path))?;
        let rejects = self.rejects_id();
        if !meta.is_dir() {
            if !meta.is_file() {
                return Err(SourceError::NotRegular {
                    path: path.display().to_string(),
                    kind: file_kind(meta.file_type()),
                });
            }
            if Some(file_id(&meta)) == rejects {
                self.warn_once(path, format_args!("is the rejects file, never an input"));
            } else {
                self.add(found, path.to_path_buf(), file_id(&meta));
            }
            return Ok(());
        }
        let dir = std::fs::canonicalize(path).map_err(io_error(path))?;
        let mut logs: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io_error(path))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|name| self.include.iter().any(|i| i.matches(name.as_bytes())))
            })
            .collect();
        logs.sort();
        for log in logs {
            let Ok(link) = std::fs::symlink_metadata(&log) else {
                continue; // gone since the listing
            };
            if link.file_type().is_symlink() {
                match std::fs::canonicalize(&log) {
                    Ok(target) if target.starts_with(&dir) => {}
                    Ok(target) => {
                        let message = format_args!(
                            "a link out of {} (to {}), which a directory argument does not follow",
                            dir.display(),
                            target.display()
                        );
                        self.warn_once(&log, message);
                        continue;
                    }
                    Err(_) => continue, // a dangling link
                }
            }
            let Ok(meta) = std::fs::metadata(&log) else {
                continue;
            };
            if !meta.is_file() {
                let kind = file_kind(meta.file_type());
                self.warn_once(&log, format_args!("not a regular file ({kind})"));
            } else if Some(file_id(&meta)) == rejects {
                self.warn_once(&log, format_args!("is the rejects file, never an input"));
            } else {
                self.add(found, log, file_id(&meta));
            }
        }
        Ok(())
    }
}

/// Files found so far, each once.
#[derive(Default)]
struct Found {
    files: Vec<PathBuf>,
    ids: HashMap<FileId, PathBuf>,
}

impl Found {
    /// Adds `path`, unless the same file was found under another name: then that name.
    fn add(&mut self, path: PathBuf, id: FileId) -> Option<PathBuf> {
        match self.ids.entry(id) {
            Entry::Occupied(first) => Some(first.get().clone()),
            Entry::Vacant(slot) => {
                slot.insert(path.clone());
                self.files.push(path);
                None
            }
        }
    }
}

/// A shell pattern for file names, as `--include` takes it: `*` matches any bytes, `?` one
/// byte, `[abc]`, `[a-z]` and `[!abc]` one byte of (or not of) a set; anything else itself.
/// A leading `.` is not special: `*` matches hidden files too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(String);

impl Default for NamePattern {
    fn default() -> Self {
        Self("*.log".to_string())
    }
}

impl std::str::FromStr for NamePattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.contains('/') {
            return Err(format!(
                "{text:?} is not a file name pattern (non-empty, without /)"
            ));
        }
        Ok(Self(text.to_string()))
    }
}

impl std::fmt::Display for NamePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl NamePattern {
    /// Whether `name` (one file name, not a path) matches.
    pub fn matches(&self, name: &[u8]) -> bool {
        glob_matches(self.0.as_bytes(), name)
    }
}

/// Iterative wildcard matching with one backtrack point (the last `*`): linear in practice,
/// never exponential.
fn glob_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match_class(&pattern[p..], name[n]),
            Some(&c) => (c == name[n]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                p += len;
                n += 1;
            }
            (None, Some((after_star, matched_to))) => {
                p = after_star;
                n = matched_to + 1;
                star = Some((after_star, matched_to + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether `byte` is in the class `[...]` that `class` starts with: the class's length when it
/// is, `None` when it is not. A `[` without its `]` is a plain `[`.
fn match_class(class: &[u8], byte: u8) -> Option<usize> {
    let Some(close) = class.iter().skip(2).position(|&c| c == b']').map(|i| i + 2) else {
        return (byte == b'[').then_some(1);
    };
    let (negated, set) = match class[1] {
        b'!' | b'^' => (true, &class[2..close]),
        _ => (false, &class[1..close]),
    };
    let mut found = false;
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == b'-' {
            found |= (set[i]..=set[i + 2]).contains(&byte);
            i += 3;
        } else {
            found |= set[i] == byte;
            i += 1;
        }
    }
    (found != negated).then_some(close + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        pattern
            .parse::<NamePattern>()
            .expect("a pattern")
            .matches(name.as_bytes())
    }

    #[test]
    fn name_patterns_match_as_the_shell_does() {
        assert!(matches("*.log", "api.log"));
        assert!(matches("*.log", ".log"));
        assert!(!matches("*.log", "api.log.1"));
        assert!(!matches("*.log", "api.jsonl"));
        assert!(matches("*.jsonl", "caddy.jsonl"));
        assert!(matches("access-*.json*", "access-2024.jsonl"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("api.log.[0-9]", "api.log.7"));
        assert!(!matches("api.log.[0-9]", "api.log.x"));
        assert!(matches("[!.]*", "api.log"));
        assert!(!matches("[!.]*", ".hidden"));
        assert!(matches("*a*b*c", "xxaxxbxxbxc"));
        assert!(!matches("*a*b*c", "xxaxxbxxbx"));
        assert!(matches("[ab", "[ab"));
        assert!(matches("*", "anything"));
        assert!("".parse::<NamePattern>().is_err());
        assert!("logs/*.log".parse::<NamePattern>().is_err());
    }
}
