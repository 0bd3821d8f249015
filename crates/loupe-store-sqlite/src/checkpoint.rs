//! The checkpointer: copies committed WAL frames into the database file on its own thread, and
//! keeps the WAL from growing without bound.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use loupe_store::StoreError;
use rusqlite::Connection;

use crate::{db_err, schema};

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
pub(crate) struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

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

impl Checkpointer {
    /// Starts the checkpoint thread on its own connection to the database at `path`; it sets
    /// `rewind` when the writer should finish a checkpoint (see above).
    pub(crate) fn start(path: PathBuf, rewind: Arc<AtomicBool>) -> Result<Self, StoreError> {
        let conn = Connection::open(&path).map_err(db_err)?;
        schema::configure(&conn, schema::Role::Reader).map_err(db_err)?;
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("loupe-checkpoint".into())
            .spawn(move || run(&conn, &rx, &rewind))
            .map_err(|e| {
                StoreError::internal(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// The checkpoint thread: a pass every [`CHECKPOINT_EVERY`] (or at once while behind) until
/// told to stop, then a last truncating checkpoint.
fn run(conn: &Connection, stop: &Receiver<()>, rewind: &AtomicBool) {
    let mut wait = CHECKPOINT_EVERY;
    let mut last_done = 0;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(wait) {
        wait = step(conn, rewind, &mut last_done);
    }
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

/// One passive checkpoint and what follows from how long the WAL is; returns how long to wait
/// before the next. `last_done` is the frames the previous pass had copied.
fn step(conn: &Connection, rewind: &AtomicBool, last_done: &mut i64) -> Duration {
    let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match r {
        Ok((log, done)) if log > WAL_MAX_FRAMES => {
            tracing::info!(
                frames = log,
                copied = done,
                "the WAL is past its cap; waiting for readers to restart it"
            );
            // Readers held the frames back for long (queries that never pause). The longer the
            // WAL, the slower every read (SQLite looks each page up in the WAL first), the
            // longer the queries, and the longer the WAL again: a loop (see
            // docs/performance.md, "WAL sizing and checkpoints"). Past the cap, wait for the
            // readers of old frames and for the writer (up to the busy timeout), copy
            // everything and start the WAL over; ingest pauses for that copy.
            if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(RESTART)") {
                tracing::warn!(error = %e, "checkpoint of a long WAL failed");
            }
            *last_done = 0;
        }
        Ok((log, done)) if log > WAL_REWIND_FRAMES => {
            let behind = log - done > REWIND_LAG_FRAMES;
            if !behind {
                rewind.store(true, Ordering::Relaxed);
            }
            let progressed = done > *last_done;
            *last_done = done;
            // Behind: copy what was committed meanwhile, at once. (No progress means a
            // reader's snapshot holds the frames back: then wait as usual.)
            if behind && progressed {
                return Duration::ZERO;
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
    }
    CHECKPOINT_EVERY
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
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
