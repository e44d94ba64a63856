//! Unit tests of the share reader: parsing, pre-aggregation, rejects kept and left out, reports.
//! (`tests.rs`, as `generate/tests.rs`: a module's unit tests in a file of their own.)

use super::*;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

fn plan_for(path: &Path, start: u64, end: u64) -> EpochPlan {
    EpochPlan {
        epoch: 0,
        source: 0,
        path: path.display().to_string(),
        key: String::new(),
        start,
        end,
        late_before: None,
        watermark_ceiling: i64::MAX,
        fingerprint: None,
        first: None,
        batches: Vec::new(),
    }
}

fn reader_for(path: &Path) -> ShareReader {
    windowed_reader_for(path, WINDOW_BYTES)
}

fn windowed_reader_for(path: &Path, window_bytes: u64) -> ShareReader {
    let files = OpenFiles::default();
    files.insert(0, Arc::new(std::fs::File::open(path).unwrap()));
    ShareReader::with_window(files, window_bytes)
}

fn write(content: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(content).unwrap();
    file
}

/// Every line is read by exactly one worker, whatever the split.
#[test]
fn shares_cover_every_line_once() {
    let mut content = Vec::new();
    for i in 0..500 {
        if i % 50 == 7 {
            content.extend_from_slice(b"\n");
        }
        writeln!(
            content,
            "2024-10-10 12:00:{:02} cust_{} /p 200 0.{:03}",
            i % 60,
            i % 7,
            i
        )
        .unwrap();
    }
    content.extend_from_slice(b"not a line\n");
    let file = write(&content);
    for (peers, window) in [
        (1, 1 << 20),
        (2, 1 << 20),
        (3, 1 << 20),
        (5, 1 << 20),
        (1, 1),
        (2, 37),
        (3, 1000),
    ] {
        let plan = plan_for(file.path(), 0, content.len() as u64);
        let mut totals = ShareReport::default();
        let mut requests = 0;
        for index in 0..peers {
            let mut reader = windowed_reader_for(file.path(), window);
            let (deltas, report) = reader.read(&plan, index, peers);
            assert_eq!(report.error, None);
            totals.lines_total += report.lines_total;
            totals.lines += report.lines;
            totals.accepted += report.accepted;
            totals.rejected += report.rejected;
            requests += deltas.iter().map(|(_, acc)| acc.total()).sum::<u64>();
        }
        assert_eq!(totals.lines_total, 511, "peers={peers} window={window}");
        assert_eq!(totals.lines, 501);
        assert_eq!(totals.accepted, 500);
        assert_eq!(totals.rejected, 1);
        assert_eq!(requests, 500);
    }
}

#[test]
fn overlong_lines_are_rejected_in_bounded_memory() {
    let mut content = b"2024-10-10 12:00:00 cust_1 /p 200 0.100\n".to_vec();
    content.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE_BYTES));
    content.extend_from_slice(b"\n2024-10-10 12:00:01 cust_2 /p 500 0.200\n");
    let file = write(&content);
    for (peers, window) in [
        (1, WINDOW_BYTES),
        (2, WINDOW_BYTES),
        (4, WINDOW_BYTES),
        (1, 100),
        (3, 5000),
    ] {
        let plan = plan_for(file.path(), 0, content.len() as u64);
        let (mut accepted, mut too_long) = (0, 0);
        for index in 0..peers {
            let (_, report) = windowed_reader_for(file.path(), window).read(&plan, index, peers);
            accepted += report.accepted;
            too_long += report
                .rejects
                .iter()
                .filter(|r| r.reason == RejectReason::TooLong)
                .count();
        }
        assert_eq!(
            (accepted, too_long),
            (2, 1),
            "peers={peers} window={window}"
        );
    }
}

/// The key depends on the id alone, not on the bytes after it.
#[test]
fn packed_ids_ignore_what_follows() {
    for id in ["a", "cust_14", "12345678", "123456789", "exactly-16-bytes"] {
        let keys: Vec<Option<u128>> = [" /p 200 1", "x/q 500 9.999", "        "]
            .iter()
            .map(|tail| pack_customer(format!("{id}{tail}").as_bytes(), id.len()))
            .collect();
        assert!(keys[0].is_some(), "{id}");
        assert!(keys.iter().all(|k| *k == keys[0]), "{id}");
        assert_eq!(unpack_customer(keys[0].unwrap()), id);
    }
    assert_eq!(pack_customer(b"seventeen-bytes-x /p 200 1", 17), None);
    assert_eq!(
        pack_customer(b"short", 5),
        None,
        "fewer than 8 bytes to read"
    );
}

/// Ids up to 16 bytes are packed, longer ones interned: both come back as they were.
#[test]
fn short_and_long_customer_ids_keep_their_names() {
    let names = [
        "a",
        "cust_14",
        "exactly-16-bytes",
        "seventeen-bytes-x",
        &"L".repeat(64),
    ];
    let mut content = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for _ in 0..=i {
            writeln!(content, "2024-10-10 12:00:00 {name} /p 200 1").unwrap();
        }
    }
    let file = write(&content);
    let plan = plan_for(file.path(), 0, content.len() as u64);
    let mut reader = reader_for(file.path());
    for _ in 0..2 {
        let (deltas, report) = reader.read(&plan, 0, 1);
        assert_eq!(report.accepted, 15);
        let mut got: Vec<(String, u64)> = deltas
            .iter()
            .map(|((name, _), acc)| (name.clone(), acc.total()))
            .collect();
        got.sort();
        let mut expect: Vec<(String, u64)> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.to_string(), i as u64 + 1))
            .collect();
        expect.sort();
        assert_eq!(got, expect);
    }
}

#[test]
fn late_records_are_counted_not_merged() {
    let content = b"2024-10-10 00:00:00 a /p 200 1\n2024-10-01 00:00:00 a /p 200 1\n";
    let file = write(content);
    let mut plan = plan_for(file.path(), 0, content.len() as u64);
    plan.late_before = Some(1_728_000_000); // 2024-10-04
    let (deltas, report) = reader_for(file.path()).read(&plan, 0, 1);
    assert_eq!((report.accepted, report.late), (1, 1));
    assert_eq!(report.rejects[0].line_in_share, 1);
    assert_eq!(deltas.len(), 1);
    assert_eq!(report.max_event_time, Some(1_728_518_400));
}

#[test]
fn far_future_lines_count_but_do_not_move_the_watermark() {
    let content = b"2024-10-10 00:00:00 a /p 200 1\n2999-01-01 00:00:00 a /p 200 1\n";
    let file = write(content);
    let mut plan = plan_for(file.path(), 0, content.len() as u64);
    plan.watermark_ceiling = 1_800_000_000; // 2027-01-15
    let (deltas, report) = reader_for(file.path()).read(&plan, 0, 1);
    assert_eq!(report.accepted, 2);
    assert_eq!(deltas.len(), 2);
    assert_eq!(report.max_event_time, Some(1_728_518_400));
}

/// A list given back is the next one taken, emptied and with room for what is asked (no more
/// than one is kept), and none is kept once cleared.
#[test]
fn spare_lists_are_reused_one_at_a_time() {
    let spares = SpareLists::default();
    let mut list = spares.take(10);
    assert!(list.capacity() >= 10);
    list.push(("cust_1".into(), 1, logstats_shared::DayStats::empty()));
    let at = list.as_ptr();
    spares.give(list);
    spares.give(Vec::with_capacity(3));
    let again = spares.take(5);
    assert_eq!(again.as_ptr(), at, "the first list given back is reused");
    assert!(again.is_empty());
    assert!(again.capacity() >= 10);
    assert_eq!(spares.take(0).capacity(), 0, "only one list is kept");
    spares.give(again);
    spares.clear();
    assert_eq!(spares.take(0).capacity(), 0);
    assert!(spares.take(20).capacity() >= 20);
}

/// A share after one of many cells and few lines a cell is read as sorted lines, and its
/// cells are those of the table of cells: counts, sums and latencies, for short and long
/// customer ids, days before 1970, failures and latencies past 2^31 µs, in small windows.
#[test]
fn sorted_shares_make_the_cells_a_table_of_cells_makes() {
    let mut content = Vec::new();
    let mut expected: std::collections::BTreeMap<(String, i32), DayAccumulator> =
        Default::default();
    let mut state = 7u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    let dates = [
        ("1969-12-31", -1),
        ("2024-10-10", 20006),
        ("2024-10-11", 20007),
    ];
    let long_name = "a-customer-id-longer-than-sixteen-bytes";
    for i in 0..12_000u64 {
        let customer = match next() % 100 {
            0 => format!("{long_name}-{}", next() % 50),
            _ => format!("cust_{}", next() % 5000),
        };
        let (date, day) = dates[(next() % 3) as usize];
        let status = if next() % 4 == 0 { 503 } else { 200 };
        let (seconds, micros) = match i % 997 {
            0 => ("3000.000001".to_string(), 3_000_000_001u64),
            _ => {
                let micros = next() % 2_000_000;
                (
                    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000),
                    micros,
                )
            }
        };
        writeln!(content, "{date} 12:00:00 {customer} /p {status} {seconds}").unwrap();
        expected
            .entry((customer, day))
            .or_default()
            .add(status < 500, micros);
    }
    for acc in expected.values_mut() {
        acc.normalize();
    }
    let file = write(&content);
    let plan = plan_for(file.path(), 0, content.len() as u64);
    let mut reader = windowed_reader_for(file.path(), 4096);
    for (round, sorting) in [(0, false), (1, true), (2, true)] {
        let mut share = reader.begin(&plan, 0, 1);
        assert_eq!(reader.sorting, sorting, "round {round}");
        while !reader.step(&plan, &mut share) {}
        let (deltas, report) = reader.finish(share);
        assert_eq!(report.accepted, 12_000);
        assert_eq!(report.run, None);
        if sorting {
            // In the order the stage writes: the id's bytes, then the day.
            let keys: Vec<&(String, i32)> = deltas.iter().map(|(key, _)| key).collect();
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "round {round}: sorted cells out of order"
            );
        }
        let got: std::collections::BTreeMap<(String, i32), DayAccumulator> =
            deltas.into_iter().collect();
        assert_eq!(got.len(), expected.len(), "round {round}");
        assert!(got == expected, "round {round}: the cells differ");
    }
}

/// A reader staging into a shelf writes a sorted share's cells to a run of its own, named in
/// the report, instead of giving them back: read back, the run holds each cell's stats as the
/// table of cells makes them (cells of one request and of a few, cells of more than the few a
/// run holds as counted requests, long latencies, long ids, days before 1970). A share read
/// through the table of cells still gives its cells back.
#[test]
fn sorted_shares_staged_as_runs_hold_the_cells() {
    let mut content = Vec::new();
    let mut expected: std::collections::BTreeMap<(String, i32), DayAccumulator> =
        Default::default();
    let mut add = |content: &mut Vec<u8>, customer: String, date: &str, day: i32, i: u64| {
        let (status, micros) = (
            if i.is_multiple_of(5) { 404 } else { 200 },
            (i * 7919) % 900_000,
        );
        let micros = if i.is_multiple_of(1013) {
            5_000_000_000
        } else {
            micros
        };
        let seconds = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
        writeln!(content, "{date} 08:00:00 {customer} /p {status} {seconds}").unwrap();
        expected
            .entry((customer, day))
            .or_default()
            .add(status < 400, micros);
    };
    for i in 0..9_000u64 {
        let customer = match i % 97 {
            0 => format!("a-customer-id-longer-than-sixteen-bytes-{}", i % 7),
            _ => format!("cust_{}", (i * 31) % 6_000),
        };
        let (date, day) = [("1969-12-31", -1), ("2024-10-10", 20006)][(i % 2) as usize];
        add(&mut content, customer, date, day, i);
    }
    for i in 0..(COUNTED_REQUESTS as u64 + 3) {
        add(&mut content, "cust_busy".into(), "2024-10-10", 20006, i);
    }
    let lines = 9_000 + COUNTED_REQUESTS as u64 + 3;
    let expected: Vec<(String, i32, DayStats)> = expected
        .into_iter()
        .map(|((customer, day), acc)| (customer, day, acc.finish()))
        .collect();
    let file = write(&content);
    let plan = plan_for(file.path(), 0, content.len() as u64);
    let dir = tempfile::tempdir().unwrap();
    let shelf = RunShelf::new(dir.path().to_path_buf());
    let mut reader = windowed_reader_for(file.path(), 4096).staging_into(Some(shelf.clone()));
    for (round, sorting) in [(0, false), (1, true), (2, true)] {
        let mut share = reader.begin(&plan, 0, 1);
        assert_eq!(reader.sorting, sorting, "round {round}");
        while !reader.step(&plan, &mut share) {}
        let (deltas, report) = reader.finish(share);
        assert_eq!(report.accepted, lines, "round {round}");
        assert_eq!(deltas.is_empty(), sorting, "round {round}");
        let run = match report.run {
            Some(number) => shelf.take(number).expect("the run"),
            None => {
                assert!(!sorting, "round {round}: a sorted share staged no run");
                let mut cells = deltas;
                crate::stage::write_accumulated_run(dir.path(), &mut cells).expect("run")
            }
        };
        assert_eq!(run.cells, expected.len(), "round {round}");
        // A run written from sorted lines is counted against the epoch budget by its lines.
        let budget_cells = match sorting {
            true => (lines * crate::pacing::SORTED_LINE_BYTES / crate::pacing::CELL_BYTES) as usize,
            false => expected.len(),
        };
        assert_eq!(run.budget_cells, budget_cells, "round {round}");
        let merged = crate::stage::merged_runs(dir.path(), vec![run]);
        assert!(merged == expected, "round {round}: the run's cells differ");
    }
    // A sorted share without a line accepted stages no run.
    let end = content.len() as u64;
    let (deltas, report) = reader.read(&plan_for(file.path(), end, end), 0, 1);
    assert!(reader.sorting);
    assert_eq!((deltas.len(), report.accepted, report.run), (0, 0, None));
}

/// A share of many lines a cell is read through the table of cells, however many cells.
#[test]
fn shares_of_many_lines_a_cell_are_not_sorted() {
    let mut content = Vec::new();
    for i in 0..(SORT_FROM_CELLS as u64 * SORT_BELOW_LINES_A_CELL) {
        let customer = i % SORT_FROM_CELLS as u64;
        writeln!(content, "2024-10-10 12:00:00 cust_{customer} /p 200 0.1").unwrap();
    }
    let file = write(&content);
    let plan = plan_for(file.path(), 0, content.len() as u64);
    let mut reader = reader_for(file.path());
    for _ in 0..2 {
        let (deltas, _) = reader.read(&plan, 0, 1);
        assert_eq!(deltas.len(), SORT_FROM_CELLS);
        assert!(!reader.sorting);
    }
}

/// The keys come out in order, each with its value, whichever bytes they differ in.
#[test]
fn keys_sort_with_their_values() {
    let mut state = 3u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state
    };
    for (n, mask) in [
        (0, u64::MAX),
        (1, u64::MAX),
        (1000, 0xff),
        (5000, 0x0000_0003_0000_ffff),
        (5000, u64::MAX),
        (300, 0xffff_ffff_0000_0000),
    ] {
        let mut keys: Vec<u64> = (0..n).map(|_| next() & mask).collect();
        let mut values: Vec<u32> = (0..n).map(|_| next() as u32).collect();
        let mut expected: Vec<(u64, u32)> =
            keys.iter().copied().zip(values.iter().copied()).collect();
        expected.sort_by_key(|&(key, _)| key);
        let mut spare = (vec![9; 3], Vec::new());
        sort_by_key(&mut keys, &mut values, &mut spare);
        let mut got: Vec<(u64, u32)> = keys.into_iter().zip(values).collect();
        assert!(
            got.windows(2).all(|w| w[0].0 <= w[1].0),
            "n={n} mask={mask:x}"
        );
        // Values of equal keys may come in any order: compare as sorted pairs.
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected, "n={n} mask={mask:x}");
    }
}
