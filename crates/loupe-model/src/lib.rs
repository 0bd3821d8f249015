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

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1–12, `day` 1–31).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub use ids::{IdError, SpanId, TraceId};
pub use span::{Span, SpanEvent, SpanLink, SpanStatus, TraceStatus, TraceSummary};

/// The project a trace belongs to when the sender names none.
pub const DEFAULT_PROJECT: &str = "default";
