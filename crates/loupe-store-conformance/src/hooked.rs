//! A store that runs a hook before each span write and passes everything to another store: a
//! test overrides what it needs (hold writes at a gate, fail them) without writing out every
//! method of [`TraceStore`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use loupe_model::TraceId;
use loupe_store::datasets::{DatasetChange, EvalDataset, RecordUpsert};
use loupe_store::runs::{Metric, Run, RunChange};
use loupe_store::scorers::{OnlineConfig, ScorerVersion};
use loupe_store::{
    EncodedSpan, Recompute, RecomputeStats, SessionPage, SessionQuery, SessionSummary, StoreError,
    TraceDetail, TracePage, TraceQuery, TraceStore, WriteOutcome,
};

/// Run before each `write_spans`; an error is returned in place of the write.
pub type BeforeWrite =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>> + Send + Sync>;

/// `inner`, with `before_write` run before each span write.
pub struct HookedStore {
    inner: Arc<dyn TraceStore>,
    before_write: BeforeWrite,
}

impl HookedStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn TraceStore>, before_write: BeforeWrite) -> Self {
        Self {
            inner,
            before_write,
        }
    }
}

#[async_trait::async_trait]
impl TraceStore for HookedStore {
    async fn write_spans(&self, spans: Vec<EncodedSpan>) -> Result<WriteOutcome, StoreError> {
        (self.before_write)().await?;
        self.inner.write_spans(spans).await
    }
    async fn list_traces(&self, q: TraceQuery) -> Result<TracePage, StoreError> {
        self.inner.list_traces(q).await
    }
    async fn get_trace_with(
        &self,
        id: TraceId,
        bodies: loupe_store::SpanBodies,
    ) -> Result<Option<TraceDetail>, StoreError> {
        self.inner.get_trace_with(id, bodies).await
    }
    async fn list_sessions(&self, q: SessionQuery) -> Result<SessionPage, StoreError> {
        self.inner.list_sessions(q).await
    }
    async fn get_session(
        &self,
        id: String,
        limit: usize,
    ) -> Result<Option<(SessionSummary, Vec<loupe_model::TraceSummary>)>, StoreError> {
        self.inner.get_session(id, limit).await
    }
    async fn recompute(&self, how: Recompute) -> Result<RecomputeStats, StoreError> {
        self.inner.recompute(how).await
    }
    async fn write_events(
        &self,
        events: Vec<loupe_store::EncodedEvent>,
    ) -> Result<u64, StoreError> {
        self.inner.write_events(events).await
    }
    async fn stats(
        &self,
        q: loupe_store::StatsQuery,
    ) -> Result<Vec<loupe_store::StatsGroup>, StoreError> {
        self.inner.stats(q).await
    }
    async fn list_spans(
        &self,
        filter: Option<loupe_query::Expr>,
        limit: usize,
        before: Option<(i64, i64)>,
    ) -> Result<loupe_store::SpanPage, StoreError> {
        self.inner.list_spans(filter, limit, before).await
    }
    async fn create_experiment(
        &self,
        name: String,
        location: Option<String>,
        tags: serde_json::Map<String, serde_json::Value>,
    ) -> Result<loupe_store::Experiment, StoreError> {
        self.inner.create_experiment(name, location, tags).await
    }
    async fn experiment(
        &self,
        key: loupe_store::ExperimentKey,
    ) -> Result<Option<loupe_store::Experiment>, StoreError> {
        self.inner.experiment(key).await
    }
    async fn list_experiments(&self) -> Result<Vec<loupe_store::Experiment>, StoreError> {
        self.inner.list_experiments().await
    }
    async fn upsert_trace_info(
        &self,
        update: loupe_store::TraceInfoUpdate,
    ) -> Result<loupe_model::TraceSummary, StoreError> {
        self.inner.upsert_trace_info(update).await
    }
    async fn trace_summaries(
        &self,
        ids: Vec<TraceId>,
    ) -> Result<Vec<loupe_model::TraceSummary>, StoreError> {
        self.inner.trace_summaries(ids).await
    }
    async fn set_trace_tag(
        &self,
        id: TraceId,
        key: String,
        value: Option<serde_json::Value>,
    ) -> Result<bool, StoreError> {
        self.inner.set_trace_tag(id, key, value).await
    }
    async fn delete_traces(&self, which: loupe_store::TraceSelection) -> Result<u64, StoreError> {
        self.inner.delete_traces(which).await
    }
    async fn flush_text_index(&self) -> Result<(), StoreError> {
        self.inner.flush_text_index().await
    }
    async fn put_assessments(&self, a: Vec<loupe_store::Assessment>) -> Result<(), StoreError> {
        self.inner.put_assessments(a).await
    }
    async fn assessment(&self, id: String) -> Result<Option<loupe_store::Assessment>, StoreError> {
        self.inner.assessment(id).await
    }
    async fn assessments(
        &self,
        ids: Vec<TraceId>,
    ) -> Result<Vec<loupe_store::Assessment>, StoreError> {
        self.inner.assessments(ids).await
    }
    async fn trace_models(
        &self,
        ids: Vec<TraceId>,
    ) -> Result<std::collections::HashMap<TraceId, Vec<String>>, StoreError> {
        self.inner.trace_models(ids).await
    }
    async fn delete_assessment(&self, id: TraceId, aid: String) -> Result<bool, StoreError> {
        self.inner.delete_assessment(id, aid).await
    }
    async fn create_dataset(&self, d: EvalDataset) -> Result<(), StoreError> {
        self.inner.create_dataset(d).await
    }
    async fn dataset(&self, id: String) -> Result<Option<EvalDataset>, StoreError> {
        self.inner.dataset(id).await
    }
    async fn datasets(&self) -> Result<Vec<EvalDataset>, StoreError> {
        self.inner.datasets().await
    }
    async fn change_dataset(
        &self,
        id: String,
        change: DatasetChange,
        now: i64,
    ) -> Result<EvalDataset, StoreError> {
        self.inner.change_dataset(id, change, now).await
    }
    async fn delete_dataset(&self, id: String) -> Result<bool, StoreError> {
        self.inner.delete_dataset(id).await
    }
    async fn upsert_dataset_records(&self, u: RecordUpsert) -> Result<(u64, u64), StoreError> {
        self.inner.upsert_dataset_records(u).await
    }
    async fn dataset_records(
        &self,
        id: String,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<serde_json::Value>, u64), StoreError> {
        self.inner.dataset_records(id, offset, limit).await
    }
    async fn delete_dataset_records(
        &self,
        id: String,
        record_ids: Vec<String>,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.inner.delete_dataset_records(id, record_ids, now).await
    }
    async fn register_scorer(
        &self,
        experiment_id: String,
        name: String,
        serialized: String,
        new_id: String,
        now: i64,
    ) -> Result<ScorerVersion, StoreError> {
        self.inner
            .register_scorer(experiment_id, name, serialized, new_id, now)
            .await
    }
    async fn scorers(&self, experiment_id: String) -> Result<Vec<ScorerVersion>, StoreError> {
        self.inner.scorers(experiment_id).await
    }
    async fn delete_scorer(
        &self,
        experiment_id: String,
        name: String,
        version: Option<i64>,
    ) -> Result<u64, StoreError> {
        self.inner.delete_scorer(experiment_id, name, version).await
    }
    async fn put_online_config(&self, config: OnlineConfig) -> Result<(), StoreError> {
        self.inner.put_online_config(config).await
    }
    async fn online_configs(&self, ids: Vec<String>) -> Result<Vec<OnlineConfig>, StoreError> {
        self.inner.online_configs(ids).await
    }
    async fn create_run(&self, run: Run) -> Result<(), StoreError> {
        self.inner.create_run(run).await
    }
    async fn run(&self, run_id: String) -> Result<Option<Run>, StoreError> {
        self.inner.run(run_id).await
    }
    async fn change_run(&self, run_id: String, change: RunChange) -> Result<Run, StoreError> {
        self.inner.change_run(run_id, change).await
    }
    async fn runs(&self, experiment_ids: Vec<String>) -> Result<Vec<Run>, StoreError> {
        self.inner.runs(experiment_ids).await
    }
    async fn metric_history(&self, run_id: String, key: String) -> Result<Vec<Metric>, StoreError> {
        self.inner.metric_history(run_id, key).await
    }
}
