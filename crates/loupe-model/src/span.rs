//! Spans as ingested, and the trace roll-up rules.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{SpanId, TraceId};

/// A span's status, as OTLP defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SpanStatus {
    /// No status was set (the OTel default for a span that did not fail).
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed.
    Error,
}

impl SpanStatus {
    /// The OTLP status code (0 unset, 1 ok, 2 error).
    pub fn code(self) -> i64 {
        match self {
            SpanStatus::Unset => 0,
            SpanStatus::Ok => 1,
            SpanStatus::Error => 2,
        }
    }

    /// From an OTLP status code; unknown codes are treated as unset.
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => SpanStatus::Ok,
            2 => SpanStatus::Error,
            _ => SpanStatus::Unset,
        }
    }

    /// `OK`, `ERROR` or `UNSET`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanStatus::Unset => "UNSET",
            SpanStatus::Ok => "OK",
            SpanStatus::Error => "ERROR",
        }
    }
}

/// A trace's status is reported with the same three values as a span's.
pub type TraceStatus = SpanStatus;

/// A timed event on a span (exceptions are events named `exception`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    /// Event name.
    pub name: String,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Event attributes, as JSON.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// A link from a span to another span, possibly in another trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanLink {
    /// Linked trace.
    pub trace_id: TraceId,
    /// Linked span.
    pub span_id: SpanId,
    /// Link attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// A span as ingested: the wire data, attributes kept whole, plus the canonical fields derived
/// from them by [`crate::normalize`].
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
    /// The parent span; `None` for a root.
    pub parent_id: Option<SpanId>,
    /// Span name.
    pub name: String,
    /// OTLP span kind (0 unspecified … 5 consumer).
    pub kind: i32,
    /// Start, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// End, nanoseconds since the Unix epoch (never before the start).
    pub end_ns: u64,
    /// Status code.
    pub status: SpanStatus,
    /// Status message (empty when none).
    pub status_message: String,
    /// Every attribute the client sent, converted to JSON.
    pub attributes: Map<String, Value>,
    /// Span events.
    pub events: Vec<SpanEvent>,
    /// Span links.
    pub links: Vec<SpanLink>,
    /// Attributes of the resource that produced the span (service name, SDK …).
    pub resource: Map<String, Value>,
    /// Instrumentation scope name and version.
    pub scope: Option<(String, String)>,
    /// The project the trace is filed under.
    pub project: String,
    /// Canonical fields derived from the attributes.
    pub derived: crate::normalize::Derived,
}

impl Span {
    /// Duration in nanoseconds (0 if the clock went backwards).
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// Whether this span is the root of its trace.
    pub fn is_root(&self) -> bool {
        self.parent_id.is_none()
    }
}

/// The roll-up of a trace's spans, kept by the store and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// Trace id.
    pub trace_id: TraceId,
    /// Project.
    pub project: String,
    /// Name of the root span (of the earliest span seen while the root is missing).
    pub name: String,
    /// Trace status: the root's explicit status, else `ERROR` if any span failed, else `UNSET`.
    pub status: TraceStatus,
    /// Earliest span start, ns.
    pub start_ns: u64,
    /// Latest span end, ns.
    pub end_ns: u64,
    /// Distinct spans stored.
    pub span_count: u64,
    /// Spans with status `ERROR`.
    pub error_count: u64,
    /// Sum of input tokens over all spans.
    pub input_tokens: u64,
    /// Sum of output tokens over all spans.
    pub output_tokens: u64,
    /// Sum of total tokens over all spans.
    pub total_tokens: u64,
    /// Sum of the spans' cost, US dollars.
    pub cost_usd: f64,
    /// Session (conversation) the trace belongs to.
    pub session_id: Option<String>,
    /// End user the trace served.
    pub user_id: Option<String>,
    /// Whether the root span has arrived.
    pub has_root: bool,
    /// User-set, mutable tags.
    pub tags: Map<String, Value>,
    /// Immutable metadata set at ingest (service name, SDK, convention).
    pub metadata: Map<String, Value>,
    /// What a client that reports traces itself (MLflow's StartTraceV3) said about the trace
    /// beyond tags and metadata: its state, request time, duration, previews, request id.
    #[serde(default)]
    pub info: Map<String, Value>,
}

impl TraceSummary {
    /// Duration from the earliest start to the latest end, ns.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// The status rule, in one place: the root's explicit status wins; without one, any failed
    /// span makes the trace `ERROR`.
    pub fn status_from(root_status: Option<SpanStatus>, error_count: u64) -> TraceStatus {
        match root_status {
            Some(SpanStatus::Ok) => SpanStatus::Ok,
            Some(SpanStatus::Error) => SpanStatus::Error,
            _ if error_count > 0 => SpanStatus::Error,
            _ => SpanStatus::Unset,
        }
    }
}
