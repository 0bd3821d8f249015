//! The storage contract every Loupe backend implements.
//!
//! [`TraceStore`] is what the ingest path and the readers see; the backends (SQLite and
//! PostgreSQL) live in their own crates. Spans travel to a store as [`EncodedSpan`]s: the indexed
//! columns lifted out, everything else serialized once into a compressed body ([`SpanBody`]),
//! so the single writer only binds and inserts.

mod assessment;
mod columns;
pub mod datasets;
mod encode;
mod error;
mod query;
mod rollup;
pub mod runs;
pub mod scorers;
mod sessions;
pub mod threads;
mod unpriced;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
pub use loupe_model::Assessment;
use loupe_model::normalize::Derived;
use loupe_model::{SpanStatus, TraceId, TraceSummary};
use serde_json::{Map, Value};

pub use assessment::{ASSESSMENT_COLUMNS, AssessmentRow, json_object};
pub use columns::SpanColumns;
pub use encode::{
    BodyPart, EncodedSpan, SpanBody, decode_bodies, decode_body, decode_body_at, encode_span,
    encode_spans,
};
pub use error::{ErrorKind, StoreError};
pub use query::{
    Cursor, Direction, GroupKey, OrderKey, SessionPage, SessionQuery, SessionSummary, StatsGroup,
    StatsQuery, TracePage, TraceQuery,
};
pub use rollup::{TraceDelta, cmp_group_keys, to_i64};
pub use sessions::{SESSION_COLUMNS, session_sql};
pub use unpriced::{UnpricedModel, unpriced_models};

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

/// What a recompute chunk found for each trace it touched (by the store's trace number): the
/// session and user ids its spans name now (the first seen of each), which the trace's roll-up
/// takes with its new sums.
pub type Touched = HashMap<i64, (Option<String>, Option<String>)>;

/// A stored span as a recompute reads it.
#[derive(Debug, Clone)]
pub struct StoredDerived {
    /// The store's number of the span's trace.
    pub trace_seq: i64,
    /// Start, ns.
    pub start_ns: u64,
    /// The derived columns as stored.
    pub columns: SpanColumns,
}

impl Recompute {
    /// Recomputes one stored span, the rule both backends follow: counts it in `stats`, notes
    /// its trace in `touched`, and returns its new columns when they differ from the stored
    /// ones (the caller writes them). `body` reads its stored body (only a reindex needs it).
    pub fn span(
        &self,
        old: &StoredDerived,
        body: impl FnOnce() -> Result<SpanBody, StoreError>,
        touched: &mut Touched,
        stats: &mut RecomputeStats,
    ) -> Result<Option<SpanColumns>, StoreError> {
        stats.spans += 1;
        let ids = touched.entry(old.trace_seq).or_default();
        let new = match self {
            Recompute::Reindex(f) => {
                let d = f(&body()?, old.start_ns);
                if ids.0.is_none() {
                    ids.0.clone_from(&d.session_id);
                }
                if ids.1.is_none() {
                    ids.1.clone_from(&d.user_id);
                }
                SpanColumns::of(&d)
            }
            Recompute::Reprice(f) => SpanColumns {
                cost_usd: f(&old.columns.derived(), old.start_ns),
                ..old.columns.clone()
            },
        };
        if new == old.columns {
            return Ok(None);
        }
        stats.changed += 1;
        Ok(Some(new))
    }
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
    /// Start, ns since the epoch.
    pub start_ns: u64,
    /// End, ns since the epoch.
    pub end_ns: u64,
    /// Status.
    pub status: SpanStatus,
    /// Status message.
    pub status_message: String,
    /// Type, model, tokens and cost.
    pub columns: SpanColumns,
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
    /// Stores a batch of spans. Returns only once the batch is durable on disk (SQLite: in its
    /// redo log, committed to the database within a second; PostgreSQL: committed); on error
    /// nothing of the batch is stored.
    async fn write_spans(&self, spans: Vec<EncodedSpan>) -> Result<WriteOutcome, StoreError>;

    /// Traces matching `query`, newest first.
    async fn list_traces(&self, query: TraceQuery) -> Result<TracePage, StoreError>;

    /// One trace with its spans, or `None` if unknown.
    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<TraceDetail>, StoreError> {
        self.get_trace_with(trace_id, SpanBodies::All).await
    }

    /// One trace with its spans, reading only the span bodies asked for (the others are
    /// empty): a big trace's outline costs no decompression.
    async fn get_trace_with(
        &self,
        trace_id: TraceId,
        bodies: SpanBodies,
    ) -> Result<Option<TraceDetail>, StoreError>;

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

    /// Creates an experiment (a project with a numeric id, as MLflow names them).
    async fn create_experiment(
        &self,
        name: String,
        artifact_location: Option<String>,
        tags: Map<String, Value>,
    ) -> Result<Experiment, StoreError>;

    /// One experiment by id or name.
    async fn experiment(&self, key: ExperimentKey) -> Result<Option<Experiment>, StoreError>;

    /// Every experiment, by id.
    async fn list_experiments(&self) -> Result<Vec<Experiment>, StoreError>;

    /// Merges what a client reports about a trace into its row, creating the row (with no
    /// spans yet) when the trace is unknown. Durable on return.
    async fn upsert_trace_info(&self, update: TraceInfoUpdate) -> Result<TraceSummary, StoreError>;

    /// The summaries of these traces (unknown ids are left out), in the order asked.
    async fn trace_summaries(&self, ids: Vec<TraceId>) -> Result<Vec<TraceSummary>, StoreError>;

    /// Sets (`Some`) or removes (`None`) a trace tag; `false` if the trace, or the tag to
    /// remove, does not exist.
    async fn set_trace_tag(
        &self,
        trace_id: TraceId,
        key: String,
        value: Option<Value>,
    ) -> Result<bool, StoreError>;

    /// Deletes traces with their spans, events and assessments; returns how many.
    async fn delete_traces(&self, which: TraceSelection) -> Result<u64, StoreError>;

    /// Stores assessments in one transaction: each is inserted, or replaced when its id exists,
    /// and one that `overrides` another of its trace marks that one invalid and overridden by
    /// it. Fails with [`ErrorKind::NotFound`], storing nothing, if a trace does not exist.
    async fn put_assessments(&self, assessments: Vec<Assessment>) -> Result<(), StoreError>;

    /// One assessment by id, or `None` if unknown.
    async fn assessment(&self, assessment_id: String) -> Result<Option<Assessment>, StoreError>;

    /// The assessments of these traces, oldest first.
    async fn assessments(&self, trace_ids: Vec<TraceId>) -> Result<Vec<Assessment>, StoreError>;

    /// The distinct models of each trace's spans (traces without any are left out).
    async fn trace_models(
        &self,
        trace_ids: Vec<TraceId>,
    ) -> Result<std::collections::HashMap<TraceId, Vec<String>>, StoreError>;

    /// Returns once everything written before the call is searchable with `text ~` (a backend
    /// that indexes text in the background waits for its indexer; one that indexes inside
    /// `write_spans` returns at once).
    async fn flush_text_index(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Deletes an assessment; `false` if it did not exist.
    async fn delete_assessment(
        &self,
        trace_id: TraceId,
        assessment_id: String,
    ) -> Result<bool, StoreError>;

    /// Stores a new run (an id taken is `AlreadyExists`).
    async fn create_run(&self, run: runs::Run) -> Result<(), StoreError>;

    /// A run by id.
    async fn run(&self, run_id: String) -> Result<Option<runs::Run>, StoreError>;

    /// Applies a change to a run in one transaction ([`runs::Run::apply`]; metric values are
    /// appended to the history too) and returns the run as it is now.
    async fn change_run(
        &self,
        run_id: String,
        change: runs::RunChange,
    ) -> Result<runs::Run, StoreError>;

    /// The runs of these experiments, deleted ones included, newest first (searches filter
    /// and order them in memory: an experiment's runs are few next to its traces).
    async fn runs(&self, experiment_ids: Vec<String>) -> Result<Vec<runs::Run>, StoreError>;

    /// Stores a new evaluation dataset (a name or id taken is `AlreadyExists`).
    async fn create_dataset(&self, dataset: datasets::EvalDataset) -> Result<(), StoreError>;

    /// A dataset's header by id.
    async fn dataset(
        &self,
        dataset_id: String,
    ) -> Result<Option<datasets::EvalDataset>, StoreError>;

    /// Every dataset's header (searches filter them in memory).
    async fn datasets(&self) -> Result<Vec<datasets::EvalDataset>, StoreError>;

    /// Changes a dataset's header in one transaction; returns it as it is now.
    async fn change_dataset(
        &self,
        dataset_id: String,
        change: datasets::DatasetChange,
        now: i64,
    ) -> Result<datasets::EvalDataset, StoreError>;

    /// Deletes a dataset and its records; `false` if it did not exist.
    async fn delete_dataset(&self, dataset_id: String) -> Result<bool, StoreError>;

    /// Inserts records, or merges them into those with the same inputs
    /// ([`datasets::merge_record`]), in one transaction. Returns (inserted, updated).
    async fn upsert_dataset_records(
        &self,
        upsert: datasets::RecordUpsert,
    ) -> Result<(u64, u64), StoreError>;

    /// A page of a dataset's records, oldest first, and how many it has.
    async fn dataset_records(
        &self,
        dataset_id: String,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Value>, u64), StoreError>;

    /// Deletes records by id; returns how many were deleted.
    async fn delete_dataset_records(
        &self,
        dataset_id: String,
        record_ids: Vec<String>,
        now: i64,
    ) -> Result<u64, StoreError>;

    /// Registers the next version of a scorer (1 for a new name, keeping its scorer id; `new_id`
    /// is the id a new name gets) and returns it.
    async fn register_scorer(
        &self,
        experiment_id: String,
        name: String,
        serialized: String,
        new_id: String,
        now: i64,
    ) -> Result<scorers::ScorerVersion, StoreError>;

    /// Every version of every scorer of an experiment, by name, then version.
    async fn scorers(
        &self,
        experiment_id: String,
    ) -> Result<Vec<scorers::ScorerVersion>, StoreError>;

    /// Deletes a scorer's version, or all its versions (and its online configuration); returns
    /// how many versions were deleted.
    async fn delete_scorer(
        &self,
        experiment_id: String,
        name: String,
        version: Option<i64>,
    ) -> Result<u64, StoreError>;

    /// Sets a scorer's online configuration (one per scorer).
    async fn put_online_config(&self, config: scorers::OnlineConfig) -> Result<(), StoreError>;

    /// The online configurations of these scorers (those that have one).
    async fn online_configs(
        &self,
        scorer_ids: Vec<String>,
    ) -> Result<Vec<scorers::OnlineConfig>, StoreError>;

    /// Every value logged for a run's metric, by step, then time.
    async fn metric_history(
        &self,
        run_id: String,
        key: String,
    ) -> Result<Vec<runs::Metric>, StoreError>;
}

/// Which span bodies [`TraceStore::get_trace_with`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanBodies {
    /// Every span's.
    All,
    /// None (the outline: columns only).
    None,
    /// This span's only.
    Only(loupe_model::SpanId),
    /// The root spans' only (those without a parent).
    Roots,
}

/// An experiment: MLflow's name for a project, with a numeric id. Experiment 0 ("Default")
/// always exists and holds the project `default`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Experiment {
    /// Id.
    pub id: i64,
    /// Name (unique).
    pub name: String,
    /// Where MLflow clients put artifacts (`mlflow-artifacts:/<id>`).
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    /// Created, ms since the epoch.
    pub creation_time_ms: i64,
    /// Last changed, ms since the epoch.
    pub last_update_time_ms: i64,
    /// Tags.
    pub tags: Map<String, Value>,
}

impl Experiment {
    /// The Loupe project that holds the experiment's traces.
    pub fn project(&self) -> String {
        if self.id == 0 {
            loupe_model::DEFAULT_PROJECT.to_string()
        } else {
            self.name.clone()
        }
    }
}

/// How to find an experiment.
#[derive(Debug, Clone, PartialEq)]
pub enum ExperimentKey {
    /// By id.
    Id(i64),
    /// By name.
    Name(String),
}

/// What a client reports about a trace (MLflow's StartTraceV3), merged into the stored row.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceInfoUpdate {
    /// The trace.
    pub trace_id: TraceId,
    /// Project, used when the trace is new.
    pub project: String,
    /// Start, ns (used while no span has arrived).
    pub start_ns: Option<u64>,
    /// Duration, ns (used while no span has arrived).
    pub duration_ns: Option<u64>,
    /// The trace's final status, which wins over the spans'.
    pub status: Option<SpanStatus>,
    /// Name (used while the root span has not arrived).
    pub name: Option<String>,
    /// Session id, when the trace has none yet.
    pub session_id: Option<String>,
    /// User id, when the trace has none yet.
    pub user_id: Option<String>,
    /// Tags to set.
    pub tags: Map<String, Value>,
    /// Metadata to set.
    pub metadata: Map<String, Value>,
    /// Other info to set (see [`TraceSummary::info`]).
    pub info: Map<String, Value>,
}

impl TraceInfoUpdate {
    /// The times and status of a trace row this update creates (no span has arrived): a start
    /// the client did not report is now.
    pub fn new_row(&self) -> TraceTimes {
        let start = self
            .start_ns
            .map_or_else(|| loupe_model::now_ms().saturating_mul(1_000_000), to_i64);
        TraceTimes {
            start_ns: start,
            end_ns: start.saturating_add(self.duration_ns.map_or(0, to_i64)),
            name: self.name.clone().unwrap_or_default(),
        }
    }

    /// The times and name of an existing row after this update: the client's only while no
    /// span says otherwise (its times while the trace has no span, its name while no root span
    /// has arrived).
    pub fn merge(&self, old: &TraceSummary) -> TraceTimes {
        let (start_ns, end_ns) = if old.span_count == 0 {
            let start = self.start_ns.map_or(to_i64(old.start_ns), to_i64);
            let end = self
                .duration_ns
                .map_or(to_i64(old.end_ns), |d| start.saturating_add(to_i64(d)));
            (start, end)
        } else {
            (to_i64(old.start_ns), to_i64(old.end_ns))
        };
        let name = match (&self.name, old.has_root) {
            (Some(n), false) if !n.is_empty() => n.clone(),
            _ => old.name.clone(),
        };
        TraceTimes {
            start_ns,
            end_ns,
            name,
        }
    }
}

/// A trace row's start, end (ns) and name, as [`TraceInfoUpdate`] decides them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceTimes {
    /// Start, ns.
    pub start_ns: i64,
    /// End, ns.
    pub end_ns: i64,
    /// Name.
    pub name: String,
}

impl TraceTimes {
    /// Duration in ms, as stored.
    pub fn duration_ms(&self) -> i64 {
        (self.end_ns - self.start_ns) / 1_000_000
    }
}

/// Which traces to delete.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceSelection {
    /// These (unknown ids are ignored).
    Ids(Vec<TraceId>),
    /// Of a project, those that started at or before a time, oldest first, at most `limit`.
    StartedBy {
        /// Project.
        project: String,
        /// Latest start, ms since the epoch.
        max_start_ms: i64,
        /// At most this many.
        limit: Option<u64>,
    },
}
