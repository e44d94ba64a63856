//! API tokens for the tests: made by the binary's `new-token`, hashed as a tokens file holds
//! them, written to a tokens file of its own (`tokens.rs`, `dashboard_tokens.rs`,
//! `schemathesis.rs`).

use std::path::PathBuf;

use logstats_shared::testing::spawn::{Binary, RUN_TIMEOUT};
use sha2::{Digest, Sha256};

/// A token made by `logstats-api new-token --customers customers`: (token, file line).
pub fn new_token(customers: &str) -> (String, String) {
    let output = Binary::new(env!("CARGO_BIN_EXE_logstats-api"))
        .args(["new-token", "--customers", customers])
        .env_remove("LOGSTATS_TOKENS")
        .run(RUN_TIMEOUT);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let token = lines[0].strip_prefix("token: ").expect("`token: ` first");
    (token.to_string(), lines[1].to_string())
}

/// Lowercase hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A tokens file in a temporary directory.
pub struct TokensFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TokensFile {
    pub fn new(text: &str) -> TokensFile {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("tokens");
        std::fs::write(&path, text).expect("write the tokens file");
        TokensFile { _dir: dir, path }
    }

    pub fn write(&self, text: &str) {
        std::fs::write(&self.path, text).expect("rewrite the tokens file");
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().expect("a UTF-8 path")
    }
}
