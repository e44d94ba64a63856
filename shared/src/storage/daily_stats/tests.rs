//! Unit tests of the daily_stats queries on every backend: keyset pages, walks by day and open
//! ranges.

use super::*;
use crate::storage::{date_from_day, day_from_date, EpochCommit};

/// Walking a range in keyset pages of any size gives every row once, in order, however the page
/// boundaries fall (inside a customer); merged by day, every day once.
#[cfg(feature = "testing")]
#[test]
fn keyset_pages_walk_every_row_once_in_order() {
    for db in crate::testing::backends() {
        let store = db.connect();
        let mut acc = crate::DayAccumulator::new();
        acc.add(true, 1_000);
        let stats = acc.finish();
        let mut deltas = Vec::new();
        for c in ["a", "b", "b.1", "c_2", "z"] {
            for day in [20_005, 20_006, 20_008, 20_009, 20_020] {
                if !(c.len() + day as usize).is_multiple_of(4) {
                    deltas.push((c.to_string(), day, stats.clone()));
                }
            }
        }
        let epoch = EpochCommit {
            deltas: deltas.clone(),
            ..EpochCommit::default()
        };
        store.commit_epoch(&epoch).expect("commit");
        let (from, to) = (date_from_day(20_006), date_from_day(20_009));
        let mut by_day: Vec<(i32, String)> = deltas
            .iter()
            .filter(|d| (20_006..=20_009).contains(&d.1))
            .map(|d| (d.1, d.0.clone()))
            .collect();
        by_day.sort();
        let mut by_customer: Vec<(String, i32)> =
            by_day.iter().map(|(day, c)| (c.clone(), *day)).collect();
        by_customer.sort();
        for limit in [1, 2, 3, 7, 100] {
            let customers = ["a", "b", "b.1", "c_2", "z"];
            let mut walked = Vec::new();
            let mut after: Option<(String, NaiveDate)> = None;
            loop {
                let page = store
                    .days_by_customer(
                        &customers,
                        from,
                        to,
                        after.as_ref().map(|(c, d)| (c.as_str(), *d)),
                        limit,
                    )
                    .expect("page");
                let last = page.len() < limit;
                for (c, day, _) in page {
                    walked.push((c.clone(), day_from_date(day)));
                    after = Some((c, day));
                }
                if last {
                    break;
                }
            }
            assert_eq!(walked, by_customer, "{db:?} by customer, pages of {limit}");
        }
        // Merged by day over 16 days (two passes of the walk by customer): each day with rows
        // once, in order, holding one request a customer with a row that day.
        let customers = ["a", "b", "b.1", "c_2", "z"];
        let mut expected: Vec<(i32, u64)> = Vec::new();
        for (_, day, _) in &deltas {
            match expected.iter_mut().find(|(d, _)| d == day) {
                Some((_, n)) => *n += 1,
                None => expected.push((*day, 1)),
            }
        }
        expected.sort();
        let mut walked = Vec::new();
        store
            .walk_days(
                &customers,
                date_from_day(20_005),
                date_from_day(20_020),
                || Ok::<(), StorageError>(()),
                |day, merged| {
                    walked.push((day_from_date(day), merged.total()));
                    Ok(())
                },
            )
            .expect("walk");
        assert_eq!(walked, expected, "{db:?} merged by day");
        // The last day with a row: from the fleet rows, and from a scan of the customers' rows
        // while the fleet rows are pending.
        for pending in [false, true] {
            if pending {
                db.execute("INSERT INTO fleet_days_pending (id) VALUES (1)");
            }
            assert_eq!(
                store.last_day_from(from).expect("last"),
                Some(date_from_day(20_020)),
                "{db:?} pending {pending}"
            );
            assert_eq!(
                store.last_day_from(date_from_day(20_021)).expect("last"),
                None,
                "{db:?} pending {pending}"
            );
        }
    }
}

#[cfg(feature = "testing")]
#[test]
fn open_ended_ranges_reach_the_last_stored_day() {
    for db in crate::testing::backends() {
        let store = db.connect();
        let mut acc = crate::DayAccumulator::new();
        acc.add(true, 1_000);
        let stats = acc.finish();
        let days = [20_006, 20_016, 2_932_896]; // 2024-10-10, 2024-10-20, 9999-12-31
        let epoch = EpochCommit {
            deltas: days
                .iter()
                .map(|&day| ("cust_1".to_string(), day, stats.clone()))
                .collect(),
            ..EpochCommit::default()
        };
        store.commit_epoch(&epoch).expect("commit");
        let read: Vec<i32> = store
            .customer_days("cust_1", date_from_day(20_010), None)
            .expect("read")
            .into_iter()
            .map(|(date, _)| day_from_date(date))
            .collect();
        assert_eq!(read, [20_016, 2_932_896], "{db:?}");
    }
}
