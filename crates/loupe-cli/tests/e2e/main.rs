//! End-to-end tests of `loupe serve`: real OpenTelemetry exporters, raw OTLP bodies, the JSON
//! API, the CLI, limits, overload, and durability across SIGTERM and SIGKILL.
//!
//! One test binary, one file per area; `common` is the harness shared with `postgres.rs`.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod annotations;
mod api;
mod cli;
mod conventions;
mod disk_full;
mod durability;
mod helpers;
mod otlp;
mod pricing;
