//! Keeps database passwords out of everything printed: URLs in every form libpq accepts
//! (`user:PW@`, an unencoded `@` in the password, `?password=PW`), keyword strings
//! (`host=h password=PW`), and error text that may echo parts of them.

use std::borrow::Cow;

/// What a password is replaced with.
const MASK: &str = "***";

/// `conninfo` (a URL or a `key=value` string) with every password replaced by `***`.
///
/// When the userinfo of a URL is ambiguous (an unencoded `@` in the password, or an `@` in the
/// query), everything up to the last `@` is treated as credentials: the host may be hidden,
/// the password never shown.
pub fn redact(conninfo: &str) -> String {
    match conninfo.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", redact_uri_rest(rest)),
        None => redact_keywords(conninfo),
    }
}

/// `text` with every password found in `conninfo` replaced by `***`: for error messages of
/// libraries that echo a part of the URL they were given (a host parsed out of the tail of a
/// password with an unencoded `@`, say).
pub fn scrub<'a>(text: &'a str, conninfo: &str) -> Cow<'a, str> {
    let mut secrets = secrets(conninfo);
    // Longest first, so a secret's pieces never leave part of it behind.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// Every password in `conninfo`, as written and percent-decoded, with its `@`-separated pieces.
fn secrets(conninfo: &str) -> Vec<String> {
    let mut found = Vec::new();
    match conninfo.split_once("://") {
        Some((_, rest)) => {
            let (head, query) = rest.split_once('?').unwrap_or((rest, ""));
            for (key, value) in query.split('&').filter_map(|p| p.split_once('=')) {
                if is_password_key(key) {
                    found.push(value.to_string());
                }
            }
            if let Some((userinfo, _)) = rest.rsplit_once('@') {
                if let Some((_, password)) = userinfo.split_once(':') {
                    found.push(password.to_string());
                }
            }
            // A password with a `?` in it ends up in `head`'s userinfo.
            if let Some((userinfo, _)) = head.rsplit_once('@') {
                if let Some((_, password)) = userinfo.split_once(':') {
                    found.push(password.to_string());
                }
            }
        }
        None => {
            for (key, value) in keyword_pairs(conninfo) {
                if is_password_key(&key) {
                    found.push(value);
                }
            }
        }
    }
    let mut all = Vec::new();
    for secret in found {
        let decoded = percent_decode(&secret);
        for candidate in [secret, decoded] {
            all.extend(
                candidate
                    .split('@')
                    .filter(|piece| !piece.is_empty())
                    .map(str::to_string),
            );
            all.push(candidate);
        }
    }
    all.sort();
    all.dedup();
    all
}

/// A password-bearing key: `password`, `sslpassword`, percent-encoded or in any case.
fn is_password_key(key: &str) -> bool {
    percent_decode(key.trim())
        .to_ascii_lowercase()
        .contains("password")
}

/// The part of a URL after `scheme://`, with its passwords masked.
fn redact_uri_rest(rest: &str) -> String {
    let masked = match rest.split_once('?') {
        Some((head, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if is_password_key(key) => format!("{key}={MASK}"),
                    _ => param.to_string(),
                })
                .collect();
            format!("{head}?{}", params.join("&"))
        }
        None => rest.to_string(),
    };
    match masked.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => masked,
        },
        None => masked,
    }
}

/// A libpq keyword string (`host=h password='p w'`) with password values masked.
fn redact_keywords(conninfo: &str) -> String {
    let mut out = String::with_capacity(conninfo.len());
    let mut rest = conninfo;
    while !rest.is_empty() {
        let (spaces, after) = split_while(rest, char::is_whitespace);
        out.push_str(spaces);
        let (key, after) = split_while(after, |c| c != '=' && !c.is_whitespace());
        out.push_str(key);
        let (spaces, after) = split_while(after, char::is_whitespace);
        out.push_str(spaces);
        let Some(after) = after.strip_prefix('=') else {
            rest = after;
            continue;
        };
        out.push('=');
        let (spaces, after) = split_while(after, char::is_whitespace);
        out.push_str(spaces);
        let (value, after) = split_value(after);
        if is_password_key(key) {
            out.push_str(MASK);
        } else {
            out.push_str(value);
        }
        rest = after;
    }
    out
}

/// The `(key, value)` pairs of a libpq keyword string, values unquoted.
fn keyword_pairs(conninfo: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = conninfo;
    while !rest.is_empty() {
        let (_, after) = split_while(rest, char::is_whitespace);
        let (key, after) = split_while(after, |c| c != '=' && !c.is_whitespace());
        let (_, after) = split_while(after, char::is_whitespace);
        let Some(after) = after.strip_prefix('=') else {
            rest = after;
            continue;
        };
        let (_, after) = split_while(after, char::is_whitespace);
        let (value, after) = split_value(after);
        let unquoted = value
            .strip_prefix('\'')
            .map(|v| v.strip_suffix('\'').unwrap_or(v))
            .unwrap_or(value)
            .replace("\\'", "'")
            .replace("\\\\", "\\");
        pairs.push((key.to_string(), unquoted));
        rest = after;
    }
    pairs
}

/// Splits at the first char not matching `keep`.
fn split_while(text: &str, keep: impl Fn(char) -> bool) -> (&str, &str) {
    let end = text.find(|c: char| !keep(c)).unwrap_or(text.len());
    text.split_at(end)
}

/// Splits a keyword value (quoted with `'` and backslash escapes, or up to whitespace) from
/// what follows it.
fn split_value(text: &str) -> (&str, &str) {
    let quoted = text.starts_with('\'');
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if quoted && c == '\'' && i > 0 {
            return text.split_at(i + 1);
        } else if !quoted && c.is_whitespace() {
            return text.split_at(i);
        }
    }
    (text, "")
}

/// `%XX` sequences decoded (lossily); anything else kept as is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "S3cr3tPW";

    fn assert_hidden(shown: &str, secret: &str) {
        assert!(!shown.contains(secret), "{secret:?} shown in {shown:?}");
    }

    #[test]
    fn masks_the_password_of_a_url() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("sqlite://data/logstats.db"),
            "sqlite://data/logstats.db"
        );
        assert_eq!(redact("sqlite:data/x.db"), "sqlite:data/x.db");
    }

    #[test]
    fn masks_query_passwords_in_any_spelling() {
        for url in [
            "postgres://u@h/db?password=S3cr3tPW",
            "postgres://u@h/db?sslmode=disable&password=S3cr3tPW&connect_timeout=5",
            "postgresql://h/db?PASSWORD=S3cr3tPW",
            "postgres://h/db?pass%77ord=S3cr3tPW",
            "postgres://h/db?sslpassword=S3cr3tPW",
            "postgres://h/db?password=S3c@r3tPW",
        ] {
            let shown = redact(url);
            assert_hidden(&shown, "S3c");
            assert!(shown.contains("***"), "{shown}");
        }
        assert_eq!(
            redact("postgres://u@h/db?sslmode=disable&password=x"),
            "postgres://u@h/db?sslmode=disable&password=***"
        );
    }

    #[test]
    fn masks_passwords_with_unencoded_separators() {
        for (url, secret) in [
            ("postgres://u:S3cr@3tPW@h:5432/db", "3tPW"),
            ("postgres://u:S3cr@3t@PW@h/db", "PW@h"),
            ("postgres://u:S3c?r3tPW@h/db", "r3tPW"),
            ("postgres://u:S3c/r3tPW@h/db", "r3tPW"),
            ("postgres://u:pw@h/db?application_name=a@b", "pw"),
        ] {
            let shown = redact(url);
            assert_hidden(&shown, secret);
            assert!(shown.starts_with("postgres://u:***@"), "{shown}");
        }
    }

    #[test]
    fn masks_keyword_strings() {
        assert_eq!(
            redact("host=localhost password=S3cr3tPW dbname=x"),
            "host=localhost password=*** dbname=x"
        );
        assert_eq!(
            redact("host=h password = 'S3c r3t\\' PW' user=u"),
            "host=h password = *** user=u"
        );
        assert_hidden(&redact("password=S3cr3tPW"), PW);
    }

    #[test]
    fn scrubs_echoed_pieces_of_a_password() {
        let url = "postgres://u:S3cr@3tPW.example@h/db";
        let echoed = r#"could not translate host name "3tPW.example@h" to address"#;
        let scrubbed = scrub(echoed, url);
        assert_hidden(&scrubbed, "3tPW");
        assert_eq!(
            scrubbed,
            r#"could not translate host name "***@h" to address"#
        );
        let url = "postgres://u@h/db?password=S3cr%33tPW";
        assert_hidden(&scrub("bad S3cr3tPW and S3cr%33tPW", url), "S3cr");
        assert_hidden(
            &scrub(
                "invalid: host=h password='S3cr3tPW'",
                "host=h password='S3cr3tPW'",
            ),
            PW,
        );
        assert_eq!(scrub("nothing here", "postgres://u@h/db"), "nothing here");
    }
}
