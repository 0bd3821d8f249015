//! The checkpointer: copies committed WAL frames back into the database file on its own thread,
//! and keeps the WAL from growing without bound.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use loupe_store::StoreError;
use rusqlite::Connection;

use crate::db_err;
use crate::schema::{self, Role};

/// How often committed WAL frames are copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL length (in pages: 128 MiB of 4 KiB pages) past which the WAL is rewound (see
/// [`Checkpointer`]). Each rewind holds the writer for a commit's worth of copying and a flush
/// of the database file, so rewinds should be rare (figures: docs/performance.md, "WAL sizing
/// and checkpoints"). Reads do not slow down with the length: SQLite only looks a page up in
/// the frames not yet copied back.
const WAL_REWIND_FRAMES: i64 = 32_768;
/// Frames the writer may be left to copy itself when it rewinds the WAL. Less than one commit's
/// worth and the checkpointer, a commit behind after every pass, never lets the writer rewind
/// (sized when each batch was its own commit: docs/performance.md, "WAL sizing and
/// checkpoints").
const REWIND_LAG_FRAMES: i64 = 4_096;
/// WAL length (in pages: 4 GiB of 4 KiB pages) past which the checkpointer waits for readers and
/// the writer to copy every frame and restart the WAL. Ingest pauses meanwhile (at most the busy
/// timeout), so this is only a bound for readers that pin the WAL for long: back-to-back
/// aggregations under full ingest grow it past 1 GiB and back, and a lower cap paused ingest
/// there (figures: docs/performance.md, "WAL sizing and checkpoints").
pub(crate) const WAL_MAX_FRAMES: i64 = if cfg!(test) { 1_024 } else { 1_048_576 };

/// Copies committed WAL frames into the database file on its own thread and connection, so the
/// writer's commits never pay for it (the writer's automatic checkpoints are off).
///
/// Under steady load a background checkpoint never catches the writer, and SQLite only rewinds
/// the WAL when a write begins with every frame copied back. So when the WAL passes
/// [`WAL_REWIND_FRAMES`], the checkpointer copies again at once, pass after pass, until fewer
/// than [`REWIND_LAG_FRAMES`] frames are left; then it raises `rewind`, and the writer, after
/// its next commit, copies those few itself; its next transaction starts the WAL from the
/// beginning again. The writer holds the only write lock, so what it copies holds up ingest:
/// with `rewind` raised as soon as the WAL passed the mark, the writer was left half of all
/// frames to copy (figures: docs/performance.md, "WAL sizing and checkpoints"). Should the
/// checkpointer never get that close (readers that hold old frames, a disk slower than ingest),
/// past [`WAL_MAX_FRAMES`] it waits for them and restarts the WAL itself, so the WAL stays
/// bounded.
///
/// Dropping it stops the thread after a last checkpoint, which empties the WAL file.
pub(crate) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to the database at `path`; it raises `rewind`
    /// when the writer should complete a checkpoint.
    pub(crate) fn start(path: PathBuf, rewind: Arc<AtomicBool>) -> Result<Self, StoreError> {
        let conn = Connection::open(&path).map_err(db_err)?;
        schema::configure(&conn, Role::Reader).map_err(db_err)?;
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let state = State {
            conn,
            rewind,
            last_done: 0,
        };
        let thread = std::thread::Builder::new()
            .name("loupe-checkpoint".into())
            .spawn(move || state.run(&rx))
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

/// What the checkpoint thread keeps between passes.
struct State {
    conn: Connection,
    rewind: Arc<AtomicBool>,
    /// Frames the last pass over a long WAL had copied back (0 after a restart).
    last_done: i64,
}

impl State {
    /// Checkpoints until the [`Checkpointer`] is dropped (its sender closes the channel), then
    /// copies every frame back and empties the WAL file.
    fn run(mut self, stop: &Receiver<()>) {
        let mut wait = CHECKPOINT_EVERY;
        while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(wait) {
            wait = self.step();
        }
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    }

    /// One passive checkpoint; returns how long to wait before the next.
    fn step(&mut self) -> Duration {
        let passive = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            });
        let (log, done) = match passive {
            Ok(frames) => frames,
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint failed");
                return CHECKPOINT_EVERY;
            }
        };
        if log > WAL_MAX_FRAMES {
            self.restart(log, done);
            return CHECKPOINT_EVERY;
        }
        if log <= WAL_REWIND_FRAMES {
            return CHECKPOINT_EVERY;
        }
        let mut wait = CHECKPOINT_EVERY;
        if log - done <= REWIND_LAG_FRAMES {
            self.rewind.store(true, Ordering::Relaxed);
        } else if done > self.last_done {
            // Behind: copy what was committed meanwhile, at once. (No progress means a reader's
            // snapshot holds the frames back: then wait as usual.)
            wait = Duration::ZERO;
        }
        self.last_done = done;
        wait
    }

    /// Waits for the readers of old frames and for the writer (up to the busy timeout), copies
    /// everything and starts the WAL over; ingest pauses for that copy.
    ///
    /// Readers held the frames back for long (queries that never pause). The longer the WAL,
    /// the slower every read (SQLite looks each page up in the WAL first), the longer the
    /// queries, and the longer the WAL again: a loop that only a restart breaks (see
    /// docs/performance.md, "WAL sizing and checkpoints").
    fn restart(&mut self, log: i64, done: i64) {
        tracing::info!(
            frames = log,
            copied = done,
            "the WAL is past its cap; waiting for readers to restart it"
        );
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(RESTART)") {
            tracing::warn!(error = %e, "checkpoint of a long WAL failed");
        }
        self.last_done = 0;
    }
}
