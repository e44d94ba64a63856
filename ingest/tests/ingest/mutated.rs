//! Random and mutated bytes through the real `logstats-ingest` binary, on SQLite and
//! PostgreSQL: NUL, CR, BOM, invalid UTF-8, huge numbers, long lines and broken shapes never
//! stop a run, and the totals equal an independent count made here from the rules in
//! docs/LOG-FORMAT.md, with many epochs and two workers so that lines cross share boundaries.

use crate::support::{ingest_ok, temp_dir};
use logstats_shared::testing::backends;

/// A seeded xorshift64 sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A valid line, varied.
fn valid_line(rng: &mut Rng) -> Vec<u8> {
    let day = 1 + rng.below(28);
    let status = [200, 201, 302, 400, 404, 500, 599, 100][rng.below(8) as usize];
    let duration = match rng.below(4) {
        0 => format!("{}.{:03}", rng.below(3), rng.below(1000)),
        1 => format!("{}", rng.below(100)),
        2 => format!(".{}", rng.below(10)),
        _ => format!("{}.", rng.below(10)),
    };
    format!(
        "2024-10-{day:02} {:02}:{:02}:{:02} cust_{} /api/v1/r{} {status} {duration}",
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.below(20),
        rng.below(5)
    )
    .into_bytes()
}

/// A line mutated the way hostile or broken writers do.
fn mutated_line(rng: &mut Rng) -> Vec<u8> {
    let mut line = valid_line(rng);
    const NASTY: [&[u8]; 12] = [
        b"\0",
        b"\r",
        b"\xef\xbb\xbf",
        b"\xff",
        b"\xc3",
        b"\xe2\x82\xac",
        b" ",
        b"\t",
        b"9999999999999",
        b"-",
        b"e9",
        b".",
    ];
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(line.len() as u64 + 1) as usize;
        match rng.below(5) {
            0 => {
                let nasty = NASTY[rng.below(NASTY.len() as u64) as usize];
                line.splice(at..at, nasty.iter().copied());
            }
            1 if at < line.len() => {
                line.remove(at);
            }
            2 if at < line.len() => line[at] = rng.below(256) as u8,
            3 => {
                line.splice(at..at, std::iter::repeat_n(b'x', 4100));
            }
            _ => {
                line.splice(0..0, b"\xef\xbb\xbf".iter().copied());
            }
        }
    }
    // Keep newlines out of the middle (they would make two lines) and blank lines short.
    line.retain(|&b| b != b'\n');
    line
}

fn all(s: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    s.iter().all(|&b| ok(b))
}

/// Whether a line (without its `\n`) is valid, by the rules of docs/LOG-FORMAT.md, written out anew.
fn is_valid(raw: &[u8]) -> bool {
    let line = raw.strip_suffix(b"\r").unwrap_or(raw);
    if line.len() > 4096 {
        return false;
    }
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [date, time, customer, path, status, duration] = fields[..] else {
        return false;
    };
    let digits = |s: &[u8]| -> Option<u32> {
        (!s.is_empty() && all(s, |b| b.is_ascii_digit()))
            .then(|| std::str::from_utf8(s).ok()?.parse().ok())
            .flatten()
    };
    let date_ok = date.len() == 10 && date[4] == b'-' && date[7] == b'-' && {
        match (
            digits(&date[0..4]),
            digits(&date[5..7]),
            digits(&date[8..10]),
        ) {
            (Some(y), Some(m), Some(d)) => {
                y >= 1 && chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some()
            }
            _ => false,
        }
    };
    let time_ok = time.len() == 8 && time[2] == b':' && time[5] == b':' && {
        match (
            digits(&time[0..2]),
            digits(&time[3..5]),
            digits(&time[6..8]),
        ) {
            (Some(h), Some(m), Some(s)) => h < 24 && m < 60 && s < 60,
            _ => false,
        }
    };
    let customer_ok = (1..=64).contains(&customer.len())
        && all(customer, |b| {
            b.is_ascii_alphanumeric() || b"._-".contains(&b)
        });
    let path_ok = !path.is_empty() && std::str::from_utf8(path).is_ok();
    let status_ok = status.len() == 3 && digits(status).is_some_and(|s| (100..=599).contains(&s));
    let (int, frac) = match duration.iter().position(|&b| b == b'.') {
        Some(i) => (&duration[..i], &duration[i + 1..]),
        None => (duration, &b""[..]),
    };
    let duration_ok = int.len() <= 9
        && all(int, |b| b.is_ascii_digit())
        && all(frac, |b| b.is_ascii_digit())
        && int.len() + frac.len() > 0
        && rounded_micros(int, frac) <= 86_400_000_000;
    date_ok && time_ok && customer_ok && path_ok && status_ok && duration_ok
}

/// Whole microseconds of the decimal `int.frac` (digits only), rounded half up on the 7th
/// decimal: the documented rounding, computed digit by digit.
fn rounded_micros(int: &[u8], frac: &[u8]) -> u64 {
    let digit = |d: Option<&u8>| d.map_or(0, |&b| u64::from(b - b'0'));
    let whole = int.iter().fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'));
    let micros = (0..6).fold(0u64, |n, i| n * 10 + digit(frac.get(i)));
    whole * 1_000_000 + micros + u64::from(digit(frac.get(6)) >= 5)
}

fn is_blank(raw: &[u8]) -> bool {
    all(raw, |b| b" \t\r".contains(&b))
}

#[test]
fn mutated_input_is_counted_exactly() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut content = Vec::new();
    for _ in 0..20_000 {
        let line = match rng.below(10) {
            0..=4 => valid_line(&mut rng),
            5..=8 => mutated_line(&mut rng),
            _ => [&b""[..], b" ", b"\t", b"\r", b" \t \r"][rng.below(5) as usize].to_vec(),
        };
        content.extend_from_slice(&line);
        content.extend_from_slice(if rng.below(5) == 0 { b"\r\n" } else { b"\n" });
    }
    let (mut lines, mut accepted, mut successful) = (0u64, 0u64, 0u64);
    for raw in content.split(|&b| b == b'\n').filter(|l| !is_blank(l)) {
        lines += 1;
        if is_valid(raw) {
            accepted += 1;
            let status = raw.split(|&b| b == b' ').nth(4).expect("status");
            successful += u64::from(status[0] < b'4');
        }
    }
    // The split's last piece is the empty rest after the final newline: blank, not counted.
    assert!(
        accepted > 8_000 && lines - accepted > 5_000,
        "{accepted} of {lines}"
    );
    for db in backends() {
        let dir = temp_dir();
        let log = dir.path().join("mutated.log");
        std::fs::write(&log, &content).expect("write");
        let args = [
            "--workers",
            "2",
            "--epoch-bytes",
            "65536",
            "--allowed-lateness",
            "4000000d",
            log.to_str().expect("utf8"),
        ];
        let summary = ingest_ok(&db, &args);
        assert_eq!(summary["lines"], lines, "{db:?}: {summary}");
        assert_eq!(summary["accepted"], accepted, "{db:?}: {summary}");
        assert_eq!(summary["rejected"], lines - accepted, "{db:?}: {summary}");
        assert_eq!(summary["late"], 0, "{db:?}: {summary}");
        let days = db.connect().all_days().expect("rows");
        let stored: u64 = days.iter().map(|(_, _, s)| s.successful + s.failed).sum();
        let stored_successful: u64 = days.iter().map(|(_, _, s)| s.successful).sum();
        assert_eq!(
            (stored, stored_successful),
            (accepted, successful),
            "{db:?}"
        );
        assert_eq!(
            ingest_ok(&db, &args)["lines"],
            0,
            "{db:?}: a rerun adds nothing"
        );
    }
}
