//! One module per endpoint.

mod health;
mod stats;

pub use health::health;
pub use stats::{customer_stats, CustomerStats, DayEntry, StatsQuery};
