//! Loupe's embedded default store: one SQLite file in WAL mode.
//!
//! One writer connection, used by one batch at a time (the ingest queue groups requests into
//! batches, so one fsync acknowledges many requests); a small pool of reader connections that
//! never wait on the writer. Traces get a sequential number on first sight, and spans are keyed
//! by (trace number, span id), so inserts append to the end of the B-trees instead of landing at
//! random points in them.

mod read;
mod schema;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use loupe_model::TraceId;
use loupe_store::{
    EncodedSpan, StoreError, TraceDetail, TracePage, TraceQuery, TraceStore, WriteOutcome,
};
use rusqlite::Connection;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "loupe.db";

/// Readers kept open between queries.
const MAX_IDLE_READERS: usize = 4;

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

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
            StoreError::internal(format!("cannot create data directory {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(DB_FILE);
        let mut writer = Connection::open(&path).map_err(db_err)?;
        schema::configure(&writer, true).map_err(db_err)?;
        schema::migrate(&mut writer)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
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
                c
            }
        };
        let out = f(&conn);
        if let Ok(mut pool) = self.inner.readers.lock() {
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
        out
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
}

#[async_trait]
impl TraceStore for SqliteStore {
    async fn write_spans(&self, spans: Vec<EncodedSpan>) -> Result<WriteOutcome, StoreError> {
        if spans.is_empty() {
            return Ok(WriteOutcome::default());
        }
        self.blocking(move |s| {
            let mut conn = s
                .inner
                .writer
                .lock()
                .map_err(|_| StoreError::internal("writer poisoned"))?;
            write::write_spans(&mut conn, &spans)
        })
        .await
    }

    async fn list_traces(&self, query: TraceQuery) -> Result<TracePage, StoreError> {
        self.blocking(move |s| s.with_reader(|c| read::list_traces(c, &query)))
            .await
    }

    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<TraceDetail>, StoreError> {
        self.blocking(move |s| s.with_reader(|c| read::get_trace(c, trace_id)))
            .await
    }
}

#[cfg(test)]
mod tests;
