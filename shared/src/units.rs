//! Sizes on the command line: a number of bytes, or a number and a unit (`64MiB`, `2G`,
//! `500MB`), for every option that takes bytes, in both binaries.

/// The units a size may carry, lower-cased, and their bytes. The binary ones (KiB, and K as
/// docker and systemd read it) are powers of 1024; the SI ones with a `B` (kB, MB) powers of
/// 1000.
const UNITS: [(&str, u64); 14] = [
    ("b", 1),
    ("k", 1 << 10),
    ("kib", 1 << 10),
    ("kb", 1_000),
    ("m", 1 << 20),
    ("mib", 1 << 20),
    ("mb", 1_000_000),
    ("g", 1 << 30),
    ("gib", 1 << 30),
    ("gb", 1_000_000_000),
    ("t", 1 << 40),
    ("tib", 1 << 40),
    ("tb", 1_000_000_000_000),
    ("", 1),
];

/// Parses a size: whole bytes (`67108864`), or a whole number and a unit, any case, a space
/// between them or none: `B`; `K`, `KiB`, `M`, `MiB`, `G`, `GiB`, `T`, `TiB` (powers of 1024);
/// `kB`, `MB`, `GB`, `TB` (powers of 1000). A fraction (`1.5GiB`), a sign, an unknown unit or a
/// size past 2^64 - 1 bytes is an error that says so.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let unit = unit.trim_start().to_ascii_lowercase();
    let expected = "expected bytes or a whole number with a unit, e.g. 67108864, 64MiB, 2G, 500MB";
    if number.is_empty() {
        return Err(format!("invalid size {text:?}: {expected}"));
    }
    let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!(
            "invalid size {text:?}: unknown unit {unit:?} ({expected}; K, M, G, T are powers of \
             1024, kB, MB, GB, TB of 1000)"
        ));
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// [`parse_bytes`] for an option held as a `usize`.
pub fn parse_bytes_usize(text: &str) -> Result<usize, String> {
    let bytes = parse_bytes(text)?;
    usize::try_from(bytes).map_err(|_| format!("size {text:?} is too large for this machine"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        for (text, bytes) in [
            ("0", 0),
            ("67108864", 64 << 20),
            ("64MiB", 64 << 20),
            ("64mib", 64 << 20),
            ("64M", 64 << 20),
            ("64 MiB", 64 << 20),
            (" 2G ", 2 << 30),
            ("2GiB", 2 << 30),
            ("500MB", 500_000_000),
            ("500mb", 500_000_000),
            ("1kB", 1_000),
            ("1KB", 1_000),
            ("1K", 1_024),
            ("1KiB", 1_024),
            ("3TB", 3_000_000_000_000),
            ("3T", 3 << 40),
            ("7B", 7),
            ("18446744073709551615", u64::MAX),
            ("16383TiB", 16_383 << 40),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        for (text, says) in [
            ("", "expected bytes"),
            ("MiB", "expected bytes"),
            ("-1", "expected bytes"),
            ("+1", "expected bytes"),
            ("1.5GiB", "unknown unit \".5gib\""),
            ("64XB", "unknown unit \"xb\""),
            ("64 M B", "unknown unit \"m b\""),
            ("18446744073709551616", "too large"),
            ("16777216TiB", "too large"),
            ("17179869184G", "too large"),
        ] {
            let error = parse_bytes(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
