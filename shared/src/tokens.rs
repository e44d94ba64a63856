//! Tokens (`--tokens PATH`): the tokens file, the check of a presented token, new tokens,
//! and the re-read of the file on SIGHUP. Which routes of the API ask for a token is its `auth`
//! module's; the ingest job's `--listen` asks for one on every push.
//!
//! The file holds one token a line, as `sha256:HEX CUSTOMERS`: HEX is the SHA-256 of the token
//! in lowercase hex (the token itself is never stored), CUSTOMERS is `*` (every customer and the
//! fleet views) or a comma-separated list of customer ids. `#` starts a comment; blank lines are
//! ignored. A presented token is hashed with SHA-256 and looked up by that hash (one map probe,
//! whatever the number of tokens; what a lookup's timing could reveal is about the hash of the
//! token sent, not about any stored token). Errors name the line, never its contents: a hash is
//! never printed or logged.
//!
//! A reload (SIGHUP) replaces the tokens in force only with a file that looks whole: it ends
//! with a newline, holds at least one token, and reads the same twice in a row; otherwise the
//! tokens in force stay and a WARN says why. Replace the file by writing a temporary file beside
//! it and renaming it over the old one (one atomic step), then send SIGHUP.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::record::is_valid_customer_id;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};

/// What precedes the hash on a line of the tokens file.
pub const HASH_PREFIX: &str = "sha256:";

/// Random bytes in a new token (printed as 64 hex digits).
pub const TOKEN_BYTES: usize = 32;

/// The customers a token may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every customer and the fleet views (`*`).
    All,
    /// These customers only (sorted, without duplicates); not the fleet views.
    Customers(Box<[Box<str>]>),
}

/// Why a list of customers was refused. No message repeats the list: it names positions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Nothing where the customers should be.
    #[error("no customers: expected `*` or a comma-separated list of customer ids")]
    Empty,
    /// An entry of the list is not a customer id.
    #[error(
        "customer {position} of the list is not a customer id (1-64 of A-Z a-z 0-9 . _ -, not . \
         or .., separated by commas without spaces)"
    )]
    InvalidCustomer {
        /// 1 for the first.
        position: usize,
    },
    /// `*` together with customer ids.
    #[error("`*` must stand alone: it already covers every customer")]
    StarInList,
}

impl Scope {
    /// Parses `*` or `cust_1,cust_2` (the same rule as the API's customer ids).
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        if text.is_empty() {
            return Err(ScopeError::Empty);
        }
        if text == "*" {
            return Ok(Scope::All);
        }
        let mut customers = Vec::new();
        for (index, customer) in text.split(',').enumerate() {
            if customer == "*" {
                return Err(ScopeError::StarInList);
            }
            if !is_valid_customer_id(customer.as_bytes()) {
                return Err(ScopeError::InvalidCustomer {
                    position: index + 1,
                });
            }
            customers.push(Box::<str>::from(customer));
        }
        customers.sort_unstable();
        customers.dedup();
        Ok(Scope::Customers(customers.into_boxed_slice()))
    }

    /// Whether the token may read `customer`'s stats.
    pub fn covers(&self, customer: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Customers(customers) => customers
                .binary_search_by(|listed| (**listed).cmp(customer))
                .is_ok(),
        }
    }

    /// Whether the token may read every customer, and so the fleet views.
    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }
}

impl fmt::Display for Scope {
    /// As the tokens file writes it: `*` or `cust_1,cust_2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("*"),
            Scope::Customers(customers) => {
                for (i, customer) in customers.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(customer)?;
                }
                Ok(())
            }
        }
    }
}

/// For clap: `--customers` of `logstats-api new-token`.
pub fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::parse(text).map_err(|error| error.to_string())
}

/// What is wrong with one line of the tokens file. No message quotes the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line is not UTF-8.
    #[error("not UTF-8 text")]
    NotText,
    /// The first field does not start with `sha256:`.
    #[error(
        "expected `sha256:HEX CUSTOMERS`, HEX being the token's SHA-256 in lowercase hex (the \
         file holds hashes, never tokens: `logstats-api new-token` prints both)"
    )]
    NoHashPrefix,
    /// The hash is not 64 lowercase hex digits.
    #[error("the hash after `sha256:` is not 64 lowercase hex digits")]
    BadHash,
    /// Nothing after the hash.
    #[error("no customers after the hash: expected `*` or a comma-separated list of customer ids")]
    NoCustomers,
    /// The customers are not `*` or a list of customer ids.
    #[error("{0}")]
    Scope(#[from] ScopeError),
    /// More than two fields.
    #[error(
        "more than two fields: expected `sha256:HEX CUSTOMERS` (customers are separated by \
         commas without spaces)"
    )]
    TrailingText,
    /// The same hash as an earlier line.
    #[error("the same token as line {0}")]
    Duplicate(usize),
}

/// Why the tokens file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read the tokens file {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// What the system said.
        cause: std::io::Error,
    },
    /// A line is malformed.
    #[error("tokens file {path}, line {line}: {problem}")]
    Line {
        /// The file.
        path: String,
        /// 1 for the first line.
        line: usize,
        /// What is wrong with it.
        problem: LineError,
    },
    /// A reload found a file that does not look whole (see [`Tokens::reload`]).
    #[error(
        "tokens file {path} {problem}: it may be half written (write a temporary file beside it \
         and rename it over the old one, then send SIGHUP)"
    )]
    NotWhole {
        /// The file.
        path: String,
        /// What looks wrong.
        problem: &'static str,
    },
}

/// One line of the tokens file.
#[derive(Debug, Clone)]
struct Entry {
    scope: Scope,
    /// Where it was read, to name duplicates.
    line: usize,
}

/// The tokens of one reading of the file, by the SHA-256 of each token.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    entries: HashMap<[u8; 32], Entry>,
}

impl TokenSet {
    /// Parses the contents of a tokens file; errors give the line number (1-based). Linear in
    /// the file's size.
    pub fn parse(text: &[u8]) -> Result<TokenSet, (usize, LineError)> {
        let mut entries: HashMap<[u8; 32], Entry> = HashMap::new();
        for (index, line) in text.split(|&b| b == b'\n').enumerate() {
            let number = index + 1;
            let line = std::str::from_utf8(line).map_err(|_| (number, LineError::NotText))?;
            let Some((hash, scope)) = parse_line(line).map_err(|problem| (number, problem))? else {
                continue;
            };
            match entries.entry(hash) {
                std::collections::hash_map::Entry::Occupied(earlier) => {
                    return Err((number, LineError::Duplicate(earlier.get().line)));
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(Entry {
                        scope,
                        line: number,
                    });
                }
            }
        }
        Ok(TokenSet { entries })
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<TokenSet, TokenFileError> {
        TokenSet::parse_file(path, &read_file(path)?)
    }

    fn parse_file(path: &Path, text: &[u8]) -> Result<TokenSet, TokenFileError> {
        TokenSet::parse(text).map_err(|(line, problem)| TokenFileError::Line {
            path: path.display().to_string(),
            line,
            problem,
        })
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file holds no token at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The scope of `token`, if the file holds its hash: the token is hashed, and the hash looked
    /// up (O(1), whatever the number of tokens).
    pub fn scope_of(&self, token: &str) -> Option<&Scope> {
        self.entries
            .get(&sha256(token.as_bytes()))
            .map(|entry| &entry.scope)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TokenFileError> {
    std::fs::read(path).map_err(|cause| TokenFileError::Read {
        path: path.display().to_string(),
        cause,
    })
}

/// A non-blank line's hash and scope; `None` for a blank or comment line.
fn parse_line(line: &str) -> Result<Option<([u8; 32], Scope)>, LineError> {
    let content = line.split('#').next().unwrap_or_default();
    let mut fields = content.split_ascii_whitespace();
    let Some(first) = fields.next() else {
        return Ok(None);
    };
    let hex = first
        .strip_prefix(HASH_PREFIX)
        .ok_or(LineError::NoHashPrefix)?;
    let hash = decode_hash(hex).ok_or(LineError::BadHash)?;
    let customers = fields.next().ok_or(LineError::NoCustomers)?;
    if fields.next().is_some() {
        return Err(LineError::TrailingText);
    }
    Ok(Some((hash, Scope::parse(customers)?)))
}

/// 64 lowercase hex digits as 32 bytes.
fn decode_hash(hex: &str) -> Option<[u8; 32]> {
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let value = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (value(pair[0])? << 4) | value(pair[1])?;
    }
    Some(hash)
}

/// `bytes` in lowercase hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// How long a reload waits before reading the file a second time, to see it is not being written.
pub const RELOAD_SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// The tokens in force, re-read from their file on SIGHUP; shared by every worker.
#[derive(Debug)]
pub struct Tokens {
    path: PathBuf,
    current: RwLock<Arc<TokenSet>>,
}

impl Tokens {
    /// Reads the file at `path`.
    pub fn load(path: &Path) -> Result<Tokens, TokenFileError> {
        Ok(Tokens {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(TokenSet::read(path)?)),
        })
    }

    /// The tokens of the last good reading.
    pub fn current(&self) -> Arc<TokenSet> {
        Arc::clone(&self.current.read())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again: when it looks whole its tokens replace the ones in force (and
    /// their count is returned); otherwise the ones in force stay. Whole means: every line
    /// valid, a newline at the end (a file cut mid-line, `... cust_1` of `cust_12`, fails
    /// this), at least one token (a file truncated to be rewritten fails this), and the same
    /// bytes when read again after [`RELOAD_SETTLE`] (a file being written fails this).
    pub fn reload(&self) -> Result<usize, TokenFileError> {
        let text = read_file(&self.path)?;
        let not_whole = |problem| TokenFileError::NotWhole {
            path: self.path.display().to_string(),
            problem,
        };
        if !text.ends_with(b"\n") {
            return Err(not_whole(if text.is_empty() {
                "is empty"
            } else {
                "does not end with a newline"
            }));
        }
        let fresh = TokenSet::parse_file(&self.path, &text)?;
        if fresh.is_empty() {
            return Err(not_whole("holds no token"));
        }
        std::thread::sleep(RELOAD_SETTLE);
        if read_file(&self.path)? != text {
            return Err(not_whole("changed while it was read"));
        }
        let count = fresh.len();
        *self.current.write() = Arc::new(fresh);
        Ok(count)
    }

    /// Starts a thread that re-reads the file on every SIGHUP (logging the outcome: INFO with
    /// the count, or WARN with the error and the tokens kept). Replaces SIGHUP's default action
    /// (ending the process).
    pub fn reload_on_sighup(self: &Arc<Self>) -> std::io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        let tokens = Arc::clone(self);
        std::thread::Builder::new()
            .name("tokens-reload".into())
            .spawn(move || {
                for _ in signals.forever() {
                    match tokens.reload() {
                        Ok(count) => log::info!(
                            "SIGHUP: read {count} token(s) from {}",
                            tokens.path.display()
                        ),
                        Err(error) => log::warn!(
                            "SIGHUP: {error}; the {} token(s) read before stay in force",
                            tokens.current().len()
                        ),
                    }
                }
            })?;
        Ok(())
    }
}

/// A token just made, and its line for the tokens file.
#[derive(Debug)]
pub struct NewToken {
    /// What a client sends: `Authorization: Bearer TOKEN` (64 hex digits).
    pub token: String,
    /// `sha256:HEX CUSTOMERS`.
    pub line: String,
}

/// A new token of [`TOKEN_BYTES`] random bytes from the operating system, covering `scope`.
pub fn new_token(scope: &Scope) -> Result<NewToken, getrandom::Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)?;
    let token = hex(&bytes);
    let line = format!("{HASH_PREFIX}{} {scope}", hex(&sha256(token.as_bytes())));
    Ok(NewToken { token, line })
}

/// `logstats-api new-token`: prints `token: TOKEN`, then the file's line, on stdout.
pub fn print_new_token(scope: &Scope, out: &mut impl Write) -> std::io::Result<()> {
    let new = new_token(scope).map_err(|e| {
        std::io::Error::other(format!(
            "cannot read random bytes from the operating system: {e}"
        ))
    })?;
    writeln!(out, "token: {}", new.token)?;
    writeln!(out, "{}", new.line)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests;
