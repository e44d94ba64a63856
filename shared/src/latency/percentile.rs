//! numpy's linear percentile over (value, count) entries, and the rounding every answer gets.

/// numpy's default percentile (method "linear") of `count` values given as ascending
/// (value in microseconds, count) entries, for each of `ps` (0-100), in seconds rounded to the
/// microsecond: with h = (count - 1) p / 100, x[floor h] + (h - floor h)(x[floor h + 1] -
/// x[floor h]), computed in seconds the way numpy's `_lerp` does.
pub fn exact_percentiles(
    entries: impl Iterator<Item = (u64, u64)>,
    count: u64,
    ps: &[f64],
) -> Vec<Option<f64>> {
    if count == 0 {
        return vec![None; ps.len()];
    }
    let (positions, ranks) = ranks_needed(count, ps);
    let mut values = Vec::with_capacity(ranks.len());
    let mut seen = 0u64; // values before the current entry
    let mut last = 0u64;
    let mut wanted = ranks.iter().peekable();
    for (value, n) in entries {
        last = value;
        while wanted
            .next_if(|&&rank| rank < seen.saturating_add(n))
            .is_some()
        {
            values.push(value);
        }
        seen = seen.saturating_add(n);
        if wanted.peek().is_none() {
            break;
        }
    }
    // Counts that overstate the entries: answer with the largest value rather than panic.
    values.resize(ranks.len(), last);
    interpolated(&positions, &ranks, &values, count)
}

/// [`exact_percentiles`] of `entries` in any order, a value possibly in several of them (the
/// entries of many days, not merged): the values at the ranks needed are found by counting the
/// entries into buckets of value and going on only with the buckets that hold a wanted rank,
/// not by sorting them all. Ranking a year of 10,000 customers by p99 sorted each customer's
/// ~1,000 entries: a third of that request's time. `entries` is reordered.
pub fn selected_percentiles(
    entries: &mut [(u64, u64)],
    count: u64,
    ps: &[f64],
) -> Vec<Option<f64>> {
    if count == 0 {
        return vec![None; ps.len()];
    }
    let (positions, ranks) = ranks_needed(count, ps);
    // Counts that overstate the entries: ranks past them take the largest value, as above.
    let held = entries.iter().fold(0u64, |n, e| n.saturating_add(e.1));
    let within: Vec<u64> = ranks
        .iter()
        .map(|&rank| rank.min(held.saturating_sub(1)))
        .collect();
    let mut values = Vec::with_capacity(ranks.len());
    if held > 0 {
        values_at_ranks(entries, &within, &mut values);
    }
    values.resize(ranks.len(), 0);
    interpolated(&positions, &ranks, &values, count)
}

/// Entries at most this many are sorted and read off, not counted into buckets.
const SELECT_SORTED: usize = 64;

/// Buckets the values are counted into at each step of [`values_at_ranks`].
const SELECT_BUCKETS: usize = 512;

/// Pushes to `out` the value at each of `ranks` (ascending, each below the values `entries`
/// count), in order. Counts the entries into [`SELECT_BUCKETS`] equal ranges of their values,
/// keeps the entries of the buckets that hold a wanted rank and goes on with those alone, their
/// ranks moved down by the entries left out below them; each step narrows the values' span by
/// the number of buckets, so a few steps reach one value or few entries, which are sorted.
fn values_at_ranks(entries: &mut [(u64, u64)], ranks: &[u64], out: &mut Vec<u64>) {
    if ranks.is_empty() {
        return;
    }
    if entries.len() <= SELECT_SORTED {
        entries.sort_unstable_by_key(|e| e.0);
        let mut seen = 0u64;
        let mut wanted = ranks.iter().peekable();
        for &(value, n) in entries.iter() {
            seen = seen.saturating_add(n);
            while wanted.next_if(|&&rank| rank < seen).is_some() {
                out.push(value);
            }
        }
        return;
    }
    let (min, max) = entries
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), e| (lo.min(e.0), hi.max(e.0)));
    let span = max - min;
    if span == 0 {
        out.extend(std::iter::repeat_n(min, ranks.len()));
        return;
    }
    let shift = (u64::BITS - span.leading_zeros()).saturating_sub(SELECT_BUCKETS.trailing_zeros());
    let bucket = |value: u64| ((value - min) >> shift) as usize;
    let mut weights = [0u64; SELECT_BUCKETS];
    for &(value, n) in entries.iter() {
        weights[bucket(value)] = weights[bucket(value)].saturating_add(n);
    }
    // The wanted buckets, ascending, each with its ranks moved down by what the buckets below
    // hold. Their entries are moved, in place, into one stretch each at the front, and each
    // stretch goes on alone: its values span less than the bucket's width, so every step
    // narrows, however many ranks are wanted, and nothing is allocated beyond the ranks (a copy
    // of the wanted entries per step could hold them several times over).
    const NOT_WANTED: u16 = u16::MAX;
    let mut group_of = [NOT_WANTED; SELECT_BUCKETS];
    let mut groups: Vec<Vec<u64>> = Vec::new();
    let (mut at, mut below) = (0, 0u64);
    for &rank in ranks {
        while at + 1 < SELECT_BUCKETS && rank >= below.saturating_add(weights[at]) {
            below = below.saturating_add(weights[at]);
            at += 1;
        }
        if group_of[at] == NOT_WANTED {
            group_of[at] = groups.len() as u16;
            groups.push(Vec::new());
        }
        if let Some(group) = groups.last_mut() {
            group.push(rank - below);
        }
    }
    // The wanted entries (few, most of the time) to the front, the others left where they fall.
    let group = |entry: &(u64, u64)| group_of[bucket(entry.0)];
    let mut wanted = 0;
    for i in 0..entries.len() {
        if group(&entries[i]) != NOT_WANTED {
            entries.swap(wanted, i);
            wanted += 1;
        }
    }
    let entries = &mut entries[..wanted];
    // Then each group's into a stretch of its own, in order (as an in-place radix sort moves
    // them).
    let mut starts = vec![0usize; groups.len() + 1];
    for entry in entries.iter() {
        starts[usize::from(group(entry)) + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut next = starts.clone();
    for slot in 0..groups.len() {
        while next[slot] < starts[slot + 1] {
            let home = usize::from(group(&entries[next[slot]]));
            if home == slot {
                next[slot] += 1;
            } else {
                entries.swap(next[slot], next[home]);
                next[home] += 1;
            }
        }
    }
    for (group, ranks) in groups.iter().enumerate() {
        values_at_ranks(&mut entries[starts[group]..starts[group + 1]], ranks, out);
    }
}

/// Per percentile of `ps`, the rank below it and the fraction towards the next (numpy's h =
/// (count - 1) p / 100); and every rank whose value is needed, ascending, once.
fn ranks_needed(count: u64, ps: &[f64]) -> (Vec<(u64, f64)>, Vec<u64>) {
    let positions: Vec<(u64, f64)> = ps
        .iter()
        .map(|&p| {
            let h = (count - 1) as f64 * (p / 100.0);
            let below = (h.floor() as u64).min(count - 1);
            (below, h - h.floor())
        })
        .collect();
    let mut ranks: Vec<u64> = positions
        .iter()
        .flat_map(|&(below, _)| [below, (below + 1).min(count - 1)])
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    (positions, ranks)
}

/// The percentiles at `positions` from `values`, the values at `ranks` (as [`ranks_needed`]
/// gives them), interpolated as numpy's `_lerp` does and rounded to the microsecond.
fn interpolated(
    positions: &[(u64, f64)],
    ranks: &[u64],
    values: &[u64],
    count: u64,
) -> Vec<Option<f64>> {
    let value_at = |rank: u64| values[ranks.partition_point(|&r| r < rank)];
    positions
        .iter()
        .map(|&(below, t)| {
            let a = value_at(below) as f64 / 1e6;
            let b = value_at((below + 1).min(count - 1)) as f64 / 1e6;
            let diff = b - a;
            let value = if t >= 0.5 {
                b - diff * (1.0 - t)
            } else {
                a + diff * t
            };
            Some(round_to_micros(value))
        })
        .collect()
}

/// Seconds rounded to the microsecond.
pub fn round_to_micros(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e6
}
