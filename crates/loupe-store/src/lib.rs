//! The storage contract every Loupe backend implements.
//!
//! [`TraceStore`] is what the ingest path and the readers see; backends (SQLite, later
//! PostgreSQL) live in their own crates. Spans travel to a store as [`EncodedSpan`]s: the indexed
//! columns lifted out, everything else serialized once into a compressed body ([`SpanBody`]),
//! so the single writer only binds and inserts.

mod encode;
mod error;
mod query;

use std::sync::Arc;

use async_trait::async_trait;
use loupe_model::normalize::Derived;
use loupe_model::{SpanStatus, TraceId, TraceSummary};

pub use encode::{
    BodyPart, EncodedSpan, SpanBody, decode_bodies, decode_body, decode_body_at, encode_span,
    encode_spans,
};
pub use error::{ErrorKind, StoreError};
pub use query::{
    Cursor, GroupKey, SessionPage, SessionQuery, SessionSummary, StatsGroup, StatsQuery, TracePage,
    TraceQuery,
};

/// Derives a span's canonical fields from its stored body and start time (ns).
pub type ReindexFn = dyn Fn(&SpanBody, u64) -> Derived + Send + Sync;

/// Prices a span from its stored columns and start time (ns).
pub type RepriceFn = dyn Fn(&Derived, u64) -> Option<f64> + Send + Sync;

/// How [`TraceStore::recompute`] re-derives stored spans.
#[derive(Clone)]
pub enum Recompute {
    /// Re-run the normalizers (and pricing) over each span's stored attributes.
    Reindex(Arc<ReindexFn>),
    /// Recompute only the cost, from the stored model and token counts.
    Reprice(Arc<RepriceFn>),
}

/// What a recompute changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecomputeStats {
    /// Spans visited.
    pub spans: u64,
    /// Spans whose derived columns changed.
    pub changed: u64,
    /// Traces whose roll-ups were recomputed.
    pub traces: u64,
}

/// What a committed write changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Spans that were new.
    pub inserted: u64,
    /// Spans already stored under the same (trace id, span id): left as they were.
    pub duplicates: u64,
}

/// A span as read back from a store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSpan {
    /// Span id.
    pub span_id: loupe_model::SpanId,
    /// Parent span id, `None` for a root.
    pub parent_id: Option<loupe_model::SpanId>,
    /// Name.
    pub name: String,
    /// Canonical span type.
    pub span_type: String,
    /// Start, ns since the epoch.
    pub start_ns: u64,
    /// End, ns since the epoch.
    pub end_ns: u64,
    /// Status.
    pub status: SpanStatus,
    /// Status message.
    pub status_message: String,
    /// Model, when the span is an LLM call.
    pub model: Option<String>,
    /// Input tokens.
    pub input_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Total tokens.
    pub total_tokens: Option<u64>,
    /// Provider.
    pub provider: Option<String>,
    /// Cached input tokens.
    pub cache_read_tokens: Option<u64>,
    /// Input tokens written to a cache.
    pub cache_write_tokens: Option<u64>,
    /// Reasoning tokens.
    pub reasoning_tokens: Option<u64>,
    /// Cost, US dollars.
    pub cost_usd: Option<f64>,
    /// Attributes, events, links, resource.
    pub body: SpanBody,
}

/// An event for a span, received apart from the span (an OTLP log record).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEvent {
    /// Trace.
    pub trace_id: TraceId,
    /// Span.
    pub span_id: loupe_model::SpanId,
    /// The event (log attributes, with the body under `body`).
    pub event: loupe_model::SpanEvent,
}

/// Spans found by [`TraceStore::list_spans`], with their trace ids, and where the next page
/// starts (start ns, store sequence) when there may be more.
pub type SpanPage = (Vec<(TraceId, StoredSpan)>, Option<(i64, i64)>);

/// A trace with all its spans, in start order.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceDetail {
    /// The roll-up.
    pub summary: TraceSummary,
    /// Every span.
    pub spans: Vec<StoredSpan>,
}

/// A durable trace store.
///
/// Writes are idempotent: a span is keyed by (trace id, span id) and a span already stored is
/// left unchanged, so retried batches change nothing. Spans of a trace may arrive in any order
/// and in any number of batches; the trace's [`TraceSummary`] stays right.
#[async_trait]
pub trait TraceStore: Send + Sync + 'static {
    /// Stores spans in one transaction. Returns only after the transaction is durable on disk;
    /// on error nothing of the batch is stored.
    async fn write_spans(&self, spans: Vec<EncodedSpan>) -> Result<WriteOutcome, StoreError>;

    /// Traces matching `query`, newest first.
    async fn list_traces(&self, query: TraceQuery) -> Result<TracePage, StoreError>;

    /// One trace with its spans, or `None` if unknown.
    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<TraceDetail>, StoreError>;

    /// Aggregates over matching traces (or their spans), per group.
    async fn stats(&self, query: StatsQuery) -> Result<Vec<StatsGroup>, StoreError>;

    /// Spans matching a filter (span fields about the span, trace fields about its trace),
    /// newest first, with their trace ids.
    async fn list_spans(
        &self,
        filter: Option<loupe_query::Expr>,
        limit: usize,
        before: Option<(i64, i64)>,
    ) -> Result<SpanPage, StoreError>;

    /// Sessions, most recently active first.
    async fn list_sessions(&self, query: SessionQuery) -> Result<SessionPage, StoreError>;

    /// One session's traces in start order (at most `limit`), or `None` if unknown.
    async fn get_session(
        &self,
        session_id: String,
        limit: usize,
    ) -> Result<Option<(SessionSummary, Vec<TraceSummary>)>, StoreError>;

    /// Stores span events that arrived separately (OTLP log records with a span context, such as
    /// GenAI message events). They join their span's events when read, whichever comes first.
    /// Returns after the write is durable.
    async fn write_events(&self, events: Vec<EncodedEvent>) -> Result<u64, StoreError>;

    /// Re-derives the canonical columns of every stored span and the roll-ups of their traces,
    /// in small transactions that let ingest go on.
    async fn recompute(&self, how: Recompute) -> Result<RecomputeStats, StoreError>;
}
