//! The ingest job's integration tests, as one test binary (one link of the whole workspace
//! instead of one per file): each former `ingest/tests/<name>.rs` is the module `<name>` here,
//! sharing `support` (the former `ingest/tests/common/`). Run one file's tests with
//! `cargo test -p logstats-ingest --test ingest <name>::`.

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
