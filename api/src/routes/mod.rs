//! One module per endpoint.

mod dashboard;
mod health;
mod stats;

pub use dashboard::{dashboard_asset, dashboard_page};
pub use health::health;
pub use stats::{customer_stats, CustomerStats, DayEntry, StatsQuery};
