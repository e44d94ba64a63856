//! logstats-api: an actix-web service answering per-customer stats from the stored daily rows.

pub mod answers;
pub mod auth;
pub mod configuration;
pub mod domain;
pub mod error;
pub mod fleet;
pub mod freshness;
pub mod metrics;
pub mod openapi;
pub mod packed;
pub mod refusals;
pub mod routes;
pub mod rows;
pub mod server;
pub mod service;
pub mod startup;
pub mod telemetry;
pub use logstats_shared::tokens;
