//! Loupe's embedded default store: one SQLite file in WAL mode.
//!
//! One writer connection, used by one batch at a time (the ingest queue groups requests into
//! batches, so one flush to disk acknowledges many requests); a small pool of reader
//! connections, which do not hold the writer up (a read first commits the batches gathered in
//! the writer's open transaction). Traces get a sequential number on first sight, and spans are
//! keyed by (trace number, span id), so inserts append to the end of the B-trees instead of
//! landing at random points in them.
//!
//! This file is the handle: opening the store, the reader pool, and the [`TraceStore`] impl,
//! which hands each call to its module. The writer and its commit thread are in `writer.rs`,
//! the checkpointer in `checkpoint.rs`, the redo log and its replay in `redo.rs`.

mod annotate;
mod bodylog;
mod checkpoint;
mod datasets;
mod fts;
mod layout;
mod read;
mod recompute;
mod redo;
mod runs;
mod schema;
mod scorers;
mod sessions;
mod stats;
mod write;
mod writer;

/// What the fuzz targets (`fuzz/`) drive below the store's API.
#[cfg(fuzzing)]
pub mod fuzzing {
    /// Reads a redo-log file's bytes as opening the store does: its records, then each
    /// record's spans or assessments. Returns how many the readable records hold.
    pub fn read_redo_file(bytes: &[u8]) -> usize {
        use crate::redo::{RecordKind, decode, decode_assessments};
        let mut records = Vec::new();
        crate::redo::records_in(bytes, &mut records);
        records
            .iter()
            .filter_map(|(_, kind, payload)| match kind {
                RecordKind::Spans => decode(payload).ok().map(|s| s.len()),
                RecordKind::Assessments => decode_assessments(payload).ok().map(|a| a.len()),
            })
            .sum()
    }
}

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use loupe_model::TraceId;
use loupe_model::TraceSummary;
use loupe_store::datasets::{DatasetChange, EvalDataset, RecordUpsert};
use loupe_store::runs::{Metric, Run, RunChange};
use loupe_store::scorers::{OnlineConfig, ScorerVersion};
use loupe_store::threads::{PriorityPool, QUERY_NICE};
use loupe_store::{
    Assessment, EncodedEvent, EncodedSpan, Experiment, ExperimentKey, Recompute, RecomputeStats,
    SessionPage, SessionQuery, SessionSummary, SpanBodies, StatsGroup, StatsQuery, StoreError,
    TraceDetail, TraceInfoUpdate, TracePage, TraceQuery, TraceSelection, TraceStore, WriteOutcome,
};
use rusqlite::Connection;

use checkpoint::Checkpointer;
use schema::Role;
use writer::{PendingFlush, Writer, start_committer, sync_wal};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "loupe.db";

/// Readers kept open between queries.
const MAX_IDLE_READERS: usize = 4;

/// Searches and aggregations that run at once; more wait in line.
const QUERY_THREADS: usize = 4;

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// What the clones of a [`SqliteStore`] share. Dropping the last one commits what the writer
/// holds (see `writer.rs`), then stops the checkpointer and the text indexer.
struct Inner {
    path: PathBuf,
    writer: Mutex<Writer>,
    /// Set while span batches are applied but not committed: reads commit them first.
    uncommitted: AtomicBool,
    /// The last commit of span batches, while it is not known to be on disk (see
    /// [`Inner::commit`]).
    pending_flush: Mutex<Option<PendingFlush>>,
    /// Reads span bodies from the body log.
    log: bodylog::LogReader,
    readers: Mutex<Vec<Connection>>,
    /// The low-priority threads that run searches and aggregations.
    queries: PriorityPool,
    /// Matches past which a `text ~` word counts as common (see `read::text_plan`).
    common_text: std::sync::atomic::AtomicI64,
    /// Recent trace ids past which a commit moves them to the large table (see
    /// [`write::SEQ_OF_ID`]).
    merge_ids_at: std::sync::atomic::AtomicUsize,
    /// Held for its `Drop`: stops the thread after a last checkpoint.
    _checkpointer: Option<Checkpointer>,
    /// Set when the writer should complete a checkpoint (see [`Checkpointer`]).
    rewind: Arc<AtomicBool>,
    /// The full-text index and its background indexer.
    text: fts::TextIndex,
    data_dir: PathBuf,
}

/// A SQLite error as a store error: busy or locked is `unavailable` (worth a retry), the rest
/// internal.
pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::unavailable(format!("database busy: {e}"))
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
            StoreError::storage_full(format!("sqlite: {e}"))
        }
        _ => StoreError::internal(format!("sqlite: {e}")),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, running any pending migrations.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::internal(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DB_FILE);
        let mut writer = Connection::open(&path).map_err(db_err)?;
        schema::configure(&writer, Role::Writer).map_err(db_err)?;
        schema::migrate(&mut writer)?;
        let log = bodylog::LogWriter::open(data_dir)?;
        let reader = bodylog::LogReader::new(data_dir);
        // Batches acknowledged but not committed before the last stop (a crash) go in now.
        let mut redo = redo::RedoLog::open(data_dir)?;
        let last_batch = redo::replay(&writer, &reader, data_dir)?;
        sync_wal(&path)?;
        redo.clear()?;
        let rewind = Arc::new(AtomicBool::new(false));
        let checkpointer = Checkpointer::start(path.clone(), rewind.clone())?;
        let text = fts::TextIndex::start(data_dir)?;
        let inner = Arc::new(Inner {
            path,
            writer: Mutex::new(Writer::new(writer, log, redo, last_batch + 1)?),
            uncommitted: AtomicBool::new(false),
            pending_flush: Mutex::new(None),
            log: reader,
            readers: Mutex::new(Vec::new()),
            queries: PriorityPool::new("loupe-query", QUERY_THREADS, QUERY_NICE),
            common_text: std::sync::atomic::AtomicI64::new(read::COMMON_TEXT),
            merge_ids_at: std::sync::atomic::AtomicUsize::new(write::MERGE_RECENT_IDS),
            _checkpointer: Some(checkpointer),
            rewind,
            text,
            data_dir: data_dir.to_path_buf(),
        });
        start_committer(Arc::downgrade(&inner))?;
        Ok(Self { inner })
    }

    /// Sets how many matching documents make a `text ~` word common, which picks its query
    /// plan (default 5,000). Both plans answer the same; tests use this to run each on small
    /// data.
    #[doc(hidden)]
    pub fn set_common_text_threshold(&self, documents: usize) {
        self.inner.common_text.store(
            i64::try_from(documents).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Sets how many new trace ids a commit moves to the large table at once (default
    /// 262,144); tests use a few, to read and write across merges.
    #[doc(hidden)]
    pub fn set_trace_id_merge_threshold(&self, ids: usize) {
        self.inner.merge_ids_at.store(ids.max(1), Ordering::Relaxed);
    }

    fn common_text(&self) -> i64 {
        self.inner.common_text.load(Ordering::Relaxed)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Flushes the write-ahead log to disk (every commit made so far becomes durable).
    fn sync_wal(&self) -> Result<(), StoreError> {
        sync_wal(&self.inner.path)
    }

    /// The writer, with the span batches it holds committed (see [`redo`]): for every other
    /// kind of write, which runs its own transaction.
    fn settled_writer(&self) -> Result<std::sync::MutexGuard<'_, Writer>, StoreError> {
        let mut w = self
            .inner
            .writer
            .lock()
            .map_err(|_| StoreError::internal("writer poisoned"))?;
        self.inner.commit(&mut w)?;
        Ok(w)
    }

    /// Runs `f` on a reader that sees every batch acknowledged so far: batches still in the
    /// writer's open transaction are committed first.
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.inner.uncommitted.load(Ordering::Acquire) {
            drop(self.settled_writer()?);
        }
        let conn = self
            .inner
            .readers
            .lock()
            .map_err(|_| StoreError::internal("reader pool poisoned"))?
            .pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.inner.path).map_err(db_err)?;
                schema::configure(&c, Role::Reader).map_err(db_err)?;
                fts::attach(&c, &self.inner.data_dir).map_err(db_err)?;
                c
            }
        };
        let out = f(&conn);
        if let Ok(mut pool) = self.inner.readers.lock()
            && pool.len() < MAX_IDLE_READERS
        {
            pool.push(conn);
        }
        out
    }

    /// Runs `f` on the writer connection, then makes it durable.
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let out = {
            let mut w = self.settled_writer()?;
            f(&mut w.conn)?
        };
        self.sync_wal()?;
        Ok(out)
    }

    /// Recomputes every span, a chunk per transaction: the writer lock is taken per chunk, so
    /// ingest batches interleave.
    fn recompute_all(&self, how: &Recompute) -> Result<RecomputeStats, StoreError> {
        let mut stats = RecomputeStats::default();
        let mut after = 0i64;
        loop {
            let next = {
                let mut w = self.settled_writer()?;
                recompute::recompute_chunk(&mut w.conn, &self.inner.log, how, after, &mut stats)?
            };
            match next {
                Some(last) => after = last,
                None => break,
            }
        }
        self.sync_wal()?;
        Ok(stats)
    }

    /// Waits until the text index holds every span stored so far.
    fn wait_for_text_index(&self) -> Result<(), StoreError> {
        let target: i64 = self.with_reader(|c| {
            c.query_row("SELECT coalesce(max(rowid), 0) FROM spans", [], |r| {
                r.get(0)
            })
            .map_err(db_err)
        })?;
        self.inner.text.wait_for(target)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| StoreError::internal(format!("store task failed: {e}")))?
    }

    /// Runs a search or aggregation on the low-priority query threads (see
    /// [`loupe_store::threads`]), so a long scan never slows ingest down. Point reads by id stay
    /// on [`Self::blocking`].
    async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        self.inner.queries.run(move || f(&this)).await?
    }
}

#[async_trait]
impl TraceStore for SqliteStore {
    async fn write_spans(&self, spans: Vec<EncodedSpan>) -> Result<WriteOutcome, StoreError> {
        if spans.is_empty() {
            return Ok(WriteOutcome::default());
        }
        self.blocking(move |s| s.inner.write_batch(&spans)).await
    }

    async fn list_traces(&self, query: TraceQuery) -> Result<TracePage, StoreError> {
        self.query(move |s| {
            s.with_reader(|c| read::list_traces(c, &s.inner.log, &query, s.common_text()))
        })
        .await
    }

    async fn get_trace_with(
        &self,
        trace_id: TraceId,
        bodies: SpanBodies,
    ) -> Result<Option<TraceDetail>, StoreError> {
        self.blocking(move |s| {
            s.with_reader(|c| read::get_trace(&s.inner.log, c, trace_id, &bodies))
        })
        .await
    }

    async fn stats(&self, query: StatsQuery) -> Result<Vec<StatsGroup>, StoreError> {
        self.query(move |s| s.with_reader(|c| stats::stats(c, &query)))
            .await
    }

    async fn list_spans(
        &self,
        filter: Option<loupe_query::Expr>,
        limit: usize,
        before: Option<(i64, i64)>,
    ) -> Result<loupe_store::SpanPage, StoreError> {
        self.query(move |s| {
            s.with_reader(|c| stats::list_spans(c, &s.inner.log, filter.as_ref(), limit, before))
        })
        .await
    }

    async fn list_sessions(&self, query: SessionQuery) -> Result<SessionPage, StoreError> {
        self.query(move |s| s.with_reader(|c| sessions::list_sessions(c, &query)))
            .await
    }

    async fn get_session(
        &self,
        session_id: String,
        limit: usize,
    ) -> Result<Option<(SessionSummary, Vec<TraceSummary>)>, StoreError> {
        self.query(move |s| s.with_reader(|c| sessions::get_session(c, &session_id, limit)))
            .await
    }

    async fn write_events(&self, events: Vec<EncodedEvent>) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        self.blocking(move |s| s.with_writer(|c| write::write_events(c, &events)))
            .await
    }

    async fn recompute(&self, how: Recompute) -> Result<RecomputeStats, StoreError> {
        self.blocking(move |s| s.recompute_all(&how)).await
    }

    async fn create_experiment(
        &self,
        name: String,
        artifact_location: Option<String>,
        tags: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Experiment, StoreError> {
        self.blocking(move |s| {
            s.with_writer(|c| {
                annotate::create_experiment(c, &name, artifact_location.as_deref(), &tags)
            })
        })
        .await
    }

    async fn experiment(&self, key: ExperimentKey) -> Result<Option<Experiment>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| annotate::experiment(c, &key)))
            .await
    }

    async fn list_experiments(&self) -> Result<Vec<Experiment>, StoreError> {
        self.blocking(move |s| s.with_reader(annotate::list_experiments))
            .await
    }

    async fn upsert_trace_info(&self, update: TraceInfoUpdate) -> Result<TraceSummary, StoreError> {
        self.blocking(move |s| s.with_writer(|c| annotate::upsert_trace_info(c, &update)))
            .await
    }

    async fn trace_summaries(&self, ids: Vec<TraceId>) -> Result<Vec<TraceSummary>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| annotate::trace_summaries(c, &ids)))
            .await
    }

    async fn set_trace_tag(
        &self,
        trace_id: TraceId,
        key: String,
        value: Option<serde_json::Value>,
    ) -> Result<bool, StoreError> {
        self.blocking(move |s| {
            s.with_writer(|c| annotate::set_trace_tag(c, &trace_id, &key, value.as_ref()))
        })
        .await
    }

    async fn delete_traces(&self, which: TraceSelection) -> Result<u64, StoreError> {
        self.blocking(move |s| {
            s.with_writer(|c| {
                annotate::delete_traces(c, &which, &|seqs, min_span| {
                    s.inner.text.forget(seqs, min_span)
                })
            })
        })
        .await
    }

    async fn flush_text_index(&self) -> Result<(), StoreError> {
        self.blocking(|s| s.wait_for_text_index()).await
    }

    async fn put_assessments(&self, assessments: Vec<Assessment>) -> Result<(), StoreError> {
        if assessments.is_empty() {
            return Ok(());
        }
        self.blocking(move |s| s.inner.write_assessments(&assessments))
            .await
    }

    async fn assessment(&self, assessment_id: String) -> Result<Option<Assessment>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| annotate::assessment(c, &assessment_id)))
            .await
    }

    async fn assessments(&self, trace_ids: Vec<TraceId>) -> Result<Vec<Assessment>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| annotate::assessments(c, &trace_ids)))
            .await
    }

    async fn trace_models(
        &self,
        trace_ids: Vec<TraceId>,
    ) -> Result<std::collections::HashMap<TraceId, Vec<String>>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| annotate::trace_models(c, &trace_ids)))
            .await
    }

    async fn delete_assessment(
        &self,
        trace_id: TraceId,
        assessment_id: String,
    ) -> Result<bool, StoreError> {
        self.blocking(move |s| {
            s.with_writer(|c| annotate::delete_assessment(c, &trace_id, &assessment_id))
        })
        .await
    }

    async fn create_dataset(&self, d: EvalDataset) -> Result<(), StoreError> {
        self.blocking(move |s| s.with_writer(|c| datasets::create_dataset(c, &d)))
            .await
    }

    async fn dataset(&self, id: String) -> Result<Option<EvalDataset>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| datasets::dataset(c, &id)))
            .await
    }

    async fn datasets(&self) -> Result<Vec<EvalDataset>, StoreError> {
        self.blocking(move |s| s.with_reader(datasets::datasets))
            .await
    }

    async fn change_dataset(
        &self,
        id: String,
        change: DatasetChange,
        now: i64,
    ) -> Result<EvalDataset, StoreError> {
        self.blocking(move |s| s.with_writer(|c| datasets::change_dataset(c, &id, &change, now)))
            .await
    }

    async fn delete_dataset(&self, id: String) -> Result<bool, StoreError> {
        self.blocking(move |s| s.with_writer(|c| datasets::delete_dataset(c, &id)))
            .await
    }

    async fn upsert_dataset_records(&self, u: RecordUpsert) -> Result<(u64, u64), StoreError> {
        self.blocking(move |s| s.with_writer(|c| datasets::upsert_records(c, &u)))
            .await
    }

    async fn dataset_records(
        &self,
        id: String,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<serde_json::Value>, u64), StoreError> {
        self.blocking(move |s| s.with_reader(|c| datasets::records(c, &id, offset, limit)))
            .await
    }

    async fn delete_dataset_records(
        &self,
        id: String,
        record_ids: Vec<String>,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.blocking(move |s| {
            s.with_writer(|c| datasets::delete_records(c, &id, &record_ids, now))
        })
        .await
    }

    async fn register_scorer(
        &self,
        experiment_id: String,
        name: String,
        serialized: String,
        new_id: String,
        now: i64,
    ) -> Result<ScorerVersion, StoreError> {
        self.blocking(move |s| {
            s.with_writer(|c| {
                scorers::register(c, &experiment_id, &name, &serialized, &new_id, now)
            })
        })
        .await
    }

    async fn scorers(&self, experiment_id: String) -> Result<Vec<ScorerVersion>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| scorers::list(c, &experiment_id)))
            .await
    }

    async fn delete_scorer(
        &self,
        experiment_id: String,
        name: String,
        version: Option<i64>,
    ) -> Result<u64, StoreError> {
        self.blocking(move |s| {
            s.with_writer(|c| scorers::delete(c, &experiment_id, &name, version))
        })
        .await
    }

    async fn put_online_config(&self, config: OnlineConfig) -> Result<(), StoreError> {
        self.blocking(move |s| s.with_writer(|c| scorers::put_config(c, &config)))
            .await
    }

    async fn online_configs(&self, ids: Vec<String>) -> Result<Vec<OnlineConfig>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| scorers::configs(c, &ids)))
            .await
    }

    async fn create_run(&self, run: Run) -> Result<(), StoreError> {
        self.blocking(move |s| s.with_writer(|c| runs::create_run(c, &run)))
            .await
    }

    async fn run(&self, run_id: String) -> Result<Option<Run>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| runs::run(c, &run_id)))
            .await
    }

    async fn change_run(&self, run_id: String, change: RunChange) -> Result<Run, StoreError> {
        self.blocking(move |s| s.with_writer(|c| runs::change_run(c, &run_id, &change)))
            .await
    }

    async fn runs(&self, experiment_ids: Vec<String>) -> Result<Vec<Run>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| runs::runs(c, &experiment_ids)))
            .await
    }

    async fn metric_history(&self, run_id: String, key: String) -> Result<Vec<Metric>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| runs::metric_history(c, &run_id, &key)))
            .await
    }
}

#[cfg(test)]
mod tests;
