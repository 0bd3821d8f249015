//! What the JSON API answers, as types: each response is one of these serialized, and the
//! OpenAPI document (`doc.rs`) is derived from the same types, so the two cannot drift.

use loupe_model::normalize::{self, Document, Exception, Message, ToolCall};
use loupe_model::pricing::PriceBook;
use loupe_model::{Assessment, SpanLink, TraceId, TraceSummary};
use loupe_store::{SessionSummary, StatsGroup, StoredSpan};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

fn ns_to_ms(ns: u64) -> u64 {
    ns / 1_000_000
}

/// A trace's summary: its roll-ups over its spans and what the client reported about it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Trace {
    /// 32 hex digits.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub trace_id: String,
    /// The root span's name.
    pub name: String,
    /// `OK`, `ERROR`, or `UNSET` while no span has said.
    #[schema(example = "OK")]
    pub status: &'static str,
    /// Start, ms since the epoch.
    pub start_time_ms: u64,
    /// End, ms since the epoch.
    pub end_time_ms: u64,
    /// Duration, ms.
    pub duration_ms: u64,
    /// Spans stored.
    pub span_count: u64,
    /// Spans that failed.
    pub error_count: u64,
    /// Tokens read, over the trace's LLM calls.
    pub input_tokens: u64,
    /// Tokens written.
    pub output_tokens: u64,
    /// Input and output tokens.
    pub total_tokens: u64,
    /// Cost in US dollars from the price book; 0 where no span was priced.
    pub cost_usd: f64,
    /// The conversation it belongs to.
    pub session_id: Option<String>,
    /// The end user.
    pub user_id: Option<String>,
    /// Project (MLflow experiment).
    pub project: String,
    /// Tags (MLflow `tags`), string values.
    #[schema(value_type = Object)]
    pub tags: Map<String, Value>,
    /// Metadata the client attached (MLflow `trace_metadata`).
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

impl From<&TraceSummary> for Trace {
    fn from(t: &TraceSummary) -> Self {
        Trace {
            trace_id: t.trace_id.to_string(),
            name: t.name.clone(),
            status: t.status.as_str(),
            start_time_ms: ns_to_ms(t.start_ns),
            end_time_ms: ns_to_ms(t.end_ns),
            duration_ms: ns_to_ms(t.duration_ns()),
            span_count: t.span_count,
            error_count: t.error_count,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            total_tokens: t.total_tokens,
            cost_usd: t.cost_usd,
            session_id: t.session_id.clone(),
            user_id: t.user_id.clone(),
            project: t.project.clone(),
            tags: t.tags.clone(),
            metadata: t.metadata.clone(),
        }
    }
}

/// An event recorded on a span.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SpanEvent {
    /// Name (`exception`, `gen_ai.user.message` …).
    pub name: String,
    /// When, ns since the epoch.
    pub time_ns: u64,
    /// Its attributes.
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
}

/// The instrumentation scope that produced a span.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Scope {
    /// Library name.
    pub name: String,
    /// Library version.
    pub version: String,
}

/// One span, with its columns and the LLM view read from its attributes and events.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Span {
    /// 16 hex digits.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub span_id: String,
    /// The parent span; none for the root.
    pub parent_id: Option<String>,
    /// The trace, in span search results (`/api/v1/spans`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Name.
    pub name: String,
    /// LLM, CHAT_MODEL, EMBEDDING, RETRIEVER, RERANKER, TOOL, AGENT, CHAIN, UNKNOWN or a custom
    /// type.
    pub span_type: String,
    /// OTLP span kind.
    pub kind: i32,
    /// Start, ns since the epoch.
    pub start_time_ns: u64,
    /// End, ns since the epoch.
    pub end_time_ns: u64,
    /// Duration, ms.
    pub duration_ms: f64,
    /// `OK`, `ERROR` or `UNSET`.
    pub status: &'static str,
    /// The error message of a failed span.
    pub status_message: String,
    /// The model called.
    pub model: Option<String>,
    /// The provider (`openai`, `anthropic` …).
    pub provider: Option<String>,
    /// Tokens read.
    pub input_tokens: Option<u64>,
    /// Tokens written.
    pub output_tokens: Option<u64>,
    /// Input and output tokens.
    pub total_tokens: Option<u64>,
    /// Input tokens read from the provider's cache.
    pub cache_read_tokens: Option<u64>,
    /// Input tokens written to the provider's cache.
    pub cache_write_tokens: Option<u64>,
    /// Output tokens spent reasoning.
    pub reasoning_tokens: Option<u64>,
    /// Cost in US dollars; none when the model has no price.
    pub cost_usd: Option<f64>,
    /// Why a span with a model and tokens has no cost (`no price for MODEL` …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_missing: Option<String>,
    /// Messages sent to the model.
    pub input_messages: Vec<Message>,
    /// Messages the model produced.
    pub output_messages: Vec<Message>,
    /// Tool calls the model asked for.
    pub tool_calls: Vec<ToolCall>,
    /// Request parameters (temperature, max_tokens …).
    #[schema(value_type = Object)]
    pub request_params: Map<String, Value>,
    /// Documents a retriever returned.
    pub documents: Vec<Document>,
    /// Exceptions recorded on the span.
    pub exceptions: Vec<Exception>,
    /// What the span was given (`mlflow.spanInputs`, `gen_ai.input.messages` …), any JSON.
    #[schema(value_type = Option<Object>)]
    pub inputs: Option<Value>,
    /// What the span produced, any JSON.
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<Value>,
    /// Every attribute the client sent.
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// Events, in time order.
    pub events: Vec<SpanEvent>,
    /// Links to other spans, as sent.
    #[schema(value_type = Vec<Object>)]
    pub links: Vec<SpanLink>,
    /// The OTLP resource's attributes.
    #[schema(value_type = Object)]
    pub resource: Map<String, Value>,
    /// The instrumentation scope.
    pub scope: Option<Scope>,
}

impl Span {
    /// A stored span, with the trace it belongs to when the answer lists spans of many traces.
    pub(crate) fn new(s: StoredSpan, trace_id: Option<TraceId>, prices: &PriceBook) -> Self {
        let view = normalize::view(&s.body.attributes, &s.body.events);
        let cost_missing = s.columns.missing_price(prices);
        let c = s.columns;
        Span {
            span_id: s.span_id.to_string(),
            parent_id: s.parent_id.map(|p| p.to_string()),
            trace_id: trace_id.map(|t| t.to_string()),
            name: s.name,
            span_type: c.span_type,
            kind: s.body.kind,
            start_time_ns: s.start_ns,
            end_time_ns: s.end_ns,
            duration_ms: s.end_ns.saturating_sub(s.start_ns) as f64 / 1e6,
            status: s.status.as_str(),
            status_message: s.status_message,
            model: c.model,
            provider: c.provider,
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            total_tokens: c.total_tokens,
            cache_read_tokens: c.cache_read_tokens,
            cache_write_tokens: c.cache_write_tokens,
            reasoning_tokens: c.reasoning_tokens,
            cost_usd: c.cost_usd,
            cost_missing,
            input_messages: view.input_messages,
            output_messages: view.output_messages,
            tool_calls: view.tool_calls,
            request_params: view.request_params,
            documents: view.documents,
            exceptions: view.exceptions,
            inputs: view.inputs,
            outputs: view.outputs,
            attributes: s.body.attributes,
            events: s
                .body
                .events
                .into_iter()
                .map(|e| SpanEvent {
                    name: e.name,
                    time_ns: e.time_ns,
                    attributes: e.attributes,
                })
                .collect(),
            links: s.body.links,
            resource: s.body.resource,
            scope: s.body.scope.map(|(name, version)| Scope { name, version }),
        }
    }
}

/// `GET /api/v1/traces`: a page of traces.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TracePage {
    /// Newest first, or in the order asked for.
    pub traces: Vec<Trace>,
    /// Pass back as `cursor` for the next page; none on the last.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/traces/{trace_id}`: a whole trace.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TraceDetail {
    /// The summary.
    pub trace: Trace,
    /// Every span, in start order.
    pub spans: Vec<Span>,
    /// Its feedback and expectations.
    pub assessments: Vec<Assessment>,
}

/// `GET /api/v1/spans`: a page of spans.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SpanPage {
    /// Newest first, each with its `trace_id`.
    pub spans: Vec<Span>,
    /// Pass back as `cursor` for the next page; none on the last.
    pub next_cursor: Option<String>,
}

/// A session: the traces of one conversation, rolled up.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Session {
    /// Session id.
    pub session_id: String,
    /// Project of its first trace.
    pub project: String,
    /// The end user.
    pub user_id: Option<String>,
    /// Traces in the session.
    pub trace_count: u64,
    /// Traces with an error.
    pub error_count: u64,
    /// Start of its first trace, ms since the epoch.
    pub first_start_time_ms: u64,
    /// Start of its last trace, ms since the epoch.
    pub last_start_time_ms: u64,
    /// Tokens read.
    pub input_tokens: u64,
    /// Tokens written.
    pub output_tokens: u64,
    /// Input and output tokens.
    pub total_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

impl From<&SessionSummary> for Session {
    fn from(s: &SessionSummary) -> Self {
        Session {
            session_id: s.session_id.clone(),
            project: s.project.clone(),
            user_id: s.user_id.clone(),
            trace_count: s.trace_count,
            error_count: s.error_count,
            first_start_time_ms: ns_to_ms(s.first_start_ns),
            last_start_time_ms: ns_to_ms(s.last_start_ns),
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            total_tokens: s.total_tokens,
            cost_usd: s.cost_usd,
        }
    }
}

/// `GET /api/v1/sessions`: a page of sessions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionPage {
    /// Most recently active first.
    pub sessions: Vec<Session>,
    /// Pass back as `cursor` for the next page; none on the last.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/sessions/{session_id}`: a conversation.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionDetail {
    /// The roll-up.
    pub session: Session,
    /// Its traces, in start order.
    pub traces: Vec<Trace>,
}

/// One group of `GET /api/v1/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatsRow {
    /// The group's value of each `group_by` key (`time`: the bucket's start, ms).
    #[schema(value_type = Object)]
    pub key: Map<String, Value>,
    /// Traces (or spans, grouped by model, provider or span type).
    pub count: u64,
    /// Of them, failed.
    pub error_count: u64,
    /// `error_count / count`.
    pub error_rate: f64,
    /// Median duration, ms.
    pub p50_ms: f64,
    /// 95th percentile of the duration, ms.
    pub p95_ms: f64,
    /// 99th percentile of the duration, ms.
    pub p99_ms: f64,
    /// Tokens read.
    pub input_tokens: u64,
    /// Tokens written.
    pub output_tokens: u64,
    /// Input and output tokens.
    pub total_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

impl StatsRow {
    /// A store group, its key values named by the `group_by` keys asked for.
    pub(crate) fn new(names: &[String], g: &StatsGroup) -> Self {
        StatsRow {
            key: names.iter().cloned().zip(g.key.iter().cloned()).collect(),
            count: g.count,
            error_count: g.error_count,
            error_rate: if g.count == 0 {
                0.0
            } else {
                g.error_count as f64 / g.count as f64
            },
            p50_ms: g.p50_ms,
            p95_ms: g.p95_ms,
            p99_ms: g.p99_ms,
            input_tokens: g.input_tokens,
            output_tokens: g.output_tokens,
            total_tokens: g.total_tokens,
            cost_usd: g.cost_usd,
        }
    }
}

/// `GET /api/v1/stats`: aggregates per group.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Stats {
    /// The keys grouped by, as asked.
    pub group_by: Vec<String>,
    /// Width of a `time` bucket, ms.
    pub bucket_ms: i64,
    /// The groups.
    pub groups: Vec<StatsRow>,
    /// Models of the traces aggregated that used tokens at no cost, and why.
    pub unpriced_models: Vec<UnpricedModel>,
}

/// A model whose tokens carry no cost.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UnpricedModel {
    /// The model, as stored.
    pub model: String,
    /// Its spans.
    pub spans: u64,
    /// Their input tokens.
    pub input_tokens: u64,
    /// Their output tokens.
    pub output_tokens: u64,
    /// Why there is no cost: `no price for MODEL`, a unit other than tokens, or stored before
    /// the book priced it.
    pub reason: String,
}

impl From<loupe_store::UnpricedModel> for UnpricedModel {
    fn from(u: loupe_store::UnpricedModel) -> Self {
        UnpricedModel {
            model: u.model,
            spans: u.spans,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            reason: u.reason,
        }
    }
}

/// `POST /api/v1/traces/{trace_id}/assessments`: what was stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AssessmentList {
    /// The assessments as stored, with their ids.
    pub assessments: Vec<Assessment>,
}

/// `PUT /api/v1/traces/{trace_id}/tags/{key}`: the tag as set.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Tag {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// The query parameters an endpoint takes, as its OpenAPI document lists them: the list a
/// request's parameters are checked against (an unknown one is a 400).
pub(crate) fn known_params<P: utoipa::IntoParams>() -> Vec<String> {
    P::into_params(|| Some(utoipa::openapi::path::ParameterIn::Query))
        .into_iter()
        .map(|p| p.name)
        .collect()
}

// The parameter structs below describe each endpoint's query for the document and for
// `known_params`; the handlers read the values themselves, to answer each mistake precisely.

/// Query parameters of `GET /api/v1/traces`.
#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TraceListParams {
    /// A query in Loupe's filter language, e.g. `status = 'ERROR' AND span.model LIKE 'gpt-4%'
    /// AND start > now - 1d`, or full text: `text ~ 'refund'`. Errors name the position:
    /// 400 `INVALID_QUERY`.
    q: Option<String>,
    /// Comma-separated sort clauses `start|end|duration_ms|status|name|trace_id [asc|desc]`
    /// (MLflow names accepted). With a custom order, `next_cursor` continues by position.
    order_by: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only this project.
    project: Option<String>,
    /// Only this status: `OK`, `ERROR` or `UNSET`.
    status: Option<String>,
    /// Only traces at least this long, ms.
    min_duration_ms: Option<u64>,
    /// Only traces with exactly this name.
    name: Option<String>,
    /// Only traces started at or after this time, ms since the epoch.
    start_time_from_ms: Option<i64>,
    /// Only traces started before this time, ms since the epoch.
    start_time_to_ms: Option<i64>,
}

/// Query parameters of `GET /api/v1/stats`.
#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsParams {
    /// Only the traces matching this query (see `GET /api/v1/traces`).
    q: Option<String>,
    /// Up to three comma-separated keys: `model`, `provider`, `span_type` (these aggregate
    /// spans), `project`, `time`, `tags.<key>`, `metadata.<key>` (these aggregate traces).
    group_by: Option<String>,
    /// Width of a `time` bucket: `30s`, `5m`, `1h`, `1d` …
    #[param(default = "1h")]
    bucket: Option<String>,
    /// Only traces started at or after this time, ms since the epoch.
    start_time_from_ms: Option<i64>,
    /// Only traces started before this time, ms since the epoch.
    start_time_to_ms: Option<i64>,
}

/// Query parameters of `GET /api/v1/spans`.
#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SpanListParams {
    /// A query; span fields (`span.type`, `span.model` …) are about the span itself.
    q: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Query parameters of `GET /api/v1/sessions`.
#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionListParams {
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only sessions of this project.
    project: Option<String>,
}
