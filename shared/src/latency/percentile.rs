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
    // (rank below, fraction) per percentile.
    let positions: Vec<(u64, f64)> = ps
        .iter()
        .map(|&p| {
            let h = (count - 1) as f64 * (p / 100.0);
            let below = (h.floor() as u64).min(count - 1);
            (below, h - h.floor())
        })
        .collect();
    // Every rank needed, ascending, read off in one pass over the entries.
    let mut ranks: Vec<u64> = positions
        .iter()
        .flat_map(|&(below, _)| [below, (below + 1).min(count - 1)])
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
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
