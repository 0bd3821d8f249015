//! The writer: span batches applied in one open transaction, its commits, and the commit thread
//! that makes each commit durable off the writer lock.
//!
//! A batch is acknowledged once its bodies and its redo record are on disk
//! ([`Inner::write_batch`]); the transaction holding it commits later ([`COMMIT_EVERY`],
//! [`MAX_OPEN_SPANS`], or at once when a read or another kind of write needs it). A commit
//! leaves its flushes (body log, WAL) and the emptying of its redo file as a [`PendingFlush`]
//! for the commit thread. See [`crate::redo`] for why, and for what a crash leaves behind.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use loupe_model::Assessment;
use loupe_store::{EncodedSpan, StoreError, WriteOutcome};
use rusqlite::Connection;

use crate::redo::RecordKind;
use crate::{Inner, bodylog, db_err, redo, write};

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
pub(crate) const COMMIT_EVERY: Duration = if cfg!(test) {
    Duration::from_secs(3_600)
} else {
    Duration::from_secs(1)
};

/// Spans past which the open transaction commits whatever its age (bounds its dirty pages).
const MAX_OPEN_SPANS: usize = 250_000;

/// The writer's connection, the body log and the redo log it appends to, used under one lock.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
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
    /// The database lacks batches the redo log holds: a rollback's replay failed (a full
    /// disk, say). No new batch is taken until a replay succeeds, or its commit would mark
    /// the missing ones applied and the redo file holding them would be emptied.
    stale: bool,
}

impl Writer {
    /// The writer of a database whose redo log is replayed up to `next_batch - 1`.
    pub(crate) fn new(
        conn: Connection,
        log: bodylog::LogWriter,
        redo: redo::RedoLog,
        next_batch: u64,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            recent_ids: recent_ids(&conn)?,
            stale: false,
            conn,
            log,
            redo,
            next_batch,
            open: None,
            record: Vec::new(),
        })
    }
}

/// The flushes a commit of span batches still owes before it is known to be on disk: the body
/// log segment it points into and the WAL are still to be flushed, and then the redo file that
/// held its batches emptied.
pub(crate) struct PendingFlush {
    segment: Arc<std::fs::File>,
    redo: Arc<std::fs::File>,
}

/// The writer's open transaction.
struct OpenTx {
    since: Instant,
    spans: usize,
}

/// Flushes the write-ahead log of the database at `path` to disk (every commit made so far
/// becomes durable).
pub(crate) fn sync_wal(path: &Path) -> Result<(), StoreError> {
    let mut wal = path.to_path_buf().into_os_string();
    wal.push("-wal");
    match std::fs::File::open(&wal) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(|e| StoreError::io("cannot flush the write-ahead log", &e))
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
pub(crate) fn start_committer(inner: std::sync::Weak<Inner>) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("loupe-commit".into())
        .spawn(move || {
            loop {
                std::thread::sleep(COMMIT_EVERY / 8);
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                if let Err(e) = inner.flush_pending() {
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
    /// Applies a span batch, commits the open transaction if it is old or large enough, and
    /// makes the batch durable (its bodies and its redo record flushed) before it returns, so
    /// that the caller may acknowledge it.
    pub(crate) fn write_batch(&self, spans: &[EncodedSpan]) -> Result<WriteOutcome, StoreError> {
        let (outcome, segment, redo) = {
            let mut w = self
                .writer
                .lock()
                .map_err(|_| StoreError::internal("writer poisoned"))?;
            let outcome = self.apply(&mut w, spans)?;
            self.commit_if_due(&mut w)?;
            (outcome, w.log.file(), w.redo.file())
        };
        // The batch's bodies and its redo record are written; make both durable before anyone
        // is told it is stored. This runs outside the writer lock, so the next batch is already
        // being applied.
        segment
            .sync_data()
            .map_err(|e| StoreError::io("cannot flush the body log", &e))?;
        redo.sync_data()
            .map_err(|e| StoreError::io("cannot flush the redo log", &e))?;
        Ok(outcome)
    }

    /// Applies assessments in the writer's open transaction, as a batch of the redo log of
    /// their own, and makes their record durable before it returns. They join the next commit
    /// of span batches (see `redo.rs`); a missing trace refuses the batch and changes nothing.
    pub(crate) fn write_assessments(&self, assessments: &[Assessment]) -> Result<(), StoreError> {
        let payload = redo::encode_assessments(assessments)?;
        let redo = {
            let mut w = self
                .writer
                .lock()
                .map_err(|_| StoreError::internal("writer poisoned"))?;
            self.open(&mut w)?;
            let n = w.next_batch;
            let applied = crate::annotate::apply_assessments(&w.conn, assessments)
                .and_then(|()| set_batch_mark(&w.conn, n))
                .and_then(|()| w.redo.append(n, RecordKind::Assessments, &payload));
            match applied {
                Ok(()) => {
                    w.next_batch += 1;
                    self.uncommitted.store(true, Ordering::Release);
                }
                // Refused before anything was written.
                Err(e) if e.kind == loupe_store::ErrorKind::NotFound => return Err(e),
                Err(e) => {
                    self.restart(&mut w)?;
                    return Err(e);
                }
            }
            self.commit_if_due(&mut w)?;
            w.redo.file()
        };
        redo.sync_data()
            .map_err(|e| StoreError::io("cannot flush the redo log", &e))
    }

    /// Opens the writer's transaction if none is open (after replaying the redo log, if an
    /// earlier replay failed).
    fn open(&self, w: &mut Writer) -> Result<(), StoreError> {
        if w.stale {
            self.restart(w)?;
        }
        if w.open.is_none() {
            if !w.conn.is_autocommit() {
                // Left open by a replay that failed half-way (see `restart`).
                let _ = w.conn.execute_batch("ROLLBACK");
            }
            w.conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
            w.open = Some(OpenTx {
                since: Instant::now(),
                spans: 0,
            });
        }
        Ok(())
    }

    /// Commits the open transaction once it is [`COMMIT_EVERY`] old or holds
    /// [`MAX_OPEN_SPANS`].
    fn commit_if_due(&self, w: &mut Writer) -> Result<(), StoreError> {
        let open = w
            .open
            .as_ref()
            .map_or((Duration::ZERO, 0), |o| (o.since.elapsed(), o.spans));
        if open.0 >= COMMIT_EVERY || open.1 >= MAX_OPEN_SPANS {
            self.commit(w)?;
        }
        Ok(())
    }

    /// Applies a span batch in the writer's open transaction (opening one if needed) and
    /// writes its bodies and redo record; the caller flushes both before acknowledging it.
    fn apply(&self, w: &mut Writer, spans: &[EncodedSpan]) -> Result<WriteOutcome, StoreError> {
        self.open(w)?;
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
            redo.append(n, RecordKind::Spans, record)?;
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
    /// switches the redo log to its other file and leaves the flush pending ([`PendingFlush`]):
    /// the commit thread flushes the body log and the WAL and then empties the file left, while
    /// the writer goes on. Flushing inside the writer lock held up every batch behind it for as
    /// long as the flushes took (figures: docs/performance.md, "SQLite writer and commit
    /// interval"). Should the next commit come before the pending flush is done, it does it
    /// first, so the file it switches back to is empty.
    pub(crate) fn commit(&self, w: &mut Writer) -> Result<(), StoreError> {
        if w.open.is_none() {
            return Ok(());
        }
        if w.recent_ids >= self.merge_ids_at.load(Ordering::Relaxed)
            && w.recent_ids >= write::traces_stored(&w.conn)? / write::MERGE_SHARE
        {
            let started = Instant::now();
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
            let mut pending = self
                .pending_flush
                .lock()
                .map_err(|_| StoreError::internal("flush state poisoned"))?;
            self.complete_flush(&mut pending)?;
            let redo = w.redo.switch()?;
            *pending = Some(PendingFlush {
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
    /// WAL, then empties the redo file that held its batches. `pending` is the locked
    /// [`Inner::pending_flush`].
    fn complete_flush(&self, pending: &mut Option<PendingFlush>) -> Result<(), StoreError> {
        let Some(p) = pending.as_ref() else {
            return Ok(());
        };
        p.segment
            .sync_data()
            .map_err(|e| StoreError::io("cannot flush the body log", &e))?;
        sync_wal(&self.path)?;
        redo::empty(&p.redo)?;
        *pending = None;
        Ok(())
    }

    /// [`Inner::complete_flush`], taking the lock on the pending flush: from outside the writer
    /// lock (the commit thread, the last drop).
    pub(crate) fn flush_pending(&self) -> Result<(), StoreError> {
        let mut pending = self
            .pending_flush
            .lock()
            .map_err(|_| StoreError::internal("flush state poisoned"))?;
        self.complete_flush(&mut pending)
    }

    /// Rolls the open transaction back and applies its batches again from the redo log.
    fn restart(&self, w: &mut Writer) -> Result<(), StoreError> {
        if !w.conn.is_autocommit() {
            let _ = w.conn.execute_batch("ROLLBACK");
        }
        w.open = None;
        w.stale = true;
        let last = redo::replay(&w.conn, &self.log, &self.data_dir)?;
        w.stale = false;
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
    /// Commits the batches the writer holds and makes the commit durable.
    fn drop(&mut self) {
        if let Ok(mut w) = self.writer.lock()
            && let Err(e) = self.commit(&mut w).and_then(|()| self.flush_pending())
        {
            tracing::error!(error = %e, "final commit failed (the redo log keeps the batches)");
        }
    }
}
