//! Loupe's shared store: PostgreSQL, for several `loupe serve` replicas pointed at one database.
//!
//! The schema keeps the SQLite store's table and column names (`traces t`, `spans s`,
//! `assessments a`, `trace_text`), so the query layer's one lowering serves both
//! (`loupe_query::sql`, with [`layout`]). What differs:
//! - Writers are many: a batch locks its traces' rows in trace-id order before it adds spans,
//!   and roll-ups are added to the locked row (`x = x + delta`), so concurrent batches of one
//!   trace neither lose deltas nor deadlock. Spans are inserted with `ON CONFLICT DO NOTHING`,
//!   and only those actually inserted count.
//! - Span bodies (the compressed group frames of `loupe_store::encode`) are stored once per
//!   group in `span_groups`; a span row names its group and its index in it.
//! - Full text is indexed inside the write transaction (`trace_text`, a `tsvector` per trace and
//!   batch with a GIN index), so `flush_text_index` has nothing to wait for.
//! - Migrations are versioned in `schema_version` and run at connect under an advisory lock, so
//!   replicas starting together migrate once.

mod annotate;
mod datasets;
mod layout;
mod read;
mod recompute;
mod runs;
mod schema;
mod scorers;
mod sessions;
mod stats;
mod write;

/// What the fuzz targets (`fuzz/`) drive below the store's API: the filter's lowering to this
/// store's SQL, for traces (with and without the list of a rare word's matches) and for spans.
#[cfg(fuzzing)]
pub mod fuzzing {
    use loupe_query::sql::Lowered;

    /// The lowerings of `expr` this store writes.
    pub fn lowerings(expr: &loupe_query::Expr) -> Vec<Lowered> {
        let matches: Vec<(String, String)> = loupe_query::sql::full_text_conditions(expr)
            .into_iter()
            .map(|w| (w.to_string(), "{1,2,3}".to_string()))
            .collect();
        vec![
            crate::layout::lower(expr, &[]),
            crate::layout::lower(expr, &matches),
            crate::layout::lower_spans(expr),
        ]
    }
}

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use loupe_model::{TraceId, TraceSummary};
use loupe_store::datasets::{DatasetChange, EvalDataset, RecordUpsert};
use loupe_store::runs::{Metric, Run, RunChange};
use loupe_store::scorers::{OnlineConfig, ScorerVersion};
use loupe_store::{
    Assessment, EncodedEvent, EncodedSpan, ErrorKind, Experiment, ExperimentKey, Recompute,
    RecomputeStats, SessionPage, SessionQuery, SessionSummary, SpanBodies, StatsGroup, StatsQuery,
    StoreError, TraceDetail, TraceInfoUpdate, TracePage, TraceQuery, TraceSelection, TraceStore,
    WriteOutcome,
};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

/// Connections kept by one store (one `loupe serve` process).
const POOL_SIZE: usize = 16;

/// How long a request waits for a free connection before it is told to retry.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// Times a write is retried after PostgreSQL chose it as a deadlock or serialization victim.
const WRITE_RETRIES: usize = 4;

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Where it is connected, without the password.
    describe: String,
    /// Index documents past which a `text ~` word counts as common (see
    /// [`read::text_matches`]).
    common_text: std::sync::atomic::AtomicUsize,
}

/// Session settings of every connection (see [`PostgresStore::connect`]).
const PG_SESSION_OPTIONS: &str = "-c max_parallel_workers_per_gather=0";

pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let text = format!("{}: {} ({})", code.code(), db.message(), db.severity());
        if *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        {
            return StoreError::conflict(format!("postgres: {text}"));
        }
        if code.code().starts_with("08")
            || code.code().starts_with("53")
            || code.code().starts_with("57")
        {
            // Connection problems, out of resources, shutting down: the client retries later.
            return StoreError::unavailable(format!("postgres: {text}"));
        }
        return StoreError::internal(format!("postgres: {text}"));
    }
    if e.is_closed() {
        return StoreError::unavailable(format!("postgres connection closed: {e}"));
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if io {
        // The connection failed: the client retries later.
        return StoreError::unavailable(format!("postgres: {e}"));
    }
    // A value that did not convert, a protocol surprise: a bug, not a busy server.
    StoreError::internal(format!("postgres: {e}"))
}

/// An error that makes the caller run its transaction again (a row it relied on vanished
/// under a concurrent delete).
pub(crate) fn retry_later(message: &str) -> StoreError {
    StoreError::conflict(message)
}

fn retryable(e: &StoreError) -> bool {
    e.kind == ErrorKind::Conflict
}

/// Parameters of a statement built at run time.
pub(crate) type Args = Vec<Box<dyn ToSql + Sync + Send>>;

/// A statement built at run time: SQL with `$n` placeholders and its parameters.
#[derive(Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) args: Args,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder for `v`, cast to `ty`.
    pub(crate) fn arg<T: ToSql + Sync + Send + 'static>(&mut self, v: T, ty: &str) -> &mut Self {
        self.args.push(Box::new(v));
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self.text.push_str("::");
        self.text.push_str(ty);
        self
    }

    /// Appends a lowered query condition and binds its parameters.
    pub(crate) fn lowered(&mut self, l: &loupe_query::sql::Lowered) -> &mut Self {
        self.text.push_str(&l.numbered(self.args.len() + 1));
        for p in &l.params {
            match p {
                loupe_query::sql::Param::Text(s) => self.args.push(Box::new(s.clone())),
                loupe_query::sql::Param::Int(i) => self.args.push(Box::new(*i)),
                loupe_query::sql::Param::Real(r) => self.args.push(Box::new(*r)),
            }
        }
        self
    }

    pub(crate) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

pub(crate) use loupe_store::to_i64;

pub(crate) fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Runs CPU work (decompression, text extraction) off the async executor.
pub(crate) async fn cpu<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::internal(format!("store task failed: {e}")))
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = config
        .get_ports()
        .first()
        .map_or(String::new(), |p| format!(":{p}"));
    format!(
        "postgresql://{}{host}{port}/{}",
        config.get_user().map_or(String::new(), |u| format!("{u}@")),
        config.get_dbname().unwrap_or("")
    )
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/dbname`, or
    /// key=value pairs) and runs any pending migrations. Connections are plain TCP or Unix
    /// sockets: `sslmode=require` is refused.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::invalid(format!("invalid PostgreSQL connection string: {e}"))
        })?;
        let describe = describe(&config);
        // Ingest first: a query never takes extra cores with parallel workers. On a small
        // machine they took the cores ingest needed beside the aggregations, and short pages
        // paid their start-up (figures: docs/performance.md, "PostgreSQL"). Options in the URL
        // come after ours, so they win.
        let theirs = config.get_options().unwrap_or_default().to_string();
        config.options(format!("{PG_SESSION_OPTIONS} {theirs}").trim_end());
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::internal(format!("cannot build the connection pool: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                describe,
                common_text: std::sync::atomic::AtomicUsize::new(read::COMMON_TEXT),
            }),
        };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// The value of a server setting on the store's connections (`SHOW name`), for tests and
    /// diagnostics. Only names of letters, digits and underscores are asked for.
    #[doc(hidden)]
    pub async fn setting(&self, name: &str) -> Result<String, StoreError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::invalid(format!("not a setting name: {name:?}")));
        }
        let client = self.client().await?;
        let row = client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .map_err(pg_err)?;
        row.try_get(0).map_err(pg_err)
    }

    /// Sets how many index documents make a `text ~` word common, which picks its query plan
    /// (default 5,000). Both plans answer the same; tests use this to run each on small data.
    #[doc(hidden)]
    pub fn set_common_text_threshold(&self, documents: usize) {
        self.inner
            .common_text
            .store(documents, std::sync::atomic::Ordering::Relaxed);
    }

    fn common_text(&self) -> usize {
        self.inner
            .common_text
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where the store is connected (host, port, database; never the password).
    pub fn describe(&self) -> &str {
        &self.inner.describe
    }

    /// Bytes the database takes on disk, with its indexes, and those of the text index alone.
    pub async fn database_bytes(&self) -> Result<(u64, u64), StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT pg_database_size(current_database()), \
                 pg_total_relation_size('trace_text')",
                &[],
            )
            .await
            .map_err(pg_err)?;
        let all: i64 = row.get(0);
        let text: i64 = row.get(1);
        Ok((all.max(0) as u64, text.max(0) as u64))
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => pg_err(e),
            other => StoreError::unavailable(format!("cannot connect to PostgreSQL: {other}")),
        })
    }
}

#[async_trait]
impl TraceStore for PostgresStore {
    async fn write_spans(&self, spans: Vec<EncodedSpan>) -> Result<WriteOutcome, StoreError> {
        if spans.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let prepared = write::prepare(spans).await?;
        let mut client = self.client().await?;
        let mut attempt = 0;
        loop {
            match write::write_spans(&mut client, &prepared).await {
                Err(e) if retryable(&e) && attempt < WRITE_RETRIES => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "write retried");
                }
                other => return other,
            }
        }
    }

    async fn list_traces(&self, query: TraceQuery) -> Result<TracePage, StoreError> {
        let client = self.client().await?;
        read::list_traces(&client, &query, self.common_text()).await
    }

    async fn get_trace_with(
        &self,
        trace_id: TraceId,
        bodies: SpanBodies,
    ) -> Result<Option<TraceDetail>, StoreError> {
        let client = self.client().await?;
        read::get_trace(&client, trace_id, &bodies).await
    }

    async fn stats(&self, query: StatsQuery) -> Result<Vec<StatsGroup>, StoreError> {
        let client = self.client().await?;
        stats::stats(&client, &query, self.common_text()).await
    }

    async fn list_spans(
        &self,
        filter: Option<loupe_query::Expr>,
        limit: usize,
        before: Option<(i64, i64)>,
    ) -> Result<loupe_store::SpanPage, StoreError> {
        let client = self.client().await?;
        stats::list_spans(&client, filter.as_ref(), limit, before).await
    }

    async fn list_sessions(&self, query: SessionQuery) -> Result<SessionPage, StoreError> {
        let client = self.client().await?;
        sessions::list_sessions(&client, &query).await
    }

    async fn get_session(
        &self,
        session_id: String,
        limit: usize,
    ) -> Result<Option<(SessionSummary, Vec<TraceSummary>)>, StoreError> {
        let client = self.client().await?;
        sessions::get_session(&client, &session_id, limit).await
    }

    async fn write_events(&self, events: Vec<EncodedEvent>) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        write::write_events(&client, &events).await
    }

    async fn recompute(&self, how: Recompute) -> Result<RecomputeStats, StoreError> {
        let mut client = self.client().await?;
        let mut stats = RecomputeStats::default();
        let mut after = 0i64;
        while let Some(last) =
            recompute::recompute_chunk(&mut client, &how, after, &mut stats).await?
        {
            after = last;
        }
        Ok(stats)
    }

    async fn create_experiment(
        &self,
        name: String,
        artifact_location: Option<String>,
        tags: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Experiment, StoreError> {
        let client = self.client().await?;
        annotate::create_experiment(&client, &name, artifact_location.as_deref(), &tags).await
    }

    async fn experiment(&self, key: ExperimentKey) -> Result<Option<Experiment>, StoreError> {
        let client = self.client().await?;
        annotate::experiment(&client, &key).await
    }

    async fn list_experiments(&self) -> Result<Vec<Experiment>, StoreError> {
        let client = self.client().await?;
        annotate::list_experiments(&client).await
    }

    async fn upsert_trace_info(&self, update: TraceInfoUpdate) -> Result<TraceSummary, StoreError> {
        let mut client = self.client().await?;
        let mut attempt = 0;
        loop {
            match annotate::upsert_trace_info(&mut client, &update).await {
                Err(e) if retryable(&e) && attempt < WRITE_RETRIES => attempt += 1,
                other => return other,
            }
        }
    }

    async fn trace_summaries(&self, ids: Vec<TraceId>) -> Result<Vec<TraceSummary>, StoreError> {
        let client = self.client().await?;
        annotate::trace_summaries(&client, &ids).await
    }

    async fn set_trace_tag(
        &self,
        trace_id: TraceId,
        key: String,
        value: Option<serde_json::Value>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        annotate::set_trace_tag(&client, &trace_id, &key, value.as_ref()).await
    }

    async fn delete_traces(&self, which: TraceSelection) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        annotate::delete_traces(&mut client, &which).await
    }

    async fn put_assessments(&self, assessments: Vec<Assessment>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        annotate::put_assessments(&mut client, &assessments).await
    }

    async fn assessment(&self, assessment_id: String) -> Result<Option<Assessment>, StoreError> {
        let client = self.client().await?;
        annotate::assessment(&client, &assessment_id).await
    }

    async fn assessments(&self, trace_ids: Vec<TraceId>) -> Result<Vec<Assessment>, StoreError> {
        let client = self.client().await?;
        annotate::assessments(&client, &trace_ids).await
    }

    async fn trace_models(
        &self,
        trace_ids: Vec<TraceId>,
    ) -> Result<std::collections::HashMap<TraceId, Vec<String>>, StoreError> {
        let client = self.client().await?;
        annotate::trace_models(&client, &trace_ids).await
    }

    async fn delete_assessment(
        &self,
        trace_id: TraceId,
        assessment_id: String,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        annotate::delete_assessment(&client, &trace_id, &assessment_id).await
    }

    async fn create_dataset(&self, d: EvalDataset) -> Result<(), StoreError> {
        datasets::create_dataset(&self.client().await?, &d).await
    }

    async fn dataset(&self, id: String) -> Result<Option<EvalDataset>, StoreError> {
        let client = self.client().await?;
        datasets::dataset(&**client, &id, false).await
    }

    async fn datasets(&self) -> Result<Vec<EvalDataset>, StoreError> {
        datasets::datasets(&self.client().await?).await
    }

    async fn change_dataset(
        &self,
        id: String,
        change: DatasetChange,
        now: i64,
    ) -> Result<EvalDataset, StoreError> {
        datasets::change_dataset(&mut self.client().await?, &id, &change, now).await
    }

    async fn delete_dataset(&self, id: String) -> Result<bool, StoreError> {
        datasets::delete_dataset(&mut self.client().await?, &id).await
    }

    async fn upsert_dataset_records(&self, u: RecordUpsert) -> Result<(u64, u64), StoreError> {
        datasets::upsert_records(&mut self.client().await?, &u).await
    }

    async fn dataset_records(
        &self,
        id: String,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<serde_json::Value>, u64), StoreError> {
        datasets::records(&self.client().await?, &id, offset, limit).await
    }

    async fn delete_dataset_records(
        &self,
        id: String,
        record_ids: Vec<String>,
        now: i64,
    ) -> Result<u64, StoreError> {
        datasets::delete_records(&mut self.client().await?, &id, &record_ids, now).await
    }

    async fn register_scorer(
        &self,
        experiment_id: String,
        name: String,
        serialized: String,
        new_id: String,
        now: i64,
    ) -> Result<ScorerVersion, StoreError> {
        let mut client = self.client().await?;
        scorers::register(
            &mut client,
            &experiment_id,
            &name,
            &serialized,
            &new_id,
            now,
        )
        .await
    }

    async fn scorers(&self, experiment_id: String) -> Result<Vec<ScorerVersion>, StoreError> {
        scorers::list(&self.client().await?, &experiment_id).await
    }

    async fn delete_scorer(
        &self,
        experiment_id: String,
        name: String,
        version: Option<i64>,
    ) -> Result<u64, StoreError> {
        scorers::delete(&mut self.client().await?, &experiment_id, &name, version).await
    }

    async fn put_online_config(&self, config: OnlineConfig) -> Result<(), StoreError> {
        scorers::put_config(&self.client().await?, &config).await
    }

    async fn online_configs(&self, ids: Vec<String>) -> Result<Vec<OnlineConfig>, StoreError> {
        scorers::configs(&self.client().await?, &ids).await
    }

    async fn create_run(&self, run: Run) -> Result<(), StoreError> {
        runs::create_run(&self.client().await?, &run).await
    }

    async fn run(&self, run_id: String) -> Result<Option<Run>, StoreError> {
        runs::run(&self.client().await?, &run_id).await
    }

    async fn change_run(&self, run_id: String, change: RunChange) -> Result<Run, StoreError> {
        runs::change_run(&mut self.client().await?, &run_id, &change).await
    }

    async fn runs(&self, experiment_ids: Vec<String>) -> Result<Vec<Run>, StoreError> {
        runs::runs(&self.client().await?, &experiment_ids).await
    }

    async fn metric_history(&self, run_id: String, key: String) -> Result<Vec<Metric>, StoreError> {
        runs::metric_history(&self.client().await?, &run_id, &key).await
    }
}
