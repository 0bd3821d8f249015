//! Loupe's embedded default store: one SQLite file in WAL mode.
//!
//! One writer connection, used by one batch at a time (the ingest queue groups requests into
//! batches, so one flush to disk acknowledges many requests); a small pool of reader
//! connections, which do not hold the writer up (a read first commits the batches gathered in
//! the writer's open transaction). Traces get a sequential number on first sight, and spans are
//! keyed by (trace number, span id), so inserts append to the end of the B-trees instead of
//! landing at random points in them.

mod annotate;
mod bodylog;
mod checkpoint;
mod fts;
mod read;
mod recompute;
mod redo;
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

use checkpoint::Checkpointer;

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
    /// Set while span batches are applied but not committed: reads commit them first.
    uncommitted: AtomicBool,
    /// The last commit of span batches, while it is not known to be on disk (see
    /// [`Inner::commit`]).
    owed: Mutex<Option<Owed>>,
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

/// The writer's connection, the body log and the redo log it appends to, used under one lock.
struct Writer {
    conn: Connection,
    log: bodylog::LogWriter,
    redo: redo::RedoLog,
    /// Number of the next span batch (see [`redo`]).
    next_batch: u64,
    /// The transaction span batches go into, while it is open.
    open: Option<OpenTx>,
    /// A batch's redo record, built while it is applied (reused).
    record: Vec<u8>,
    /// Trace ids in `trace_ids_recent` (see [`write::SEQ_OF_ID`]).
    recent_ids: usize,
}

/// A commit of span batches that is not known to be on disk yet: the body log segment it
/// points into and the WAL are still to be flushed, and then the redo file that held its
/// batches emptied.
struct Owed {
    segment: Arc<std::fs::File>,
    redo: Arc<std::fs::File>,
}

/// The writer's open transaction.
struct OpenTx {
    since: std::time::Instant,
    spans: usize,
}

/// How long span batches gather in the writer's open transaction before it commits (see
/// [`redo`]); a read, or any other write, commits it at once. Trace starts and ids arrive in
/// scattered order, so new traces insert at scattered pages of the trace table's indexes; the
/// longer the transaction, the more of those inserts land on a page it has dirtied already, and
/// the fewer pages its commit copies into the WAL. The saving grows with the indexes, and needs
/// the writer's cache (`schema::configure`) to hold a second of dirty pages (figures:
/// docs/performance.md, "SQLite writer and commit interval"). Reads under ingest commit what
/// gathered since the read before.
/// Unit tests never commit on time, so every read in them goes through the commit that reads
/// make first.
pub(crate) const COMMIT_EVERY: std::time::Duration = if cfg!(test) {
    std::time::Duration::from_secs(3_600)
} else {
    std::time::Duration::from_secs(1)
};

/// Spans past which the open transaction commits whatever its age (bounds its dirty pages).
const MAX_OPEN_SPANS: usize = 250_000;

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

/// Flushes the write-ahead log of the database at `path` to disk (every commit made so far
/// becomes durable).
fn sync_wal(path: &Path) -> Result<(), StoreError> {
    let mut wal = path.to_path_buf().into_os_string();
    wal.push("-wal");
    match std::fs::File::open(&wal) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(|e| StoreError::unavailable(format!("cannot flush the write-ahead log: {e}")))
}

/// Trace ids in `trace_ids_recent`.
fn recent_ids(conn: &Connection) -> Result<usize, StoreError> {
    conn.query_row("SELECT count(*) FROM trace_ids_recent", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| usize::try_from(n).unwrap_or(0))
    .map_err(db_err)
}

/// Records, in the open transaction, that it holds span batches up to `n`.
pub(crate) fn set_batch_mark(conn: &Connection, n: u64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE loupe_meta SET value = ?1 WHERE key = 'redo_applied'")
        .and_then(|mut st| st.execute([i64::try_from(n).unwrap_or(i64::MAX)]))
        .map_err(db_err)?;
    Ok(())
}

/// Makes each commit of span batches durable, off the writer lock (see [`Inner::commit`]), and
/// commits the writer's open transaction once it is [`COMMIT_EVERY`] old, when no batch came
/// to do it (light load). Stops when the store is dropped.
fn start_committer(inner: std::sync::Weak<Inner>) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("loupe-commit".into())
        .spawn(move || {
            loop {
                std::thread::sleep(COMMIT_EVERY / 8);
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                if let Err(e) = inner.pay_owed() {
                    tracing::error!(error = %e, "cannot flush the last commit");
                }
                if !inner.uncommitted.load(Ordering::Acquire) {
                    continue;
                }
                let Ok(mut w) = inner.writer.lock() else {
                    return;
                };
                if w.open
                    .as_ref()
                    .is_some_and(|o| o.since.elapsed() >= COMMIT_EVERY)
                    && let Err(e) = inner.commit(&mut w)
                {
                    tracing::error!(error = %e, "commit failed");
                }
            }
        })
        .map_err(|e| StoreError::internal(format!("cannot start the commit thread: {e}")))?;
    Ok(())
}

impl Inner {
    /// Applies a span batch in the writer's open transaction (opening one if needed) and
    /// writes its bodies and redo record; the caller flushes both before acknowledging it.
    fn apply(&self, w: &mut Writer, spans: &[EncodedSpan]) -> Result<WriteOutcome, StoreError> {
        if w.open.is_none() {
            if !w.conn.is_autocommit() {
                // Left open by a replay that failed half-way (see `restart`).
                let _ = w.conn.execute_batch("ROLLBACK");
            }
            w.conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
            w.open = Some(OpenTx {
                since: std::time::Instant::now(),
                spans: 0,
            });
        }
        let n = w.next_batch;
        let Writer {
            conn,
            log,
            redo,
            record,
            recent_ids,
            ..
        } = w;
        record.clear();
        let applied = log.begin().and_then(|()| {
            let outcome = write::apply_spans(
                conn,
                write::Place::Live {
                    log,
                    placed: std::collections::HashMap::with_capacity(spans.len() / 4 + 1),
                },
                spans,
                None,
                record,
                recent_ids,
            )?;
            // Bodies first, so a redo record never points past what the log holds.
            log.flush_pending()?;
            set_batch_mark(conn, n)?;
            redo.append(n, record)?;
            Ok(outcome)
        });
        match applied {
            Ok(outcome) => {
                w.next_batch += 1;
                if let Some(open) = &mut w.open {
                    open.spans += spans.len();
                }
                self.uncommitted.store(true, Ordering::Release);
                Ok(outcome)
            }
            Err(e) => {
                // Undo the failed batch: roll the open transaction back, and apply the batches
                // it held again from the redo log (a savepoint per batch would do it in place,
                // but makes SQLite copy every page a batch touches: it cost more than the
                // commits it saved). The failed batch is not in the redo log.
                self.restart(w)?;
                Err(e)
            }
        }
    }

    /// Commits the span batches of the writer's open transaction. Nothing to do without an
    /// open transaction.
    ///
    /// The commit is not flushed here: its batches are on disk in the redo log already. It
    /// switches the redo log to its other file and leaves the flush owed ([`Owed`]): the commit
    /// thread flushes the body log and the WAL and then empties the file left, while the writer
    /// goes on. Flushing inside the writer lock held up every batch behind it for as long as the
    /// flushes took (figures: docs/performance.md, "SQLite writer and commit interval"). Should
    /// the next commit come before the owed flush is done, it does it first, so the file it
    /// switches back to is empty.
    fn commit(&self, w: &mut Writer) -> Result<(), StoreError> {
        if w.open.is_none() {
            return Ok(());
        }
        if w.recent_ids >= self.merge_ids_at.load(Ordering::Relaxed) {
            let started = std::time::Instant::now();
            match write::merge_recent_ids(&w.conn) {
                Ok(()) => {
                    tracing::debug!(ids = w.recent_ids, took = ?started.elapsed(), "recent trace ids merged");
                    w.recent_ids = 0;
                }
                // Both tables are read, so the ids stay found; the next commit tries again.
                Err(e) => tracing::warn!(error = %e, "cannot merge the recent trace ids"),
            }
        }
        if let Err(e) = w.conn.execute_batch("COMMIT") {
            tracing::error!(error = %e, "commit failed; replaying the redo log");
            self.restart(w)?;
        }
        w.open = None;
        self.uncommitted.store(false, Ordering::Release);
        self.text.notify();
        {
            let mut owed = self
                .owed
                .lock()
                .map_err(|_| StoreError::internal("flush state poisoned"))?;
            self.pay(&mut owed)?;
            let redo = w.redo.switch()?;
            *owed = Some(Owed {
                segment: w.log.file(),
                redo,
            });
        }
        if self.rewind.swap(false, Ordering::Relaxed)
            && let Err(e) = w.conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
        {
            tracing::warn!(error = %e, "writer checkpoint failed");
        }
        Ok(())
    }

    /// Makes the last commit durable if it is not known to be: flushes the body log and the
    /// WAL, then empties the redo file that held its batches.
    fn pay(&self, owed: &mut Option<Owed>) -> Result<(), StoreError> {
        let Some(o) = owed.as_ref() else {
            return Ok(());
        };
        o.segment
            .sync_data()
            .map_err(|e| StoreError::unavailable(format!("cannot flush the body log: {e}")))?;
        sync_wal(&self.path)?;
        redo::empty(&o.redo)?;
        *owed = None;
        Ok(())
    }

    /// [`Inner::pay`], from outside the writer lock.
    fn pay_owed(&self) -> Result<(), StoreError> {
        let mut owed = self
            .owed
            .lock()
            .map_err(|_| StoreError::internal("flush state poisoned"))?;
        self.pay(&mut owed)
    }

    /// Rolls the open transaction back and applies its batches again from the redo log.
    fn restart(&self, w: &mut Writer) -> Result<(), StoreError> {
        if !w.conn.is_autocommit() {
            let _ = w.conn.execute_batch("ROLLBACK");
        }
        w.open = None;
        let last = redo::replay(&w.conn, &self.log, &self.data_dir)?;
        if last + 1 != w.next_batch {
            tracing::error!(
                replayed_to = last,
                written_to = w.next_batch - 1,
                "the redo log did not replay every batch written"
            );
        }
        w.next_batch = last + 1;
        w.recent_ids = recent_ids(&w.conn)?;
        self.uncommitted.store(false, Ordering::Release);
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut w) = self.writer.lock()
            && let Err(e) = self.commit(&mut w).and_then(|()| self.pay_owed())
        {
            tracing::error!(error = %e, "final commit failed (the redo log keeps the batches)");
        }
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
        schema::configure(&writer, schema::Role::Writer).map_err(db_err)?;
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
            writer: Mutex::new(Writer {
                recent_ids: recent_ids(&writer)?,
                conn: writer,
                log,
                redo,
                next_batch: last_batch + 1,
                open: None,
                record: Vec::new(),
            }),
            uncommitted: AtomicBool::new(false),
            owed: Mutex::new(None),
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
                schema::configure(&c, schema::Role::Reader).map_err(db_err)?;
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
            let (outcome, segment, redo) = {
                let mut w = s
                    .inner
                    .writer
                    .lock()
                    .map_err(|_| StoreError::internal("writer poisoned"))?;
                let outcome = s.inner.apply(&mut w, &spans)?;
                let open = w.open.as_ref().map_or((std::time::Duration::ZERO, 0), |o| {
                    (o.since.elapsed(), o.spans)
                });
                if open.0 >= COMMIT_EVERY || open.1 >= MAX_OPEN_SPANS {
                    s.inner.commit(&mut w)?;
                }
                (outcome, w.log.file(), w.redo.file())
            };
            // The batch's bodies and its redo record are written; make both durable before
            // anyone is told it is stored. This runs outside the writer lock, so the next batch
            // is already being applied.
            segment
                .sync_data()
                .map_err(|e| StoreError::unavailable(format!("cannot flush the body log: {e}")))?;
            redo.sync_data()
                .map_err(|e| StoreError::unavailable(format!("cannot flush the redo log: {e}")))?;
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
                let mut w = s.settled_writer()?;
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
                    let mut w = s.settled_writer()?;
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

    async fn put_assessments(&self, assessments: Vec<Assessment>) -> Result<(), StoreError> {
        self.blocking(move |s| s.with_writer(|c| annotate::put_assessments(c, &assessments)))
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
}

#[cfg(test)]
mod tests;
