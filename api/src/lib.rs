//! logstats-api: an actix-web service answering per-customer stats from the stored daily rows.
//!
//! Public: what the `logstats-api` binary (`main.rs`) and the ingest tests (which start the API
//! in-process through [`startup::run`]) use. Every other module is the crate's own.

pub mod auth;
pub mod configuration;
pub mod startup;
pub mod telemetry;
pub use logstats_shared::tokens;

pub(crate) mod answers;
pub(crate) mod domain;
pub(crate) mod error;
pub(crate) mod fleet;
pub(crate) mod freshness;
pub(crate) mod metrics;
pub(crate) mod openapi;
pub(crate) mod packed;
pub(crate) mod refusals;
pub(crate) mod routes;
pub(crate) mod rows;
pub(crate) mod server;
pub(crate) mod service;
