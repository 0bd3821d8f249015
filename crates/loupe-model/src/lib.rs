//! Loupe's canonical trace model.
//!
//! Every ingest door (OTLP over HTTP or gRPC, the MLflow REST API, the Rust SDK) turns what it
//! receives into these types; every store and every reader works with them. The crate does no
//! I/O: it holds identifiers ([`TraceId`], [`SpanId`]), the [`Span`] as ingested, the roll-up
//! rules of a [`TraceSummary`], and [`normalize`], which lifts the LLM fields (span type, model,
//! token usage, inputs and outputs) out of the attribute conventions clients use.

mod ids;
pub mod normalize;
pub mod pricing;
mod span;

pub use ids::{IdError, SpanId, TraceId};
pub use span::{Span, SpanEvent, SpanLink, SpanStatus, TraceStatus, TraceSummary};

/// The project a trace belongs to when the sender names none.
pub const DEFAULT_PROJECT: &str = "default";
