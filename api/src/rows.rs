//! An in-memory copy of the customers' stored rows, kept current from their versions and bounded
//! in bytes: any range of a copied customer is merged without touching the database.
//!
//! Every commit gives the customers it touches a new version and writes that version into the
//! rows it changes (see `Store::customer_days_since`). A copy remembers the version it is current
//! at; a request that saw a newer version (see `crate::freshness`) brings the copy up to date by
//! reading only the rows written since, under the customer's lock, so concurrent requests read
//! them once. Each day is kept packed (see [`crate::packed`]): its counts, its median and p99
//! worked out once, and its latencies in their compact form, about 25 bytes for a day of a few
//! requests.
//!
//! Memory: the bytes of every copy and of every customer's slot are counted; past the budget,
//! customers not used recently are dropped, chosen by the CLOCK algorithm (a second chance for
//! each customer used since the hand last passed it), which costs O(1) amortised per eviction
//! and never orders the whole map. A customer whose rows alone take more than a quarter of the
//! budget is never copied: its ranges are read from the database per request. Callers ask only
//! about customers that have rows (version > 0): an unknown id gets its 404 before it reaches
//! this cache.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use chrono::NaiveDate;
use indexmap::IndexMap;
use logstats_shared::metrics::Counter;
use logstats_shared::{StorageError, Store, VersionedDay};
use parking_lot::{Mutex, MutexGuard};

use crate::packed::{PackError, PackedDays};

/// Default byte budget of the copy (`--row-cache-bytes` overrides; 0 turns it off): every day
/// of a year of 10,000 customers with a few requests a day each.
pub const DEFAULT_ROW_CACHE_BYTES: usize = 160 << 20;

/// Bytes a customer's copy costs beyond its packed days (struct, `Arc`, allocations).
const COPY_OVERHEAD_BYTES: usize = std::mem::size_of::<CustomerRows>() + 64;

/// Longest [`RowCache::copies_of`] waits for a customer's lock: other readers hold it for
/// microseconds, a loader for its read of the database.
const MOMENT: std::time::Duration = std::time::Duration::from_millis(5);

/// Fewest bytes a stored day takes packed: a bound on the rows worth asking for.
const MIN_DAY_BYTES: usize = 16;

/// Bytes a customer's slot costs beyond its id, copy or not (map entry, `Slot`, allocations).
const SLOT_OVERHEAD_BYTES: usize = std::mem::size_of::<Slot>() + 96;

fn slot_bytes(customer: &str) -> usize {
    SLOT_OVERHEAD_BYTES + customer.len()
}

/// A customer's days as of a version.
#[derive(Debug, Default)]
pub struct CustomerRows {
    /// No commit after this version changed the customer (as far as this copy knows).
    pub version: i64,
    /// The newest version among the rows held: the next read asks for rows after it.
    rows_version: i64,
    /// Every stored day, ascending.
    pub days: PackedDays,
    bytes: usize,
}

impl CustomerRows {
    /// This copy with `changed` days put in place (each replaces the stored day of its date),
    /// without the days before `first_kept_day` (pruned: their rows are gone, so no read of
    /// changed rows would ever say so).
    fn updated(
        &self,
        mut changed: Vec<VersionedDay>,
        version: i64,
        first_kept_day: Option<NaiveDate>,
    ) -> Result<Self, PackError> {
        let mut rows_version = self.rows_version;
        for day in &changed {
            rows_version = rows_version.max(day.version);
        }
        changed.sort_by_key(|day| day.day);
        let kept = |date: NaiveDate| first_kept_day.is_none_or(|first| date >= first);
        let mut days = PackedDays::default();
        let old = &self.days;
        let mut at = 0;
        for day in &changed {
            while at < old.len() && old.date(at) < day.day {
                if kept(old.date(at)) {
                    days.push_from(old, at)?;
                }
                at += 1;
            }
            if at < old.len() && old.date(at) == day.day {
                at += 1;
            }
            if kept(day.day) {
                days.push(day.day, &day.stats)?;
            }
        }
        for i in at..old.len() {
            if kept(old.date(i)) {
                days.push_from(old, i)?;
            }
        }
        days.shrink_to_fit();
        let bytes = COPY_OVERHEAD_BYTES + days.heap_bytes();
        Ok(Self {
            version: version.max(rows_version).max(self.version),
            rows_version,
            days,
            bytes,
        })
    }
}

/// Why a copy could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// Reading the rows failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A day could not be packed.
    #[error("packing a day: {0}")]
    Pack(#[from] PackError),
}

struct Slot {
    rows: Mutex<Option<Arc<CustomerRows>>>,
    /// Used since the clock's hand last passed it.
    referenced: AtomicBool,
}

struct State {
    /// Every slot, in an order the clock's hand walks (removal moves the last slot into the gap).
    slots: IndexMap<Box<str>, Arc<Slot>>,
    /// The next slot the clock looks at.
    hand: usize,
    /// Bytes of every slot and copy held.
    used: usize,
}

/// Slots of the admission filter (8 bytes each: 512 KiB).
const DOORKEEPER_SLOTS: usize = 1 << 16;

/// Which customers were asked about once while the copy was full: a customer is copied when it
/// is asked about again, so a stream of customers asked about once each (more customers than
/// fit) does not evict the copies that are used. A fixed table of id hashes: a collision only
/// admits a customer one request early.
struct Doorkeeper {
    seen: Vec<AtomicU64>,
}

impl Doorkeeper {
    fn new() -> Self {
        Self {
            seen: (0..DOORKEEPER_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Whether `customer` was asked about before (and forget it); else remember it.
    fn admits(&self, customer: &str) -> bool {
        let hash = customer_hash(customer);
        let slot = &self.seen[(hash as usize) % DOORKEEPER_SLOTS];
        if slot.load(Ordering::Relaxed) == hash {
            slot.store(0, Ordering::Relaxed);
            true
        } else {
            slot.store(hash, Ordering::Relaxed);
            false
        }
    }
}

/// A non-zero 64-bit hash of a customer id (FNV-1a).
fn customer_hash(customer: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in customer.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
}

/// The copies of every customer's rows, within a byte budget; shared by all workers.
pub struct RowCache {
    budget: usize,
    state: Mutex<State>,
    doorkeeper: Doorkeeper,
    /// Copies found current without reading the database.
    hits: Counter,
    /// Loads that read the database (rows changed since the copy, or no copy).
    misses: Counter,
    /// How `GET /customers` was answered: from these copies, or by walking the database.
    pub customer_lists: CustomerListSources,
}

/// Counts of `GET /customers` answers by where their rows came from.
#[derive(Default)]
pub struct CustomerListSources {
    /// Every customer was copied and current: answered from memory.
    pub from_copies: Counter,
    /// The database was walked.
    pub from_database: Counter,
}

/// What [`RowCache::load`] found.
pub enum Loaded {
    /// The customer's rows, current at least at the version asked for.
    Rows(Arc<CustomerRows>),
    /// The customer's rows are too large to copy: read the range from the database.
    TooLarge,
}

impl RowCache {
    /// A copy of at most `budget` bytes (none when 0).
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            state: Mutex::new(State {
                slots: IndexMap::new(),
                hand: 0,
                used: 0,
            }),
            doorkeeper: Doorkeeper::new(),
            hits: Counter::new(),
            misses: Counter::new(),
            customer_lists: CustomerListSources::default(),
        }
    }

    /// (hits, misses) so far: a hit is a copy found current by [`RowCache::fresh`] or, after
    /// waiting for another loader, by [`RowCache::load`]; a miss is a load that read the
    /// database. A failed `fresh` is not counted: `load` follows it.
    pub fn lookups(&self) -> (u64, u64) {
        (self.hits.get(), self.misses.get())
    }

    /// Whether rows are copied at all.
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// Bytes held now.
    pub fn used_bytes(&self) -> usize {
        self.state.lock().used
    }

    /// Customers with a slot now (copied, being copied, or found too large a moment ago).
    pub fn len(&self) -> usize {
        self.state.lock().slots.len()
    }

    /// Whether `customer` has a slot (a copy, maybe not current, or one being loaded).
    pub fn has_copy(&self, customer: &str) -> bool {
        self.state.lock().slots.contains_key(customer)
    }

    /// The copy of every customer of `versions` (id to version; those at 0 have no rows and
    /// are skipped), sorted by id, when each is held current at its version; `None` as soon as
    /// one is not (not copied, being loaded, or older). Never waits for the database or for a
    /// loader past 5 ms (`MOMENT`), and does not count as a use.
    pub fn copies_of<'a>(
        &self,
        versions: &'a std::collections::HashMap<Box<str>, i64>,
    ) -> Option<Vec<(&'a str, Arc<CustomerRows>)>> {
        if !self.enabled() {
            return None;
        }
        let mut copies = Vec::with_capacity(versions.len());
        for (customer, &version) in versions {
            if version <= 0 {
                continue;
            }
            let slot = self.state.lock().slots.get(&**customer).cloned()?;
            // Another reader holds a slot's lock for a moment; a loader for as long as its read.
            let rows = slot.rows.try_lock_for(MOMENT)?.clone()?;
            if rows.version < version {
                return None;
            }
            copies.push((&**customer, rows));
        }
        copies.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Some(copies)
    }

    /// The customers of `versions` (id to version; 0 means no rows) whose copy is missing or
    /// older than their version, with that version, when there are at most `most` of them and
    /// the copy has room for the missing ones (it is less than seven eighths full); else
    /// `None`. Waits for no loader past 5 ms (one being loaded counts as behind).
    pub fn behind<'a>(
        &self,
        versions: &'a std::collections::HashMap<Box<str>, i64>,
        most: usize,
    ) -> Option<Vec<(&'a str, i64)>> {
        if !self.enabled() {
            return None;
        }
        let mut behind = Vec::new();
        let mut missing = false;
        for (customer, &version) in versions {
            if version <= 0 {
                continue;
            }
            let slot = self.state.lock().slots.get(&**customer).cloned();
            let current = match &slot {
                None => {
                    missing = true;
                    false
                }
                Some(slot) => slot
                    .rows
                    .try_lock_for(MOMENT)
                    .and_then(|held| held.as_ref().map(|rows| rows.version >= version))
                    .unwrap_or(false),
            };
            if !current {
                behind.push((&**customer, version));
                if behind.len() > most {
                    return None;
                }
            }
        }
        let room = self.state.lock().used + self.budget / 8 <= self.budget;
        (room || !missing).then_some(behind)
    }

    /// The copy of `customer` if it is current at `version`; never waits for the database.
    pub fn fresh(&self, customer: &str, version: i64) -> Option<Arc<CustomerRows>> {
        let slot = self.state.lock().slots.get(customer).cloned()?;
        self.touch(&slot);
        let rows = slot.rows.try_lock()?.clone()?;
        let fresh = (rows.version >= version).then_some(rows);
        if fresh.is_some() {
            self.hits.inc();
        }
        fresh
    }

    /// Whether a customer without a copy should get one: always while the copy has room; once
    /// it is full, only on the customer's second request (a table of id hashes remembers the
    /// first). A customer not admitted is answered from the database, reading just the range
    /// asked for.
    pub fn admits(&self, customer: &str) -> bool {
        let full = self.state.lock().used + self.budget / 8 > self.budget;
        !full || self.doorkeeper.admits(customer)
    }

    /// The copy of `customer`, brought up to `version` from `store` when older. Blocks: call
    /// it off the HTTP workers.
    pub fn load(&self, store: &Store, customer: &str, version: i64) -> Result<Loaded, RowsError> {
        self.load_counted(store, customer, version, true)
    }

    /// Copies customers' rows from `store` in the background of a start, so the first requests
    /// find them: every customer with rows, one at a time, until the copy is seven eighths full
    /// (the rest is left to the customers requests ask about) or `cache` is dropped. Loads made
    /// here are not counted as misses. Returns the customers copied.
    pub fn warm(cache: std::sync::Weak<RowCache>, store: &Store) -> Result<usize, RowsError> {
        let customers = store.versions_since(0)?;
        let mut copied = 0;
        for (customer, version) in customers {
            let Some(cache) = cache.upgrade() else {
                break;
            };
            if cache.state.lock().used + cache.budget / 8 > cache.budget {
                break;
            }
            if cache.has_copy(&customer) {
                continue;
            }
            if let Loaded::Rows(_) = cache.load_counted(store, &customer, version, false)? {
                copied += 1;
            }
        }
        Ok(copied)
    }

    fn load_counted(
        &self,
        store: &Store,
        customer: &str,
        version: i64,
        counted: bool,
    ) -> Result<Loaded, RowsError> {
        let slot = {
            let mut state = self.state.lock();
            match state.slots.get(customer) {
                Some(slot) => Arc::clone(slot),
                None => {
                    let slot = Arc::new(Slot {
                        rows: Mutex::new(None),
                        referenced: AtomicBool::new(true),
                    });
                    state.slots.insert(customer.into(), Arc::clone(&slot));
                    state.used += slot_bytes(customer);
                    self.evict(&mut state, customer);
                    slot
                }
            }
        };
        self.touch(&slot);
        // One reader per customer: the others wait here, then find the copy current.
        let mut held = slot.rows.lock();
        if let Some(rows) = held.as_ref().filter(|rows| rows.version >= version) {
            if counted {
                self.hits.inc();
            }
            return Ok(Loaded::Rows(Arc::clone(rows)));
        }
        if counted {
            self.misses.inc();
        }
        let empty = CustomerRows {
            rows_version: -1,
            ..CustomerRows::default()
        };
        let current = held.as_deref().unwrap_or(&empty);
        let largest = self.budget / 4;
        let most_days = largest / MIN_DAY_BYTES;
        let changed = match store.customer_days_since(customer, current.rows_version, most_days) {
            Ok(Some(changed)) => changed,
            Ok(None) => {
                self.forget(customer, &slot, &mut held);
                return Ok(Loaded::TooLarge);
            }
            Err(error) => {
                if held.is_none() {
                    self.forget(customer, &slot, &mut held);
                }
                return Err(error.into());
            }
        };
        // Read after the rows: the horizon only moves forward, so it covers every prune the
        // rows read reflect (a prune bumps the versions of the customers it removed rows of).
        let first_kept_day = match store.first_kept_day() {
            Ok(first) => first,
            Err(error) => {
                if held.is_none() {
                    self.forget(customer, &slot, &mut held);
                }
                return Err(error.into());
            }
        };
        let updated = match current.updated(changed, version, first_kept_day) {
            Ok(updated) => updated,
            Err(error) => {
                self.forget(customer, &slot, &mut held);
                return Err(error.into());
            }
        };
        if updated.bytes > largest {
            self.forget(customer, &slot, &mut held);
            return Ok(Loaded::TooLarge);
        }
        let updated = Arc::new(updated);
        let before = held.as_ref().map_or(0, |rows| rows.bytes);
        *held = Some(Arc::clone(&updated));
        let mut state = self.state.lock();
        let kept = state
            .slots
            .get(customer)
            .is_some_and(|kept| Arc::ptr_eq(kept, &slot));
        state.used = state.used.saturating_sub(before);
        if kept {
            state.used += updated.bytes;
            self.evict(&mut state, customer);
        } else {
            // Evicted while this loader held it (so its bytes were left to this loader).
            *held = None;
        }
        Ok(Loaded::Rows(updated))
    }

    fn touch(&self, slot: &Slot) {
        slot.referenced.store(true, Ordering::Relaxed);
    }

    /// Drops `customer`'s copy (held locked in `held`) and its slot, if `slot` is still the one
    /// the map holds.
    fn forget(
        &self,
        customer: &str,
        slot: &Arc<Slot>,
        held: &mut MutexGuard<'_, Option<Arc<CustomerRows>>>,
    ) {
        let bytes = held.take().map_or(0, |rows| rows.bytes);
        let mut state = self.state.lock();
        let kept = state
            .slots
            .get_index_of(customer)
            .filter(|&at| Arc::ptr_eq(&state.slots[at], slot));
        if let Some(at) = kept {
            state.slots.swap_remove_index(at);
            // Evicted slots had their copy's bytes taken off by the clock or their loader.
            state.used = state.used.saturating_sub(bytes + slot_bytes(customer));
        }
    }

    /// Drops customers not used recently (never `keep`) until the budget holds: the clock's hand
    /// clears each used slot's mark as it passes and drops the first slot found unmarked. Every
    /// step clears a mark set by a use or drops a slot, so the cost is O(1) amortised per use.
    fn evict(&self, state: &mut State, keep: &str) {
        while state.used > self.budget && state.slots.len() > 1 {
            if state.hand >= state.slots.len() {
                state.hand = 0;
            }
            let Some((customer, slot)) = state.slots.get_index(state.hand) else {
                break;
            };
            if customer.as_ref() == keep || slot.referenced.swap(false, Ordering::Relaxed) {
                state.hand += 1;
                continue;
            }
            let Some((customer, slot)) = state.slots.swap_remove_index(state.hand) else {
                break;
            };
            let mut freed = slot_bytes(&customer);
            // A slot being loaded is locked by its loader, which sees it gone and takes its
            // copy's bytes off itself.
            if let Some(mut rows) = slot.rows.try_lock() {
                freed += rows.take().map_or(0, |r| r.bytes);
            }
            state.used = state.used.saturating_sub(freed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logstats_shared::storage::day_from_date;
    use logstats_shared::testing::backends;
    use logstats_shared::{DayAccumulator, EpochCommit};

    fn commit(store: &Store, customer: &str, days: &[(&str, u64)]) {
        let deltas = days
            .iter()
            .map(|&(day, latency_us)| {
                let mut acc = DayAccumulator::new();
                acc.add(true, latency_us);
                let date = NaiveDate::parse_from_str(day, "%F").expect("date");
                (customer.to_string(), day_from_date(date), acc.finish())
            })
            .collect();
        store
            .commit_epoch(&EpochCommit {
                deltas,
                ..EpochCommit::default()
            })
            .expect("commit");
    }

    fn loaded(cache: &RowCache, store: &Store, customer: &str) -> Arc<CustomerRows> {
        let version = store.customer_version(customer).expect("version");
        match cache.load(store, customer, version).expect("load") {
            Loaded::Rows(rows) => rows,
            Loaded::TooLarge => panic!("{customer} is small"),
        }
    }

    fn totals(rows: &CustomerRows) -> Vec<(String, u64)> {
        (0..rows.days.len())
            .map(|i| {
                let day = rows.days.get(i).expect("reads");
                (day.date.to_string(), day.total())
            })
            .collect()
    }

    /// A commit brings the copy up to date with just the rows it wrote, merged in day order.
    #[test]
    fn follows_commits_row_by_row() {
        for db in backends() {
            let store = db.connect();
            let cache = RowCache::new(1 << 20);
            commit(&store, "a", &[("2024-10-10", 1_000), ("2024-10-12", 2_000)]);
            let first = loaded(&cache, &store, "a");
            assert_eq!(
                totals(&first),
                [("2024-10-10".into(), 1), ("2024-10-12".into(), 1)],
                "{db:?}"
            );
            assert!(cache.fresh("a", first.version).is_some());
            commit(&store, "a", &[("2024-10-11", 3_000), ("2024-10-12", 4_000)]);
            commit(&store, "b", &[("2024-10-11", 3_000)]);
            let version = store.customer_version("a").expect("version");
            assert!(cache.fresh("a", version).is_none(), "stale after a commit");
            let second = loaded(&cache, &store, "a");
            assert_eq!(second.version, version);
            assert_eq!(
                totals(&second),
                [
                    ("2024-10-10".into(), 1),
                    ("2024-10-11".into(), 1),
                    ("2024-10-12".into(), 2)
                ]
            );
            let range = second.days.range(
                NaiveDate::from_ymd_opt(2024, 10, 11).expect("date"),
                Some(NaiveDate::from_ymd_opt(2024, 10, 11).expect("date")),
            );
            assert_eq!(range.len(), 1);
            // The first copy is untouched: readers holding it keep a consistent view.
            assert_eq!(first.days.len(), 2);
            // Two loads read the database; one copy was found current (a stale one is not
            // counted by `fresh`: the load after it is).
            assert_eq!(cache.lookups(), (1, 2));
        }
    }

    /// A prune deletes rows, which no read of changed rows returns: the copy drops the pruned
    /// days when the customer's new version brings it up to date.
    #[test]
    fn a_prune_drops_the_copied_days() {
        for db in backends() {
            let store = db.connect();
            let cache = RowCache::new(1 << 20);
            commit(
                &store,
                "a",
                &[
                    ("2024-10-10", 1_000),
                    ("2024-10-11", 2_000),
                    ("2024-10-12", 3_000),
                ],
            );
            let first = loaded(&cache, &store, "a");
            assert_eq!(first.days.len(), 3, "{db:?}");
            let bytes = cache.used_bytes();
            let day = NaiveDate::from_ymd_opt(2024, 10, 12).expect("date");
            store.prune_before(day).expect("prune");
            let version = store.customer_version("a").expect("version");
            assert!(cache.fresh("a", version).is_none(), "stale after the prune");
            let second = loaded(&cache, &store, "a");
            assert_eq!(totals(&second), [("2024-10-12".into(), 1)], "{db:?}");
            assert!(
                cache.used_bytes() < bytes,
                "the pruned days' bytes are freed"
            );
            // Later commits go on from there.
            commit(&store, "a", &[("2024-10-13", 1_000)]);
            let third = loaded(&cache, &store, "a");
            assert_eq!(
                totals(&third),
                [("2024-10-12".into(), 1), ("2024-10-13".into(), 1)]
            );
        }
    }

    /// While the copy has room every customer is admitted; once it is full a customer is
    /// admitted on its second request, so customers asked about once do not evict the others.
    #[test]
    fn a_full_copy_admits_a_customer_on_its_second_request() {
        let db = logstats_shared::testing::TestDatabase::sqlite();
        let store = db.connect();
        for customer in ["a", "b", "c", "d", "e"] {
            commit(
                &store,
                customer,
                &[("2024-10-10", 1_000), ("2024-10-11", 2_000)],
            );
        }
        let one = loaded(&RowCache::new(1 << 30), &store, "a").bytes + slot_bytes("a");
        // Four customers fill it past seven eighths; each takes a quarter at most.
        let cache = RowCache::new(one * 4);
        for customer in ["a", "b", "c"] {
            assert!(cache.admits(customer), "room left for {customer}");
            loaded(&cache, &store, customer);
        }
        assert!(cache.admits("d"), "room left for d");
        loaded(&cache, &store, "d");
        assert!(!cache.has_copy("e"));
        assert!(!cache.admits("e"), "first request");
        assert!(!cache.admits("x"), "another customer's first request");
        assert!(cache.admits("e"), "second request");
        assert!(!cache.admits("e"), "admission is used up");
    }

    /// The bytes held never pass the budget; a customer larger than a quarter of it is not
    /// copied at all.
    #[test]
    fn stays_within_its_budget() {
        let db = logstats_shared::testing::TestDatabase::sqlite();
        let store = db.connect();
        let days: Vec<String> = (0..40)
            .map(|d| {
                (NaiveDate::from_ymd_opt(2024, 1, 1).expect("date") + chrono::Days::new(d))
                    .to_string()
            })
            .collect();
        for customer in 0..20 {
            let rows: Vec<(&str, u64)> = days.iter().map(|d| (d.as_str(), 1_000)).collect();
            commit(&store, &format!("c{customer}"), &rows);
        }
        let one = loaded(&RowCache::new(1 << 30), &store, "c0").bytes;
        let budget = one * 5;
        let cache = RowCache::new(budget);
        for round in 0..3 {
            for customer in 0..20 {
                loaded(&cache, &store, &format!("c{customer}"));
                assert!(cache.used_bytes() <= budget, "round {round}");
            }
        }
        assert!(cache.used_bytes() >= one * 4, "keeps what fits");
        let small = RowCache::new(one * 3);
        let version = store.customer_version("c1").expect("version");
        assert!(matches!(
            small.load(&store, "c1", version).expect("load"),
            Loaded::TooLarge
        ));
        assert_eq!(small.used_bytes(), 0);
    }
}
