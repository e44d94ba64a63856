//! The API's integration tests, as one test binary (one link of the whole workspace instead of
//! one per file): each former `api/tests/<name>.rs` is the module `<name>` here, sharing `support`.
//! Run one file's tests with `cargo test -p logstats-api --test api <name>::`.

mod support;

mod bounds;
mod dashboard;
mod dashboard_tokens;
mod docs;
mod errors;
mod fleet;
mod freshness;
mod health;
mod help;
mod malformed;
mod metrics;
mod openapi;
mod ready;
mod replicas;
mod retention;
mod roles;
mod schemathesis;
mod secrets;
mod stats;
mod tokens;
mod upgrade;
