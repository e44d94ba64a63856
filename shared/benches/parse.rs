//! `parse_line` on lines in the reference generator's format, the same lines through
//! `--format auto`'s parser, and the same requests as JSON lines; throughput in lines/s.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use logstats_shared::parse_line;
use logstats_shared::record::LineParser;
use std::time::Duration;

/// `n` lines like `2024-10-10 12:50:18 cust_14 /api/v1/resource3 401 0.847` (seeded, unordered).
fn reference_lines(n: usize) -> Vec<String> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const STATUSES: [u16; 7] = [200, 201, 400, 401, 403, 404, 500];
    (0..n)
        .map(|_| {
            let day = 10 + next() % 22; // 2024-10-10..=2024-10-31
            let second = next() % 86_400;
            format!(
                "2024-10-{day:02} {:02}:{:02}:{:02} cust_{} /api/v1/resource{} {} {}.{:03}",
                second / 3600,
                second / 60 % 60,
                second % 60,
                1 + next() % 50,
                1 + next() % 4,
                STATUSES[(next() % 7) as usize],
                next() % 2,
                next() % 1000,
            )
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let lines = reference_lines(10_000);
    let mut group = c.benchmark_group("parse_line");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("10k reference lines", |b| {
        b.iter(|| {
            let mut accepted = 0u64;
            for line in &lines {
                if let Ok(record) = parse_line(black_box(line.as_bytes())) {
                    accepted += record.latency_us & 1;
                }
            }
            accepted
        })
    });
    let auto = LineParser::default();
    group.bench_function("10k reference lines, --format auto", |b| {
        b.iter(|| {
            let mut accepted = 0u64;
            for line in &lines {
                if let Ok(record) = auto.parse(black_box(line.as_bytes())) {
                    accepted += record.latency_us & 1;
                }
            }
            accepted
        })
    });
    let json: Vec<String> = lines.iter().map(|line| as_json(line)).collect();
    group.bench_function("10k reference lines as JSON", |b| {
        b.iter(|| {
            let mut accepted = 0u64;
            for line in &json {
                if let Ok(record) = auto.parse(black_box(line.as_bytes())) {
                    accepted += record.latency_us & 1;
                }
            }
            accepted
        })
    });
    group.finish();
}

/// A reference line as the JSON line nginx's recipe writes for it.
fn as_json(line: &str) -> String {
    let f: Vec<&str> = line.split(' ').collect();
    format!(
        r#"{{"timestamp":"{}T{}+00:00","customer_id":"{}","path":"{}","status":{},"duration":{}}}"#,
        f[0], f[1], f[2], f[3], f[4], f[5]
    )
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = parse
}
criterion_main!(benches);
