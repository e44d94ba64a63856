//! The ingest job's integration tests, as one test binary (one link of the whole workspace
//! instead of one per file): each former `ingest/tests/<name>.rs` is the module `<name>` here,
//! sharing `support` (the former `ingest/tests/common/`). Run one file's tests with
//! `cargo test -p logstats-ingest --test ingest <name>::`.
//!
//! A module is named for what it tests, so some share a name with a file of `ingest/src/`
//! (`backfill`, `cluster`, `inputs`, `metrics`, `push`) or of `api/tests/api/` (`help`,
//! `metrics`): the same topic, seen from the running binary.

mod support;

mod backfill;
mod cluster;
mod continuous;
mod exact;
mod help;
mod hostile_database;
mod hostile_files;
mod hostile_input;
mod inputs;
mod lifecycle;
mod metrics;
mod mutated;
mod pipeline;
mod push;
mod recipes;
mod staged;
