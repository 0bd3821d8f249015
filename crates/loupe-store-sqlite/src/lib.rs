//! Loupe's embedded default store: one SQLite file in WAL mode.
//!
//! One writer connection, used by one batch at a time (the ingest queue groups requests into
//! batches, so one fsync acknowledges many requests); a small pool of reader connections that
//! never wait on the writer. Traces get a sequential number on first sight, and spans are keyed
//! by (trace number, span id), so inserts append to the end of the B-trees instead of landing at
//! random points in them.

mod annotate;
mod bodylog;
mod fts;
mod read;
mod recompute;
mod schema;
mod sessions;
mod stats;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use loupe_model::TraceId;
use loupe_model::TraceSummary;
use loupe_store::threads::{PriorityPool, QUERY_NICE};
use loupe_store::{
    Assessment, EncodedEvent, EncodedSpan, Experiment, ExperimentKey, Recompute, RecomputeStats,
    SessionPage, SessionQuery, SessionSummary, SpanBodies, StatsGroup, StatsQuery, StoreError,
    TraceDetail, TraceInfoUpdate, TracePage, TraceQuery, TraceSelection, TraceStore, WriteOutcome,
};
use rusqlite::Connection;

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

struct Inner {
    path: PathBuf,
    writer: Mutex<Writer>,
    /// Reads span bodies from the body log.
    log: bodylog::LogReader,
    readers: Mutex<Vec<Connection>>,
    /// The low-priority threads that run searches and aggregations.
    queries: PriorityPool,
    /// Matches past which a `text ~` word counts as common (see `read::text_plan`).
    common_text: std::sync::atomic::AtomicI64,
    /// Held for its `Drop`: stops the thread after a last checkpoint.
    _checkpointer: Option<Checkpointer>,
    /// Set when the writer should complete a checkpoint (see [`Checkpointer`]).
    rewind: Arc<AtomicBool>,
    /// The full-text index and its background indexer.
    text: fts::TextIndex,
    data_dir: PathBuf,
}

/// The writer's connection and the body log it appends to, used under one lock.
struct Writer {
    conn: Connection,
    log: bodylog::LogWriter,
}

/// Copies committed WAL frames into the database file on its own thread and connection, so the
/// writer's commits never pay for it (the writer's automatic checkpoints are off).
///
/// Under steady load a background checkpoint never catches the writer, and SQLite only rewinds
/// the WAL when a write begins with every frame copied back. So when the WAL passes
/// [`WAL_REWIND_FRAMES`], the checkpointer copies again at once, pass after pass, until fewer
/// than [`REWIND_LAG_FRAMES`] frames are left; then it raises `rewind`, and the writer, after
/// its next commit, copies those few itself; its next transaction starts the WAL from the
/// beginning again. The writer holds the only write lock, so what it copies holds up ingest:
/// raising `rewind` as soon as the WAL passed the mark, the writer copied half of all frames
/// itself under `loupe bench ingest` (a quarter-second of frames at each rewind), 4% of the
/// server's CPU inside the lock. Should the checkpointer never get that close (readers that
/// hold old frames, a disk slower than ingest), past [`WAL_MAX_FRAMES`] it waits for them and
/// restarts the WAL itself, so the WAL stays bounded.
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// WAL length (in pages) past which the WAL is rewound (see [`Checkpointer`]).
const WAL_REWIND_FRAMES: i64 = 8_192;
/// Frames the writer may be left to copy itself when it rewinds the WAL: a few commits' worth
/// at full ingest (a commit of ~1,500 spans writes ~1,300 frames). Less than one commit's worth
/// and the checkpointer, a commit behind after every pass, never lets the writer rewind.
const REWIND_LAG_FRAMES: i64 = 4_096;
/// WAL length (in pages, 4 GiB) past which the checkpointer waits for readers and the writer to
/// copy every frame and restart the WAL. Ingest pauses meanwhile (at most the busy timeout), so
/// this is only a bound for readers that pin the WAL for long: 14 s of back-to-back
/// aggregations under full ingest (`loupe bench query`, 1M traces) grow it to ~1.8 GB and back;
/// a 1 GiB cap paused ingest there (59% of its speed alone; 79% with this cap).
const WAL_MAX_FRAMES: i64 = if cfg!(test) { 1_024 } else { 1_048_576 };

impl Checkpointer {
    fn start(path: PathBuf, rewind: Arc<AtomicBool>) -> Result<Self, StoreError> {
        let conn = Connection::open(&path).map_err(db_err)?;
        schema::configure(&conn, false).map_err(db_err)?;
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("loupe-checkpoint".into())
            .spawn(move || {
                let mut wait = CHECKPOINT_EVERY;
                let mut last_done = 0;
                loop {
                    match rx.recv_timeout(wait) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                            });
                            wait = CHECKPOINT_EVERY;
                            match r {
                                Ok((log, done)) if log > WAL_MAX_FRAMES => {
                                    tracing::info!(
                                        frames = log,
                                        copied = done,
                                        "the WAL is past its cap; waiting for readers to restart it"
                                    );
                                    // Readers held the frames back for long (queries that
                                    // never pause). The longer the WAL, the slower every read
                                    // (SQLite looks each page up in the WAL first), the longer
                                    // the queries: a loop that grew a WAL to 33 GB. Past the
                                    // cap, wait for the readers of old frames and for the
                                    // writer (up to the busy timeout), copy everything and
                                    // start the WAL over; ingest pauses for that copy.
                                    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(RESTART)") {
                                        tracing::warn!(error = %e, "checkpoint of a long WAL failed");
                                    }
                                    last_done = 0;
                                }
                                Ok((log, done)) if log > WAL_REWIND_FRAMES => {
                                    if log - done <= REWIND_LAG_FRAMES {
                                        rewind.store(true, Ordering::Relaxed);
                                    } else if done > last_done {
                                        // Behind: copy what was committed meanwhile, at once.
                                        // (No progress means a reader's snapshot holds the
                                        // frames back: then wait as usual.)
                                        wait = std::time::Duration::ZERO;
                                    }
                                    last_done = done;
                                }
                                Ok(_) => {}
                                Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
                            }
                        }
                        _ => {
                            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
                            return;
                        }
                    }
                }
            })
            .map_err(|e| {
                StoreError::internal(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How often committed WAL frames are copied into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

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
        schema::configure(&writer, true).map_err(db_err)?;
        schema::migrate(&mut writer)?;
        let log = bodylog::LogWriter::open(data_dir)?;
        let rewind = Arc::new(AtomicBool::new(false));
        let checkpointer = Checkpointer::start(path.clone(), rewind.clone())?;
        let text = fts::TextIndex::start(data_dir)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(Writer { conn: writer, log }),
                log: bodylog::LogReader::new(data_dir),
                readers: Mutex::new(Vec::new()),
                queries: PriorityPool::new("loupe-query", QUERY_THREADS, QUERY_NICE),
                common_text: std::sync::atomic::AtomicI64::new(read::COMMON_TEXT),
                _checkpointer: Some(checkpointer),
                rewind,
                text,
                data_dir: data_dir.to_path_buf(),
            }),
        })
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

    fn common_text(&self) -> i64 {
        self.inner.common_text.load(Ordering::Relaxed)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Flushes the write-ahead log to disk (every commit made so far becomes durable).
    fn sync_wal(&self) -> Result<(), StoreError> {
        let mut wal = self.inner.path.clone().into_os_string();
        wal.push("-wal");
        std::fs::File::open(&wal)
            .and_then(|f| f.sync_data())
            .map_err(|e| StoreError::unavailable(format!("cannot flush the write-ahead log: {e}")))
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
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
                schema::configure(&c, false).map_err(db_err)?;
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
            let mut w = self
                .inner
                .writer
                .lock()
                .map_err(|_| StoreError::internal("writer poisoned"))?;
            f(&mut w.conn)?
        };
        self.sync_wal()?;
        Ok(out)
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
        self.blocking(move |s| {
            let t0 = std::time::Instant::now();
            let (outcome, segment) = {
                let mut w = s
                    .inner
                    .writer
                    .lock()
                    .map_err(|_| StoreError::internal("writer poisoned"))?;
                let locked = t0.elapsed();
                let Writer { conn, log } = &mut *w;
                let outcome = write::write_spans(conn, log, &spans)?;
                if s.inner.rewind.swap(false, Ordering::Relaxed)
                    && let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
                {
                    tracing::warn!(error = %e, "writer checkpoint failed");
                }
                tracing::debug!(?locked, insert = ?(t0.elapsed() - locked), "writer");
                (outcome, log.file())
            };
            // The commit is in the WAL and the bodies in the log; make both durable before
            // anyone is told they are stored. This runs outside the writer lock, so the next
            // batch is already being inserted.
            let t1 = std::time::Instant::now();
            segment.sync_data().map_err(|e| {
                StoreError::unavailable(format!("cannot flush the body log: {e}"))
            })?;
            let t2 = std::time::Instant::now();
            s.sync_wal()?;
            s.inner.text.notify();
            tracing::debug!(seg_sync = ?(t2 - t1), spans = spans.len(), lock_and_insert = ?(t1 - t0), fsync = ?t1.elapsed(), "sqlite write");
            Ok(outcome)
        })
        .await
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
        self.blocking(move |s| {
            let n = {
                let mut w = s
                    .inner
                    .writer
                    .lock()
                    .map_err(|_| StoreError::internal("writer poisoned"))?;
                write::write_events(&mut w.conn, &events)?
            };
            s.sync_wal()?;
            Ok(n)
        })
        .await
    }

    async fn recompute(&self, how: Recompute) -> Result<RecomputeStats, StoreError> {
        self.blocking(move |s| {
            let mut stats = RecomputeStats::default();
            let mut after = 0i64;
            loop {
                // Take the writer lock per chunk, so ingest batches interleave.
                let next = {
                    let mut w = s
                        .inner
                        .writer
                        .lock()
                        .map_err(|_| StoreError::internal("writer poisoned"))?;
                    recompute::recompute_chunk(&mut w.conn, &s.inner.log, &how, after, &mut stats)?
                };
                match next {
                    Some(last) => after = last,
                    None => break,
                }
            }
            s.sync_wal()?;
            Ok(stats)
        })
        .await
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
        self.blocking(|s| {
            let target: i64 = s.with_reader(|c| {
                c.query_row("SELECT coalesce(max(rowid), 0) FROM spans", [], |r| {
                    r.get(0)
                })
                .map_err(db_err)
            })?;
            s.inner.text.wait_for(target)
        })
        .await
    }

    async fn put_assessment(
        &self,
        trace_id: TraceId,
        assessment: Assessment,
    ) -> Result<bool, StoreError> {
        self.blocking(move |s| {
            s.with_writer(|c| annotate::put_assessment(c, &trace_id, &assessment))
        })
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
}

#[cfg(test)]
mod tests;
