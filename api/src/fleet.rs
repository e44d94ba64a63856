//! The fleet views, computed from the stored rows: every customer merged over a range
//! (`GET /stats`), and every customer's total over a range, ranked and paged
//! (`GET /customers`).
//!
//! Namesake: this module computes the fleet views; `crate::routes::fleet` is their endpoints
//! (parameters, documentation), and `crate::service` what is around the computation (version
//! rounds, remembered answers, turns).
//!
//! `GET /stats` reads the range's fleet rows (one a day, kept by every commit); until those
//! are built for rows committed before they existed, it walks the rows as `/customers` does.
//! Both walks read the range's rows a page at a time (keyset pages of [`ROWS_PER_READ`] rows), so
//! memory holds one page, the merge in progress (compacted every [`COMPACT_EVERY`] rows; a
//! merged latency summary is at most 4,096 histogram entries or a 100-centroid digest), and
//! the answer: one summary per day with requests (`/stats`), or a heap of at most
//! `offset + limit` customers (`/customers`, at most 100,000). The cost is the
//! rows read: customers x days of the range.
//!
//! Time is bounded too: at most [`FLEET_WALKS`] walks run at once (a request waits up to
//! [`FLEET_QUEUE_WAIT`] for its turn), and a walk still reading after [`FLEET_DEADLINE`] stops;
//! either way the answer is a 503 with `Retry-After`. So a burst of fleet requests (or clients
//! that gave up waiting) can hold at most that many database connections and blocking threads,
//! each for at most that long.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use logstats_shared::{DayStats, StatsSummary, StorageError, Store};
use serde::Serialize;

use crate::domain::{iso_date, DayEntry};
use crate::domain::{ListPage, PercentileList, RequestedRange, SortField};
use crate::error::ApiError;
use crate::packed::{merged_counts_of_packed, merged_summary_of_packed, PackError};
use crate::rows::CustomerRows;

/// Most fleet walks in progress at once (the customer route is never held up by them beyond
/// these).
pub const FLEET_WALKS: usize = 2;
/// Longest a fleet request waits for a walk to end before it is answered 503.
pub const FLEET_QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Longest a walk reads: past it, the walk stops between two pages and the request is answered
/// 503.
pub const FLEET_DEADLINE: Duration = Duration::from_secs(60);

/// Why a walk gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// Reading the rows failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The walk was still reading at its deadline.
    #[error(
        "the fleet view did not finish within {} s; ask a shorter range, or retry",
        FLEET_DEADLINE.as_secs()
    )]
    TooSlow,
}

impl From<WalkError> for ApiError {
    fn from(error: WalkError) -> Self {
        match error {
            WalkError::Storage(storage) => storage.into(),
            too_slow @ WalkError::TooSlow => ApiError::Busy(too_slow.to_string()),
        }
    }
}

/// The turns of the fleet walks: [`FLEET_WALKS`] at once; shared by all workers.
pub struct FleetGate {
    turns: Arc<tokio::sync::Semaphore>,
}

/// One walk's turn, held until the walk ends (also when its client is gone), with its deadline.
pub struct Turn {
    _permit: tokio::sync::OwnedSemaphorePermit,
    deadline: Instant,
}

impl Turn {
    fn check(&self) -> Result<(), WalkError> {
        if Instant::now() > self.deadline {
            return Err(WalkError::TooSlow);
        }
        Ok(())
    }
}

impl Default for FleetGate {
    fn default() -> Self {
        Self {
            turns: Arc::new(tokio::sync::Semaphore::new(FLEET_WALKS)),
        }
    }
}

impl FleetGate {
    /// A turn, once one of [`FLEET_WALKS`] is free; `None` after [`FLEET_QUEUE_WAIT`].
    pub async fn turn(&self) -> Option<Turn> {
        let permit =
            tokio::time::timeout(FLEET_QUEUE_WAIT, Arc::clone(&self.turns).acquire_owned())
                .await
                .ok()?
                .ok()?;
        Some(Turn {
            _permit: permit,
            deadline: Instant::now() + FLEET_DEADLINE,
        })
    }
}

/// Rows read per database round trip.
pub const ROWS_PER_READ: usize = 2048;
/// Most customers asked for per walk of `/customers` (one `IN` list); fewer when the range is
/// long (see [`customers_per_walk`]).
const CUSTOMERS_PER_READ: usize = 256;
/// Rows of one day (or one customer) gathered before they are merged into one.
pub const COMPACT_EVERY: usize = 256;

/// The 200 response of `GET /stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FleetStats {
    /// First day, inclusive.
    #[serde(serialize_with = "iso_date")]
    #[schema(value_type = String, format = Date, example = "2024-10-10")]
    pub from: NaiveDate,
    /// Last day, inclusive: the requested `to`, else the last day any customer has data on
    /// (from `from` on), else `from`.
    #[serde(serialize_with = "iso_date")]
    #[schema(value_type = String, format = Date, example = "2024-11-09")]
    pub to: NaiveDate,
    /// Every customer's requests of the range merged.
    pub total: StatsSummary,
    /// The days with requests, ascending, each every customer's requests of that day merged.
    pub days: Vec<DayEntry>,
}

/// The 200 response of `GET /customers`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerList {
    /// First day, inclusive.
    #[serde(serialize_with = "iso_date")]
    #[schema(value_type = String, format = Date, example = "2024-10-10")]
    pub from: NaiveDate,
    /// Last day, inclusive, resolved as for `GET /stats`.
    #[serde(serialize_with = "iso_date")]
    #[schema(value_type = String, format = Date, example = "2024-11-09")]
    pub to: NaiveDate,
    /// The field sorted by.
    #[schema(example = "failed_requests")]
    pub sort: &'static str,
    /// `asc` or `desc`.
    #[schema(example = "desc", pattern = "^(asc|desc)$")]
    pub order: &'static str,
    /// Most customers in `customers`.
    #[schema(example = 100)]
    pub limit: u64,
    /// Customers skipped before the first in `customers`.
    #[schema(example = 0)]
    pub offset: u64,
    /// How many customers have requests in the range (all pages).
    #[schema(example = 50)]
    pub count: u64,
    /// This page of customers, ranked; ties are ordered by customer id.
    pub customers: Vec<CustomerTotal>,
}

/// One customer of a `CustomerList`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CustomerTotal {
    /// The customer.
    #[schema(example = "cust_22")]
    pub customer_id: String,
    /// Its requests of the range merged.
    pub total: StatsSummary,
}

/// The range's last day: `to` when given, else the last day with data from `from` on.
fn resolve_to(store: &Store, range: &RequestedRange) -> Result<NaiveDate, StorageError> {
    match range.to {
        Some(to) => Ok(to),
        None => Ok(store.last_day_from(range.from)?.unwrap_or(range.from)),
    }
}

/// Rows of one group (a day, or a customer) merged as they come, in bounded memory.
#[derive(Default)]
struct Merge {
    pending: Vec<DayStats>,
}

impl Merge {
    fn add(&mut self, stats: DayStats) {
        self.pending.push(stats);
        if self.pending.len() >= COMPACT_EVERY {
            let merged = DayStats::merge_all(&self.pending);
            self.pending.clear();
            self.pending.push(merged);
        }
    }

    fn finish(&mut self) -> DayStats {
        let merged = match self.pending.len() {
            0 => DayStats::empty(),
            1 => self.pending.pop().unwrap_or_default(),
            _ => DayStats::merge_all(&self.pending),
        };
        self.pending.clear();
        merged
    }
}

/// `GET /stats` from the stored fleet rows (one per day, every customer's rows of the day
/// merged by the commits): the same answer as the walk of [`fleet_stats`], reading one row a
/// day. `None` while the fleet rows of rows committed before they existed are not built yet.
fn fleet_stats_from_fleet_days(
    store: &Store,
    range: &RequestedRange,
    extra: &PercentileList,
) -> Result<Option<FleetStats>, StorageError> {
    let to = resolve_to(store, range)?;
    let Some(stored) = store.fleet_days(range.from, to)? else {
        return Ok(None);
    };
    let mut days = Vec::new();
    let mut total = DayStats::empty();
    for (date, merged) in stored.into_iter().filter(|(_, stats)| stats.total() > 0) {
        days.push(DayEntry {
            date,
            stats: merged.summary_with_percentiles(&extra.0),
        });
        total.merge(&merged);
    }
    Ok(Some(FleetStats {
        from: range.from,
        to,
        total: total.summary_with_percentiles(&extra.0),
        days,
    }))
}

/// `GET /stats`: every customer's rows of `range` merged, per day and in all: the stored fleet
/// rows, or while they are not built yet, a walk of the rows of every one of `customers`
/// (sorted ids) over the range.
pub fn fleet_stats(
    store: &Store,
    customers: &[&str],
    range: &RequestedRange,
    extra: &PercentileList,
    turn: &Turn,
) -> Result<FleetStats, WalkError> {
    if let Some(stats) = fleet_stats_from_fleet_days(store, range, extra)? {
        return Ok(stats);
    }
    let to = resolve_to(store, range)?;
    let mut days = Vec::new();
    let mut total = DayStats::empty();
    store.walk_days(
        customers,
        range.from,
        to,
        || turn.check(),
        |date, merged| {
            if merged.total() > 0 {
                days.push(DayEntry {
                    date,
                    stats: merged.summary_with_percentiles(&extra.0),
                });
                total.merge(&merged);
            }
            Ok(())
        },
    )?;
    Ok(FleetStats {
        from: range.from,
        to,
        total: total.summary_with_percentiles(&extra.0),
        days,
    })
}

/// A ranked customer; the heap's top is the one ranked last.
struct Ranked {
    key: (Option<f64>, Option<u64>),
    by_id: bool,
    descending: bool,
    entry: CustomerTotal,
}

impl Ranked {
    fn new(entry: CustomerTotal, page: &ListPage) -> Ranked {
        let t = &entry.total;
        let key = match page.sort {
            SortField::CustomerId => (None, None),
            SortField::TotalRequests => (None, Some(t.total_requests)),
            SortField::SuccessfulRequests => (None, Some(t.successful_requests)),
            SortField::FailedRequests => (None, Some(t.failed_requests)),
            SortField::Uptime => (t.uptime, None),
            SortField::AverageLatency => (t.average_latency, None),
            SortField::MedianLatency => (t.median_latency, None),
            SortField::P99Latency => (t.p99_latency, None),
        };
        Ranked {
            key,
            by_id: page.sort == SortField::CustomerId,
            descending: page.descending,
            entry,
        }
    }

    /// Less is ranked first: by the sort field in the asked order (nulls as the smallest
    /// value), then by customer id, ascending (or by customer id in the asked order when that is
    /// the sort field).
    fn rank(&self, other: &Ranked) -> Ordering {
        let by_id = self.entry.customer_id.cmp(&other.entry.customer_id);
        if self.by_id {
            return if self.descending {
                by_id.reverse()
            } else {
                by_id
            };
        }
        let by_float = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            (a, b) => a.is_some().cmp(&b.is_some()),
        };
        let field = by_float(self.key.0, other.key.0).then(self.key.1.cmp(&other.key.1));
        let field = if self.descending {
            field.reverse()
        } else {
            field
        };
        field.then(by_id)
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.rank(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank(other)
    }
}

/// `GET /customers`: the total of every customer of `customers` (sorted ids) with requests in
/// `range`, ranked and paged as `page` says.
/// Customers per walk of `/customers`, so that a walk's rows fit one read of [`ROWS_PER_READ`]
/// (at most one row a customer and day): every further page of a walk makes the database find
/// the walk's rows again past the cursor, which over a year of 256 customers' rows (93,000 rows
/// of up to a few kB) made a page cost a walk, and the whole year take minutes.
fn customers_per_walk(from: NaiveDate, to: NaiveDate) -> usize {
    let days = usize::try_from((to - from).num_days() + 1)
        .unwrap_or(1)
        .max(1);
    (ROWS_PER_READ / days).clamp(1, CUSTOMERS_PER_READ)
}

/// How a walk reads a page of its customers' rows: whole, or counts only.
type ReadPage = fn(
    &Store,
    &[&str],
    NaiveDate,
    NaiveDate,
    Option<(&str, NaiveDate)>,
    usize,
) -> Result<Vec<(String, NaiveDate, DayStats)>, StorageError>;

/// Walks the rows of `customers` (sorted ids) from `from` to `to` page by page with `read`,
/// and gives each customer with rows its merged total.
fn walk_customers(
    store: &Store,
    customers: &[&str],
    (from, to): (NaiveDate, NaiveDate),
    read: ReadPage,
    turn: &Turn,
    mut finish_customer: impl FnMut(String, DayStats),
) -> Result<(), WalkError> {
    for chunk in customers.chunks(customers_per_walk(from, to)) {
        let mut merge = Merge::default();
        let mut after: Option<(String, NaiveDate)> = None;
        loop {
            turn.check()?;
            let rows = read(
                store,
                chunk,
                from,
                to,
                after
                    .as_ref()
                    .map(|(customer, day)| (customer.as_str(), *day)),
                ROWS_PER_READ,
            )?;
            let last_page = rows.len() < ROWS_PER_READ;
            for (customer, day, stats) in rows {
                // The previous row (`after`) closes its customer when this one is another's.
                if let Some((done, _)) = after.take_if(|(done, _)| *done != customer) {
                    finish_customer(done, merge.finish());
                }
                merge.add(stats);
                after = Some((customer, day));
            }
            if last_page {
                break;
            }
        }
        if let Some((done, _)) = after {
            finish_customer(done, merge.finish());
        }
    }
    Ok(())
}

/// `GET /customers`: the total of every customer of `customers` (sorted ids) with requests in
/// `range`, ranked and paged as `page` says. Ranked by a count, the uptime or the average
/// latency, the customers are ranked from their rows' counts alone (no latency read or
/// merged), and only the customers of the page get their whole totals; ranked by the median
/// or p99, every customer's latencies are merged.
pub fn customer_list(
    store: &Store,
    customers: &[&str],
    range: &RequestedRange,
    extra: &PercentileList,
    page: &ListPage,
    turn: &Turn,
) -> Result<CustomerList, WalkError> {
    let to = resolve_to(store, range)?;
    let window = usize::try_from(page.offset + page.limit).unwrap_or(usize::MAX);
    let mut heap: BinaryHeap<Ranked> = BinaryHeap::with_capacity(window.min(4096) + 1);
    let mut count = 0u64;
    let by_counts = !matches!(page.sort, SortField::MedianLatency | SortField::P99Latency);
    let read: ReadPage = match by_counts {
        true => Store::day_counts_by_customer,
        false => Store::days_by_customer,
    };
    let no_extra: &[(String, f64)] = &[];
    let percentiles = if by_counts { no_extra } else { &extra.0[..] };
    walk_customers(
        store,
        customers,
        (range.from, to),
        read,
        turn,
        |customer, merged| {
            if merged.total() == 0 {
                return;
            }
            count += 1;
            let entry = CustomerTotal {
                customer_id: customer,
                total: merged.summary_with_percentiles(percentiles),
            };
            heap.push(Ranked::new(entry, page));
            if heap.len() > window {
                heap.pop();
            }
        },
    )?;
    let ranked = heap.into_sorted_vec();
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let mut listed: Vec<CustomerTotal> = ranked
        .into_iter()
        .skip(offset)
        .map(|ranked| ranked.entry)
        .collect();
    if by_counts && !listed.is_empty() {
        // The page's customers, whole: their latencies merged for the median, the p99 and any
        // `percentiles=`.
        let mut ids: Vec<&str> = listed.iter().map(|c| c.customer_id.as_str()).collect();
        ids.sort_unstable();
        let mut totals = std::collections::HashMap::new();
        walk_customers(
            store,
            &ids,
            (range.from, to),
            Store::days_by_customer,
            turn,
            |customer, merged| {
                totals.insert(customer, merged.summary_with_percentiles(&extra.0));
            },
        )?;
        for entry in &mut listed {
            if let Some(total) = totals.remove(&entry.customer_id) {
                entry.total = total;
            }
        }
    }
    Ok(CustomerList {
        from: range.from,
        to,
        sort: page.sort.name(),
        order: if page.descending { "desc" } else { "asc" },
        limit: page.limit,
        offset: page.offset,
        count,
        customers: listed,
    })
}

/// Why ranking a part of the copies failed.
#[derive(Debug, thiserror::Error)]
enum RankError {
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error(transparent)]
    Walk(#[from] WalkError),
    #[error("a thread ranking customers panicked")]
    Panicked,
}

impl From<RankError> for ApiError {
    fn from(error: RankError) -> Self {
        match error {
            RankError::Walk(walk) => walk.into(),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

/// `work` on each of `parts`, each on a thread of its own; a thread that panicked gives
/// [`RankError::Panicked`].
fn on_threads<P: Send, R: Send>(
    parts: impl Iterator<Item = P>,
    work: impl Fn(P) -> Result<R, RankError> + Sync,
) -> Vec<Result<R, RankError>> {
    let work = &work;
    std::thread::scope(|scope| {
        let running: Vec<_> = parts.map(|part| scope.spawn(move || work(part))).collect();
        running
            .into_iter()
            .map(|thread| thread.join().unwrap_or(Err(RankError::Panicked)))
            .collect()
    })
}

/// The top `page.offset + page.limit` of `copies` over `from..=to` as `page` ranks them, best
/// last, and how many of them have requests there.
fn rank_copies(
    copies: &[(&str, Arc<CustomerRows>)],
    from: NaiveDate,
    to: NaiveDate,
    extra: &PercentileList,
    page: &ListPage,
    turn: &Turn,
) -> Result<(Vec<Ranked>, u64), RankError> {
    let window = usize::try_from(page.offset + page.limit).unwrap_or(usize::MAX);
    let mut heap: BinaryHeap<Ranked> = BinaryHeap::with_capacity(window.min(4096) + 1);
    let mut count = 0u64;
    let by_counts = !matches!(page.sort, SortField::MedianLatency | SortField::P99Latency);
    let mut days = Vec::new();
    for (i, (customer, rows)) in copies.iter().enumerate() {
        if i % 512 == 0 {
            turn.check()?;
        }
        days.clear();
        for at in rows.days.range(from, Some(to)) {
            days.push(rows.days.get(at)?);
        }
        let counts = merged_counts_of_packed(&days);
        if counts.total() == 0 {
            continue;
        }
        count += 1;
        let total = if by_counts {
            counts.summary_with(None, None)
        } else {
            merged_summary_of_packed(&days, &extra.0)?
        };
        heap.push(Ranked::new(
            CustomerTotal {
                customer_id: (*customer).to_string(),
                total,
            },
            page,
        ));
        if heap.len() > window {
            heap.pop();
        }
    }
    Ok((heap.into_vec(), count))
}

/// `GET /customers` from the row cache's copies of every customer (`copies`, sorted by id,
/// each current at the version the request saw): the same answer as [`customer_list`], without
/// reading the database. Ranked by a count, the uptime or the average latency, only the page's
/// customers get their latencies merged.
pub fn customer_list_from_copies(
    copies: &[(&str, Arc<CustomerRows>)],
    range: &RequestedRange,
    extra: &PercentileList,
    page: &ListPage,
    turn: &Turn,
) -> Result<CustomerList, ApiError> {
    // The range's last day when not given: the last day any customer has data on, from `from`
    // on (as `Store::last_day_from` reads it).
    let to = range.to.unwrap_or_else(|| {
        copies
            .iter()
            .filter_map(|(_, rows)| {
                let days = rows.days.range(range.from, None);
                (!days.is_empty()).then(|| rows.days.date(days.end - 1))
            })
            .max()
            .unwrap_or(range.from)
    });
    let window = usize::try_from(page.offset + page.limit).unwrap_or(usize::MAX);
    let by_counts = !matches!(page.sort, SortField::MedianLatency | SortField::P99Latency);
    // The customers in as many parts as there are cores, each ranked on a thread of its own
    // (merging latencies is the cost: ranking a year by p99 takes about twice as long on one),
    // then the parts' tops ranked together.
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 4);
    let per_part = copies.len().div_ceil(threads).max(1);
    let parts = on_threads(copies.chunks(per_part), |part| {
        rank_copies(part, range.from, to, extra, page, turn)
    });
    let mut heap: BinaryHeap<Ranked> = BinaryHeap::with_capacity(window.min(4096) + 1);
    let mut count = 0u64;
    for part in parts {
        let (ranked, counted) = part?;
        count += counted;
        for entry in ranked {
            heap.push(entry);
            if heap.len() > window {
                heap.pop();
            }
        }
    }
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let mut listed: Vec<CustomerTotal> = heap
        .into_sorted_vec()
        .into_iter()
        .skip(offset)
        .map(|ranked| ranked.entry)
        .collect();
    if by_counts {
        // The page's customers, whole: their latencies merged for the median, the p99 and any
        // `percentiles=`; a few busy customers' years can take a while, so on every core too.
        let per_part = listed.len().div_ceil(threads).max(1);
        let merged = on_threads(
            listed.chunks_mut(per_part),
            |part| -> Result<(), RankError> {
                let mut days = Vec::new();
                for entry in part {
                    let found =
                        copies.binary_search_by(|(id, _)| (*id).cmp(entry.customer_id.as_str()));
                    let Ok(at) = found else {
                        continue;
                    };
                    let rows = &copies[at].1;
                    days.clear();
                    for i in rows.days.range(range.from, Some(to)) {
                        days.push(rows.days.get(i)?);
                    }
                    entry.total = merged_summary_of_packed(&days, &extra.0)?;
                }
                Ok(())
            },
        );
        for part in merged {
            part?;
        }
    }
    Ok(CustomerList {
        from: range.from,
        to,
        sort: page.sort.name(),
        order: if page.descending { "desc" } else { "asc" },
        limit: page.limit,
        offset: page.offset,
        count,
        customers: listed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At most FLEET_WALKS turns at once; a request waits FLEET_QUEUE_WAIT for one, then gives
    /// up; a turn ended frees its place; a turn past its deadline stops its walk.
    #[test]
    fn turns_are_limited_waited_for_and_timed() {
        actix_web::rt::System::new().block_on(async {
            let gate = FleetGate::default();
            let mut held = Vec::new();
            for _ in 0..FLEET_WALKS {
                held.push(gate.turn().await.expect("a free turn"));
            }
            let started = Instant::now();
            assert!(gate.turn().await.is_none(), "every turn is taken");
            assert!(started.elapsed() >= FLEET_QUEUE_WAIT);
            assert!(held[0].check().is_ok(), "within its deadline");
            held.pop();
            let turn = gate.turn().await.expect("a turn freed");
            let late = Turn {
                deadline: Instant::now() - Duration::from_millis(1),
                ..turn
            };
            assert!(matches!(late.check(), Err(WalkError::TooSlow)));
        });
    }

    #[test]
    fn a_walk_reads_one_page_unless_a_customer_alone_has_more_days() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
        assert_eq!(
            customers_per_walk(day(2024, 10, 10), day(2024, 10, 10)),
            256
        );
        assert_eq!(customers_per_walk(day(2024, 10, 10), day(2024, 11, 9)), 66);
        assert_eq!(customers_per_walk(day(2023, 11, 11), day(2024, 11, 9)), 5);
        assert_eq!(customers_per_walk(day(2014, 1, 1), day(2024, 1, 1)), 1);
        assert_eq!(customers_per_walk(day(2024, 1, 2), day(2024, 1, 1)), 256);
    }
}
